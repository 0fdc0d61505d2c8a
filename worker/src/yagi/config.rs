//! `yagi.conf`: the original's INI file, read as Python's `ConfigParser` read it.
//!
//! Parsing is done by the `configparser` crate, which follows Python's ConfigParser
//! syntax (`=` or `:` delimiters, `#`/`;` comment lines, indented continuation lines,
//! case-sensitive section names); option names are case-folded as Python does. Values
//! are taken raw (no `%(name)s` interpolation: the sample `[shoebox]` section has
//! `%Y%m%d` in a template that must reach the archiver unchanged).
//!
//! Only the sections and keys yagi-event uses are validated; everything else (the
//! original's `[event_worker]`, `[logging]`, `[oahu]`, ...) is ignored with a debug
//! log, so existing files load unchanged. A value that is present but wrong is a
//! [`ConfigError`] naming the file, section, key and reason.

use configparser::ini::{Ini, IniDefault};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::amqp::{ClientIdentity, TlsOptions};
use crate::notabene::AmqpParams;

/// The original handler class names and the built-in apps they map to.
pub const WINCHESTER_APP: &str = "winchester.yagi_handler.WinchesterHandler";
pub const SHOEBOX_APP: &str = "yagi.handler.shoebox_handler.ShoeboxHandler";

/// Default dead-letter exchange (per-consumer `dead_letter_exchange` overrides it).
pub const DEFAULT_DEAD_LETTER_EXCHANGE: &str = "stv3.dead-letter";

/// A built-in app of a consumer's `apps` chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AppKind {
    /// Distils the notifications and stores the events (winchester's yagi handler).
    Winchester,
    /// Archives the raw notifications (yagi's shoebox handler).
    Shoebox,
}

impl AppKind {
    /// The app an original class name stands for.
    pub fn from_class_name(name: &str) -> Option<AppKind> {
        match name {
            WINCHESTER_APP => Some(AppKind::Winchester),
            SHOEBOX_APP => Some(AppKind::Shoebox),
            _ => None,
        }
    }

    pub fn class_name(self) -> &'static str {
        match self {
            AppKind::Winchester => WINCHESTER_APP,
            AppKind::Shoebox => SHOEBOX_APP,
        }
    }
}

/// `[rabbit_broker]`.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Host, port, user, password (never printed), vhost and `ssl`.
    pub params: AmqpParams,
    /// The original's pause between polls. The push consumer does not poll; kept for
    /// compatibility (and logged).
    pub poll_delay: Duration,
    /// The longest pause between reconnection attempts (the original's
    /// `reconnect_delay`, default 5 s): the back-off starts at 0.5 s (or less, if this
    /// is less) and doubles up to it. The original's `max_wait` (the cap of its linear
    /// back-off) is accepted and not needed.
    pub reconnect_delay: Duration,
    /// Where the TLS material is (`ssl_ca_file`, `ssl_cert_file`, `ssl_key_file`) and
    /// the name to verify (`ssl_server_name`): extensions, for brokers behind a private
    /// CA or asking for client certificates.
    pub tls_files: TlsFiles,
    /// The TLS material itself, read by [`load_yagi_config`] (empty after a bare parse).
    pub tls: TlsOptions,
}

/// `[rabbit_broker]`'s TLS keys, paths resolved against yagi.conf's directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub server_name: Option<String>,
}

/// `[consumer:<queue>]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumerConfig {
    pub queue: String,
    /// Empty: the default exchange (nothing declared or bound).
    pub exchange: String,
    pub exchange_type: String,
    pub routing_key: String,
    /// Queue durability (and the exchange's unless `exchange_durable` says otherwise).
    pub durable: bool,
    pub auto_delete: bool,
    pub exchange_durable: Option<bool>,
    pub exchange_auto_delete: Option<bool>,
    /// Batch size (and the prefetch count).
    pub max_messages: usize,
    /// How long a batch waits for more messages once its first one arrived.
    pub batch_timeout: Duration,
    /// The chain, in the order the original ran it (first listed first).
    pub apps: Vec<AppKind>,
    pub dead_letter_exchange: String,
    pub dead_letter_queue: String,
    /// The dead-letter queue keeps at most this many messages, dropping the oldest
    /// (`x-max-length`); 0: no bound.
    pub dead_letter_max_length: u64,
    /// Dead-lettered messages expire after this long (`x-message-ttl`); none: never.
    pub dead_letter_ttl: Option<Duration>,
}

impl ConsumerConfig {
    pub fn exchange_is_durable(&self) -> bool {
        self.exchange_durable.unwrap_or(self.durable)
    }
    pub fn exchange_is_auto_delete(&self) -> bool {
        self.exchange_auto_delete.unwrap_or(self.auto_delete)
    }
}

/// The whole of what yagi-event reads from `yagi.conf`.
#[derive(Debug, Clone)]
pub struct YagiConfig {
    /// The file read (for messages).
    pub path: PathBuf,
    /// `[global] update_timer`: the statistics period.
    pub update_timer: Duration,
    pub broker: BrokerConfig,
    pub consumers: Vec<ConsumerConfig>,
    /// `[winchester] config_file`, resolved (the yagi.conf's directory, then the
    /// current directory); `None` when no consumer runs the winchester app.
    pub winchester_config: Option<PathBuf>,
    /// The `[shoebox]` keys as written (empty without the section).
    pub shoebox: BTreeMap<String, String>,
}

impl YagiConfig {
    /// Whether any consumer runs `app`.
    pub fn uses(&self, app: AppKind) -> bool {
        self.consumers.iter().any(|c| c.apps.contains(&app))
    }
}

/// A bad `yagi.conf`: where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub section: Option<String>,
    pub key: Option<String>,
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(s) = &self.section {
            write!(f, ", section [{s}]")?;
        }
        if let Some(k) = &self.key {
            write!(f, ", key '{k}'")?;
        }
        write!(f, ": {}", self.reason)
    }
}

impl std::error::Error for ConfigError {}

type Sections = HashMap<String, HashMap<String, Option<String>>>;

struct Reader<'a> {
    file: &'a Path,
    sections: Sections,
}

impl Reader<'_> {
    fn err(&self, section: &str, key: Option<&str>, reason: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.to_path_buf(),
            section: Some(section.to_string()),
            key: key.map(str::to_string),
            reason: reason.into(),
        }
    }

    fn has_section(&self, section: &str) -> bool {
        self.sections.contains_key(section)
    }

    /// A value, falling back to `[DEFAULT]` as ConfigParser does.
    fn get(&self, section: &str, key: &str) -> Option<&str> {
        let lookup = |s: &str| {
            self.sections
                .get(s)
                .and_then(|m| m.get(key))
                .map(|v| v.as_deref().unwrap_or(""))
        };
        lookup(section).or_else(|| lookup("DEFAULT"))
    }

    fn string(&self, section: &str, key: &str, default: &str) -> String {
        self.get(section, key).unwrap_or(default).to_string()
    }

    fn boolean(&self, section: &str, key: &str, default: bool) -> Result<bool, ConfigError> {
        match self.get(section, key) {
            None => Ok(default),
            Some(v) => parse_bool(v).ok_or_else(|| {
                self.err(
                    section,
                    Some(key),
                    format!("'{v}' is not a boolean (True/False, yes/no, on/off, 1/0)"),
                )
            }),
        }
    }

    /// The original's tri-state: `Default`, `None` or absent mean "same as the queue".
    fn tri_bool(&self, section: &str, key: &str) -> Result<Option<bool>, ConfigError> {
        match self.get(section, key) {
            None | Some("Default") | Some("None") | Some("") => Ok(None),
            Some(_) => self.boolean(section, key, false).map(Some),
        }
    }

    fn seconds(&self, section: &str, key: &str, default: f64) -> Result<Duration, ConfigError> {
        let raw = match self.get(section, key) {
            None => return Ok(Duration::from_secs_f64(default)),
            Some(v) => v,
        };
        let secs: f64 = raw.trim().parse().map_err(|_| {
            self.err(
                section,
                Some(key),
                format!("'{raw}' is not a number of seconds"),
            )
        })?;
        if !secs.is_finite() || !(0.0..=1.0e9).contains(&secs) {
            return Err(self.err(
                section,
                Some(key),
                format!("'{raw}' is not a non-negative number of seconds"),
            ));
        }
        Ok(Duration::from_secs_f64(secs))
    }

    fn integer<T: TryFrom<u64>>(
        &self,
        section: &str,
        key: &str,
        default: T,
        min: u64,
    ) -> Result<T, ConfigError> {
        let raw = match self.get(section, key) {
            None => return Ok(default),
            Some(v) => v,
        };
        let n: u64 = raw
            .trim()
            .parse()
            .ok()
            .filter(|n| *n >= min)
            .ok_or_else(|| {
                self.err(
                    section,
                    Some(key),
                    format!("'{raw}' is not an integer >= {min}"),
                )
            })?;
        T::try_from(n).map_err(|_| self.err(section, Some(key), format!("'{raw}' is too large")))
    }
}

/// Python's `getboolean` spellings.
fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "yes" | "true" | "on" => Some(true),
        "0" | "no" | "false" | "off" => Some(false),
        _ => None,
    }
}

/// Known keys per section kind, to log the ones ignored.
const KNOWN_GLOBAL: &[&str] = &["update_timer", "verbose", "debug"];
const KNOWN_BROKER: &[&str] = &[
    "host",
    "user",
    "password",
    "port",
    "vhost",
    "poll_delay",
    "ssl",
    "reconnect_delay",
    "max_wait",
    "ssl_ca_file",
    "ssl_cert_file",
    "ssl_key_file",
    "ssl_server_name",
];
const KNOWN_CONSUMER: &[&str] = &[
    "apps",
    "exchange",
    "exchange_type",
    "routing_key",
    "durable",
    "auto_delete",
    "exchange_durable",
    "exchange_auto_delete",
    "max_messages",
    "batch_timeout",
    "dead_letter_exchange",
    "dead_letter_queue",
    "dead_letter_max_length",
    "dead_letter_ttl",
];

/// Reads and validates `yagi.conf`.
pub fn load_yagi_config(path: &Path) -> Result<YagiConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.to_path_buf(),
        section: None,
        key: None,
        reason: format!("cannot read: {e}"),
    })?;
    let mut config = parse_yagi_config(&text, path)?;
    apply_credential_env(&mut config.broker.params, |name| std::env::var(name).ok());
    config.broker.tls = load_tls(path, &config.broker.tls_files)?;
    Ok(config)
}

/// Reads the TLS files `[rabbit_broker]` names. Each must be PEM of the right kind:
/// a swapped certificate and key is refused here, at start-up, not at the first
/// handshake.
fn load_tls(path: &Path, files: &TlsFiles) -> Result<TlsOptions, ConfigError> {
    let read = |key: &str, file: &Path, marker: &str, what: &str| {
        let err = |reason: String| ConfigError {
            file: path.to_path_buf(),
            section: Some("rabbit_broker".into()),
            key: Some(key.into()),
            reason,
        };
        let text = std::fs::read_to_string(file)
            .map_err(|e| err(format!("cannot read {}: {e}", file.display())))?;
        if !text.contains(marker) {
            return Err(err(format!(
                "{} holds no PEM {what} (no \"{marker}\" line)",
                file.display()
            )));
        }
        Ok(text)
    };
    let ca_pem = match &files.ca_file {
        Some(f) => Some(read(
            "ssl_ca_file",
            f,
            "-----BEGIN CERTIFICATE-----",
            "certificate",
        )?),
        None => None,
    };
    let client = match (&files.cert_file, &files.key_file) {
        (Some(c), Some(k)) => Some(ClientIdentity {
            cert_pem: read(
                "ssl_cert_file",
                c,
                "-----BEGIN CERTIFICATE-----",
                "certificate",
            )?,
            key_pem: read("ssl_key_file", k, "PRIVATE KEY-----", "private key")?,
        }),
        _ => None,
    };
    Ok(TlsOptions {
        ca_pem,
        client,
        server_name: files.server_name.clone(),
    })
}

/// RabbitMQ user name that replaces `[rabbit_broker] user` when set.
pub const AMQP_USER_ENV: &str = "STV3_AMQP_USER";
/// RabbitMQ password that replaces `[rabbit_broker] password` when set.
pub const AMQP_PASSWORD_ENV: &str = "STV3_AMQP_PASSWORD";

/// Credentials from the environment beat the file's: in Kubernetes they come from a
/// Secret (the operator keeps them out of the ConfigMap holding `yagi.conf`). Empty
/// values are ignored, so an unset Secret key does not blank a working password.
pub fn apply_credential_env(params: &mut AmqpParams, env: impl Fn(&str) -> Option<String>) {
    if let Some(user) = env(AMQP_USER_ENV).filter(|v| !v.is_empty()) {
        params.user = user;
    }
    if let Some(password) = env(AMQP_PASSWORD_ENV).filter(|v| !v.is_empty()) {
        params.password = password;
    }
}

/// Parses `yagi.conf` text; `path` names the file in errors and anchors relative paths.
pub fn parse_yagi_config(text: &str, path: &Path) -> Result<YagiConfig, ConfigError> {
    let mut defaults = IniDefault::default();
    defaults.case_sensitive = true;
    defaults.multiline = true;
    defaults.default_section = "DEFAULT".to_string();
    // Python 3's ConfigParser has no inline comments: a '#' or ';' inside a value (a
    // password) is part of it.
    defaults.enable_inline_comments = false;
    let mut ini = Ini::new_from_defaults(defaults);
    let raw = ini.read(text.to_string()).map_err(|reason| ConfigError {
        file: path.to_path_buf(),
        section: None,
        key: None,
        reason,
    })?;
    // Option names are case-insensitive in ConfigParser; section names are not.
    let sections: Sections = raw
        .into_iter()
        .map(|(s, keys)| {
            let keys = keys
                .into_iter()
                .map(|(k, v)| (k.to_lowercase(), v))
                .collect();
            (s, keys)
        })
        .collect();
    let r = Reader {
        file: path,
        sections,
    };
    log_ignored(&r);

    let update_timer = r.seconds("global", "update_timer", 300.0)?;
    let update_timer = update_timer.max(Duration::from_secs(1));

    let b = "rabbit_broker";
    let port = r.integer::<u16>(b, "port", 5672, 1)?;
    let params = AmqpParams {
        host: r.string(b, "host", "localhost"),
        port,
        user: r.string(b, "user", "guest"),
        password: r.string(b, "password", "guest"),
        vhost: r.string(b, "vhost", "/"),
        tls: r.boolean(b, "ssl", false)?,
    };
    if params.host.trim().is_empty() {
        return Err(r.err(b, Some("host"), "empty host"));
    }
    let optional = |key: &str| r.get(b, key).map(str::trim).filter(|v| !v.is_empty());
    let tls_files = TlsFiles {
        ca_file: optional("ssl_ca_file").map(|f| resolve_relative(path, f)),
        cert_file: optional("ssl_cert_file").map(|f| resolve_relative(path, f)),
        key_file: optional("ssl_key_file").map(|f| resolve_relative(path, f)),
        server_name: optional("ssl_server_name").map(str::to_string),
    };
    if tls_files.cert_file.is_some() != tls_files.key_file.is_some() {
        let key = if tls_files.cert_file.is_some() {
            "ssl_key_file"
        } else {
            "ssl_cert_file"
        };
        return Err(r.err(
            b,
            Some(key),
            "missing: a client certificate needs both ssl_cert_file and ssl_key_file",
        ));
    }
    if !params.tls && tls_files != TlsFiles::default() {
        return Err(r.err(
            b,
            Some("ssl"),
            "ssl_ca_file, ssl_cert_file, ssl_key_file and ssl_server_name need ssl = True",
        ));
    }
    let broker = BrokerConfig {
        params,
        tls_files,
        tls: TlsOptions::default(),
        poll_delay: r.seconds(b, "poll_delay", 1.0)?,
        reconnect_delay: r
            .seconds(b, "reconnect_delay", 5.0)?
            .max(Duration::from_millis(10)),
    };

    let queues_raw = r.get("consumers", "queues").ok_or_else(|| {
        r.err(
            "consumers",
            Some("queues"),
            "missing: name at least one queue to consume",
        )
    })?;
    let queues: Vec<String> = queues_raw
        .split(',')
        .map(str::trim)
        .filter(|q| !q.is_empty())
        .map(str::to_string)
        .collect();
    if queues.is_empty() {
        return Err(r.err("consumers", Some("queues"), "no queue named"));
    }
    let mut consumers = Vec::with_capacity(queues.len());
    for queue in &queues {
        if consumers.iter().any(|c: &ConsumerConfig| &c.queue == queue) {
            return Err(r.err(
                "consumers",
                Some("queues"),
                format!("queue '{queue}' listed twice"),
            ));
        }
        consumers.push(consumer(&r, queue)?);
    }

    let winchester_config = if consumers
        .iter()
        .any(|c| c.apps.contains(&AppKind::Winchester))
    {
        let file = r.string("winchester", "config_file", "winchester.yaml");
        Some(resolve_relative(path, &file))
    } else {
        None
    };
    let shoebox = r
        .sections
        .get("shoebox")
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.clone().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();

    Ok(YagiConfig {
        path: path.to_path_buf(),
        update_timer,
        broker,
        consumers,
        winchester_config,
        shoebox,
    })
}

fn consumer(r: &Reader<'_>, queue: &str) -> Result<ConsumerConfig, ConfigError> {
    let s = format!("consumer:{queue}");
    if !r.has_section(&s) {
        return Err(r.err(
            &s,
            None,
            format!("missing: queue '{queue}' is listed in [consumers] queues but has no section"),
        ));
    }
    let apps_raw = r
        .get(&s, "apps")
        .ok_or_else(|| r.err(&s, Some("apps"), "missing: name the handler apps"))?;
    let mut apps = Vec::new();
    for name in apps_raw.split(',').map(str::trim).filter(|a| !a.is_empty()) {
        let app = AppKind::from_class_name(name).ok_or_else(|| {
            r.err(
                &s,
                Some("apps"),
                format!("unknown app '{name}' (known: {WINCHESTER_APP}, {SHOEBOX_APP})"),
            )
        })?;
        if !apps.contains(&app) {
            apps.push(app);
        }
    }
    if apps.is_empty() {
        return Err(r.err(&s, Some("apps"), "no app named"));
    }
    let exchange = r.string(&s, "exchange", "");
    let exchange_type = r.string(&s, "exchange_type", "topic");
    if !exchange.is_empty() && exchange_type.trim().is_empty() {
        return Err(r.err(&s, Some("exchange_type"), "empty exchange type"));
    }
    let max_messages = r.integer::<usize>(&s, "max_messages", 100, 1)?;
    if max_messages > usize::from(u16::MAX) {
        return Err(r.err(
            &s,
            Some("max_messages"),
            format!(
                "{max_messages} is more than the prefetch limit {}",
                u16::MAX
            ),
        ));
    }
    let dead_letter_exchange = r.string(&s, "dead_letter_exchange", DEFAULT_DEAD_LETTER_EXCHANGE);
    if dead_letter_exchange.trim().is_empty() {
        return Err(r.err(&s, Some("dead_letter_exchange"), "empty exchange name"));
    }
    let dead_letter_queue = r.string(&s, "dead_letter_queue", &format!("{queue}.dead"));
    if dead_letter_queue.trim().is_empty() || dead_letter_queue == queue {
        return Err(r.err(
            &s,
            Some("dead_letter_queue"),
            "must be a queue name other than the consumed queue",
        ));
    }
    Ok(ConsumerConfig {
        queue: queue.to_string(),
        routing_key: r.string(&s, "routing_key", queue),
        exchange,
        exchange_type,
        durable: r.boolean(&s, "durable", false)?,
        auto_delete: r.boolean(&s, "auto_delete", false)?,
        exchange_durable: r.tri_bool(&s, "exchange_durable")?,
        exchange_auto_delete: r.tri_bool(&s, "exchange_auto_delete")?,
        max_messages,
        batch_timeout: r
            .seconds(&s, "batch_timeout", 0.2)?
            .max(Duration::from_millis(1)),
        apps,
        dead_letter_exchange,
        dead_letter_queue,
        dead_letter_max_length: r.integer::<u64>(&s, "dead_letter_max_length", 100_000, 0)?,
        dead_letter_ttl: Some(r.seconds(&s, "dead_letter_ttl", 0.0)?).filter(|ttl| !ttl.is_zero()),
    })
}

fn log_ignored(r: &Reader<'_>) {
    for (section, keys) in &r.sections {
        let known: Option<&[&str]> = match section.as_str() {
            "global" => Some(KNOWN_GLOBAL),
            "rabbit_broker" => Some(KNOWN_BROKER),
            "consumers" => Some(&["queues"]),
            "winchester" => Some(&["config_file"]),
            "shoebox" | "DEFAULT" => None,
            s if s.starts_with("consumer:") => Some(KNOWN_CONSUMER),
            other => {
                tracing::debug!(section = other, "yagi.conf: section not used; ignored");
                continue;
            }
        };
        if let Some(known) = known {
            for key in keys.keys().filter(|k| !known.contains(&k.as_str())) {
                tracing::debug!(%section, %key, "yagi.conf: key not used; ignored");
            }
        }
    }
}

/// A path from yagi.conf: absolute as is; relative, against the yagi.conf's directory
/// when the file exists there, else against the current directory.
pub fn resolve_relative(yagi_conf: &Path, file: &str) -> PathBuf {
    let p = PathBuf::from(file);
    if p.is_absolute() {
        return p;
    }
    if let Some(dir) = yagi_conf.parent() {
        let beside = dir.join(&p);
        if beside.exists() {
            return beside;
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMMON: &str = include_str!("../../tests/data/yagi/yagi.conf");

    fn parse(text: &str) -> Result<YagiConfig, ConfigError> {
        parse_yagi_config(text, Path::new("/nowhere/yagi.conf"))
    }

    #[test]
    fn sandbox_config_loads_unchanged() {
        let c = parse(COMMON).unwrap();
        assert_eq!(c.update_timer, Duration::from_secs(10));
        assert_eq!(c.broker.params.host, "localhost");
        assert_eq!(c.broker.params.port, 5672);
        assert_eq!(c.broker.params.vhost, "/");
        assert_eq!(c.broker.poll_delay, Duration::from_millis(500));
        assert_eq!(c.consumers.len(), 1);
        let m = &c.consumers[0];
        assert_eq!(m.queue, "monitor.info");
        assert_eq!(m.exchange, "monitor");
        assert_eq!(m.exchange_type, "topic");
        assert_eq!(m.routing_key, "monitor.info");
        assert!(m.durable && m.exchange_is_durable() && !m.auto_delete);
        assert_eq!(m.max_messages, 100);
        assert_eq!(m.apps, vec![AppKind::Winchester, AppKind::Shoebox]);
        assert_eq!(m.dead_letter_exchange, "stv3.dead-letter");
        assert_eq!(m.dead_letter_queue, "monitor.info.dead");
        assert_eq!(
            c.winchester_config.as_deref(),
            Some(Path::new("winchester.yaml"))
        );
        assert_eq!(
            c.shoebox.get("filename_template").map(String::as_str),
            Some("%Y%m%d-[[TIMESTAMP]]-stv3-[[CRC]].json")
        );
        assert_eq!(
            c.shoebox.get("roll_size_mb").map(String::as_str),
            Some("20")
        );
    }

    #[test]
    fn credentials_from_the_environment_replace_the_files() {
        let mut c = parse(COMMON).unwrap();
        let env = |name: &str| match name {
            AMQP_USER_ENV => Some("svc-yagi".to_string()),
            AMQP_PASSWORD_ENV => Some("from-secret".to_string()),
            _ => None,
        };
        apply_credential_env(&mut c.broker.params, env);
        assert_eq!(c.broker.params.user, "svc-yagi");
        assert_eq!(c.broker.params.password, "from-secret");
        // Unset or empty variables leave the file's values alone.
        let mut c = parse(COMMON).unwrap();
        apply_credential_env(&mut c.broker.params, |_| Some(String::new()));
        assert_eq!(c.broker.params.user, "guest");
        apply_credential_env(&mut c.broker.params, |_| None);
        assert_eq!(c.broker.params.password, "guest");
    }

    #[test]
    fn password_is_not_in_debug_output() {
        let text = COMMON.replace("password = guest", "password = hunter2-secret");
        let c = parse(&text).unwrap();
        assert_eq!(c.broker.params.password, "hunter2-secret");
        assert!(!format!("{c:?}").contains("hunter2-secret"));
    }

    #[test]
    fn errors_name_section_key_and_reason() {
        let e = parse(&COMMON.replace("max_messages = 100", "max_messages = lots")).unwrap_err();
        assert_eq!(e.section.as_deref(), Some("consumer:monitor.info"));
        assert_eq!(e.key.as_deref(), Some("max_messages"));
        assert!(e.to_string().contains("/nowhere/yagi.conf"), "{e}");
        assert!(e.to_string().contains("lots"), "{e}");

        let e = parse(&COMMON.replace(
            "yagi.handler.shoebox_handler.ShoeboxHandler",
            "yagi.handler.atompub_handler.AtomPub",
        ))
        .unwrap_err();
        assert_eq!(e.key.as_deref(), Some("apps"));
        assert!(e.reason.contains("yagi.handler.atompub_handler.AtomPub"));

        let e = parse(&COMMON.replace("durable = True", "durable = maybe")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("durable"));

        let e = parse(&COMMON.replace("port = 5672", "port = 99999")).unwrap_err();
        assert_eq!(e.section.as_deref(), Some("rabbit_broker"));
        assert_eq!(e.key.as_deref(), Some("port"));

        let e = parse(&COMMON.replace("queues = monitor.info", "queues = monitor.info, other"))
            .unwrap_err();
        assert_eq!(e.section.as_deref(), Some("consumer:other"));

        let e = parse("[consumers\nqueues = x\n").unwrap_err();
        assert!(e.section.is_none());
    }

    #[test]
    fn tls_keys_need_ssl_and_come_in_pairs() {
        let base = "[consumers]\nqueues = a\n[consumer:a]\n\
                    apps = winchester.yagi_handler.WinchesterHandler\n[rabbit_broker]\n";
        let e = parse(&format!("{base}ssl_ca_file = /ca.pem\n")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("ssl"), "{e}");
        let e = parse(&format!("{base}ssl = True\nssl_cert_file = /c.pem\n")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("ssl_key_file"), "{e}");
        let c = parse(&format!(
            "{base}ssl = True\nssl_ca_file = ca.pem\nssl_server_name = rabbit.cell1\n"
        ))
        .unwrap();
        let f = &c.broker.tls_files;
        assert_eq!(f.ca_file.as_deref(), Some(Path::new("ca.pem")));
        assert_eq!(f.server_name.as_deref(), Some("rabbit.cell1"));
        assert_eq!(c.broker.tls, TlsOptions::default(), "read only by load");
    }

    #[test]
    fn tls_files_are_read_and_checked_at_load() {
        let dir = std::env::temp_dir().join(format!("stv3-yagi-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        let key = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n";
        std::fs::write(dir.join("ca.pem"), cert).unwrap();
        std::fs::write(dir.join("tls.crt"), cert).unwrap();
        std::fs::write(dir.join("tls.key"), key).unwrap();
        let conf = |cert: &str, key: &str| {
            format!(
                "[consumers]\nqueues = a\n[consumer:a]\n\
                 apps = winchester.yagi_handler.WinchesterHandler\n[rabbit_broker]\n\
                 ssl = True\nssl_ca_file = ca.pem\nssl_cert_file = {cert}\n\
                 ssl_key_file = {key}\n"
            )
        };
        let yagi = dir.join("yagi.conf");
        std::fs::write(&yagi, conf("tls.crt", "tls.key")).unwrap();
        let c = load_yagi_config(&yagi).unwrap();
        assert_eq!(c.broker.tls.ca_pem.as_deref(), Some(cert));
        let client = c.broker.tls.client.as_ref().unwrap();
        assert_eq!(
            (client.cert_pem.as_str(), client.key_pem.as_str()),
            (cert, key)
        );
        assert!(
            !format!("{:?}", c.broker.tls).contains("MIIE"),
            "the key is never printed"
        );

        std::fs::write(&yagi, conf("tls.key", "tls.crt")).unwrap();
        let e = load_yagi_config(&yagi).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("ssl_cert_file"), "{e}");
        assert!(e.reason.contains("no PEM certificate"), "{e}");
        std::fs::write(&yagi, conf("tls.crt", "missing.key")).unwrap();
        let e = load_yagi_config(&yagi).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("ssl_key_file"), "{e}");
        assert!(e.reason.contains("cannot read"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn defaults_and_extensions() {
        let text = "[consumers]\nqueues = a, b\n\
                    [consumer:a]\napps = winchester.yagi_handler.WinchesterHandler\n\
                    dead_letter_exchange = dlx\ndead_letter_queue = a.poison\n\
                    batch_timeout = 0.05\nexchange_durable = False\ndurable = true\n\
                    dead_letter_max_length = 0\ndead_letter_ttl = 86400\n\
                    [consumer:b]\napps = yagi.handler.shoebox_handler.ShoeboxHandler\n\
                    [rabbit_broker]\nssl = True\nPASSWORD = x\n[whatever]\nfoo = bar\n";
        let c = parse(text).unwrap();
        assert!(c.broker.params.tls);
        assert_eq!(c.broker.params.password, "x");
        assert_eq!(c.update_timer, Duration::from_secs(300));
        let a = &c.consumers[0];
        assert_eq!(a.dead_letter_exchange, "dlx");
        assert_eq!(a.dead_letter_queue, "a.poison");
        assert_eq!(a.batch_timeout, Duration::from_millis(50));
        assert_eq!(a.dead_letter_max_length, 0, "0: no bound");
        assert_eq!(a.dead_letter_ttl, Some(Duration::from_secs(86_400)));
        assert!(a.durable && !a.exchange_is_durable());
        assert_eq!(a.routing_key, "a");
        assert_eq!(a.exchange, "");
        let b = &c.consumers[1];
        assert_eq!(b.apps, vec![AppKind::Shoebox]);
        assert!(!b.durable);
        assert_eq!(b.dead_letter_max_length, 100_000);
        assert_eq!(b.dead_letter_ttl, None);
        assert!(c.uses(AppKind::Winchester) && c.uses(AppKind::Shoebox));
    }
}
