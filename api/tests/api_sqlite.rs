//! The API's tests (tests/common) over SQLite, each on a fresh database file, plus
//! what does not depend on the backend: archives, the OpenAPI document, metrics and
//! probes, and the binary itself.

mod common;

use common::{items, serve, Server};
use std::path::PathBuf;
use std::sync::Arc;
use worker::store::{self, Store};

/// Removes the test's folder when dropped.
pub struct TempDir(pub PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn temp_dir(tag: &str) -> TempDir {
    let dir =
        std::env::temp_dir().join(format!("stv3-api-{tag}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

async fn fixture() -> (Arc<dyn Store>, TempDir) {
    let dir = temp_dir("sqlite");
    let url = format!("sqlite://{}", dir.0.join("api.db").display());
    let store = store::open(&url).await.expect("open sqlite");
    store.migrate().await.expect("migrate sqlite");
    (store, dir)
}

api_conformance!(fixture);

#[tokio::test]
async fn archives_are_listed_and_served_without_escaping_the_folder() {
    let (store, _db) = fixture().await;
    let root = temp_dir("archives");
    let dir = root.0.join("archive");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(
        dir.join("events_2015_02_27-stv3-1.json.gz"),
        b"\x1f\x8bgzip bytes",
    )
    .unwrap();
    std::fs::write(dir.join("events_2015_02_28-stv3-2.json"), b"{\"a\":1}\n").unwrap();
    std::fs::write(dir.join(".events_2015_03_01.json.partial"), b"in progress").unwrap();
    std::fs::write(root.0.join("secret.txt"), b"outside").unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(root.0.join("secret.txt"), dir.join("link.json")).unwrap();

    // No token configured: archives are not served at all.
    let open = serve(
        store.clone(),
        api::ApiConfig {
            archive_dir: Some(dir.clone()),
            ..api::ApiConfig::default()
        },
    )
    .await;
    for path in ["/v2/archives", "/v2/archives/events_2015_02_28-stv3-2.json"] {
        let (st, body) = open.get(path).await;
        assert_eq!(st, 403, "{path}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains("token"),
            "{body}"
        );
    }
    // A token configured: archives need it, even though reads are not protected.
    let mut config = common::config_with_token(Some(common::TOKEN));
    config.archive_dir = Some(dir.clone());
    let mut s = serve(store, config).await;
    let (st, _) = s.get("/v2/archives").await;
    assert_eq!(st, 401);
    assert_eq!(s.get("/v1/streams").await.0, 200, "other reads stay open");
    s.client = common::bearer_client(common::TOKEN);
    let list = s.ok("/v2/archives").await;
    let names: Vec<&str> = items(&list)
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec![
            "events_2015_02_27-stv3-1.json.gz",
            "events_2015_02_28-stv3-2.json"
        ]
    );
    let first = &items(&list)[0];
    assert_eq!(first["filename"], first["id"]);
    assert_eq!(first["size"], 12);
    assert_eq!(first["modified"]["__type__"], "datetime");

    let r = s
        .client
        .get(s.url("/v2/archives/events_2015_02_28-stv3-2.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"{\"a\":1}\n");
    let r = s
        .client
        .get(s.url("/v2/archives/events_2015_02_27-stv3-1.json.gz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "application/gzip");

    for bad in [
        "..%2Fsecret.txt",
        "%2E%2E%2Fsecret.txt",
        "..%5Csecret.txt",
        "link.json",
        "sub",
        ".events_2015_03_01.json.partial",
        "..",
        "%2Fetc%2Fpasswd",
        "nope.json",
    ] {
        let (st, body) = s.get(&format!("/v2/archives/{bad}")).await;
        assert_eq!(st, 404, "{bad}: {body}");
        assert!(body["message"].is_string());
    }
    // raw traversal in the path never reaches the handler's folder either
    let (st, _) = s.get("/v2/archives/../../secret.txt").await;
    assert_eq!(st, 404);
}

#[tokio::test]
async fn openapi_metrics_and_probes() {
    let (store, _db) = fixture().await;
    let s: Server = serve(store, api::ApiConfig::default()).await;
    let doc = s.ok("/openapi.json").await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/v1/streams",
        "/v1/streams/count",
        "/v1/streams/{stream_id}",
        "/v1/events",
        "/v1/events/count",
        "/v1/events/{message_id}",
        "/v1/event_types",
        "/v1/event_types/{event_type}/traits",
        "/v2/streams",
        "/v2/archives",
        "/v2/archives/{archive_id}",
    ] {
        assert!(paths.contains_key(p), "{p} in the OpenAPI document");
    }
    let stream_item = &paths["/v1/streams/{stream_id}"];
    for m in ["get", "put", "delete", "post"] {
        assert!(stream_item.get(m).is_some(), "{m}");
    }
    assert!(stream_item["delete"]["security"].is_array());
    let mut op_ids = std::collections::BTreeSet::new();
    for item in paths.values() {
        for op in item.as_object().unwrap().values() {
            if let Some(id) = op.get("operationId").and_then(|v| v.as_str()) {
                assert!(op_ids.insert(id.to_string()), "duplicate operationId {id}");
            }
        }
    }
    // every reference resolves
    fn refs(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    match (k.as_str(), v) {
                        ("$ref", serde_json::Value::String(r)) => out.push(r.clone()),
                        _ => refs(v, out),
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut all_refs = Vec::new();
    refs(&doc, &mut all_refs);
    assert!(!all_refs.is_empty());
    for r in all_refs {
        let name = r.strip_prefix("#/components/schemas/").expect("schema ref");
        assert!(
            doc["components"]["schemas"].get(name).is_some(),
            "unresolved {r}"
        );
    }
    let traits_param = doc["paths"]["/v1/events"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "traits")
        .expect("traits parameter");
    assert!(traits_param["description"].as_str().unwrap().contains(">="));

    s.ok("/v1/streams").await;
    let _ = s.get("/v1/streams?limit=abc").await;
    let metrics = s
        .client
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            "stv3_api_requests_total{method=\"GET\",route=\"/v1/streams\",status=\"200\"} 1"
        ),
        "{metrics}"
    );
    assert!(metrics.contains("status=\"400\""), "{metrics}");
    assert!(metrics.contains("stv3_api_request_duration_seconds_bucket"));
    for probe in ["/healthz", "/readyz"] {
        let r = s.client.get(s.url(probe)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "{probe}");
    }
    // unknown routes and methods: JSON too
    let (st, body) = s.get("/v3/streams").await;
    assert_eq!(st, 404);
    assert!(body["message"].is_string());
    let (st, body) = s.send(reqwest::Method::PATCH, "/v1/streams/1", &[]).await;
    assert_eq!(st, 405, "{body}");
}

#[tokio::test]
async fn not_ready_until_the_store_is_set() {
    let state = api::AppState::new(api::ApiConfig::default());
    let app = api::app(
        state.clone(),
        prometheus_client::registry::Registry::default(),
    );
    let shutdown = tokio_util::sync::CancellationToken::new();
    let (addr, task) = api::spawn("127.0.0.1:0".parse().unwrap(), app, shutdown.clone())
        .await
        .unwrap();
    worker::install_crypto_provider();
    let client = reqwest::Client::new();
    let get = |p: &'static str| {
        let client = client.clone();
        async move {
            client
                .get(format!("http://{addr}{p}"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(get("/readyz").await, 503);
    assert_eq!(get("/healthz").await, 200);
    assert_eq!(get("/v1/streams").await, 503);
    let (store, _db) = fixture().await;
    state.set_store(store);
    assert_eq!(get("/readyz").await, 200);
    assert_eq!(get("/v1/streams").await, 200);
    shutdown.cancel();
    task.await.unwrap().unwrap();
}
