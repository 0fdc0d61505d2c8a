//! Shared by the API's integration tests: a store seeded through the real engine
//! (the sandbox's configuration in `etc/` distilling `etc/sample-notifications.jsonl`),
//! the server running in-process on a random loopback port, and an HTTP client.
//!
//! Every test is written once, over any store (`api_conformance!`), and run over
//! SQLite and MariaDB.

#![allow(dead_code)]

use chrono::{DateTime, TimeZone, Utc};
use prometheus_client::registry::Registry;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use worker::store::{EventQuery, Outcome, ReadyKind, Store, StreamQuery, StreamState};
use worker::winchester::clock::{Clock, FollowingClock};
use worker::winchester::config::load_config;
use worker::winchester::debug::DebugManager;
use worker::winchester::ingest::TriggerManager;
use worker::winchester::triggers::TriggerSet;

pub const TOKEN: &str = "test-token-0123456789";

/// Expands to one `#[tokio::test]` per API test; `$fixture` is an async fn returning
/// `(Arc<dyn Store>, guard)` with the store migrated and empty.
#[macro_export]
macro_rules! api_conformance {
    ($fixture:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let (store, _guard) = $fixture().await;
                common::$name(store).await;
            }
        )*
    };
    ($fixture:path) => {
        api_conformance!($fixture;
            streams_list_count_and_show,
            stream_filters,
            events_list_count_and_show,
            event_trait_filters,
            pagination_both_ways,
            reset_and_delete_need_the_token,
            mutations_refused_without_a_configured_token,
            bad_input_is_a_json_4xx_and_harmless,
            event_types_and_traits,
            versions_serve_the_same_calls,
        );
    };
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// What [`seed`] stored.
pub struct Seeded {
    pub events: u64,
    pub streams: u64,
    /// A stream moved to error, and one to expire_error.
    pub error_stream: i64,
    pub expire_error_stream: i64,
}

/// Distils and stores the sample notifications through the engine (trigger manager
/// with the sandbox's definitions and triggers, on a clock following the
/// notifications), then fails two streams' pipelines so there is something to reset.
pub async fn seed(store: &Arc<dyn Store>) -> Seeded {
    let config = load_config(&repo_root().join("etc/winchester.yaml")).expect("etc config loads");
    let debug = Arc::new(DebugManager::new(
        config
            .triggers
            .iter()
            .map(|t| (t.name.clone(), t.debug_level)),
    ));
    let start = Utc.with_ymd_and_hms(2015, 2, 27, 0, 0, 0).unwrap();
    let following = Arc::new(FollowingClock::new(start));
    let clock: Arc<dyn Clock> = following.clone();
    let manager = TriggerManager::new(
        store.clone(),
        config.distiller.clone().map(Arc::new),
        Arc::new(TriggerSet::new(config.triggers.clone(), debug)),
        clock,
    )
    .with_time_sync(following);
    let text = std::fs::read_to_string(repo_root().join("etc/sample-notifications.jsonl"))
        .expect("sample notifications");
    let notifications: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let outcome = manager
        .add_notifications(&notifications)
        .await
        .expect("ingest");
    assert!(outcome.report.stored > 30, "{:?}", outcome.report);
    // Expire every stream's collection far in the future, and fail two pipelines.
    let later = Utc.with_ymd_and_hms(2016, 1, 1, 0, 0, 0).unwrap();
    let failed = fail_streams(store, later, &[Outcome::Error, Outcome::ExpireError]).await;
    Seeded {
        events: store.count_events(&EventQuery::default()).await.unwrap(),
        streams: store.count_streams(&StreamQuery::default()).await.unwrap(),
        error_stream: failed[0],
        expire_error_stream: failed[1],
    }
}

/// Claims one ready-to-expire stream at `at` per outcome and records that outcome
/// for it (a pipeline that failed); returns their ids, in the outcomes' order.
async fn fail_streams(store: &Arc<dyn Store>, at: DateTime<Utc>, outcomes: &[Outcome]) -> Vec<i64> {
    let claimed = store
        .claim_ready(ReadyKind::Expire, at, outcomes.len() as u32, at)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), outcomes.len(), "open streams to fail");
    for (stream, outcome) in claimed.iter().zip(outcomes) {
        assert!(store
            .finish_stream(stream.id, stream.state_serial_no, *outcome)
            .await
            .unwrap());
    }
    claimed.iter().map(|s| s.id).collect()
}

/// What [`replayed`] put in the store.
pub struct Replayed {
    pub notifications: u64,
    pub stored: u64,
    /// A stream whose pipeline failed (state error), to reset.
    pub error_stream: i64,
}

/// Fills the store as `stv3 replay` does (the same function, over the sandbox's
/// definitions): a seeded notigen region of `instances` instances over the
/// `hours` before `now`, each notification stored and then the pipeline worker run
/// until idle, so streams fire and the usage pipeline audits as they would live.
/// Then one active stream's pipeline fails, so there is something to reset.
pub async fn replayed(
    store: &Arc<dyn Store>,
    now: DateTime<Utc>,
    instances: usize,
    hours: i64,
) -> Replayed {
    use worker::notigen::{Generator, GeneratorOptions};
    use worker::winchester::replay::{replay, ReplayOptions};
    let config = load_config(&repo_root().join("etc/winchester.yaml")).expect("etc config loads");
    let generator = Generator::new(GeneratorOptions {
        seed: 16,
        instances,
        tenants: 4,
        start: now - chrono::Duration::hours(hours),
        end: Some(now),
        operations_per_instance_per_day: 6.0,
        ..GeneratorOptions::default()
    })
    .expect("notigen options");
    let outcome = replay(
        &config,
        store.clone(),
        generator.enumerate().map(|(i, n)| (i + 1, n)),
        ReplayOptions::default(),
    )
    .await
    .expect("replay");
    assert!(outcome.stored > 100, "the replay stored {}", outcome.stored);
    let far = now + chrono::Duration::days(30);
    let failed = fail_streams(store, far, &[Outcome::Error]).await;
    Replayed {
        notifications: outcome.notifications,
        stored: outcome.stored,
        error_stream: failed[0],
    }
}

/// No triggers: events are stored and join no stream.
pub struct NoStreams;

impl worker::store::StreamRules for NoStreams {
    fn route(&self, _event: &worker::event::Event) -> Vec<worker::store::Route> {
        Vec::new()
    }
    fn update(
        &self,
        _trigger_name: &str,
        _stream: &mut worker::store::StreamBookkeeping,
        _appended: &[(DateTime<Utc>, &[bool])],
        _now: DateTime<Utc>,
    ) {
    }
}

/// Usage audit outcomes as the usage handler writes them, relative to `now`: failures
/// U2 ×2 and U0 today, U2 yesterday, U5 forty days ago; one verification today.
/// Instances `inst-N`, streams `40+N`.
pub async fn add_usage_outcomes(store: &Arc<dyn Store>, now: DateTime<Utc>) {
    use worker::event::{Event, TraitValue};
    let event = |n: u32, kind: &str, code: Option<&str>, ago: i64| {
        let mut traits = BTreeMap::new();
        traits.insert(
            "instance_id".to_string(),
            TraitValue::Text(format!("inst-{n}")),
        );
        traits.insert("stream_id".to_string(), TraitValue::Int(40 + n as i64));
        if let Some(c) = code {
            traits.insert("error_code".to_string(), TraitValue::Text(c.into()));
            traits.insert(
                "error".to_string(),
                TraitValue::Text(format!("{c} happened")),
            );
        }
        Event {
            event_type: format!("compute.instance.exists.{kind}"),
            message_id: format!("usage-{n}"),
            timestamp: now - chrono::Duration::days(ago),
            traits,
        }
    };
    let events = vec![
        event(1, "failed", Some("U2"), 0),
        event(2, "failed", Some("U2"), 0),
        event(3, "failed", Some("U0"), 0),
        event(4, "failed", Some("U2"), 1),
        event(5, "verified", None, 0),
        event(6, "failed", Some("U5"), 40),
    ];
    store
        .ingest(&events, &NoStreams, now)
        .await
        .expect("usage outcomes stored");
}

/// The API served in-process on a random loopback port; stopped when dropped.
pub struct Server {
    pub base: String,
    pub client: reqwest::Client,
    shutdown: CancellationToken,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub async fn serve(store: Arc<dyn Store>, config: api::ApiConfig) -> Server {
    worker::install_crypto_provider();
    let state = api::AppState::with_store(config, store);
    let app = api::app(state, Registry::default());
    let shutdown = CancellationToken::new();
    let (addr, _task) = api::spawn("127.0.0.1:0".parse().unwrap(), app, shutdown.clone())
        .await
        .expect("bind a loopback port");
    Server {
        base: format!("http://{addr}"),
        client: reqwest::Client::new(),
        shutdown,
    }
}

/// [`serve`], with the collectors of `config` sampled until the server stops.
pub async fn serve_sampling(store: Arc<dyn Store>, config: api::ApiConfig) -> Server {
    worker::install_crypto_provider();
    let state = api::AppState::with_store(config, store);
    let shutdown = CancellationToken::new();
    state.collectors().spawn(shutdown.clone());
    let app = api::app(state, Registry::default());
    let (addr, _task) = api::spawn("127.0.0.1:0".parse().unwrap(), app, shutdown.clone())
        .await
        .expect("bind a loopback port");
    Server {
        base: format!("http://{addr}"),
        client: reqwest::Client::new(),
        shutdown,
    }
}

/// An HTTP client that sends `token` as a bearer token with every request.
pub fn bearer_client(token: &str) -> reqwest::Client {
    worker::install_crypto_provider();
    let mut headers = reqwest::header::HeaderMap::new();
    let value =
        reqwest::header::HeaderValue::from_str(&format!("Bearer {token}")).expect("a header value");
    headers.insert(reqwest::header::AUTHORIZATION, value);
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("client")
}

pub fn config_with_token(token: Option<&str>) -> api::ApiConfig {
    api::ApiConfig {
        auth: api::Auth::new(token, false).unwrap(),
        ..api::ApiConfig::default()
    }
}

/// Percent-encodes a query value.
pub fn enc(v: &str) -> String {
    form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// GET, returning the status and the JSON body (every answer is JSON).
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self.client.get(self.url(path)).send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("GET {path}: {status}: not JSON ({e}): {text}"));
        (status, body)
    }

    /// GET that must succeed.
    pub async fn ok(&self, path: &str) -> Value {
        let (status, body) = self.get(path).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let mut req = self.client.request(method.clone(), self.url(path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{method} {path}: {status}: not JSON ({e}): {text}"));
        (status, body)
    }

    pub async fn count(&self, path: &str) -> u64 {
        let body = self.ok(path).await;
        let arr = body.as_array().expect("count is a list");
        assert_eq!(arr.len(), 1, "{body}");
        arr[0]["count"].as_u64().expect("count")
    }
}

pub fn items(v: &Value) -> &Vec<Value> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected a list: {v}"))
}

pub fn ids(v: &Value) -> Vec<i64> {
    items(v).iter().map(|s| s["id"].as_i64().unwrap()).collect()
}

pub fn message_ids(v: &Value) -> Vec<String> {
    items(v)
        .iter()
        .map(|e| e["message_id"].as_str().unwrap().to_string())
        .collect()
}

/// Checks a `{"__type__": "datetime", "datetime": …}` hint and returns the instant.
pub fn hinted_datetime(v: &Value) -> DateTime<Utc> {
    assert_eq!(v["__type__"], "datetime", "{v}");
    let s = v["datetime"].as_str().expect("datetime string");
    // Python's isoformat of a naive datetime: no offset, 0 or 6 fraction digits.
    assert!(!s.ends_with('Z') && !s.contains('+'), "{s}");
    assert!(s.len() == 19 || s.len() == 26, "{s}");
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .unwrap_or_else(|e| panic!("{s}: {e}"))
        .and_utc()
}

// --- the tests ------------------------------------------------------------------

pub async fn streams_list_count_and_show(store: Arc<dyn Store>) {
    let seeded = seed(&store).await;
    let s = serve(store.clone(), config_with_token(None)).await;

    let all = s.ok("/v1/streams").await;
    assert_eq!(items(&all).len() as u64, seeded.streams);
    assert_eq!(s.count("/v1/streams/count").await, seeded.streams);
    assert_eq!(s.count("/v1/streams/COUNT").await, seeded.streams);
    // newest first, marks in hex
    let list = ids(&all);
    let mut sorted = list.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(list, sorted);
    for st in items(&all) {
        let id = st["id"].as_i64().unwrap();
        assert_eq!(st["_mark"], format!("{id:x}"));
        assert_eq!(st["name"], "test_trigger");
        assert!(StreamState::parse(st["state"].as_str().unwrap()).is_some());
        let first = hinted_datetime(&st["first_event"]);
        let last = hinted_datetime(&st["last_event"]);
        assert!(first <= last);
        assert!(st["fire_timestamp"].is_null() || st["fire_timestamp"]["__type__"] == "datetime");
        hinted_datetime(&st["expire_timestamp"]);
        let dt = &st["distinguishing_traits"];
        assert!(dt["instance_id"].is_string(), "{st}");
        assert_eq!(dt["timestamp"]["__type__"], "timex.TimeRange", "{st}");
        assert!(st.get("events").is_none());
    }

    // one stream: a list of one, with events on details (every spelling klugman and
    // the docs use)
    let id = seeded.error_stream;
    let one = s.ok(&format!("/v1/streams/{id}")).await;
    assert_eq!(ids(&one), vec![id]);
    assert_eq!(items(&one)[0]["state"], "error");
    let stored = store.stream_events(id).await.unwrap();
    for flag in ["True", "true", "1"] {
        let d = s.ok(&format!("/v1/streams/{id}?details={flag}")).await;
        let events = items(&items(&d)[0]["events"]).clone();
        assert_eq!(events.len(), stored.len(), "details={flag}");
        let got: Vec<&str> = events
            .iter()
            .map(|e| e["message_id"].as_str().unwrap())
            .collect();
        let want: Vec<&str> = stored.iter().map(|e| e.event.message_id.as_str()).collect();
        assert_eq!(got, want, "events in time order");
        for e in &events {
            hinted_datetime(&e["timestamp"]);
            assert!(e.get("_mark").is_none());
        }
    }
    let d = s.ok(&format!("/v1/streams/{id}?details=False")).await;
    assert!(items(&d)[0].get("events").is_none());

    // a listing with details: every stream carries its own events
    let all = s.ok("/v1/streams?details=True").await;
    for st in items(&all) {
        let sid = st["id"].as_i64().unwrap();
        let want = store.stream_events(sid).await.unwrap();
        assert_eq!(items(&st["events"]).len(), want.len(), "stream {sid}");
    }

    let (status, body) = s.get("/v1/streams/999999").await;
    assert_eq!(status, 404, "{body}");
    assert!(body["message"].as_str().unwrap().contains("999999"));
}

pub async fn stream_filters(store: Arc<dyn Store>) {
    let seeded = seed(&store).await;
    let s = serve(store.clone(), config_with_token(None)).await;

    // states
    let err = s.ok("/v1/streams?state=error").await;
    assert_eq!(ids(&err), vec![seeded.error_stream]);
    let err = s.ok("/v1/streams?state=ERROR").await;
    assert_eq!(ids(&err), vec![seeded.error_stream]);
    assert_eq!(s.count("/v1/streams/count?state=expire_error").await, 1);
    let active = s.count("/v1/streams/count?state=active").await;
    assert_eq!(active + 2, seeded.streams);

    // trigger name, both spellings
    for p in ["trigger_name", "name"] {
        assert_eq!(
            s.count(&format!("/v1/streams/count?{p}=test_trigger"))
                .await,
            seeded.streams
        );
        assert_eq!(s.count(&format!("/v1/streams/count?{p}=nope")).await, 0);
    }

    // distinguishing traits: text, and a datetime inside the day range
    let one = s.ok(&format!("/v1/streams/{}", seeded.error_stream)).await;
    let inst = items(&one)[0]["distinguishing_traits"]["instance_id"]
        .as_str()
        .unwrap()
        .to_string();
    let by_inst = store
        .find_streams(&StreamQuery::default())
        .await
        .unwrap()
        .into_iter()
        .filter(|st| {
            matches!(st.distinguishing_traits.get("instance_id"),
                Some(worker::store::DistValue::Text(t)) if *t == inst)
        })
        .count() as u64;
    assert!(by_inst >= 1);
    let q = enc(&format!("instance_id:{inst}"));
    assert_eq!(
        s.count(&format!("/v1/streams/count?distinguishing_traits={q}"))
            .await,
        by_inst
    );
    // the day range holding an instant
    let noon = Utc.with_ymd_and_hms(2015, 2, 27, 12, 0, 0).unwrap();
    let on_day = store
        .find_streams(&StreamQuery::default())
        .await
        .unwrap()
        .into_iter()
        .filter(|st| {
            matches!(st.distinguishing_traits.get("instance_id"),
                Some(worker::store::DistValue::Text(t)) if *t == inst)
                && matches!(st.distinguishing_traits.get("timestamp"),
                    Some(worker::store::DistValue::Range(r)) if r.begin <= noon && noon < r.end)
        })
        .count() as u64;
    assert!(on_day >= 1);
    let q = enc(&format!("instance_id:{inst};timestamp:2015-02-27T12:00:00"));
    assert_eq!(
        s.count(&format!("/v1/streams/count?distinguishing_traits={q}"))
            .await,
        on_day
    );
    // klugman joins traits with commas
    let q = enc(&format!("instance_id:{inst},timestamp:2015-02-27 12:00:00"));
    assert_eq!(
        s.count(&format!("/v1/streams/count?distinguishing_traits={q}"))
            .await,
        on_day
    );
    let q = enc(&format!("instance_id:{inst};timestamp:2015-03-27T12:00:00"));
    assert_eq!(
        s.count(&format!("/v1/streams/count?distinguishing_traits={q}"))
            .await,
        0
    );
    let q = enc("instance_id:no-such-instance");
    assert_eq!(
        s.count(&format!("/v1/streams/count?distinguishing_traits={q}"))
            .await,
        0
    );

    // older_than (klugman's --from) / younger_than against first/last event
    let all = store.find_streams(&StreamQuery::default()).await.unwrap();
    let cut = Utc.with_ymd_and_hms(2015, 2, 27, 0, 20, 0).unwrap();
    let older = all.iter().filter(|st| st.first_event < cut).count() as u64;
    let younger = all.iter().filter(|st| st.last_event > cut).count() as u64;
    for form in [
        "2015-02-27T00:20:00",
        "2015-02-27 00:20:00",
        "2015-02-27T00:20:00Z",
    ] {
        let f = enc(form);
        assert_eq!(
            s.count(&format!("/v1/streams/count?older_than={f}")).await,
            older
        );
        assert_eq!(
            items(&s.ok(&format!("/v1/streams?older_than={f}")).await).len() as u64,
            older
        );
        assert_eq!(
            s.count(&format!("/v1/streams/count?younger_than={f}"))
                .await,
            younger
        );
    }
    assert_eq!(
        s.count("/v1/streams/count?older_than=2015-02-27&younger_than=2015-02-28")
            .await,
        0
    );
    // limit
    assert_eq!(items(&s.ok("/v1/streams?limit=1").await).len(), 1);
}

pub async fn events_list_count_and_show(store: Arc<dyn Store>) {
    let seeded = seed(&store).await;
    let s = serve(store.clone(), config_with_token(None)).await;

    let all = s.ok("/v1/events").await;
    assert_eq!(items(&all).len() as u64, seeded.events.min(200));
    assert_eq!(s.count("/v1/events/count").await, seeded.events);
    assert_eq!(s.count("/v1/events/Count").await, seeded.events);
    for e in items(&all) {
        let mark = e["_mark"].as_str().unwrap();
        assert!(i64::from_str_radix(mark, 16).is_ok(), "{mark}");
        hinted_datetime(&e["timestamp"]);
        assert!(e["event_type"].is_string());
        assert!(e["message_id"].is_string());
    }
    // a known event, its traits typed as the original wrote them
    let known = "d0718c1a";
    let ev = items(&all)
        .iter()
        .find(|e| e["message_id"].as_str().unwrap().starts_with(known))
        .expect("the .exists event")
        .clone();
    assert_eq!(ev["event_type"], "compute.instance.exists");
    assert_eq!(ev["memory_mb"], 1024);
    assert!(ev["instance_id"].as_str().unwrap().starts_with("0b3510b0"));
    hinted_datetime(&ev["audit_period_beginning"]);
    let mid = ev["message_id"].as_str().unwrap().to_string();
    let one = s.ok(&format!("/v1/events/{mid}")).await;
    assert!(one.is_object(), "one event is an object: {one}");
    assert_eq!(one["message_id"], mid.as_str());
    assert_eq!(one["memory_mb"], 1024);
    assert!(one.get("_mark").is_none());
    let (status, body) = s.get("/v1/events/no-such-message").await;
    assert_eq!(status, 404, "{body}");

    // event_name
    let updates = store
        .count_events(&EventQuery {
            event_type: Some("compute.instance.update".into()),
            ..EventQuery::default()
        })
        .await
        .unwrap();
    assert!(updates > 10);
    assert_eq!(
        s.count("/v1/events/count?event_name=compute.instance.update")
            .await,
        updates
    );
    let listed = s.ok("/v1/events?event_name=compute.instance.update").await;
    assert!(items(&listed)
        .iter()
        .all(|e| e["event_type"] == "compute.instance.update"));
    assert_eq!(s.count("/v1/events/count?event_name=nope").await, 0);

    // from (exclusive) / to (inclusive) on the event's time
    let all_events = store.find_events(&EventQuery::default()).await.unwrap();
    let from = Utc.with_ymd_and_hms(2015, 2, 27, 0, 20, 0).unwrap();
    let to = Utc.with_ymd_and_hms(2015, 2, 27, 0, 30, 0).unwrap();
    let want = all_events
        .iter()
        .filter(|e| e.event.timestamp > from && e.event.timestamp <= to)
        .count() as u64;
    assert!(want > 0);
    assert_eq!(
        s.count(&format!(
            "/v1/events/count?from_datetime={}&to_datetime={}",
            enc("2015-02-27 00:20:00"),
            enc("2015-02-27T00:30:00")
        ))
        .await,
        want
    );
    // the default limit is 200, and limit works
    assert_eq!(items(&s.ok("/v1/events?limit=3").await).len(), 3);
}

pub async fn event_trait_filters(store: Arc<dyn Store>) {
    seed(&store).await;
    let s = serve(store.clone(), config_with_token(None)).await;
    let all = store.find_events(&EventQuery::default()).await.unwrap();
    let mem = |pred: &dyn Fn(i64) -> bool| {
        all.iter()
            .filter(|e| {
                matches!(e.event.traits.get("memory_mb"),
                    Some(worker::event::TraitValue::Int(m)) if pred(*m))
            })
            .count() as u64
    };
    let cases: Vec<(&str, u64)> = vec![
        ("memory_mb:512", mem(&|m| m == 512)),
        ("memory_mb=512", mem(&|m| m == 512)),
        ("memory_mb>512", mem(&|m| m > 512)),
        ("memory_mb>=1024", mem(&|m| m >= 1024)),
        ("memory_mb<1024", mem(&|m| m < 1024)),
        ("memory_mb<=1024", mem(&|m| m <= 1024)),
        ("memory_mb!=512", mem(&|m| m != 512)),
        (
            "memory_mb>512;memory_mb<4096",
            mem(&|m| m > 512 && m < 4096),
        ),
        (
            "memory_mb>512,memory_mb<4096",
            mem(&|m| m > 512 && m < 4096),
        ),
        ("memory_mb:512.0", mem(&|m| m == 512)),
        ("memory_mb:\"512\"", 0),
    ];
    for (filter, want) in cases {
        assert!(want > 0 || filter.contains('"'), "{filter}");
        assert_eq!(
            s.count(&format!("/v1/events/count?traits={}", enc(filter)))
                .await,
            want,
            "{filter}"
        );
        let listed = s.ok(&format!("/v1/events?traits={}", enc(filter))).await;
        assert_eq!(items(&listed).len() as u64, want, "{filter}");
    }
    // text equality (the original's form) and a datetime comparison
    let inst = all
        .iter()
        .find_map(|e| match e.event.traits.get("instance_id") {
            Some(worker::event::TraitValue::Text(t)) => Some(t.clone()),
            _ => None,
        })
        .unwrap();
    let want = all
        .iter()
        .filter(|e| {
            matches!(e.event.traits.get("instance_id"),
                Some(worker::event::TraitValue::Text(t)) if *t == inst)
        })
        .count() as u64;
    assert_eq!(
        s.count(&format!(
            "/v1/events/count?traits={}",
            enc(&format!("instance_id:{inst}"))
        ))
        .await,
        want
    );
    let cut = all
        .iter()
        .filter_map(|e| match e.event.traits.get("audit_period_beginning") {
            Some(worker::event::TraitValue::Datetime(d)) => Some(*d),
            _ => None,
        })
        .max()
        .expect("an audit period");
    let want = all
        .iter()
        .filter(|e| {
            matches!(e.event.traits.get("audit_period_beginning"),
                Some(worker::event::TraitValue::Datetime(d)) if *d >= cut)
        })
        .count() as u64;
    assert!(want > 0);
    let filter = format!("audit_period_beginning>={}", api::wire::isoformat(&cut));
    assert_eq!(
        s.count(&format!("/v1/events/count?traits={}", enc(&filter)))
            .await,
        want
    );
    let filter = format!("audit_period_beginning>{}", api::wire::isoformat(&cut));
    assert_eq!(
        s.count(&format!("/v1/events/count?traits={}", enc(&filter)))
            .await,
        0
    );
}

/// Walks a listing page by page, passing each page's last `_mark` back.
async fn walk(s: &Server, path: &str, first_mark: Option<&str>, key: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut mark = first_mark.map(str::to_string);
    for _ in 0..100 {
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = match &mark {
            Some(m) => format!("{path}{sep}limit=7&mark={}", enc(m)),
            None => format!("{path}{sep}limit=7"),
        };
        let page = s.ok(&url).await;
        let page = items(&page);
        if page.is_empty() {
            return out;
        }
        assert!(page.len() <= 7);
        for item in page {
            out.push(match &item[key] {
                Value::String(v) => v.clone(),
                other => other.to_string(),
            });
        }
        mark = Some(page.last().unwrap()["_mark"].as_str().unwrap().to_string());
    }
    panic!("pagination did not end");
}

pub async fn pagination_both_ways(store: Arc<dyn Store>) {
    let seeded = seed(&store).await;
    let s = serve(store.clone(), config_with_token(None)).await;

    let all = message_ids(&s.ok("/v1/events?limit=1000").await);
    assert_eq!(all.len() as u64, seeded.events);
    let down = walk(&s, "/v1/events", None, "message_id").await;
    assert_eq!(
        down, all,
        "descending pages cover everything once, in order"
    );
    let up = walk(&s, "/v1/events", Some("+"), "message_id").await;
    let mut reversed = all.clone();
    reversed.reverse();
    assert_eq!(up, reversed, "ascending pages from a + mark");
    // ascending marks carry the +
    let page = s.ok("/v1/events?mark=%2B&limit=2").await;
    for e in items(&page) {
        assert!(e["_mark"].as_str().unwrap().starts_with('+'));
    }
    // a "-" mark is descending
    let first = items(&s.ok("/v1/events?limit=1").await)[0]["_mark"]
        .as_str()
        .unwrap()
        .to_string();
    let next = s.ok(&format!("/v1/events?limit=1&mark=-{first}")).await;
    assert_eq!(message_ids(&next)[0], all[1]);

    let streams: Vec<String> = ids(&s.ok("/v1/streams").await)
        .iter()
        .map(|i| i.to_string())
        .collect();
    assert_eq!(streams.len() as u64, seeded.streams);
    let down = walk(&s, "/v1/streams", None, "id").await;
    assert_eq!(down, streams);
    let up = walk(&s, "/v1/streams?details=true", Some("+"), "id").await;
    let mut reversed = streams.clone();
    reversed.reverse();
    assert_eq!(up, reversed);
    // filters and marks together
    let up = walk(
        &s,
        "/v1/events?event_name=compute.instance.update",
        Some("+0"),
        "event_type",
    )
    .await;
    assert!(up.len() > 7 && up.iter().all(|t| t == "compute.instance.update"));
}

pub async fn reset_and_delete_need_the_token(store: Arc<dyn Store>) {
    use reqwest::Method;
    let seeded = seed(&store).await;
    let s = serve(store.clone(), config_with_token(Some(TOKEN))).await;
    let auth = format!("Bearer {TOKEN}");
    let err = seeded.error_stream;
    let exp = seeded.expire_error_stream;

    // without / with a wrong token: 401, nothing changes
    for headers in [
        vec![],
        vec![("Authorization", "Bearer wrong")],
        vec![("Authorization", "Basic Zm9vOmJhcg==")],
    ] {
        let (st, body) = s
            .send(Method::PUT, &format!("/v1/streams/{err}"), &headers)
            .await;
        assert_eq!(st, 401, "{body}");
        assert!(body["message"].is_string());
        let (st, _) = s
            .send(Method::DELETE, &format!("/v1/streams/{err}"), &headers)
            .await;
        assert_eq!(st, 401);
    }
    assert_eq!(
        store.get_stream(err).await.unwrap().unwrap().state,
        StreamState::Error
    );

    // reset: error → retry_fire (PUT), expire_error → retry_expire (POST + override)
    let (st, body) = s
        .send(
            Method::PUT,
            &format!("/v1/streams/{err}"),
            &[("Authorization", &auth)],
        )
        .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["state"], "retry_fire");
    assert_eq!(
        store.get_stream(err).await.unwrap().unwrap().state,
        StreamState::RetryFire
    );
    let (st, body) = s
        .send(
            Method::POST,
            &format!("/v1/streams/{exp}"),
            &[("Authorization", &auth)],
        )
        .await;
    assert_eq!(st, 405, "POST without the override: {body}");
    let (st, body) = s
        .send(
            Method::POST,
            &format!("/v1/streams/{exp}"),
            &[("Authorization", &auth), ("X-HTTP-Method-Override", "PUT")],
        )
        .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["state"], "retry_expire");
    // a stream not in error: 409; unknown: 404; not an id: 400
    let (st, body) = s
        .send(
            Method::PUT,
            &format!("/v1/streams/{err}"),
            &[("Authorization", &auth)],
        )
        .await;
    assert_eq!(st, 409, "{body}");
    let (st, _) = s
        .send(
            Method::PUT,
            "/v1/streams/999999",
            &[("Authorization", &auth)],
        )
        .await;
    assert_eq!(st, 404);
    let (st, _) = s
        .send(Method::PUT, "/v1/streams/abc", &[("Authorization", &auth)])
        .await;
    assert_eq!(st, 400);

    // delete: the stream goes, its events stay
    let events = store.count_events(&EventQuery::default()).await.unwrap();
    let (st, body) = s
        .send(
            Method::DELETE,
            &format!("/v2/streams/{exp}"),
            &[("Authorization", &auth)],
        )
        .await;
    assert_eq!(st, 200, "{body}");
    assert!(store.get_stream(exp).await.unwrap().is_none());
    assert_eq!(
        store.count_streams(&StreamQuery::default()).await.unwrap(),
        seeded.streams - 1
    );
    assert_eq!(
        store.count_events(&EventQuery::default()).await.unwrap(),
        events
    );
    let (st, _) = s
        .send(
            Method::DELETE,
            &format!("/v1/streams/{exp}"),
            &[("Authorization", &auth)],
        )
        .await;
    assert_eq!(st, 404);
    let (st, _) = s.get(&format!("/v1/streams/{exp}")).await;
    assert_eq!(st, 404);
}

pub async fn mutations_refused_without_a_configured_token(store: Arc<dyn Store>) {
    use reqwest::Method;
    let seeded = seed(&store).await;
    let s = serve(store.clone(), config_with_token(None)).await;
    let err = seeded.error_stream;
    for headers in [vec![], vec![("Authorization", "Bearer anything")]] {
        for method in [Method::PUT, Method::DELETE] {
            let (st, body) = s
                .send(method, &format!("/v1/streams/{err}"), &headers)
                .await;
            assert_eq!(st, 403, "{body}");
            assert!(body["message"].as_str().unwrap().contains("token"));
        }
        let mut h = headers.clone();
        h.push(("X-HTTP-Method-Override", "PUT"));
        let (st, _) = s
            .send(Method::POST, &format!("/v1/streams/{err}"), &h)
            .await;
        assert_eq!(st, 403);
    }
    let st = store.get_stream(err).await.unwrap().unwrap();
    assert_eq!(st.state, StreamState::Error);
    assert_eq!(
        store.count_streams(&StreamQuery::default()).await.unwrap(),
        seeded.streams
    );

    // reads protected: a token is needed for reads too
    let protected = serve(
        store.clone(),
        api::ApiConfig {
            auth: api::Auth::new(Some(TOKEN), true).unwrap(),
            ..api::ApiConfig::default()
        },
    )
    .await;
    let (st, _) = protected.get("/v1/streams").await;
    assert_eq!(st, 401);
    let (st, body) = protected
        .send(
            Method::GET,
            "/v1/streams/count",
            &[("Authorization", &format!("Bearer {TOKEN}"))],
        )
        .await;
    assert_eq!(st, 200, "{body}");
}

/// Parameters that must be refused with a 4xx and a JSON message, whatever they
/// hold, SQL included, and leave the database as it was.
pub async fn bad_input_is_a_json_4xx_and_harmless(store: Arc<dyn Store>) {
    use reqwest::Method;
    let seeded = seed(&store).await;
    let s = serve(store.clone(), config_with_token(Some(TOKEN))).await;
    let bad: Vec<String> = vec![
        "/v1/streams?older_than=yesterday".into(),
        "/v1/streams?younger_than=2015-13-45".into(),
        "/v1/streams/count?older_than=not-a-date".into(),
        "/v1/events?from_datetime=27/02/2015".into(),
        "/v1/events/count?to_datetime=2015-02-27T25:99:00".into(),
        "/v1/streams?state=bogus".into(),
        "/v1/streams/count?state=9".into(),
        "/v1/streams?limit=-1".into(),
        "/v1/streams?limit=abc".into(),
        "/v1/streams?limit=0".into(),
        "/v1/streams?limit=1001".into(),
        "/v1/events?limit=-1".into(),
        "/v1/events?limit=abc".into(),
        "/v1/events?limit=99999999999999999999999".into(),
        "/v1/events?traits=memory_mb".into(),
        "/v1/events/count?traits=memory_mb%3A512%3Bhost".into(),
        "/v1/events?traits=%3A512".into(),
        "/v1/events?traits=memory_mb%3E".into(),
        "/v1/streams?distinguishing_traits=instance_id".into(),
        "/v1/streams?distinguishing_traits=memory_mb%3E5".into(),
        "/v1/streams?details=maybe".into(),
        "/v1/streams?mark=xyz".into(),
        "/v1/events?mark=%2B-5".into(),
        "/v1/streams?name=a&trigger_name=b".into(),
        "/v1/streams/abc".into(),
        "/v1/streams/-1".into(),
        "/v1/streams/99999999999999999999".into(),
    ];
    for path in &bad {
        let (st, body) = s.get(path).await;
        assert_eq!(st, 400, "GET {path}: {body}");
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "GET {path}: {body}"
        );
    }
    // SQL metacharacters in every parameter: refused, or (where any text is a valid
    // value) matched as plain data; never a 5xx, never a change.
    let nasty = [
        "'; DROP TABLE event; --",
        "1' OR '1'='1",
        "\" OR 1=1 --",
        "x); DELETE FROM stream; --",
        "%' OR name LIKE '%",
        "\\'; SELECT SLEEP(5); --",
        "1; UPDATE stream SET state=4",
    ];
    let params = [
        "/v1/streams?older_than=",
        "/v1/streams?younger_than=",
        "/v1/streams?state=",
        "/v1/streams?trigger_name=",
        "/v1/streams?name=",
        "/v1/streams?distinguishing_traits=instance_id:",
        "/v1/streams?distinguishing_traits=",
        "/v1/streams?mark=",
        "/v1/streams?limit=",
        "/v1/streams?details=",
        "/v1/streams/count?name=",
        "/v1/events?from_datetime=",
        "/v1/events?to_datetime=",
        "/v1/events?event_name=",
        "/v1/events?traits=host:",
        "/v1/events?traits=memory_mb>",
        "/v1/events?traits=",
        "/v1/events?mark=",
        "/v1/events?limit=",
        "/v1/events/count?event_name=",
        "/v1/event_types/",
    ];
    for p in params {
        for n in nasty {
            let path = if p.ends_with('/') {
                format!("{p}{}/traits", enc(n).replace('+', "%20"))
            } else {
                format!("{p}{}", enc(n))
            };
            let (st, body) = s.get(&path).await;
            assert!(
                st == 200 || st == 400 || st == 404,
                "GET {path}: {st} {body}"
            );
            if st == 200 {
                // accepted as data: it matched nothing
                let n_items = match &body {
                    Value::Array(a) if a.len() == 1 && a[0].get("count").is_some() => {
                        a[0]["count"].as_u64().unwrap() as usize
                    }
                    Value::Array(a) => a.len(),
                    other => panic!("GET {path}: {other}"),
                };
                assert_eq!(n_items, 0, "GET {path}: {body}");
            } else {
                assert!(body["message"].is_string(), "GET {path}: {body}");
            }
        }
    }
    for n in nasty {
        let (st, _) = s
            .get(&format!("/v1/events/{}", enc(n).replace('+', "%20")))
            .await;
        assert_eq!(st, 404);
        for method in [Method::PUT, Method::DELETE] {
            let (st, body) = s
                .send(
                    method,
                    &format!("/v1/streams/{}", enc(n).replace('+', "%20")),
                    &[("Authorization", &format!("Bearer {TOKEN}"))],
                )
                .await;
            assert_eq!(st, 400, "{body}");
        }
    }
    // the database is untouched
    assert_eq!(
        store.count_events(&EventQuery::default()).await.unwrap(),
        seeded.events
    );
    assert_eq!(
        store.count_streams(&StreamQuery::default()).await.unwrap(),
        seeded.streams
    );
    let states: BTreeMap<i64, StreamState> = store
        .find_streams(&StreamQuery::default())
        .await
        .unwrap()
        .into_iter()
        .map(|st| (st.id, st.state))
        .collect();
    assert_eq!(states[&seeded.error_stream], StreamState::Error);
    assert_eq!(
        states[&seeded.expire_error_stream],
        StreamState::ExpireError
    );
    assert_eq!(
        states
            .values()
            .filter(|st| **st == StreamState::Active)
            .count() as u64,
        seeded.streams - 2
    );
}

pub async fn event_types_and_traits(store: Arc<dyn Store>) {
    seed(&store).await;
    let s = serve(store.clone(), config_with_token(None)).await;
    let types: Vec<String> = items(&s.ok("/v1/event_types").await)
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    assert_eq!(types, store.event_types().await.unwrap());
    assert!(types.contains(&"compute.instance.exists".to_string()));
    let traits = s.ok("/v1/event_types/compute.instance.exists/traits").await;
    let by_name: BTreeSet<(String, String)> = items(&traits)
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_string(),
                t["type"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        by_name.contains(&("memory_mb".into(), "int".into())),
        "{traits}"
    );
    assert!(by_name.contains(&("instance_id".into(), "text".into())));
    assert!(by_name.contains(&("audit_period_beginning".into(), "datetime".into())));
    let (st, body) = s.get("/v1/event_types/no.such.type/traits").await;
    assert_eq!(st, 404, "{body}");
}

pub async fn versions_serve_the_same_calls(store: Arc<dyn Store>) {
    seed(&store).await;
    let s = serve(store.clone(), config_with_token(None)).await;
    for path in [
        "/streams",
        "/streams/count",
        "/events?limit=5",
        "/events/count",
        "/event_types",
    ] {
        assert_eq!(
            s.ok(&format!("/v1{path}")).await,
            s.ok(&format!("/v2{path}")).await,
            "{path}"
        );
    }
    // archives are v2 only, and need the token; none configured: an empty list
    let mut s = serve(store.clone(), config_with_token(Some(TOKEN))).await;
    s.client = bearer_client(TOKEN);
    assert_eq!(s.ok("/v2/archives").await, serde_json::json!([]));
    let (st, _) = s.get("/v1/archives").await;
    assert_eq!(st, 404);
}

/// The ORIGINAL klugman (PyPI 0.5.dev25, Python 2), installed by
/// `scripts/python-tools.sh` (idempotent). None, with a message, when
/// `STV3_SKIP_PYTHON=1`; a failed install fails the test.
pub fn original_klugman_path() -> Option<String> {
    if std::env::var("STV3_SKIP_PYTHON").as_deref() == Ok("1") {
        eprintln!("STV3_SKIP_PYTHON=1: skipping the original klugman");
        return None;
    }
    let out = std::process::Command::new("bash")
        .arg(repo_root().join("scripts/python-tools.sh"))
        .output()
        .expect("run scripts/python-tools.sh");
    assert!(
        out.status.success(),
        "scripts/python-tools.sh failed (set STV3_SKIP_PYTHON=1 to skip):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let path = stdout
        .lines()
        .find_map(|l| l.strip_prefix("klugman="))
        .expect("python-tools.sh prints klugman=<path>")
        .to_string();
    Some(path)
}
