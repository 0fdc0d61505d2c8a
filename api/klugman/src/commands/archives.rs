//! `klugman URL archives [--get ID [-o FILE]]`: `GET /v2/archives` and
//! `GET /v2/archives/{id}`.
//!
//! Archives exist only in API v2, so this command always asks `/v2` (or a later
//! version given with `--version`), whatever the default version is.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::cli::ArchivesArgs;
use crate::client::Client;
use crate::error::Error;
use crate::render;
use crate::request::{path_segment, ApiRequest};

use super::{emit, Context};

/// The first API version with archives.
pub const ARCHIVES_VERSION: u32 = 2;

/// `archives` lists; `archives --get ID` fetches one archive's bytes.
pub fn request(args: &ArchivesArgs) -> ApiRequest {
    match &args.get {
        Some(id) => ApiRequest::new(format!("archives/{}", path_segment(id))),
        None => ApiRequest::new("archives"),
    }
}

pub fn execute(ctx: &Context, args: &ArchivesArgs, out: &mut dyn Write) -> Result<(), Error> {
    let version = ctx.version.max(ARCHIVES_VERSION);
    let req = request(args);
    let Some(id) = &args.get else {
        let (value, raw) = ctx.get_json(version, &req, out)?;
        return ctx.print(out, &value, &raw, render::archives);
    };
    let client = ctx.client(version)?;
    ctx.debug_request(&client, &req, out)?;
    match &args.output {
        None => client.download(&req, out).map(|_| ()),
        Some(path) => {
            let bytes = download_to_file(&client, &req, path)?;
            if ctx.json {
                let note = serde_json::json!({
                    "id": id, "file": path.display().to_string(), "bytes": bytes
                });
                emit(out, &format!("{note}\n"))
            } else {
                emit(
                    out,
                    &format!("Saved archive {id} to {} ({bytes} bytes)\n", path.display()),
                )
            }
        }
    }
}

/// Downloads into `FILE.part` and renames it to `FILE` once complete, so a failed
/// download never leaves a truncated file under the name the user asked for.
fn download_to_file(client: &Client, req: &ApiRequest, path: &Path) -> Result<u64, Error> {
    let mut part = path.as_os_str().to_owned();
    part.push(".part");
    let part = PathBuf::from(part);
    let file = File::create(&part)
        .map_err(|e| Error::output(format!("creating {}", part.display()), e))?;
    let mut writer = BufWriter::new(file);
    let result = client.download(req, &mut writer);
    drop(writer);
    match result {
        Ok(bytes) => {
            fs::rename(&part, path).map_err(|e| {
                Error::output(
                    format!("renaming {} to {}", part.display(), path.display()),
                    e,
                )
            })?;
            Ok(bytes)
        }
        Err(e) => {
            // Best effort: the download error is the one worth reporting.
            let _ = fs::remove_file(&part);
            Err(e)
        }
    }
}
