//! The console in a real browser: headless Chromium from Debian's packages driven by
//! its chromedriver over WebDriver (fantoccini), against `stv3-api` over a store
//! filled by `stv3 replay` (tests/common). Every page loads with its stylesheet, no
//! failed resource and nothing in the browser's console, fits a phone's width
//! without sideways scrolling, and is
//! reachable from the navigation; the overview's numbers are the API's; filtering
//! streams by state lists the API's streams; an instance lookup lists its events in
//! time order; the reset works through the login form and not without it.
//!
//! `scripts/browser.sh` installs chromium and chromedriver (`./build.sh -t` runs it).
//! With `STV3_CONSOLE_SCREENSHOTS=<dir>` the test saves a PNG of each page there
//! (`scripts/console-screenshots.sh` writes docs/console/).

mod common;

use common::{enc, items, serve, Server};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use worker::store::{self, Store};

/// chromedriver on a free loopback port; killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Driver {
        let bin = std::env::var("STV3_CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(&bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {bin} ({e}): scripts/browser.sh installs chromium and chromedriver"
                )
            });
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not listen"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    async fn browser(&self) -> Client {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,800", "--lang=en-US"],
            }),
        );
        caps.insert("goog:loggingPrefs".into(), json!({ "browser": "ALL" }));
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("a Chromium session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A store filled by `stv3 replay` (a day and a half of a notigen region, ending
/// now, so the overview's charts have something to show), plus usage audit failures
/// of known codes.
async fn fixture() -> (Arc<dyn Store>, common::Replayed, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("stv3-browser-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("api.db").display());
    let store = store::open(&url).await.expect("open sqlite");
    store.migrate().await.expect("migrate");
    let now = chrono::Utc::now();
    let replayed = common::replayed(&store, now, 24, 36).await;
    common::add_usage_outcomes(&store, now).await;
    (store, replayed, dir)
}

/// chromedriver's browser log (what the page wrote to the console, and its errors);
/// each read empties it. Not in fantoccini's API, so sent as a custom command.
#[derive(Debug)]
struct BrowserLog;

impl fantoccini::wd::WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _url: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.into()))
    }
}

/// The console errors and warnings logged since the last call.
async fn console_problems(c: &Client) -> Vec<String> {
    let log = c.issue_cmd(BrowserLog).await.expect("the browser log");
    log.as_array()
        .into_iter()
        .flatten()
        .filter(|e| matches!(e["level"].as_str(), Some("SEVERE" | "WARNING")))
        .map(|e| e["message"].as_str().unwrap_or_default().to_string())
        .collect()
}

async fn js(c: &Client, script: &str) -> Value {
    c.execute(script, vec![]).await.expect("script runs")
}

/// Loads `path`, then checks what every page must: an HTTP 200 page with its
/// stylesheet applied, no resource that failed to load, no sideways scroll at a
/// phone's width; saves a screenshot when asked.
async fn visit(c: &Client, s: &Server, path: &str, shot: &str) {
    c.set_window_size(1280, 800).await.expect("window size");
    c.goto(&s.url(path)).await.expect("page loads");
    let styled = js(
        c,
        "return getComputedStyle(document.querySelector('header')).display",
    )
    .await;
    assert_eq!(styled, json!("flex"), "{path}: the stylesheet applies");
    let failed = js(
        c,
        "return performance.getEntriesByType('resource').filter(r => r.responseStatus >= 400).map(r => r.name)",
    )
    .await;
    assert_eq!(failed, json!([]), "{path}: resources that failed");
    let status = js(
        c,
        "return performance.getEntriesByType('navigation')[0].responseStatus",
    )
    .await;
    assert_eq!(status, json!(200), "{path}");
    assert_eq!(
        console_problems(c).await,
        Vec::<String>::new(),
        "{path}: errors in the browser's console"
    );
    if let Ok(dir) = std::env::var("STV3_CONSOLE_SCREENSHOTS") {
        let png = c.screenshot().await.expect("a screenshot");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(format!("{dir}/{shot}.png"), png).unwrap();
    }
    c.set_window_size(390, 844).await.expect("phone width");
    let fits = js(
        c,
        "return document.documentElement.scrollWidth <= window.innerWidth + 1",
    )
    .await;
    assert_eq!(
        fits,
        json!(true),
        "{path}: readable at a phone's width without sideways scrolling"
    );
    c.set_window_size(1280, 800).await.expect("window size");
}

/// Clicks what `css` finds and waits until the browser shows the page it leads to: the
/// old page is marked first, and the new one is complete and unmarked (a click returns
/// before the navigation it starts; a form may lead back to the same URL).
async fn click_through(c: &Client, css: &str) {
    js(c, "window.__stv3_before_click = true; return null").await;
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("clicking {css}: {e}"));
    let started = Instant::now();
    loop {
        let done = c
            .execute(
                "return window.__stv3_before_click === undefined && document.readyState === 'complete'",
                vec![],
            )
            .await
            .ok();
        if done == Some(json!(true)) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "clicking {css} led nowhere"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn texts(c: &Client, css: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in c.find_all(Locator::Css(css)).await.expect("elements") {
        out.push(e.text().await.expect("text"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_works_in_a_browser() {
    let (store, replayed, _dir) = fixture().await;
    let s = serve(store, common::config_with_token(Some(common::TOKEN))).await;
    let driver = Driver::start();
    let c = driver.browser().await;

    // The console-error check sees what a page logs.
    c.goto(&s.url("/ui/event-types")).await.expect("page loads");
    js(&c, "console.error('stv3 canary'); return null").await;
    let logged = console_problems(&c).await;
    assert!(
        logged.iter().any(|m| m.contains("stv3 canary")),
        "the browser log reaches the test: {logged:?}"
    );

    // Overview: the streams-by-state numbers are the API's counts, and so are the
    // events of the last hour and day (whole minutes up to the time the page says).
    visit(&c, &s, "/ui/", "overview").await;
    for state in ["active", "error", "expire_error", "completed", "firing"] {
        let n = s.count(&format!("/v1/streams/count?state={state}")).await;
        let shown = texts(&c, &format!("a[href='/ui/streams?state={state}']")).await;
        assert_eq!(shown, vec![n.to_string()], "{state}");
    }
    let to = js(
        &c,
        "return document.querySelector('p.note time').getAttribute('datetime')",
    )
    .await;
    let to: chrono::DateTime<chrono::Utc> = to.as_str().unwrap().parse().unwrap();
    // The API's window is (from, to]; the page's [from, to): one microsecond earlier.
    let us = chrono::Duration::microseconds(1);
    let mut stored_last_day = 0;
    for (id, span) in [
        ("events-hour", chrono::Duration::hours(1)),
        ("events-day", chrono::Duration::days(1)),
    ] {
        let n = s
            .count(&format!(
                "/v1/events/count?from_datetime={}&to_datetime={}",
                enc(&(to - span - us).to_rfc3339()),
                enc(&(to - us).to_rfc3339())
            ))
            .await;
        assert_eq!(
            texts(&c, &format!("#{id}")).await,
            vec![n.to_string()],
            "{id}"
        );
        stored_last_day = n;
    }
    assert!(
        stored_last_day > 100,
        "the replay's last day is on the chart ({stored_last_day} of {} stored)",
        replayed.stored
    );
    // The replay ran pipelines: the runs are charted, and the sandbox's collector
    // (none here: the replay is not a collector) leaves the empty state.
    assert_eq!(
        texts(&c, "svg.bars").await.len(),
        3,
        "events, runs and usage charts"
    );
    visit(&c, &s, "/ui/?range=day", "overview-day").await;

    // Streams filtered by state: the API's list, in the API's order.
    visit(&c, &s, "/ui/streams?state=active&limit=100", "streams").await;
    let api: Vec<String> = items(&s.ok("/v1/streams?state=active&limit=100").await)
        .iter()
        .map(|v| v["id"].as_i64().unwrap().to_string())
        .collect();
    assert_eq!(texts(&c, "table tbody td:first-child a").await, api);
    // The same through the form, by keyboard-free clicking.
    c.goto(&s.url("/ui/streams")).await.unwrap();
    c.find(Locator::Css("select[name=state]"))
        .await
        .unwrap()
        .select_by_value("error")
        .await
        .unwrap();
    click_through(&c, "form.filters button[type=submit]").await;
    let api: Vec<String> = items(&s.ok("/v1/streams?state=error").await)
        .iter()
        .map(|v| v["id"].as_i64().unwrap().to_string())
        .collect();
    assert_eq!(
        texts(&c, "table tbody td:first-child a").await,
        api,
        "the form filters as the API"
    );

    // A stream's page; the reset refused without the token, done with it.
    let id = replayed.error_stream;
    visit(&c, &s, &format!("/ui/streams/{id}"), "stream").await;
    click_through(&c, "form[action$='/reset'] button").await;
    let url = c.current_url().await.unwrap();
    assert_eq!(
        url.path(),
        "/ui/login",
        "without the token: to the login form"
    );
    assert_eq!(
        s.ok(&format!("/v1/streams/{id}")).await[0]["state"],
        "error",
        "nothing changed"
    );
    visit(
        &c,
        &s,
        &format!("/ui/login?next=%2Fui%2Fstreams%2F{id}"),
        "login",
    )
    .await;
    c.find(Locator::Id("token"))
        .await
        .unwrap()
        .send_keys(common::TOKEN)
        .await
        .unwrap();
    click_through(&c, "form[action='/ui/login'] button").await;
    assert_eq!(
        c.current_url().await.unwrap().path(),
        format!("/ui/streams/{id}")
    );
    click_through(&c, "form[action$='/reset'] button").await;
    assert_eq!(
        c.current_url().await.unwrap().path(),
        format!("/ui/streams/{id}")
    );
    assert_ne!(
        s.ok(&format!("/v1/streams/{id}")).await[0]["state"],
        "error",
        "reset"
    );

    // An instance's lookup: its events in time order (an instance with an operation,
    // whose start and end make one).
    let events = s.ok("/v1/events?limit=1000").await;
    let (instance, operation) = items(&events)
        .iter()
        .find_map(|e| {
            let op = e["event_type"].as_str()?.strip_suffix(".start")?;
            Some((e["instance_id"].as_str()?.to_string(), op.to_string()))
        })
        .expect("an operation's .start with an instance_id");
    visit(
        &c,
        &s,
        &format!("/ui/lookup?q={}", enc(&instance)),
        "lookup",
    )
    .await;
    let times = js(
        &c,
        "return [...document.querySelectorAll('ol.timeline time')].map(t => t.getAttribute('datetime'))",
    )
    .await;
    let times: Vec<String> = serde_json::from_value(times).unwrap();
    let api = s
        .ok(&format!(
            "/v1/events?traits={}&limit=1000",
            enc(&format!("instance_id:{instance}"))
        ))
        .await;
    assert_eq!(
        times.len(),
        items(&api).len(),
        "every event of the instance"
    );
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "in time order: {times:?}"
    );
    let ops = texts(&c, "div.op strong").await;
    assert!(
        ops.contains(&operation),
        "{operation} is an operation: {ops:?}"
    );
    // The search box in the header leads to the same page.
    c.goto(&s.url("/ui/")).await.unwrap();
    c.find(Locator::Id("q"))
        .await
        .unwrap()
        .send_keys(&instance)
        .await
        .unwrap();
    click_through(&c, "header form button").await;
    assert_eq!(c.current_url().await.unwrap().path(), "/ui/lookup");

    // An event, the usage audit, the event types.
    let first = items(&api)[0]["message_id"].as_str().unwrap().to_string();
    visit(&c, &s, &format!("/ui/events/{first}"), "event").await;
    visit(&c, &s, "/ui/usage", "usage").await;
    let codes = texts(&c, "table tbody th[scope=row]").await;
    // The page's 7 UTC days: from 00:00 six days ago.
    let today =
        chrono::DurationRound::duration_trunc(chrono::Utc::now(), chrono::Duration::days(1))
            .unwrap();
    let from = today - chrono::Duration::days(6) - chrono::Duration::microseconds(1);
    let failed = s
        .ok(&format!(
            "/v1/events?event_name=compute.instance.exists.failed&limit=1000&from_datetime={}",
            enc(&from.to_rfc3339())
        ))
        .await;
    let api_codes: std::collections::BTreeSet<String> = items(&failed)
        .iter()
        .filter_map(|e| e["error_code"].as_str().map(str::to_string))
        .collect();
    assert_eq!(
        codes,
        api_codes.into_iter().collect::<Vec<_>>(),
        "codes of the last 7 days"
    );
    visit(
        &c,
        &s,
        "/ui/event-types?type=compute.instance.update",
        "event-types",
    )
    .await;

    // Every section is in the navigation, and the current one is marked.
    let nav = texts(&c, "header nav a").await;
    assert_eq!(
        nav,
        vec![
            "Overview",
            "Streams",
            "Lookup",
            "Usage audit",
            "Event types"
        ]
    );
    assert_eq!(
        texts(&c, "header nav a[aria-current=page]").await,
        vec!["Event types"]
    );

    // By keyboard alone: the first Tab reaches the skip link; tabbing on reaches the
    // navigation, and Enter on a section opens it.
    c.goto(&s.url("/ui/")).await.unwrap();
    c.find(Locator::Css("body"))
        .await
        .unwrap()
        .send_keys("\u{E004}")
        .await
        .unwrap();
    let first = c.active_element().await.unwrap();
    assert_eq!(first.text().await.unwrap(), "Skip to content");
    let mut focused = first;
    for _ in 0..10 {
        if focused.text().await.unwrap() == "Streams" {
            break;
        }
        focused.send_keys("\u{E004}").await.unwrap();
        focused = c.active_element().await.unwrap();
    }
    assert_eq!(
        focused.text().await.unwrap(),
        "Streams",
        "Tab reaches the navigation"
    );
    js(&c, "window.__stv3_before_click = true; return null").await;
    focused.send_keys("\u{E007}").await.unwrap();
    let started = Instant::now();
    while c.current_url().await.unwrap().path() != "/ui/streams" {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "Enter opened nothing"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    c.close().await.expect("the session closes");
}
