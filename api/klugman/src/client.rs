//! The HTTP side: GET a request under `{url}/v{N}` and turn every failure into one
//! clear [`Error`].

use std::io::{Read, Write};
use std::time::Duration;

use serde_json::Value;

use crate::error::Error;
use crate::request::{versioned_base, ApiRequest};

/// How long to wait for a connection before telling the user the server is away.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// How much of an error body to read: enough for any message, bounded so a
/// misbehaving server cannot make us buffer forever.
const ERROR_BODY_LIMIT: u64 = 64 * 1024;

/// A connection to one API version of one server.
pub struct Client {
    base: String,
    agent: ureq::Agent,
    /// Sent as `Authorization: Bearer …` (never printed, not even under `--debug`).
    token: Option<String>,
}

impl Client {
    /// A client for `url` (as typed, without `/vN`) and API `version`.
    pub fn new(url: &str, version: u32) -> Result<Self, Error> {
        let lower = url.to_ascii_lowercase();
        if !(lower.starts_with("http://") || lower.starts_with("https://")) {
            return Err(Error::BadArgument(format!(
                "url must start with http:// or https://, got '{url}'"
            )));
        }
        let agent = ureq::Agent::config_builder()
            // Non-2xx answers come back as responses so we can read the server's message.
            .http_status_as_error(false)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .user_agent(concat!("klugman/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Ok(Client {
            base: versioned_base(url, version),
            agent,
            token: None,
        })
    }

    /// The same client, sending `token` as a bearer token.
    pub fn with_token(mut self, token: Option<String>) -> Self {
        self.token = token;
        self
    }

    /// The versioned base URL, `{url}/v{N}`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// GETs `req` and returns its body, which must be JSON; the raw text is returned
    /// too, for `--json`.
    pub fn get_json(&self, req: &ApiRequest) -> Result<(Value, String), Error> {
        let url = req.url(&self.base);
        let mut body = self.send(&url)?;
        let mut text = String::new();
        body.read_to_string(&mut text)
            .map_err(|e| Error::BadResponse {
                url: url.clone(),
                reason: e.to_string(),
            })?;
        let value = serde_json::from_str(&text).map_err(|e| Error::BadResponse {
            url: url.clone(),
            reason: format!("not JSON ({e}): {}", snippet(&text)),
        })?;
        Ok((value, text))
    }

    /// GETs `req` and copies its body to `sink` as it arrives; returns the byte count.
    pub fn download(&self, req: &ApiRequest, sink: &mut dyn Write) -> Result<u64, Error> {
        let url = req.url(&self.base);
        let mut body = self.send(&url)?;
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0u64;
        loop {
            let n = body.read(&mut buf).map_err(|e| Error::Connect {
                url: url.clone(),
                reason: format!("download interrupted after {total} bytes: {e}"),
            })?;
            if n == 0 {
                break;
            }
            sink.write_all(&buf[..n])
                .map_err(|e| Error::output("writing the archive", e))?;
            total += n as u64;
        }
        sink.flush()
            .map_err(|e| Error::output("writing the archive", e))?;
        Ok(total)
    }

    /// Sends the GET; a 2xx answer's body reader, or the error to show.
    fn send(&self, url: &str) -> Result<impl Read, Error> {
        let mut request = self.agent.get(url);
        if let Some(token) = &self.token {
            request = request.header("Authorization", &format!("Bearer {token}"));
        }
        let response = request.call().map_err(|e| Error::Connect {
            url: url.to_string(),
            reason: describe(&e),
        })?;
        let status = response.status();
        let mut body = response.into_body();
        if status.is_success() {
            return Ok(body.into_reader());
        }
        let mut raw = Vec::new();
        // A body we cannot read still leaves the status to report.
        let _ = body
            .as_reader()
            .take(ERROR_BODY_LIMIT)
            .read_to_end(&mut raw);
        let status_text = match status.canonical_reason() {
            Some(reason) => format!("{} {}", status.as_u16(), reason),
            None => status.as_u16().to_string(),
        };
        Err(Error::Status {
            url: url.to_string(),
            status: status_text,
            message: server_message(&String::from_utf8_lossy(&raw)),
        })
    }
}

/// The human part of an error body: our server's `{"message": …}`, Falcon's
/// `{"title": …, "description": …}` (quincy), or the text itself.
pub fn server_message(body: &str) -> String {
    if let Ok(Value::Object(o)) = serde_json::from_str::<Value>(body) {
        let field = |k: &str| o.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
        if let Some(m) = field("message").or_else(|| field("error")) {
            return m.to_string();
        }
        match (field("title"), field("description")) {
            (Some(t), Some(d)) => return format!("{t}: {d}"),
            (Some(m), None) | (None, Some(m)) => return m.to_string(),
            (None, None) => {}
        }
    }
    let text = body.trim();
    if text.is_empty() {
        "(no message from the server)".to_string()
    } else {
        snippet(text)
    }
}

/// At most 300 characters of `text` on one line, for error messages.
fn snippet(text: &str) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &one_line[..i]),
        None => one_line,
    }
}

/// A transport error in words, without Rust type names.
fn describe(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Io(io) => io.to_string(),
        ureq::Error::HostNotFound => "host not found".to_string(),
        ureq::Error::Timeout(what) => format!("timed out ({what})"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_messages() {
        assert_eq!(
            server_message(r#"{"message": "no such stream"}"#),
            "no such stream"
        );
        assert_eq!(
            server_message(r#"{"title": "400 Bad Request", "description": "bad state"}"#),
            "400 Bad Request: bad state"
        );
        assert_eq!(
            server_message("Internal Server Error\n"),
            "Internal Server Error"
        );
        assert_eq!(server_message(""), "(no message from the server)");
        assert_eq!(server_message("[1,2]"), "[1,2]");
    }

    #[test]
    fn rejects_urls_without_scheme() {
        assert!(matches!(
            Client::new("localhost:8000", 1),
            Err(Error::BadArgument(_))
        ));
        assert_eq!(Client::new("https://h/", 2).unwrap().base(), "https://h/v2");
    }
}
