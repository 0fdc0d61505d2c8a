//! `stv3 replay` over the sample Nova traffic with the sandbox configuration, and the
//! pipeline worker refusing to start on a bad configuration.

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn replay(extra: &[&str]) -> Value {
    let root = root();
    let out = Command::new(env!("CARGO_BIN_EXE_stv3"))
        .arg("replay")
        .arg("--config")
        .arg(root.join("etc/winchester.yaml"))
        .args(["--report", "json"])
        .args(extra)
        .arg(root.join("worker/tests/data/notifications-sample.jsonl"))
        .output()
        .expect("run stv3 replay");
    assert!(
        out.status.success(),
        "stv3 replay failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("report is JSON")
}

/// message_id → timestamp of the input notifications.
fn input_timestamps() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(
        root().join("worker/tests/data/notifications-sample.distilled.jsonl"),
    )
    .expect("sample");
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| {
            Some((
                v["message_id"].as_str()?.to_string(),
                v["timestamp"].as_str()?.to_string(),
            ))
        })
        .collect()
}

fn streams(report: &Value) -> &Vec<Value> {
    report["streams"].as_array().expect("streams array")
}

#[test]
fn replay_sorts_the_sample_into_streams() {
    let report = replay(&[]);
    let streams = streams(&report);
    assert!(!streams.is_empty(), "no streams: {report}");
    let ts = input_timestamps();
    let mut seen = 0;
    for s in streams {
        assert_eq!(s["name"], "test_trigger");
        assert_eq!(s["state"], "active", "nothing fires before expiry: {s}");
        let dt = &s["distinguishing_traits"];
        assert!(dt["instance_id"].is_string(), "{s}");
        assert!(
            dt["timestamp"]["begin"].is_string() && dt["timestamp"]["end"].is_string(),
            "{s}"
        );
        let events: Vec<&str> = s["events"]
            .as_array()
            .expect("events")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(!events.is_empty());
        let times: Vec<&String> = events.iter().filter_map(|m| ts.get(*m)).collect();
        assert_eq!(
            times.len(),
            events.len(),
            "stream holds unknown events: {s}"
        );
        let mut sorted = times.clone();
        sorted.sort();
        assert_eq!(times, sorted, "events in time order: {s}");
        assert_eq!(s["first_event"].as_str(), times.first().map(|t| t.as_str()));
        seen += events.len();
    }
    assert!(seen > 0);
    assert!(report["emitted"].as_array().expect("emitted").is_empty());
}

#[test]
fn replay_with_expire_runs_the_usage_pipeline() {
    let report = replay(&["--expire"]);
    let streams = streams(&report);
    assert!(!streams.is_empty());
    for s in streams {
        assert_eq!(s["state"], "completed", "every stream expired: {s}");
    }
    let emitted = report["emitted"].as_array().expect("emitted");
    assert!(!emitted.is_empty(), "usage handler emitted nothing");
    for e in emitted {
        let t = e["event_type"].as_str().unwrap_or("");
        assert!(
            t.starts_with("compute.instance.exists."),
            "unexpected emission {e}"
        );
        assert!(e["message_id"].is_string());
    }
    // A stream without a .exists gets the original's U0 failure.
    assert!(emitted.iter().any(|e| e["error_code"] == "U0"));
}

#[test]
fn replay_is_repeatable() {
    let a = replay(&["--expire"]);
    let b = replay(&["--expire"]);
    assert_eq!(a["streams"], b["streams"]);
    // .verified/.failed ids are uuid5 of the .exists: stable across runs.
    let stable = |r: &Value| -> Vec<String> {
        r["emitted"]
            .as_array()
            .map(|v| {
                v.iter()
                    .filter(|e| e["original_message_id"].is_string())
                    .filter_map(|e| e["message_id"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(stable(&a), stable(&b));
}

#[test]
fn pipeline_worker_refuses_a_bad_trigger_file() {
    let cfg = root().join("worker/tests/data/config/bad/winchester-bad-timex.yaml");
    let out = Command::new(env!("CARGO_BIN_EXE_pipeline-worker"))
        .arg("--config")
        .arg(&cfg)
        .args(["--metrics-listen", "127.0.0.1:0"])
        .output()
        .expect("run pipeline-worker");
    assert!(!out.status.success(), "started with a bad trigger file");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("triggers-bad-timex.yaml"), "{stderr}");
    assert!(stderr.contains("usage_trigger"), "{stderr}");
}

#[test]
fn pipeline_worker_serves_probes_and_stops_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("stv3-pw-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let etc = root().join("etc");
    let cfg = dir.join("winchester.yaml");
    std::fs::write(
        &cfg,
        format!(
            "config_path: {}\ndatabase:\n  url: 'sqlite://{}/w.db'\ndistiller_config: event_definitions.yaml\n\
             trigger_definitions: triggers.yaml\npipeline_config: pipelines.yaml\npipeline_worker_delay: 1\n\
             pipeline_handlers:\n  logger: winchester.pipeline_handler:LoggingHandler\n\
             \x20 usage: winchester.pipeline_handler:UsageHandler\n\
             \x20 notabene: winchester.pipeline_handler:NotabeneHandler\n",
            etc.display(),
            dir.display()
        ),
    )
    .expect("write config");
    let db = Command::new(env!("CARGO_BIN_EXE_stv3"))
        .args(["db", "upgrade", "--config"])
        .arg(&cfg)
        .output()
        .expect("db upgrade");
    assert!(
        db.status.success(),
        "{}",
        String::from_utf8_lossy(&db.stderr)
    );

    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        l.local_addr().expect("addr").port()
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_pipeline-worker"))
        .arg("--config")
        .arg(&cfg)
        .args(["--metrics-listen", &format!("127.0.0.1:{port}")])
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start pipeline-worker");
    let mut ready = false;
    for _ in 0..100 {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read, Write};
            let _ = s.write_all(b"GET /readyz HTTP/1.0\r\n\r\n");
            let mut body = String::new();
            let _ = s.read_to_string(&mut body);
            if body.starts_with("HTTP/1.0 200") || body.starts_with("HTTP/1.1 200") {
                ready = true;
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(ready, "pipeline-worker never became ready");
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(kill.success());
    let mut status = None;
    for _ in 0..100 {
        if let Some(s) = child.try_wait().expect("wait") {
            status = Some(s);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = std::fs::remove_dir_all(&dir);
    let status = status.expect("pipeline-worker did not stop on SIGTERM");
    assert!(status.success(), "exit status {status}");
}
