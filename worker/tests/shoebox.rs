//! Shoebox end to end: rolling archives written by `Archiver`, read back by
//! `read_notifications`, crash recovery, and `stv3 replay` over an archive directory.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use worker::shoebox::{read_notifications, Archiver, ShoeboxError, ShoeboxSettings};

const TEMPLATE: &str = "%Y%m%d-[[TIMESTAMP]]-stv3-[[CRC]].json";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// A fresh directory under the target directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("stv3-shoebox-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }

    fn settings(&self) -> ShoeboxSettings {
        let section = [
            ("working_directory", self.0.join("events")),
            ("destination_folder", self.0.join("output")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.display().to_string()))
        .chain([
            ("filename_template".to_string(), TEMPLATE.to_string()),
            (
                "roll_manager".to_string(),
                "shoebox.roll_manager:WritingJSONRollManager".to_string(),
            ),
            ("roll_size_mb".to_string(), "20".to_string()),
        ])
        .collect();
        ShoeboxSettings::from_section(&section).expect("settings")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn notification(i: usize) -> Value {
    json!({
        "event_type": "compute.instance.update",
        "message_id": format!("msg-{i:05}"),
        "timestamp": "2014-05-13 07:08:09.123456",
        "payload": {"instance_id": format!("ins-{}", i % 7), "state": "active", "pad": "x".repeat(i % 50)},
    })
}

fn read_all(path: &Path) -> Vec<Value> {
    read_notifications(path)
        .expect("open archive")
        .collect::<Result<Vec<_>, _>>()
        .expect("every record reads")
}

#[test]
fn rolls_compresses_names_and_reads_back_in_order() {
    let scratch = Scratch::new("roll");
    let mut settings = scratch.settings();
    settings.roll_size_bytes = Some(2_000);
    let dest = settings.destination_folder.clone();
    let mut archiver = Archiver::open(settings).expect("open");
    let written: Vec<Value> = (0..300).map(notification).collect();
    for (i, n) in written.iter().enumerate() {
        archiver.append(n).expect("append");
        if i % 50 == 0 {
            archiver.flush().expect("flush");
        }
    }
    archiver.close().expect("close");

    let files = names(&dest);
    assert!(files.len() >= 10, "expected many rolled files: {files:?}");
    for name in &files {
        let (date, rest) = name.split_once('-').expect("date-");
        assert_eq!(date.len(), 8, "{name}");
        assert!(date.chars().all(|c| c.is_ascii_digit()), "{name}");
        let (timestamp, rest) = rest.split_once("-stv3-").expect("-stv3-");
        let (secs, micros) = timestamp.split_once('.').expect("decimal timestamp");
        assert!(secs.parse::<u64>().is_ok() && micros.len() == 6, "{name}");
        let crc = rest.strip_suffix(".json.gz").expect(".json.gz suffix");
        let bytes = std::fs::read(dest.join(name)).expect("read");
        assert_eq!(&bytes[..2], &[0x1f, 0x8b], "{name} is gzip");
        let mut content = Vec::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_end(&mut content)
            .expect("gunzip");
        let hex: String = Sha256::digest(&content)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(crc, hex, "[[CRC]] is the SHA-256 of the content");
        assert!(content.ends_with(b"\n"));
    }
    assert_eq!(read_all(&dest), written, "all read back, in order");
    // One file read alone.
    assert!(!read_all(&dest.join(&files[0])).is_empty());
}

#[test]
fn uncompressed_files_are_plain_json_lines() {
    let scratch = Scratch::new("plain");
    let mut settings = scratch.settings();
    settings.compress = false;
    settings.roll_size_bytes = Some(500);
    let dest = settings.destination_folder.clone();
    let mut archiver = Archiver::open(settings).expect("open");
    for i in 0..20 {
        archiver.append(&notification(i)).expect("append");
    }
    archiver.close().expect("close");
    let files = names(&dest);
    assert!(files.len() > 1);
    for name in &files {
        assert!(
            name.ends_with(".json") && !name.contains("[[CRC]]"),
            "{name}"
        );
        let text = std::fs::read_to_string(dest.join(name)).expect("utf-8");
        for line in text.lines() {
            serde_json::from_str::<Value>(line).expect("one document per line");
        }
    }
    assert_eq!(read_all(&dest).len(), 20);
}

#[test]
fn a_crashed_file_is_finished_on_open() {
    let scratch = Scratch::new("crash");
    let settings = scratch.settings();
    let (work, dest) = (
        settings.working_directory.clone(),
        settings.destination_folder.clone(),
    );
    let mut archiver = Archiver::open(settings.clone()).expect("open");
    for i in 0..5 {
        archiver.append(&notification(i)).expect("append");
    }
    archiver.flush().expect("flush");
    let active = archiver
        .active_file()
        .expect("a file is open")
        .to_path_buf();
    drop(archiver); // a crash: no close
    assert!(active.exists());
    assert!(names(&dest).is_empty());
    assert_eq!(names(&work).len(), 1);

    let archiver = Archiver::open(settings).expect("reopen");
    assert!(names(&work).is_empty(), "the working directory is emptied");
    let files = names(&dest);
    assert_eq!(files.len(), 1);
    assert!(files[0].ends_with(".json.gz") && !files[0].contains("[[CRC]]"));
    archiver.close().expect("close");
    let got = read_all(&dest);
    assert_eq!(got, (0..5).map(notification).collect::<Vec<_>>());
}

#[test]
fn bad_lines_are_reported_and_reading_goes_on() {
    let scratch = Scratch::new("bad");
    let dir = scratch.0.join("archives");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(
        dir.join("a.json"),
        "{\"event_type\":\"a\"}\nnot json\n\n{\"event_type\":\"b\"}\n",
    )
    .expect("write");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, b"{\"event_type\":\"c\"}\n{\"event_ty").expect("gz");
    // Named without .gz: the format is told by its magic bytes.
    std::fs::write(dir.join("b.json"), gz.finish().expect("gz")).expect("write");
    std::fs::write(dir.join(".hidden.partial"), "garbage").expect("write");

    let items: Vec<Result<Value, ShoeboxError>> = read_notifications(&dir).expect("open").collect();
    let ok: Vec<&str> = items
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .filter_map(|v| v["event_type"].as_str())
        .collect();
    assert_eq!(ok, ["a", "b", "c"]);
    let errors: Vec<String> = items
        .iter()
        .filter_map(|r| r.as_ref().err())
        .map(ToString::to_string)
        .collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].contains("a.json: line 2: invalid JSON"),
        "{}",
        errors[0]
    );
    assert!(
        errors[1].contains("b.json: line 2: invalid JSON"),
        "{}",
        errors[1]
    );

    let missing = read_notifications(&dir.join("nope")).expect_err("missing file");
    assert!(missing.to_string().contains("nope"), "{missing}");
}

fn replay_streams(input: &Path) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_stv3"))
        .arg("replay")
        .arg("--config")
        .arg(root().join("etc/winchester.yaml"))
        .args(["--report", "json"])
        .arg(input)
        .output()
        .expect("run stv3 replay");
    assert!(
        out.status.success(),
        "stv3 replay failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("report is JSON");
    report["streams"].clone()
}

#[test]
fn replay_reads_an_archive_directory_like_the_json_lines_file() {
    let sample = root().join("worker/tests/data/notifications-sample.jsonl");
    let text = std::fs::read_to_string(&sample).expect("sample");
    let scratch = Scratch::new("replay");
    let mut settings = scratch.settings();
    settings.roll_size_bytes = Some(16 * 1024);
    let dest = settings.destination_folder.clone();
    let mut archiver = Archiver::open(settings).expect("open");
    let mut count = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).expect("sample line");
        archiver.append(&v).expect("append");
        count += 1;
    }
    archiver.close().expect("close");
    assert!(names(&dest).len() > 1, "the sample spans several archives");
    assert_eq!(read_all(&dest).len(), count);

    let want = replay_streams(&sample);
    assert!(want.as_array().is_some_and(|s| !s.is_empty()), "{want}");
    assert_eq!(replay_streams(&dest), want, "directory of archives");
    let first = dest.join(&names(&dest)[0]);
    assert!(replay_streams(&first).is_array(), "a single archive file");
}
