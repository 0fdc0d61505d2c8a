//! Shared by the yagi-event integration tests: a throw-away MariaDB database, unique
//! queue names, a temporary yagi.conf + winchester.yaml, a kombu-style publisher, the
//! real `yagi-event` binary as a child process, and bounded waits.
#![allow(dead_code)]

use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use serde_json::Value;
use sqlx::Connection as _;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use worker::notabene::AmqpParams;
use worker::notigen::{Generator, GeneratorOptions};

pub const HINT: &str = "are the services up? try `scripts/services.sh up`";

pub fn amqp_url() -> String {
    std::env::var("STV3_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_string())
}

pub fn mysql_base_url() -> String {
    std::env::var("STV3_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://stv3:stv3@127.0.0.1:3306/stv3_test".to_string())
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// `n` notigen notifications (deterministic for `seed`).
pub fn notifications(seed: u64, n: usize) -> Vec<Value> {
    let mut g = Generator::new(GeneratorOptions {
        seed,
        instances: 300,
        ..GeneratorOptions::default()
    })
    .expect("notigen options");
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        match g.next_notification() {
            Some(v) => out.push(v),
            None => break,
        }
    }
    assert_eq!(out.len(), n, "notigen ended early");
    out
}

/// The message_ids the library distiller keeps (the events yagi-event must store).
pub fn expected_ids(winchester_yaml: &Path, notifications: &[Value]) -> BTreeSet<String> {
    let config = worker::winchester::config::load_config(winchester_yaml)
        .unwrap_or_else(|e| panic!("winchester config: {e}"));
    let distiller = config.distiller.expect("a distiller_config");
    notifications
        .iter()
        .filter_map(|n| distiller.distill(n).ok())
        .map(|e| e.message_id)
        .collect()
}

/// A test's own database, queue names and config files; cleaned up on drop.
pub struct Env {
    pub dir: PathBuf,
    pub db_name: String,
    pub db_url: String,
    pub queue: String,
    pub exchange: String,
    pub dead_letter_queue: String,
    pub yagi_conf: PathBuf,
    pub winchester_yaml: PathBuf,
    pub metrics_port: u16,
}

impl Env {
    pub async fn new(tag: &str, max_messages: usize) -> Env {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let base = mysql_base_url();
        let db_name = format!("stv3_t_{id}");
        let mut conn = tokio::time::timeout(
            Duration::from_secs(15),
            sqlx::MySqlConnection::connect(&base),
        )
        .await
        .unwrap_or_else(|_| panic!("timed out connecting to MariaDB; {HINT}"))
        .unwrap_or_else(|e| panic!("cannot connect to MariaDB ({e}); {HINT}"));
        sqlx::query(&format!("CREATE DATABASE `{db_name}`"))
            .execute(&mut conn)
            .await
            .expect("create database");
        let (prefix, _) = base.rsplit_once('/').expect("URL with a database");
        let db_url = format!("{prefix}/{db_name}");

        let dir = std::env::temp_dir().join(format!("stv3-yagi-{tag}-{id}"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let etc = repo_root().join("etc");
        let winchester_yaml = dir.join("winchester.yaml");
        std::fs::write(
            &winchester_yaml,
            format!(
                "config_path: [{etc}]\nstatistics_period: 2\n\
                 database:\n    url: {db_url}\n\
                 distiller_config: event_definitions.yaml\n\
                 trigger_definitions: triggers.yaml\n\
                 pipeline_config: pipelines.yaml\n\
                 pipeline_handlers:\n\
                 \x20   logger: winchester.pipeline_handler:LoggingHandler\n\
                 \x20   usage: winchester.pipeline_handler:UsageHandler\n\
                 \x20   notabene: winchester.pipeline_handler:NotabeneHandler\n",
                etc = etc.display()
            ),
        )
        .expect("write winchester.yaml");

        let short = &id[..12];
        let queue = format!("stv3.test.yagi.{tag}.{short}");
        let exchange = format!("stv3.test.yagi.{tag}.{short}.x");
        let dead_letter_queue = format!("{queue}.dead");
        let p = AmqpParams::from_url(&amqp_url()).expect("STV3_TEST_AMQP_URL");
        let yagi_conf = dir.join("yagi.conf");
        // The sandbox's yagi.conf, with this test's broker, queue and batch size.
        let common = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/yagi/yagi.conf"),
        )
        .expect("tests/data/yagi/yagi.conf");
        let conf = common
            .replace("update_timer = 10", "update_timer = 2")
            .replace("host = localhost", &format!("host = {}", p.host))
            .replace("user = guest", &format!("user = {}", p.user))
            .replace("password = guest", &format!("password = {}", p.password))
            .replace("port = 5672", &format!("port = {}", p.port))
            .replace("vhost = /", &format!("vhost = {}", p.vhost))
            .replace("queues = monitor.info", &format!("queues = {queue}"))
            .replace(
                "[consumer:monitor.info]",
                &format!("[consumer:{queue}]"),
            )
            .replace(
                "apps = winchester.yagi_handler.WinchesterHandler, yagi.handler.shoebox_handler.ShoeboxHandler",
                "apps = winchester.yagi_handler.WinchesterHandler",
            )
            .replace("exchange = monitor", &format!("exchange = {exchange}"))
            .replace("routing_key = monitor.info", &format!("routing_key = {queue}"))
            .replace(
                "max_messages = 100",
                &format!("max_messages = {max_messages}"),
            )
            .replace("poll_delay = 0.5", "poll_delay = 0.5\nreconnect_delay = 1");
        std::fs::write(&yagi_conf, conf).expect("write yagi.conf");

        Env {
            dir,
            db_name,
            db_url,
            queue,
            exchange,
            dead_letter_queue,
            yagi_conf,
            winchester_yaml,
            metrics_port: free_port(),
        }
    }

    /// Drops the database, queues and exchange, and the temp dir.
    pub async fn cleanup(&self) {
        if let Ok(mut conn) = sqlx::MySqlConnection::connect(&mysql_base_url()).await {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS `{}`", self.db_name))
                .execute(&mut conn)
                .await;
        }
        if let Ok(b) = Broker::connect().await {
            for q in [&self.queue, &self.dead_letter_queue] {
                let _ = b
                    .channel
                    .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
                    .await;
            }
            let _ = b
                .channel
                .exchange_delete(self.exchange.as_str().into(), Default::default())
                .await;
            b.close().await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    pub fn log_path(&self, n: usize) -> PathBuf {
        self.dir.join(format!("yagi-event-{n}.log"))
    }

    /// Starts the real binary (its log in the temp dir).
    pub fn spawn_worker(&self, n: usize) -> Child {
        let log = std::fs::File::create(self.log_path(n)).expect("log file");
        Command::new(env!("CARGO_BIN_EXE_yagi-event"))
            .arg("--config")
            .arg(&self.yagi_conf)
            .arg("--metrics-listen")
            .arg(format!("127.0.0.1:{}", self.metrics_port))
            .env("RUST_LOG", "info")
            .env("STV3_LOG_FORMAT", "text")
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn yagi-event")
    }

    /// The last lines of every worker log of this test.
    pub fn logs_tail(&self) -> String {
        let mut out = String::new();
        for n in 0..10 {
            if let Ok(text) = std::fs::read_to_string(self.log_path(n)) {
                let lines: Vec<&str> = text.lines().collect();
                let from = lines.len().saturating_sub(25);
                out.push_str(&format!("--- yagi-event-{n}.log (tail) ---\n"));
                for l in &lines[from..] {
                    out.push_str(l);
                    out.push('\n');
                }
            }
        }
        out
    }

    pub async fn db(&self) -> sqlx::MySqlConnection {
        sqlx::MySqlConnection::connect(&self.db_url)
            .await
            .expect("connect to the test database")
    }

    /// Stored events (0 while the worker has not migrated yet).
    pub async fn stored_count(&self) -> u64 {
        let Ok(mut c) = sqlx::MySqlConnection::connect(&self.db_url).await else {
            return 0;
        };
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM event")
            .fetch_one(&mut c)
            .await
            .map(|n| n as u64)
            .unwrap_or(0)
    }

    pub async fn stored_ids(&self) -> Vec<String> {
        let mut c = self.db().await;
        sqlx::query_scalar::<_, Vec<u8>>("SELECT message_id FROM event")
            .fetch_all(&mut c)
            .await
            .expect("select message_ids")
            .into_iter()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .collect()
    }

    /// Waits until `want` events are stored (and stay so), or panics with the logs.
    pub async fn wait_stored(&self, want: u64, within: Duration) -> Duration {
        let started = Instant::now();
        loop {
            let n = self.stored_count().await;
            if n >= want {
                return started.elapsed();
            }
            if started.elapsed() > within {
                panic!(
                    "only {n} of {want} events stored after {within:?}\n{}",
                    self.logs_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// GET /metrics of the running worker.
    pub async fn metrics(&self) -> String {
        http_get(self.metrics_port, "/metrics")
            .await
            .unwrap_or_default()
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

pub async fn http_get(port: u16, path: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&buf).to_string();
    let (head, body) = text.split_once("\r\n\r\n")?;
    if head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200") {
        Some(body.to_string())
    } else {
        None
    }
}

/// Sums a metric's samples whose line contains every `filters` substring.
pub fn metric_sum(text: &str, name: &str, filters: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.split(['{', ' ']).next().is_some_and(|n| n == name))
        .filter(|l| filters.iter().all(|f| l.contains(f)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Waits for /readyz to answer 200.
pub async fn wait_ready(env: &Env, within: Duration) {
    let started = Instant::now();
    while http_get(env.metrics_port, "/readyz").await.is_none() {
        if started.elapsed() > within {
            panic!("yagi-event not ready after {within:?}\n{}", env.logs_tail());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A connection to RabbitMQ for publishing (as kombu/notabene does) and inspecting.
pub struct Broker {
    pub conn: Connection,
    pub channel: Channel,
}

impl Broker {
    pub async fn connect() -> Result<Broker, String> {
        let conn = tokio::time::timeout(
            Duration::from_secs(15),
            Connection::connect(&amqp_url(), ConnectionProperties::default()),
        )
        .await
        .map_err(|_| format!("timed out connecting to RabbitMQ; {HINT}"))?
        .map_err(|e| format!("cannot connect to RabbitMQ ({e}); {HINT}"))?;
        let channel = conn.create_channel().await.map_err(|e| e.to_string())?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| e.to_string())?;
        Ok(Broker { conn, channel })
    }

    pub async fn close(self) {
        let _ = self.conn.close(200, "bye".into()).await;
    }

    /// Declares the topology as notabene does: durable topic exchange, durable queue,
    /// bound with the queue name.
    pub async fn declare(&self, env: &Env) {
        self.channel
            .exchange_declare(
                env.exchange.as_str().into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("declare exchange");
        self.channel
            .queue_declare(
                env.queue.as_str().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("declare queue");
        self.channel
            .queue_bind(
                env.queue.as_str().into(),
                env.exchange.as_str().into(),
                env.queue.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("bind queue");
    }

    /// Publishes raw bodies the way kombu/notabene does (JSON content type, utf-8,
    /// persistent, no headers), waiting for the broker's confirms.
    pub async fn publish_bodies(&self, env: &Env, bodies: &[Vec<u8>]) {
        for chunk in bodies.chunks(500) {
            let mut confirms = Vec::with_capacity(chunk.len());
            for body in chunk {
                let props = BasicProperties::default()
                    .with_content_type("application/json".into())
                    .with_content_encoding("utf-8".into())
                    .with_delivery_mode(2);
                confirms.push(
                    self.channel
                        .basic_publish(
                            env.exchange.as_str().into(),
                            env.queue.as_str().into(),
                            BasicPublishOptions::default(),
                            body,
                            props,
                        )
                        .await
                        .expect("publish"),
                );
            }
            for c in confirms {
                assert!(c.await.expect("confirm").is_ack(), "publish not confirmed");
            }
        }
    }

    pub async fn publish_json(&self, env: &Env, notifications: &[Value]) {
        let bodies: Vec<Vec<u8>> = notifications
            .iter()
            .map(|n| serde_json::to_vec(n).expect("JSON"))
            .collect();
        self.publish_bodies(env, &bodies).await;
    }

    /// Messages waiting in `queue` (passive declare).
    pub async fn depth(&self, queue: &str) -> u32 {
        self.channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .map(|q| q.message_count())
            .unwrap_or(0)
    }

    /// Drains `queue`: bodies with their `x-stv3-*` headers.
    pub async fn drain(
        &self,
        queue: &str,
        expect: usize,
        within: Duration,
    ) -> Vec<(Vec<u8>, HashMap<String, String>)> {
        let ch = self.conn.create_channel().await.expect("channel");
        let mut consumer = ch
            .basic_consume(
                queue.into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("consume");
        let mut out = Vec::new();
        let deadline = tokio::time::Instant::now() + within;
        while out.len() < expect {
            let next = tokio::time::timeout_at(deadline, consumer.next()).await;
            let Ok(Some(Ok(d))) = next else { break };
            let mut headers = HashMap::new();
            if let Some(h) = d.properties.headers() {
                for (k, v) in h.inner() {
                    if let AMQPValue::LongString(s) = v {
                        headers.insert(k.to_string(), s.to_string());
                    }
                }
            }
            d.acker.ack(BasicAckOptions::default()).await.expect("ack");
            out.push((d.data, headers));
        }
        let _ = ch.close(200, "bye".into()).await;
        out
    }
}

/// Stops a child: SIGTERM and a bounded wait; the exit status.
pub fn terminate(child: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let started = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if started.elapsed() > within {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
