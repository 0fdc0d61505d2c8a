//! The collectors as they see themselves. Given yagi-event metrics addresses
//! (`--collector cell1=http://10.0.0.5:9102/metrics`), `stv3-api` samples each every
//! [`SAMPLE_EVERY`] (or `--collector-interval`) and keeps the last samples (an hour
//! at the default interval), so the console shows notifications
//! received per minute, what was dead-lettered, and whether each collector answers.
//! The store only knows when a collector last *stored* something; a collector whose
//! queue went quiet and one that stopped look the same there, and different here.

use chrono::{DateTime, DurationRound, Utc};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often each collector's metrics are fetched, unless configured.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(15);
/// How long one fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(3);
/// Samples kept per collector: an hour and a bit.
const KEEP: usize = 250;

/// A collector to sample: `name=url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectorTarget {
    pub name: String,
    pub url: String,
}

impl std::str::FromStr for CollectorTarget {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (name, url) = s.split_once('=').ok_or_else(|| {
            format!("{s:?}: expected NAME=URL, such as cell1=http://10.0.0.5:9102/metrics")
        })?;
        let name = name.trim();
        let url = url.trim();
        if name.is_empty() {
            return Err(format!("{s:?}: the collector has no name"));
        }
        match reqwest::Url::parse(url) {
            Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
            Ok(u) => return Err(format!("{s:?}: {} is not an http(s) URL", u.scheme())),
            Err(e) => return Err(format!("{s:?}: {url:?} is not a URL ({e})")),
        }
        Ok(CollectorTarget {
            name: name.to_string(),
            url: url.to_string(),
        })
    }
}

/// The counters read from one fetch.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Totals {
    pub received: f64,
    pub stored: f64,
    pub dead_lettered: f64,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    at: DateTime<Utc>,
    totals: Totals,
}

#[derive(Debug, Default)]
struct Status {
    samples: VecDeque<Sample>,
    last_error: Option<(DateTime<Utc>, String)>,
}

/// What the console shows of one collector.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectorView {
    pub name: String,
    /// When its metrics last answered, and what they said.
    pub last_answer: Option<(DateTime<Utc>, Totals)>,
    /// The last failed fetch, when it is newer than the last answer.
    pub failing: Option<(DateTime<Utc>, String)>,
    /// Notifications received per minute, oldest first (minutes between samples).
    pub received_per_minute: Vec<(DateTime<Utc>, f64)>,
}

/// The sampled collectors.
#[derive(Debug)]
pub struct Collectors {
    targets: Vec<CollectorTarget>,
    every: Duration,
    status: Mutex<Vec<Status>>,
}

impl Collectors {
    /// `targets` sampled every `every` (at least a second).
    pub fn new(targets: Vec<CollectorTarget>, every: Duration) -> Arc<Collectors> {
        let status = targets.iter().map(|_| Status::default()).collect();
        Arc::new(Collectors {
            targets,
            every: every.max(Duration::from_secs(1)),
            status: Mutex::new(status),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// Samples every collector now and then at its interval until `shutdown`.
    pub fn spawn(self: &Arc<Self>, shutdown: CancellationToken) {
        if self.targets.is_empty() {
            return;
        }
        let this = self.clone();
        worker::install_crypto_provider();
        tokio::spawn(async move {
            let client = match reqwest::Client::builder().timeout(FETCH_TIMEOUT).build() {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "no HTTP client for the collectors' metrics");
                    return;
                }
            };
            let mut tick = tokio::time::interval(this.every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tick.tick() => this.sample_all(&client).await,
                }
            }
        });
    }

    async fn sample_all(&self, client: &reqwest::Client) {
        let fetches = self.targets.iter().map(|t| fetch(client, &t.url));
        let results = futures_util::future::join_all(fetches).await;
        let now = Utc::now();
        let mut status = self.status.lock().unwrap_or_else(|p| p.into_inner());
        for ((target, result), st) in self.targets.iter().zip(results).zip(status.iter_mut()) {
            match result {
                Ok(totals) => {
                    st.samples.push_back(Sample { at: now, totals });
                    while st.samples.len() > KEEP {
                        st.samples.pop_front();
                    }
                }
                Err(e) => {
                    tracing::debug!(collector = %target.name, error = %e, "collector metrics unavailable");
                    st.last_error = Some((now, e));
                }
            }
        }
    }

    /// Every collector, in the order given.
    pub fn views(&self) -> Vec<CollectorView> {
        let status = self.status.lock().unwrap_or_else(|p| p.into_inner());
        self.targets
            .iter()
            .zip(status.iter())
            .map(|(t, st)| {
                let last = st.samples.back().map(|s| (s.at, s.totals));
                let failing = st
                    .last_error
                    .clone()
                    .filter(|(at, _)| last.is_none_or(|(ok, _)| *at > ok));
                CollectorView {
                    name: t.name.clone(),
                    last_answer: last,
                    failing,
                    received_per_minute: per_minute(
                        st.samples.iter().map(|s| (s.at, s.totals.received)),
                    ),
                }
            })
            .collect()
    }
}

/// Per-minute increases of a counter sampled at `(time, value)`: each increase is
/// put in the minute of the later sample; a counter that went down was restarted,
/// and counts from zero.
fn per_minute(samples: impl Iterator<Item = (DateTime<Utc>, f64)>) -> Vec<(DateTime<Utc>, f64)> {
    let mut out: BTreeMap<DateTime<Utc>, f64> = BTreeMap::new();
    let mut prev: Option<f64> = None;
    for (at, v) in samples {
        if let Some(p) = prev {
            let delta = if v >= p { v - p } else { v };
            let minute = at
                .duration_trunc(chrono::Duration::minutes(1))
                .unwrap_or(at);
            *out.entry(minute).or_default() += delta;
        }
        prev = Some(v);
    }
    out.into_iter().collect()
}

async fn fetch(client: &reqwest::Client, url: &str) -> Result<Totals, String> {
    let resp = client
        .get(url)
        .send()
        .await
        .map_err(|e| format!("no answer: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("HTTP {}", resp.status()));
    }
    let text = resp.text().await.map_err(|e| format!("cut short: {e}"))?;
    totals(&text)
}

/// The counters yagi-event exports, summed over their labels.
pub fn totals(text: &str) -> Result<Totals, String> {
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape =
        prometheus_parse::Scrape::parse(lines).map_err(|e| format!("not Prometheus text: {e}"))?;
    let mut t = Totals::default();
    let mut seen = false;
    for s in &scrape.samples {
        let v = match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
            _ => continue,
        };
        // The OpenMetrics form names counters with `_total`; older parsers keep it.
        let name = s.metric.strip_suffix("_total").unwrap_or(&s.metric);
        match name {
            "yagi_messages_received" => t.received += v,
            "yagi_events_stored" => t.stored += v,
            "yagi_messages_dead_lettered" => t.dead_lettered += v,
            _ => continue,
        }
        seen = true;
    }
    if !seen {
        return Err("no yagi_* counters: is this a yagi-event's /metrics?".into());
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn flags_name_a_collector_and_an_http_url() {
        let t: CollectorTarget = "cell1=http://10.0.0.5:9102/metrics".parse().unwrap();
        assert_eq!(t.name, "cell1");
        assert_eq!(t.url, "http://10.0.0.5:9102/metrics");
        for bad in ["cell1", "=http://x/", "cell1=ftp://x/", "cell1=not a url"] {
            assert!(bad.parse::<CollectorTarget>().is_err(), "{bad}");
        }
    }

    #[test]
    fn yagi_counters_are_summed_over_labels() {
        let text = "# HELP yagi_messages_received Messages delivered by RabbitMQ.\n\
            # TYPE yagi_messages_received counter\n\
            yagi_messages_received_total{queue=\"notifications.info\"} 10\n\
            yagi_messages_received_total{queue=\"notifications.error\"} 2\n\
            # TYPE yagi_events_stored counter\n\
            yagi_events_stored_total 11\n\
            # TYPE yagi_messages_dead_lettered counter\n\
            yagi_messages_dead_lettered_total{queue=\"q\",reason=\"malformed\"} 1\n\
            # EOF\n";
        assert_eq!(
            totals(text),
            Ok(Totals {
                received: 12.0,
                stored: 11.0,
                dead_lettered: 1.0
            })
        );
        assert!(totals("# TYPE other counter\nother_total 1\n").is_err());
    }

    #[test]
    fn increases_land_in_the_later_samples_minute_and_restarts_count_from_zero() {
        let at = |s: i64| {
            Utc.timestamp_opt(1_700_000_000 - 1_700_000_000 % 60 + s, 0)
                .unwrap()
        };
        let got =
            per_minute([(at(0), 5.0), (at(15), 8.0), (at(45), 10.0), (at(75), 2.0)].into_iter());
        assert_eq!(got, vec![(at(0), 5.0), (at(60), 2.0)]);
    }
}
