//! `stv3 notigen`: generate Nova-style notifications (see `worker::notigen`) to a JSON
//! Lines file, stdout, or RabbitMQ (published as notabene did).
//!
//! Without `--count` or `--duration` it generates one simulated day (as the original
//! event pump did); `--count 0` / `--duration 0` mean no limit (stop with Ctrl-C).
//! `--rate` paces the output in wall-clock notifications per second; without it the
//! generator runs as fast as it can. A progress bar shows when stderr is a terminal;
//! otherwise one summary line is printed at the end.

use anyhow::{bail, Context};
use chrono::{DateTime, Duration, DurationRound, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;
use worker::notabene::{AmqpParams, AmqpPublisher, NotificationSink, PublishTarget};
use worker::notigen::{Generator, GeneratorOptions};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Seed of every random choice (default: from the clock, printed on stderr).
    #[arg(long)]
    seed: Option<u64>,
    /// Instances simulated.
    #[arg(long, default_value_t = 100)]
    instances: usize,
    /// Tenants owning them (default: one per 4 instances).
    #[arg(long)]
    tenants: Option<usize>,
    /// Mean operations per instance per simulated day.
    #[arg(long, default_value_t = 4.0, value_name = "N")]
    ops_per_day: f64,
    /// Stop after N notifications (0: no limit).
    #[arg(long, conflicts_with = "duration")]
    count: Option<u64>,
    /// Stop after SECS of simulated time (0: no limit).
    #[arg(long, value_name = "SECS")]
    duration: Option<u64>,
    /// Notifications per wall-clock second (default: as fast as possible).
    #[arg(long, value_name = "PER_SEC")]
    rate: Option<f64>,
    /// Simulated start time, RFC 3339 (default: now, to the second).
    #[arg(long, value_name = "RFC3339")]
    start: Option<String>,
    /// Write JSON Lines to FILE (`-` for stdout).
    #[arg(long, short = 'o', value_name = "FILE", conflicts_with = "amqp")]
    output: Option<PathBuf>,
    /// Publish to RabbitMQ at this URL (amqp://user:pass@host:port/vhost).
    #[arg(long, value_name = "URL", requires_all = ["exchange", "queue"])]
    amqp: Option<String>,
    /// Exchange to publish to (declared durable).
    #[arg(long, requires = "amqp")]
    exchange: Option<String>,
    /// Exchange type.
    #[arg(long, default_value = "topic", requires = "amqp")]
    exchange_type: String,
    /// Queue (declared durable, bound to the exchange); also the routing key.
    #[arg(long, requires = "amqp")]
    queue: Option<String>,
}

enum Output {
    Lines(Box<dyn Write>, String),
    Amqp(Box<AmqpPublisher>, PublishTarget),
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run_async(args))
}

fn parse_start(text: Option<&str>) -> anyhow::Result<DateTime<Utc>> {
    match text {
        Some(s) => Ok(DateTime::parse_from_rfc3339(s)
            .with_context(|| {
                format!("bad --start '{s}' (want RFC 3339, e.g. 2024-01-01T00:00:00Z)")
            })?
            .with_timezone(&Utc)),
        None => {
            let now = Utc::now();
            Ok(now.duration_trunc(Duration::seconds(1)).unwrap_or(now))
        }
    }
}

async fn run_async(args: Args) -> anyhow::Result<ExitCode> {
    if let Some(rate) = args.rate {
        if !(rate.is_finite() && rate > 0.0) {
            bail!("--rate must be a positive number of notifications per second, not {rate}");
        }
    }
    let start = parse_start(args.start.as_deref())?;
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
    });
    let (count, end) = match (args.count, args.duration) {
        (Some(0), _) | (_, Some(0)) => (None, None),
        (Some(n), _) => (Some(n), None),
        (None, Some(secs)) => {
            let secs = i64::try_from(secs).context("--duration is too large")?;
            let span = Duration::try_seconds(secs).context("--duration is too large")?;
            (
                None,
                Some(
                    start
                        .checked_add_signed(span)
                        .context("--duration is too large")?,
                ),
            )
        }
        (None, None) => (None, Some(start + Duration::days(1))),
    };
    let options = GeneratorOptions {
        seed,
        instances: args.instances,
        tenants: args.tenants.unwrap_or((args.instances / 4).max(1)),
        start,
        end,
        operations_per_instance_per_day: args.ops_per_day,
        ..GeneratorOptions::default()
    };
    let mut generator = Generator::new(options)?;
    if args.seed.is_none() {
        eprintln!(
            "stv3 notigen: seed {seed} (pass --seed {seed} --start {} to repeat)",
            start.to_rfc3339()
        );
    }

    let mut output = match (&args.output, &args.amqp) {
        (Some(path), None) if path.as_os_str() == "-" => {
            Output::Lines(Box::new(BufWriter::with_capacity(1 << 16, io::stdout())), "stdout".into())
        }
        (Some(path), None) => {
            let file = File::create(path)
                .with_context(|| format!("cannot create output file {}", path.display()))?;
            Output::Lines(
                Box::new(BufWriter::with_capacity(1 << 16, file)),
                path.display().to_string(),
            )
        }
        (None, Some(url)) => {
            let connection = AmqpParams::from_url(url)?;
            let target = PublishTarget {
                connection,
                exchange: args.exchange.clone().unwrap_or_default(),
                exchange_type: args.exchange_type.clone(),
                queue_name: args.queue.clone().unwrap_or_default(),
            };
            if target.queue_name.is_empty() {
                bail!("--queue must not be empty");
            }
            Output::Amqp(Box::new(AmqpPublisher::new()), target)
        }
        _ => bail!("say where the notifications go: --output FILE.jsonl, --output - or --amqp URL --exchange NAME --queue NAME"),
    };

    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                stop.store(true, Ordering::SeqCst);
            }
        });
    }

    let progress =
        if io::stderr().is_terminal() {
            let bar = match count {
            Some(n) => ProgressBar::new(n).with_style(
                ProgressStyle::with_template(
                    "{bar:40} {human_pos}/{human_len} notifications, {per_sec}, eta {eta} {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            ),
            None => ProgressBar::new_spinner().with_style(
                ProgressStyle::with_template("{spinner} {human_pos} notifications, {per_sec} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            ),
        };
            bar.enable_steady_tick(std::time::Duration::from_millis(200));
            Some(bar)
        } else {
            None
        };

    let mut pacer = args.rate.map(Pacer::new);
    let began = Instant::now();
    let mut sent: u64 = 0;
    let mut last_at: Option<DateTime<Utc>> = None;
    let result: anyhow::Result<()> = async {
        while count.is_none_or(|n| sent < n) && !stop.load(Ordering::Relaxed) {
            let Some((at, notification)) = generator.next_timed() else {
                break;
            };
            if let Some(p) = pacer.as_mut() {
                p.wait().await;
            }
            match &mut output {
                Output::Lines(w, name) => {
                    serde_json::to_writer(&mut *w, &notification)
                        .map_err(io::Error::from)
                        .and_then(|()| w.write_all(b"\n"))
                        .with_context(|| format!("cannot write to {name}"))?;
                }
                Output::Amqp(publisher, target) => {
                    publisher.publish(target, &notification).await?;
                }
            }
            sent += 1;
            last_at = Some(at);
            if let Some(bar) = &progress {
                if sent.is_multiple_of(256) {
                    bar.set_position(sent);
                    bar.set_message(format!("(simulated {})", at.format("%Y-%m-%d %H:%M")));
                }
            }
        }
        match &mut output {
            Output::Lines(w, name) => w
                .flush()
                .with_context(|| format!("cannot write to {name}"))?,
            Output::Amqp(publisher, _) => publisher.close().await,
        }
        Ok(())
    }
    .await;

    let secs = began.elapsed().as_secs_f64();
    if let Some(bar) = &progress {
        bar.set_position(sent);
        bar.finish_and_clear();
    }
    let rate = if secs > 0.0 { sent as f64 / secs } else { 0.0 };
    let until = last_at
        .map(|t| format!(", simulated until {}", t.to_rfc3339()))
        .unwrap_or_default();
    eprintln!("{sent} notifications in {secs:.2} s ({rate:.0}/s){until}");
    result?;
    Ok(ExitCode::SUCCESS)
}

/// Paces output to a rate with a token bucket refilled by a tokio interval.
struct Pacer {
    interval: tokio::time::Interval,
    per_tick: f64,
    tokens: f64,
}

impl Pacer {
    fn new(rate: f64) -> Pacer {
        // Ticks of at least 1 ms; fast rates take several tokens per tick.
        let tick = (1.0 / rate).max(0.001);
        let mut interval = tokio::time::interval(std::time::Duration::from_secs_f64(tick));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Pacer {
            interval,
            per_tick: rate * tick,
            tokens: 0.0,
        }
    }

    async fn wait(&mut self) {
        while self.tokens < 1.0 {
            self.interval.tick().await;
            // A burst of at most two ticks' worth after a stall.
            self.tokens = (self.tokens + self.per_tick).min(self.per_tick.max(1.0) * 2.0);
        }
        self.tokens -= 1.0;
    }
}
