//! The loaded trigger definitions as the store's [`StreamRules`]: where an event goes,
//! and how a stream's bookkeeping changes when events join it.
//!
//! This is where the original's per-event costs went away: matching is done once per
//! event and trigger, and fire criteria are counted as events arrive (one counter per
//! criterion, stored with the stream), so deciding whether a stream is ready to fire
//! never reloads its events, however long it grows.

use super::debug::{DebugManager, MatchObserver, NoObserver};
use super::definition::TriggerDefinition;
use crate::event::Event;
use crate::store::{stream_key, Route, StreamBookkeeping, StreamRules};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::Arc;

/// Every trigger definition, in file order, with their debug counters.
pub struct TriggerSet {
    triggers: Vec<TriggerDefinition>,
    names: Vec<Arc<str>>,
    by_name: HashMap<String, usize>,
    debug: Arc<DebugManager>,
}

impl TriggerSet {
    pub fn new(triggers: Vec<TriggerDefinition>, debug: Arc<DebugManager>) -> Self {
        let names = triggers
            .iter()
            .map(|t| Arc::from(t.name.as_str()))
            .collect();
        let by_name = triggers
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        TriggerSet {
            triggers,
            names,
            by_name,
            debug,
        }
    }

    pub fn get(&self, name: &str) -> Option<&TriggerDefinition> {
        self.by_name.get(name).map(|&i| &self.triggers[i])
    }

    pub fn iter(&self) -> impl Iterator<Item = &TriggerDefinition> {
        self.triggers.iter()
    }

    pub fn len(&self) -> usize {
        self.triggers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.triggers.is_empty()
    }

    pub fn debug(&self) -> &Arc<DebugManager> {
        &self.debug
    }

    /// The route of one event through one trigger, if it matches.
    fn route_one(
        &self,
        index: usize,
        event: &Event,
        match_obs: &mut dyn MatchObserver,
        fire_obs: &mut dyn MatchObserver,
    ) -> Option<Route> {
        let trigger = &self.triggers[index];
        let criteria = trigger.matching_criteria(event, match_obs)?;
        let distinguishing_traits = trigger.distinguishing_traits(event, criteria)?;
        let key = stream_key(&trigger.name, &distinguishing_traits);
        let fire_matches = trigger.fire_matches(event, fire_obs);
        Some(Route {
            trigger_name: self.names[index].clone(),
            distinguishing_traits,
            key,
            fire_matches,
        })
    }
}

impl StreamRules for TriggerSet {
    fn route(&self, event: &Event) -> Vec<Route> {
        let mut routes = Vec::new();
        for (i, trigger) in self.triggers.iter().enumerate() {
            let route = if trigger.debug_level == 0 {
                self.route_one(i, event, &mut NoObserver, &mut NoObserver)
            } else {
                self.debug
                    .with(&trigger.name, |d| {
                        let mut matching = std::mem::take(d.group("Match"));
                        let mut firing = std::mem::take(d.group("Fire"));
                        let r = self.route_one(i, event, &mut matching, &mut firing);
                        *d.group("Match") = matching;
                        *d.group("Fire") = firing;
                        r
                    })
                    .flatten()
            };
            routes.extend(route);
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
        let Some(trigger) = self.get(trigger_name) else {
            // Routes only come from this set, so this means a definition vanished
            // between route and update: nothing to count against.
            tracing::warn!(trigger = trigger_name, "update for an unknown trigger");
            return;
        };
        let numbers = trigger.fire_numbers();
        if stream.fire_counts.len() != numbers.len() {
            // New stream, or definitions changed since the stream was created.
            stream.fire_counts.resize(numbers.len(), 0);
        }
        let is_new = stream.event_count == 0;
        for (timestamp, matches) in appended {
            stream.first_event = Some(stream.first_event.map_or(*timestamp, |f| f.min(*timestamp)));
            stream.last_event = Some(stream.last_event.map_or(*timestamp, |l| l.max(*timestamp)));
            stream.event_count += 1;
            for (count, matched) in stream.fire_counts.iter_mut().zip(matches.iter()) {
                if *matched {
                    *count = count.saturating_add(1);
                }
            }
        }
        if let (Some(first), Some(last)) = (stream.first_event, stream.last_event) {
            stream.expire_timestamp = Some(match trigger.expire_timestamp(first, last, now) {
                Ok(t) => t,
                Err(err) => {
                    // Expire it now rather than never: the expire pipeline runs and the
                    // problem is visible, instead of a stream that lives forever.
                    tracing::warn!(
                        trigger = trigger_name,
                        error = %err,
                        "expiration could not be evaluated; the stream expires at its last event"
                    );
                    last
                }
            });
        }
        let ready = stream.fire_timestamp.is_none()
            && stream
                .fire_counts
                .iter()
                .zip(numbers.iter())
                .all(|(have, need)| have >= need);
        if ready {
            stream.fire_timestamp = Some(trigger.fire_timestamp(now));
        }
        if trigger.debug_level > 0 {
            self.debug.with(trigger_name, |d| {
                if is_new {
                    d.bump("New stream", 1);
                }
                d.bump("Added events", appended.len() as u64);
                if ready {
                    d.bump("Ready to fire", 1);
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::TraitValue;
    use crate::store::DistValue;
    use crate::winchester::definition::load_triggers;
    use chrono::TimeZone;
    use std::collections::BTreeMap;

    const TRIGGERS: &str = r#"
- name: by_instance
  debug_level: 2
  distinguished_by:
    - instance_id
    - timestamp: day
  expiration: "$last + 2d"
  fire_pipeline: p
  match_criteria:
    - event_type: compute.instance.*
  fire_criteria:
    - event_type: compute.instance.exists
      number: 2
- name: by_tenant
  distinguished_by: [tenant_id]
  expiration: "$first + 1h"
  fire_delay: 30
  expire_pipeline: p
  match_criteria:
    - event_type: "*"
  fire_criteria:
    - event_type: compute.instance.delete.end
"#;

    fn set() -> TriggerSet {
        let triggers = load_triggers(TRIGGERS, "t.yaml", None).expect("load");
        let debug = Arc::new(DebugManager::new(
            triggers.iter().map(|t| (t.name.clone(), t.debug_level)),
        ));
        TriggerSet::new(triggers, debug)
    }

    fn at(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2015, 2, 27, h, 0, 0).unwrap()
    }

    fn event(event_type: &str, traits: &[(&str, &str)], h: u32) -> Event {
        Event {
            event_type: event_type.into(),
            message_id: format!("m-{event_type}-{h}"),
            timestamp: at(h),
            traits: traits
                .iter()
                .map(|(k, v)| (k.to_string(), TraitValue::Text(v.to_string())))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    #[test]
    fn a_missing_distinguishing_trait_skips_only_that_trigger() {
        let s = set();
        // No instance_id: by_instance cannot take it, by_tenant still does.
        let routes = s.route(&event("compute.instance.update", &[("tenant_id", "t1")], 3));
        assert_eq!(routes.len(), 1);
        assert_eq!(&*routes[0].trigger_name, "by_tenant");

        let routes = s.route(&event(
            "compute.instance.update",
            &[("tenant_id", "t1"), ("instance_id", "i1")],
            3,
        ));
        assert_eq!(routes.len(), 2);
        let day = &routes[0].distinguishing_traits["timestamp"];
        match day {
            DistValue::Range(r) => {
                assert_eq!(r.begin, at(0));
                assert_eq!(r.end, at(0) + chrono::Duration::days(1));
            }
            other => panic!("expected a day range, got {other:?}"),
        }
        let counters = s.debug().take();
        assert!(counters["by_instance"].groups["Match"].matches >= 1);
        assert!(counters["by_instance"].groups["Match"].mismatches >= 1);
        assert!(
            !counters.contains_key("by_tenant"),
            "debug_level 0 counts nothing"
        );
    }

    #[test]
    fn same_traits_same_key_and_different_day_different_key() {
        let s = set();
        let a = s.route(&event(
            "compute.instance.update",
            &[("instance_id", "i1")],
            1,
        ));
        let b = s.route(&event(
            "compute.instance.update",
            &[("instance_id", "i1")],
            23,
        ));
        assert_eq!(a[0].key, b[0].key);
        let mut next_day = event("compute.instance.update", &[("instance_id", "i1")], 1);
        next_day.timestamp += chrono::Duration::days(1);
        assert_ne!(a[0].key, s.route(&next_day)[0].key);
    }

    #[test]
    fn bookkeeping_counts_fire_criteria_incrementally() {
        let s = set();
        let mut bk = StreamBookkeeping::default();
        let exists = [true];
        let other = [false];
        s.update(
            "by_instance",
            &mut bk,
            &[(at(5), &other[..]), (at(2), &exists[..])],
            at(6),
        );
        assert_eq!(bk.first_event, Some(at(2)));
        assert_eq!(bk.last_event, Some(at(5)));
        assert_eq!(bk.event_count, 2);
        assert_eq!(bk.fire_counts, vec![1]);
        assert_eq!(bk.expire_timestamp, Some(at(5) + chrono::Duration::days(2)));
        assert_eq!(bk.fire_timestamp, None, "needs two .exists");

        s.update("by_instance", &mut bk, &[(at(7), &exists[..])], at(8));
        assert_eq!(bk.fire_counts, vec![2]);
        assert_eq!(bk.fire_timestamp, Some(at(8)));
        assert_eq!(bk.expire_timestamp, Some(at(7) + chrono::Duration::days(2)));

        // Once set, the fire timestamp stays put while the stream keeps collecting.
        s.update("by_instance", &mut bk, &[(at(9), &exists[..])], at(10));
        assert_eq!(bk.fire_timestamp, Some(at(8)));
        assert_eq!(bk.event_count, 4);
    }

    #[test]
    fn fire_delay_and_first_based_expiration() {
        let s = set();
        let mut bk = StreamBookkeeping::default();
        let fire = [true];
        s.update("by_tenant", &mut bk, &[(at(3), &fire[..])], at(4));
        assert_eq!(
            bk.fire_timestamp,
            Some(at(4) + chrono::Duration::seconds(30))
        );
        assert_eq!(bk.expire_timestamp, Some(at(4)));
    }
}
