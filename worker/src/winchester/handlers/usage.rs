//! The `usage` handler: audits an instance's day of Nova notifications against its
//! `compute.instance.exists` records, as winchester's UsageHandler did.
//!
//! The stream's events (in time order) are cut into blocks: the non-`.exists` events
//! before each `.exists` form that `.exists`' block. Each block is checked:
//!
//! - **U1** an active instance's `.exists` has no `launched_at`;
//! - **U8** an active instance was launched inside the audit period but the block is
//!   empty;
//! - **U2** the core fields of the last rebuild/resize/rescue `.end` event differ from
//!   the `.exists` (a non-end-of-day `.exists` without such an event is only a
//!   warning), or `launched_at`/`deleted_at` differ from the `.delete.end` event's;
//! - **U6** `.delete.end` events but no `deleted_at`; **U3** `deleted_at` but the state
//!   is not `deleted`; **U4** `deleted_at` before `launched_at` (no delete event);
//!   **U5** `deleted_at` inside the audit period with no delete event; **U7** several
//!   `.delete.end` events.
//!
//! For each `.exists` the handler appends a `compute.instance.exists.verified` or
//! `.failed` event (a copy of the `.exists` traits plus the outcome) whose message_id
//! is uuid5(the `.exists` message_id, the new event_type), preceded by a `.warnings`
//! event when warnings were gathered (they accumulate over the blocks of one run, as
//! in the original). Events after the last `.exists` give a `.failed` with code U0.
//!
//! Values that the original could not compare (a text `launched_at` against a
//! datetime, a core field present on one side only) made it raise and fail the
//! pipeline; they fail the pipeline here too, with a message saying why.

use crate::event::{Event, TraitValue, ValueRef};
use crate::winchester::pipeline::{Handler, HandlerError, HandlerFactory, PipelineEnv};
use async_trait::async_trait;
use chrono::{DateTime, Days, NaiveTime, Utc};
use serde_json::{Map, Value};
use std::cmp::Ordering;
use uuid::Uuid;

pub const EXISTS: &str = "compute.instance.exists";
pub const VERIFIED: &str = "compute.instance.exists.verified";
pub const FAILED: &str = "compute.instance.exists.failed";
pub const WARNINGS: &str = "compute.instance.exists.warnings";
const DELETE_END: &str = "compute.instance.delete.end";
/// Operations whose `.end` event must agree with the `.exists` on the core fields.
const INTERESTING: [&str; 3] = [
    "compute.instance.rebuild.end",
    "compute.instance.finish_resize.end",
    "compute.instance.rescue.end",
];
pub const CORE_FIELDS: [&str; 6] = [
    "launched_at",
    "instance_flavor_id",
    "tenant_id",
    "os_architecture",
    "os_version",
    "os_distro",
];
const DELETE_FIELDS: [&str; 2] = ["launched_at", "deleted_at"];
const PUBLISHER_ID: &str = "stv3";

/// Makes [`UsageHandler`]s. Takes no parameters.
#[derive(Debug, Clone, Default)]
pub struct UsageFactory;

impl UsageFactory {
    pub fn new(params: &Map<String, Value>) -> Self {
        super::warn_unknown_params("usage", params, &[]);
        UsageFactory
    }
}

impl HandlerFactory for UsageFactory {
    fn name(&self) -> &str {
        "usage"
    }
    fn create(&self) -> Box<dyn Handler> {
        Box::new(UsageHandler::default())
    }
}

/// A failed usage check: its code (U0–U8) and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageException {
    pub code: &'static str,
    pub message: String,
}

fn usage(code: &'static str, message: impl Into<String>) -> CheckError {
    CheckError::Usage(UsageException {
        code,
        message: message.into(),
    })
}

/// How a check ended when it did not pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckError {
    /// The audit failed: a `.failed` event is emitted.
    Usage(UsageException),
    /// The data could not be checked at all (the original raised): the pipeline fails.
    Fatal(HandlerError),
}

impl From<HandlerError> for CheckError {
    fn from(e: HandlerError) -> Self {
        CheckError::Fatal(e)
    }
}

type Checked<T> = Result<T, CheckError>;

// ---- Python value semantics --------------------------------------------------------

/// Python truthiness of `event.get(name)`: missing, empty text and zero are false.
fn truthy(v: Option<ValueRef<'_>>) -> bool {
    match v {
        None => false,
        Some(ValueRef::Text(s)) => !s.is_empty(),
        Some(ValueRef::Int(i)) => i != 0,
        Some(ValueRef::Float(f)) => f != 0.0,
        Some(ValueRef::Datetime(_)) => true,
    }
}

/// Python `==` between two values (ints and floats compare numerically).
fn py_eq(a: Option<ValueRef<'_>>, b: Option<ValueRef<'_>>) -> bool {
    match (a, b) {
        (Some(ValueRef::Int(x)), Some(ValueRef::Float(y)))
        | (Some(ValueRef::Float(y)), Some(ValueRef::Int(x))) => (x as f64) == y,
        (a, b) => a == b,
    }
}

/// `str(value)` as Python printed it (datetimes without a time zone).
fn py_str(v: Option<ValueRef<'_>>) -> String {
    match v {
        None => "None".to_string(),
        Some(ValueRef::Text(s)) => s.to_string(),
        Some(ValueRef::Int(i)) => i.to_string(),
        Some(ValueRef::Float(f)) => {
            if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e16 {
                format!("{f:.1}")
            } else {
                f.to_string()
            }
        }
        Some(ValueRef::Datetime(d)) => py_datetime(&d),
    }
}

fn py_datetime(d: &DateTime<Utc>) -> String {
    let micros = d.timestamp_subsec_micros();
    if micros == 0 {
        d.format("%Y-%m-%d %H:%M:%S").to_string()
    } else {
        format!("{}.{micros:06}", d.format("%Y-%m-%d %H:%M:%S"))
    }
}

fn type_name(v: Option<ValueRef<'_>>) -> &'static str {
    match v {
        None => "None",
        Some(ValueRef::Text(_)) => "text",
        Some(ValueRef::Int(_)) => "int",
        Some(ValueRef::Float(_)) => "float",
        Some(ValueRef::Datetime(_)) => "datetime",
    }
}

/// Python ordering between two values; values of unrelated types (or None) cannot be
/// ordered, which made the original raise.
fn py_cmp(
    a: Option<ValueRef<'_>>,
    a_name: &str,
    b: Option<ValueRef<'_>>,
    b_name: &str,
) -> Result<Ordering, HandlerError> {
    let ord = match (a, b) {
        (Some(ValueRef::Datetime(x)), Some(ValueRef::Datetime(y))) => Some(x.cmp(&y)),
        (Some(ValueRef::Text(x)), Some(ValueRef::Text(y))) => Some(x.cmp(y)),
        (Some(ValueRef::Int(x)), Some(ValueRef::Int(y))) => Some(x.cmp(&y)),
        (Some(ValueRef::Int(x)), Some(ValueRef::Float(y))) => (x as f64).partial_cmp(&y),
        (Some(ValueRef::Float(x)), Some(ValueRef::Int(y))) => x.partial_cmp(&(y as f64)),
        (Some(ValueRef::Float(x)), Some(ValueRef::Float(y))) => x.partial_cmp(&y),
        _ => None,
    };
    ord.ok_or_else(|| {
        HandlerError::new(format!(
            "usage: cannot compare {a_name} ({}: {}) with {b_name} ({}: {})",
            type_name(a),
            py_str(a),
            type_name(b),
            py_str(b)
        ))
    })
}

fn as_datetime(v: ValueRef<'_>, name: &str) -> Result<DateTime<Utc>, HandlerError> {
    v.as_datetime().ok_or_else(|| {
        HandlerError::new(format!(
            "usage: {name} is not a datetime ({}: {})",
            type_name(Some(v)),
            py_str(Some(v))
        ))
    })
}

// ---- the checks ----------------------------------------------------------------------

pub fn is_exists(event: &Event) -> bool {
    event.event_type == EXISTS
}

fn audit_period(event: &Event) -> (Option<ValueRef<'_>>, Option<ValueRef<'_>>) {
    (
        event.get("audit_period_beginning"),
        event.get("audit_period_ending"),
    )
}

/// An audit period: its beginning and its end.
type Period = (DateTime<Utc>, DateTime<Utc>);

/// Both audit period ends as datetimes, when both are set (truthy).
fn audit_dates(event: &Event) -> Result<Option<Period>, HandlerError> {
    match audit_period(event) {
        (Some(apb), Some(ape)) if truthy(Some(apb)) && truthy(Some(ape)) => Ok(Some((
            as_datetime(apb, "audit_period_beginning")?,
            as_datetime(ape, "audit_period_ending")?,
        ))),
        _ => Ok(None),
    }
}

fn next_day(d: &DateTime<Utc>) -> Option<chrono::NaiveDate> {
    d.date_naive().checked_add_days(Days::new(1))
}

/// An `.exists` whose audit period does not end on the day after it begins (sent on
/// an operation rather than by the end-of-day audit).
pub fn is_non_eod_exists(event: &Event) -> Result<bool, HandlerError> {
    if !is_exists(event) {
        return Ok(false);
    }
    Ok(match audit_dates(event)? {
        Some((apb, ape)) => Some(ape.date_naive()) != next_day(&apb),
        None => false,
    })
}

/// The end-of-day `.exists`: audit period from 00:00 to 00:00 the next day.
pub fn is_eod_exists(event: &Event) -> Result<bool, HandlerError> {
    if !is_exists(event) {
        return Ok(false);
    }
    Ok(match audit_dates(event)? {
        Some((apb, ape)) => {
            apb.time() == NaiveTime::MIN
                && ape.time() == NaiveTime::MIN
                && Some(ape.date_naive()) == next_day(&apb)
        }
        None => false,
    })
}

/// U1: the `.exists`' `launched_at`, which must be set.
fn extract_launched_at(exists: &Event) -> Checked<ValueRef<'_>> {
    match exists.get("launched_at") {
        Some(v) if truthy(Some(v)) => Ok(v),
        _ => Err(usage("U1", ".exists has no launched_at value.")),
    }
}

/// U2: `fields` present on either side must be equal.
fn verify_fields(this: &Event, that: &Event, fields: &[&str]) -> Checked<()> {
    for field in fields {
        let (a, b) = (this.get(field), that.get(field));
        match (a, b) {
            (None, None) => continue,
            (Some(_), Some(_)) => {
                if !py_eq(a, b) {
                    return Err(usage(
                        "U2",
                        format!(
                            "Conflicting '{field}' values ('{}' != '{}')",
                            py_str(a),
                            py_str(b)
                        ),
                    ));
                }
            }
            _ => {
                let (has, lacks) = if a.is_some() {
                    (this, that)
                } else {
                    (that, this)
                };
                return Err(CheckError::Fatal(HandlerError::new(format!(
                    "usage: cannot compare '{field}': {} ({}) has it, {} ({}) does not",
                    has.event_type, has.message_id, lacks.event_type, lacks.message_id
                ))));
            }
        }
    }
    Ok(())
}

/// U3–U7 and the delete fields' U2.
fn confirm_delete(exists: &Event, delete_events: &[&Event], fields: &[&str]) -> Checked<()> {
    let deleted_at = exists.get("deleted_at");
    let is_deleted = exists.get("state") == Some(ValueRef::Text("deleted"));

    if !truthy(deleted_at) && !delete_events.is_empty() {
        return Err(usage(
            "U6",
            ".deleted events found but .exists has no deleted_at value.",
        ));
    }
    if truthy(deleted_at) && !is_deleted {
        return Err(usage(
            "U3",
            ".exists state not 'deleted' but .exists deleted_at is set.",
        ));
    }
    if truthy(deleted_at) && delete_events.is_empty() {
        let launched_at = exists.get("launched_at");
        if py_cmp(deleted_at, "deleted_at", launched_at, "launched_at")? == Ordering::Less {
            return Err(usage("U4", ".exists deleted_at < .exists launched_at."));
        }
        let (apb, ape) = audit_period(exists);
        if truthy(apb)
            && truthy(ape)
            && py_cmp(deleted_at, "deleted_at", apb, "audit_period_beginning")? != Ordering::Less
            && py_cmp(deleted_at, "deleted_at", ape, "audit_period_ending")? != Ordering::Greater
        {
            return Err(usage(
                "U5",
                ".exists deleted_at in audit period, but no matching .delete event found.",
            ));
        }
    }
    if delete_events.len() > 1 {
        return Err(usage("U7", "Multiple .delete.end events"));
    }
    if let Some(last) = delete_events.last() {
        verify_fields(exists, last, fields)?;
    }
    Ok(())
}

/// U1 and U8, for active instances only.
fn confirm_launched_at(block: &[&Event], exists: &Event) -> Checked<()> {
    if exists.get("state") != Some(ValueRef::Text("active")) {
        return Ok(());
    }
    let launched_at = extract_launched_at(exists)?;
    let (apb, ape) = audit_period(exists);
    if truthy(apb)
        && truthy(ape)
        && py_cmp(
            apb,
            "audit_period_beginning",
            Some(launched_at),
            "launched_at",
        )? != Ordering::Greater
        && py_cmp(Some(launched_at), "launched_at", ape, "audit_period_ending")?
            != Ordering::Greater
        && block.is_empty()
    {
        return Err(usage(
            "U8",
            ".exists launched_at in audit period, but no related events found.",
        ));
    }
    Ok(())
}

/// Every check of one block, in the original's order; warnings are appended.
fn do_checks(block: &[&Event], exists: &Event, warnings: &mut Vec<String>) -> Checked<()> {
    confirm_launched_at(block, exists)?;

    let last_interesting = block
        .iter()
        .rev()
        .find(|e| INTERESTING.contains(&e.event_type.as_str()));
    if let Some(last) = last_interesting {
        verify_fields(last, exists, &CORE_FIELDS)?;
    } else if is_non_eod_exists(exists)? {
        warnings.push(format!(
            "Non-EOD .exists found (msg_id: {}) with no operation event.",
            exists.message_id
        ));
    }

    let deleted: Vec<&Event> = block
        .iter()
        .copied()
        .filter(|e| e.event_type == DELETE_END)
        .collect();
    confirm_delete(exists, &deleted, &DELETE_FIELDS)
}

/// Python's `uuid.UUID(text)`: optional `urn:`/`uuid:` prefixes and braces, hyphens
/// anywhere, 32 hex digits.
fn parse_uuid(text: &str) -> Option<Uuid> {
    let stripped = text.replace("urn:", "").replace("uuid:", "");
    let hex: String = stripped
        .trim_matches(|c| c == '{' || c == '}')
        .chars()
        .filter(|c| *c != '-')
        .collect();
    if hex.len() != 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    u128::from_str_radix(&hex, 16).ok().map(Uuid::from_u128)
}

/// uuid5(original message_id, event_type), so a replay (or a pipeline run again after
/// a failure) makes the same ids and stores nothing twice. Where the original drew a
/// random id (the original id missing or not a UUID), ours is still deterministic:
/// uuid5 of a fixed namespace and both texts.
pub fn generate_new_id(original_message_id: &str, event_type: &str) -> String {
    match parse_uuid(original_message_id) {
        Some(ns) => Uuid::new_v5(&ns, event_type.as_bytes()).to_string(),
        None => {
            tracing::warn!(
                "Generating {event_type}: original message_id '{original_message_id}' is not a \
                 UUID; deriving the id from its text"
            );
            let ns = Uuid::new_v5(&Uuid::NAMESPACE_URL, b"urn:stv3:pipeline-event-id");
            let name = format!("{original_message_id}\n{event_type}");
            Uuid::new_v5(&ns, name.as_bytes()).to_string()
        }
    }
}

/// The traits every verified/failed event starts from: the `.exists`' traits with
/// bandwidth and rax_options defaults, and the original message_id.
fn base_traits(exists: &Event) -> std::collections::BTreeMap<String, TraitValue> {
    let mut traits = exists.traits.clone();
    traits
        .entry("bandwidth_in".to_string())
        .or_insert(TraitValue::Int(0));
    traits
        .entry("bandwidth_out".to_string())
        .or_insert(TraitValue::Int(0));
    traits
        .entry("rax_options".to_string())
        .or_insert_with(|| TraitValue::Text("0".to_string()));
    traits.insert(
        "original_message_id".to_string(),
        TraitValue::Text(exists.message_id.clone()),
    );
    traits
}

fn text(s: impl Into<String>) -> TraitValue {
    TraitValue::Text(s.into())
}

/// The audit of one Nova instance's stream. Made per stream.
#[derive(Debug, Default)]
pub struct UsageHandler {
    warnings: Vec<String>,
    stream_id: i64,
}

impl UsageHandler {
    /// The events for one `.exists` and its block: a `.warnings` event when there are
    /// warnings so far, then the `.verified` or `.failed` one.
    fn process_block(
        &mut self,
        block: &[&Event],
        exists: &Event,
    ) -> Result<Vec<Event>, HandlerError> {
        let (event_type, error) = match do_checks(block, exists, &mut self.warnings) {
            Ok(()) => (VERIFIED, None),
            Err(CheckError::Fatal(e)) => return Err(e),
            Err(CheckError::Usage(e)) => {
                tracing::warn!(
                    "Stream {} UsageException: ({}) {}",
                    self.stream_id,
                    e.code,
                    e.message
                );
                let (apb, ape) = audit_period(exists);
                tracing::warn!(
                    "Stream {} deleted_at: {}, launched_at: {}, state: {}, APB: {}, APE: {}, \
                     #events: {}",
                    self.stream_id,
                    py_str(exists.get("deleted_at")),
                    py_str(exists.get("launched_at")),
                    py_str(exists.get("state")),
                    py_str(apb),
                    py_str(ape),
                    block.len()
                );
                (FAILED, Some(e))
            }
        };

        if block.len() > 1 {
            tracing::warn!("{event_type} - events (stream: {})", self.stream_id);
            for event in block {
                tracing::warn!(
                    "^Event: {} - {}",
                    py_datetime(&event.timestamp),
                    event.event_type
                );
            }
        }

        let mut events = Vec::with_capacity(2);
        if !self.warnings.is_empty() {
            let instance_id = exists
                .get("instance_id")
                .map(ValueRef::to_owned_value)
                .unwrap_or_else(|| text("n/a"));
            let mut traits = std::collections::BTreeMap::new();
            traits.insert("publisher_id".to_string(), text(PUBLISHER_ID));
            traits.insert("stream_id".to_string(), TraitValue::Int(self.stream_id));
            traits.insert("instance_id".to_string(), instance_id);
            traits.insert("warnings".to_string(), text(self.warnings.join(", ")));
            events.push(Event {
                event_type: WARNINGS.to_string(),
                message_id: generate_new_id(&exists.message_id, WARNINGS),
                timestamp: exists.timestamp,
                traits,
            });
        }

        let mut traits = base_traits(exists);
        traits.insert("publisher_id".to_string(), text(PUBLISHER_ID));
        traits.insert("stream_id".to_string(), TraitValue::Int(self.stream_id));
        match &error {
            None => {
                // The original stored str(None).
                traits.insert("error".to_string(), text("None"));
                traits.remove("error_code");
            }
            Some(e) => {
                traits.insert("error".to_string(), text(e.message.clone()));
                traits.insert("error_code".to_string(), text(e.code));
            }
        }
        events.push(Event {
            event_type: event_type.to_string(),
            message_id: generate_new_id(&exists.message_id, event_type),
            timestamp: exists.timestamp,
            traits,
        });
        Ok(events)
    }
}

/// The `.failed` (U0) event for events trailing the last `.exists`.
fn trailing_block_failure(first: &Event, stream_id: i64) -> Event {
    let mut traits = std::collections::BTreeMap::new();
    traits.insert("stream_id".to_string(), TraitValue::Int(stream_id));
    if let Some(instance_id) = first.get("instance_id") {
        traits.insert("instance_id".to_string(), instance_id.to_owned_value());
    }
    traits.insert(
        "error".to_string(),
        text("Notifications, but no .exists notification found."),
    );
    traits.insert("error_code".to_string(), text("U0"));
    Event {
        event_type: FAILED.to_string(),
        // Keyed by the first trailing event (there is no `.exists`) and the code.
        message_id: generate_new_id(&first.message_id, &format!("{FAILED} U0")),
        timestamp: first.timestamp,
        traits,
    }
}

#[async_trait]
impl Handler for UsageHandler {
    async fn handle_events(
        &mut self,
        mut events: Vec<Event>,
        env: &mut PipelineEnv,
    ) -> Result<Vec<Event>, HandlerError> {
        self.stream_id = env.stream_id;
        self.warnings.clear();

        let mut new_events = Vec::new();
        let mut block: Vec<&Event> = Vec::new();
        for event in &events {
            if is_exists(event) {
                new_events.extend(self.process_block(&block, event)?);
                block.clear();
            } else {
                block.push(event);
            }
        }
        // The final block should be empty.
        if let Some(first) = block.first() {
            new_events.push(trailing_block_failure(first, self.stream_id));
        }
        events.extend(new_events);
        Ok(events)
    }

    async fn commit(&mut self, _env: &PipelineEnv) -> Result<(), HandlerError> {
        Ok(())
    }

    async fn rollback(&mut self) -> Result<(), HandlerError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};
    use std::collections::BTreeMap;

    const EXISTS_ID: &str = "f5a3a7c2-5c7d-4c1a-9b0e-0a1b2c3d4e5f";

    fn dt(y: i32, mo: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, 0, 0).unwrap()
    }

    fn ev(event_type: &str, id: &str, traits: &[(&str, TraitValue)]) -> Event {
        Event {
            event_type: event_type.to_string(),
            message_id: id.to_string(),
            timestamp: dt(2015, 1, 2, 3),
            traits: traits
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        }
    }

    fn t(s: &str) -> TraitValue {
        TraitValue::Text(s.to_string())
    }

    fn d(v: DateTime<Utc>) -> TraitValue {
        TraitValue::Datetime(v)
    }

    fn exists(traits: &[(&str, TraitValue)]) -> Event {
        ev(EXISTS, EXISTS_ID, traits)
    }

    fn code(r: Checked<()>) -> &'static str {
        match r {
            Err(CheckError::Usage(e)) => e.code,
            Err(CheckError::Fatal(e)) => panic!("fatal: {e}"),
            Ok(()) => "ok",
        }
    }

    fn trait_of<'a>(e: &'a Event, name: &str) -> Option<&'a TraitValue> {
        e.traits.get(name)
    }

    async fn run(events: Vec<Event>) -> Result<Vec<Event>, HandlerError> {
        let mut h = UsageFactory::new(&Map::new()).create();
        let mut env = PipelineEnv::new(123, "instance_usage");
        h.handle_events(events, &mut env).await
    }

    /// The new events (after the input ones) of a run.
    async fn new_events(events: Vec<Event>) -> Vec<Event> {
        let n = events.len();
        let mut out = run(events).await.unwrap();
        out.split_off(n)
    }

    // ---- helpers, as the original's unit tests ------------------------------------

    #[test]
    fn audit_period_and_exists_detection() {
        let e = ev("foo", "1", &[]);
        assert_eq!(audit_period(&e), (None, None));
        let e = ev("foo", "1", &[("audit_period_beginning", t("beginning"))]);
        assert_eq!(audit_period(&e), (Some(ValueRef::Text("beginning")), None));
        assert!(!is_exists(&ev("foo", "1", &[])));
        assert!(is_exists(&ev(EXISTS, "1", &[])));
        assert!(!is_exists(&ev(
            "compute.instance.exists.verified",
            "1",
            &[]
        )));
    }

    #[test]
    fn non_eod_exists() {
        let start = dt(2014, 12, 31, 0);
        let eod = exists(&[
            ("audit_period_beginning", d(start)),
            ("audit_period_ending", d(start + Duration::days(1))),
        ]);
        assert!(!is_non_eod_exists(&eod).unwrap());
        let start = dt(2014, 12, 31, 1);
        let traits = [
            ("audit_period_beginning", d(start)),
            ("audit_period_ending", d(start + Duration::hours(1))),
        ];
        assert!(is_non_eod_exists(&exists(&traits)).unwrap());
        assert!(!is_non_eod_exists(&ev("compute.instance.foo", "1", &traits)).unwrap());
        assert!(!is_non_eod_exists(&exists(&traits[1..])).unwrap());
        // Not a datetime: the original raised.
        let bad = exists(&[
            ("audit_period_beginning", t("yesterday")),
            ("audit_period_ending", d(start)),
        ]);
        assert!(is_non_eod_exists(&bad).is_err());
    }

    #[test]
    fn eod_exists() {
        let start = dt(2014, 12, 31, 1);
        let check = |b: DateTime<Utc>, e: DateTime<Utc>, et: &str| {
            is_eod_exists(&ev(
                et,
                "1",
                &[
                    ("audit_period_beginning", d(b)),
                    ("audit_period_ending", d(e)),
                ],
            ))
            .unwrap()
        };
        assert!(!check(start, start + Duration::days(1), EXISTS));
        let start = dt(2014, 12, 31, 0);
        assert!(!check(start, start + Duration::hours(1), EXISTS));
        assert!(check(start, start + Duration::days(1), EXISTS));
        assert!(!check(
            start,
            start + Duration::days(1),
            "compute.instance.foo"
        ));
        assert!(!is_eod_exists(&exists(&[("audit_period_ending", d(start))])).unwrap());
    }

    #[test]
    fn extract_launched_at_is_u1_when_unset() {
        assert_eq!(
            extract_launched_at(&exists(&[])).err(),
            Some(usage("U1", ".exists has no launched_at value."))
        );
        assert!(extract_launched_at(&exists(&[("launched_at", t(""))])).is_err());
        let e = exists(&[("launched_at", t("foo"))]);
        assert_eq!(extract_launched_at(&e).ok(), Some(ValueRef::Text("foo")));
    }

    #[test]
    fn verify_fields_cases() {
        let a = ev(
            "x",
            "1",
            &[("a", TraitValue::Int(1)), ("b", TraitValue::Int(2))],
        );
        let b = ev(
            "x",
            "2",
            &[("a", TraitValue::Int(10)), ("b", TraitValue::Int(2))],
        );
        assert_eq!(code(verify_fields(&a, &a, &["d", "e"])), "ok");
        assert_eq!(code(verify_fields(&a, &a, &["a", "b"])), "ok");
        assert_eq!(code(verify_fields(&a, &b, &["b"])), "ok");
        match verify_fields(&a, &b, &["a", "b"]) {
            Err(CheckError::Usage(e)) => {
                assert_eq!(e.code, "U2");
                assert_eq!(e.message, "Conflicting 'a' values ('1' != '10')");
            }
            other => panic!("{other:?}"),
        }
        // Int and float compare as numbers, as in Python.
        let f = ev("x", "3", &[("a", TraitValue::Float(1.0))]);
        assert_eq!(code(verify_fields(&a, &f, &["a"])), "ok");
        // Present on one side only: the original raised a KeyError.
        let only = ev("x", "4", &[]);
        assert!(matches!(
            verify_fields(&a, &only, &["a"]),
            Err(CheckError::Fatal(_))
        ));
        // Datetimes print as Python's str() did.
        let l1 = ev("x", "5", &[("launched_at", d(dt(2015, 1, 1, 1)))]);
        let l2 = ev("x", "6", &[("launched_at", d(dt(2015, 1, 1, 2)))]);
        match verify_fields(&l1, &l2, &["launched_at"]) {
            Err(CheckError::Usage(e)) => assert_eq!(
                e.message,
                "Conflicting 'launched_at' values ('2015-01-01 01:00:00' != '2015-01-01 02:00:00')"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn confirm_delete_without_delete_events() {
        let u3 = exists(&[("deleted_at", t("now")), ("state", t("active"))]);
        assert_eq!(code(confirm_delete(&u3, &[], &[])), "U3");
        let u3 = exists(&[("deleted_at", d(dt(2014, 12, 31, 1)))]);
        assert_eq!(code(confirm_delete(&u3, &[], &[])), "U3");

        let u4 = exists(&[
            ("deleted_at", d(dt(2014, 12, 31, 1))),
            ("launched_at", d(dt(2014, 12, 31, 2))),
            ("state", t("deleted")),
        ]);
        assert_eq!(code(confirm_delete(&u4, &[], &[])), "U4");

        let in_period = [
            ("deleted_at", d(dt(2014, 12, 30, 2))),
            ("launched_at", d(dt(2014, 12, 30, 1))),
            ("audit_period_beginning", d(dt(2014, 12, 30, 0))),
            ("audit_period_ending", d(dt(2014, 12, 31, 0))),
            ("state", t("deleted")),
        ];
        assert_eq!(code(confirm_delete(&exists(&in_period), &[], &[])), "U5");
        // Deleted before the audit period: fine.
        let mut before = in_period.to_vec();
        before[0] = ("deleted_at", d(dt(2014, 12, 29, 2)));
        before[1] = ("launched_at", d(dt(2014, 12, 29, 1)));
        assert_eq!(code(confirm_delete(&exists(&before), &[], &[])), "ok");
        // No audit period: U5 cannot apply.
        assert_eq!(
            code(confirm_delete(&exists(&in_period[..2]), &[], &[])),
            "U3"
        );
        let mut no_period = vec![in_period[0].clone(), in_period[1].clone()];
        no_period.push(("state", t("deleted")));
        assert_eq!(code(confirm_delete(&exists(&no_period), &[], &[])), "ok");

        // Nothing to do.
        assert_eq!(code(confirm_delete(&exists(&[]), &[], &[])), "ok");

        // deleted_at but no launched_at to compare with: the original raised.
        let no_launch = exists(&[
            ("deleted_at", d(dt(2014, 12, 31, 1))),
            ("state", t("deleted")),
        ]);
        assert!(matches!(
            confirm_delete(&no_launch, &[], &[]),
            Err(CheckError::Fatal(_))
        ));
    }

    #[test]
    fn confirm_delete_with_delete_events() {
        let del = ev(DELETE_END, "d1", &[]);
        assert_eq!(code(confirm_delete(&exists(&[]), &[&del], &[])), "U6");
        let two = exists(&[("deleted_at", t("now")), ("state", t("deleted"))]);
        assert_eq!(code(confirm_delete(&two, &[&del, &del], &[])), "U7");
        // One delete event: the delete fields are compared.
        let ex = exists(&[
            ("deleted_at", d(dt(2015, 1, 1, 5))),
            ("launched_at", d(dt(2015, 1, 1, 1))),
            ("state", t("deleted")),
        ]);
        let same = ev(
            DELETE_END,
            "d2",
            &[
                ("deleted_at", d(dt(2015, 1, 1, 5))),
                ("launched_at", d(dt(2015, 1, 1, 1))),
            ],
        );
        assert_eq!(code(confirm_delete(&ex, &[&same], &DELETE_FIELDS)), "ok");
        let other = ev(
            DELETE_END,
            "d3",
            &[
                ("deleted_at", d(dt(2015, 1, 1, 6))),
                ("launched_at", d(dt(2015, 1, 1, 1))),
            ],
        );
        assert_eq!(code(confirm_delete(&ex, &[&other], &DELETE_FIELDS)), "U2");
    }

    #[test]
    fn confirm_launched_at_cases() {
        assert_eq!(
            code(confirm_launched_at(
                &[],
                &exists(&[("state", t("deleted"))])
            )),
            "ok"
        );
        assert_eq!(
            code(confirm_launched_at(&[], &exists(&[("state", t("active"))]))),
            "U1"
        );
        let traits = [
            ("state", t("active")),
            ("audit_period_beginning", d(dt(2014, 12, 30, 0))),
            ("audit_period_ending", d(dt(2014, 12, 31, 0))),
            ("launched_at", d(dt(2014, 12, 30, 1))),
        ];
        assert_eq!(code(confirm_launched_at(&[], &exists(&traits))), "U8");
        let related = ev("compute.instance.create.end", "c1", &[]);
        assert_eq!(
            code(confirm_launched_at(&[&related], &exists(&traits))),
            "ok"
        );
        // Launched before the audit period: no related event needed.
        let mut earlier = traits.to_vec();
        earlier[3] = ("launched_at", d(dt(2014, 12, 1, 1)));
        assert_eq!(code(confirm_launched_at(&[], &exists(&earlier))), "ok");
    }

    #[test]
    fn do_checks_warns_on_non_eod_exists_without_operation() {
        let non_eod = [
            ("audit_period_beginning", d(dt(2015, 1, 1, 0))),
            ("audit_period_ending", d(dt(2015, 1, 1, 5))),
        ];
        let mut warnings = vec![];
        assert_eq!(code(do_checks(&[], &exists(&non_eod), &mut warnings)), "ok");
        assert_eq!(
            warnings,
            vec![format!(
                "Non-EOD .exists found (msg_id: {EXISTS_ID}) with no operation event."
            )]
        );
        // An EOD exists: no warning.
        let eod = [
            ("audit_period_beginning", d(dt(2015, 1, 1, 0))),
            ("audit_period_ending", d(dt(2015, 1, 2, 0))),
        ];
        let mut warnings = vec![];
        assert_eq!(code(do_checks(&[], &exists(&eod), &mut warnings)), "ok");
        assert!(warnings.is_empty());
        // With an operation event, its core fields are checked instead of warning.
        let rebuild = ev(
            "compute.instance.rebuild.end",
            "r1",
            &[("tenant_id", t("t1"))],
        );
        let ex = exists(&[
            non_eod[0].clone(),
            non_eod[1].clone(),
            ("tenant_id", t("t2")),
        ]);
        assert_eq!(code(do_checks(&[&rebuild], &ex, &mut warnings)), "U2");
        assert!(warnings.is_empty());
        // The last interesting event is the one compared.
        let rebuild2 = ev(
            "compute.instance.finish_resize.end",
            "r2",
            &[("tenant_id", t("t2"))],
        );
        assert_eq!(
            code(do_checks(&[&rebuild, &rebuild2], &ex, &mut warnings)),
            "ok"
        );
    }

    // ---- whole runs --------------------------------------------------------------

    #[test]
    fn new_ids_are_uuid5_of_the_exists_id() {
        // Values computed with Python's uuid.uuid5.
        assert_eq!(
            generate_new_id(EXISTS_ID, VERIFIED),
            "519b0130-8b4f-5287-8eca-3637e648b9df"
        );
        assert_eq!(
            generate_new_id(EXISTS_ID, FAILED),
            "cd683d98-971c-5843-9a83-4cc56ce72143"
        );
        // Python accepted braces, urn prefixes and stray hyphens.
        let variants = [
            format!("{{{EXISTS_ID}}}"),
            format!("urn:uuid:{EXISTS_ID}"),
            EXISTS_ID.replace('-', ""),
            EXISTS_ID.to_uppercase(),
        ];
        for v in variants {
            assert_eq!(
                generate_new_id(&v, VERIFIED),
                "519b0130-8b4f-5287-8eca-3637e648b9df"
            );
        }
        // Not a UUID, or empty: the original drew a random id; ours is derived from
        // the texts, so a run made again stores nothing twice.
        let mut seen = std::collections::HashSet::new();
        for bad in ["", "not-a-uuid", "g5a3a7c2-5c7d-4c1a-9b0e-0a1b2c3d4e5f"] {
            let a = generate_new_id(bad, VERIFIED);
            assert_eq!(a, generate_new_id(bad, VERIFIED));
            assert_ne!(a, generate_new_id(bad, FAILED));
            assert!(Uuid::parse_str(&a).is_ok());
            assert!(seen.insert(a), "{bad} collides");
        }
    }

    #[tokio::test]
    async fn no_events_no_new_events() {
        assert!(run(vec![]).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn verified_event_copies_the_exists() {
        let ex = ev(
            EXISTS,
            EXISTS_ID,
            &[
                ("instance_id", t("inst")),
                ("state", t("active")),
                ("launched_at", d(dt(2014, 1, 1, 0))),
                ("audit_period_beginning", d(dt(2015, 1, 1, 0))),
                ("audit_period_ending", d(dt(2015, 1, 2, 0))),
                ("bandwidth_in", TraitValue::Int(77)),
            ],
        );
        let input = vec![ex.clone()];
        let out = run(input.clone()).await.unwrap();
        assert_eq!(out[0], ex, "input events are returned first");
        assert_eq!(out.len(), 2);
        let v = &out[1];
        assert_eq!(v.event_type, VERIFIED);
        assert_eq!(v.message_id, "519b0130-8b4f-5287-8eca-3637e648b9df");
        assert_eq!(v.timestamp, ex.timestamp);
        let mut expected: BTreeMap<String, TraitValue> = ex.traits.clone();
        for (k, val) in [
            ("bandwidth_out", TraitValue::Int(0)),
            ("rax_options", t("0")),
            ("original_message_id", t(EXISTS_ID)),
            ("publisher_id", t("stv3")),
            ("stream_id", TraitValue::Int(123)),
            ("error", t("None")),
        ] {
            expected.insert(k.to_string(), val);
        }
        assert_eq!(v.traits, expected);
        assert_eq!(trait_of(v, "bandwidth_in"), Some(&TraitValue::Int(77)));
        assert!(trait_of(v, "error_code").is_none());

        // Same input, same ids: a replay's duplicates are caught.
        let again = run(input).await.unwrap();
        assert_eq!(again[1].message_id, v.message_id);
    }

    /// A run over `block` then one `.exists` with `traits`: the new event's error code.
    async fn failure_code(block: Vec<Event>, traits: &[(&str, TraitValue)]) -> Option<String> {
        let mut events = block;
        events.push(exists(traits));
        let new = new_events(events).await;
        let last = new.last().unwrap();
        match last.event_type.as_str() {
            VERIFIED => None,
            FAILED => match trait_of(last, "error_code") {
                Some(TraitValue::Text(c)) => Some(c.clone()),
                other => panic!("{other:?}"),
            },
            other => panic!("{other}"),
        }
    }

    fn period() -> Vec<(&'static str, TraitValue)> {
        vec![
            ("audit_period_beginning", d(dt(2015, 1, 1, 0))),
            ("audit_period_ending", d(dt(2015, 1, 2, 0))),
        ]
    }

    fn with(
        base: Vec<(&'static str, TraitValue)>,
        more: &[(&'static str, TraitValue)],
    ) -> Vec<(&'static str, TraitValue)> {
        let mut v = base;
        v.extend(more.iter().cloned());
        v
    }

    #[tokio::test]
    async fn every_check_fails_its_exists() {
        let create = ev("compute.instance.create.end", "c1", &[]);
        // U1: active without launched_at.
        let u1 = with(period(), &[("state", t("active"))]);
        assert_eq!(
            failure_code(vec![create.clone()], &u1).await.as_deref(),
            Some("U1")
        );
        // U8: launched in the period, nothing else.
        let u8 = with(
            period(),
            &[
                ("state", t("active")),
                ("launched_at", d(dt(2015, 1, 1, 3))),
            ],
        );
        assert_eq!(failure_code(vec![], &u8).await.as_deref(), Some("U8"));
        assert_eq!(failure_code(vec![create.clone()], &u8).await, None);
        // U2: a rebuild with another flavor.
        let rebuild = ev(
            "compute.instance.rebuild.end",
            "r1",
            &[
                ("launched_at", d(dt(2015, 1, 1, 3))),
                ("instance_flavor_id", t("2")),
            ],
        );
        let u2 = with(u8.clone(), &[("instance_flavor_id", t("3"))]);
        assert_eq!(
            failure_code(vec![rebuild.clone()], &u2).await.as_deref(),
            Some("U2")
        );
        let ok = with(u8.clone(), &[("instance_flavor_id", t("2"))]);
        assert_eq!(failure_code(vec![rebuild], &ok).await, None);
        // U3: deleted_at but still active.
        let u3 = with(
            period(),
            &[
                ("state", t("active")),
                ("launched_at", d(dt(2014, 1, 1, 0))),
                ("deleted_at", d(dt(2015, 1, 1, 4))),
            ],
        );
        assert_eq!(failure_code(vec![], &u3).await.as_deref(), Some("U3"));
        // U4: deleted before launched.
        let u4 = with(
            period(),
            &[
                ("state", t("deleted")),
                ("launched_at", d(dt(2014, 1, 2, 0))),
                ("deleted_at", d(dt(2014, 1, 1, 0))),
            ],
        );
        assert_eq!(failure_code(vec![], &u4).await.as_deref(), Some("U4"));
        // U5: deleted in the period, no delete event.
        let u5 = with(
            period(),
            &[
                ("state", t("deleted")),
                ("launched_at", d(dt(2014, 1, 1, 0))),
                ("deleted_at", d(dt(2015, 1, 1, 4))),
            ],
        );
        assert_eq!(failure_code(vec![], &u5).await.as_deref(), Some("U5"));
        let delete = ev(
            DELETE_END,
            "del1",
            &[
                ("launched_at", d(dt(2014, 1, 1, 0))),
                ("deleted_at", d(dt(2015, 1, 1, 4))),
            ],
        );
        assert_eq!(failure_code(vec![delete.clone()], &u5).await, None);
        // U6: delete event, no deleted_at.
        let u6 = with(
            period(),
            &[
                ("state", t("deleted")),
                ("launched_at", d(dt(2014, 1, 1, 0))),
            ],
        );
        assert_eq!(
            failure_code(vec![delete.clone()], &u6).await.as_deref(),
            Some("U6")
        );
        // U7: two delete events.
        assert_eq!(
            failure_code(vec![delete.clone(), delete.clone()], &u5)
                .await
                .as_deref(),
            Some("U7")
        );
        // U2 on the delete fields.
        let mut late = delete.clone();
        late.traits
            .insert("deleted_at".into(), d(dt(2015, 1, 1, 5)));
        assert_eq!(failure_code(vec![late], &u5).await.as_deref(), Some("U2"));
    }

    #[tokio::test]
    async fn failed_event_carries_error_and_code() {
        let traits = with(
            period(),
            &[("state", t("active")), ("instance_id", t("inst"))],
        );
        let new = new_events(vec![exists(&traits)]).await;
        assert_eq!(new.len(), 1);
        let f = &new[0];
        assert_eq!(f.event_type, FAILED);
        assert_eq!(f.message_id, "cd683d98-971c-5843-9a83-4cc56ce72143");
        assert_eq!(
            trait_of(f, "error"),
            Some(&t(".exists has no launched_at value."))
        );
        assert_eq!(trait_of(f, "error_code"), Some(&t("U1")));
        assert_eq!(trait_of(f, "instance_id"), Some(&t("inst")));
        assert_eq!(trait_of(f, "stream_id"), Some(&TraitValue::Int(123)));
        assert_eq!(trait_of(f, "publisher_id"), Some(&t("stv3")));
        assert_eq!(trait_of(f, "original_message_id"), Some(&t(EXISTS_ID)));
    }

    #[tokio::test]
    async fn warnings_event_precedes_and_accumulates_over_blocks() {
        let non_eod = |id: &str, ts: DateTime<Utc>| {
            let mut e = ev(
                EXISTS,
                id,
                &[
                    ("audit_period_beginning", d(dt(2015, 1, 1, 0))),
                    ("audit_period_ending", d(dt(2015, 1, 1, 5))),
                    ("instance_id", t("inst")),
                ],
            );
            e.timestamp = ts;
            e
        };
        let id2 = "0d4c1a6e-3f0b-4f8e-9a55-3f1f0c9b7a10";
        let input = vec![
            non_eod(EXISTS_ID, dt(2015, 1, 1, 5)),
            non_eod(id2, dt(2015, 1, 1, 6)),
        ];
        let new = new_events(input.clone()).await;
        let types: Vec<&str> = new.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(types, vec![WARNINGS, VERIFIED, WARNINGS, VERIFIED]);
        let w1 = &new[0];
        assert_eq!(w1.timestamp, dt(2015, 1, 1, 5));
        assert_eq!(trait_of(w1, "instance_id"), Some(&t("inst")));
        assert_eq!(trait_of(w1, "publisher_id"), Some(&t("stv3")));
        assert_eq!(trait_of(w1, "stream_id"), Some(&TraitValue::Int(123)));
        let first = format!("Non-EOD .exists found (msg_id: {EXISTS_ID}) with no operation event.");
        let second = format!("Non-EOD .exists found (msg_id: {id2}) with no operation event.");
        assert_eq!(trait_of(w1, "warnings"), Some(&t(&first)));
        // The second block's warnings event repeats the first's (as the original did).
        assert_eq!(
            trait_of(&new[2], "warnings"),
            Some(&t(&format!("{first}, {second}")))
        );
        // Every id is deterministic (the original drew warnings ids at random): a run
        // made again after a failure stores nothing twice.
        let again = new_events(input).await;
        let ids = |events: &[Event]| -> Vec<String> {
            events.iter().map(|e| e.message_id.clone()).collect()
        };
        assert_eq!(ids(&again), ids(&new));
        let distinct: std::collections::HashSet<String> = ids(&new).into_iter().collect();
        assert_eq!(distinct.len(), 4, "{new:?}");

        // instance_id defaults to "n/a".
        let mut no_inst = non_eod(EXISTS_ID, dt(2015, 1, 1, 5));
        no_inst.traits.remove("instance_id");
        let new = new_events(vec![no_inst]).await;
        assert_eq!(trait_of(&new[0], "instance_id"), Some(&t("n/a")));
    }

    #[tokio::test]
    async fn events_without_exists_fail_with_u0() {
        let mut foo = ev("foo", "m1", &[("instance_id", t("inst"))]);
        foo.timestamp = dt(2015, 1, 1, 1);
        let out = run(vec![foo.clone()]).await.unwrap();
        assert_eq!(out.len(), 2);
        let u0 = &out[1];
        assert_eq!(u0.event_type, FAILED);
        assert_eq!(u0.timestamp, foo.timestamp);
        let mut expected = BTreeMap::new();
        expected.insert("stream_id".to_string(), TraitValue::Int(123));
        expected.insert("instance_id".to_string(), t("inst"));
        expected.insert(
            "error".to_string(),
            t("Notifications, but no .exists notification found."),
        );
        expected.insert("error_code".to_string(), t("U0"));
        assert_eq!(u0.traits, expected);
        assert!(Uuid::parse_str(&u0.message_id).is_ok());
        let again = run(vec![foo.clone()]).await.unwrap();
        assert_eq!(
            again[1].message_id, u0.message_id,
            "U0 ids are deterministic"
        );
        let mut other = foo.clone();
        other.message_id = "m2".into();
        let other = run(vec![other]).await.unwrap();
        assert_ne!(other[1].message_id, u0.message_id);
    }

    #[tokio::test]
    async fn dangling_events_after_the_last_exists() {
        let raw = vec![
            ev("foo", "m1", &[]),
            exists(&[]),
            ev("foo", "m2", &[("instance_id", t("i2"))]),
        ];
        let out = run(raw).await.unwrap();
        let types: Vec<&str> = out.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(types, vec!["foo", EXISTS, "foo", VERIFIED, FAILED]);
        assert_eq!(trait_of(&out[4], "error_code"), Some(&t("U0")));
        assert_eq!(trait_of(&out[4], "instance_id"), Some(&t("i2")));
        // No instance_id on the first trailing event: the trait is left out.
        let out = run(vec![ev("foo", "m1", &[])]).await.unwrap();
        assert!(trait_of(&out[1], "instance_id").is_none());
    }

    #[tokio::test]
    async fn uncheckable_data_fails_the_pipeline() {
        let bad = exists(&[
            ("state", t("active")),
            ("launched_at", t("yesterday")),
            ("audit_period_beginning", d(dt(2015, 1, 1, 0))),
            ("audit_period_ending", d(dt(2015, 1, 2, 0))),
        ]);
        let err = run(vec![bad]).await.unwrap_err();
        assert!(err.message.contains("cannot compare"), "{err}");
    }

    #[test]
    fn python_str_of_values() {
        assert_eq!(py_str(None), "None");
        assert_eq!(py_str(Some(ValueRef::Float(1.0))), "1.0");
        assert_eq!(py_str(Some(ValueRef::Float(1.5))), "1.5");
        let with_micros = dt(2015, 1, 1, 1) + Duration::microseconds(42);
        assert_eq!(
            py_str(Some(ValueRef::Datetime(with_micros))),
            "2015-01-01 01:00:00.000042"
        );
    }
}
