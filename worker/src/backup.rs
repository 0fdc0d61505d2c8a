//! Database dumps to an S3-compatible object store: the upload half of the operator's
//! backup CronJob (`database.managed.backup.target.s3`). The database image writes the
//! dump (its own `mariadb-dump`, so the tool matches the server) into a shared
//! directory; `stv3 backup upload` sends each complete dump to the bucket in parts and
//! then deletes the oldest dumps of the same name beyond the retention.
//!
//! The S3 protocol is object_store's (Apache Arrow's object store crate: SigV4,
//! multipart uploads, listing), not ours.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
use tokio::io::AsyncReadExt;

/// Where dumps go, from the environment the operator sets (credentials from a Secret).
#[derive(Clone)]
pub struct S3Target {
    /// `https://s3.example.com` (or `http://` on a trusted network); AWS when absent.
    pub endpoint: Option<String>,
    pub bucket: String,
    /// Key prefix (a "directory"), without leading or trailing `/`; may be empty.
    pub prefix: String,
    pub region: String,
    /// Bucket in the path (`endpoint/bucket/key`) rather than the host name: what
    /// MinIO, Ceph and most non-AWS stores expect.
    pub path_style: bool,
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl std::fmt::Debug for S3Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Target")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("region", &self.region)
            .field("path_style", &self.path_style)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

/// The environment variables [`S3Target::from_env`] reads.
pub const ENV_ENDPOINT: &str = "STV3_S3_ENDPOINT";
pub const ENV_BUCKET: &str = "STV3_S3_BUCKET";
pub const ENV_PREFIX: &str = "STV3_S3_PREFIX";
pub const ENV_REGION: &str = "STV3_S3_REGION";
pub const ENV_PATH_STYLE: &str = "STV3_S3_PATH_STYLE";
pub const ENV_ACCESS_KEY_ID: &str = "AWS_ACCESS_KEY_ID";
pub const ENV_SECRET_ACCESS_KEY: &str = "AWS_SECRET_ACCESS_KEY";

/// What can go wrong uploading dumps.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0} is not set")]
    Missing(&'static str),
    #[error("{name} = {value:?}: {reason}")]
    Invalid {
        name: &'static str,
        value: String,
        reason: String,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
    #[error("no dump named {name}-*.sql.gz in {dir}: the dump step wrote nothing")]
    NothingToUpload { name: String, dir: PathBuf },
}

impl S3Target {
    /// Reads the target from `env` (the process environment in production).
    pub fn from_env(env: impl Fn(&str) -> Option<String>) -> Result<S3Target, BackupError> {
        let get = |name: &'static str| env(name).filter(|v| !v.trim().is_empty());
        let need = |name: &'static str| get(name).ok_or(BackupError::Missing(name));
        let path_style = match get(ENV_PATH_STYLE).as_deref().map(str::trim) {
            None | Some("true") | Some("1") => true,
            Some("false") | Some("0") => false,
            Some(other) => {
                return Err(BackupError::Invalid {
                    name: ENV_PATH_STYLE,
                    value: other.into(),
                    reason: "true or false".into(),
                })
            }
        };
        let endpoint = get(ENV_ENDPOINT);
        if let Some(e) = &endpoint {
            if !(e.starts_with("https://") || e.starts_with("http://")) {
                return Err(BackupError::Invalid {
                    name: ENV_ENDPOINT,
                    value: e.clone(),
                    reason: "an http:// or https:// URL".into(),
                });
            }
        }
        Ok(S3Target {
            endpoint,
            bucket: need(ENV_BUCKET)?,
            prefix: get(ENV_PREFIX)
                .unwrap_or_default()
                .trim_matches('/')
                .to_string(),
            region: get(ENV_REGION).unwrap_or_else(|| "us-east-1".into()),
            path_style,
            access_key_id: need(ENV_ACCESS_KEY_ID)?,
            secret_access_key: need(ENV_SECRET_ACCESS_KEY)?,
        })
    }

    fn store(&self) -> Result<AmazonS3, BackupError> {
        let mut b = AmazonS3Builder::new()
            .with_bucket_name(&self.bucket)
            .with_region(&self.region)
            .with_access_key_id(&self.access_key_id)
            .with_secret_access_key(&self.secret_access_key)
            .with_virtual_hosted_style_request(!self.path_style);
        if let Some(e) = &self.endpoint {
            b = b.with_endpoint(e).with_allow_http(e.starts_with("http://"));
        }
        Ok(b.build()?)
    }

    fn key(&self, file: &str) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from(file)
        } else {
            ObjectPath::from(format!("{}/{file}", self.prefix))
        }
    }
}

/// What [`upload`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct UploadReport {
    /// Object keys written, with their sizes.
    pub uploaded: Vec<(String, u64)>,
    /// Object keys deleted by retention.
    pub removed: Vec<String>,
}

/// Whether `file` is a complete dump of `name`: `<name>-<time>.sql.gz` (a dump still
/// being written ends in `.partial`).
fn is_dump(name: &str, file: &str) -> bool {
    file.strip_prefix(name)
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|rest| rest.ends_with(".sql.gz") && !rest.contains('/'))
}

/// The part size of an upload: S3's minimum is 5 MiB; larger parts mean fewer requests.
const PART_SIZE: usize = 16 << 20;

/// Uploads every dump of `name` in `dir` to `target`, then keeps the newest
/// `retention` dumps of `name` in the bucket (names sort by time) and deletes the
/// rest. Fails before deleting anything if an upload failed.
pub async fn upload(
    target: &S3Target,
    dir: &Path,
    name: &str,
    retention: usize,
) -> Result<UploadReport, BackupError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BackupError::Io { path, source }
    };
    let store: Arc<dyn ObjectStore> = Arc::new(target.store()?);
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|f| is_dump(name, f))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(BackupError::NothingToUpload {
            name: name.into(),
            dir: dir.into(),
        });
    }
    let mut report = UploadReport::default();
    for file in &files {
        let path = dir.join(file);
        let key = target.key(file);
        let mut f = tokio::fs::File::open(&path).await.map_err(io(&path))?;
        let mut writer =
            WriteMultipart::new_with_chunk_size(store.put_multipart(&key).await?, PART_SIZE);
        let mut buf = vec![0u8; 1 << 20];
        let mut size = 0u64;
        loop {
            let n = f.read(&mut buf).await.map_err(io(&path))?;
            if n == 0 {
                break;
            }
            size += n as u64;
            writer.wait_for_capacity(4).await?;
            writer.write(&buf[..n]);
        }
        writer.finish().await?;
        report.uploaded.push((key.to_string(), size));
    }

    let listing_prefix =
        (!target.prefix.is_empty()).then(|| ObjectPath::from(target.prefix.as_str()));
    let mut stored: Vec<ObjectPath> = store
        .list(listing_prefix.as_ref())
        .map_ok(|m| m.location)
        .try_collect::<Vec<_>>()
        .await?
        .into_iter()
        .filter(|p| p.filename().is_some_and(|f| is_dump(name, f)))
        .filter(|p| {
            // Only the prefix's own level: a dump under a deeper "directory" is not ours.
            let parent = p.as_ref().rsplit_once('/').map_or("", |(d, _)| d);
            parent == target.prefix
        })
        .collect();
    stored.sort_by(|a, b| a.as_ref().cmp(b.as_ref()));
    let excess = stored.len().saturating_sub(retention.max(1));
    for old in stored.into_iter().take(excess) {
        store.delete(&old).await?;
        report.removed.push(old.to_string());
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dump_names() {
        assert!(is_dump("r1", "r1-20261206T101500Z.sql.gz"));
        assert!(!is_dump("r1", "r1-20261206T101500Z.sql.gz.partial"));
        assert!(!is_dump("r1", "r10-20261206T101500Z.sql.gz"));
        assert!(!is_dump("r1", "other-20261206T101500Z.sql.gz"));
    }

    #[test]
    fn target_from_env() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let t = S3Target::from_env(env(&[
            (ENV_BUCKET, "dumps"),
            (ENV_PREFIX, "/stv3/region-one/"),
            (ENV_ENDPOINT, "http://127.0.0.1:7070"),
            (ENV_ACCESS_KEY_ID, "id"),
            (ENV_SECRET_ACCESS_KEY, "very-secret"),
        ]))
        .unwrap();
        assert_eq!(t.prefix, "stv3/region-one");
        assert_eq!(t.region, "us-east-1");
        assert!(t.path_style);
        assert_eq!(t.key("a.sql.gz").as_ref(), "stv3/region-one/a.sql.gz");
        assert!(!format!("{t:?}").contains("very-secret"));
        let e = S3Target::from_env(env(&[(ENV_BUCKET, "b")])).unwrap_err();
        assert!(e.to_string().contains(ENV_ACCESS_KEY_ID), "{e}");
        let e = S3Target::from_env(env(&[
            (ENV_BUCKET, "b"),
            (ENV_ENDPOINT, "s3.example.com"),
            (ENV_ACCESS_KEY_ID, "id"),
            (ENV_SECRET_ACCESS_KEY, "s"),
        ]))
        .unwrap_err();
        assert!(e.to_string().contains("http"), "{e}");
    }
}
