//! One module per resource: each builds its request from the parsed options (pure,
//! so tests can check it), sends it, and prints the answer.

pub mod archives;
pub mod events;
pub mod streams;

use std::io::Write;

use serde_json::Value;

use crate::cli::{Cli, Command};
use crate::client::Client;
use crate::error::Error;
use crate::request::ApiRequest;

/// What every command needs besides its own options.
pub struct Context<'a> {
    pub url: &'a str,
    pub version: u32,
    pub debug: bool,
    pub json: bool,
    /// The bearer token sent with every request, if any.
    pub token: Option<String>,
}

impl Context<'_> {
    /// GETs `req` from API `version`, printing the request first under `--debug`
    /// (in the original's `URL:` / `   : name='value'` form).
    fn get_json(
        &self,
        version: u32,
        req: &ApiRequest,
        out: &mut dyn Write,
    ) -> Result<(Value, String), Error> {
        let client = self.client(version)?;
        self.debug_request(&client, req, out)?;
        client.get_json(req)
    }

    /// A client of API `version`, carrying the token.
    fn client(&self, version: u32) -> Result<Client, Error> {
        Ok(Client::new(self.url, version)?.with_token(self.token.clone()))
    }

    fn debug_request(
        &self,
        client: &Client,
        req: &ApiRequest,
        out: &mut dyn Write,
    ) -> Result<(), Error> {
        if !self.debug {
            return Ok(());
        }
        let mut text = format!("URL: {}/{}\n", client.base(), req.path);
        for (k, v) in &req.query {
            text.push_str(&format!("   : {k}='{v}'\n"));
        }
        emit(out, &text)
    }

    /// Prints the server's JSON as received under `--json`, else `render`'s tables.
    fn print(
        &self,
        out: &mut dyn Write,
        value: &Value,
        raw: &str,
        render: fn(&Value) -> String,
    ) -> Result<(), Error> {
        if self.json {
            let raw = raw.trim_end();
            emit(out, &format!("{raw}\n"))
        } else {
            emit(out, &render(value))
        }
    }
}

/// Writes `text` to the output, as one clear error if that fails.
pub(crate) fn emit(out: &mut dyn Write, text: &str) -> Result<(), Error> {
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Error::output("writing output", e))
}

/// Runs the parsed command line.
pub fn execute(cli: &Cli, out: &mut dyn Write) -> Result<(), Error> {
    let token = match &cli.token_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| {
                    Error::BadArgument(format!(
                        "cannot read the token file {}: {e}",
                        path.display()
                    ))
                })?
                .trim()
                .to_string(),
        ),
        None => std::env::var("STV3_API_TOKEN")
            .ok()
            .map(|t| t.trim().to_string()),
    }
    .filter(|t| !t.is_empty());
    let ctx = Context {
        url: &cli.url,
        version: cli.version,
        debug: cli.debug,
        json: cli.json,
        token,
    };
    match &cli.command {
        Command::Streams(args) => streams::execute(&ctx, args, out),
        Command::Events(args) => events::execute(&ctx, args, out),
        Command::Archives(args) => archives::execute(&ctx, args, out),
    }
}
