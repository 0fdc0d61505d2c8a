//! Trigger definition tests, from the original's test_definition.py cases and the
//! rules it followed.

use super::*;
use crate::event::TraitValue;
use crate::timex::TimeRange;
use crate::winchester::debug::{DebugGroup, NoObserver, TriggerDebug};
use crate::winchester::pipelines::{HandlerSpec, PipelineConfig};
use chrono::TimeZone;

fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
}

fn ev(event_type: &str, ts: DateTime<Utc>, traits: Vec<(&str, TraitValue)>) -> Event {
    Event {
        event_type: event_type.to_string(),
        message_id: "m-1".to_string(),
        timestamp: ts,
        traits: traits
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    }
}

fn txt(s: &str) -> TraitValue {
    TraitValue::Text(s.to_string())
}

/// One trigger from YAML; panics with the problems otherwise.
fn trigger(yaml: &str) -> TriggerDefinition {
    match load_triggers_with_warnings(yaml, "t.yaml", None) {
        Ok((mut defs, _)) => defs.remove(0),
        Err(e) => panic!("{e}"),
    }
}

/// A trigger with the given match criteria (YAML flow list).
fn with_match(criteria: &str) -> TriggerDefinition {
    trigger(&format!(
        "- name: t\n  expiration: $last + 1d\n  fire_pipeline: p\n  fire_criteria: [{{event_type: test.thing}}]\n  match_criteria: {criteria}\n"
    ))
}

fn criteria(yaml_map: &str) -> Criteria {
    with_match(&format!("[{yaml_map}]"))
        .match_criteria
        .remove(0)
}

fn load_err(yaml: &str) -> String {
    match load_triggers_with_warnings(yaml, "t.yaml", None) {
        Ok(_) => panic!("expected an error for:\n{yaml}"),
        Err(e) => e.to_string(),
    }
}

fn m(c: &Criteria, e: &Event) -> bool {
    c.matches(e, &mut NoObserver)
}

const T: fn() -> DateTime<Utc> = || at(2014, 8, 1, 7, 52, 31);

#[test]
fn constant_criterion() {
    let c = criteria("traits: {foo: 3}");
    assert!(m(&c, &ev("x", T(), vec![("foo", TraitValue::Int(3))])));
    assert!(m(&c, &ev("x", T(), vec![("foo", TraitValue::Float(3.0))])));
    assert!(!m(&c, &ev("x", T(), vec![("foo", TraitValue::Int(5))])));
    assert!(!m(&c, &ev("x", T(), vec![("bar", TraitValue::Int(3))])));
    assert!(!m(&c, &ev("x", T(), vec![("foo", txt("booga"))])));
    assert!(
        !m(&c, &ev("x", T(), vec![("foo", txt("3"))])),
        "text never equals a number"
    );
    let c = criteria("traits: {foo: '3'}");
    assert!(!m(&c, &ev("x", T(), vec![("foo", TraitValue::Int(3))])));
    assert!(m(&c, &ev("x", T(), vec![("foo", txt("3"))])));
    let c = criteria("traits: {foo: true}");
    assert!(m(&c, &ev("x", T(), vec![("foo", TraitValue::Int(1))])));
    let c = criteria("traits: {foo: {string: 'text here'}}");
    assert!(m(&c, &ev("x", T(), vec![("foo", txt("text here"))])));
    let c = criteria("traits: {foo: {text: abc}}");
    assert!(m(&c, &ev("x", T(), vec![("foo", txt("abc"))])));
    // The envelope fields are values too.
    let c = criteria("traits: {message_id: m-1}");
    assert!(m(&c, &ev("x", T(), vec![])));
}

#[test]
fn numeric_criterion() {
    let int = |v: i64| ev("x", T(), vec![("foo", TraitValue::Int(v))]);
    let c = criteria("traits: {foo: {int: '3'}}");
    assert!(m(&c, &int(3)));
    assert!(!m(&c, &int(5)));
    assert!(!m(&c, &ev("x", T(), vec![("bar", TraitValue::Int(3))])));
    assert!(!m(&c, &ev("x", T(), vec![("foo", txt("booga"))])));
    let c = criteria("traits: {foo: {int: '> 3'}}");
    assert!(!m(&c, &int(3)));
    assert!(m(&c, &int(5)));
    assert!(!m(&c, &ev("x", T(), vec![("foo", txt("booga"))])));
    let c = criteria("traits: {foo: {int: '< 3'}}");
    assert!(!m(&c, &int(3)));
    assert!(!m(&c, &int(5)));
    assert!(m(&c, &int(1)));
    let c = criteria("traits: {foo: {int: 3}}");
    assert!(m(&c, &int(3)));
    for (expr, yes, no) in [
        ("'= 3'", 3, 4),
        ("'== 3'", 3, 4),
        ("'!= 3'", 4, 3),
        ("'>= 3'", 3, 2),
        ("'<= 3'", 3, 4),
        ("'  >   3  '", 4, 3),
    ] {
        let c = criteria(&format!("traits: {{foo: {{int: {expr}}}}}"));
        assert!(m(&c, &int(yes)), "{expr} {yes}");
        assert!(!m(&c, &int(no)), "{expr} {no}");
    }
    // An int criterion compares floats numerically, as Python did.
    let c = criteria("traits: {foo: {int: '> 3'}}");
    assert!(m(&c, &ev("x", T(), vec![("foo", TraitValue::Float(3.5))])));
}

#[test]
fn float_criterion() {
    let fl = |v: f64| ev("x", T(), vec![("foo", TraitValue::Float(v))]);
    let c = criteria("traits: {foo: {float: '3.25'}}");
    assert!(m(&c, &fl(3.25)));
    assert!(!m(&c, &fl(5.2)));
    assert!(!m(&c, &ev("x", T(), vec![("bar", TraitValue::Float(5.2))])));
    assert!(!m(&c, &ev("x", T(), vec![("foo", txt("booga"))])));
    let c = criteria("traits: {foo: {float: '> 3.25'}}");
    assert!(!m(&c, &fl(3.25)));
    assert!(m(&c, &fl(5.2)));
    let c = criteria("traits: {foo: {float: '< 3.25'}}");
    assert!(!m(&c, &fl(3.25)));
    assert!(!m(&c, &fl(3.5)));
    assert!(m(&c, &fl(3.0)));
    let c = criteria("traits: {foo: {float: '<= 2.5'}}");
    assert!(m(&c, &ev("x", T(), vec![("foo", TraitValue::Int(2))])));
    assert!(m(&c, &fl(2.5)));
}

#[test]
fn bad_numeric_criteria_are_load_errors() {
    for (expr, want) in [
        ("{int: zazz}", "invalid int criterion 'zazz'"),
        ("{int: ''}", "it is empty"),
        ("{float: zazz}", "invalid float criterion"),
        ("{float: ''}", "it is empty"),
        ("{int: '>> 5'}", "unknown operator '>>'"),
        ("{int: '=~ 5'}", "unknown operator '=~'"),
        ("{int: '3.5'}", "'3.5' is not an integer"),
        ("{int: '>5'}", "put a space between"),
        ("{int: [1]}", "must be a number"),
        ("{int: 1, float: 2}", "only exactly one type of match"),
        ("{regex: 'a.*'}", "unknown criterion type 'regex'"),
        ("{datetime: 'day +'}", "invalid timex expression 'day +'"),
        (
            "[1, 2]",
            "a constant criterion must be a string or a number",
        ),
        ("~", "a constant criterion must be a string or a number"),
    ] {
        let err = load_err(&format!(
            "- name: t\n  expiration: $last + 1d\n  fire_pipeline: p\n  fire_criteria: [{{}}]\n  match_criteria:\n  - traits:\n      foo: {expr}\n"
        ));
        assert!(err.contains(want), "{expr}: {err}");
        assert!(
            err.contains("t.yaml:7: trigger 't': match_criteria[0].traits.foo"),
            "{expr}: {err}"
        );
    }
}

#[test]
fn time_criterion() {
    let c = criteria("traits: {foo: {datetime: day}}");
    let e = |foo: Option<DateTime<Utc>>| {
        let mut traits = vec![("quux", TraitValue::Int(4))];
        if let Some(f) = foo {
            traits.push(("foo", TraitValue::Datetime(f)));
        }
        ev("x", at(2014, 8, 1, 7, 52, 31), traits)
    };
    assert!(m(&c, &e(Some(at(2014, 8, 1, 1, 2, 0)))));
    assert!(!m(&c, &e(Some(at(2014, 8, 2, 1, 2, 0)))));
    assert!(!m(&c, &e(None)));
    // A timestamp result matches only the same instant.
    let c = criteria("traits: {foo: {datetime: $bar + 1d}}");
    let e2 = |foo| {
        ev(
            "x",
            T(),
            vec![
                ("bar", TraitValue::Datetime(at(2014, 8, 1, 0, 0, 0))),
                ("foo", TraitValue::Datetime(foo)),
            ],
        )
    };
    assert!(m(&c, &e2(at(2014, 8, 2, 0, 0, 0))));
    assert!(!m(&c, &e2(at(2014, 8, 2, 0, 0, 1))));
    // A variable the event lacks: no match.
    let mut obs = DebugGroup::default();
    let event = ev("x", T(), vec![("foo", TraitValue::Datetime(T()))]);
    assert!(!c.matches(&event, &mut obs));
    // A text trait is never inside a time range.
    let c = criteria("traits: {foo: {datetime: day}}");
    assert!(!m(&c, &ev("x", T(), vec![("foo", txt("2014-08-01"))])));
}

#[test]
fn criteria_defaults_and_event_types() {
    let c = criteria("{}");
    assert_eq!(c.number, 1);
    assert!(c.map_distinguished_by.is_empty());
    assert!(c.matches_type("anything.at.all"));
    let c = criteria("event_type: test.foo.bar");
    assert!(c.matches_type("test.foo.bar"));
    assert!(!c.matches_type("test.foo.baz"));
    let c = criteria("event_type: '!test.foo.bar'");
    assert!(!c.matches_type("test.foo.bar"));
    assert!(c.matches_type("test.wakka.wakka"));
    let c = criteria("event_type: [test.foo.*, '!test.foo.baz']");
    assert!(c.matches_type("test.foo.bar"));
    assert!(!c.matches_type("test.foo.baz"));
    assert!(!c.matches_type("test.wakka.wakka"));
    let c = criteria("event_type: test.*");
    assert!(m(&c, &ev("test.thing", T(), vec![])));
    assert!(!m(&c, &ev("other.thing", T(), vec![])));
}

#[test]
fn criteria_timestamp() {
    let c = criteria("timestamp: day($launched_at)");
    let launched = TraitValue::Datetime(at(2014, 8, 1, 1, 2, 3));
    assert!(m(
        &c,
        &ev(
            "test.thing",
            at(2014, 8, 1, 17, 16, 15),
            vec![("launched_at", launched.clone())]
        )
    ));
    assert!(!m(
        &c,
        &ev(
            "test.thing",
            at(2014, 8, 2, 17, 16, 15),
            vec![("launched_at", launched)]
        )
    ));
    let mut debug = TriggerDebug {
        level: 2,
        ..Default::default()
    };
    let group = debug.group("Match");
    assert!(!c.matches(&ev("test.thing", at(2014, 8, 2, 17, 16, 15), vec![]), group));
    assert_eq!(group.reasons["No timestamp trait"], 1);
}

#[test]
fn criteria_traits_all_must_pass() {
    let c = criteria(
        "traits: {some_trait: test, launched_at: {datetime: day}, memory_mb: {int: '> 2048'}, test_weight: {float: '< 4.0'}, other_trait: {string: text here}}",
    );
    let base = || {
        vec![
            ("launched_at", TraitValue::Datetime(at(2014, 8, 1, 1, 2, 3))),
            ("some_trait", txt("test")),
            ("other_trait", txt("text here")),
            ("memory_mb", TraitValue::Int(4096)),
            ("test_weight", TraitValue::Float(3.125)),
        ]
    };
    let t = at(2014, 8, 1, 17, 16, 15);
    let with = |k: &str, v: Option<TraitValue>| {
        let mut traits: Vec<(&str, TraitValue)> =
            base().into_iter().filter(|(n, _)| *n != k).collect();
        if let Some(v) = v {
            traits.push((k, v));
        }
        ev("test.thing", t, traits)
    };
    assert!(m(&c, &ev("test.thing", t, base())));
    assert!(!m(&c, &with("some_trait", Some(txt("foo")))));
    assert!(!m(&c, &with("some_trait", None)));
    assert!(!m(
        &c,
        &with(
            "launched_at",
            Some(TraitValue::Datetime(at(2014, 8, 2, 1, 2, 3)))
        )
    ));
    assert!(!m(&c, &with("memory_mb", Some(TraitValue::Int(1024)))));
    assert!(!m(&c, &with("test_weight", Some(TraitValue::Float(6.5)))));
}

#[test]
fn trigger_defaults() {
    let t = with_match("[{event_type: test.*}]");
    assert_eq!(t.name, "t");
    assert_eq!(t.debug_level, 0);
    assert!(t.distinguished_by.is_empty());
    assert_eq!(t.fire_delay, chrono::Duration::zero());
    assert!(t.load_criteria.is_empty());
    assert_eq!(t.fire_numbers(), vec![1]);
    assert_eq!(t.fire_pipeline.as_deref(), Some("p"));
    assert_eq!(t.expire_pipeline, None);
}

#[test]
fn required_fields_and_every_problem_reported() {
    let err = load_err(
        "- expiration: $last + 1d\n  fire_pipeline: p\n  fire_criteria: []\n  match_criteria: []\n\
         - name: b\n  fire_pipeline: p\n  fire_criteria: []\n  match_criteria: []\n\
         - name: c\n  expiration: $last + 1d\n  fire_criteria: []\n  match_criteria: []\n\
         - name: d\n  expiration: $last + 1d\n  fire_pipeline: p\n  match_criteria: []\n\
         - name: e\n  expiration: $last + 1d\n  fire_pipeline: p\n  fire_criteria: []\n\
         - name: f\n  expiration: $last +\n  fire_pipeline: p\n  fire_criteria: []\n  match_criteria: []\n\
         - name: g\n  expiration: $first + $x\n  expire_pipeline: p\n  fire_criteria: []\n  match_criteria: []\n",
    );
    let lines: Vec<&str> = err.lines().collect();
    let want = [
        "t.yaml:1: trigger 0 (unnamed): required field 'name' is missing",
        "t.yaml:5: trigger 'b': required field 'expiration' is missing",
        "t.yaml:9: trigger 'c': at least one of 'fire_pipeline' or 'expire_pipeline' must be given",
        "t.yaml:13: trigger 'd': required field 'fire_criteria' is missing",
        "t.yaml:17: trigger 'e': required field 'match_criteria' is missing",
        "t.yaml:22: trigger 'f': expiration: invalid timex expression '$last +'",
    ];
    for w in want {
        assert!(
            lines.iter().any(|l| l.starts_with(w)),
            "missing {w:?} in\n{err}"
        );
    }
    assert!(err.contains("column"), "timex position: {err}");
    assert!(err.contains("trigger 'g'"), "{err}");
    assert_eq!(lines.len(), 7, "{err}");
}

#[test]
fn expiration_variables() {
    let err = load_err(
        "- name: g\n  expiration: $launched_at + 1d\n  fire_pipeline: p\n  fire_criteria: []\n  match_criteria: [{}]\n",
    );
    assert!(err.contains("uses $launched_at"), "{err}");
    let (defs, warnings) = load_triggers_with_warnings(
        "- name: g\n  expiration: $timestamp + 1d\n  fire_pipeline: p\n  fire_criteria: []\n  match_criteria: [{}]\n",
        "t.yaml",
        None,
    )
    .unwrap();
    assert_eq!(defs.len(), 1);
    assert!(
        warnings[0]
            .to_string()
            .contains("means the time the stream is updated"),
        "{warnings:?}"
    );
    let now = at(2015, 1, 1, 0, 0, 0);
    let t = &defs[0];
    assert_eq!(
        t.expire_timestamp(at(2014, 1, 1, 0, 0, 0), at(2014, 1, 2, 0, 0, 0), now)
            .unwrap(),
        at(2015, 1, 2, 0, 0, 0)
    );
}

#[test]
fn expire_timestamp_and_fire_timestamp() {
    let t = trigger(
        "- name: t\n  expiration: $last + 2d\n  fire_delay: 3600\n  expire_pipeline: p\n  fire_criteria: []\n  match_criteria: [{}]\n",
    );
    let first = at(2014, 8, 1, 0, 0, 0);
    let last = at(2014, 8, 1, 20, 4, 23);
    assert_eq!(
        t.expire_timestamp(first, last, Utc::now()).unwrap(),
        at(2014, 8, 3, 20, 4, 23)
    );
    assert_eq!(t.fire_timestamp(last), at(2014, 8, 1, 21, 4, 23));
    // A range gives its beginning.
    let t = trigger(
        "- name: t\n  expiration: day($first) + 1d\n  expire_pipeline: p\n  fire_criteria: []\n  match_criteria: [{}]\n",
    );
    assert_eq!(
        t.expire_timestamp(last, last, Utc::now()).unwrap(),
        at(2014, 8, 2, 0, 0, 0)
    );
}

#[test]
fn match_checks_distinguishing_traits_by_their_own_name() {
    let t = trigger(
        "- name: t\n  debug_level: 2\n  distinguished_by: [instance_id]\n  expiration: $last + 1d\n  fire_pipeline: p\n  fire_criteria: [{event_type: test.thing}]\n  match_criteria: [{event_type: test.*}]\n",
    );
    assert_eq!(t.debug_level, 2);
    let e1 = ev("test.thing", T(), vec![("instance_id", txt("foo"))]);
    let e2 = ev("test.thing", T(), vec![("other_id", txt("foo"))]);
    let mut debug = TriggerDebug {
        level: 2,
        ..Default::default()
    };
    assert!(t.matching_criteria(&e1, debug.group("Match")).is_some());
    assert!(t.matching_criteria(&e2, debug.group("Match")).is_none());
    let e3 = ev("other.thing", T(), vec![("instance_id", txt("foo"))]);
    assert!(t.matching_criteria(&e3, debug.group("Match")).is_none());
    let g = debug.group("Match");
    assert_eq!(g.reasons["not 'instance_id'"], 1);
    assert_eq!(g.reasons["No matching criteria"], 1);
    assert_eq!(g.reasons["Wrong event type"], 1);
}

#[test]
fn match_tries_each_criteria() {
    let t = with_match("[{event_type: test.foo}, {event_type: test.bar, number: 2}]");
    let c = t
        .matching_criteria(&ev("test.bar", T(), vec![]), &mut NoObserver)
        .unwrap();
    assert_eq!(c.number, 2);
    assert!(t
        .matching_criteria(&ev("test.foo", T(), vec![]), &mut NoObserver)
        .is_some());
    assert!(t
        .matching_criteria(&ev("test.baz", T(), vec![]), &mut NoObserver)
        .is_none());
}

#[test]
fn distinguishing_traits() {
    let t = trigger(
        "- name: t\n  distinguished_by: [instance_id, {timestamp: day}]\n  expiration: $last + 1d\n  fire_pipeline: p\n  fire_criteria: [{event_type: test.thing}]\n  match_criteria:\n  - event_type: test.*\n  - event_type: other.*\n    map_distinguished_by: {instance_id: other_id, timestamp: audit_period_beginning}\n",
    );
    let e = ev(
        "test.thing",
        at(2014, 8, 1, 20, 4, 23),
        vec![("instance_id", txt("foo")), ("other_id", txt("bar"))],
    );
    let c = t.matching_criteria(&e, &mut NoObserver).unwrap();
    let dt = t.distinguishing_traits(&e, c).unwrap();
    assert_eq!(dt.len(), 2);
    assert_eq!(dt["instance_id"], DistValue::Text("foo".into()));
    assert_eq!(
        dt["timestamp"],
        DistValue::Range(TimeRange::new(
            at(2014, 8, 1, 0, 0, 0),
            at(2014, 8, 2, 0, 0, 0)
        ))
    );
    // Mapped traits: instance_id from other_id, the day from audit_period_beginning.
    let e = ev(
        "other.thing",
        at(2014, 8, 2, 1, 0, 0),
        vec![
            ("instance_id", txt("foo")),
            ("other_id", txt("bar")),
            (
                "audit_period_beginning",
                TraitValue::Datetime(at(2014, 8, 1, 0, 0, 0)),
            ),
        ],
    );
    let c = t.matching_criteria(&e, &mut NoObserver).unwrap();
    let dt = t.distinguishing_traits(&e, c).unwrap();
    assert_eq!(dt["instance_id"], DistValue::Text("bar".into()));
    assert_eq!(
        dt["timestamp"],
        DistValue::Range(TimeRange::new(
            at(2014, 8, 1, 0, 0, 0),
            at(2014, 8, 2, 0, 0, 0)
        ))
    );
    // A missing mapped trait, or a non-datetime one for a timex: skip the trigger.
    let mut e2 = e.clone();
    e2.traits.remove("audit_period_beginning");
    assert!(t.distinguishing_traits(&e2, c).is_none());
    let mut e3 = e.clone();
    e3.traits
        .insert("audit_period_beginning".into(), txt("yesterday"));
    assert!(t.distinguishing_traits(&e3, c).is_none());
    // A timex giving a timestamp gives a datetime value; other types are kept.
    let t = trigger(
        "- name: t\n  distinguished_by: [{when: $timestamp + 1h}, num]\n  expiration: $last + 1d\n  fire_pipeline: p\n  fire_criteria: []\n  match_criteria: [{}]\n",
    );
    let e = ev(
        "x",
        T(),
        vec![
            ("when", TraitValue::Datetime(T())),
            ("num", TraitValue::Int(7)),
        ],
    );
    let dt = t.distinguishing_traits(&e, &t.match_criteria[0]).unwrap();
    assert_eq!(dt["when"], DistValue::Datetime(at(2014, 8, 1, 8, 52, 31)));
    assert_eq!(dt["num"], DistValue::Int(7));
}

#[test]
fn fire_matches_and_numbers() {
    let t = trigger(
        "- name: t\n  expiration: $last + 1d\n  fire_pipeline: p\n  fire_criteria: [{event_type: test.thing}, {event_type: test.*, number: 2}]\n  match_criteria: [{event_type: test.*}]\n",
    );
    assert_eq!(t.fire_numbers(), vec![1, 2]);
    assert_eq!(
        t.fire_matches(&ev("test.thing", T(), vec![]), &mut NoObserver),
        vec![true, true]
    );
    assert_eq!(
        t.fire_matches(&ev("test.foobar", T(), vec![]), &mut NoObserver),
        vec![false, true]
    );
    assert!(t.should_fire(&[1, 2]));
    assert!(!t.should_fire(&[1, 1]));
    assert!(!t.should_fire(&[0, 3]));
}

#[test]
fn distinguished_by_errors() {
    let base = |db: &str| {
        format!("- name: t\n  distinguished_by: {db}\n  expiration: $last + 1d\n  fire_pipeline: p\n  fire_criteria: []\n  match_criteria: [{{}}]\n")
    };
    assert!(load_err(&base("[{a: day, b: day}]")).contains("only one trait is allowed"));
    assert!(load_err(&base("[{a: 'day +'}]")).contains("invalid timex expression 'day +'"));
    assert!(load_err(&base("[{a: day($launched_at)}]")).contains("uses $launched_at"));
    assert!(load_err(&base("instance_id")).contains("must be a list"));
    assert!(load_err(&base("[[a]]")).contains("expected a trait name"));
}

#[test]
fn pipelines_must_exist_and_duplicates_are_errors() {
    let mut pipelines = PipelineConfig::default();
    pipelines.pipelines.insert(
        "known".into(),
        vec![HandlerSpec {
            name: "logger".into(),
            params: Default::default(),
        }],
    );
    let yaml = "- name: a\n  expiration: $last + 1d\n  fire_pipeline: known\n  expire_pipeline: nope\n  fire_criteria: []\n  match_criteria: [{}]\n\
                - name: a\n  expiration: $last + 1d\n  fire_pipeline: known\n  fire_criteria: []\n  match_criteria: [{}]\n\
                - name: a\n  expiration: $last + 1d\n  fire_pipeline: known\n  fire_criteria: []\n  match_criteria: [{}]\n";
    let err = load_triggers_with_warnings(yaml, "t.yaml", Some(&pipelines)).unwrap_err();
    let s = err.to_string();
    assert!(s.contains("t.yaml:4: trigger 'a': expire_pipeline 'nope' is not defined in the pipeline configuration (defined: known)"), "{s}");
    assert!(
        s.contains("t.yaml:12: trigger 'a': duplicate trigger name (first defined at line 1)"),
        "{s}"
    );
    assert!(
        s.contains("t.yaml:7: trigger 'a': duplicate trigger name (first defined at line 1)"),
        "{s}"
    );
    assert_eq!(err.len(), 3, "{s}");
}

#[test]
fn unknown_keys_are_warnings() {
    let (defs, warnings) = load_triggers_with_warnings(
        "- name: t\n  colour: red\n  expiration: $last + 1d\n  fire_pipeline: p\n  fire_criteria: []\n  match_criteria: [{evnt_type: x}]\n",
        "t.yaml",
        None,
    )
    .unwrap();
    assert_eq!(defs.len(), 1);
    let w: Vec<String> = warnings.iter().map(ToString::to_string).collect();
    assert!(
        w[0].starts_with("t.yaml:2: trigger 't': unknown key 'colour' ignored"),
        "{w:?}"
    );
    assert!(
        w[1].contains("match_criteria[0]: unknown key 'evnt_type' ignored"),
        "{w:?}"
    );
}

#[test]
fn yaml_syntax_errors_have_a_line() {
    let err =
        load_triggers_with_warnings("- name: t\n  expiration: [\n", "t.yaml", None).unwrap_err();
    assert!(err.errors[0].line.is_some(), "{err}");
    assert!(err.to_string().contains("invalid YAML syntax"), "{err}");
    let err = load_triggers_with_warnings("name: t\n", "t.yaml", None).unwrap_err();
    assert!(err
        .to_string()
        .contains("expected a list of trigger definitions"));
}

#[test]
fn shared_sample_triggers_load() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../etc/triggers.yaml");
    let text = std::fs::read_to_string(dir).unwrap();
    let (defs, warnings) = load_triggers_with_warnings(&text, "triggers.yaml", None).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    let t = &defs[0];
    assert_eq!(t.name, "test_trigger");
    assert_eq!(t.debug_level, 2);
    assert_eq!(t.distinguished_by.len(), 2);
    assert_eq!(t.match_criteria.len(), 2);
    assert!(t.match_criteria[0].matches_type("compute.instance.create.end"));
    assert!(!t.match_criteria[0].matches_type("compute.instance.exists"));
    assert!(t.match_criteria[1].matches_type("compute.instance.exists"));
    // The fire criterion: an .exists whose audit period ends a day after it begins.
    let begin = at(2015, 2, 26, 0, 0, 0);
    let exists = |end| {
        ev(
            "compute.instance.exists",
            at(2015, 2, 27, 0, 10, 0),
            vec![
                ("instance_id", txt("i-1")),
                ("audit_period_beginning", TraitValue::Datetime(begin)),
                ("audit_period_ending", TraitValue::Datetime(end)),
            ],
        )
    };
    assert_eq!(
        t.fire_matches(&exists(at(2015, 2, 27, 0, 0, 0)), &mut NoObserver),
        vec![true]
    );
    assert_eq!(
        t.fire_matches(&exists(at(2015, 2, 27, 0, 0, 1)), &mut NoObserver),
        vec![false]
    );
    let c = t
        .matching_criteria(&exists(at(2015, 2, 27, 0, 0, 0)), &mut NoObserver)
        .unwrap();
    let dt = t
        .distinguishing_traits(&exists(at(2015, 2, 27, 0, 0, 0)), c)
        .unwrap();
    assert_eq!(
        dt["timestamp"],
        DistValue::Range(TimeRange::new(begin, at(2015, 2, 27, 0, 0, 0)))
    );
}
