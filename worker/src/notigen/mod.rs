//! notigen: a generator of Nova-style notifications, as StackTach's notigen made them.
//!
//! A population of instances lives through simulated time. Each instance goes through
//! operations (create, delete, resize with its confirm, rebuild, rescue/unrescue,
//! snapshot, power off/on, reboot) at random intervals; each operation sends its
//! `.start`/`.end` pair, the `compute.instance.update`s Nova sends along the way (and
//! `scheduler.run_instance.*` for a create), with payloads that follow the instance's
//! state. At every midnight each instance that lived during the day gets its
//! `compute.instance.exists` audit (audit period midnight to midnight, `launched_at`
//! and `deleted_at` as the day's notifications left them), so winchester's usage
//! handler has streams to verify.
//!
//! Output is in non-decreasing simulated time and depends only on the
//! [`GeneratorOptions`]: every random draw (UUIDs included) comes from one ChaCha8 RNG
//! seeded with [`GeneratorOptions::seed`].
//!
//! ```
//! use worker::notigen::{Generator, GeneratorOptions};
//! let mut generator = Generator::new(GeneratorOptions {
//!     seed: 7,
//!     instances: 10,
//!     ..GeneratorOptions::default()
//! })
//! .unwrap();
//! let first = generator.next_notification().unwrap();
//! assert!(first["event_type"].is_string());
//! ```

mod instance;
mod payload;
mod schedule;

pub use instance::Operation;
pub use payload::format_timestamp;

use chrono::{DateTime, TimeZone, Utc};
use instance::{Image, Instance, VmState, FLAVORS, OPERATING_SYSTEMS};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

/// What to simulate.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratorOptions {
    /// Seeds every random choice: equal options give byte-identical output.
    pub seed: u64,
    /// Instance slots: the population simulated (a deleted instance's slot gets a new
    /// instance later).
    pub instances: usize,
    /// Tenants owning the instances (at least 1).
    pub tenants: usize,
    /// Compute hosts; 0 picks one per 20 instances (at least 2).
    pub hosts: usize,
    /// Simulated time of the first operations.
    pub start: DateTime<Utc>,
    /// Simulated time at which the output ends (exclusive); `None` never ends.
    pub end: Option<DateTime<Utc>>,
    /// Mean number of operations each instance goes through per simulated day.
    pub operations_per_instance_per_day: f64,
    /// Share of instances already running at `start` (the rest are created within
    /// the first six hours).
    pub running_at_start: f64,
    /// Send the mid-day `compute.instance.exists` Nova sends before a resize or a
    /// rebuild (its audit period ends at that moment).
    pub exists_on_operations: bool,
}

impl Default for GeneratorOptions {
    fn default() -> Self {
        GeneratorOptions {
            seed: 0,
            instances: 100,
            tenants: 25,
            hosts: 0,
            start: Utc
                .with_ymd_and_hms(2015, 2, 27, 0, 0, 0)
                .single()
                .unwrap_or(DateTime::<Utc>::UNIX_EPOCH),
            end: None,
            operations_per_instance_per_day: 4.0,
            running_at_start: 0.8,
            exists_on_operations: true,
        }
    }
}

impl GeneratorOptions {
    fn hosts_or_default(&self) -> usize {
        if self.hosts == 0 {
            (self.instances / 20).max(2)
        } else {
            self.hosts
        }
    }

    /// Why these options cannot be simulated, if they cannot.
    pub fn validate(&self) -> Result<(), OptionsError> {
        if self.instances == 0 {
            return Err(OptionsError("instances must be at least 1".into()));
        }
        if self.tenants == 0 {
            return Err(OptionsError("tenants must be at least 1".into()));
        }
        let ops = self.operations_per_instance_per_day;
        if !(ops.is_finite() && ops > 0.0 && ops <= 10_000.0) {
            return Err(OptionsError(format!(
                "operations per instance per day must be above 0 and at most 10000, not {ops}"
            )));
        }
        if !(0.0..=1.0).contains(&self.running_at_start) {
            return Err(OptionsError(format!(
                "running_at_start must be between 0 and 1, not {}",
                self.running_at_start
            )));
        }
        let lowest = Utc.with_ymd_and_hms(1971, 1, 1, 0, 0, 0).single();
        let highest = Utc.with_ymd_and_hms(9000, 1, 1, 0, 0, 0).single();
        if lowest.is_some_and(|l| self.start < l) || highest.is_some_and(|h| self.start > h) {
            return Err(OptionsError(format!(
                "start must be between 1971 and 9000, not {}",
                self.start
            )));
        }
        Ok(())
    }
}

/// Options that cannot be simulated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("notigen: {0}")]
pub struct OptionsError(pub String);

/// Generates notifications; an endless iterator unless [`GeneratorOptions::end`] is set.
pub struct Generator {
    schedule: schedule::Schedule,
    options: GeneratorOptions,
    generated: u64,
}

impl std::fmt::Debug for Generator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generator")
            .field("options", &self.options)
            .field("generated", &self.generated)
            .finish_non_exhaustive()
    }
}

impl Generator {
    pub fn new(options: GeneratorOptions) -> Result<Generator, OptionsError> {
        options.validate()?;
        Ok(Generator {
            schedule: schedule::Schedule::new(options.clone()),
            options,
            generated: 0,
        })
    }

    pub fn options(&self) -> &GeneratorOptions {
        &self.options
    }

    /// How many notifications were returned so far.
    pub fn generated(&self) -> u64 {
        self.generated
    }

    /// The next notification with its simulated time (its `timestamp`).
    pub fn next_timed(&mut self) -> Option<(DateTime<Utc>, Value)> {
        let next = self.schedule.next();
        if next.is_some() {
            self.generated += 1;
        }
        next
    }

    /// The next notification.
    pub fn next_notification(&mut self) -> Option<Value> {
        self.next_timed().map(|(_, v)| v)
    }
}

impl Iterator for Generator {
    type Item = Value;
    fn next(&mut self) -> Option<Value> {
        self.next_notification()
    }
}

/// A tenant and its users.
#[derive(Debug, Clone)]
pub(crate) struct Tenant {
    pub id: String,
    pub users: Vec<String>,
    pub remote_address: String,
}

/// The world instances live in: tenants, hosts, images.
#[derive(Debug, Clone)]
pub(crate) struct Catalog {
    pub tenants: Vec<Tenant>,
    pub hosts: Vec<String>,
    pub scheduler_hosts: Vec<String>,
    pub images: Vec<Image>,
    pub glance_ip: String,
}

/// Distinct six-digit numbers (as Rackspace's tenant and user ids were).
fn numeric_ids(
    rng: &mut ChaCha8Rng,
    n: usize,
    used: &mut std::collections::HashSet<u32>,
) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    while ids.len() < n {
        let id = rng.gen_range(100_000u32..10_000_000);
        if used.insert(id) {
            ids.push(id.to_string());
        }
    }
    ids
}

impl Catalog {
    pub fn new(rng: &mut ChaCha8Rng, tenants: usize, hosts: usize) -> Catalog {
        let mut used = std::collections::HashSet::new();
        let tenant_ids = numeric_ids(rng, tenants, &mut used);
        let tenants = tenant_ids
            .into_iter()
            .map(|id| {
                let n = rng.gen_range(1..4);
                Tenant {
                    id,
                    users: numeric_ids(rng, n, &mut used),
                    remote_address: payload::ipv4(rng),
                }
            })
            .collect();
        let hosts = (0..hosts.max(1))
            .map(|i| format!("c{:03}n{:02}", 10 + i / 24, 1 + i % 24))
            .collect();
        let scheduler_hosts = (1..=3).map(|i| format!("sched{i:02}")).collect();
        let mut images: Vec<Image> = OPERATING_SYSTEMS
            .iter()
            .enumerate()
            .map(|(os, info)| Image {
                id: payload::uuid(rng),
                name: format!("{} {} ({})", info.distro, info.version, info.architecture),
                os,
                image_type: "base",
            })
            .collect();
        for n in 0..6 {
            let os = rng.gen_range(0..OPERATING_SYSTEMS.len());
            images.push(Image {
                id: payload::uuid(rng),
                name: format!("snapshot-{}-{n}", OPERATING_SYSTEMS[os].distro),
                os,
                image_type: "snapshot",
            });
        }
        Catalog {
            tenants,
            hosts,
            scheduler_hosts,
            images,
            glance_ip: payload::ipv4(rng),
        }
    }

    pub fn scheduler_host(&self, n: usize) -> &str {
        self.scheduler_hosts
            .get(n % self.scheduler_hosts.len().max(1))
            .map(String::as_str)
            .unwrap_or("scheduler")
    }

    /// A new instance of `tenant` created at `created_at`: building, or running when
    /// `running` (the caller sets `launched_at`).
    pub fn new_instance(
        &self,
        rng: &mut ChaCha8Rng,
        tenant: usize,
        created_at: DateTime<Utc>,
        running: bool,
    ) -> Instance {
        let t = &self.tenants[tenant.min(self.tenants.len().saturating_sub(1))];
        let user_id = t
            .users
            .get(rng.gen_range(0..t.users.len().max(1)))
            .cloned()
            .unwrap_or_else(|| t.id.clone());
        // Small flavors are the common ones.
        let flavor = {
            let a = rng.gen_range(0..FLAVORS.len());
            let b = rng.gen_range(0..FLAVORS.len());
            a.min(b)
        };
        let number: u32 = rng.gen_range(1..1_000_000);
        Instance {
            id: payload::uuid(rng),
            tenant,
            tenant_id: t.id.clone(),
            user_id,
            display_name: format!("Instance_{number}"),
            hostname: format!("server-{number}"),
            host: rng.gen_range(0..self.hosts.len()),
            reservation_id: format!("r-{:08x}", rng.gen::<u32>()),
            created_at,
            launched_at: None,
            deleted_at: None,
            flavor,
            image: rng.gen_range(0..self.images.len()),
            access_ip_v4: payload::ipv4(rng),
            access_ip_v6: payload::ipv6(rng),
            fixed_ip: format!(
                "10.{}.{}.{}",
                rng.gen::<u8>(),
                rng.gen::<u8>(),
                2 + rng.gen::<u8>() % 250
            ),
            vm_state: if running {
                VmState::Active
            } else {
                VmState::Building
            },
            task_state: None,
            bw_public_in: 0,
            bw_public_out: 0,
        }
    }
}

#[cfg(test)]
mod tests;
