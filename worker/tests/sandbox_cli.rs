//! `stv3 sandbox` (what `./build.sh` runs): within seconds, notifications are stored,
//! streams fire and the usage handler verifies; a restart resumes on the same data.

use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Runs the sandbox for `seconds` and returns its final view.
fn sandbox(data: &std::path::Path, seconds: u64, extra: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_stv3"))
        .current_dir(root())
        .arg("sandbox")
        .arg("--data-dir")
        .arg(data)
        .args(["--seconds", &seconds.to_string(), "--rate", "600"])
        .args(extra)
        .output()
        .expect("run stv3 sandbox");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "sandbox failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout
        .rsplit_once("StackTach.v3 sandbox (stopped)")
        .map(|(_, v)| v.to_string())
        .unwrap_or_else(|| panic!("no final view in:\n{stdout}"));
    last
}

/// The number before `word` on the view's `label` line.
fn number(view: &str, label: &str, word: &str) -> u64 {
    let line = view
        .lines()
        .find(|l| l.starts_with(label))
        .unwrap_or_else(|| panic!("no {label} line in {view}"));
    let words: Vec<&str> = line.split([' ', ',']).filter(|w| !w.is_empty()).collect();
    words
        .windows(2)
        .find(|w| w[1] == word)
        .and_then(|w| w[0].parse().ok())
        .unwrap_or_else(|| panic!("no '{word}' count in {line}"))
}

#[test]
fn sandbox_fires_streams_and_verifies_usage_then_resumes() {
    let data = std::env::temp_dir().join(format!("stv3-sandbox-{}", std::process::id()));
    let view = sandbox(&data, 12, &["--reset"]);
    let stored = number(&view, "notifications", "events");
    assert!(stored > 1000, "stored {stored}: {view}");
    assert!(number(&view, "pipelines", "fired") > 0, "{view}");
    assert!(number(&view, "usage", "verified") > 0, "{view}");
    assert_eq!(number(&view, "usage", "failed"), 0, "{view}");

    // Restart on the same data: the simulation resumes and adds to it.
    let again = sandbox(&data, 4, &[]);
    assert!(
        number(&again, "notifications", "events") > stored,
        "the restart added to the stored data: {again}"
    );
    assert_eq!(number(&again, "notifications", "duplicates"), 0, "{again}");
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn sandbox_through_rabbitmq() {
    let data = std::env::temp_dir().join(format!("stv3-sandbox-amqp-{}", std::process::id()));
    let amqp = std::env::var("STV3_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_string());
    // Outside the data dir, which --reset clears.
    let conf_dir = std::env::temp_dir().join(format!("stv3-sandbox-conf-{}", std::process::id()));
    std::fs::create_dir_all(&conf_dir).expect("dir");
    let yagi = conf_dir.join("yagi.conf");
    // The sandbox's yagi.conf with a queue of this test's own.
    let conf = std::fs::read_to_string(root().join("etc/yagi.conf")).expect("etc/yagi.conf");
    let queue = format!("sandbox.test.{}", std::process::id());
    let conf = conf
        .replace("queues = monitor.info", &format!("queues = {queue}"))
        .replace("[consumer:monitor.info]", &format!("[consumer:{queue}]"))
        .replace(
            "routing_key = monitor.info",
            &format!("routing_key = {queue}"),
        )
        .replace(
            "config_file = winchester.yaml",
            &format!(
                "config_file = {}",
                root().join("etc/winchester.yaml").display()
            ),
        )
        .replace("data/events", &data.join("events").display().to_string())
        .replace("data/output", &data.join("output").display().to_string());
    std::fs::write(&yagi, conf).expect("write yagi.conf");
    let view = sandbox(
        &data,
        15,
        &[
            "--reset",
            "--amqp",
            &amqp,
            "--yagi-config",
            yagi.to_str().expect("utf-8 path"),
        ],
    );
    assert!(number(&view, "notifications", "events") > 500, "{view}");
    assert!(number(&view, "pipelines", "fired") > 0, "{view}");
    let _ = std::fs::remove_dir_all(&data);
    let _ = std::fs::remove_dir_all(&conf_dir);
}
