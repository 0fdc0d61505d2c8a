use super::*;
use crate::distiller::Distiller;
use crate::event::{Event, ValueRef};
use crate::winchester::handlers::usage::{UsageHandler, FAILED, VERIFIED};
use crate::winchester::pipeline::{Handler, PipelineEnv};
use chrono::{Duration, NaiveDateTime};
use std::collections::{BTreeMap, HashMap, HashSet};

fn options(seed: u64) -> GeneratorOptions {
    let start = Utc
        .with_ymd_and_hms(2024, 3, 10, 9, 30, 0)
        .single()
        .expect("start");
    GeneratorOptions {
        seed,
        instances: 40,
        tenants: 8,
        start,
        end: Some(start + Duration::days(3)),
        operations_per_instance_per_day: 6.0,
        ..GeneratorOptions::default()
    }
}

fn generate(opts: GeneratorOptions) -> Vec<Value> {
    Generator::new(opts).expect("options").collect()
}

fn distiller() -> Distiller {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../etc/event_definitions.yaml");
    Distiller::from_file(path).expect("etc/event_definitions.yaml")
}

fn parse_ts(v: &Value) -> DateTime<Utc> {
    let s = v.as_str().expect("timestamp is text");
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f")
        .unwrap_or_else(|e| panic!("timestamp {s}: {e}"))
        .and_utc()
}

fn str_of<'a>(n: &'a Value, key: &str) -> &'a str {
    n[key].as_str().unwrap_or("")
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let a = serde_json::to_string(&generate(options(42))).expect("json");
    let b = serde_json::to_string(&generate(options(42))).expect("json");
    assert_eq!(a, b);
    let c = serde_json::to_string(&generate(options(43))).expect("json");
    assert_ne!(a, c);
    assert!(a.len() > 1_000_000, "{} bytes", a.len());
}

#[test]
fn output_is_in_time_order_and_stops_at_the_end() {
    let opts = options(1);
    let end = opts.end.expect("end");
    let mut generator = Generator::new(opts).expect("options");
    let mut last = DateTime::<Utc>::MIN_UTC;
    let mut n = 0;
    while let Some((at, v)) = generator.next_timed() {
        let ts = parse_ts(&v["timestamp"]);
        assert_eq!(ts, at);
        assert!(ts >= last, "{ts} after {last}");
        assert!(ts < end);
        last = ts;
        n += 1;
    }
    assert_eq!(generator.generated(), n);
    assert!(n > 1000, "{n}");
    assert!(generator.next_notification().is_none());
}

#[test]
fn everything_distills_without_drops() {
    let d = distiller();
    let all = generate(options(2));
    let mut types = HashSet::new();
    for n in &all {
        let event = d
            .distill(n)
            .unwrap_or_else(|e| panic!("dropped {}: {e}", n["event_type"]));
        types.insert(event.event_type.clone());
        if event.event_type.starts_with("compute.instance.") {
            for t in [
                "tenant_id",
                "instance_id",
                "host",
                "instance_flavor_id",
                "os_distro",
            ] {
                assert!(event.get(t).is_some(), "{} lacks {t}", event.event_type);
            }
        }
    }
    for t in [
        "compute.instance.create.start",
        "compute.instance.create.end",
        "compute.instance.delete.end",
        "compute.instance.resize.prep.start",
        "compute.instance.finish_resize.end",
        "compute.instance.resize.confirm.end",
        "compute.instance.rebuild.end",
        "compute.instance.snapshot.end",
        "compute.instance.power_off.end",
        "compute.instance.reboot.end",
        "compute.instance.update",
        "compute.instance.exists",
        "scheduler.run_instance.scheduled",
    ] {
        assert!(types.contains(t), "no {t} in {types:?}");
    }
}

#[test]
fn sizes_are_like_nova_notifications() {
    for n in generate(options(3)).iter().take(20_000) {
        let len = serde_json::to_string(n).expect("json").len();
        assert!(
            (2000..=4096).contains(&len),
            "{} is {len} bytes",
            n["event_type"]
        );
    }
}

#[test]
fn starts_and_ends_pair_up_per_instance() {
    // instance -> operation -> open .start
    let mut open: HashMap<String, Vec<String>> = HashMap::new();
    let mut pairs = 0;
    for n in generate(options(4)) {
        let et = str_of(&n, "event_type");
        let Some(rest) = et.strip_prefix("compute.instance.") else {
            continue;
        };
        let id = str_of(&n["payload"], "instance_id").to_string();
        if let Some(op) = rest.strip_suffix(".start") {
            let stack = open.entry(id).or_default();
            assert!(!stack.contains(&op.to_string()), "{op} started twice");
            stack.push(op.to_string());
        } else if let Some(op) = rest.strip_suffix(".end") {
            let stack = open.entry(id.clone()).or_default();
            let pos = stack
                .iter()
                .rposition(|o| o == op)
                .unwrap_or_else(|| panic!("{et} of {id} without its .start"));
            stack.remove(pos);
            pairs += 1;
        }
    }
    assert!(pairs > 100);
    // Only operations cut by the end of the run may be open.
    let still_open: usize = open.values().map(Vec::len).sum();
    assert!(still_open <= 40 * 2, "{still_open} operations never ended");
}

#[test]
fn every_instance_alive_in_a_day_gets_one_midnight_exists() {
    let opts = options(5);
    let all = generate(opts.clone());
    // Instances seen (by any notification) and deleted, per day.
    let mut seen_on: BTreeMap<String, HashSet<String>> = BTreeMap::new();
    let mut exists: HashMap<(String, String), usize> = HashMap::new();
    let mut deleted: HashMap<String, DateTime<Utc>> = HashMap::new();
    let mut last = DateTime::<Utc>::MIN_UTC;
    for n in &all {
        let ts = parse_ts(&n["timestamp"]);
        last = ts;
        let p = &n["payload"];
        let id = str_of(p, "instance_id").to_string();
        if id.is_empty() {
            continue;
        }
        match str_of(n, "event_type") {
            "compute.instance.exists" => {
                let apb = parse_ts(&p["audit_period_beginning"]);
                let ape = parse_ts(&p["audit_period_ending"]);
                if ape - apb != Duration::days(1) {
                    // The exists Nova sends before a resize or rebuild.
                    assert_eq!(apb, schedule::day_start(ts));
                    assert_eq!(ape, ts);
                    continue;
                }
                assert_eq!(apb, schedule::day_start(apb), "midnight");
                assert!((ape..ape + Duration::minutes(15)).contains(&ts));
                let launched = parse_ts(&p["launched_at"]);
                assert!(launched < ape);
                if str_of(p, "state") == "deleted" {
                    let d = parse_ts(&p["deleted_at"]);
                    assert!((apb..ape).contains(&d) && d >= launched);
                    assert_eq!(deleted.get(&id), Some(&d));
                } else {
                    assert_eq!(str_of(p, "deleted_at"), "");
                    assert!(!deleted.contains_key(&id), "exists after delete");
                }
                *exists.entry((id, format_timestamp(&apb))).or_default() += 1;
            }
            "compute.instance.delete.end" => {
                let d = parse_ts(&p["deleted_at"]);
                assert_eq!(schedule::day_start(d), schedule::day_start(ts));
                deleted.insert(id, d);
            }
            _ => {
                let day = format_timestamp(&schedule::day_start(ts));
                seen_on.entry(day).or_default().insert(id);
            }
        }
    }
    assert!(exists.values().all(|n| *n == 1), "one exists per day");
    let mut audited_days = 0;
    for (day, ids) in &seen_on {
        let midnight = parse_ts(&Value::String(day.clone())) + Duration::days(1);
        if midnight + Duration::minutes(15) > last {
            continue; // the run ended before that audit
        }
        audited_days += 1;
        for id in ids {
            assert!(
                exists.contains_key(&(id.clone(), day.clone())),
                "{id} had notifications on {day} but no exists"
            );
        }
    }
    assert!(audited_days >= 2);
    // Running instances with no notification in a day are audited too.
    let per_day = exists.len() / 3;
    assert!(per_day >= opts.instances / 2, "{per_day}");
}

/// Streams as the sandbox's test_trigger makes them (instance and day; an exists by
/// its audit period), through the usage handler: the audits verify.
#[tokio::test]
async fn usage_audits_verify() {
    let d = distiller();
    let mut streams: BTreeMap<(String, String), Vec<Event>> = BTreeMap::new();
    for n in generate(options(6)) {
        let event = d.distill(&n).expect("distills");
        if !event.event_type.starts_with("compute.instance.") {
            continue;
        }
        let Some(ValueRef::Text(id)) = event.get("instance_id") else {
            panic!("no instance_id");
        };
        let day = if event.event_type == "compute.instance.exists" {
            match event.get("audit_period_beginning") {
                Some(ValueRef::Datetime(apb)) => schedule::day_start(apb),
                other => panic!("audit_period_beginning {other:?}"),
            }
        } else {
            schedule::day_start(event.timestamp)
        };
        streams
            .entry((id.to_string(), format_timestamp(&day)))
            .or_default()
            .push(event);
    }
    let (mut verified, mut failed, mut fired) = (0, Vec::new(), 0);
    for ((id, day), mut events) in streams {
        // Fired streams only: those with their end-of-day exists.
        let eod = events.iter().any(|e| {
            e.event_type == "compute.instance.exists"
                && matches!(
                    (e.get("audit_period_beginning"), e.get("audit_period_ending")),
                    (Some(ValueRef::Datetime(b)), Some(ValueRef::Datetime(e)))
                        if e - b == Duration::days(1)
                )
        });
        if !eod {
            continue;
        }
        fired += 1;
        events.sort_by_key(|e| e.timestamp);
        let mut env = PipelineEnv::new(1, "test_trigger");
        let out = UsageHandler::default()
            .handle_events(events, &mut env)
            .await
            .unwrap_or_else(|e| panic!("usage handler failed on {id} {day}: {e}"));
        for e in out {
            if e.event_type == VERIFIED {
                verified += 1;
            } else if e.event_type == FAILED {
                failed.push(format!("{id} {day}: {:?}", e.get("error")));
            }
        }
    }
    assert!(fired > 50, "{fired}");
    assert!(failed.is_empty(), "{} failed: {failed:#?}", failed.len());
    assert!(verified >= fired);
}

#[test]
fn bad_options_are_refused() {
    for bad in [
        GeneratorOptions {
            instances: 0,
            ..GeneratorOptions::default()
        },
        GeneratorOptions {
            tenants: 0,
            ..GeneratorOptions::default()
        },
        GeneratorOptions {
            operations_per_instance_per_day: f64::NAN,
            ..GeneratorOptions::default()
        },
        GeneratorOptions {
            operations_per_instance_per_day: 0.0,
            ..GeneratorOptions::default()
        },
        GeneratorOptions {
            running_at_start: 1.5,
            ..GeneratorOptions::default()
        },
    ] {
        assert!(Generator::new(bad).is_err());
    }
}

#[test]
fn envelope_is_complete() {
    let n = Generator::new(options(8))
        .expect("options")
        .find(|n| n["event_type"] == "compute.instance.create.end")
        .expect("a create.end");
    for k in [
        "_context_request_id",
        "_context_tenant",
        "_context_user",
        "_context_timestamp",
        "_context_project_id",
        "message_id",
        "priority",
    ] {
        assert!(!n[k].is_null(), "{k}");
    }
    assert!(str_of(&n, "publisher_id").starts_with("compute."));
    let p = &n["payload"];
    assert_eq!(str_of(p, "state"), "active");
    assert_eq!(str_of(p, "message"), "Success");
    assert!(!str_of(p, "launched_at").is_empty());
    assert!(p["image_meta"]["org.openstack__1__os_version"].is_string());
    assert!(uuid::Uuid::parse_str(str_of(&n, "message_id")).is_ok());
}
