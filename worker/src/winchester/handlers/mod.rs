//! The stock pipeline handlers: `logger`, `usage` and `notabene`.
//!
//! [`build_factory`] turns a handler's name and its `params` from `pipelines.yaml`
//! into a [`HandlerFactory`], checking the parameters at start-up so a bad pipeline
//! configuration never reaches a stream.

pub mod logger;
pub mod notabene;
pub mod usage;

use crate::notabene::NotificationSink;
use crate::winchester::pipeline::HandlerFactory;
use serde_json::{Map, Value};
use std::sync::Arc;

/// What handlers share with the rest of the process.
#[derive(Clone)]
pub struct HandlerContext {
    /// Where the notabene handler publishes (RabbitMQ, or a recording for replays).
    pub publisher: Arc<dyn NotificationSink>,
}

impl std::fmt::Debug for HandlerContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandlerContext").finish_non_exhaustive()
    }
}

/// A handler's configuration is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandlerConfigError {
    #[error("unknown pipeline handler '{0}' (known: logger, usage, notabene)")]
    UnknownHandler(String),
    #[error("handler '{handler}': missing required parameter '{param}'")]
    MissingParam { handler: String, param: String },
    #[error("handler '{handler}': bad parameter '{param}': {reason}")]
    BadParam {
        handler: String,
        param: String,
        reason: String,
    },
}

/// The names of the built-in handlers.
pub const BUILTIN_HANDLERS: [&str; 3] = ["logger", "usage", "notabene"];

/// Makes the factory of the built-in handler `kind_name` ("logger" | "usage" |
/// "notabene") from its parameters.
pub fn build_factory(
    kind_name: &str,
    params: &Map<String, Value>,
    ctx: &HandlerContext,
) -> Result<Arc<dyn HandlerFactory>, HandlerConfigError> {
    match kind_name {
        "logger" => Ok(Arc::new(logger::LoggerFactory::new(params))),
        "usage" => Ok(Arc::new(usage::UsageFactory::new(params))),
        "notabene" => Ok(Arc::new(notabene::NotabeneFactory::new(
            params,
            ctx.publisher.clone(),
        )?)),
        other => Err(HandlerConfigError::UnknownHandler(other.to_string())),
    }
}

/// The original passed every parameter to the handler as a keyword argument and
/// handlers ignored those they did not know; we log them once at start-up.
fn warn_unknown_params(handler: &str, params: &Map<String, Value>, known: &[&str]) {
    for key in params.keys() {
        if !known.contains(&key.as_str()) {
            tracing::warn!("pipeline handler '{handler}': ignoring unknown parameter '{key}'");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notabene::RecordingSink;

    fn ctx() -> HandlerContext {
        HandlerContext {
            publisher: Arc::new(RecordingSink::new()),
        }
    }

    #[test]
    fn builds_every_builtin_and_rejects_unknown_names() {
        let mut nb = Map::new();
        nb.insert("exchange".into(), Value::from("nova"));
        nb.insert("queue_name".into(), Value::from("monitor.info"));
        for name in BUILTIN_HANDLERS {
            let params = if name == "notabene" {
                nb.clone()
            } else {
                Map::new()
            };
            let f = build_factory(name, &params, &ctx()).unwrap();
            assert_eq!(f.name(), name);
        }
        let err = build_factory("atompub", &Map::new(), &ctx()).err().unwrap();
        assert_eq!(err, HandlerConfigError::UnknownHandler("atompub".into()));
        assert!(err.to_string().contains("atompub"));
    }
}
