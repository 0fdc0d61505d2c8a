//! `pipelines.yaml` (pipeline name → its handlers, in order) and the handler names
//! of `winchester.yaml`'s `pipeline_handlers`.
//!
//! A handler in a pipeline is a handler name, or `{name, params}` whose params are
//! passed to the handler. Handler names map to classes in `pipeline_handlers`; the
//! original's class paths (`winchester.pipeline_handler:UsageHandler`, …) map to our
//! built-in handlers ([`HandlerKind`]), and any other class is an error naming it,
//! since Python classes cannot be loaded here.

use crate::winchester::config::{ConfigError, ConfigErrors, Diagnostics};
use crate::yaml::{self, Node, NodeValue};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// The built-in pipeline handlers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HandlerKind {
    /// Logs the stream's events (the original's `LoggingHandler`).
    Logger,
    /// Nova usage audit (the original's `UsageHandler`).
    Usage,
    /// Publishes notifications to RabbitMQ (the original's `NotabeneHandler`).
    Notabene,
}

impl HandlerKind {
    /// Our name for it (`logger`, `usage`, `notabene`).
    pub fn name(self) -> &'static str {
        match self {
            HandlerKind::Logger => "logger",
            HandlerKind::Usage => "usage",
            HandlerKind::Notabene => "notabene",
        }
    }
}

/// The built-in handler a `pipeline_handlers` class path stands for: the original's
/// `winchester.pipeline_handler:LoggingHandler` / `:UsageHandler` /
/// `:NotabeneHandler`, or `logger` / `usage` / `notabene` (bare or `builtin:`).
pub fn handler_kind(class_path: &str) -> Option<HandlerKind> {
    let p = class_path.trim();
    let p = p.strip_prefix("builtin:").unwrap_or(p);
    match p {
        "logger" | "winchester.pipeline_handler:LoggingHandler" => Some(HandlerKind::Logger),
        "usage" | "winchester.pipeline_handler:UsageHandler" => Some(HandlerKind::Usage),
        "notabene" | "winchester.pipeline_handler:NotabeneHandler" => Some(HandlerKind::Notabene),
        _ => None,
    }
}

/// One handler of a pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct HandlerSpec {
    /// The handler's name in `pipeline_handlers`.
    pub name: String,
    pub params: Map<String, Value>,
}

/// A loaded `pipelines.yaml`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PipelineConfig {
    pub pipelines: BTreeMap<String, Vec<HandlerSpec>>,
}

impl PipelineConfig {
    pub fn get(&self, pipeline: &str) -> Option<&[HandlerSpec]> {
        self.pipelines.get(pipeline).map(Vec::as_slice)
    }

    pub fn contains(&self, pipeline: &str) -> bool {
        self.pipelines.contains_key(pipeline)
    }

    pub fn len(&self) -> usize {
        self.pipelines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pipelines.is_empty()
    }
}

/// Loads `pipelines.yaml` text; `source` names it in messages. With
/// `known_handlers`, every handler a pipeline uses must be one of them. Returns the
/// config and the warnings.
pub fn load_pipelines(
    text: &str,
    source: &str,
    known_handlers: Option<&BTreeSet<String>>,
) -> Result<(PipelineConfig, Vec<ConfigError>), ConfigErrors> {
    let mut d = Diagnostics::new(source);
    let doc = match yaml::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            d.error(e.line, "", format!("invalid YAML syntax: {}", e.message));
            return d.finish(PipelineConfig::default());
        }
    };
    let entries = match &doc.value {
        NodeValue::Null => {
            d.warn(None, "", "no pipelines defined");
            return d.finish(PipelineConfig::default());
        }
        NodeValue::Map(m) => m,
        _ => {
            d.error(
                doc.line,
                "",
                format!(
                    "expected a mapping of pipeline names to handler lists, found {}",
                    doc.kind()
                ),
            );
            return d.finish(PipelineConfig::default());
        }
    };
    let mut config = PipelineConfig::default();
    for (name, handlers) in entries {
        let ctx = format!("pipeline '{name}'");
        let items: &[Node] = match &handlers.value {
            NodeValue::Seq(items) => items,
            NodeValue::Null => &[],
            _ => {
                d.error(
                    handlers.line,
                    &ctx,
                    format!("expected a list of handlers, found {}", handlers.kind()),
                );
                continue;
            }
        };
        if items.is_empty() {
            d.warn(handlers.line, &ctx, "has no handlers");
        }
        let mut specs = Vec::new();
        for (i, h) in items.iter().enumerate() {
            if let Some(spec) = handler_spec(h, i, &ctx, known_handlers, &mut d) {
                specs.push(spec);
            }
        }
        config.pipelines.insert(name.clone(), specs);
    }
    d.finish(config)
}

fn handler_spec(
    node: &Node,
    index: usize,
    ctx: &str,
    known: Option<&BTreeSet<String>>,
    d: &mut Diagnostics,
) -> Option<HandlerSpec> {
    let (name, params) = match &node.value {
        NodeValue::Str(s) => (s.clone(), Map::new()),
        NodeValue::Map(m) => {
            for (k, v) in m {
                if k != "name" && k != "params" {
                    d.warn(
                        v.line.or(node.line),
                        ctx,
                        format!("handler {index}: unknown key '{k}' ignored (known: name, params)"),
                    );
                }
            }
            let name = match node.get("name").map(|n| &n.value) {
                Some(NodeValue::Str(s)) if !s.is_empty() => s.clone(),
                _ => {
                    d.error(
                        node.line,
                        ctx,
                        format!(
                            "handler {index}: handler name not in config: {}",
                            node.brief()
                        ),
                    );
                    return None;
                }
            };
            let params = match node.get("params") {
                None => Map::new(),
                Some(p) => match p.to_json() {
                    Value::Object(m) => m,
                    Value::Null => Map::new(),
                    _ => {
                        d.error(
                            p.line,
                            ctx,
                            format!(
                                "handler '{name}': params must be a mapping, found {}",
                                p.kind()
                            ),
                        );
                        return None;
                    }
                },
            };
            // A password in this file goes wherever the file goes: the operator keeps
            // it in a ConfigMap, readable by anyone who can read the namespace.
            let literal = node.get("params").and_then(|p| p.get("password")).filter(
                |pw| matches!(&pw.value, NodeValue::Str(s) if !s.is_empty() && s != "guest"),
            );
            if let Some(pw) = literal {
                d.warn(
                    pw.line.or(node.line),
                    ctx,
                    format!(
                        "handler '{name}': a password written in this file is stored wherever \
                         the file is (the operator keeps it in a ConfigMap); give password_file \
                         (a mounted Secret) or password_env instead"
                    ),
                );
            }
            (name, params)
        }
        _ => {
            d.error(
                node.line,
                ctx,
                format!(
                    "handler {index}: expected a handler name or {{name, params}}, found {}",
                    node.brief()
                ),
            );
            return None;
        }
    };
    if let Some(known) = known {
        if !known.contains(&name) {
            d.error(
                node.line,
                ctx,
                format!(
                    "unknown handler '{name}': not in pipeline_handlers (known: {})",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.iter().cloned().collect::<Vec<_>>().join(", ")
                    }
                ),
            );
            return None;
        }
    }
    Some(HandlerSpec { name, params })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_paths_map_to_builtins() {
        assert_eq!(
            handler_kind("winchester.pipeline_handler:LoggingHandler"),
            Some(HandlerKind::Logger)
        );
        assert_eq!(
            handler_kind("winchester.pipeline_handler:UsageHandler"),
            Some(HandlerKind::Usage)
        );
        assert_eq!(
            handler_kind("winchester.pipeline_handler:NotabeneHandler"),
            Some(HandlerKind::Notabene)
        );
        assert_eq!(handler_kind("logger"), Some(HandlerKind::Logger));
        assert_eq!(handler_kind("builtin:logger"), Some(HandlerKind::Logger));
        assert_eq!(handler_kind("builtin:usage"), Some(HandlerKind::Usage));
        assert_eq!(handler_kind("notabene"), Some(HandlerKind::Notabene));
        assert_eq!(
            handler_kind("winchester.pipeline_handler:AtomPubHandler"),
            None
        );
        assert_eq!(handler_kind("mypkg.handlers:Custom"), None);
    }

    #[test]
    fn loads_names_and_params() {
        let text = "p1:\n  - logger\n  - name: notabene\n    params:\n      queue_name: q\n      env_keys: [a]\np2: []\n";
        let known: BTreeSet<String> = ["logger", "notabene"].map(String::from).into();
        let (cfg, warnings) = load_pipelines(text, "p.yaml", Some(&known)).unwrap();
        assert_eq!(cfg.len(), 2);
        let p1 = cfg.get("p1").unwrap();
        assert_eq!(p1[0].name, "logger");
        assert!(p1[0].params.is_empty());
        assert_eq!(p1[1].params["env_keys"], serde_json::json!(["a"]));
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].to_string().contains("pipeline 'p2'"));
    }

    #[test]
    fn a_literal_password_is_a_warning_with_its_line() {
        let text = "p1:\n  - name: notabene\n    params:\n      queue_name: q\n      password: s3cret\n  - name: notabene\n    params: {password: guest, password_file: /run/secrets/pw}\n";
        let known: BTreeSet<String> = ["notabene"].map(String::from).into();
        let (_, warnings) = load_pipelines(text, "p.yaml", Some(&known)).unwrap();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        let w = warnings[0].to_string();
        assert!(
            w.starts_with("p.yaml:5: pipeline 'p1': handler 'notabene'"),
            "{w}"
        );
        assert!(w.contains("password_file") && !w.contains("s3cret"), "{w}");
    }

    #[test]
    fn reports_every_problem() {
        let text = "p1:\n  - logger\n  - nope\n  - {params: {}}\np2: 3\np3:\n  - name: logger\n    params: [1]\n";
        let known: BTreeSet<String> = ["logger"].map(String::from).into();
        let err = load_pipelines(text, "p.yaml", Some(&known)).unwrap_err();
        let s = err.to_string();
        assert_eq!(err.len(), 4, "{s}");
        assert!(
            s.contains("p.yaml:3: pipeline 'p1': unknown handler 'nope'"),
            "{s}"
        );
        assert!(
            s.contains("p.yaml:4: pipeline 'p1': handler 2: handler name not in config"),
            "{s}"
        );
        assert!(
            s.contains("pipeline 'p2': expected a list of handlers"),
            "{s}"
        );
        assert!(
            s.contains("p.yaml:8: pipeline 'p3': handler 'logger': params must be a mapping"),
            "{s}"
        );
        let err = load_pipelines("a: [\n", "p.yaml", None).unwrap_err();
        assert!(err.errors[0].line.is_some());
    }
}
