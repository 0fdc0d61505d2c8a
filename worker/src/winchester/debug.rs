//! Per-trigger debug counters, as winchester's `debug_level` gave them.
//!
//! At `debug_level: 1` a trigger counts how many events its match and fire criteria
//! checked and passed, plus named counters ("New stream", "Added events", "Ready to
//! fire", "Streams fired", …, the original's names); at level 2 it also counts the
//! reasons checks failed ("Wrong event type", "not 'instance_id'", …). Every
//! `statistics_period` the counts are logged and reset. At level 0 nothing is counted
//! and matching runs with [`NoObserver`], which compiles to nothing.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// What a matcher reports while it checks an event.
pub trait MatchObserver {
    /// A check passed.
    fn matched(&mut self) {}
    /// A check failed, with the reason.
    fn mismatch(&mut self, _reason: &str) {}
}

/// The observer for triggers with `debug_level: 0`.
pub struct NoObserver;
impl MatchObserver for NoObserver {}

/// Counts of one group of checks ("Match", "Fire").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DebugGroup {
    pub matches: u64,
    pub mismatches: u64,
    /// Failure reasons and their counts (kept at debug level 2 only).
    pub reasons: BTreeMap<String, u64>,
    keep_reasons: bool,
}

impl MatchObserver for DebugGroup {
    fn matched(&mut self) {
        self.matches += 1;
    }
    fn mismatch(&mut self, reason: &str) {
        self.mismatches += 1;
        if self.keep_reasons {
            *self.reasons.entry(reason.to_string()).or_default() += 1;
        }
    }
}

/// The counters of one trigger between two statistics dumps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TriggerDebug {
    pub level: u8,
    pub groups: BTreeMap<String, DebugGroup>,
    pub counters: BTreeMap<String, u64>,
}

impl TriggerDebug {
    /// The group of checks named `name` ("Match", "Fire").
    pub fn group(&mut self, name: &str) -> &mut DebugGroup {
        let keep = self.level > 1;
        self.groups
            .entry(name.to_string())
            .or_insert_with(|| DebugGroup {
                keep_reasons: keep,
                ..Default::default()
            })
    }

    pub fn bump(&mut self, counter: &str, by: u64) {
        *self.counters.entry(counter.to_string()).or_default() += by;
    }
}

/// All triggers' debug counters, shared by the tasks of one process.
#[derive(Debug, Default)]
pub struct DebugManager {
    triggers: Mutex<HashMap<String, TriggerDebug>>,
    levels: HashMap<String, u8>,
}

impl DebugManager {
    /// `levels`: each trigger's `debug_level`. Unknown names (streams of a trigger no
    /// longer defined) count at level 2, as the original did.
    pub fn new(levels: impl IntoIterator<Item = (String, u8)>) -> Self {
        DebugManager {
            triggers: Mutex::new(HashMap::new()),
            levels: levels.into_iter().collect(),
        }
    }

    pub fn level(&self, trigger: &str) -> u8 {
        self.levels.get(trigger).copied().unwrap_or(2)
    }

    /// Runs `f` on a trigger's counters when its level is above 0.
    pub fn with<R>(&self, trigger: &str, f: impl FnOnce(&mut TriggerDebug) -> R) -> Option<R> {
        let level = self.level(trigger);
        if level == 0 {
            return None;
        }
        let mut map = self.triggers.lock().unwrap_or_else(|p| p.into_inner());
        let entry = map
            .entry(trigger.to_string())
            .or_insert_with(|| TriggerDebug {
                level,
                ..Default::default()
            });
        Some(f(entry))
    }

    /// Bumps a named counter of a trigger ("Streams fired", …).
    pub fn bump(&self, trigger: &str, counter: &str, by: u64) {
        self.with(trigger, |t| t.bump(counter, by));
    }

    /// Takes the counts gathered since the last call (and resets them).
    pub fn take(&self) -> BTreeMap<String, TriggerDebug> {
        let mut map = self.triggers.lock().unwrap_or_else(|p| p.into_inner());
        map.drain().collect()
    }

    /// Logs and resets every trigger's counts, in the original's layout.
    pub fn dump(&self) {
        for (name, t) in self.take() {
            tracing::info!("---- Trigger Definition: {name} ----");
            for (gname, g) in &t.groups {
                tracing::info!(
                    "{gname} Criteria: {} checks, {} passed",
                    g.matches + g.mismatches,
                    g.matches
                );
                if t.level > 1 {
                    for (reason, n) in &g.reasons {
                        tracing::info!(" - {reason} = {n}");
                    }
                }
            }
            for (counter, n) in &t.counters {
                tracing::info!("Counter \"{counter}\" = {n}");
            }
            tracing::info!("----------------------------");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_zero_counts_nothing_level_two_keeps_reasons() {
        let d = DebugManager::new([("quiet".to_string(), 0), ("loud".to_string(), 2)]);
        d.bump("quiet", "Added events", 1);
        d.with("loud", |t| {
            let g = t.group("Match");
            g.matched();
            g.mismatch("Wrong event type");
            g.mismatch("Wrong event type");
            t.bump("Added events", 3);
        });
        let taken = d.take();
        assert!(!taken.contains_key("quiet"));
        let loud = &taken["loud"];
        assert_eq!(loud.groups["Match"].matches, 1);
        assert_eq!(loud.groups["Match"].reasons["Wrong event type"], 2);
        assert_eq!(loud.counters["Added events"], 3);
        assert!(d.take().is_empty(), "take resets");
    }
}
