//! What klugman asks the server: a path under `/vN` and query parameters, kept apart
//! from the HTTP client so every command's request can be checked without a server.

/// One GET request relative to the versioned base URL (`{url}/v{N}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiRequest {
    /// Path under the versioned base, without a leading slash, e.g. `streams/count`.
    pub path: String,
    /// Query parameters in the order they are sent. Empty values are never added,
    /// because the original dropped them (`remove_empty`) before sending.
    pub query: Vec<(&'static str, String)>,
}

impl ApiRequest {
    pub fn new(path: impl Into<String>) -> Self {
        ApiRequest {
            path: path.into(),
            query: Vec::new(),
        }
    }

    /// Adds `name=value` unless the value is absent or empty, as the original did.
    pub fn param(mut self, name: &'static str, value: Option<&str>) -> Self {
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            self.query.push((name, v.to_string()));
        }
        self
    }

    /// The path and query string, form-encoded the way `requests` encoded them
    /// (space as `+`, everything but `A-Za-z0-9_.-~` as `%XX`).
    pub fn path_and_query(&self) -> String {
        if self.query.is_empty() {
            return self.path.clone();
        }
        let query: Vec<String> = self
            .query
            .iter()
            .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
            .collect();
        format!("{}?{}", self.path, query.join("&"))
    }

    /// The full URL under `base` (which already ends in `/vN`).
    pub fn url(&self, base: &str) -> String {
        format!("{}/{}", base, self.path_and_query())
    }
}

/// `{url}/v{N}`, without doubling a trailing slash the user typed.
pub fn versioned_base(url: &str, version: u32) -> String {
    format!("{}/v{}", url.trim_end_matches('/'), version)
}

/// Encodes a query component as `application/x-www-form-urlencoded`.
pub fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Encodes an id typed by the user as one path segment: `/`, `?`, `#`, spaces and
/// non-ASCII bytes are escaped so an id can never reach another route.
pub fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'.'
            | b'_'
            | b'~'
            | b'!'
            | b'$'
            | b'&'
            | b'\''
            | b'('
            | b')'
            | b'*'
            | b'+'
            | b','
            | b';'
            | b'='
            | b':'
            | b'@' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Parses `--traits name:value,name:value` into pairs.
///
/// Like the original, a repeated name keeps its first position and its last value
/// (it built a dict). Unlike the original, a value may itself contain `:` (it is split
/// at the first one: timestamps work), and a pair without `:` is a clear error rather
/// than a crash.
pub fn parse_traits(list: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for item in list.split(',') {
        let Some((name, value)) = item.split_once(':') else {
            return Err(format!(
                "--traits: expected name:value pairs separated by commas, got '{item}'"
            ));
        };
        match pairs.iter_mut().find(|(n, _)| n == name) {
            Some(pair) => pair.1 = value.to_string(),
            None => pairs.push((name.to_string(), value.to_string())),
        }
    }
    Ok(pairs)
}

/// Joins trait pairs for the wire as `name:value;name:value`.
///
/// The original klugman joined with `,`, but quincy splits this parameter on `;`,
/// so with two or more traits the original's filter never matched. With one trait
/// (the common case) the request is byte-for-byte the original's.
pub fn join_traits(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(n, v)| format!("{n}:{v}"))
        .collect::<Vec<_>>()
        .join(";")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_requests() {
        assert_eq!(form_encode("a b:c,d;e/f~g*h"), "a+b%3Ac%2Cd%3Be%2Ff~g%2Ah");
        assert_eq!(
            form_encode("2015-04-22T00:00:00"),
            "2015-04-22T00%3A00%3A00"
        );
        assert_eq!(form_encode("é"), "%C3%A9");
    }

    #[test]
    fn path_segment_keeps_ids_in_one_segment() {
        assert_eq!(path_segment("abc-123"), "abc-123");
        assert_eq!(path_segment("a/b?c#d e"), "a%2Fb%3Fc%23d%20e");
    }

    #[test]
    fn versioned_base_trims_trailing_slash() {
        assert_eq!(versioned_base("http://h:8000/", 1), "http://h:8000/v1");
        assert_eq!(versioned_base("http://h:8000", 2), "http://h:8000/v2");
    }

    #[test]
    fn traits_parse_like_a_dict() {
        let pairs = parse_traits("a:1,b:2,a:3").unwrap();
        assert_eq!(
            pairs,
            vec![("a".into(), "3".into()), ("b".into(), "2".into())]
        );
        assert_eq!(join_traits(&pairs), "a:3;b:2");
        let ts = parse_traits("when:2015-04-22T00:00:00").unwrap();
        assert_eq!(ts, vec![("when".into(), "2015-04-22T00:00:00".into())]);
        assert!(parse_traits("nocolon").is_err());
    }

    #[test]
    fn empty_params_are_dropped() {
        let r = ApiRequest::new("streams")
            .param("older_than", Some(""))
            .param("name", None)
            .param("state", Some("active"));
        assert_eq!(r.path_and_query(), "streams?state=active");
    }
}
