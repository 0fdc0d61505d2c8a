//! Trigger definitions (`triggers.yaml`): which events a trigger collects into
//! streams, how streams are told apart, when they fire and when they expire.
//!
//! Everything is compiled and validated by [`load_triggers`] (timex expressions
//! parsed, criterion operators checked, pipeline names looked up), so matching an
//! event never fails for a reason the file could have shown. The matching methods
//! take a [`MatchObserver`] for the per-trigger debug counters; pass
//! [`crate::winchester::debug::NoObserver`] at `debug_level: 0`.
//!
//! Behaviour follows the original winchester definitions, with these deliberate
//! differences:
//! - the expiration's `$timestamp` ("now") is supplied explicitly by the caller;
//! - an unknown comparison operator (`{int: ">> 5"}`) is a load error, not a
//!   criterion that silently never matches; `==`, `>=`, `<=` and `!=` are accepted
//!   besides the original `=`, `>` and `<`;
//! - comparing a text (or datetime) trait with a number never matches (Python 2
//!   ordered unrelated types arbitrarily);
//! - a distinguishing trait that is missing (after `map_distinguished_by`), or not a
//!   datetime for a timex-valued one, makes the event skip this trigger instead of
//!   failing the whole event.

mod criteria;
mod load;

pub use criteria::Criteria;
pub use load::{load_triggers, load_triggers_with_warnings};

use crate::event::{Event, ValueRef};
use crate::store::{DistValue, DistinguishingTraits};
use crate::timex::{Expression, TimexError, TimexValue};
use crate::winchester::debug::MatchObserver;
use chrono::{DateTime, Utc};

/// One trigger definition.
#[derive(Debug, Clone, PartialEq)]
pub struct TriggerDefinition {
    pub name: String,
    /// 0: no debug counters; 1: counters; 2: counters and mismatch reasons.
    pub debug_level: u8,
    pub distinguished_by: Vec<DistinguishedBy>,
    /// When a stream expires; may use `$first`, `$last` and `$timestamp` ("now").
    pub expiration: Expression,
    /// How long after its fire criteria are met a stream fires.
    pub fire_delay: chrono::Duration,
    pub fire_pipeline: Option<String>,
    pub expire_pipeline: Option<String>,
    pub match_criteria: Vec<Criteria>,
    pub fire_criteria: Vec<Criteria>,
    /// Accepted and validated; the original never used them either.
    pub load_criteria: Vec<Criteria>,
}

/// One entry of `distinguished_by`.
#[derive(Debug, Clone, PartialEq)]
pub enum DistinguishedBy {
    /// The trait's value.
    Trait(String),
    /// The value of `expr` with `$timestamp` = the trait's (datetime) value, e.g.
    /// `timestamp: day` gives the UTC day containing the event's timestamp.
    Timex {
        trait_name: String,
        expr: Expression,
    },
}

impl DistinguishedBy {
    /// The distinguishing trait's name (the key in the stream's traits).
    pub fn trait_name(&self) -> &str {
        match self {
            DistinguishedBy::Trait(name) => name,
            DistinguishedBy::Timex { trait_name, .. } => trait_name,
        }
    }
}

impl TriggerDefinition {
    /// The first match criteria the event passes, provided every distinguishing
    /// trait is present in the event under its own name (as the original checked;
    /// a mapped trait is looked for by [`Self::distinguishing_traits`]).
    pub fn matching_criteria(
        &self,
        event: &Event,
        obs: &mut dyn MatchObserver,
    ) -> Option<&Criteria> {
        for dt in &self.distinguished_by {
            let name = dt.trait_name();
            if event.get(name).is_none() {
                obs.mismatch(&format!("not '{name}'"));
                return None;
            }
        }
        for criteria in &self.match_criteria {
            if criteria.matches(event, obs) {
                obs.matched();
                return Some(criteria);
            }
        }
        obs.mismatch("No matching criteria");
        None
    }

    /// The event's distinguishing traits, read through the matching criteria's
    /// `map_distinguished_by`. `None` when a trait is missing, or a timex-valued one
    /// is not a datetime (or its expression cannot be evaluated): the event then
    /// skips this trigger.
    pub fn distinguishing_traits(
        &self,
        event: &Event,
        criteria: &Criteria,
    ) -> Option<DistinguishingTraits> {
        let mut out = DistinguishingTraits::new();
        for dt in &self.distinguished_by {
            let name = dt.trait_name();
            let source = criteria
                .map_distinguished_by
                .get(name)
                .map(String::as_str)
                .unwrap_or(name);
            let value = event.get(source)?;
            let dist = match dt {
                DistinguishedBy::Trait(_) => match value {
                    ValueRef::Text(s) => DistValue::Text(s.to_string()),
                    ValueRef::Int(i) => DistValue::Int(i),
                    ValueRef::Float(f) => DistValue::Float(f),
                    ValueRef::Datetime(d) => DistValue::Datetime(d),
                },
                DistinguishedBy::Timex { expr, .. } => {
                    let t = value.as_datetime()?;
                    let vars = |n: &str| (n == "timestamp").then_some(t);
                    match expr.evaluate(&vars).ok()? {
                        TimexValue::Timestamp(ts) => DistValue::Datetime(ts),
                        TimexValue::Range(r) => DistValue::Range(r),
                    }
                }
            };
            out.insert(name.to_string(), dist);
        }
        Some(out)
    }

    /// For each fire criteria, in order, whether this event matches it. The engine
    /// keeps the per-stream counts; a stream is ready when every count reaches
    /// [`Self::fire_numbers`].
    pub fn fire_matches(&self, event: &Event, obs: &mut dyn MatchObserver) -> Vec<bool> {
        self.fire_criteria
            .iter()
            .map(|c| c.matches(event, obs))
            .collect()
    }

    /// Each fire criteria's `number`, in order.
    pub fn fire_numbers(&self) -> Vec<u32> {
        self.fire_criteria.iter().map(|c| c.number).collect()
    }

    /// Whether counts (one per fire criteria, as [`Self::fire_matches`] orders them)
    /// satisfy every fire criteria. With no fire criteria this is true, as it was.
    pub fn should_fire(&self, counts: &[u64]) -> bool {
        self.fire_criteria
            .iter()
            .enumerate()
            .all(|(i, c)| counts.get(i).copied().unwrap_or(0) >= u64::from(c.number))
    }

    /// When a stream whose events span `first`..`last` expires, evaluated at `now`
    /// (the value of `$timestamp`). A range gives its beginning.
    pub fn expire_timestamp(
        &self,
        first: DateTime<Utc>,
        last: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, TimexError> {
        let vars = |n: &str| match n {
            "first" => Some(first),
            "last" => Some(last),
            "timestamp" => Some(now),
            _ => None,
        };
        Ok(self.expiration.evaluate(&vars)?.timestamp())
    }

    /// `timestamp + fire_delay`.
    pub fn fire_timestamp(&self, timestamp: DateTime<Utc>) -> DateTime<Utc> {
        timestamp
            .checked_add_signed(self.fire_delay)
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// The pipelines this trigger names.
    pub fn pipelines(&self) -> impl Iterator<Item = &str> {
        self.fire_pipeline
            .as_deref()
            .into_iter()
            .chain(self.expire_pipeline.as_deref())
    }
}

#[cfg(test)]
mod tests;
