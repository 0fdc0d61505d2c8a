//! One simulated Nova instance and the operations it goes through.
//!
//! An operation is planned first ([`plan`]): the steps it takes (notifications and state
//! changes) with their offsets from the operation's start, all random choices made. The
//! schedule then decides when it runs and [`Instance::apply`] walks the steps at that
//! time, mutating the instance as Nova would and telling the caller which notification
//! each step sends.

use super::Catalog;
use chrono::{DateTime, Duration, Utc};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// A flavor (instance type) as Nova reported it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Flavor {
    pub id: i64,
    pub flavorid: &'static str,
    pub name: &'static str,
    pub memory_mb: i64,
    pub vcpus: i64,
    pub root_gb: i64,
    pub ephemeral_gb: i64,
    pub rxtx_factor: f64,
}

#[allow(clippy::too_many_arguments)]
const fn flavor(
    id: i64,
    flavorid: &'static str,
    name: &'static str,
    memory_mb: i64,
    vcpus: i64,
    root_gb: i64,
    ephemeral_gb: i64,
    rxtx_factor: f64,
) -> Flavor {
    Flavor {
        id,
        flavorid,
        name,
        memory_mb,
        vcpus,
        root_gb,
        ephemeral_gb,
        rxtx_factor,
    }
}

/// The flavors instances are created with or resized to.
pub(crate) const FLAVORS: [Flavor; 11] = [
    flavor(2, "2", "512MB Standard Instance", 512, 1, 20, 0, 80.0),
    flavor(3, "3", "1GB Standard Instance", 1024, 1, 40, 0, 120.0),
    flavor(4, "4", "2GB Standard Instance", 2048, 2, 80, 0, 240.0),
    flavor(5, "5", "4GB Standard Instance", 4096, 2, 160, 0, 400.0),
    flavor(6, "6", "8GB Standard Instance", 8192, 4, 320, 0, 600.0),
    flavor(7, "7", "15GB Standard Instance", 15360, 6, 620, 0, 800.0),
    flavor(8, "8", "30GB Standard Instance", 30720, 8, 1200, 0, 1200.0),
    flavor(
        10,
        "performance1-1",
        "1 GB Performance",
        1024,
        1,
        20,
        0,
        200.0,
    ),
    flavor(
        11,
        "performance1-2",
        "2 GB Performance",
        2048,
        2,
        40,
        20,
        400.0,
    ),
    flavor(
        12,
        "performance1-4",
        "4 GB Performance",
        4096,
        4,
        40,
        40,
        800.0,
    ),
    flavor(
        13,
        "performance1-8",
        "8 GB Performance",
        8192,
        8,
        40,
        80,
        1600.0,
    ),
];

/// An operating system an image carries.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OsInfo {
    pub distro: &'static str,
    pub org_distro: &'static str,
    pub version: &'static str,
    pub os_type: &'static str,
    pub architecture: &'static str,
    pub min_ram: i64,
}

const fn os(
    distro: &'static str,
    org_distro: &'static str,
    version: &'static str,
    os_type: &'static str,
    min_ram: i64,
) -> OsInfo {
    OsInfo {
        distro,
        org_distro,
        version,
        os_type,
        architecture: "x64",
        min_ram,
    }
}

pub(crate) const OPERATING_SYSTEMS: [OsInfo; 10] = [
    os("ubuntu", "com.ubuntu", "12.04", "linux", 512),
    os("ubuntu", "com.ubuntu", "14.04", "linux", 512),
    os("debian", "org.debian", "7", "linux", 512),
    os("centos", "org.centos", "6.5", "linux", 512),
    os("centos", "org.centos", "7", "linux", 512),
    os("fedora", "org.fedoraproject", "20", "linux", 512),
    os("rhel", "com.redhat", "6.5", "linux", 512),
    os("opensuse", "org.opensuse", "13.1", "linux", 512),
    os("windows", "com.microsoft.server", "2012", "windows", 1024),
    os("windows", "com.microsoft.server", "2008.2", "windows", 1024),
];

/// A Glance image instances boot from.
#[derive(Debug, Clone)]
pub(crate) struct Image {
    pub id: String,
    pub name: String,
    pub os: usize,
    /// `base` (public) or `snapshot` (a tenant's).
    pub image_type: &'static str,
}

/// Nova's vm_state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VmState {
    Building,
    Active,
    Stopped,
    Rescued,
    Resized,
    Deleted,
}

impl VmState {
    pub fn as_str(self) -> &'static str {
        match self {
            VmState::Building => "building",
            VmState::Active => "active",
            VmState::Stopped => "stopped",
            VmState::Rescued => "rescued",
            VmState::Resized => "resized",
            VmState::Deleted => "deleted",
        }
    }
}

/// The operations an instance goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Create,
    Delete,
    Resize,
    Rebuild,
    Rescue,
    Unrescue,
    Snapshot,
    PowerOn,
    PowerOff,
    Reboot,
}

impl Operation {
    pub fn name(self) -> &'static str {
        match self {
            Operation::Create => "create",
            Operation::Delete => "delete",
            Operation::Resize => "resize",
            Operation::Rebuild => "rebuild",
            Operation::Rescue => "rescue",
            Operation::Unrescue => "unrescue",
            Operation::Snapshot => "snapshot",
            Operation::PowerOn => "power_on",
            Operation::PowerOff => "power_off",
            Operation::Reboot => "reboot",
        }
    }
}

/// The request an operation runs under: what the `_context_*` fields show.
#[derive(Debug, Clone)]
pub(crate) struct RequestContext {
    pub request_id: String,
    pub timestamp: DateTime<Utc>,
    pub auth_token: Option<String>,
    pub remote_address: Option<String>,
    pub is_admin: bool,
    pub tenant_id: String,
    pub user_id: String,
}

/// One simulated instance.
#[derive(Debug, Clone)]
pub(crate) struct Instance {
    pub id: String,
    pub tenant: usize,
    pub tenant_id: String,
    pub user_id: String,
    pub display_name: String,
    pub hostname: String,
    pub host: usize,
    pub reservation_id: String,
    pub created_at: DateTime<Utc>,
    pub launched_at: Option<DateTime<Utc>>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub flavor: usize,
    pub image: usize,
    pub access_ip_v4: String,
    pub access_ip_v6: String,
    pub fixed_ip: String,
    pub vm_state: VmState,
    pub task_state: Option<&'static str>,
    /// Notifications of the instance so far today (public bandwidth grows with them).
    pub bw_public_in: u64,
    pub bw_public_out: u64,
}

/// What a step changes on the instance, silently.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Mutation {
    Launched,
    Flavor(usize),
    Image(usize),
    Host(usize),
    Deleted,
}

/// One step of an operation.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Step {
    /// `compute.instance.update`: the vm_state and task_state it moves to.
    Update(VmState, Option<&'static str>),
    /// `compute.instance.<name>.start`
    Start(&'static str),
    /// `compute.instance.<name>.end`
    End(&'static str),
    /// `scheduler.run_instance.<phase>`
    Scheduler(&'static str),
    /// A `compute.instance.exists` for the current audit period so far (Nova sends one
    /// before a resize or a rebuild).
    Exists,
    /// A change without a notification of its own.
    Apply(Mutation),
}

impl Step {
    pub fn notifies(&self) -> bool {
        !matches!(self, Step::Apply(_))
    }
}

/// A planned operation: its steps with their offsets (microseconds) from its start.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub operation: Operation,
    pub steps: Vec<(i64, Step)>,
}

impl Plan {
    /// From the start to the last step.
    pub fn duration(&self) -> Duration {
        Duration::microseconds(self.steps.last().map(|(t, _)| *t).unwrap_or(0))
    }
}

/// Builds a plan, drawing a gap (in milliseconds, from a range) before each step.
struct Planner<'a> {
    rng: &'a mut ChaCha8Rng,
    at: i64,
    steps: Vec<(i64, Step)>,
}

impl Planner<'_> {
    fn step(&mut self, gap_ms: (i64, i64), step: Step) -> &mut Self {
        let (lo, hi) = gap_ms;
        // At least 1 ms between notifications, so their order is their time order.
        let gap = if step.notifies() {
            self.rng
                .gen_range(lo.max(1) * 1000..=hi.max(lo.max(1)) * 1000)
        } else {
            0
        };
        self.at += gap;
        self.steps.push((self.at, step));
        self
    }

    fn update(
        &mut self,
        gap_ms: (i64, i64),
        state: VmState,
        task: Option<&'static str>,
    ) -> &mut Self {
        self.step(gap_ms, Step::Update(state, task))
    }
}

/// Picks the next operation for an instance in `state`.
pub(crate) fn choose_operation(rng: &mut ChaCha8Rng, state: VmState) -> Operation {
    let table: &[(Operation, u32)] = match state {
        VmState::Active => &[
            (Operation::Reboot, 20),
            (Operation::Snapshot, 16),
            (Operation::PowerOff, 10),
            (Operation::Resize, 12),
            (Operation::Rebuild, 10),
            (Operation::Rescue, 6),
            (Operation::Delete, 10),
        ],
        VmState::Stopped => &[(Operation::PowerOn, 80), (Operation::Delete, 20)],
        VmState::Rescued => &[(Operation::Unrescue, 1)],
        // Resized instances are confirmed within their resize; building ones are
        // created within theirs. Neither waits here.
        VmState::Resized | VmState::Building | VmState::Deleted => &[(Operation::Delete, 1)],
    };
    let total: u32 = table.iter().map(|(_, w)| w).sum();
    let mut pick = rng.gen_range(0..total);
    for (op, w) in table {
        if pick < *w {
            return *op;
        }
        pick -= w;
    }
    Operation::Reboot
}

/// Plans `operation` for `instance` (not yet applied).
pub(crate) fn plan(
    rng: &mut ChaCha8Rng,
    catalog: &Catalog,
    instance: &Instance,
    operation: Operation,
) -> Plan {
    use Step::*;
    use VmState::*;
    let mut p = Planner {
        rng,
        at: 0,
        steps: Vec::new(),
    };
    let state = instance.vm_state;
    match operation {
        Operation::Create => {
            p.update((0, 0), Building, Some("scheduling"))
                .step((200, 1500), Scheduler("start"))
                .step((100, 900), Scheduler("scheduled"))
                .step((20, 300), Scheduler("end"))
                .update((300, 4000), Building, None)
                .step((50, 800), Start("create"))
                .update((200, 3000), Building, Some("networking"))
                .update((1000, 8000), Building, Some("block_device_mapping"))
                .update((500, 5000), Building, Some("spawning"));
            let spawning = p.rng.gen_range(2..8);
            for _ in 0..spawning {
                p.update((3000, 25_000), Building, Some("spawning"));
            }
            p.step((0, 0), Apply(Mutation::Launched))
                .update((500, 4000), Active, None)
                .step((50, 600), End("create"));
        }
        Operation::Delete => {
            p.update((0, 0), state, Some("deleting"))
                .step((100, 2000), Start("delete"))
                .step((100, 1500), Start("shutdown"))
                .step((2000, 40_000), End("shutdown"))
                .update((500, 5000), state, Some("deleting"))
                .step((0, 0), Apply(Mutation::Deleted))
                .update((500, 4000), Deleted, None)
                .step((50, 800), End("delete"));
        }
        Operation::Resize => {
            let new_flavor = pick_other(p.rng, FLAVORS.len(), instance.flavor);
            let new_host = pick_other(p.rng, catalog.hosts.len(), instance.host);
            p.update((0, 0), Active, Some("resize_prep"))
                .step((300, 3000), Exists)
                .step((100, 1500), Start("resize.prep"))
                .step((100, 2000), End("resize.prep"))
                .update((500, 6000), Active, Some("resize_migrating"))
                .step((100, 1500), Start("resize"));
            let copies = p.rng.gen_range(2..6);
            for _ in 0..copies {
                p.update((20_000, 120_000), Active, Some("resize_migrating"));
            }
            p.update((1000, 10_000), Active, Some("resize_migrated"))
                .step((100, 1500), End("resize"))
                .step((0, 0), Apply(Mutation::Host(new_host)))
                .update((1000, 10_000), Active, Some("resize_finish"))
                .step((100, 1500), Start("finish_resize"))
                .step((0, 0), Apply(Mutation::Flavor(new_flavor)))
                .update((5000, 60_000), Active, Some("resize_finish"))
                .step((0, 0), Apply(Mutation::Launched))
                .update((1000, 8000), Resized, None)
                .step((50, 800), End("finish_resize"))
                // The user confirms the resize a while later.
                .step((60_000, 1_800_000), Start("resize.confirm"))
                .update((200, 3000), Resized, None)
                .update((500, 8000), Active, None)
                .step((50, 800), End("resize.confirm"));
        }
        Operation::Rebuild => {
            let same_image = p.rng.gen_bool(0.5);
            let new_image = if same_image {
                instance.image
            } else {
                pick_other(p.rng, catalog.images.len(), instance.image)
            };
            p.update((0, 0), Active, Some("rebuilding"))
                .update((200, 3000), Active, Some("rebuilding"))
                .step((300, 3000), Exists)
                .step((100, 1500), Start("rebuild"))
                .step((0, 0), Apply(Mutation::Image(new_image)))
                .update((500, 6000), Active, Some("rebuild_block_device_mapping"))
                .update((1000, 20_000), Active, Some("rebuild_spawning"));
            let spawning = p.rng.gen_range(1..5);
            for _ in 0..spawning {
                p.update((10_000, 70_000), Active, Some("rebuild_spawning"));
            }
            p.step((0, 0), Apply(Mutation::Launched))
                .update((1000, 8000), Active, None)
                .step((50, 800), End("rebuild"));
        }
        Operation::Rescue => {
            p.update((0, 0), Active, Some("rescuing"))
                .step((200, 3000), Start("rescue"))
                .update((20_000, 120_000), Rescued, None)
                .step((50, 800), End("rescue"));
        }
        Operation::Unrescue => {
            p.update((0, 0), Rescued, Some("unrescuing"))
                .step((200, 3000), Start("unrescue"))
                .update((10_000, 90_000), Active, None)
                .step((50, 800), End("unrescue"));
        }
        Operation::Snapshot => {
            p.update((0, 0), Active, Some("image_snapshot_pending"))
                .update((200, 3000), Active, Some("image_snapshot"))
                .step((100, 1500), Start("snapshot"))
                .update((5000, 60_000), Active, Some("image_pending_upload"))
                .update((1000, 10_000), Active, Some("image_uploading"))
                .update((60_000, 900_000), Active, None)
                .step((50, 800), End("snapshot"));
        }
        Operation::PowerOff => {
            p.update((0, 0), Active, Some("powering-off"))
                .step((100, 1500), Start("power_off"))
                .update((5000, 60_000), Stopped, None)
                .step((50, 800), End("power_off"));
        }
        Operation::PowerOn => {
            p.update((0, 0), Stopped, Some("powering-on"))
                .step((100, 1500), Start("power_on"))
                .update((5000, 60_000), Active, None)
                .step((50, 800), End("power_on"));
        }
        Operation::Reboot => {
            let hard = p.rng.gen_bool(0.3);
            let (pending, started) = if hard {
                ("reboot_pending_hard", "reboot_started_hard")
            } else {
                ("reboot_pending", "reboot_started")
            };
            p.update(
                (0, 0),
                Active,
                Some(if hard { "rebooting_hard" } else { "rebooting" }),
            )
            .update((100, 1500), Active, Some(pending))
            .step((100, 1500), Start("reboot"))
            .update((100, 1500), Active, Some(started))
            .update((5000, 90_000), Active, None)
            .step((50, 800), End("reboot"));
        }
    }
    Plan {
        operation,
        steps: p.steps,
    }
}

/// A random index in `0..n` other than `current` (when there is another).
fn pick_other(rng: &mut ChaCha8Rng, n: usize, current: usize) -> usize {
    if n <= 1 {
        return current;
    }
    let i = rng.gen_range(0..n - 1);
    if i >= current {
        i + 1
    } else {
        i
    }
}

impl Instance {
    /// The instance's usage figures in a day: public bandwidth (bytes) grows with its
    /// size while it runs.
    pub fn add_bandwidth(&mut self, rng: &mut ChaCha8Rng) {
        let scale = FLAVORS[self.flavor].memory_mb as u64;
        self.bw_public_in += rng.gen_range(0..scale * 200_000);
        self.bw_public_out += rng.gen_range(0..scale * 50_000);
    }

    /// Applies a mutation at `at`.
    pub fn mutate(&mut self, mutation: Mutation, at: DateTime<Utc>) {
        match mutation {
            Mutation::Launched => self.launched_at = Some(at),
            Mutation::Flavor(f) => self.flavor = f,
            Mutation::Image(i) => self.image = i,
            Mutation::Host(h) => self.host = h,
            Mutation::Deleted => self.deleted_at = Some(at),
        }
    }

    pub fn alive(&self) -> bool {
        self.launched_at.is_some() && self.vm_state != VmState::Deleted
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn every_start_has_its_end_in_every_plan() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let catalog = Catalog::new(&mut rng, 3, 4);
        let inst = catalog.new_instance(&mut rng, 0, DateTime::<Utc>::MIN_UTC, false);
        for op in [
            Operation::Create,
            Operation::Delete,
            Operation::Resize,
            Operation::Rebuild,
            Operation::Rescue,
            Operation::Unrescue,
            Operation::Snapshot,
            Operation::PowerOn,
            Operation::PowerOff,
            Operation::Reboot,
        ] {
            let plan = plan(&mut rng, &catalog, &inst, op);
            let starts: Vec<&str> = plan
                .steps
                .iter()
                .filter_map(|(_, s)| match s {
                    Step::Start(n) => Some(*n),
                    _ => None,
                })
                .collect();
            let ends: Vec<&str> = plan
                .steps
                .iter()
                .filter_map(|(_, s)| match s {
                    Step::End(n) => Some(*n),
                    _ => None,
                })
                .collect();
            let mut sorted_starts = starts.clone();
            sorted_starts.sort();
            let mut sorted_ends = ends.clone();
            sorted_ends.sort();
            assert_eq!(sorted_starts, sorted_ends, "{op:?}");
            assert!(plan.steps.windows(2).all(|w| w[0].0 <= w[1].0));
            assert!(plan.duration() > Duration::zero());
        }
    }

    #[test]
    fn pick_other_never_picks_current() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..200 {
            let i = pick_other(&mut rng, 5, 2);
            assert!(i < 5 && i != 2);
        }
        assert_eq!(pick_other(&mut rng, 1, 0), 0);
    }
}
