//! The chaos soak: the real `yagi-event` and `pipeline-worker` binaries over the real
//! MariaDB and RabbitMQ of `scripts/services.sh`, fed by notigen, while faults chosen
//! from the seed hit them. Exit status 0 exactly when every check holds.
//!
//! ```sh
//! cargo run --release -p stv3-e2e --bin soak -- --notifications 200000 --seed 1
//! ```
//!
//! Faults, one every `--fault-every` seconds while traffic flows (and at least one of
//! each kind): SIGKILL a yagi-event (restarted at once), SIGKILL a pipeline worker
//! (restarted), restart RabbitMQ, restart MariaDB, revoke the workers' database
//! grants for a while. The schedule is printed from the seed before anything starts.
//!
//! Checks, once the traffic is in and the faults are over:
//! 1. every distillable notification is stored exactly once (the set of stored
//!    message_ids is the set notigen's output distils to, one row each);
//! 2. every stream fired or expired, exactly once: none is left in error, in retry,
//!    claimed or ready, and every `.exists` has exactly one usage audit event
//!    (`.verified` or `.failed`) however often its stream's worker was killed;
//! 3. the dead-letter queue holds exactly the undistillable notifications, each with
//!    a distiller's reason (never a database's).

use anyhow::{bail, Context, Result};
use lapin::options::{BasicGetOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, ConnectionProperties};
use serde_json::Value;
use sqlx::{Connection as _, MySqlConnection};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use worker::notabene::{AmqpParams, AmqpPublisher, NotificationSink, PublishTarget};
use worker::notigen::{Generator, GeneratorOptions};

const USAGE_EVENTS: [&str; 2] = [
    "compute.instance.exists.verified",
    "compute.instance.exists.failed",
];

struct Args {
    notifications: u64,
    seed: u64,
    yagi: usize,
    workers: usize,
    fault_every: Duration,
    /// Notifications published per second (0: as fast as the broker confirms).
    rate: u64,
    keep: bool,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        notifications: 20_000,
        seed: 1,
        yagi: 2,
        workers: 2,
        fault_every: Duration::from_secs(6),
        rate: 600,
        keep: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--notifications" => args.notifications = value()?.parse()?,
            "--seed" => args.seed = value()?.parse()?,
            "--yagi" => args.yagi = value()?.parse()?,
            "--workers" => args.workers = value()?.parse()?,
            "--fault-every" => args.fault_every = Duration::from_secs_f64(value()?.parse()?),
            "--rate" => args.rate = value()?.parse()?,
            "--keep" => args.keep = true,
            "-h" | "--help" => {
                println!(
                    "soak [--notifications N] [--seed S] [--yagi N] [--workers N] \
                     [--fault-every SECONDS] [--rate PER_SECOND (600; 0: unthrottled)] [--keep]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (try --help)"),
        }
    }
    if args.notifications == 0 || args.yagi == 0 || args.workers == 0 {
        bail!("--notifications, --yagi and --workers must be at least 1");
    }
    Ok(args)
}

/// splitmix64: the schedule needs a few reproducible numbers, not a crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    KillYagi(usize),
    KillWorker(usize),
    RestartRabbitMq,
    RestartMariaDb,
    RevokeGrants,
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::KillYagi(i) => write!(f, "SIGKILL yagi-event #{i}, restart it"),
            Fault::KillWorker(i) => write!(f, "SIGKILL pipeline-worker #{i}, restart it"),
            Fault::RestartRabbitMq => write!(f, "restart RabbitMQ"),
            Fault::RestartMariaDb => write!(f, "restart MariaDB"),
            Fault::RevokeGrants => write!(f, "revoke the workers' grants for 8 s"),
        }
    }
}

/// The faults in order: every kind once (shuffled), then drawn at random.
fn schedule(seed: u64, yagi: usize, workers: usize, len: usize) -> Vec<Fault> {
    let mut rng = Rng(seed);
    let mut kinds = vec![
        Fault::KillYagi(0),
        Fault::KillWorker(0),
        Fault::RestartRabbitMq,
        Fault::RestartMariaDb,
        Fault::RevokeGrants,
    ];
    for i in (1..kinds.len()).rev() {
        kinds.swap(i, rng.below(i + 1));
    }
    let mut out = Vec::with_capacity(len.max(kinds.len()));
    for k in kinds {
        out.push(match k {
            Fault::KillYagi(_) => Fault::KillYagi(rng.below(yagi)),
            Fault::KillWorker(_) => Fault::KillWorker(rng.below(workers)),
            other => other,
        });
    }
    while out.len() < len {
        out.push(match rng.below(10) {
            0..=2 => Fault::KillYagi(rng.below(yagi)),
            3..=5 => Fault::KillWorker(rng.below(workers)),
            6 => Fault::RestartRabbitMq,
            7 => Fault::RestartMariaDb,
            _ => Fault::RevokeGrants,
        });
    }
    out
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn services(action: &str, which: &str) -> Result<()> {
    let out = Command::new("bash")
        .arg(repo_root().join("scripts/services.sh"))
        .args([action, which])
        .output()
        .context("cannot run scripts/services.sh")?;
    if !out.status.success() {
        bail!(
            "services.sh {action} {which}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

fn admin_url() -> String {
    std::env::var("STV3_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://stv3:stv3@127.0.0.1:3306/stv3_test".to_string())
}

fn amqp_url() -> String {
    std::env::var("STV3_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_string())
}

/// Runs admin statements, waiting for MariaDB if it is restarting.
async fn admin(statements: &[String]) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match MySqlConnection::connect(&admin_url()).await {
            Ok(mut c) => {
                for sql in statements {
                    sqlx::raw_sql(sql)
                        .execute(&mut c)
                        .await
                        .with_context(|| sql.clone())?;
                }
                let _ = c.close().await;
                return Ok(());
            }
            Err(e) if Instant::now() < deadline => {
                eprintln!("soak: MariaDB not answering yet ({e}); retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e).context("MariaDB"),
        }
    }
}

/// The soak's world: a database with its own account, a queue, the configuration.
struct World {
    dir: PathBuf,
    db: String,
    user: String,
    queue: String,
    exchange: String,
    dead: String,
    yagi_conf: PathBuf,
    winchester_yaml: PathBuf,
}

impl World {
    async fn create(seed: u64) -> Result<World> {
        let id = format!("{seed}_{}", std::process::id());
        let dir = std::env::temp_dir().join(format!("stv3-soak-{id}"));
        std::fs::create_dir_all(&dir)?;
        let db = format!("stv3_soak_{id}");
        let user = format!("stv3soak{}", std::process::id());
        let mut statements = vec![format!("CREATE DATABASE `{db}`")];
        for host in ["127.0.0.1", "localhost"] {
            statements.push(format!(
                "CREATE USER IF NOT EXISTS '{user}'@'{host}' IDENTIFIED BY 'soak'"
            ));
            statements.push(format!(
                "GRANT ALL PRIVILEGES ON `{db}`.* TO '{user}'@'{host}'"
            ));
        }
        admin(&statements).await?;
        let base = admin_url();
        let (server, _) = base.rsplit_once('/').context("MySQL URL with a database")?;
        let (scheme, rest) = server.split_once("://").context("MySQL URL")?;
        let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
        let db_url = format!("{scheme}://{user}:soak@{host}/{db}");

        let etc = repo_root().join("etc");
        let winchester_yaml = dir.join("winchester.yaml");
        std::fs::write(
            &winchester_yaml,
            format!(
                "config_path: [{etc}]\nstatistics_period: 5\npipeline_worker_delay: 0.5\n\
                 pipeline_worker_lease: 30\npurge_completed_streams: false\n\
                 database:\n    url: {db_url}\n\
                 distiller_config: event_definitions.yaml\n\
                 trigger_definitions: triggers.yaml\n\
                 pipeline_config: {pipelines}\n\
                 pipeline_handlers:\n\
                 \x20   logger: winchester.pipeline_handler:LoggingHandler\n\
                 \x20   usage: winchester.pipeline_handler:UsageHandler\n",
                etc = etc.display(),
                pipelines = dir.join("pipelines.yaml").display(),
            ),
        )?;
        // The sandbox's triggers, with the usage audit as both pipelines (no notabene:
        // its publishes would go to the sandbox's queue).
        std::fs::write(
            dir.join("pipelines.yaml"),
            "test_fire_pipeline:\n  - usage\ntest_expire_pipeline:\n  - usage\n",
        )?;

        let queue = format!("stv3.soak.{id}");
        let exchange = format!("stv3.soak.{id}.x");
        let dead = format!("{queue}.dead");
        let p = AmqpParams::from_url(&amqp_url())?;
        let conf = std::fs::read_to_string(repo_root().join("worker/tests/data/yagi/yagi.conf"))?
            .replace("host = localhost", &format!("host = {}", p.host))
            .replace("user = guest", &format!("user = {}", p.user))
            .replace("password = guest", &format!("password = {}", p.password))
            .replace("port = 5672", &format!("port = {}", p.port))
            .replace("vhost = /", &format!("vhost = {}", p.vhost))
            .replace("queues = monitor.info", &format!("queues = {queue}"))
            .replace("[consumer:monitor.info]", &format!("[consumer:{queue}]"))
            .replace(
                "apps = winchester.yagi_handler.WinchesterHandler, yagi.handler.shoebox_handler.ShoeboxHandler",
                "apps = winchester.yagi_handler.WinchesterHandler",
            )
            .replace("exchange = monitor", &format!("exchange = {exchange}"))
            .replace("routing_key = monitor.info", &format!("routing_key = {queue}"))
            .replace("max_messages = 100", "max_messages = 200\ndead_letter_max_length = 0")
            .replace("poll_delay = 0.5", "poll_delay = 0.5\nreconnect_delay = 1");
        let yagi_conf = dir.join("yagi.conf");
        std::fs::write(&yagi_conf, conf)?;
        Ok(World {
            dir,
            db,
            user,
            queue,
            exchange,
            dead,
            yagi_conf,
            winchester_yaml,
        })
    }

    async fn grants(&self, give: bool) -> Result<()> {
        let mut statements = Vec::new();
        for host in ["127.0.0.1", "localhost"] {
            statements.push(if give {
                format!(
                    "GRANT ALL PRIVILEGES ON `{}`.* TO '{}'@'{host}'",
                    self.db, self.user
                )
            } else {
                format!(
                    "REVOKE INSERT, UPDATE, DELETE ON `{}`.* FROM '{}'@'{host}'",
                    self.db, self.user
                )
            });
        }
        admin(&statements).await?;
        if !give {
            // Privileges are cached per connection: end the workers' connections.
            let mut c = MySqlConnection::connect(&admin_url()).await?;
            let ids: Vec<i64> =
                sqlx::query_scalar("SELECT id FROM information_schema.processlist WHERE user = ?")
                    .bind(&self.user)
                    .fetch_all(&mut c)
                    .await?;
            for id in ids {
                let _ = sqlx::raw_sql(&format!("KILL CONNECTION {id}"))
                    .execute(&mut c)
                    .await;
            }
        }
        Ok(())
    }

    async fn cleanup(&self) {
        let mut statements = vec![format!("DROP DATABASE IF EXISTS `{}`", self.db)];
        for host in ["127.0.0.1", "localhost"] {
            statements.push(format!("DROP USER IF EXISTS '{}'@'{host}'", self.user));
        }
        let _ = admin(&statements).await;
        if let Ok(conn) = Connection::connect(&amqp_url(), ConnectionProperties::default()).await {
            if let Ok(ch) = conn.create_channel().await {
                for q in [&self.queue, &self.dead] {
                    let _ = ch
                        .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
                        .await;
                }
                let _ = ch
                    .exchange_delete(self.exchange.as_str().into(), Default::default())
                    .await;
            }
            let _ = conn.close(200, "bye".into()).await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The worker processes, by kind and slot.
struct Fleet {
    bin: PathBuf,
    world_dir: PathBuf,
    yagi_conf: PathBuf,
    winchester_yaml: PathBuf,
    yagi: Vec<Child>,
    workers: Vec<Child>,
    spawned: u64,
}

impl Fleet {
    fn spawn(&mut self, yagi: bool, slot: usize) -> Result<Child> {
        self.spawned += 1;
        let (name, config) = if yagi {
            ("yagi-event", &self.yagi_conf)
        } else {
            ("pipeline-worker", &self.winchester_yaml)
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.world_dir.join(format!("{name}-{slot}.log")))?;
        Command::new(self.bin.join(name))
            .arg("--config")
            .arg(config)
            .arg("--metrics-listen")
            .arg("127.0.0.1:0")
            .env("RUST_LOG", "info")
            .env("STV3_LOG_FORMAT", "text")
            .current_dir(&self.world_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", self.bin.join(name).display()))
    }

    fn start(&mut self, yagi: usize, workers: usize) -> Result<()> {
        for slot in 0..yagi {
            let c = self.spawn(true, slot)?;
            self.yagi.push(c);
        }
        for slot in 0..workers {
            let c = self.spawn(false, slot)?;
            self.workers.push(c);
        }
        Ok(())
    }

    /// SIGKILL, then start a fresh one in the same slot.
    fn kill_and_restart(&mut self, yagi: bool, slot: usize) -> Result<()> {
        let old = if yagi {
            &mut self.yagi[slot]
        } else {
            &mut self.workers[slot]
        };
        let _ = old.kill();
        let _ = old.wait();
        let fresh = self.spawn(yagi, slot)?;
        if yagi {
            self.yagi[slot] = fresh;
        } else {
            self.workers[slot] = fresh;
        }
        Ok(())
    }

    /// Any process that exited on its own is a failure of the soak.
    fn check_alive(&mut self) -> Result<()> {
        for (kind, children) in [
            ("yagi-event", &mut self.yagi),
            ("pipeline-worker", &mut self.workers),
        ] {
            for (slot, c) in children.iter_mut().enumerate() {
                if let Some(status) = c.try_wait()? {
                    bail!("{kind} #{slot} exited by itself ({status}); see its log");
                }
            }
        }
        Ok(())
    }

    fn stop(&mut self) {
        for c in self.yagi.iter_mut().chain(self.workers.iter_mut()) {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .stderr(Stdio::null())
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        for c in self.yagi.iter_mut().chain(self.workers.iter_mut()) {
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Publishes every notification, retrying through broker restarts.
async fn publish(
    notes: Arc<Vec<Value>>,
    target: PublishTarget,
    done: Arc<AtomicU64>,
    rate: u64,
) -> Result<()> {
    let publisher = AmqpPublisher::new().with_connect_timeout(Duration::from_secs(3));
    let began = Instant::now();
    for (i, n) in notes.iter().enumerate() {
        if rate > 0 {
            // Spread over time, so the faults land while traffic flows.
            let due = began + Duration::from_secs_f64(i as f64 / rate as f64);
            tokio::time::sleep_until(due.into()).await;
        }
        let mut pause = Duration::from_millis(200);
        loop {
            match publisher.publish(&target, n).await {
                Ok(()) => break,
                Err(e) => {
                    eprintln!("soak: publish failed ({e}); retrying in {pause:?}");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
            }
        }
        done.fetch_add(1, Ordering::Relaxed);
    }
    publisher.close().await;
    Ok(())
}

async fn queue_depth(queue: &str) -> Result<u32> {
    let conn = Connection::connect(&amqp_url(), ConnectionProperties::default()).await?;
    let ch = conn.create_channel().await?;
    let q = ch
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await;
    let _ = conn.close(200, "bye".into()).await;
    Ok(q.map(|q| q.message_count()).unwrap_or(0))
}

async fn world_db(world: &World) -> Result<MySqlConnection> {
    let base = admin_url();
    let (server, _) = base.rsplit_once('/').context("MySQL URL")?;
    Ok(MySqlConnection::connect(&format!("{server}/{}", world.db)).await?)
}

async fn count(c: &mut MySqlConnection, sql: &str) -> Result<i64> {
    Ok(sqlx::query_scalar::<_, i64>(sql).fetch_one(c).await?)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::from(1),
        Err(e) => {
            eprintln!("soak: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

async fn run() -> Result<bool> {
    let args = parse_args()?;
    let begun = Instant::now();
    services("up", "all")?;

    // The workers' binaries, release builds of this checkout. The same selection as
    // `./build.sh -p` (the whole workspace), so after it this is a no-op: another
    // selection would unify features differently and rebuild the binaries.
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "-q", "--workspace", "--bins"])
        .current_dir(repo_root())
        .status()
        .context("cargo build")?;
    if !status.success() {
        bail!("cannot build yagi-event and pipeline-worker");
    }
    let target_dir = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo_root().join("target"));
    let bin = target_dir.join("release");

    // Traffic, and what it must become.
    let mut generator = Generator::new(GeneratorOptions {
        seed: args.seed,
        instances: (args.notifications / 40).clamp(10, 5000) as usize,
        ..GeneratorOptions::default()
    })?;
    let notes: Vec<Value> = (0..args.notifications)
        .map_while(|_| generator.next_notification())
        .collect();
    let world = World::create(args.seed).await?;
    let loaded = worker::winchester::config::load_config(&world.winchester_yaml)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let distiller = loaded.distiller.context("no distiller_config")?;
    let now = chrono::Utc::now();
    let mut expected: HashSet<String> = HashSet::new();
    for n in &notes {
        if let Ok(e) = distiller.distill_at(n, now) {
            expected.insert(e.message_id);
        }
    }
    let undistillable = notes.len() - expected.len();
    let faults = schedule(args.seed, args.yagi, args.workers, 5);
    println!(
        "soak: seed {}, {} notifications ({} distillable) at {}/s, {} yagi-event, {} pipeline workers, a fault every {:?}",
        args.seed,
        notes.len(),
        expected.len(),
        args.rate,
        args.yagi,
        args.workers,
        args.fault_every
    );
    println!("soak: faults in order (the list repeats while traffic flows):");
    for (i, f) in faults.iter().enumerate() {
        println!("  {:>3}. {f}", i + 1);
    }

    let started = Instant::now();
    let mut fleet = Fleet {
        bin,
        world_dir: world.dir.clone(),
        yagi_conf: world.yagi_conf.clone(),
        winchester_yaml: world.winchester_yaml.clone(),
        yagi: Vec::new(),
        workers: Vec::new(),
        spawned: 0,
    };
    let outcome = soak(
        &args,
        &world,
        &mut fleet,
        notes,
        &expected,
        undistillable,
        &faults,
        started,
    )
    .await;
    fleet.stop();
    // Whatever happened: the services back as they were.
    let _ = world.grants(true).await;
    let _ = services("up", "all");
    let ok = match outcome {
        Ok(ok) => ok,
        Err(e) => {
            eprintln!("soak: {e:#}\n  logs in {}", world.dir.display());
            false
        }
    };
    if ok && !args.keep {
        world.cleanup().await;
    } else {
        println!(
            "soak: logs and configuration kept in {}",
            world.dir.display()
        );
    }
    println!(
        "soak: {} in {:?} (set-up included)",
        if ok { "PASSED" } else { "FAILED" },
        begun.elapsed()
    );
    Ok(ok)
}

#[allow(clippy::too_many_arguments)]
async fn soak(
    args: &Args,
    world: &World,
    fleet: &mut Fleet,
    notes: Vec<Value>,
    expected: &HashSet<String>,
    undistillable: usize,
    faults: &[Fault],
    started: Instant,
) -> Result<bool> {
    let total = notes.len() as u64;
    let p = AmqpParams::from_url(&amqp_url())?;
    let target = PublishTarget {
        connection: p,
        exchange: world.exchange.clone(),
        exchange_type: "topic".into(),
        queue_name: world.queue.clone(),
    };
    fleet.start(args.yagi, args.workers)?;
    let published = Arc::new(AtomicU64::new(0));
    let publishing = tokio::spawn(publish(
        Arc::new(notes),
        target,
        published.clone(),
        args.rate,
    ));

    // Faults while traffic flows: at least the first list, and on while publishing.
    let mut injected: Vec<(Duration, Fault, Duration)> = Vec::new();
    let mut next = 0usize;
    let stop_faults = AtomicBool::new(false);
    loop {
        tokio::time::sleep(args.fault_every).await;
        fleet.check_alive()?;
        let all_kinds = next >= faults.len();
        if all_kinds && (publishing.is_finished() || stop_faults.load(Ordering::Relaxed)) {
            break;
        }
        let fault = faults[next % faults.len()];
        next += 1;
        let at = started.elapsed();
        let t = Instant::now();
        println!(
            "soak: t={:>5.1}s published {}/{total}: {fault}",
            at.as_secs_f64(),
            published.load(Ordering::Relaxed)
        );
        match fault {
            Fault::KillYagi(i) => fleet.kill_and_restart(true, i)?,
            Fault::KillWorker(i) => fleet.kill_and_restart(false, i)?,
            Fault::RestartRabbitMq => services("restart", "rabbitmq")?,
            Fault::RestartMariaDb => services("restart", "mariadb")?,
            Fault::RevokeGrants => {
                world.grants(false).await?;
                tokio::time::sleep(Duration::from_secs(8)).await;
                world.grants(true).await?;
            }
        }
        injected.push((at, fault, t.elapsed()));
    }
    publishing.await??;
    let publish_done = started.elapsed();
    println!(
        "soak: all {total} published at t={:.1}s; faults over",
        publish_done.as_secs_f64()
    );

    // Drain: the queue empty and every distillable notification stored.
    let mut db = world_db(world).await?;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        fleet.check_alive()?;
        let stored = count(&mut db, "SELECT COUNT(*) FROM event").await? as usize;
        let depth = queue_depth(&world.queue).await?;
        if depth == 0 && stored >= expected.len() {
            break;
        }
        if Instant::now() > deadline {
            bail!("not drained in 5 minutes: {depth} waiting, {stored} events stored");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let ingested = started.elapsed();
    // Streams: wait until none is left to fire or expire (their times are in 2015).
    let pending_sql = "SELECT COUNT(*) FROM stream WHERE state <> 6";
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        fleet.check_alive()?;
        let pending = count(&mut db, pending_sql).await?;
        if pending == 0 {
            break;
        }
        if Instant::now() > deadline {
            bail!("{pending} streams still not completed after 5 minutes");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let settled = started.elapsed();
    fleet.stop();

    // ---- the checks ----------------------------------------------------------------
    let mut ok = true;
    let mut check = |name: &str, pass: bool, detail: String| {
        println!(
            "soak: [{}] {name}: {detail}",
            if pass { "ok" } else { "FAILED" }
        );
        ok &= pass;
    };
    // message_id is binary-collated (exact comparison): read it as bytes.
    let stored: Vec<String> = sqlx::query_scalar::<_, Vec<u8>>(
        "SELECT e.message_id FROM event e JOIN event_type t ON t.id = e.event_type_id \
         WHERE t.name NOT LIKE 'compute.instance.exists.%'",
    )
    .fetch_all(&mut db)
    .await?
    .into_iter()
    .map(|b| String::from_utf8_lossy(&b).into_owned())
    .collect();
    let stored_set: HashSet<&String> = stored.iter().collect();
    let missing = expected.iter().filter(|m| !stored_set.contains(m)).count();
    let unexpected = stored_set
        .iter()
        .filter(|m| !expected.contains(**m))
        .count();
    check(
        "every distillable notification stored exactly once",
        missing == 0 && unexpected == 0 && stored.len() == expected.len(),
        format!(
            "{} expected, {} rows, {missing} missing, {unexpected} unexpected",
            expected.len(),
            stored.len()
        ),
    );

    let states: Vec<(i16, i64)> =
        sqlx::query_as("SELECT state, COUNT(*) FROM stream GROUP BY state ORDER BY state")
            .fetch_all(&mut db)
            .await?;
    let completed = states.iter().find(|(s, _)| *s == 6).map_or(0, |(_, n)| *n);
    let others: BTreeMap<i16, i64> = states.iter().filter(|(s, _)| *s != 6).copied().collect();
    check(
        "every stream fired or expired (completed, none in error, retry or claimed)",
        others.is_empty() && completed > 0,
        format!("{completed} completed, others by state: {others:?}"),
    );

    let exists = count(
        &mut db,
        "SELECT COUNT(*) FROM event e JOIN event_type t ON t.id = e.event_type_id \
         WHERE t.name = 'compute.instance.exists'",
    )
    .await?;
    let audits: Vec<(Vec<u8>, i64)> = sqlx::query_as(&format!(
        "SELECT tr.t_string, COUNT(*) FROM event e \
         JOIN event_type t ON t.id = e.event_type_id \
         JOIN event_trait tr ON tr.event_id = e.id AND tr.name = 'original_message_id' \
         WHERE t.name IN ('{}', '{}') GROUP BY tr.t_string",
        USAGE_EVENTS[0], USAGE_EVENTS[1]
    ))
    .fetch_all(&mut db)
    .await?;
    let twice = audits.iter().filter(|(_, n)| *n > 1).count();
    check(
        "every .exists audited exactly once (no duplicate usage event)",
        twice == 0 && audits.len() as i64 == exists,
        format!(
            "{exists} .exists, {} audited, {twice} audited more than once",
            audits.len()
        ),
    );

    let dead = drain_dead(&world.dead).await?;
    let bad_reasons: Vec<&String> = dead
        .iter()
        .filter(|r| {
            !matches!(
                r.as_str(),
                "no_matching_definition" | "invalid_timestamp" | "not_a_notification"
            )
        })
        .collect();
    check(
        "the dead-letter queue holds only undistillable notifications",
        dead.len() == undistillable && bad_reasons.is_empty(),
        format!(
            "{} dead-lettered, {undistillable} undistillable; other reasons: {bad_reasons:?}",
            dead.len()
        ),
    );

    println!(
        "\nsoak: results (seed {}, {total} notifications)",
        args.seed
    );
    println!("| phase | at | rate |");
    println!("|---|---|---|");
    let rate = |n: u64, d: Duration| n as f64 / d.as_secs_f64().max(0.001);
    println!(
        "| published (through the faults) | {:.1} s | {:.0}/s |",
        publish_done.as_secs_f64(),
        rate(total, publish_done)
    );
    println!(
        "| stored | {:.1} s | {:.0} events/s |",
        ingested.as_secs_f64(),
        rate(expected.len() as u64, ingested)
    );
    println!(
        "| every stream completed | {:.1} s | {completed} streams |",
        settled.as_secs_f64()
    );
    println!("\n| fault | at | took |");
    println!("|---|---|---|");
    for (at, f, took) in &injected {
        println!(
            "| {f} | {:.1} s | {:.1} s |",
            at.as_secs_f64(),
            took.as_secs_f64()
        );
    }
    println!("\nprocesses started: {}", fleet.spawned);
    Ok(ok)
}

/// Every message of the dead-letter queue (removed), by its `x-stv3-reason`.
async fn drain_dead(queue: &str) -> Result<Vec<String>> {
    let conn = Connection::connect(&amqp_url(), ConnectionProperties::default()).await?;
    let ch = conn.create_channel().await?;
    let mut reasons = Vec::new();
    while let Some(msg) = ch
        .basic_get(queue.into(), BasicGetOptions { no_ack: true })
        .await?
    {
        let reason = msg
            .properties
            .headers()
            .as_ref()
            .and_then(|h| h.inner().get("x-stv3-reason").cloned())
            .map(|v| match v {
                AMQPValue::LongString(s) => s.to_string(),
                other => format!("{other:?}"),
            })
            .unwrap_or_else(|| "<no reason>".into());
        reasons.push(reason);
    }
    let _ = conn.close(200, "bye".into()).await;
    Ok(reasons)
}
