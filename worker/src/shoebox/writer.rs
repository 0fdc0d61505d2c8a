//! The archiver: JSON Lines into the working directory, rolled into the destination.

use super::settings::ShoeboxSettings;
use super::template::{self, FilenameTemplate};
use super::ShoeboxError;
use chrono::{DateTime, TimeDelta, Utc};
use flate2::write::GzEncoder;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const GZ_SUFFIX: &str = ".gz";

/// Writes notifications to rolling archive files (see the [module docs](super)).
///
/// One archiver per working directory: files found there are taken for its own.
/// Dropping it without [`Archiver::close`] is a crash as far as the files go: the
/// current file stays in the working directory and the next [`Archiver::open`]
/// finishes it.
#[derive(Debug)]
pub struct Archiver {
    settings: ShoeboxSettings,
    template: FilenameTemplate,
    active: Option<Active>,
    /// When the last file was opened: names carry strictly increasing times, so the
    /// finished files of one archiver sort in the order they were written.
    last_opened: Option<DateTime<Utc>>,
}

#[derive(Debug)]
struct Active {
    path: PathBuf,
    file: BufWriter<File>,
    size: u64,
    opened: Instant,
}

impl Archiver {
    /// Creates the directories if needed and finishes any file a previous run left in
    /// the working directory. The first file is opened by the first [`Archiver::append`].
    pub fn open(settings: ShoeboxSettings) -> Result<Archiver, ShoeboxError> {
        let template = FilenameTemplate::parse(&settings.filename_template).map_err(|reason| {
            ShoeboxError::Config {
                key: "filename_template".to_string(),
                reason,
            }
        })?;
        for dir in [&settings.working_directory, &settings.destination_folder] {
            std::fs::create_dir_all(dir)
                .map_err(|e| ShoeboxError::io(dir, "cannot create directory", e))?;
        }
        let work = canonical(&settings.working_directory)?;
        if work == canonical(&settings.destination_folder)? {
            return Err(ShoeboxError::Config {
                key: "destination_folder".to_string(),
                reason: format!(
                    "must differ from working_directory ({}): files left there are taken for \
                     unfinished ones at start-up",
                    work.display()
                ),
            });
        }
        let archiver = Archiver {
            settings,
            template,
            active: None,
            last_opened: None,
        };
        archiver.recover()?;
        Ok(archiver)
    }

    /// The settings in force.
    pub fn settings(&self) -> &ShoeboxSettings {
        &self.settings
    }

    /// The file being written, if one is open.
    pub fn active_file(&self) -> Option<&Path> {
        self.active.as_ref().map(|a| a.path.as_path())
    }

    /// Appends one notification as a line; rolls the file if it is now big or old
    /// enough. Durable only after [`Archiver::flush`].
    pub fn append(&mut self, notification: &Value) -> Result<(), ShoeboxError> {
        let redacted = redact(notification, &self.settings.redact_fields);
        let notification = redacted.as_ref().unwrap_or(notification);
        let mut line = if self.settings.wrap_payload_with_region {
            serde_json::to_vec(&serde_json::json!({
                "region": self.settings.wrap_region,
                "cell": self.settings.wrap_cell,
                "notification": notification,
            }))
        } else {
            serde_json::to_vec(notification)
        }
        .map_err(|e| ShoeboxError::Record {
            path: self.settings.working_directory.clone(),
            line: 0,
            reason: format!("cannot serialise the notification: {e}"),
        })?;
        line.push(b'\n');
        let active = match self.active.as_mut() {
            Some(a) => a,
            None => {
                let opened = self.open_file()?;
                self.active.insert(opened)
            }
        };
        active
            .file
            .write_all(&line)
            .map_err(|e| ShoeboxError::io(&active.path, "cannot write", e))?;
        active.size += line.len() as u64;
        if self.roll_due() {
            self.roll()?;
        }
        Ok(())
    }

    /// Makes everything appended so far durable (written and fsynced, or already in a
    /// finished file), then rolls the file if it is older than `roll_minutes`.
    pub fn flush(&mut self) -> Result<(), ShoeboxError> {
        if let Some(active) = self.active.as_mut() {
            active
                .file
                .flush()
                .and_then(|()| active.file.get_ref().sync_data())
                .map_err(|e| ShoeboxError::io(&active.path, "cannot flush", e))?;
        }
        if self.roll_due() {
            self.roll()?;
        }
        Ok(())
    }

    /// Finishes the current file (moves it to the destination).
    pub fn close(mut self) -> Result<(), ShoeboxError> {
        self.roll()
    }

    /// Finishes the current file now, whatever its size and age.
    pub fn roll(&mut self) -> Result<(), ShoeboxError> {
        let Some(mut active) = self.active.take() else {
            return Ok(());
        };
        active
            .file
            .flush()
            .and_then(|()| active.file.get_ref().sync_all())
            .map_err(|e| ShoeboxError::io(&active.path, "cannot flush", e))?;
        drop(active.file);
        self.finish(&active.path, false)?;
        Ok(())
    }

    fn roll_due(&self) -> bool {
        let Some(active) = self.active.as_ref() else {
            return false;
        };
        if self
            .settings
            .roll_bytes()
            .is_some_and(|limit| active.size >= limit)
        {
            return true;
        }
        active.size > 0
            && self.settings.roll_minutes.is_some_and(|m| {
                active.opened.elapsed() >= Duration::from_secs(m.saturating_mul(60))
            })
    }

    fn open_file(&mut self) -> Result<Active, ShoeboxError> {
        let mut now = Utc::now();
        if let Some(last) = self.last_opened {
            if now <= last {
                now = last + TimeDelta::microseconds(1);
            }
        }
        self.last_opened = Some(now);
        let dir = &self.settings.working_directory;
        let name = self
            .template
            .working_name(now)
            .map_err(|reason| ShoeboxError::Config {
                key: "filename_template".to_string(),
                reason,
            })?;
        let mut n = 0;
        loop {
            let candidate = if n == 0 {
                name.clone()
            } else {
                template::numbered_name(&name, n)
            };
            let path = dir.join(&candidate);
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => {
                    sync_dir(dir)?;
                    return Ok(Active {
                        path,
                        file: BufWriter::with_capacity(64 * 1024, file),
                        size: 0,
                        opened: Instant::now(),
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 10_000 => n += 1,
                Err(e) => return Err(ShoeboxError::io(&path, "cannot create", e)),
            }
        }
    }

    /// Finishes every regular, non-hidden file of the working directory.
    fn recover(&self) -> Result<(), ShoeboxError> {
        let dir = &self.settings.working_directory;
        let entries =
            std::fs::read_dir(dir).map_err(|e| ShoeboxError::io(dir, "cannot list", e))?;
        let mut leftovers = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| ShoeboxError::io(dir, "cannot list", e))?;
            if entry.file_name().as_encoded_bytes().first() == Some(&b'.') {
                continue;
            }
            if entry.file_type().is_ok_and(|t| t.is_file()) {
                leftovers.push(entry.path());
            }
        }
        leftovers.sort();
        for path in leftovers {
            tracing::info!(file = %path.display(), "shoebox: finishing a file left by a previous run");
            self.finish(&path, true)?;
        }
        Ok(())
    }

    /// Moves a closed working file to the destination under its finished name (gzipped
    /// when configured); returns where it went. `recovering`: drop an incomplete last
    /// line first (never acknowledged, so it will be delivered again).
    fn finish(&self, path: &Path, recovering: bool) -> Result<Option<PathBuf>, ShoeboxError> {
        if recovering {
            truncate_partial_line(path)?;
        }
        let (crc, size) = hash_file(path)?;
        let work_dir = &self.settings.working_directory;
        if size == 0 {
            std::fs::remove_file(path).map_err(|e| ShoeboxError::io(path, "cannot remove", e))?;
            sync_dir(work_dir)?;
            return Ok(None);
        }
        let working_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut name = template::finished_name(&working_name, &crc);
        if self.settings.compress {
            name.push_str(GZ_SUFFIX);
        }
        let dest_dir = &self.settings.destination_folder;
        // A finished name already taken: by this very content (a roll interrupted after
        // the move), or by another file (a template without [[CRC]] or time tokens).
        let mut dest = dest_dir.join(&name);
        let mut n = 0;
        while dest.exists() {
            if hash_file(&dest).is_ok_and(|(existing, _)| existing == crc) {
                std::fs::remove_file(path)
                    .map_err(|e| ShoeboxError::io(path, "cannot remove", e))?;
                sync_dir(work_dir)?;
                return Ok(Some(dest));
            }
            n += 1;
            dest = dest_dir.join(template::numbered_name(&name, n));
        }
        let dest_name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let partial = dest_dir.join(format!(".{dest_name}.partial"));
        if self.settings.compress {
            copy_into(path, &partial, true)?;
        } else {
            match std::fs::rename(path, &dest) {
                Ok(()) => {
                    sync_dir(dest_dir)?;
                    sync_dir(work_dir)?;
                    return Ok(Some(dest));
                }
                Err(e) if e.kind() == std::io::ErrorKind::CrossesDevices => {
                    copy_into(path, &partial, false)?;
                }
                Err(e) => return Err(ShoeboxError::io(path, "cannot move", e)),
            }
        }
        std::fs::rename(&partial, &dest)
            .map_err(|e| ShoeboxError::io(&partial, "cannot rename", e))?;
        sync_dir(dest_dir)?;
        std::fs::remove_file(path).map_err(|e| ShoeboxError::io(path, "cannot remove", e))?;
        sync_dir(work_dir)?;
        tracing::debug!(file = %dest.display(), "shoebox: finished");
        Ok(Some(dest))
    }
}

/// The notification with the values of `keys` (at any depth) replaced by
/// `"<redacted>"`; `None` when it holds none of them (the common case costs a walk,
/// not a copy).
pub fn redact(notification: &Value, keys: &[String]) -> Option<Value> {
    fn holds(v: &Value, keys: &[String]) -> bool {
        match v {
            Value::Object(m) => m
                .iter()
                .any(|(k, v)| keys.iter().any(|r| r == k) || holds(v, keys)),
            Value::Array(items) => items.iter().any(|v| holds(v, keys)),
            _ => false,
        }
    }
    fn scrub(v: &mut Value, keys: &[String]) {
        match v {
            Value::Object(m) => {
                for (k, v) in m.iter_mut() {
                    if keys.iter().any(|r| r == k) {
                        *v = Value::String("<redacted>".into());
                    } else {
                        scrub(v, keys);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| scrub(v, keys)),
            _ => {}
        }
    }
    if keys.is_empty() || !holds(notification, keys) {
        return None;
    }
    let mut copy = notification.clone();
    scrub(&mut copy, keys);
    Some(copy)
}

fn canonical(dir: &Path) -> Result<PathBuf, ShoeboxError> {
    dir.canonicalize()
        .map_err(|e| ShoeboxError::io(dir, "cannot resolve", e))
}

/// Copies `from` to a new file `to` (gzipped or not) and fsyncs it.
fn copy_into(from: &Path, to: &Path, gzip: bool) -> Result<(), ShoeboxError> {
    let mut input = File::open(from).map_err(|e| ShoeboxError::io(from, "cannot open", e))?;
    let out = File::create(to).map_err(|e| ShoeboxError::io(to, "cannot create", e))?;
    let write_err = |e| ShoeboxError::io(to, "cannot write", e);
    let out = if gzip {
        let mut enc = GzEncoder::new(BufWriter::new(out), flate2::Compression::default());
        std::io::copy(&mut input, &mut enc).map_err(write_err)?;
        enc.finish().map_err(write_err)?
    } else {
        let mut w = BufWriter::new(out);
        std::io::copy(&mut input, &mut w).map_err(write_err)?;
        w
    };
    let out = out.into_inner().map_err(|e| write_err(e.into_error()))?;
    out.sync_all().map_err(write_err)
}

/// SHA-256 (hex) and length of a file's content, gunzipped if it is gzip.
fn hash_file(path: &Path) -> Result<(String, u64), ShoeboxError> {
    let err = |e| ShoeboxError::io(path, "cannot read", e);
    let mut file = File::open(path).map_err(err)?;
    let mut magic = [0u8; 2];
    let gz = file.read_exact(&mut magic).is_ok() && magic == [0x1f, 0x8b];
    file.seek(SeekFrom::Start(0)).map_err(err)?;
    let mut input: Box<dyn Read> = if gz {
        Box::new(flate2::read::MultiGzDecoder::new(std::io::BufReader::new(
            file,
        )))
    } else {
        Box::new(file)
    };
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(err(e)),
        };
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    let hex = hasher
        .finalize()
        .iter()
        .fold(String::with_capacity(64), |mut s, b| {
            use std::fmt::Write as _;
            let _ = write!(s, "{b:02x}");
            s
        });
    Ok((hex, size))
}

/// Cuts a file after its last newline (a crash can leave half a line).
fn truncate_partial_line(path: &Path) -> Result<(), ShoeboxError> {
    let err = |e| ShoeboxError::io(path, "cannot repair", e);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(err)?;
    let len = file.metadata().map_err(err)?.len();
    let mut end = len;
    let mut buf = vec![0u8; 64 * 1024];
    while end > 0 {
        let start = end.saturating_sub(buf.len() as u64);
        let chunk = &mut buf[..(end - start) as usize];
        file.seek(SeekFrom::Start(start)).map_err(err)?;
        file.read_exact(chunk).map_err(err)?;
        if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
            end = start + i as u64 + 1;
            break;
        }
        end = start;
    }
    if end < len {
        tracing::warn!(
            file = %path.display(),
            dropped_bytes = len - end,
            "shoebox: dropping an incomplete last line (never acknowledged)"
        );
        file.set_len(end).map_err(err)?;
        file.sync_all().map_err(err)?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), ShoeboxError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| ShoeboxError::io(dir, "cannot sync directory", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shoebox::read_notifications;
    use serde_json::json;

    fn settings(name: &str) -> (PathBuf, ShoeboxSettings) {
        let root =
            std::env::temp_dir().join(format!("stv3-shoebox-writer-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let s = ShoeboxSettings {
            working_directory: root.join("work"),
            destination_folder: root.join("out"),
            filename_template: "%Y%m%d-[[TIMESTAMP]]-stv3-[[CRC]].json".to_string(),
            ..ShoeboxSettings::default()
        };
        (root, s)
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn credentials_are_redacted_at_any_depth() {
        let keys: Vec<String> = crate::shoebox::settings::DEFAULT_REDACT_FIELDS
            .iter()
            .map(|k| k.to_string())
            .collect();
        let n = serde_json::json!({
            "_context_auth_token": "gAAAAAB-secret",
            "event_type": "compute.instance.create.end",
            "payload": {"instance_id": "i-1", "password": "hunter2",
                        "nested": [{"admin_password": "x"}, {"keep": "y"}]},
        });
        let r = redact(&n, &keys).expect("redacted");
        assert_eq!(r["_context_auth_token"], "<redacted>");
        assert_eq!(r["payload"]["password"], "<redacted>");
        assert_eq!(r["payload"]["nested"][0]["admin_password"], "<redacted>");
        assert_eq!(r["payload"]["nested"][1]["keep"], "y");
        assert_eq!(r["payload"]["instance_id"], "i-1");
        assert!(!r.to_string().contains("hunter2"));
        assert!(redact(&serde_json::json!({"a": 1}), &keys).is_none());
        assert!(redact(&n, &[]).is_none());
    }

    #[test]
    fn time_roll_with_zero_minutes_rolls_on_flush() {
        let (root, mut s) = settings("time");
        s.roll_minutes = Some(0);
        s.compress = false;
        let mut a = Archiver::open(s.clone()).unwrap();
        a.flush().unwrap(); // nothing open, nothing to roll
        a.append(&json!({"event_type": "a"})).unwrap();
        assert!(a.active_file().is_none(), "rolled right after the append");
        let out = files(&s.destination_folder);
        assert_eq!(out.len(), 1);
        let (crc, _) = hash_file(&s.destination_folder.join(&out[0])).unwrap();
        assert!(out[0].ends_with(&format!("-stv3-{crc}.json")), "{out:?}");
        a.close().unwrap();
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn recovery_drops_a_half_line_and_is_idempotent() {
        let (root, s) = settings("halfline");
        std::fs::create_dir_all(&s.working_directory).unwrap();
        let leftover = s
            .working_directory
            .join("20140101-1.000000-stv3-[[CRC]].json");
        std::fs::write(&leftover, "{\"event_type\":\"a\"}\n{\"event_ty").unwrap();
        // A previous roll got as far as the destination but not the removal.
        let a = Archiver::open(s.clone()).unwrap();
        let first = files(&s.destination_folder);
        assert_eq!(first.len(), 1);
        std::fs::write(&leftover, "{\"event_type\":\"a\"}\n").unwrap();
        a.close().unwrap();
        Archiver::open(s.clone()).unwrap().close().unwrap();
        assert_eq!(files(&s.destination_folder), first);
        assert!(files(&s.working_directory).is_empty());
        let got: Vec<_> = read_notifications(&s.destination_folder).unwrap().collect();
        assert_eq!(got.len(), 1);
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn same_directories_are_refused() {
        let (root, mut s) = settings("same");
        s.destination_folder = s.working_directory.clone();
        let err = Archiver::open(s).unwrap_err().to_string();
        assert!(err.contains("destination_folder"), "{err}");
        std::fs::remove_dir_all(root).unwrap();
    }
}
