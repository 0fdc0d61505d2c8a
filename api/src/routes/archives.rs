//! `/v2/archives`: the finished shoebox archives in the archive folder (the original
//! only returned made-up names). An archive's id is its file name; only names listed
//! in the folder are served, so no path can reach outside it.

use crate::error::ApiError;
use crate::openapi::{ArchiveDoc, ErrorDoc};
use crate::state::AppState;
use crate::wire;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use std::path::{Path as FsPath, PathBuf};

/// A name that can only be a plain entry of the folder: no separators, no `..`, not
/// hidden (shoebox writes `.name.partial` while an archive is being finished).
fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && !name.contains(['/', '\\', '\0'])
        && name.len() <= 255
}

struct Entry {
    name: String,
    size: u64,
    modified: DateTime<Utc>,
}

async fn list(dir: &FsPath) -> Result<Vec<Entry>, ApiError> {
    let mut rd = tokio::fs::read_dir(dir).await.map_err(|e| {
        tracing::error!(dir = %dir.display(), error = %e, "cannot read the archive folder");
        ApiError::Unavailable("the archive folder is not readable".into())
    })?;
    let mut out = Vec::new();
    loop {
        let entry = match rd.next_entry().await {
            Ok(Some(e)) => e,
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "skipping an archive entry");
                continue;
            }
        };
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if !plain_name(&name) {
            continue;
        }
        // Symlinks are not followed: an archive is a regular file shoebox wrote.
        let Ok(meta) = entry.metadata().await else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        let modified = meta
            .modified()
            .map(DateTime::<Utc>::from)
            .unwrap_or_default();
        out.push(Entry {
            name,
            size: meta.len(),
            modified,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

fn archive_dir(state: &AppState) -> Option<PathBuf> {
    state.config().archive_dir.clone()
}

/// The finished archives, sorted by name (empty when the server has no archive
/// folder).
#[utoipa::path(
    get,
    path = "/archives",
    security(("bearer" = [])),
    tag = "archives",
    responses(
        (status = 200, description = "The archives", body = Vec<ArchiveDoc>),
        (status = 401, description = "The token is missing or wrong (archives always need it)", body = ErrorDoc),
        (status = 403, description = "The server has no token: archives are not served", body = ErrorDoc),
        (status = 503, description = "The archive folder is not readable", body = ErrorDoc),
    )
)]
pub async fn list_archives(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    state.auth().check_archives(&headers)?;
    let Some(dir) = archive_dir(&state) else {
        return Ok(Json(json!([])));
    };
    let entries = list(&dir).await?;
    Ok(Json(Value::Array(
        entries
            .iter()
            .map(|e| {
                json!({
                    "id": e.name,
                    "filename": e.name,
                    "size": e.size,
                    "modified": wire::datetime(&e.modified),
                })
            })
            .collect(),
    )))
}

/// One archive's bytes (gzip for `.gz` files, JSON Lines otherwise).
#[utoipa::path(
    get,
    path = "/archives/{archive_id}",
    security(("bearer" = [])),
    tag = "archives",
    params(("archive_id" = String, Path, description = "An archive id from the listing")),
    responses(
        (status = 200, description = "The archive: gzip for `.gz` names, else raw bytes (JSON Lines)", content((Vec<u8> = "application/gzip"), (Vec<u8> = "application/octet-stream"))),
        (status = 401, description = "The token is missing or wrong (archives always need it)", body = ErrorDoc),
        (status = 403, description = "The server has no token: archives are not served", body = ErrorDoc),
        (status = 404, description = "No such archive", body = ErrorDoc),
        (status = 503, description = "The archive folder is not readable", body = ErrorDoc),
    )
)]
pub async fn get_archive(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    state.auth().check_archives(&headers)?;
    let not_found = || ApiError::NotFound(format!("no archive {id:?}"));
    let Some(dir) = archive_dir(&state) else {
        return Err(not_found());
    };
    if !plain_name(&id) {
        return Err(not_found());
    }
    // Only a name the folder lists as a regular file is opened.
    let entries = list(&dir).await?;
    let Some(entry) = entries.iter().find(|e| e.name == id) else {
        return Err(not_found());
    };
    let path = dir.join(&entry.name);
    let file = tokio::fs::File::open(&path).await.map_err(|e| {
        tracing::warn!(path = %path.display(), error = %e, "cannot open an archive");
        not_found()
    })?;
    let content_type = if entry.name.ends_with(".gz") {
        "application/gzip"
    } else {
        "application/octet-stream"
    };
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    let mut response = body.into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(entry.size));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{}\"", entry.name)) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::plain_name;

    #[test]
    fn only_plain_names() {
        assert!(plain_name("events_2015_02_27.json.gz"));
        for bad in [
            "",
            "..",
            ".",
            "../etc/passwd",
            "a/b",
            "a\\b",
            ".x.partial",
            "\0",
        ] {
            assert!(!plain_name(bad), "{bad:?}");
        }
    }
}
