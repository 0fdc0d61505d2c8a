//! The `notabene` handler: publishes the notifications other handlers left in the
//! pipeline's env (under its `env_keys`) to RabbitMQ, on commit only.
//!
//! Parameters (the original's): `host` (localhost), `port` (5672), `user` (guest),
//! `password` (guest), `vhost` (/), `library` (ignored: there is one AMQP client),
//! `exchange` (required), `exchange_type` (topic), `queue_name` (required, also the
//! routing key), `env_keys` (a list; none by default). Ours: `tls` (false), and the
//! password from somewhere other than `pipelines.yaml` (which the operator keeps in a
//! ConfigMap): `password_file` (a file, e.g. a mounted Secret; surrounding whitespace
//! dropped) or `password_env` (an environment variable, e.g. set from a Secret). The
//! first of `password_file`, `password_env`, `password` given wins; a file or variable
//! that is not there is an error at start-up, never a silent `guest`.

use super::{warn_unknown_params, HandlerConfigError};
use crate::event::Event;
use crate::notabene::{AmqpParams, NotificationSink, PublishError, PublishTarget};
use crate::winchester::pipeline::{Handler, HandlerError, HandlerFactory, PipelineEnv};
use async_trait::async_trait;
use serde_json::{Map, Value};
use std::sync::Arc;

const NAME: &str = "notabene";
const KNOWN: [&str; 13] = [
    "host",
    "port",
    "user",
    "password",
    "password_env",
    "password_file",
    "vhost",
    "library",
    "exchange",
    "exchange_type",
    "queue_name",
    "env_keys",
    "tls",
];

/// Validated parameters, shared by the handlers it makes.
pub struct NotabeneFactory {
    target: Arc<PublishTarget>,
    env_keys: Arc<Vec<String>>,
    sink: Arc<dyn NotificationSink>,
}

impl std::fmt::Debug for NotabeneFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotabeneFactory")
            .field("target", &self.target)
            .field("env_keys", &self.env_keys)
            .finish_non_exhaustive()
    }
}

fn bad(param: &str, reason: impl Into<String>) -> HandlerConfigError {
    HandlerConfigError::BadParam {
        handler: NAME.to_string(),
        param: param.to_string(),
        reason: reason.into(),
    }
}

/// A scalar parameter as text (YAML may give `password: 1234` as a number).
fn text(params: &Map<String, Value>, key: &str) -> Result<Option<String>, HandlerConfigError> {
    match params.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(Value::Bool(b)) => Ok(Some(b.to_string())),
        Some(other) => Err(bad(key, format!("expected a string, got {other}"))),
    }
}

fn required(params: &Map<String, Value>, key: &str) -> Result<String, HandlerConfigError> {
    text(params, key)?.ok_or_else(|| HandlerConfigError::MissingParam {
        handler: NAME.to_string(),
        param: key.to_string(),
    })
}

fn port(params: &Map<String, Value>) -> Result<u16, HandlerConfigError> {
    match params.get("port") {
        None | Some(Value::Null) => Ok(5672),
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .ok_or_else(|| bad("port", format!("{n} is not a port number"))),
        Some(Value::String(s)) => s
            .trim()
            .parse::<u16>()
            .map_err(|_| bad("port", format!("'{s}' is not a port number"))),
        Some(other) => Err(bad("port", format!("{other} is not a port number"))),
    }
}

fn flag(params: &Map<String, Value>, key: &str) -> Result<bool, HandlerConfigError> {
    match params.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) => match s.to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => Ok(true),
            "false" | "no" | "off" | "0" => Ok(false),
            _ => Err(bad(key, format!("'{s}' is not a boolean"))),
        },
        Some(other) => Err(bad(key, format!("{other} is not a boolean"))),
    }
}

/// The password: from `password_file`, else `password_env`, else `password`.
fn password(params: &Map<String, Value>) -> Result<Option<String>, HandlerConfigError> {
    if let Some(path) = text(params, "password_file")? {
        return std::fs::read_to_string(&path)
            .map(|p| Some(p.trim().to_string()))
            .map_err(|e| bad("password_file", format!("cannot read {path}: {e}")));
    }
    if let Some(name) = text(params, "password_env")? {
        return match std::env::var(&name) {
            Ok(p) => Ok(Some(p)),
            Err(_) => Err(bad(
                "password_env",
                format!("the environment variable {name} is not set"),
            )),
        };
    }
    text(params, "password")
}

fn env_keys(params: &Map<String, Value>) -> Result<Vec<String>, HandlerConfigError> {
    match params.get("env_keys") {
        None | Some(Value::Null) => Ok(Vec::new()),
        // A single name is taken as a list of one (the original would have iterated
        // over its characters).
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                other => Err(bad("env_keys", format!("{other} is not a key name"))),
            })
            .collect(),
        Some(other) => Err(bad(
            "env_keys",
            format!("expected a list of names, got {other}"),
        )),
    }
}

impl NotabeneFactory {
    pub fn new(
        params: &Map<String, Value>,
        sink: Arc<dyn NotificationSink>,
    ) -> Result<Self, HandlerConfigError> {
        warn_unknown_params(NAME, params, &KNOWN);
        let defaults = AmqpParams::default();
        let connection = AmqpParams {
            host: text(params, "host")?.unwrap_or(defaults.host),
            port: port(params)?,
            user: text(params, "user")?.unwrap_or(defaults.user),
            password: password(params)?.unwrap_or(defaults.password),
            vhost: text(params, "vhost")?.unwrap_or(defaults.vhost),
            tls: flag(params, "tls")?,
        };
        let target = PublishTarget {
            connection,
            exchange: required(params, "exchange")?,
            exchange_type: text(params, "exchange_type")?.unwrap_or_else(|| "topic".to_string()),
            queue_name: required(params, "queue_name")?,
        };
        Ok(NotabeneFactory {
            target: Arc::new(target),
            env_keys: Arc::new(env_keys(params)?),
            sink,
        })
    }

    pub fn target(&self) -> &PublishTarget {
        &self.target
    }

    pub fn env_keys(&self) -> &[String] {
        &self.env_keys
    }
}

impl HandlerFactory for NotabeneFactory {
    fn name(&self) -> &str {
        NAME
    }
    fn create(&self) -> Box<dyn Handler> {
        Box::new(NotabeneHandler {
            target: self.target.clone(),
            env_keys: self.env_keys.clone(),
            sink: self.sink.clone(),
            pending: Vec::new(),
        })
    }
}

/// One stream's notabene handler: notifications are gathered in `handle_events` and
/// published in `commit`.
pub struct NotabeneHandler {
    target: Arc<PublishTarget>,
    env_keys: Arc<Vec<String>>,
    sink: Arc<dyn NotificationSink>,
    pending: Vec<Value>,
}

#[async_trait]
impl Handler for NotabeneHandler {
    async fn handle_events(
        &mut self,
        events: Vec<Event>,
        env: &mut PipelineEnv,
    ) -> Result<Vec<Event>, HandlerError> {
        self.pending = self
            .env_keys
            .iter()
            .filter_map(|key| env.notifications.get(key))
            .flat_map(|list| list.iter().cloned())
            .collect();
        Ok(events)
    }

    /// Publishes the pending notifications in order, each confirmed by the broker. The
    /// first that cannot be published stops the commit with a *retryable* error: the
    /// worker puts the stream back to retry and the whole pipeline runs again later, so
    /// a notification is never dropped because the broker was away. Those published
    /// before the failure are published again then; they carry the same message_id
    /// (pipelines make ids deterministically), which consumers use to drop repeats.
    async fn commit(&mut self, _env: &PipelineEnv) -> Result<(), HandlerError> {
        let pending = std::mem::take(&mut self.pending);
        let total = pending.len();
        for (done, notification) in pending.iter().enumerate() {
            let event_type = notification
                .get("event_type")
                .and_then(Value::as_str)
                .unwrap_or("<no event_type>");
            tracing::info!(
                "Publishing '{event_type}' to '{}' with routing_key '{}'",
                self.target.exchange,
                self.target.queue_name
            );
            if let Err(e) = self.sink.publish(&self.target, notification).await {
                tracing::error!("notabene: publishing '{event_type}' failed: {e}");
                let message = format!(
                    "notification {} of {total} could not be published to exchange '{}': {e}",
                    done + 1,
                    self.target.exchange
                );
                return Err(match e {
                    PublishError::Encode(_) => HandlerError::new(message),
                    _ => HandlerError::retryable(message),
                });
            }
        }
        Ok(())
    }

    async fn rollback(&mut self) -> Result<(), HandlerError> {
        self.pending.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notabene::RecordingSink;
    use serde_json::json;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn params(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    fn minimal() -> Map<String, Value> {
        params(json!({"exchange": "nova", "queue_name": "monitor.info"}))
    }

    #[test]
    fn defaults_are_the_originals() {
        let f = NotabeneFactory::new(&minimal(), Arc::new(RecordingSink::new())).unwrap();
        let t = f.target();
        assert_eq!(t.connection, AmqpParams::default());
        assert_eq!(t.connection.host, "localhost");
        assert_eq!(t.connection.port, 5672);
        assert_eq!(t.connection.user, "guest");
        assert_eq!(t.connection.password, "guest");
        assert_eq!(t.connection.vhost, "/");
        assert_eq!(t.exchange, "nova");
        assert_eq!(t.exchange_type, "topic");
        assert_eq!(t.queue_name, "monitor.info");
        assert!(f.env_keys().is_empty());
    }

    #[test]
    fn the_sandbox_params_load() {
        let p = params(json!({
            "host": "rabbit", "user": "u", "password": 1234, "port": 5673, "vhost": "v",
            "library": "librabbitmq", "exchange": "nova", "exchange_type": "fanout",
            "queue_name": "monitor.info", "env_keys": ["usage_notifications", "x"]
        }));
        let f = NotabeneFactory::new(&p, Arc::new(RecordingSink::new())).unwrap();
        let t = f.target();
        assert_eq!(t.connection.host, "rabbit");
        assert_eq!(t.connection.port, 5673);
        assert_eq!(t.connection.password, "1234");
        assert_eq!(t.connection.vhost, "v");
        assert_eq!(t.exchange_type, "fanout");
        assert_eq!(f.env_keys(), ["usage_notifications", "x"]);
        let p = params(
            json!({"exchange": "e", "queue_name": "q", "port": "5674", "env_keys": "k", "tls": true}),
        );
        let f = NotabeneFactory::new(&p, Arc::new(RecordingSink::new())).unwrap();
        assert_eq!(f.target().connection.port, 5674);
        assert!(f.target().connection.tls);
        assert_eq!(f.env_keys(), ["k"]);
    }

    #[test]
    fn missing_or_bad_params_are_named() {
        let sink: Arc<dyn NotificationSink> = Arc::new(RecordingSink::new());
        let err =
            NotabeneFactory::new(&params(json!({"queue_name": "q"})), sink.clone()).unwrap_err();
        assert_eq!(
            err,
            HandlerConfigError::MissingParam {
                handler: "notabene".into(),
                param: "exchange".into()
            }
        );
        let err =
            NotabeneFactory::new(&params(json!({"exchange": "e"})), sink.clone()).unwrap_err();
        assert!(err.to_string().contains("'queue_name'"), "{err}");
        for bad in [
            json!({"exchange": "e", "queue_name": "q", "port": 70000}),
            json!({"exchange": "e", "queue_name": "q", "port": "x"}),
            json!({"exchange": "e", "queue_name": "q", "env_keys": [1]}),
            json!({"exchange": "e", "queue_name": "q", "env_keys": {"a": 1}}),
            json!({"exchange": ["e"], "queue_name": "q"}),
        ] {
            assert!(
                matches!(
                    NotabeneFactory::new(&params(bad.clone()), sink.clone()),
                    Err(HandlerConfigError::BadParam { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_password_comes_from_a_file_or_the_environment() {
        let sink = Arc::new(RecordingSink::new());
        let dir = std::env::temp_dir().join(format!("stv3-nb-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("password");
        std::fs::write(&file, "from-file\n").unwrap();
        let mut p = minimal();
        p.insert("password".into(), json!("literal"));
        p.insert(
            "password_env".into(),
            json!("STV3_TEST_NOTABENE_PASSWORD_UNSET"),
        );
        p.insert("password_file".into(), json!(file.display().to_string()));
        let f = NotabeneFactory::new(&p, sink.clone()).unwrap();
        assert_eq!(f.target().connection.password, "from-file", "the file wins");

        p.remove("password_file");
        let err = NotabeneFactory::new(&p, sink.clone())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("STV3_TEST_NOTABENE_PASSWORD_UNSET is not set"),
            "{err}"
        );
        // PATH is set in every test environment: a variable that is there is used.
        p.insert("password_env".into(), json!("PATH"));
        let f = NotabeneFactory::new(&p, sink.clone()).unwrap();
        assert_eq!(
            f.target().connection.password,
            std::env::var("PATH").unwrap()
        );

        p.remove("password_env");
        assert_eq!(
            NotabeneFactory::new(&p, sink.clone())
                .unwrap()
                .target()
                .connection
                .password,
            "literal"
        );
        p.insert(
            "password_file".into(),
            json!(dir.join("nope").display().to_string()),
        );
        let err = NotabeneFactory::new(&p, sink).unwrap_err().to_string();
        assert!(
            err.contains("password_file") && err.contains("cannot read"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn gathers_env_keys_in_order_and_publishes_only_on_commit() {
        let sink = Arc::new(RecordingSink::new());
        let p = params(json!({"exchange": "e", "queue_name": "q", "env_keys": ["x", "y", "z"]}));
        let f = NotabeneFactory::new(&p, sink.clone()).unwrap();
        let mut env = PipelineEnv::new(1, "t");
        env.notifications
            .insert("x".into(), vec![json!("cat"), json!("dog")]);
        env.notifications.insert("y".into(), vec![json!("fish")]);
        env.notifications
            .insert("w".into(), vec![json!("not mine")]);

        let mut h = f.create();
        let out = h.handle_events(vec![], &mut env).await.unwrap();
        assert!(out.is_empty());
        assert!(sink.published().is_empty(), "nothing before commit");
        h.commit(&env).await.unwrap();
        let got: Vec<Value> = sink.take().into_iter().map(|(_, v)| v).collect();
        assert_eq!(got, vec![json!("cat"), json!("dog"), json!("fish")]);

        // Rollback drops what was pending.
        let mut h = f.create();
        h.handle_events(vec![], &mut env).await.unwrap();
        h.rollback().await.unwrap();
        h.commit(&env).await.unwrap();
        assert!(sink.published().is_empty());
    }

    struct FailingSink {
        calls: AtomicUsize,
    }

    #[async_trait]
    impl NotificationSink for FailingSink {
        async fn publish(&self, _t: &PublishTarget, _n: &Value) -> Result<(), PublishError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            Err(PublishError::NotConfirmed {
                exchange: "e".into(),
            })
        }
    }

    #[tokio::test]
    async fn a_failed_publish_stops_the_commit_retryably() {
        let sink = Arc::new(FailingSink {
            calls: AtomicUsize::new(0),
        });
        let p = params(json!({"exchange": "e", "queue_name": "q", "env_keys": ["x"]}));
        let f = NotabeneFactory::new(&p, sink.clone()).unwrap();
        let mut env = PipelineEnv::new(1, "t");
        env.notifications.insert(
            "x".into(),
            vec![
                json!({"event_type": "event1"}),
                json!({"event_type": "event2"}),
            ],
        );
        let mut h = f.create();
        h.handle_events(vec![], &mut env).await.unwrap();
        let err = h.commit(&env).await.unwrap_err();
        // The rest are not tried: the whole pipeline runs again later.
        assert_eq!(sink.calls.load(Ordering::SeqCst), 1);
        assert!(err.retryable, "{err:?}");
        assert!(err.to_string().contains("1 of 2"), "{err}");
    }
}
