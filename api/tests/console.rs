//! The console (`/ui/`) over a SQLite store seeded through the engine: its numbers
//! and lists are the API's, the lookup lists an instance's events in time order, the
//! reset action needs the token (given once on the login form) and works with it,
//! protected reads send the reader to the login form, a form posted from another site
//! is refused, and bad input is an HTML page that says what is wrong.

mod common;

use common::{enc, items, seed, serve, Server};
use std::sync::Arc;
use worker::store::{self, Store};

async fn fixture() -> (Arc<dyn Store>, common::Seeded, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("stv3-console-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("api.db").display());
    let store = store::open(&url).await.expect("open sqlite");
    store.migrate().await.expect("migrate");
    let seeded = seed(&store).await;
    (store, seeded, dir)
}

/// A client that does not follow redirects (the tests look at them).
fn client() -> reqwest::Client {
    worker::install_crypto_provider();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// GET a page: status, content type, body.
async fn page(s: &Server, path: &str, cookie: Option<&str>) -> (u16, String, String) {
    let mut req = client().get(s.url(path));
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let location = r
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_string());
    let body = r.text().await.unwrap();
    (status, ct, location.unwrap_or(body))
}

/// POST a form; returns status, the Location header (or body), and a Set-Cookie.
async fn post(
    s: &Server,
    path: &str,
    form: &str,
    headers: &[(&str, &str)],
) -> (u16, String, Option<String>) {
    let mut req = client()
        .post(s.url(path))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let cookie = r
        .headers()
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().to_string());
    let location = r
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_string());
    let body = r.text().await.unwrap();
    (status, location.unwrap_or(body), cookie)
}

/// The values of `href="<prefix>…"` links in `html`, in document order.
fn links(html: &str, prefix: &str) -> Vec<String> {
    let needle = format!("href=\"{prefix}");
    html.match_indices(&needle)
        .map(|(i, _)| {
            let rest = &html[i + needle.len()..];
            rest[..rest.find('"').unwrap_or(0)].to_string()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_show_what_the_api_says() {
    let (store, seeded, _dir) = fixture().await;
    let s = serve(store, common::config_with_token(Some(common::TOKEN))).await;

    // `/` leads to the console.
    let (st, _, location) = page(&s, "/", None).await;
    assert_eq!((st, location.as_str()), (303, "/ui/"));

    // The overview's streams by state are the API's counts.
    let (st, ct, html) = page(&s, "/ui/", None).await;
    assert_eq!(st, 200, "{html}");
    assert!(ct.starts_with("text/html"), "{ct}");
    for state in ["active", "error", "expire_error", "completed"] {
        let n = s.count(&format!("/v1/streams/count?state={state}")).await;
        let card = format!("<a href=\"/ui/streams?state={state}\">{n}</a>");
        assert!(
            html.contains(&card),
            "overview shows {n} {state} streams: {html}"
        );
    }
    assert!(html.contains("Times are UTC (+00:00)"));

    // Filtering by state lists exactly the API's streams.
    for state in ["error", "active"] {
        let (st, _, html) = page(&s, &format!("/ui/streams?state={state}&limit=100"), None).await;
        assert_eq!(st, 200, "{html}");
        let api: Vec<String> = items(&s.ok(&format!("/v1/streams?state={state}&limit=100")).await)
            .iter()
            .map(|v| v["id"].as_i64().unwrap().to_string())
            .collect();
        assert_eq!(links(&html, "/ui/streams/"), api, "state {state}");
    }

    // An instance's events, in time order, as the API has them.
    let events = s.ok("/v1/events?limit=200").await;
    let instance = items(&events)
        .iter()
        .find_map(|e| e["instance_id"].as_str().map(str::to_string))
        .expect("an event with an instance_id");
    let api = s
        .ok(&format!(
            "/v1/events?traits={}&limit=1000",
            enc(&format!("instance_id:{instance}"))
        ))
        .await;
    let when: std::collections::BTreeMap<String, chrono::DateTime<chrono::Utc>> = items(&api)
        .iter()
        .map(|e| {
            (
                e["message_id"].as_str().unwrap().to_string(),
                common::hinted_datetime(&e["timestamp"]),
            )
        })
        .collect();
    assert!(!when.is_empty());
    let (st, _, html) = page(&s, &format!("/ui/lookup?q={}", enc(&instance)), None).await;
    assert_eq!(st, 200, "{html}");
    let timeline = &html[html.find("Events in time order").expect("a timeline")..];
    let timeline = &timeline[..timeline.find("<h2>").unwrap_or(timeline.len())];
    let shown = links(timeline, "/ui/events/");
    let mut sorted = shown.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        when.keys().cloned().collect::<Vec<_>>(),
        "the lookup lists exactly the instance's events"
    );
    let times: Vec<_> = shown.iter().map(|m| when[m]).collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "in time order: {times:?}"
    );
    let first = shown[0].clone();

    // An event's page lists its traits.
    let (st, _, html) = page(&s, &format!("/ui/events/{first}"), None).await;
    assert_eq!(st, 200, "{html}");
    assert!(html.contains(&instance), "{html}");

    // Event types with the API's counts; one type's traits.
    let (st, _, html) = page(&s, "/ui/event-types?type=compute.instance.update", None).await;
    assert_eq!(st, 200, "{html}");
    let n = s
        .count("/v1/events/count?event_name=compute.instance.update")
        .await;
    assert!(
        html.contains(&format!("<td class=\"num\">{n}</td>")),
        "{html}"
    );
    assert!(html.contains("instance_id"), "the type's traits: {html}");

    // Bad input and missing things are pages that say so.
    let (st, ct, html) = page(&s, "/ui/streams?limit=lots", None).await;
    assert_eq!(st, 400);
    assert!(
        ct.starts_with("text/html") && html.contains("limit"),
        "{html}"
    );
    let (st, _, html) = page(&s, "/ui/streams/999999", None).await;
    assert_eq!(st, 404);
    assert!(html.contains("no stream 999999"), "{html}");
    let (st, _, html) = page(&s, "/ui/lookup?q=no-such-instance", None).await;
    assert_eq!(st, 200);
    assert!(
        html.contains("No event has"),
        "an empty state that says why: {html}"
    );
    let _ = seeded;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reset_needs_the_token_and_works_with_it() {
    let (store, seeded, _dir) = fixture().await;
    let s = serve(store, common::config_with_token(Some(common::TOKEN))).await;
    let id = seeded.error_stream;
    let reset = format!("/ui/streams/{id}/reset");

    let (_, _, html) = page(&s, &format!("/ui/streams/{id}"), None).await;
    assert!(
        html.contains(&format!("action=\"{reset}\"")),
        "an error stream offers the reset: {html}"
    );

    // Without the token: to the login form, nothing changed.
    let (st, location, _) = post(&s, &reset, "", &[]).await;
    assert_eq!(st, 303);
    assert!(location.starts_with("/ui/login?next="), "{location}");
    assert_eq!(
        s.ok(&format!("/v1/streams/{id}")).await[0]["state"],
        "error"
    );

    // A wrong token is refused; the right one is kept in a cookie.
    let (st, html, cookie) = post(&s, "/ui/login", "token=wrong&next=%2Fui%2F", &[]).await;
    assert_eq!(st, 401, "{html}");
    assert!(cookie.is_none());
    let form = format!(
        "token={}&next={}",
        enc(common::TOKEN),
        enc(&format!("/ui/streams/{id}"))
    );
    let (st, location, cookie) = post(&s, "/ui/login", &form, &[]).await;
    assert_eq!(
        (st, location.as_str()),
        (303, format!("/ui/streams/{id}").as_str())
    );
    let cookie = cookie.expect("a cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let jar = cookie.split(';').next().unwrap().to_string();

    // From another site's page: refused even with the cookie.
    let (st, _, _) = post(
        &s,
        &reset,
        "",
        &[("cookie", &jar), ("origin", "https://evil.example")],
    )
    .await;
    assert_eq!(st, 403);
    assert_eq!(
        s.ok(&format!("/v1/streams/{id}")).await[0]["state"],
        "error"
    );

    // With the cookie, from this server: reset.
    let host = s.base.trim_start_matches("http://").to_string();
    let origin = s.base.clone();
    let (st, location, _) = post(
        &s,
        &reset,
        "",
        &[("cookie", &jar), ("origin", &origin), ("host", &host)],
    )
    .await;
    assert_eq!(
        (st, location.as_str()),
        (303, format!("/ui/streams/{id}").as_str())
    );
    let after = s.ok(&format!("/v1/streams/{id}")).await;
    assert_ne!(after[0]["state"], "error", "the stream was reset: {after}");

    // A stream not in error cannot be reset: a page says why.
    let (st, html, _) = post(&s, &reset, "", &[("cookie", &jar)]).await;
    assert_eq!(st, 409, "{html}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protected_reads_ask_for_the_token() {
    let (store, _seeded, _dir) = fixture().await;
    let config = api::ApiConfig {
        auth: api::Auth::new(Some(common::TOKEN), true).unwrap(),
        ..api::ApiConfig::default()
    };
    let s = serve(store, config).await;
    let (st, _, location) = page(&s, "/ui/streams?state=error", None).await;
    assert_eq!(st, 303);
    assert_eq!(location, "/ui/login?next=%2Fui%2Fstreams%3Fstate%3Derror");
    let (st, _, html) = page(&s, "/ui/login?next=%2Fui%2Fstreams", None).await;
    assert_eq!(st, 200);
    assert!(html.contains("type=\"password\""), "{html}");
    let jar = format!("stv3_console_token={}", enc(common::TOKEN));
    let (st, _, html) = page(&s, "/ui/streams?state=error", Some(&jar)).await;
    assert_eq!(st, 200, "{html}");
    // The REST API is not opened by the console's cookie.
    let r = reqwest::Client::new()
        .get(s.url("/v1/streams"))
        .header("cookie", &jar)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_usage_audit_counts_failures_by_code_and_day() {
    let (store, _seeded, _dir) = fixture().await;
    let now = chrono::Utc::now();
    common::add_usage_outcomes(&store, now).await;
    let s = serve(store, common::config_with_token(None)).await;
    let (st, _, html) = page(&s, "/ui/usage", None).await;
    assert_eq!(st, 200, "{html}");
    let today = now.format("%m-%d").to_string();
    let yesterday = (now - chrono::Duration::days(1))
        .format("%m-%d")
        .to_string();
    let header = &html[html.find("<thead>").unwrap()..];
    let cols: Vec<&str> = header
        .match_indices("<th class=\"num\" scope=\"col\">")
        .map(|(i, m)| {
            let rest = &header[i + m.len()..];
            &rest[..rest.find('<').unwrap()]
        })
        .collect();
    assert_eq!(cols.len(), 7, "{cols:?}");
    assert_eq!(cols[6], today);
    assert_eq!(cols[5], yesterday);
    let row = |code: &str| {
        let at = html
            .find(&format!("<th scope=\"row\">{code}</th>"))
            .unwrap_or_else(|| panic!("a {code} row: {html}"));
        let rest = &html[at..];
        let row = &rest[..rest.find("</tr>").unwrap()];
        row.match_indices("<td class=\"num\">")
            .map(|(i, m)| {
                row[i + m.len()..]
                    .split('<')
                    .next()
                    .unwrap()
                    .parse::<u64>()
                    .unwrap()
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(row("U2"), vec![0, 0, 0, 0, 0, 1, 2]);
    assert_eq!(row("U0"), vec![0, 0, 0, 0, 0, 0, 1]);
    assert!(
        !html.contains("<th scope=\"row\">U5</th>"),
        "outside the window"
    );
    assert!(
        html.contains("href=\"/ui/lookup?q=inst-1\""),
        "failures link to the instance"
    );
    assert!(
        html.contains("href=\"/ui/streams/41\""),
        "and to their stream"
    );
    let (st, _, html) = page(&s, "/ui/usage?days=0", None).await;
    assert_eq!(st, 400);
    assert!(html.contains("days"), "{html}");
}

/// The collectors panel: when the API samples a yagi-event's real metrics endpoint
/// (the same registry and server yagi-event runs), the overview shows what it
/// received per minute and dead-lettered; a collector that does not answer says so;
/// what the store recorded of each (last stored) is shown by name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_shows_each_collector() {
    use prometheus_client::registry::Registry;
    use std::time::Duration;
    use worker::yagi::metrics::YagiMetrics;

    let (store, _seeded, _dir) = fixture().await;
    let now = chrono::Utc::now();
    store
        .mark_collector("cell-a", now - chrono::Duration::seconds(5), now)
        .await
        .unwrap();
    store
        .mark_collector("cell-old", now - chrono::Duration::hours(2), now)
        .await
        .unwrap();

    // cell-a's yagi-event metrics, as that program serves them.
    let metrics = YagiMetrics::new();
    let mut registry = Registry::default();
    metrics.register(&mut registry);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let bound = worker::observe::serve(
        "127.0.0.1:0".parse().unwrap(),
        Arc::new(registry),
        worker::observe::Health::default(),
        shutdown.clone(),
    )
    .await
    .unwrap();
    let received = |n: u64| {
        metrics
            .received
            .get_or_create(&worker::yagi::metrics::QueueLabels {
                queue: "notifications.info".into(),
            })
            .inc_by(n);
    };
    received(40);
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut config = common::config_with_token(None);
    config.collectors = vec![
        format!("cell-a=http://{bound}/metrics").parse().unwrap(),
        format!("cell-gone=http://{closed}/metrics")
            .parse()
            .unwrap(),
    ];
    config.collector_interval = Some(Duration::from_secs(1));
    let s = common::serve_sampling(store, config).await;

    // Two samples apart: 40, then 40 + 25.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    received(25);
    let started = std::time::Instant::now();
    let html = loop {
        let (st, _, html) = page(&s, "/ui/", None).await;
        assert_eq!(st, 200, "{html}");
        if html.contains(">25<") || started.elapsed() > Duration::from_secs(10) {
            break html;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let table = &html[html
        .find("id=\"collectors\"")
        .expect("the collectors table")..];
    let row = |name: &str| {
        let at = table
            .find(&format!(">{name}<"))
            .unwrap_or_else(|| panic!("{name} in {table}"));
        let rest = &table[at..];
        rest[..rest.find("</tr>").unwrap()].to_string()
    };
    let a = row("cell-a");
    assert!(a.contains("ago") && a.contains("answered"), "{a}");
    assert!(a.contains(">25<"), "25 received in the last minute: {a}");
    let gone = row("cell-gone");
    assert!(gone.contains("not answering"), "{gone}");
    assert!(gone.contains("never"), "nothing stored: {gone}");
    let old = row("cell-old");
    assert!(old.contains("quiet for 2 h"), "{old}");
    assert!(old.contains("not sampled"), "{old}");
    shutdown.cancel();
}
