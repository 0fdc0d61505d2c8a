//! `winchester.yaml`, and loading the whole configuration set it names (event
//! definitions, trigger definitions, pipelines, handlers).
//!
//! Settings and defaults are the original's (`config_description` of its trigger and
//! pipeline managers), plus `pipeline_worker_lease`, `pipeline_handler_timeout`,
//! `pipeline_retry_delay` and `ingest_batch_size`. The
//! original's files load unchanged: settings we do not use (`logging_config`,
//! `log_level`, `time_sync_endpoint`) and unknown keys are warnings, not errors.
//! Python trait plugins (`distiller_trait_plugins`) cannot be loaded and are an error.
//!
//! Other files are looked up like the original's `config_path`, in each entry in
//! order (a relative entry first relative to the directory of `winchester.yaml`, then
//! to the current directory), then in the directory of `winchester.yaml`.
//!
//! The database URL is kept as given; it is only ever shown through
//! [`crate::store::redact_url`].

mod error;
pub(crate) use crate::yaml;

pub(crate) use error::Diagnostics;
pub use error::{ConfigError, ConfigErrors};

use crate::distiller::{Distiller, LoadError};
use crate::store::redact_url;
use crate::timex::Expression;
use crate::winchester::definition::{load_triggers_with_warnings, TriggerDefinition};
use crate::winchester::pipelines::{handler_kind, load_pipelines, HandlerKind, PipelineConfig};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use yaml::{Node, NodeValue};

/// The database section.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseConfig {
    /// The connection URL (`sqlite://…`, `mysql://…`). Never log it as is: use
    /// [`crate::store::redact_url`].
    pub url: String,
}

impl fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &redact_url(&self.url))
            .finish()
    }
}

/// The settings of `winchester.yaml`.
#[derive(Debug, Clone, PartialEq)]
pub struct WinchesterConfig {
    /// Directories searched for the other files (default `["."]`).
    pub config_path: Vec<String>,
    pub database: DatabaseConfig,
    /// Event definitions file (optional: without it no notification is distilled).
    pub distiller_config: Option<String>,
    /// Trigger definitions file (optional).
    pub trigger_definitions: Option<String>,
    /// Pipelines file (needed by pipeline workers).
    pub pipeline_config: Option<String>,
    /// Handler name → class path, as written.
    pub pipeline_handlers: BTreeMap<String, String>,
    /// Streams a pipeline worker takes at a time (1000).
    pub pipeline_worker_batch_size: usize,
    /// How long an idle pipeline worker sleeps (10 s).
    pub pipeline_worker_delay: Duration,
    /// How often statistics and debug counters are logged (10 s).
    pub statistics_period: Duration,
    /// Delete streams whose pipeline succeeded instead of marking them completed
    /// (true, the original's default).
    pub purge_completed_streams: bool,
    /// Delete old events (false).
    pub trim_events: bool,
    /// Events older than this are trimmed; `$timestamp` is now (`$timestamp - 14d`).
    pub trim_events_age: Expression,
    /// Events trimmed at a time (100).
    pub trim_events_batch_size: usize,
    /// Distill notifications no definition matches, with the default traits only.
    pub catch_all_notifications: bool,
    /// Accepted for compatibility; unused (the replay clock runs in-process).
    pub time_sync_endpoint: Option<String>,
    /// How long a pipeline worker's claim on a stream lasts before another worker
    /// may retry it (300 s).
    pub pipeline_worker_lease: Duration,
    /// Upper bound on each pipeline handler call, e.g. notabene waiting for the
    /// broker's confirm (60 s).
    pub pipeline_handler_timeout: Duration,
    /// How long a stream whose pipeline could not commit (the broker away) waits
    /// before it is retried (60 s).
    pub pipeline_retry_delay: Duration,
    /// Notifications distilled and stored per transaction (100).
    pub ingest_batch_size: usize,
}

impl WinchesterConfig {
    /// The defaults, with the given database URL.
    pub fn with_database_url(url: impl Into<String>) -> WinchesterConfig {
        WinchesterConfig {
            config_path: vec![".".to_string()],
            database: DatabaseConfig { url: url.into() },
            distiller_config: None,
            trigger_definitions: None,
            pipeline_config: None,
            pipeline_handlers: BTreeMap::new(),
            pipeline_worker_batch_size: 1000,
            pipeline_worker_delay: Duration::from_secs(10),
            statistics_period: Duration::from_secs(10),
            purge_completed_streams: true,
            trim_events: false,
            trim_events_age: default_trim_age(),
            trim_events_batch_size: 100,
            catch_all_notifications: false,
            time_sync_endpoint: None,
            pipeline_worker_lease: Duration::from_secs(300),
            pipeline_handler_timeout: Duration::from_secs(60),
            pipeline_retry_delay: Duration::from_secs(60),
            ingest_batch_size: 100,
        }
    }
}

fn default_trim_age() -> Expression {
    Expression::parse("$timestamp - 14d").unwrap_or_else(|_| unreachable!("built-in expression"))
}

/// Everything a `winchester.yaml` names, loaded and checked.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub settings: WinchesterConfig,
    /// The `winchester.yaml` loaded.
    pub path: PathBuf,
    /// `None` without `distiller_config`.
    pub distiller: Option<Distiller>,
    pub triggers: Vec<TriggerDefinition>,
    pub pipelines: PipelineConfig,
    /// Handler name → built-in handler.
    pub handlers: BTreeMap<String, HandlerKind>,
    /// Problems that do not stop loading, one per entry in the `file:line: …` form.
    pub warnings: Vec<String>,
}

const KNOWN_KEYS: &[&str] = &[
    "config_path",
    "database",
    "distiller_config",
    "trigger_definitions",
    "pipeline_config",
    "pipeline_handlers",
    "pipeline_worker_batch_size",
    "pipeline_worker_delay",
    "statistics_period",
    "purge_completed_streams",
    "trim_events",
    "trim_events_age",
    "trim_events_batch_size",
    "catch_all_notifications",
    "time_sync_endpoint",
    "logging_config",
    "log_level",
    "distiller_trait_plugins",
    "pipeline_worker_lease",
    "pipeline_handler_timeout",
    "pipeline_retry_delay",
    "ingest_batch_size",
];

const DB_SCHEMES: &[&str] = &[
    "sqlite",
    "mysql",
    "mysql+pymysql",
    "mysql+mysqldb",
    "mariadb",
];

/// The environment variable whose value, when set and non-empty, is the database URL,
/// replacing `database.url`. In Kubernetes the URL (with its password) comes from a
/// Secret, so the operator leaves it out of the ConfigMap holding `winchester.yaml`.
pub const DATABASE_URL_ENV: &str = "STV3_DATABASE_URL";

/// The database URL from [`DATABASE_URL_ENV`], if set and non-empty.
pub fn database_url_from_env() -> Option<String> {
    std::env::var(DATABASE_URL_ENV)
        .ok()
        .filter(|v| !v.trim().is_empty())
}

/// Parses `winchester.yaml` text (settings only; no other file is read).
/// `source` names it in messages. Returns the settings and the warnings.
pub fn parse_settings(
    text: &str,
    source: &str,
) -> Result<(WinchesterConfig, Vec<ConfigError>), ConfigErrors> {
    parse_settings_with_url(text, source, None)
}

/// [`parse_settings`], with `database_url` (from the environment, see
/// [`DATABASE_URL_ENV`]) replacing the file's `database.url`, which may then be absent.
pub fn parse_settings_with_url(
    text: &str,
    source: &str,
    database_url: Option<&str>,
) -> Result<(WinchesterConfig, Vec<ConfigError>), ConfigErrors> {
    let mut d = Diagnostics::new(source);
    let mut cfg = WinchesterConfig::with_database_url("");
    let doc = match yaml::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            d.error(e.line, "", format!("invalid YAML syntax: {}", e.message));
            return d.finish(cfg);
        }
    };
    let Some(entries) = doc.as_map() else {
        d.error(
            doc.line,
            "",
            format!("expected a mapping of settings, found {}", doc.kind()),
        );
        return d.finish(cfg);
    };
    for (key, value) in entries {
        let line = value.line;
        let key = key.as_str();
        match key {
            "config_path" => match &value.value {
                NodeValue::Str(s) => cfg.config_path = vec![s.clone()],
                NodeValue::Seq(items) => {
                    let mut paths = Vec::new();
                    for item in items {
                        match item.as_str() {
                            Some(s) => paths.push(s.to_string()),
                            None => d.error(
                                item.line,
                                key,
                                format!("expected a directory name, found {}", item.brief()),
                            ),
                        }
                    }
                    cfg.config_path = paths;
                }
                NodeValue::Null => {}
                _ => d.error(
                    line,
                    key,
                    format!(
                        "expected a directory or a list of directories, found {}",
                        value.brief()
                    ),
                ),
            },
            "database" => match value.as_map() {
                Some(db) => {
                    for (k, v) in db {
                        match k.as_str() {
                            "url" => match v.as_str() {
                                Some(url) => cfg.database.url = url.to_string(),
                                None => d.error(
                                    v.line,
                                    "database/url",
                                    format!("expected a URL, found {}", v.kind()),
                                ),
                            },
                            "echo_sql" => d.warn(
                                v.line,
                                "database/echo_sql",
                                "ignored (log SQL with RUST_LOG=sqlx=debug)",
                            ),
                            other => d.warn(
                                v.line,
                                &format!("database/{other}"),
                                "unknown setting ignored",
                            ),
                        }
                    }
                }
                None => d.error(
                    line,
                    key,
                    format!("expected a mapping with 'url', found {}", value.kind()),
                ),
            },
            "distiller_config" => cfg.distiller_config = file_name(value, key, &mut d),
            "trigger_definitions" => cfg.trigger_definitions = file_name(value, key, &mut d),
            "pipeline_config" => cfg.pipeline_config = file_name(value, key, &mut d),
            "pipeline_handlers" => match &value.value {
                NodeValue::Map(m) => {
                    for (name, class) in m {
                        match class.as_str() {
                            Some(c) => {
                                cfg.pipeline_handlers.insert(name.clone(), c.to_string());
                            }
                            None => d.error(
                                class.line,
                                &format!("pipeline_handlers/{name}"),
                                format!("expected a handler class path, found {}", class.brief()),
                            ),
                        }
                    }
                }
                NodeValue::Null => {}
                _ => d.error(
                    line,
                    key,
                    format!(
                        "expected a mapping of handler names to classes, found {}",
                        value.kind()
                    ),
                ),
            },
            "pipeline_worker_batch_size" => {
                set_count(&mut cfg.pipeline_worker_batch_size, value, key, &mut d)
            }
            "trim_events_batch_size" => {
                set_count(&mut cfg.trim_events_batch_size, value, key, &mut d)
            }
            "ingest_batch_size" => set_count(&mut cfg.ingest_batch_size, value, key, &mut d),
            "pipeline_worker_delay" => {
                set_seconds(&mut cfg.pipeline_worker_delay, value, key, &mut d)
            }
            "statistics_period" => set_seconds(&mut cfg.statistics_period, value, key, &mut d),
            "pipeline_worker_lease" => {
                set_seconds(&mut cfg.pipeline_worker_lease, value, key, &mut d)
            }
            "pipeline_handler_timeout" => {
                set_seconds(&mut cfg.pipeline_handler_timeout, value, key, &mut d)
            }
            "pipeline_retry_delay" => {
                set_seconds(&mut cfg.pipeline_retry_delay, value, key, &mut d)
            }
            "purge_completed_streams" => {
                set_bool(&mut cfg.purge_completed_streams, value, key, &mut d)
            }
            "trim_events" => set_bool(&mut cfg.trim_events, value, key, &mut d),
            "catch_all_notifications" => {
                set_bool(&mut cfg.catch_all_notifications, value, key, &mut d)
            }
            "trim_events_age" => {
                let src = match &value.value {
                    NodeValue::Str(s) => Some(s.clone()),
                    _ => None,
                };
                match src.map(|s| (Expression::compile(&s), s)) {
                    Some((Ok(expr), s)) => {
                        let bad: Vec<&String> = expr
                            .variables()
                            .iter()
                            .filter(|v| *v != "timestamp")
                            .collect();
                        if bad.is_empty() {
                            cfg.trim_events_age = expr;
                        } else {
                            d.error(
                                line,
                                key,
                                format!("'{s}' uses ${}: only $timestamp (now) is defined", bad[0]),
                            );
                        }
                    }
                    Some((Err(e), s)) => {
                        d.error(line, key, format!("invalid timex expression '{s}': {e}"))
                    }
                    None => d.error(
                        line,
                        key,
                        format!("expected a timex expression, found {}", value.brief()),
                    ),
                }
            }
            "time_sync_endpoint" => match &value.value {
                NodeValue::Null => {}
                NodeValue::Str(s) => {
                    cfg.time_sync_endpoint = Some(s.clone());
                    d.warn(
                        line,
                        key,
                        "ignored: no time-sync service is used; `stv3 replay` follows the \
                         notifications' time in-process",
                    );
                }
                _ => d.error(
                    line,
                    key,
                    format!("expected a URL, found {}", value.brief()),
                ),
            },
            "logging_config" | "log_level" => {
                if !value.is_null() {
                    d.warn(
                        line,
                        key,
                        "ignored: logging is configured with RUST_LOG (tracing)",
                    );
                }
            }
            "distiller_trait_plugins" => match &value.value {
                NodeValue::Null => {}
                NodeValue::Map(m) if m.is_empty() => {}
                NodeValue::Map(m) => {
                    for (name, class) in m {
                        d.error(
                            class.line.or(line),
                            &format!("distiller_trait_plugins/{name}"),
                            format!(
                                "Python trait plugin {} cannot be loaded: only the built-in \
                                 plugins (split, bitfield) are available",
                                class.brief()
                            ),
                        );
                    }
                }
                _ => d.error(
                    line,
                    key,
                    format!("expected a mapping, found {}", value.kind()),
                ),
            },
            other => {
                debug_assert!(!KNOWN_KEYS.contains(&other));
                d.warn(line, other, "unknown setting ignored");
            }
        }
    }
    if let Some(url) = database_url {
        cfg.database.url = url.to_string();
        if !url_scheme_supported(url) {
            d.error(
                None,
                "database/url",
                format!(
                    "${DATABASE_URL_ENV}: unsupported database URL '{}' (use sqlite://…, \
                     sqlite::memory: or mysql://…)",
                    redact_url(url)
                ),
            );
        }
        return d.finish(cfg);
    }
    match doc.get("database") {
        None => d.error(doc.line, "database/url", "required setting is missing"),
        Some(_) if cfg.database.url.is_empty() => d.error(
            doc.get("database").and_then(|n| n.line),
            "database/url",
            "required setting is missing or empty",
        ),
        Some(db) => {
            if !url_scheme_supported(&cfg.database.url) {
                d.error(
                    db.get("url").and_then(|n| n.line),
                    "database/url",
                    format!(
                        "unsupported database URL '{}' (use sqlite://…, sqlite::memory: or mysql://…)",
                        redact_url(&cfg.database.url)
                    ),
                );
            }
        }
    }
    d.finish(cfg)
}

fn url_scheme_supported(url: &str) -> bool {
    url.split_once(':')
        .is_some_and(|(scheme, _)| DB_SCHEMES.contains(&scheme))
}

fn file_name(value: &Node, key: &str, d: &mut Diagnostics) -> Option<String> {
    match &value.value {
        NodeValue::Str(s) if !s.is_empty() => Some(s.clone()),
        NodeValue::Null => None,
        _ => {
            d.error(
                value.line,
                key,
                format!("expected a file name, found {}", value.brief()),
            );
            None
        }
    }
}

fn set_count(slot: &mut usize, value: &Node, key: &str, d: &mut Diagnostics) {
    match value.value {
        NodeValue::Int(i) if i > 0 => *slot = usize::try_from(i).unwrap_or(usize::MAX),
        _ => d.error(
            value.line,
            key,
            format!("expected a positive integer, found {}", value.brief()),
        ),
    }
}

fn set_seconds(slot: &mut Duration, value: &Node, key: &str, d: &mut Diagnostics) {
    let secs = match value.value {
        NodeValue::Int(i) if i >= 0 => Some(i as f64),
        NodeValue::Float(f) if f >= 0.0 => Some(f),
        _ => None,
    };
    match secs.and_then(|s| Duration::try_from_secs_f64(s).ok()) {
        Some(dur) => *slot = dur,
        None => d.error(
            value.line,
            key,
            format!(
                "expected a non-negative number of seconds, found {}",
                value.brief()
            ),
        ),
    }
}

/// Booleans, and integers as Python's truth (0 is false).
fn set_bool(slot: &mut bool, value: &Node, key: &str, d: &mut Diagnostics) {
    match value.value {
        NodeValue::Bool(b) => *slot = b,
        NodeValue::Int(i) => *slot = i != 0,
        _ => d.error(
            value.line,
            key,
            format!("expected true or false, found {}", value.brief()),
        ),
    }
}

/// Finds a file named in `winchester.yaml` (see the module notes). `Err` lists the
/// places tried.
pub fn resolve_file(
    name: &str,
    config_dir: &Path,
    config_path: &[String],
) -> Result<PathBuf, String> {
    let file = Path::new(name);
    if file.is_absolute() {
        return if file.is_file() {
            Ok(file.to_path_buf())
        } else {
            Err(format!("cannot find {name}"))
        };
    }
    let mut tried = Vec::new();
    for entry in config_path {
        let dir = Path::new(entry);
        let candidates = if dir.is_absolute() {
            vec![dir.join(file)]
        } else {
            vec![
                clean(&config_dir.join(dir).join(file)),
                clean(&dir.join(file)),
            ]
        };
        for c in candidates {
            if c.is_file() {
                return Ok(c);
            }
            tried.push(c);
        }
    }
    let c = clean(&config_dir.join(file));
    if c.is_file() {
        return Ok(c);
    }
    tried.push(c);
    let mut seen = BTreeSet::new();
    let tried: Vec<String> = tried
        .iter()
        .map(|p| p.display().to_string())
        .filter(|p| seen.insert(p.clone()))
        .collect();
    Err(format!(
        "cannot find '{name}' (looked for {})",
        tried.join(", ")
    ))
}

/// Drops `.` components (`conf/./x.yaml` → `conf/x.yaml`) so messages show tidy paths.
fn clean(p: &Path) -> PathBuf {
    let out: PathBuf = p
        .components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect();
    if out.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        out
    }
}

/// Loads `winchester.yaml` and every file it names, checking them all: event
/// definitions, trigger definitions (with their pipelines), pipelines (with their
/// handlers) and handler classes. Every problem found is reported.
pub fn load_config(path: &Path) -> Result<LoadedConfig, ConfigErrors> {
    load_config_with_url(path, database_url_from_env().as_deref())
}

/// [`load_config`] with the database URL given rather than read from
/// [`DATABASE_URL_ENV`] (`None`: the file's `database.url`).
pub fn load_config_with_url(
    path: &Path,
    database_url: Option<&str>,
) -> Result<LoadedConfig, ConfigErrors> {
    let source = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors::single(ConfigError::new(
            &source,
            None,
            "",
            format!("cannot read: {e}"),
        ))
    })?;
    let (settings, warnings) = parse_settings_with_url(&text, &source, database_url)?;
    let mut d = Diagnostics::new(&source);
    d.warnings = warnings;
    let config_dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };

    let read = |key: &str, name: &str, d: &mut Diagnostics| -> Option<(String, String)> {
        match resolve_file(name, &config_dir, &settings.config_path) {
            Ok(p) => {
                let shown = p.display().to_string();
                match std::fs::read_to_string(&p) {
                    Ok(text) => Some((shown, text)),
                    Err(e) => {
                        d.errors.push(ConfigError::new(
                            shown,
                            None,
                            "",
                            format!("cannot read: {e}"),
                        ));
                        None
                    }
                }
            }
            Err(why) => {
                d.error(None, key, why);
                None
            }
        }
    };

    // Handlers.
    let mut handlers = BTreeMap::new();
    for (name, class) in &settings.pipeline_handlers {
        match handler_kind(class) {
            Some(kind) => {
                handlers.insert(name.clone(), kind);
            }
            None => d.error(
                None,
                &format!("pipeline_handlers/{name}"),
                format!(
                    "unknown handler class '{class}': the built-in handlers are \
                     winchester.pipeline_handler:LoggingHandler (logger), \
                     winchester.pipeline_handler:UsageHandler (usage) and \
                     winchester.pipeline_handler:NotabeneHandler (notabene)"
                ),
            ),
        }
    }
    let known: BTreeSet<String> = settings.pipeline_handlers.keys().cloned().collect();

    // Event definitions.
    let distiller = match &settings.distiller_config {
        None => {
            d.warn(
                None,
                "distiller_config",
                "not set: no notification will be distilled",
            );
            None
        }
        Some(name) => read("distiller_config", name, &mut d).and_then(|(file, text)| {
            match Distiller::load(&text, &file) {
                Ok((dist, warnings)) => {
                    d.warnings.extend(
                        warnings
                            .into_iter()
                            .map(|w| ConfigError::new(w.file, w.line, w.context, w.message)),
                    );
                    Some(dist.with_catch_all(settings.catch_all_notifications))
                }
                Err(e) => {
                    d.errors.push(distiller_error(&file, e));
                    None
                }
            }
        }),
    };

    // Pipelines.
    let pipelines = match &settings.pipeline_config {
        None => {
            d.warn(
                None,
                "pipeline_config",
                "not set: pipeline workers cannot run",
            );
            None
        }
        Some(name) => read("pipeline_config", name, &mut d).and_then(|(file, text)| {
            match load_pipelines(&text, &file, Some(&known)) {
                Ok((p, w)) => {
                    d.warnings.extend(w);
                    Some(p)
                }
                Err(e) => {
                    d.absorb(e.errors, e.warnings);
                    // Pipeline names still let triggers be checked when only
                    // handlers were wrong; a YAML error leaves nothing to check.
                    load_pipelines(&text, &file, None).ok().map(|(p, _)| p)
                }
            }
        }),
    };

    // Trigger definitions.
    let triggers = match &settings.trigger_definitions {
        None => {
            d.warn(
                None,
                "trigger_definitions",
                "not set: no stream will be created",
            );
            Vec::new()
        }
        Some(name) => match read("trigger_definitions", name, &mut d) {
            None => Vec::new(),
            Some((file, text)) => {
                match load_triggers_with_warnings(&text, &file, pipelines.as_ref()) {
                    Ok((t, w)) => {
                        d.warnings.extend(w);
                        t
                    }
                    Err(e) => {
                        d.absorb(e.errors, e.warnings);
                        Vec::new()
                    }
                }
            }
        },
    };

    let (loaded, warnings) = d.finish(LoadedConfig {
        settings,
        path: path.to_path_buf(),
        distiller,
        triggers,
        pipelines: pipelines.unwrap_or_default(),
        handlers,
        warnings: Vec::new(),
    })?;
    Ok(LoadedConfig {
        warnings: warnings.iter().map(ToString::to_string).collect(),
        ..loaded
    })
}

/// A distiller load error in our form (its message already names the file).
fn distiller_error(file: &str, e: LoadError) -> ConfigError {
    match e {
        LoadError::Definition {
            file,
            line,
            context,
            reason,
        } => ConfigError::new(file, line, context, reason),
        LoadError::Yaml {
            file,
            line,
            message,
        } => ConfigError::new(file, line, "", format!("invalid YAML syntax: {message}")),
        LoadError::Structure { file, line, reason } => ConfigError::new(file, line, "", reason),
        LoadError::Io { source, .. } => ConfigError::new(
            file,
            None,
            "",
            format!("cannot read event definitions: {source}"),
        ),
    }
}

#[cfg(test)]
mod tests;
