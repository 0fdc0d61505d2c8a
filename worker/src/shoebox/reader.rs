//! Reading archives back: JSON Lines or the original binary format, plain or gzip.

use super::ShoeboxError;
use flate2::read::MultiGzDecoder;
use serde_json::Value;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Cursor, Read};
use std::path::{Path, PathBuf};

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// The original binary format's beginning-of-record marker, 0x69867884 little-endian.
const BINARY_MAGIC: [u8; 4] = [0x84, 0x78, 0x86, 0x69];
/// A record larger than this is taken for corruption rather than allocated.
const MAX_BINARY_BLOCK: usize = 1 << 30;

/// Where the last item came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file (`-` for standard input).
    pub path: PathBuf,
    /// The line (JSON Lines) or record number (binary format), from 1.
    pub line: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Lines,
    Binary,
}

struct Source {
    path: PathBuf,
    reader: Box<dyn BufRead + Send>,
    format: Format,
    line: u64,
}

/// The iterator returned by [`super::read_notifications`].
pub struct NotificationReader {
    pending: VecDeque<PathBuf>,
    current: Option<Source>,
    location: Option<Location>,
}

impl std::fmt::Debug for NotificationReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotificationReader")
            .field("pending", &self.pending)
            .field("location", &self.location)
            .finish()
    }
}

impl NotificationReader {
    pub(super) fn open(path: &Path) -> Result<NotificationReader, ShoeboxError> {
        let mut pending = VecDeque::new();
        if path.as_os_str() == "-" {
            pending.push_back(path.to_path_buf());
        } else {
            let meta =
                std::fs::metadata(path).map_err(|e| ShoeboxError::io(path, "cannot read", e))?;
            if meta.is_dir() {
                pending.extend(list_archives(path)?);
            } else {
                pending.push_back(path.to_path_buf());
            }
        }
        Ok(NotificationReader {
            pending,
            current: None,
            location: None,
        })
    }

    /// The file and line of the item last returned.
    pub fn location(&self) -> Option<&Location> {
        self.location.as_ref()
    }

    /// The files still to be opened after the current one.
    pub fn remaining_files(&self) -> impl Iterator<Item = &Path> {
        self.pending.iter().map(PathBuf::as_path)
    }

    fn next_record(&mut self) -> Option<Result<Value, ShoeboxError>> {
        loop {
            let source = match self.current.as_mut() {
                Some(s) => s,
                None => {
                    let path = self.pending.pop_front()?;
                    self.location = Some(Location {
                        path: path.clone(),
                        line: 0,
                    });
                    match open_source(&path) {
                        Ok(s) => self.current.insert(s),
                        Err(e) => return Some(Err(e)),
                    }
                }
            };
            let step = match source.format {
                Format::Lines => read_line(source),
                Format::Binary => read_binary(source),
            };
            self.location = Some(Location {
                path: source.path.clone(),
                line: source.line,
            });
            match step {
                Step::Record(r) => return Some(r),
                Step::Skip => continue,
                Step::End => self.current = None,
                Step::Fatal(e) => {
                    self.current = None;
                    return Some(Err(e));
                }
            }
        }
    }
}

impl Iterator for NotificationReader {
    type Item = Result<Value, ShoeboxError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_record()
    }
}

/// The regular, non-hidden files of `dir`, in file name order.
fn list_archives(dir: &Path) -> Result<Vec<PathBuf>, ShoeboxError> {
    let entries = std::fs::read_dir(dir).map_err(|e| ShoeboxError::io(dir, "cannot list", e))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| ShoeboxError::io(dir, "cannot list", e))?;
        let name = entry.file_name();
        if name.as_encoded_bytes().first() == Some(&b'.') {
            continue;
        }
        let path = entry.path();
        if std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
            files.push((name, path));
        }
    }
    files.sort();
    Ok(files.into_iter().map(|(_, p)| p).collect())
}

/// Opens a file (or standard input), undoing gzip and recognising the format.
fn open_source(path: &Path) -> Result<Source, ShoeboxError> {
    let raw: Box<dyn Read + Send> = if path.as_os_str() == "-" {
        Box::new(std::io::stdin())
    } else {
        Box::new(std::fs::File::open(path).map_err(|e| ShoeboxError::io(path, "cannot open", e))?)
    };
    let (head, raw) =
        peek(raw, GZIP_MAGIC.len()).map_err(|e| ShoeboxError::io(path, "cannot read", e))?;
    let plain: Box<dyn Read + Send> = if head == GZIP_MAGIC {
        Box::new(MultiGzDecoder::new(BufReader::new(raw)))
    } else {
        raw
    };
    let (head, plain) =
        peek(plain, BINARY_MAGIC.len()).map_err(|e| ShoeboxError::io(path, "cannot read", e))?;
    let format = if head == BINARY_MAGIC {
        Format::Binary
    } else {
        Format::Lines
    };
    Ok(Source {
        path: path.to_path_buf(),
        reader: Box::new(BufReader::with_capacity(64 * 1024, plain)),
        format,
        line: 0,
    })
}

/// Reads up to `n` bytes and gives them back along with a reader that still yields them.
fn peek(mut r: Box<dyn Read + Send>, n: usize) -> std::io::Result<(Vec<u8>, Box<dyn Read + Send>)> {
    let mut head = Vec::with_capacity(n);
    (&mut r).take(n as u64).read_to_end(&mut head)?;
    let again = Cursor::new(head.clone()).chain(r);
    Ok((head, Box::new(again)))
}

enum Step {
    Record(Result<Value, ShoeboxError>),
    Skip,
    End,
    Fatal(ShoeboxError),
}

fn read_line(source: &mut Source) -> Step {
    let mut buf = Vec::new();
    match source.reader.read_until(b'\n', &mut buf) {
        Ok(0) => Step::End,
        Ok(_) => {
            source.line += 1;
            if buf.iter().all(u8::is_ascii_whitespace) {
                return Step::Skip;
            }
            Step::Record(decode(&source.path, source.line, &buf))
        }
        Err(e) => Step::Fatal(ShoeboxError::Format {
            path: source.path.clone(),
            reason: format!("after line {}: {e}", source.line),
        }),
    }
}

/// One record of the original `WritingRollManager` format (version 1, native = little
/// endian): preamble `<magic:i32><version:i16>`, header `<metadata_len:i32><raw_len:i32>
/// <0:i32>`, the metadata block (skipped), then `<n:i32><n bytes of JSON>`.
fn read_binary(source: &mut Source) -> Step {
    let fatal = |source: &Source, what: String| {
        Step::Fatal(ShoeboxError::Format {
            path: source.path.clone(),
            reason: format!("record {}: {what}", source.line + 1),
        })
    };
    let mut preamble = [0u8; 6];
    match read_full(&mut source.reader, &mut preamble) {
        Ok(0) => return Step::End,
        Ok(6) => {}
        Ok(_) => return fatal(source, "truncated record".to_string()),
        Err(e) => return fatal(source, e.to_string()),
    }
    if preamble[..4] != BINARY_MAGIC {
        return fatal(
            source,
            "expected the beginning-of-record marker".to_string(),
        );
    }
    let version = i16::from_le_bytes([preamble[4], preamble[5]]);
    if version != 1 {
        return fatal(source, format!("unsupported archive version {version}"));
    }
    let mut header = [0u8; 12];
    match read_full(&mut source.reader, &mut header) {
        Ok(12) => {}
        Ok(_) => return fatal(source, "truncated record".to_string()),
        Err(e) => return fatal(source, e.to_string()),
    }
    let field =
        |i: usize| i32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
    let (meta_len, raw_len, eor) = (field(0), field(4), field(8));
    if eor != 0 {
        return fatal(source, "expected the 0 end-of-record marker".to_string());
    }
    let (Ok(meta_len), Ok(raw_len)) = (usize::try_from(meta_len), usize::try_from(raw_len)) else {
        return fatal(source, "negative block length".to_string());
    };
    if meta_len > MAX_BINARY_BLOCK || !(4..=MAX_BINARY_BLOCK).contains(&raw_len) {
        return fatal(source, "implausible block length".to_string());
    }
    match std::io::copy(
        &mut (&mut source.reader).take(meta_len as u64),
        &mut std::io::sink(),
    ) {
        Ok(n) if n == meta_len as u64 => {}
        Ok(_) => return fatal(source, "truncated record".to_string()),
        Err(e) => return fatal(source, e.to_string()),
    }
    let mut raw = vec![0u8; raw_len];
    match read_full(&mut source.reader, &mut raw) {
        Ok(n) if n == raw_len => {}
        Ok(_) => return fatal(source, "truncated record".to_string()),
        Err(e) => return fatal(source, e.to_string()),
    }
    source.line += 1;
    let n = i32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]);
    let payload = usize::try_from(n)
        .ok()
        .and_then(|n| raw.get(4..4usize.saturating_add(n)));
    match payload {
        Some(p) => Step::Record(decode(&source.path, source.line, p)),
        None => Step::Record(Err(ShoeboxError::Record {
            path: source.path.clone(),
            line: source.line,
            reason: "payload length exceeds its block".to_string(),
        })),
    }
}

/// Reads until `buf` is full or the input ends; the number of bytes read.
fn read_full(r: &mut dyn BufRead, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// One archived record: a notification, or the `{"region", "cell", "notification"}`
/// wrapper of yagi's `wrap_payload_with_region` around one.
fn decode(path: &Path, line: u64, bytes: &[u8]) -> Result<Value, ShoeboxError> {
    let record = |reason: String| ShoeboxError::Record {
        path: path.to_path_buf(),
        line,
        reason,
    };
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| record(format!("invalid JSON: {e}")))?;
    let Value::Object(mut map) = value else {
        return Err(record("not a JSON object".to_string()));
    };
    let wrapped = map.len() == 3
        && map.contains_key("region")
        && map.contains_key("cell")
        && map.get("notification").is_some_and(Value::is_object);
    if wrapped {
        if let Some(inner) = map.remove("notification") {
            return Ok(inner);
        }
    }
    Ok(Value::Object(map))
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn tmp(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("stv3-shoebox-reader-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn binary_record(json: &str) -> Vec<u8> {
        let key = b"k";
        let value = b"vv";
        let mut meta = Vec::new();
        meta.extend(4i32.to_le_bytes()); // 1 pair → 2 strings → 4 * len(metadata)
        meta.extend((key.len() as i32).to_le_bytes());
        meta.extend((value.len() as i32).to_le_bytes());
        meta.extend(key);
        meta.extend(value);
        let mut raw = Vec::new();
        raw.extend((json.len() as i32).to_le_bytes());
        raw.extend(json.as_bytes());
        let mut out = Vec::new();
        out.extend(BINARY_MAGIC);
        out.extend(1i16.to_le_bytes());
        out.extend((meta.len() as i32).to_le_bytes());
        out.extend((raw.len() as i32).to_le_bytes());
        out.extend(0i32.to_le_bytes());
        out.extend(meta);
        out.extend(raw);
        out
    }

    #[test]
    fn reads_the_original_binary_format_gzipped() {
        let dir = tmp("binary");
        let path = dir.join("events.dat.gz");
        let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&binary_record(r#"{"event_type":"a"}"#))
            .unwrap();
        gz.write_all(&binary_record(r#"{"event_type":"b"}"#))
            .unwrap();
        std::fs::write(&path, gz.finish().unwrap()).unwrap();
        let got: Vec<Value> = NotificationReader::open(&path)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[1]["event_type"], "b");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn truncated_binary_is_reported_once() {
        let dir = tmp("truncated");
        let path = dir.join("events.dat");
        let mut bytes = binary_record(r#"{"event_type":"a"}"#);
        let second = binary_record(r#"{"event_type":"b"}"#);
        bytes.extend(&second[..second.len() - 3]);
        std::fs::write(&path, bytes).unwrap();
        let got: Vec<_> = NotificationReader::open(&path).unwrap().collect();
        assert_eq!(got.len(), 2);
        assert!(got[0].is_ok());
        let err = got[1].as_ref().unwrap_err().to_string();
        assert!(
            err.contains("events.dat") && err.contains("truncated"),
            "{err}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn unwraps_region_wrappers_and_refuses_non_objects() {
        let dir = tmp("wrap");
        let path = dir.join("x.json");
        std::fs::write(
            &path,
            "{\"region\":\"r\",\"cell\":\"c\",\"notification\":{\"event_type\":\"a\"}}\n\n[1]\n",
        )
        .unwrap();
        let mut r = NotificationReader::open(&path).unwrap();
        assert_eq!(r.next().unwrap().unwrap()["event_type"], "a");
        let err = r.next().unwrap().unwrap_err().to_string();
        assert!(err.ends_with("line 3: not a JSON object"), "{err}");
        assert_eq!(r.location().map(|l| l.line), Some(3));
        assert!(r.next().is_none());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
