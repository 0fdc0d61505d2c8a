//! Operations over simulated time: a discrete-event simulation.
//!
//! The agenda holds what happens next: an instance slot starting its next operation,
//! or the end of a day. Processing an operation produces all of its notifications at
//! once (each with its own time, at or after the operation's start) into a pending
//! heap; a pending notification is released only when nothing left on the agenda can
//! produce an earlier one, so the output is in time order even though operations of
//! many instances interleave.
//!
//! No operation spans midnight: one that would is moved to just after it. So at the
//! end of a day every instance is at rest and its `compute.instance.exists` audit
//! (for the day just ended) describes exactly what the day's notifications did.

use super::instance::{
    choose_operation, plan, Instance, Mutation, Operation, Plan, RequestContext, Step, VmState,
};
use super::payload::{
    envelope, exists_payload, format_timestamp, hex32, operation_payload, scheduler_payload,
    update_payload, uuid,
};
use super::{Catalog, GeneratorOptions};
use chrono::{DateTime, Duration, DurationRound, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

/// Something on the agenda.
#[derive(Debug)]
enum Item {
    /// The end-of-day audit at midnight.
    EndOfDay,
    /// A slot's next operation; planned already when it was moved past midnight.
    Operation { slot: usize, plan: Option<Plan> },
}

#[derive(Debug)]
struct Agenda {
    at: DateTime<Utc>,
    /// Ends of day go before operations at the same instant.
    rank: u8,
    seq: u64,
    item: Item,
}

impl Agenda {
    fn key(&self) -> (DateTime<Utc>, u8, u64) {
        (self.at, self.rank, self.seq)
    }
}

impl PartialEq for Agenda {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}
impl Eq for Agenda {}
impl PartialOrd for Agenda {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Agenda {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

/// A notification made but not yet released.
#[derive(Debug)]
struct Pending {
    at: DateTime<Utc>,
    seq: u64,
    body: Value,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// Midnight (UTC) at or before `at`.
pub(crate) fn day_start(at: DateTime<Utc>) -> DateTime<Utc> {
    at.duration_trunc(Duration::days(1)).unwrap_or(at)
}

fn micros(us: i64) -> Duration {
    Duration::microseconds(us)
}

/// The simulation.
pub(crate) struct Schedule {
    rng: ChaCha8Rng,
    catalog: Catalog,
    options: GeneratorOptions,
    /// One instance per slot, or none between a delete and the next create.
    slots: Vec<Option<Instance>>,
    /// Instances deleted since the last end of day: they get one last `.exists`.
    deleted_today: Vec<Instance>,
    agenda: BinaryHeap<Reverse<Agenda>>,
    pending: BinaryHeap<Reverse<Pending>>,
    seq: u64,
    done: bool,
    /// Mean time between two operations of an instance, in microseconds.
    mean_gap_us: f64,
}

impl Schedule {
    pub fn new(options: GeneratorOptions) -> Schedule {
        let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
        let catalog = Catalog::new(&mut rng, options.tenants.max(1), options.hosts_or_default());
        let mean_gap_us = 86_400e6 / options.operations_per_instance_per_day;
        let mut s = Schedule {
            rng,
            catalog,
            slots: Vec::with_capacity(options.instances),
            deleted_today: Vec::new(),
            agenda: BinaryHeap::new(),
            pending: BinaryHeap::new(),
            seq: 0,
            done: false,
            mean_gap_us,
            options,
        };
        let start = s.options.start;
        let today = day_start(start);
        for slot in 0..s.options.instances {
            let tenant = s.rng.gen_range(0..s.catalog.tenants.len());
            if s.rng.gen_bool(s.options.running_at_start.clamp(0.0, 1.0)) {
                // Launched before the first simulated day: its audits have no launch.
                let age = s.rng.gen_range(3_600_000_000i64..120 * 86_400_000_000);
                let launched = today - micros(age);
                let building = s.rng.gen_range(40_000_000i64..360_000_000);
                let mut inst =
                    s.catalog
                        .new_instance(&mut s.rng, tenant, launched - micros(building), true);
                inst.launched_at = Some(launched);
                if s.rng.gen_bool(0.08) {
                    inst.vm_state = VmState::Stopped;
                }
                s.slots.push(Some(inst));
                let gap = s.gap();
                s.push_agenda(start + gap, Item::Operation { slot, plan: None });
            } else {
                s.slots.push(None);
                let after = s.rng.gen_range(0..6 * 3_600_000_000i64);
                s.push_agenda(start + micros(after), Item::Operation { slot, plan: None });
            }
        }
        s.push_agenda(today + Duration::days(1), Item::EndOfDay);
        s
    }

    /// The next notification in time order, with its time; `None` once the end time
    /// (if any) is reached.
    pub fn next(&mut self) -> Option<(DateTime<Utc>, Value)> {
        if self.done {
            return None;
        }
        loop {
            let horizon = self.agenda.peek().map(|Reverse(a)| a.at);
            let ready = match (self.pending.peek(), horizon) {
                (Some(Reverse(p)), Some(h)) => p.at <= h,
                (Some(_), None) => true,
                (None, _) => false,
            };
            if ready {
                let Reverse(p) = self.pending.pop()?;
                if self.options.end.is_some_and(|end| p.at >= end) {
                    self.done = true;
                    return None;
                }
                return Some((p.at, p.body));
            }
            let Reverse(next) = self.agenda.pop()?;
            match next.item {
                Item::EndOfDay => self.end_of_day(next.at),
                Item::Operation { slot, plan } => self.operation(next.at, slot, plan),
            }
        }
    }

    fn push_agenda(&mut self, at: DateTime<Utc>, item: Item) {
        self.seq += 1;
        let rank = match item {
            Item::EndOfDay => 0,
            Item::Operation { .. } => 1,
        };
        self.agenda.push(Reverse(Agenda {
            at,
            rank,
            seq: self.seq,
            item,
        }));
    }

    fn push_notification(&mut self, at: DateTime<Utc>, body: Value) {
        self.seq += 1;
        self.pending.push(Reverse(Pending {
            at,
            seq: self.seq,
            body,
        }));
    }

    /// Exponential time between two operations of one instance.
    fn gap(&mut self) -> Duration {
        let u: f64 = 1.0 - self.rng.gen::<f64>();
        let us = (-u.ln() * self.mean_gap_us).min(30.0 * 86_400e6);
        micros(us.max(1_000_000.0) as i64)
    }

    fn request(&mut self, inst: &Instance, at: DateTime<Utc>, admin: bool) -> RequestContext {
        let lead = self.rng.gen_range(5_000i64..900_000);
        let tenant = &self.catalog.tenants[inst.tenant];
        RequestContext {
            request_id: format!("req-{}", uuid(&mut self.rng)),
            timestamp: at - micros(lead),
            auth_token: if admin {
                None
            } else {
                Some(hex32(&mut self.rng))
            },
            remote_address: if admin {
                None
            } else {
                Some(tenant.remote_address.clone())
            },
            is_admin: admin,
            tenant_id: inst.tenant_id.clone(),
            user_id: inst.user_id.clone(),
        }
    }

    fn operation(&mut self, at: DateTime<Utc>, slot: usize, planned: Option<Plan>) {
        let Some(entry) = self.slots.get_mut(slot) else {
            return;
        };
        let mut inst = match entry.take() {
            Some(inst) => inst,
            None => {
                let tenant = self.rng.gen_range(0..self.catalog.tenants.len());
                self.catalog.new_instance(&mut self.rng, tenant, at, false)
            }
        };
        let plan = match planned {
            Some(p) => p,
            None => {
                let op = if inst.vm_state == VmState::Building {
                    Operation::Create
                } else {
                    choose_operation(&mut self.rng, inst.vm_state)
                };
                plan(&mut self.rng, &self.catalog, &inst, op)
            }
        };
        let midnight = day_start(at) + Duration::days(1);
        if at + plan.duration() + Duration::seconds(2) >= midnight {
            // Would span midnight: run it shortly after instead.
            let later = self.rng.gen_range(60_000_000i64..2_700_000_000);
            self.slots[slot] = Some(inst);
            self.push_agenda(
                midnight + micros(later),
                Item::Operation {
                    slot,
                    plan: Some(plan),
                },
            );
            return;
        }
        if plan.operation == Operation::Create {
            inst.created_at = at;
        }
        inst.add_bandwidth(&mut self.rng);
        let ctx = self.request(&inst, at, false);
        let new_flavor = plan.steps.iter().find_map(|(_, s)| match s {
            Step::Apply(Mutation::Flavor(f)) => Some(*f),
            _ => None,
        });
        let mut last = at;
        for (offset, step) in &plan.steps {
            let t = at + micros(*offset);
            last = t;
            let compute = format!("compute.{}", self.catalog.hosts[inst.host]);
            let body = match *step {
                Step::Apply(m) => {
                    inst.mutate(m, t);
                    continue;
                }
                Step::Update(state, task) => {
                    let (old_state, old_task) = (inst.vm_state, inst.task_state);
                    inst.vm_state = state;
                    inst.task_state = task;
                    let p = update_payload(
                        &self.catalog,
                        &inst,
                        old_state,
                        old_task,
                        (day_start(t), t),
                    );
                    envelope(
                        &mut self.rng,
                        "compute.instance.update",
                        compute,
                        t,
                        &ctx,
                        p,
                    )
                }
                Step::Start(name) | Step::End(name) => {
                    let end = matches!(step, Step::End(_));
                    let p = operation_payload(&self.catalog, &inst, name, end, new_flavor);
                    let event_type = format!(
                        "compute.instance.{name}.{}",
                        if end { "end" } else { "start" }
                    );
                    envelope(&mut self.rng, &event_type, compute, t, &ctx, p)
                }
                Step::Scheduler(phase) => {
                    let weight = self.rng.gen_range(1.0..100.0f64);
                    let p = scheduler_payload(&self.catalog, &inst, phase, weight);
                    let host = self.catalog.scheduler_host(inst.tenant);
                    let event_type = format!("scheduler.run_instance.{phase}");
                    envelope(
                        &mut self.rng,
                        &event_type,
                        format!("scheduler.{host}"),
                        t,
                        &ctx,
                        p,
                    )
                }
                Step::Exists => {
                    if !self.options.exists_on_operations {
                        continue;
                    }
                    let p = exists_payload(&self.catalog, &inst, (day_start(t), t));
                    envelope(
                        &mut self.rng,
                        "compute.instance.exists",
                        compute,
                        t,
                        &ctx,
                        p,
                    )
                }
            };
            self.push_notification(t, body);
        }
        if inst.vm_state == VmState::Deleted {
            self.deleted_today.push(inst);
            // The slot gets a new instance a while later.
            let after = self.rng.gen_range(600_000_000i64..12 * 3_600_000_000);
            self.push_agenda(last + micros(after), Item::Operation { slot, plan: None });
        } else {
            self.slots[slot] = Some(inst);
            let gap = self.gap();
            self.push_agenda(last + gap, Item::Operation { slot, plan: None });
        }
    }

    /// The `.exists` audit of the day ending at `midnight`, for every instance that
    /// was launched and not deleted before the day began.
    fn end_of_day(&mut self, midnight: DateTime<Utc>) {
        let period = (midnight - Duration::days(1), midnight);
        let mut audited: Vec<Instance> = self
            .slots
            .iter()
            .flatten()
            .filter(|i| i.alive())
            .cloned()
            .collect();
        audited.append(&mut self.deleted_today);
        // Nova's periodic audit runs shortly after midnight, one instance at a time.
        let spread = (audited.len() as i64 * 20_000).clamp(1_000_000, 600_000_000);
        for mut inst in audited {
            inst.add_bandwidth(&mut self.rng);
            let t = midnight + micros(1_000_000 + self.rng.gen_range(0..spread));
            let ctx = self.request(&inst, t, true);
            let p = exists_payload(&self.catalog, &inst, period);
            let publisher = format!("compute.{}", self.catalog.hosts[inst.host]);
            let body = envelope(
                &mut self.rng,
                "compute.instance.exists",
                publisher,
                t,
                &ctx,
                p,
            );
            self.push_notification(t, body);
        }
        for inst in self.slots.iter_mut().flatten() {
            inst.bw_public_in = 0;
            inst.bw_public_out = 0;
        }
        self.push_agenda(midnight + Duration::days(1), Item::EndOfDay);
        tracing::trace!(
            "notigen: audited the day ending {}",
            format_timestamp(&midnight)
        );
    }
}
