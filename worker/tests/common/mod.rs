//! Store conformance tests, written once over `Arc<dyn Store>` and run against both
//! backends by `store_sqlite.rs` and `store_mysql.rs` (through [`store_conformance!`]),
//! with a small [`TestRules`] standing in for the trigger definitions.
#![allow(dead_code)]

use chrono::{DateTime, Duration, DurationRound, TimeZone, Utc};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use worker::event::{Event, TraitType, TraitValue};
use worker::store::{
    stream_key, DistValue, DistinguishingTraits, EventQuery, EventWindow, Outcome, Page, ReadyKind,
    Route, Store, StoreError, StoredEvent, StreamBookkeeping, StreamQuery, StreamRules,
    StreamState, TraitFilter, TraitMatch, TraitOp,
};
use worker::timex::TimeRange;

/// Expands to one `#[tokio::test]` per conformance test; `$fixture` is an async fn
/// returning `(Arc<dyn Store>, guard)` with the store migrated (the guard cleans up
/// when dropped).
#[macro_export]
macro_rules! store_conformance {
    ($fixture:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let (store, _guard) = $fixture().await;
                common::$name(store).await;
            }
        )*
    };
    ($fixture:path) => {
        store_conformance!($fixture;
            migrate_is_idempotent,
            duplicates_are_skipped,
            traits_round_trip,
            event_types_and_trait_names,
            unrouted_and_empty_batches,
            routing_creates_and_joins_streams,
            expired_open_stream_is_replaced,
            concurrent_ingest_makes_one_stream,
            concurrent_claimers_claim_each_stream_once,
            expired_claims_are_released_and_retried,
            finish_stream_outcomes,
            claims_renew_while_ours,
            stream_event_windows,
            retry_outcome_waits_its_turn,
            trim_events_oldest_first,
            find_and_count_streams,
            find_and_count_events,
            untyped_trait_matches,
            reset_and_delete_streams,
            ids_differing_by_trailing_spaces_are_distinct,
            console_tallies_follow_the_store,
            finishing_many_runs_at_once,
        );
    };
}

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap() + Duration::microseconds(123_456)
}

pub fn secs(n: i64) -> DateTime<Utc> {
    t0() + Duration::seconds(n)
}

/// An event with text traits.
pub fn ev(message_id: &str, event_type: &str, at: DateTime<Utc>, traits: &[(&str, &str)]) -> Event {
    Event {
        event_type: event_type.to_string(),
        message_id: message_id.to_string(),
        timestamp: at,
        traits: traits
            .iter()
            .map(|(k, v)| (k.to_string(), TraitValue::Text(v.to_string())))
            .collect(),
    }
}

/// An event of instance `instance` (routed to the `test` trigger).
pub fn inst(message_id: &str, instance: &str, at: DateTime<Utc>) -> Event {
    ev(
        message_id,
        "compute.instance.update",
        at,
        &[("instance_id", instance)],
    )
}

/// Two triggers:
/// - `test`: every event with a text `instance_id`, distinguished by it; two fire
///   criteria (any event, and events of type `*.end`); fires once `fire_after` events
///   are in; expires `expire_after` after the last event.
/// - `daily`: every event with a `tenant_id`, distinguished by it and by the day of
///   its timestamp (a time range); no fire criteria, never fires.
pub struct TestRules {
    pub fire_after: u32,
    pub expire_after: Duration,
}

impl Default for TestRules {
    fn default() -> Self {
        TestRules {
            fire_after: 2,
            expire_after: Duration::hours(1),
        }
    }
}

pub fn day_of(t: DateTime<Utc>) -> TimeRange {
    let begin = t.duration_trunc(Duration::days(1)).unwrap();
    TimeRange::new(begin, begin + Duration::days(1))
}

impl StreamRules for TestRules {
    fn route(&self, event: &Event) -> Vec<Route> {
        let mut routes = Vec::new();
        if let Some(TraitValue::Text(id)) = event.traits.get("instance_id") {
            let mut dist = DistinguishingTraits::new();
            dist.insert("instance_id".into(), DistValue::Text(id.clone()));
            routes.push(Route {
                trigger_name: "test".into(),
                key: stream_key("test", &dist),
                distinguishing_traits: dist,
                fire_matches: vec![true, event.event_type.ends_with(".end")],
            });
        }
        if let Some(TraitValue::Text(tenant)) = event.traits.get("tenant_id") {
            let mut dist = DistinguishingTraits::new();
            dist.insert("tenant_id".into(), DistValue::Text(tenant.clone()));
            dist.insert(
                "timestamp".into(),
                DistValue::Range(day_of(event.timestamp)),
            );
            routes.push(Route {
                trigger_name: "daily".into(),
                key: stream_key("daily", &dist),
                distinguishing_traits: dist,
                fire_matches: vec![],
            });
        }
        routes
    }

    fn update(
        &self,
        trigger_name: &str,
        stream: &mut StreamBookkeeping,
        appended: &[(DateTime<Utc>, &[bool])],
        now: DateTime<Utc>,
    ) {
        for (at, matches) in appended {
            stream.first_event = Some(stream.first_event.map_or(*at, |f| f.min(*at)));
            stream.last_event = Some(stream.last_event.map_or(*at, |l| l.max(*at)));
            stream.event_count += 1;
            for (count, m) in stream.fire_counts.iter_mut().zip(matches.iter()) {
                *count += u32::from(*m);
            }
        }
        stream.expire_timestamp = stream.last_event.map(|l| l + self.expire_after);
        if trigger_name == "test"
            && stream.fire_timestamp.is_none()
            && stream
                .fire_counts
                .first()
                .is_some_and(|c| *c >= self.fire_after)
        {
            stream.fire_timestamp = Some(now);
        }
    }
}

fn rules() -> TestRules {
    TestRules::default()
}

fn by_name(name: &str) -> StreamQuery {
    StreamQuery {
        name: Some(name.into()),
        ..StreamQuery::default()
    }
}

fn by_instance(instance: &str) -> StreamQuery {
    StreamQuery {
        name: Some("test".into()),
        distinguishing_traits: vec![("instance_id".into(), DistValue::Text(instance.into()))],
        ..StreamQuery::default()
    }
}

async fn message_ids(store: &dyn Store, stream_id: i64) -> Vec<String> {
    store
        .stream_events(stream_id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event.message_id)
        .collect()
}

// --- the tests -------------------------------------------------------------------

pub async fn migrate_is_idempotent(store: Arc<dyn Store>) {
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    assert!(["sqlite", "mysql"].contains(&store.backend()));
}

/// Message ids and event type names compare exactly, trailing spaces and NUL bytes
/// included, in one batch and across batches, on every backend (MariaDB's PAD SPACE
/// collations once made `"X"` and `"X "` one key to the index and two to the engine).
pub async fn ids_differing_by_trailing_spaces_are_distinct(store: Arc<dyn Store>) {
    let r = store
        .ingest(
            &[
                ev("X", "a.b", secs(0), &[]),
                ev("X ", "a.b", secs(1), &[]),
                ev("Y", "a.b ", secs(2), &[]),
            ],
            &rules(),
            secs(10),
        )
        .await
        .unwrap();
    assert_eq!((r.stored, r.duplicates), (3, 0));
    let r = store
        .ingest(
            &[
                ev("Y ", "a.b", secs(3), &[]),
                ev("X ", "a.b", secs(4), &[]),
                ev("nul\u{0}id", "a.b", secs(5), &[]),
            ],
            &rules(),
            secs(10),
        )
        .await
        .unwrap();
    assert_eq!((r.stored, r.duplicates), (2, 1));
    for id in ["X", "X ", "Y", "Y ", "nul\u{0}id"] {
        let got = store.get_event(id).await.unwrap();
        assert_eq!(got.map(|e| e.event.message_id), Some(id.to_string()));
    }
    assert_eq!(
        store
            .get_event("Y")
            .await
            .unwrap()
            .unwrap()
            .event
            .event_type,
        "a.b "
    );
    assert_eq!(
        store
            .get_event("X")
            .await
            .unwrap()
            .unwrap()
            .event
            .event_type,
        "a.b"
    );
}

pub async fn duplicates_are_skipped(store: Arc<dyn Store>) {
    let first = ev("m-1", "a.b", secs(0), &[("v", "first")]);
    let again = ev("m-1", "a.b", secs(1), &[("v", "second")]);
    let r = store
        .ingest(
            &[first.clone(), ev("m-2", "a.b", secs(2), &[]), again],
            &rules(),
            secs(10),
        )
        .await
        .unwrap();
    assert_eq!((r.stored, r.duplicates), (2, 1));
    let r = store
        .ingest(
            &[
                ev("m-1", "a.b", secs(3), &[]),
                ev("m-3", "a.b", secs(3), &[]),
                ev("m-2", "x", secs(4), &[]),
            ],
            &rules(),
            secs(10),
        )
        .await
        .unwrap();
    assert_eq!((r.stored, r.duplicates), (1, 2));
    let r = store
        .ingest(&[ev("m-3", "a.b", secs(3), &[])], &rules(), secs(10))
        .await
        .unwrap();
    assert_eq!((r.stored, r.duplicates), (0, 1));
    assert_eq!(store.count_events(&EventQuery::default()).await.unwrap(), 3);
    // The first occurrence in a batch wins; message ids compare case-sensitively.
    assert_eq!(store.get_event("m-1").await.unwrap().unwrap().event, first);
    assert!(store.get_event("M-1").await.unwrap().is_none());
    let r = store
        .ingest(&[ev("M-1", "a.b", secs(5), &[])], &rules(), secs(10))
        .await
        .unwrap();
    assert_eq!((r.stored, r.duplicates), (1, 0));
}

pub fn every_type_event(message_id: &str) -> Event {
    let long: String = "ünïcødé ✓ 漢字 ".repeat(40);
    assert!(long.len() > 255);
    let mut traits = BTreeMap::new();
    traits.insert("long".to_string(), TraitValue::Text(long));
    traits.insert("empty".to_string(), TraitValue::Text(String::new()));
    traits.insert("Case".to_string(), TraitValue::Text("UPPER".into()));
    traits.insert("case".to_string(), TraitValue::Text("lower".into()));
    traits.insert("big".to_string(), TraitValue::Int(i64::MAX));
    traits.insert("small".to_string(), TraitValue::Int(i64::MIN));
    traits.insert("zero".to_string(), TraitValue::Int(0));
    traits.insert("tenth".to_string(), TraitValue::Float(0.1));
    traits.insert(
        "huge".to_string(),
        TraitValue::Float(-1.234_567_890_123_456_7e300),
    );
    traits.insert("tiny".to_string(), TraitValue::Float(5e-324));
    traits.insert(
        "launched_at".to_string(),
        TraitValue::Datetime(
            Utc.with_ymd_and_hms(2015, 1, 31, 23, 59, 59).unwrap()
                + Duration::microseconds(999_999),
        ),
    );
    traits.insert(
        "ancient".to_string(),
        TraitValue::Datetime(Utc.with_ymd_and_hms(1900, 2, 3, 4, 5, 6).unwrap()),
    );
    Event {
        event_type: "compute.instance.exists".into(),
        message_id: message_id.into(),
        timestamp: secs(7) + Duration::microseconds(1),
        traits,
    }
}

pub async fn traits_round_trip(store: Arc<dyn Store>) {
    let mut e = every_type_event("every-type");
    e.traits
        .insert("instance_id".into(), TraitValue::Text("i-ü".into()));
    let r = store
        .ingest(&[e.clone()], &rules(), secs(10))
        .await
        .unwrap();
    assert_eq!(r.stored, 1);
    let got = store.get_event("every-type").await.unwrap().unwrap();
    assert_eq!(got.event, e);
    let found = store.find_events(&EventQuery::default()).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0], got);
    let streams = store.find_streams(&by_instance("i-ü")).await.unwrap();
    assert_eq!(streams.len(), 1);
    let in_stream = store.stream_events(streams[0].id).await.unwrap();
    assert_eq!(in_stream, vec![got]);
}

pub async fn event_types_and_trait_names(store: Arc<dyn Store>) {
    store
        .ingest(
            &[
                every_type_event("e1"),
                ev("e2", "b.type", secs(1), &[("x", "1")]),
                ev("e3", "a.type", secs(1), &[]),
            ],
            &rules(),
            secs(10),
        )
        .await
        .unwrap();
    // Cached and uncached names in one batch.
    store
        .ingest(
            &[
                ev("e4", "b.type", secs(2), &[]),
                ev("e5", "c.type", secs(2), &[]),
            ],
            &rules(),
            secs(10),
        )
        .await
        .unwrap();
    assert_eq!(
        store.event_types().await.unwrap(),
        vec!["a.type", "b.type", "c.type", "compute.instance.exists"]
    );
    let names = store.trait_names("compute.instance.exists").await.unwrap();
    let expected: Vec<(String, TraitType)> = every_type_event("x")
        .traits
        .iter()
        .map(|(k, v)| (k.clone(), v.trait_type()))
        .collect();
    assert_eq!(names, expected);
    assert_eq!(
        store.trait_names("b.type").await.unwrap(),
        vec![("x".to_string(), TraitType::Text)]
    );
    assert!(store.trait_names("nope").await.unwrap().is_empty());
}

pub async fn unrouted_and_empty_batches(store: Arc<dyn Store>) {
    let r = store.ingest(&[], &rules(), secs(0)).await.unwrap();
    assert_eq!(r, Default::default());
    let r = store
        .ingest(
            &[
                ev("u1", "x", secs(0), &[]),
                ev("u2", "x", secs(1), &[("other", "1")]),
            ],
            &rules(),
            secs(5),
        )
        .await
        .unwrap();
    assert_eq!((r.stored, r.streams_created, r.stream_events), (2, 0, 0));
    assert!(r.per_trigger.is_empty());
    assert_eq!(
        store.count_streams(&StreamQuery::default()).await.unwrap(),
        0
    );
}

pub async fn routing_creates_and_joins_streams(store: Arc<dyn Store>) {
    // Out of order within the batch: the stream hands them back in time order.
    let mut b = inst("b", "i-1", secs(20));
    b.traits
        .insert("tenant_id".into(), TraitValue::Text("t-1".into()));
    let r = store
        .ingest(
            &[b, inst("a", "i-1", secs(10)), inst("c", "i-2", secs(15))],
            &rules(),
            secs(30),
        )
        .await
        .unwrap();
    assert_eq!(r.stored, 3);
    assert_eq!(r.streams_created, 3); // i-1, i-2, daily t-1
    assert_eq!(r.stream_events, 4);
    assert_eq!(r.streams_ready, 1); // i-1 has two events
    assert_eq!(r.per_trigger["test"].added_events, 3);
    assert_eq!(r.per_trigger["test"].new_streams, 2);
    assert_eq!(r.per_trigger["test"].ready_to_fire, 1);
    assert_eq!(r.per_trigger["daily"].new_streams, 1);
    assert_eq!(r.per_trigger["daily"].ready_to_fire, 0);

    let s1 = &store.find_streams(&by_instance("i-1")).await.unwrap()[0];
    assert_eq!(s1.name, "test");
    assert_eq!(s1.state, StreamState::Active);
    assert_eq!(s1.state_serial_no, 0);
    assert_eq!((s1.first_event, s1.last_event), (secs(10), secs(20)));
    assert_eq!(s1.event_count, 2);
    assert_eq!(s1.fire_counts, vec![2, 0]);
    assert_eq!(s1.fire_timestamp, Some(secs(30)));
    assert_eq!(s1.expire_timestamp, Some(secs(20) + Duration::hours(1)));
    assert_eq!(s1.claim_until, None);
    assert_eq!(message_ids(&*store, s1.id).await, vec!["a", "b"]);

    let s2 = &store.find_streams(&by_instance("i-2")).await.unwrap()[0];
    assert_eq!((s2.event_count, s2.fire_timestamp), (1, None));
    assert_eq!(s2.fire_counts, vec![1, 0]);

    let daily = &store.find_streams(&by_name("daily")).await.unwrap()[0];
    assert_eq!(daily.fire_counts, Vec::<u32>::new());
    let mut dist = DistinguishingTraits::new();
    dist.insert("tenant_id".into(), DistValue::Text("t-1".into()));
    dist.insert("timestamp".into(), DistValue::Range(day_of(secs(20))));
    assert_eq!(daily.distinguishing_traits, dist);

    // Joining: i-2 gets its second event (an `.end`) and becomes ready; i-1 goes on
    // collecting, its fire timestamp unchanged.
    let r = store
        .ingest(
            &[
                ev(
                    "d",
                    "compute.instance.delete.end",
                    secs(16),
                    &[("instance_id", "i-2")],
                ),
                inst("e", "i-1", secs(5)),
            ],
            &rules(),
            secs(40),
        )
        .await
        .unwrap();
    assert_eq!(
        (r.streams_created, r.stream_events, r.streams_ready),
        (0, 2, 1)
    );
    let s2 = store.get_stream(s2.id).await.unwrap().unwrap();
    assert_eq!(s2.event_count, 2);
    assert_eq!(s2.fire_counts, vec![2, 1]);
    assert_eq!(s2.fire_timestamp, Some(secs(40)));
    assert_eq!((s2.first_event, s2.last_event), (secs(15), secs(16)));
    let s1 = store.get_stream(s1.id).await.unwrap().unwrap();
    assert_eq!(s1.event_count, 3);
    assert_eq!(s1.fire_timestamp, Some(secs(30)));
    assert_eq!(s1.first_event, secs(5));
    assert_eq!(message_ids(&*store, s1.id).await, vec!["e", "a", "b"]);
    assert_eq!(
        store.count_streams(&StreamQuery::default()).await.unwrap(),
        3
    );
}

pub async fn expired_open_stream_is_replaced(store: Arc<dyn Store>) {
    store
        .ingest(&[inst("a", "i-1", secs(0))], &rules(), secs(0))
        .await
        .unwrap();
    let old = store
        .find_streams(&by_instance("i-1"))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(old.expire_timestamp, Some(secs(3600)));
    // Still open just before the expiry...
    store
        .ingest(&[inst("b", "i-1", secs(100))], &rules(), secs(3599))
        .await
        .unwrap();
    // ...now expiring at 3700; at 3700 it no longer collects.
    let r = store
        .ingest(&[inst("c", "i-1", secs(3700))], &rules(), secs(3700))
        .await
        .unwrap();
    assert_eq!(r.streams_created, 1);
    let streams = store.find_streams(&by_instance("i-1")).await.unwrap();
    assert_eq!(streams.len(), 2);
    let (new, old) = (&streams[0], &streams[1]); // newest first
    assert!(new.id > old.id);
    assert_eq!(message_ids(&*store, old.id).await, vec!["a", "b"]);
    assert_eq!(message_ids(&*store, new.id).await, vec!["c"]);
    // The old one is still active (the expirer's business) but collects no more.
    assert_eq!(old.state, StreamState::Active);
    store
        .ingest(&[inst("d", "i-1", secs(3800))], &rules(), secs(3800))
        .await
        .unwrap();
    assert_eq!(message_ids(&*store, new.id).await, vec!["c", "d"]);
    assert_eq!(
        store.get_stream(old.id).await.unwrap().unwrap().event_count,
        2
    );
    let expiring = store
        .claim_ready(ReadyKind::Expire, secs(3701), 10, secs(9999))
        .await
        .unwrap();
    assert_eq!(
        expiring.iter().map(|s| s.id).collect::<Vec<_>>(),
        vec![old.id]
    );
}

pub async fn concurrent_ingest_makes_one_stream(store: Arc<dyn Store>) {
    const ROUNDS: usize = 40;
    for round in 0..ROUNDS {
        let instance = format!("race-{round}");
        let mut tasks = Vec::new();
        for side in ["a", "b"] {
            let store = store.clone();
            // Odd rounds race only on the stream (its unique open_key); even rounds
            // also on a shared event (its unique message_id).
            let mut batch = vec![inst(
                &format!("{instance}-{side}"),
                &instance,
                secs(round as i64),
            )];
            if round % 2 == 0 {
                batch.push(inst(
                    &format!("{instance}-shared"),
                    &instance,
                    secs(round as i64),
                ));
            }
            tasks.push(tokio::spawn(async move {
                store.ingest(&batch, &TestRules::default(), secs(100)).await
            }));
        }
        let mut stored = 0;
        let mut duplicates = 0;
        let mut created = 0;
        for t in tasks {
            let r = t.await.unwrap().unwrap();
            stored += r.stored;
            duplicates += r.duplicates;
            created += r.streams_created;
        }
        let mut expected = vec![format!("{instance}-a"), format!("{instance}-b")];
        if round % 2 == 0 {
            expected.push(format!("{instance}-shared"));
            assert_eq!((stored, duplicates, created), (3, 1, 1), "round {round}");
        } else {
            assert_eq!((stored, duplicates, created), (2, 0, 1), "round {round}");
        }
        let streams = store.find_streams(&by_instance(&instance)).await.unwrap();
        assert_eq!(streams.len(), 1, "round {round}");
        assert_eq!(streams[0].event_count, expected.len() as u64);
        let mut ids = message_ids(&*store, streams[0].id).await;
        ids.sort();
        assert_eq!(ids, expected);
    }
    assert_eq!(
        store.count_streams(&by_name("test")).await.unwrap(),
        ROUNDS as u64
    );
}

pub async fn concurrent_claimers_claim_each_stream_once(store: Arc<dyn Store>) {
    const STREAMS: usize = 1000;
    let events: Vec<Event> = (0..STREAMS)
        .flat_map(|i| {
            let instance = format!("i-{i}");
            [
                inst(&format!("{i}-1"), &instance, secs(0)),
                inst(&format!("{i}-2"), &instance, secs(1)),
            ]
        })
        .collect();
    for chunk in events.chunks(500) {
        store.ingest(chunk, &rules(), secs(2)).await.unwrap();
    }
    let ready = StreamQuery {
        state: Some(StreamState::Active),
        ..StreamQuery::default()
    };
    assert_eq!(store.count_streams(&ready).await.unwrap(), STREAMS as u64);
    // The backlog gauge's count: every stream is ready to fire at 3 s, none at 0 s.
    assert_eq!(
        store.count_ready(ReadyKind::Fire, secs(3)).await.unwrap(),
        STREAMS as u64
    );
    assert_eq!(
        store.count_ready(ReadyKind::Fire, secs(0)).await.unwrap(),
        0
    );
    let mut workers = Vec::new();
    for _ in 0..4 {
        let store = store.clone();
        workers.push(tokio::spawn(async move {
            let mut claimed = Vec::new();
            loop {
                let batch = store
                    .claim_ready(ReadyKind::Fire, secs(3), 25, secs(600))
                    .await
                    .unwrap();
                if batch.is_empty() {
                    return claimed;
                }
                for s in batch {
                    assert_eq!(s.state, StreamState::Firing);
                    assert_eq!(s.state_serial_no, 1);
                    assert_eq!(s.claim_until, Some(secs(600)));
                    claimed.push(s.id);
                }
            }
        }));
    }
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.unwrap());
    }
    let unique: HashSet<i64> = all.iter().copied().collect();
    assert_eq!(all.len(), STREAMS, "every stream claimed exactly once");
    assert_eq!(unique.len(), STREAMS);
    let firing = StreamQuery {
        state: Some(StreamState::Firing),
        ..StreamQuery::default()
    };
    assert_eq!(store.count_streams(&firing).await.unwrap(), STREAMS as u64);
    assert_eq!(
        store.count_ready(ReadyKind::Fire, secs(3)).await.unwrap(),
        0,
        "claimed streams are no backlog"
    );
    // A claimed stream collects no more: a new event for it starts a new stream.
    let r = store
        .ingest(&[inst("late", "i-0", secs(4))], &rules(), secs(4))
        .await
        .unwrap();
    assert_eq!(r.streams_created, 1);
}

pub async fn expired_claims_are_released_and_retried(store: Arc<dyn Store>) {
    store
        .ingest(
            &[inst("a", "i-1", secs(0)), inst("b", "i-1", secs(1))],
            &rules(),
            secs(1),
        )
        .await
        .unwrap();
    assert!(store
        .claim_ready(ReadyKind::Fire, secs(1), 10, secs(100))
        .await
        .unwrap()
        .is_empty());
    let claimed = store
        .claim_ready(ReadyKind::Fire, secs(2), 10, secs(100))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let s = &claimed[0];
    assert!(store
        .claim_ready(ReadyKind::Fire, secs(2), 10, secs(100))
        .await
        .unwrap()
        .is_empty());
    // The worker dies: nothing happens until the claim runs out.
    assert_eq!(store.release_expired_claims(secs(99)).await.unwrap(), 0);
    assert_eq!(store.release_expired_claims(secs(101)).await.unwrap(), 1);
    let retry = store.get_stream(s.id).await.unwrap().unwrap();
    assert_eq!(retry.state, StreamState::RetryFire);
    assert_eq!(retry.state_serial_no, s.state_serial_no + 1);
    assert_eq!(retry.claim_until, None);
    // The dead worker's late finish is refused.
    assert!(!store
        .finish_stream(s.id, s.state_serial_no, Outcome::Completed)
        .await
        .unwrap());
    let again = store
        .claim_ready(ReadyKind::Fire, secs(102), 10, secs(200))
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].state, StreamState::Firing);
    assert!(store
        .finish_stream(s.id, again[0].state_serial_no, Outcome::Completed)
        .await
        .unwrap());
    assert_eq!(store.release_expired_claims(secs(1000)).await.unwrap(), 0);

    // The expire side: expiring → retry_expire → expiring.
    store
        .ingest(&[inst("c", "i-2", secs(0))], &rules(), secs(0))
        .await
        .unwrap();
    let exp = store
        .claim_ready(ReadyKind::Expire, secs(4000), 10, secs(4100))
        .await
        .unwrap();
    assert_eq!(exp.len(), 1);
    assert_eq!(exp[0].state, StreamState::Expiring);
    assert_eq!(store.release_expired_claims(secs(4200)).await.unwrap(), 1);
    assert_eq!(
        store.get_stream(exp[0].id).await.unwrap().unwrap().state,
        StreamState::RetryExpire
    );
    // retry_expire streams are not fire candidates.
    assert!(store
        .claim_ready(ReadyKind::Fire, secs(9000), 10, secs(9100))
        .await
        .unwrap()
        .is_empty());
    let exp2 = store
        .claim_ready(ReadyKind::Expire, secs(4300), 10, secs(4400))
        .await
        .unwrap();
    assert_eq!(exp2.len(), 1);
    assert!(store
        .finish_stream(exp2[0].id, exp2[0].state_serial_no, Outcome::ExpireError)
        .await
        .unwrap());
    assert_eq!(
        store.get_stream(exp2[0].id).await.unwrap().unwrap().state,
        StreamState::ExpireError
    );
}

pub async fn finish_stream_outcomes(store: Arc<dyn Store>) {
    let mut events = Vec::new();
    for i in 0..4 {
        let instance = format!("i-{i}");
        events.push(inst(&format!("{i}-a"), &instance, secs(0)));
        events.push(inst(&format!("{i}-b"), &instance, secs(1)));
    }
    store.ingest(&events, &rules(), secs(1)).await.unwrap();
    let claimed = store
        .claim_ready(ReadyKind::Fire, secs(2), 10, secs(100))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 4);
    let outcomes = [
        (Outcome::Completed, Some(StreamState::Completed)),
        (Outcome::Error, Some(StreamState::Error)),
        (Outcome::ExpireError, Some(StreamState::ExpireError)),
        (Outcome::Purge, None),
    ];
    for (s, (outcome, state)) in claimed.iter().zip(outcomes) {
        assert!(!store
            .finish_stream(s.id, s.state_serial_no - 1, outcome)
            .await
            .unwrap());
        assert!(store
            .finish_stream(s.id, s.state_serial_no, outcome)
            .await
            .unwrap());
        assert!(!store
            .finish_stream(s.id, s.state_serial_no, outcome)
            .await
            .unwrap());
        let after = store.get_stream(s.id).await.unwrap();
        match state {
            Some(state) => {
                let after = after.unwrap();
                assert_eq!(after.state, state);
                assert_eq!(after.state_serial_no, s.state_serial_no + 1);
                assert_eq!(after.claim_until, None);
            }
            None => {
                assert!(after.is_none());
                assert!(store.stream_events(s.id).await.unwrap().is_empty());
                let q = StreamQuery {
                    distinguishing_traits: s.distinguishing_traits.clone().into_iter().collect(),
                    ..StreamQuery::default()
                };
                assert_eq!(store.count_streams(&q).await.unwrap(), 0);
                // Its events stay.
                assert_eq!(store.count_events(&EventQuery::default()).await.unwrap(), 8);
            }
        }
    }
    assert!(!store
        .finish_stream(999_999, 0, Outcome::Completed)
        .await
        .unwrap());
}

pub async fn trim_events_oldest_first(store: Arc<dyn Store>) {
    let events: Vec<Event> = (0..10)
        .map(|i| {
            let mut e = every_type_event(&format!("t{i}"));
            e.timestamp = secs(9 - i); // stored newest first
            e.traits
                .insert("instance_id".into(), TraitValue::Text("i-1".into()));
            e
        })
        .collect();
    store.ingest(&events, &rules(), secs(20)).await.unwrap();
    let stream = store
        .find_streams(&by_instance("i-1"))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(store.trim_events(secs(5), 3).await.unwrap(), 3);
    for gone in ["t9", "t8", "t7"] {
        assert!(store.get_event(gone).await.unwrap().is_none());
    }
    assert!(store.get_event("t6").await.unwrap().is_some());
    assert_eq!(store.trim_events(secs(5), 3).await.unwrap(), 2);
    assert_eq!(store.trim_events(secs(5), 3).await.unwrap(), 0);
    assert_eq!(store.trim_events(secs(100), 0).await.unwrap(), 0);
    assert_eq!(
        message_ids(&*store, stream.id).await,
        vec!["t4", "t3", "t2", "t1", "t0"]
    );
    let left = store.find_events(&EventQuery::default()).await.unwrap();
    assert_eq!(left.len(), 5);
    assert!(left
        .iter()
        .all(|e| e.event.traits.len() == every_type_event("x").traits.len() + 1));
    // Another event type's traits would be unaffected; trait names remain.
    assert!(!store
        .trait_names("compute.instance.exists")
        .await
        .unwrap()
        .is_empty());
}

pub async fn find_and_count_streams(store: Arc<dyn Store>) {
    // Streams 1..=6: i-0..i-5 with first/last events at 10*i, 10*i+1; i-5 with a
    // tenant, so also a daily stream (7).
    let mut events = Vec::new();
    for i in 0..6i64 {
        let instance = format!("i-{i}");
        let mut a = inst(&format!("{i}-a"), &instance, secs(10 * i));
        if i == 5 {
            a.traits
                .insert("tenant_id".into(), TraitValue::Text("t".into()));
        }
        events.push(a);
        if i % 2 == 0 {
            events.push(inst(&format!("{i}-b"), &instance, secs(10 * i + 1)));
        }
    }
    for e in events {
        store.ingest(&[e], &rules(), secs(100)).await.unwrap();
    }
    let all = store.find_streams(&StreamQuery::default()).await.unwrap();
    assert_eq!(all.len(), 7);
    let ids: Vec<i64> = all.iter().map(|s| s.id).collect();
    let mut sorted = ids.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(ids, sorted, "newest first by default");
    let q = |f: &dyn Fn(&mut StreamQuery)| {
        let mut q = StreamQuery::default();
        f(&mut q);
        q
    };
    let check = |query: StreamQuery, expect: usize| {
        let store = store.clone();
        async move {
            let found = store.find_streams(&query).await.unwrap();
            assert_eq!(found.len(), expect, "{query:?}");
            assert_eq!(store.count_streams(&query).await.unwrap(), expect as u64);
            found
        }
    };
    let i0 = &all[all.len() - 1];
    let found = check(q(&|q| q.stream_id = Some(i0.id)), 1).await;
    assert_eq!(
        found[0].distinguishing_traits["instance_id"],
        DistValue::Text("i-0".into())
    );
    check(q(&|q| q.state = Some(StreamState::Active)), 7).await;
    // Ready streams (i-0, i-2, i-4) fired:
    let fired = store
        .claim_ready(ReadyKind::Fire, secs(101), 10, secs(200))
        .await
        .unwrap();
    assert_eq!(fired.len(), 3);
    check(q(&|q| q.state = Some(StreamState::Firing)), 3).await;
    check(q(&|q| q.state = Some(StreamState::Active)), 4).await;
    check(q(&|q| q.older_than = Some(secs(20))), 2).await; // first_event < 20: i-0, i-1
    check(q(&|q| q.younger_than = Some(secs(40))), 3).await; // last_event > 40: i-4 (41), i-5, daily
    check(q(&|q| q.name = Some("daily".into())), 1).await;
    check(q(&|q| q.name = Some("test".into())), 6).await;
    check(q(&|q| q.name = Some("nope".into())), 0).await;
    check(
        q(&|q| {
            q.distinguishing_traits = vec![("instance_id".into(), DistValue::Text("i-3".into()))]
        }),
        1,
    )
    .await;
    check(
        q(&|q| {
            q.distinguishing_traits = vec![("instance_id".into(), DistValue::Text("I-3".into()))]
        }),
        0,
    )
    .await;
    let range = DistValue::Range(day_of(secs(50)));
    check(
        q(&|q| q.distinguishing_traits = vec![("timestamp".into(), range.clone())]),
        1,
    )
    .await;
    check(
        q(&|q| {
            q.distinguishing_traits = vec![
                ("timestamp".into(), range.clone()),
                ("tenant_id".into(), DistValue::Text("t".into())),
            ]
        }),
        1,
    )
    .await;
    check(
        q(&|q| {
            q.distinguishing_traits =
                vec![("timestamp".into(), DistValue::Range(day_of(secs(86_400))))]
        }),
        0,
    )
    .await;
    check(
        q(&|q| {
            q.name = Some("test".into());
            q.state = Some(StreamState::Active);
            q.older_than = Some(secs(40));
        }),
        2,
    )
    .await; // i-1, i-3

    // Pages: descending below `after`, ascending above it.
    let desc = |after: Option<i64>, limit: u64| StreamQuery {
        page: Page {
            after,
            ascending: false,
            limit: Some(limit),
        },
        ..StreamQuery::default()
    };
    let page1 = store.find_streams(&desc(None, 3)).await.unwrap();
    assert_eq!(page1.iter().map(|s| s.id).collect::<Vec<_>>(), ids[..3]);
    let page2 = store
        .find_streams(&desc(Some(page1[2].id), 3))
        .await
        .unwrap();
    assert_eq!(page2.iter().map(|s| s.id).collect::<Vec<_>>(), ids[3..6]);
    let page3 = store
        .find_streams(&desc(Some(page2[2].id), 3))
        .await
        .unwrap();
    assert_eq!(page3.iter().map(|s| s.id).collect::<Vec<_>>(), ids[6..]);
    assert_eq!(
        store
            .count_streams(&desc(Some(page2[2].id), 3))
            .await
            .unwrap(),
        7
    );
    let asc = StreamQuery {
        page: Page {
            after: Some(ids[6]),
            ascending: true,
            limit: Some(2),
        },
        ..StreamQuery::default()
    };
    let up = store.find_streams(&asc).await.unwrap();
    assert_eq!(
        up.iter().map(|s| s.id).collect::<Vec<_>>(),
        vec![ids[5], ids[4]]
    );
    let asc_all = StreamQuery {
        page: Page {
            after: None,
            ascending: true,
            limit: None,
        },
        ..StreamQuery::default()
    };
    let mut rev = ids.clone();
    rev.reverse();
    assert_eq!(
        store
            .find_streams(&asc_all)
            .await
            .unwrap()
            .iter()
            .map(|s| s.id)
            .collect::<Vec<_>>(),
        rev
    );
}

pub async fn find_and_count_events(store: Arc<dyn Store>) {
    let mk = |i: i64| {
        let mut e = ev(
            &format!("e{i}"),
            if i % 2 == 0 { "even" } else { "odd" },
            secs(i),
            &[("name", &format!("n{i}"))],
        );
        e.traits.insert("n".into(), TraitValue::Int(i * 10));
        e.traits
            .insert("f".into(), TraitValue::Float(i as f64 / 4.0));
        e.traits
            .insert("when".into(), TraitValue::Datetime(secs(100 + i)));
        e
    };
    let events: Vec<Event> = (0..10).map(mk).collect();
    store.ingest(&events, &rules(), secs(0)).await.unwrap();
    let check = |query: EventQuery, expect: Vec<&'static str>| {
        let store = store.clone();
        async move {
            let found = store.find_events(&query).await.unwrap();
            let got: Vec<String> = found.iter().map(|e| e.event.message_id.clone()).collect();
            assert_eq!(got, expect, "{query:?}");
            let mut unpaged = query.clone();
            unpaged.page = Page::default();
            let all = store.find_events(&unpaged).await.unwrap().len() as u64;
            assert_eq!(store.count_events(&query).await.unwrap(), all, "{query:?}");
            for e in &found {
                assert_eq!(e.event, mk(e.event.message_id[1..].parse().unwrap()));
            }
        }
    };
    let q = |f: &dyn Fn(&mut EventQuery)| {
        let mut q = EventQuery::default();
        f(&mut q);
        q
    };
    let filter = |name: &str, op: TraitOp, value: TraitValue| TraitFilter {
        name: name.into(),
        op,
        value,
    };
    check(
        q(&|_| {}),
        vec!["e9", "e8", "e7", "e6", "e5", "e4", "e3", "e2", "e1", "e0"],
    )
    .await;
    check(q(&|q| q.from = Some(secs(6))), vec!["e9", "e8", "e7"]).await;
    check(q(&|q| q.to = Some(secs(2))), vec!["e2", "e1", "e0"]).await;
    check(
        q(&|q| {
            q.from = Some(secs(2));
            q.to = Some(secs(5));
            q.event_type = Some("odd".into());
        }),
        vec!["e5", "e3"],
    )
    .await;
    check(q(&|q| q.event_type = Some("none".into())), vec![]).await;
    let f = |traits: Vec<TraitFilter>| EventQuery {
        traits,
        ..EventQuery::default()
    };
    check(
        f(vec![filter(
            "name",
            TraitOp::Eq,
            TraitValue::Text("n3".into()),
        )]),
        vec!["e3"],
    )
    .await;
    check(
        f(vec![filter(
            "name",
            TraitOp::Eq,
            TraitValue::Text("N3".into()),
        )]),
        vec![],
    )
    .await;
    check(
        f(vec![filter(
            "name",
            TraitOp::Ne,
            TraitValue::Text("n3".into()),
        )]),
        vec!["e9", "e8", "e7", "e6", "e5", "e4", "e2", "e1", "e0"],
    )
    .await;
    check(
        f(vec![filter(
            "name",
            TraitOp::Gt,
            TraitValue::Text("n7".into()),
        )]),
        vec!["e9", "e8"],
    )
    .await;
    check(
        f(vec![filter("n", TraitOp::Lt, TraitValue::Int(20))]),
        vec!["e1", "e0"],
    )
    .await;
    check(
        f(vec![filter("n", TraitOp::Le, TraitValue::Int(20))]),
        vec!["e2", "e1", "e0"],
    )
    .await;
    check(
        f(vec![filter("n", TraitOp::Ge, TraitValue::Int(80))]),
        vec!["e9", "e8"],
    )
    .await;
    check(
        f(vec![filter("f", TraitOp::Gt, TraitValue::Float(1.9))]),
        vec!["e9", "e8"],
    )
    .await;
    check(
        f(vec![filter("f", TraitOp::Eq, TraitValue::Float(0.25))]),
        vec!["e1"],
    )
    .await;
    check(
        f(vec![filter(
            "when",
            TraitOp::Ge,
            TraitValue::Datetime(secs(108)),
        )]),
        vec!["e9", "e8"],
    )
    .await;
    // A typed filter does not match a trait of another type.
    check(
        f(vec![filter("name", TraitOp::Eq, TraitValue::Int(3))]),
        vec![],
    )
    .await;
    check(
        f(vec![
            filter("n", TraitOp::Gt, TraitValue::Int(10)),
            filter("n", TraitOp::Lt, TraitValue::Int(50)),
            filter("name", TraitOp::Ne, TraitValue::Text("n3".into())),
        ]),
        vec!["e4", "e2"],
    )
    .await;
    // Pages.
    let all = store.find_events(&EventQuery::default()).await.unwrap();
    let ids: Vec<i64> = all.iter().map(|e| e.id).collect();
    let page = |after: Option<i64>, ascending: bool, limit: Option<u64>| EventQuery {
        event_type: Some("even".into()),
        page: Page {
            after,
            ascending,
            limit,
        },
        ..EventQuery::default()
    };
    check(page(None, false, Some(2)), vec!["e8", "e6"]).await;
    check(page(Some(ids[2]), false, Some(2)), vec!["e6", "e4"]).await; // below e7
    check(page(Some(ids[2]), true, Some(5)), vec!["e8"]).await;
    check(page(None, true, Some(3)), vec!["e0", "e2", "e4"]).await;
    check(page(Some(ids[9]), true, None), vec!["e2", "e4", "e6", "e8"]).await;
    assert_eq!(
        store
            .count_events(&page(Some(ids[2]), true, Some(1)))
            .await
            .unwrap(),
        5
    );
}

pub async fn reset_and_delete_streams(store: Arc<dyn Store>) {
    let mut events = Vec::new();
    for i in 0..3 {
        let instance = format!("i-{i}");
        events.push(inst(&format!("{i}-a"), &instance, secs(0)));
        events.push(inst(&format!("{i}-b"), &instance, secs(1)));
    }
    store.ingest(&events, &rules(), secs(1)).await.unwrap();
    let claimed = store
        .claim_ready(ReadyKind::Fire, secs(2), 2, secs(100))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);
    let (a, b) = (&claimed[0], &claimed[1]);
    store
        .finish_stream(a.id, a.state_serial_no, Outcome::Error)
        .await
        .unwrap();
    store
        .finish_stream(b.id, b.state_serial_no, Outcome::ExpireError)
        .await
        .unwrap();
    let a2 = store.reset_stream(a.id).await.unwrap();
    assert_eq!(a2.state, StreamState::RetryFire);
    assert_eq!(a2.state_serial_no, a.state_serial_no + 2);
    assert_eq!(store.get_stream(a.id).await.unwrap().unwrap(), a2);
    let b2 = store.reset_stream(b.id).await.unwrap();
    assert_eq!(b2.state, StreamState::RetryExpire);
    assert_eq!(store.get_stream(b.id).await.unwrap().unwrap(), b2);
    match store.reset_stream(a.id).await {
        Err(StoreError::NotResettable { id, state }) => {
            assert_eq!((id, state), (a.id, StreamState::RetryFire))
        }
        other => panic!("expected NotResettable, got {other:?}"),
    }
    match store.reset_stream(987_654).await {
        Err(StoreError::NoSuchStream(987_654)) => {}
        other => panic!("expected NoSuchStream, got {other:?}"),
    }
    // retry_fire is claimable again.
    let again = store
        .claim_ready(ReadyKind::Fire, secs(3), 10, secs(100))
        .await
        .unwrap();
    assert_eq!(again.len(), 2); // a (retry_fire) and the third, still active
    assert!(again.iter().any(|s| s.id == a.id));

    assert!(store.delete_stream(b.id).await.unwrap());
    assert!(!store.delete_stream(b.id).await.unwrap());
    assert!(store.get_stream(b.id).await.unwrap().is_none());
    assert!(store.stream_events(b.id).await.unwrap().is_empty());
    assert_eq!(store.count_events(&EventQuery::default()).await.unwrap(), 6);
    assert_eq!(
        store.count_streams(&StreamQuery::default()).await.unwrap(),
        2
    );
}

/// The API's untyped trait filters (`traits=size<8`): the value is read as int, float
/// and text, and an event matches when the trait, in the type it was stored with,
/// satisfies the comparison with the reading of that type. The store first drops the
/// readings whose column never holds the trait (a plan choice); the results must not
/// depend on it, whichever types a trait was stored with.
pub async fn untyped_trait_matches(store: Arc<dyn Store>) {
    let mk = |id: &str, value: TraitValue| {
        let mut e = ev(id, "sized", secs(1), &[]);
        e.traits.insert("size".into(), value);
        e.traits.insert("count".into(), TraitValue::Int(3));
        e
    };
    let events = vec![
        mk("int5", TraitValue::Int(5)),
        mk("float7", TraitValue::Float(7.5)),
        mk("text9", TraitValue::Text("9".into())),
        mk("int12", TraitValue::Int(12)),
    ];
    store.ingest(&events, &rules(), secs(0)).await.unwrap();
    // As the API reads a value: as a number when it is one, as text for (in)equality.
    let readings = |op: TraitOp, v: &str| -> Vec<TraitValue> {
        let mut r = Vec::new();
        if let Ok(i) = v.parse::<i64>() {
            r.push(TraitValue::Int(i));
        }
        if let Ok(f) = v.parse::<f64>() {
            r.push(TraitValue::Float(f));
        }
        if matches!(op, TraitOp::Eq | TraitOp::Ne) {
            r.push(TraitValue::Text(v.to_string()));
        }
        r
    };
    let check = |name: &'static str, op: TraitOp, v: &'static str, expect: Vec<&'static str>| {
        let store = store.clone();
        let query = EventQuery {
            trait_matches: vec![TraitMatch {
                name: name.into(),
                op,
                values: readings(op, v),
            }],
            ..EventQuery::default()
        };
        async move {
            let mut got: Vec<String> = store
                .find_events(&query)
                .await
                .unwrap()
                .iter()
                .map(|e| e.event.message_id.clone())
                .collect();
            got.sort();
            let mut expect: Vec<String> = expect.iter().map(|s| s.to_string()).collect();
            expect.sort();
            assert_eq!(got, expect, "{query:?}");
            assert_eq!(
                store.count_events(&query).await.unwrap(),
                expect.len() as u64,
                "{query:?}"
            );
        }
    };
    // size is stored as int, float and text: each event compared in its own type.
    check("size", TraitOp::Lt, "8", vec!["int5", "float7"]).await;
    // 7.5 has no int reading: int sizes are not compared with it.
    check("size", TraitOp::Ge, "7.5", vec!["float7"]).await;
    check("size", TraitOp::Eq, "9", vec!["text9"]).await;
    check("size", TraitOp::Eq, "12", vec!["int12"]).await;
    // count is only ever an int: the float and text readings are dropped, same answer.
    check(
        "count",
        TraitOp::Le,
        "3",
        vec!["int5", "float7", "text9", "int12"],
    )
    .await;
    check("count", TraitOp::Gt, "3", vec![]).await;
    // A trait stored in none of the readings' columns, or not at all, matches nothing.
    check("count", TraitOp::Eq, "three", vec![]).await;
    check("missing", TraitOp::Lt, "8", vec![]).await;
}

/// A claim is renewed while the stream is still ours (same serial, still firing);
/// once released or finished, renewing says no and changes nothing.
pub async fn claims_renew_while_ours(store: Arc<dyn Store>) {
    // Two events per instance: the test trigger fires at two.
    let events = [
        inst("r-a", "i-r", secs(0)),
        inst("r-a2", "i-r", secs(1)),
        inst("r-b", "i-s", secs(0)),
        inst("r-b2", "i-s", secs(1)),
    ];
    store.ingest(&events, &rules(), secs(1)).await.unwrap();
    let claimed = store
        .claim_ready(ReadyKind::Fire, secs(2), 10, secs(100))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);
    let (a, b) = (&claimed[0], &claimed[1]);
    // Renewed: the release that would have taken it at 150 s leaves it alone.
    assert!(store
        .renew_claim(a.id, a.state_serial_no, secs(200))
        .await
        .unwrap());
    let after = store.get_stream(a.id).await.unwrap().unwrap();
    assert_eq!(after.claim_until, Some(secs(200)));
    assert_eq!(
        after.state_serial_no, a.state_serial_no,
        "renewing keeps the serial"
    );
    assert_eq!(store.release_expired_claims(secs(150)).await.unwrap(), 1);
    assert_eq!(
        store.get_stream(a.id).await.unwrap().unwrap().state,
        StreamState::Firing
    );
    // b was released: its old claim cannot be renewed, nor finished.
    assert!(!store
        .renew_claim(b.id, b.state_serial_no, secs(300))
        .await
        .unwrap());
    let b_after = store.get_stream(b.id).await.unwrap().unwrap();
    assert_eq!(b_after.state, StreamState::RetryFire);
    assert_eq!(b_after.claim_until, None);
    // A stale serial never renews; a finished stream neither.
    assert!(!store
        .renew_claim(a.id, a.state_serial_no - 1, secs(300))
        .await
        .unwrap());
    assert!(store
        .finish_stream(a.id, a.state_serial_no, Outcome::Completed)
        .await
        .unwrap());
    assert!(!store
        .renew_claim(a.id, a.state_serial_no, secs(300))
        .await
        .unwrap());
    assert!(!store.renew_claim(999_999, 0, secs(300)).await.unwrap());
}

/// `Outcome::Retry` puts a firing stream in retry_fire and an expiring one in
/// retry_expire; neither is claimed again before its not-before time (wall clock).
pub async fn retry_outcome_waits_its_turn(store: Arc<dyn Store>) {
    let events = [
        inst("q-a", "i-q", secs(0)),
        inst("q-a2", "i-q", secs(1)),
        inst("q-b", "i-p", secs(0)),
        inst("q-b2", "i-p", secs(1)),
    ];
    store.ingest(&events, &rules(), secs(1)).await.unwrap();
    let fire = store
        .claim_ready(ReadyKind::Fire, secs(2), 1, secs(100))
        .await
        .unwrap();
    let expire = store
        .claim_ready(ReadyKind::Expire, secs(99_999), 1, secs(100))
        .await
        .unwrap();
    assert_eq!((fire.len(), expire.len()), (1, 1));
    let later = Utc::now() + Duration::hours(1);
    let (f, e) = (&fire[0], &expire[0]);
    for s in [f, e] {
        assert!(store
            .finish_stream(
                s.id,
                s.state_serial_no,
                Outcome::Retry { not_before: later }
            )
            .await
            .unwrap());
    }
    let f_after = store.get_stream(f.id).await.unwrap().unwrap();
    let e_after = store.get_stream(e.id).await.unwrap().unwrap();
    assert_eq!(f_after.state, StreamState::RetryFire);
    assert_eq!(e_after.state, StreamState::RetryExpire);
    assert_eq!(f_after.state_serial_no, f.state_serial_no + 1);
    // Not before its time, even though the stream's own time has long passed…
    for kind in [ReadyKind::Fire, ReadyKind::Expire] {
        let got = store
            .claim_ready(kind, secs(999_999), 10, secs(100))
            .await
            .unwrap();
        assert!(
            got.is_empty(),
            "{kind:?} claimed before its retry time: {got:?}"
        );
    }
    // …nor released as a dead claim.
    assert_eq!(
        store
            .release_expired_claims(later + Duration::hours(1))
            .await
            .unwrap(),
        0
    );
    // Once its time has come, a retried stream is claimed again.
    store
        .ingest(
            &[inst("q-c", "i-o", secs(0)), inst("q-c2", "i-o", secs(1))],
            &rules(),
            secs(1),
        )
        .await
        .unwrap();
    let c = store
        .claim_ready(ReadyKind::Fire, secs(2), 10, secs(100))
        .await
        .unwrap();
    assert_eq!(c.len(), 1, "only the new stream is claimable: {c:?}");
    let past = Utc::now() - Duration::seconds(1);
    assert!(store
        .finish_stream(
            c[0].id,
            c[0].state_serial_no,
            Outcome::Retry { not_before: past }
        )
        .await
        .unwrap());
    let again = store
        .claim_ready(ReadyKind::Fire, secs(2), 10, secs(100))
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id, c[0].id);
    assert_eq!(again[0].state, StreamState::Firing);
    assert_eq!(again[0].claim_until, Some(secs(100)));
}

/// `streams_events` reads each stream's events in time order, within a window.
pub async fn stream_event_windows(store: Arc<dyn Store>) {
    let mut events: Vec<Event> = (0..5)
        .map(|i| inst(&format!("w{i}"), "i-w", secs(10 * (5 - i))))
        .collect();
    events.extend((0..3).map(|i| inst(&format!("v{i}"), "i-v", secs(100 + i))));
    store.ingest(&events, &rules(), secs(200)).await.unwrap();
    let w = store.find_streams(&by_instance("i-w")).await.unwrap()[0].id;
    let v = store.find_streams(&by_instance("i-v")).await.unwrap()[0].id;
    let ids_of = |m: &BTreeMap<i64, Vec<StoredEvent>>, s: i64| -> Vec<String> {
        m.get(&s)
            .map(|es| es.iter().map(|e| e.event.message_id.clone()).collect())
            .unwrap_or_default()
    };
    let all = store
        .streams_events(&[w, v], EventWindow::ALL)
        .await
        .unwrap();
    assert_eq!(ids_of(&all, w), ["w4", "w3", "w2", "w1", "w0"]);
    assert_eq!(ids_of(&all, v), ["v0", "v1", "v2"]);
    let window = |offset, limit| EventWindow { offset, limit };
    let mid = store
        .streams_events(&[w, v], window(1, Some(2)))
        .await
        .unwrap();
    assert_eq!(ids_of(&mid, w), ["w3", "w2"]);
    assert_eq!(ids_of(&mid, v), ["v1", "v2"]);
    let tail = store
        .streams_events(&[w, v], window(4, Some(10)))
        .await
        .unwrap();
    assert_eq!(ids_of(&tail, w), ["w0"]);
    assert!(!tail.contains_key(&v), "past its end: absent");
    let rest = store.streams_events(&[w], window(3, None)).await.unwrap();
    assert_eq!(ids_of(&rest, w), ["w1", "w0"]);
    assert!(store
        .streams_events(&[w, v], window(0, Some(0)))
        .await
        .unwrap()
        .is_empty());
}

/// The console's counters ([`worker::store::tally`]) equal what is stored: after
/// ingest (a repeated batch counting once), after a trim, and for finished runs.
pub async fn console_tallies_follow_the_store(store: Arc<dyn Store>) {
    use worker::store::tally::RunOutcome;
    let day2 = secs(86_400);
    let mut events = vec![
        inst("a", "i-1", secs(0)),
        inst("b", "i-1", secs(30)),
        inst("c", "i-2", secs(61)),
        ev(
            "d",
            "compute.instance.exists",
            day2,
            &[("tenant_id", "t-1")],
        ),
    ];
    let mut typed = every_type_event("e");
    typed.timestamp = day2;
    events.push(typed);
    store.ingest(&events, &rules(), day2).await.unwrap();
    store.ingest(&events, &rules(), day2).await.unwrap();

    async fn assert_counts_match(store: &dyn Store) {
        let types = store.event_type_counts().await.unwrap();
        assert!(!types.is_empty());
        for (t, n) in &types {
            let q = EventQuery {
                event_type: Some(t.clone()),
                ..EventQuery::default()
            };
            assert_eq!(*n, store.count_events(&q).await.unwrap(), "events of {t}");
        }
        let per_minute: u64 = store
            .events_per_minute(secs(-86_400), secs(10 * 86_400))
            .await
            .unwrap()
            .iter()
            .map(|(_, n)| n)
            .sum();
        assert_eq!(
            per_minute,
            store.count_events(&EventQuery::default()).await.unwrap()
        );
        for (s, n) in store.stream_state_counts().await.unwrap() {
            let q = StreamQuery {
                state: Some(s),
                ..StreamQuery::default()
            };
            assert_eq!(n, store.count_streams(&q).await.unwrap(), "{s:?} streams");
        }
    }
    assert_counts_match(&*store).await;
    let minute = |t: DateTime<Utc>| t.duration_trunc(Duration::minutes(1)).unwrap();
    assert_eq!(
        store.events_per_minute(secs(0), secs(120)).await.unwrap(),
        vec![(minute(secs(0)), 2), (minute(secs(61)), 1)]
    );
    let day = |t: DateTime<Utc>| t.duration_trunc(Duration::days(1)).unwrap();
    assert_eq!(
        store
            .events_per_day("compute.instance.update", secs(0), day2 + Duration::days(1))
            .await
            .unwrap(),
        vec![(day(secs(0)), 3)]
    );
    assert_eq!(
        store
            .trait_names("compute.instance.exists")
            .await
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect::<HashSet<_>>()
            .len(),
        every_type_event("x").traits.len() + 1,
        "the typed event's traits and tenant_id"
    );

    // A trim takes its events back out of the counters.
    assert_eq!(store.trim_events(secs(45), 100).await.unwrap(), 2);
    assert_counts_match(&*store).await;
    assert_eq!(
        store.events_per_minute(secs(0), secs(120)).await.unwrap(),
        vec![(minute(secs(61)), 1)]
    );

    // Runs, told apart by what the run found: a fire completed, one failed, an expiry.
    let more: Vec<Event> = (0..4)
        .flat_map(|i| {
            let id = format!("r-{i}");
            [
                inst(&format!("{id}-1"), &id, day2),
                inst(&format!("{id}-2"), &id, day2),
            ]
        })
        .collect();
    store.ingest(&more, &rules(), day2).await.unwrap();
    let fired = store
        .claim_ready(
            ReadyKind::Fire,
            day2 + Duration::seconds(1),
            2,
            day2 + Duration::hours(1),
        )
        .await
        .unwrap();
    assert_eq!(fired.len(), 2);
    store
        .finish_stream(fired[0].id, fired[0].state_serial_no, Outcome::Completed)
        .await
        .unwrap();
    store
        .finish_stream(fired[1].id, fired[1].state_serial_no, Outcome::Error)
        .await
        .unwrap();
    let later = day2 + Duration::hours(3);
    let expired = store
        .claim_ready(ReadyKind::Expire, later, 1, later + Duration::hours(1))
        .await
        .unwrap();
    assert_eq!(expired.len(), 1);
    store
        .finish_stream(expired[0].id, expired[0].state_serial_no, Outcome::Purge)
        .await
        .unwrap();
    // A lost claim counts nothing.
    store
        .finish_stream(expired[0].id, expired[0].state_serial_no, Outcome::Purge)
        .await
        .unwrap();
    let now = Utc::now();
    let mut runs: Vec<(RunOutcome, u64)> = store
        .pipeline_runs(now - Duration::minutes(5), now + Duration::minutes(1))
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.outcome, r.runs))
        .collect();
    runs.sort();
    assert_eq!(
        runs,
        vec![
            (RunOutcome::Fired, 1),
            (RunOutcome::Expired, 1),
            (RunOutcome::FireError, 1)
        ]
    );
    assert_counts_match(&*store).await;

    // Collectors: the later times win.
    store
        .mark_collector("cell-1", secs(100), secs(90))
        .await
        .unwrap();
    store
        .mark_collector("cell-1", secs(50), secs(95))
        .await
        .unwrap();
    store
        .mark_collector("cell-2", secs(10), secs(5))
        .await
        .unwrap();
    let seen = store.collectors().await.unwrap();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        (
            seen[0].name.as_str(),
            seen[0].last_seen,
            seen[0].last_generated
        ),
        (
            "cell-1",
            secs(100).duration_trunc(Duration::microseconds(1)).unwrap(),
            secs(95)
        )
    );
    assert_eq!(seen[1].name, "cell-2");
}

/// `finish_streams` (replay's batched passes) records many runs in one go as
/// `finish_stream` would one by one: each stream's new state, a stale serial and a
/// stream named twice refused, a purge, a retry, and the run counters.
pub async fn finishing_many_runs_at_once(store: Arc<dyn Store>) {
    use worker::store::tally::RunOutcome;
    let t = secs(0);
    let events: Vec<Event> = (0..5)
        .map(|i| inst(&format!("m-{i}"), &format!("i-{i}"), t))
        .collect();
    store.ingest(&events, &rules(), t).await.unwrap();
    let later = t + Duration::hours(3);
    let claimed = store
        .claim_ready(ReadyKind::Expire, later, 5, later + Duration::hours(1))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 5);
    let run = |i: usize, outcome: Outcome| (claimed[i].id, claimed[i].state_serial_no, outcome);
    let not_before = Utc::now() + Duration::minutes(5);
    let runs = vec![
        run(0, Outcome::Completed),
        run(1, Outcome::ExpireError),
        (
            claimed[2].id,
            claimed[2].state_serial_no + 7,
            Outcome::Completed,
        ),
        run(3, Outcome::Purge),
        run(4, Outcome::Retry { not_before }),
        run(0, Outcome::Completed),
    ];
    assert_eq!(
        store.finish_streams(&runs).await.unwrap(),
        vec![true, true, false, true, true, false]
    );
    assert_eq!(store.finish_streams(&[]).await.unwrap(), Vec::<bool>::new());
    let mut states = Vec::new();
    for s in &claimed {
        states.push(store.get_stream(s.id).await.unwrap().map(|s| s.state));
    }
    assert_eq!(
        states,
        vec![
            Some(StreamState::Completed),
            Some(StreamState::ExpireError),
            Some(StreamState::Expiring),
            None,
            Some(StreamState::RetryExpire),
        ]
    );
    let now = Utc::now();
    let mut counted: Vec<(RunOutcome, u64)> = store
        .pipeline_runs(now - Duration::minutes(5), now + Duration::minutes(1))
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.outcome, r.runs))
        .collect();
    counted.sort();
    assert_eq!(
        counted,
        vec![
            (RunOutcome::Expired, 2),
            (RunOutcome::ExpireError, 1),
            (RunOutcome::Retried, 1)
        ]
    );
}
