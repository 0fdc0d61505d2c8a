//! Loading and validating event definitions files.
//!
//! The YAML is read into the located tree of [`crate::yaml`] (anchors, aliases and
//! `<<` merge keys expanded; a repeated key keeps its last value, as PyYAML did), so
//! every message can name a line. Every definition is then checked and compiled:
//! patterns, field paths, types and plugins.
//!
//! What the original refused is a [`LoadError`] naming the file, the line, the
//! definition and the trait, so nothing can fail later for a reason the file could
//! have shown. What the original accepted and ignored (an unknown key, an unknown
//! plugin parameter, a trait the envelope overwrites) and what may not mean what it
//! seems (`..`, a `|` inside a path) load, with a [`LoadWarning`] each.

use super::error::{LoadError, LoadWarning};
use super::path::FieldPath;
use super::pattern::TypeMatcher;
use super::plugins::Plugin;
use crate::event::TraitType;
use crate::yaml::{self, Node, NodeValue};

/// One compiled trait definition.
#[derive(Debug, Clone)]
pub(crate) struct TraitDef {
    pub name: String,
    pub ty: TraitType,
    pub fields: FieldPath,
    pub plugin: Option<Plugin>,
}

/// One compiled event definition.
#[derive(Debug, Clone)]
pub(crate) struct Definition {
    pub matcher: TypeMatcher,
    pub traits: Vec<TraitDef>,
}

/// The keys of a definition the original read.
const DEFINITION_KEYS: &[&str] = &["event_type", "traits"];
/// The keys of a trait definition the original read.
const TRAIT_KEYS: &[&str] = &["fields", "type", "plugin"];
/// The keys of a plugin mapping the original read.
const PLUGIN_KEYS: &[&str] = &["name", "parameters"];
/// Trait names winchester's condenser overwrote with the envelope.
const ENVELOPE_NAMES: &[&str] = &["event_type", "message_id", "timestamp"];

/// The traits every event gets unless its definition names them too.
fn default_traits() -> Vec<TraitDef> {
    let text = |name: &str, fields: &[&str]| TraitDef {
        name: name.to_string(),
        ty: TraitType::Text,
        fields: FieldPath::parse_list(fields).unwrap_or_else(|_| unreachable!("built-in path")),
        plugin: None,
    };
    vec![
        text("service", &["publisher_id"]),
        text("request_id", &["_context_request_id"]),
        text("tenant_id", &["payload.tenant_id", "_context_tenant"]),
    ]
}

impl Definition {
    /// The catch-all definition: `'*'` with only the default traits.
    pub fn catch_all() -> Definition {
        Definition {
            matcher: TypeMatcher::new(&["*"]),
            traits: default_traits(),
        }
    }
}

/// Parses YAML text into compiled definitions, in file order, with the warnings.
pub(crate) fn load(
    text: &str,
    file: &str,
) -> Result<(Vec<Definition>, Vec<LoadWarning>), LoadError> {
    let doc = yaml::parse(text).map_err(|e| LoadError::Yaml {
        file: file.to_string(),
        line: e.line,
        message: e.message,
    })?;
    let items = match doc.as_seq() {
        Some(items) => items,
        None => {
            return Err(LoadError::Structure {
                file: file.to_string(),
                line: doc.line,
                reason: format!("expected a list of event definitions, found {}", doc.kind()),
            })
        }
    };
    let mut warnings = Vec::new();
    let mut defs = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let mut cx = Ctx {
            file,
            index,
            event_type: item
                .get("event_type")
                .map(Node::brief)
                .unwrap_or_else(|| "missing".to_string()),
            warnings: &mut warnings,
        };
        defs.push(compile(item, &mut cx)?);
    }
    Ok((defs, warnings))
}

/// Where we are, for messages.
struct Ctx<'a> {
    file: &'a str,
    index: usize,
    event_type: String,
    warnings: &'a mut Vec<LoadWarning>,
}

impl Ctx<'_> {
    fn context(&self, trait_name: Option<&str>) -> String {
        let mut s = format!("definition {} (event_type {})", self.index, self.event_type);
        if let Some(t) = trait_name {
            s.push_str(&format!(", trait '{t}'"));
        }
        s
    }

    fn error(&self, line: Option<usize>, trait_name: Option<&str>, reason: String) -> LoadError {
        LoadError::Definition {
            file: self.file.to_string(),
            line,
            context: self.context(trait_name),
            reason,
        }
    }

    fn warn(&mut self, line: Option<usize>, trait_name: Option<&str>, message: String) {
        let context = self.context(trait_name);
        self.warnings.push(LoadWarning {
            file: self.file.to_string(),
            line,
            context,
            message,
        });
    }

    fn unknown_keys(&mut self, node: &Node, known: &[&str], what: &str, trait_name: Option<&str>) {
        for (key, value) in node.as_map().unwrap_or_default() {
            if !known.contains(&key.as_str()) {
                self.warn(
                    value.line.or(node.line),
                    trait_name,
                    format!(
                        "unknown {what} key '{key}' ignored, as the original did (known: {})",
                        known.join(", ")
                    ),
                );
            }
        }
    }
}

fn compile(item: &Node, cx: &mut Ctx<'_>) -> Result<Definition, LoadError> {
    let line = item.line;
    if item.as_map().is_none() {
        return Err(cx.error(
            line,
            None,
            format!("a definition must be a mapping, found {}", item.kind()),
        ));
    }
    cx.unknown_keys(item, DEFINITION_KEYS, "definition", None);

    let patterns: Vec<&str> = match item.get("event_type") {
        None => return Err(cx.error(line, None, "required key 'event_type' is missing".into())),
        Some(n) => match &n.value {
            NodeValue::Str(s) => vec![s.as_str()],
            NodeValue::Seq(list) => {
                let patterns = list.iter().map(Node::as_str).collect::<Option<Vec<_>>>();
                let patterns = patterns.ok_or_else(|| {
                    cx.error(
                        n.line,
                        None,
                        "every event_type pattern must be a string".into(),
                    )
                })?;
                if patterns.is_empty() {
                    cx.warn(
                        n.line,
                        None,
                        "event_type is an empty list: this definition matches no event type".into(),
                    );
                }
                patterns
            }
            _ => {
                return Err(cx.error(
                    n.line,
                    None,
                    format!(
                        "event_type must be a string or a list of strings, found {}",
                        n.kind()
                    ),
                ))
            }
        },
    };

    let mut traits = default_traits();
    match item.get("traits") {
        None => return Err(cx.error(line, None, "required key 'traits' is missing".into())),
        Some(n) => match &n.value {
            NodeValue::Null => {}
            NodeValue::Seq(list) if list.is_empty() => {}
            NodeValue::Map(entries) => {
                for (name, tcfg) in entries {
                    if ENVELOPE_NAMES.contains(&name.as_str()) {
                        cx.warn(
                            tcfg.line,
                            Some(name),
                            format!(
                                "a trait named '{name}' is overwritten by the notification's \
                                 {name} (winchester stored the envelope's), so it is never \
                                 stored; give it another name to keep it"
                            ),
                        );
                        // Still checked, as the original compiled it.
                        compile_trait(name, tcfg, cx)?;
                        continue;
                    }
                    let def = compile_trait(name, tcfg, cx)?;
                    traits.retain(|t| t.name != def.name);
                    traits.push(def);
                }
            }
            _ => {
                return Err(cx.error(
                    n.line,
                    None,
                    format!(
                        "traits must be a mapping of trait name to definition, found {}",
                        n.kind()
                    ),
                ))
            }
        },
    }
    Ok(Definition {
        matcher: TypeMatcher::new(&patterns),
        traits,
    })
}

fn compile_trait(name: &str, cfg: &Node, cx: &mut Ctx<'_>) -> Result<TraitDef, LoadError> {
    let line = cfg.line;
    let err =
        |cx: &Ctx<'_>, line: Option<usize>, reason: String| cx.error(line, Some(name), reason);
    if cfg.as_map().is_none() {
        return Err(err(
            cx,
            line,
            format!("a trait definition must be a mapping, found {}", cfg.kind()),
        ));
    }
    cx.unknown_keys(cfg, TRAIT_KEYS, "trait", Some(name));

    let ty = match cfg.get("type") {
        None => TraitType::Text,
        Some(n) => match n.as_str().and_then(TraitType::parse) {
            Some(ty) => ty,
            None => {
                return Err(err(
                    cx,
                    n.line,
                    format!(
                        "invalid type {} (expected text, int, float or datetime)",
                        n.brief()
                    ),
                ))
            }
        },
    };

    let Some(fields_node) = cfg.get("fields") else {
        return Err(err(cx, line, "required key 'fields' is missing".into()));
    };
    let fields = match &fields_node.value {
        NodeValue::Str(s) => FieldPath::parse(s),
        NodeValue::Seq(list) => {
            let specs = list.iter().map(Node::as_str).collect::<Option<Vec<_>>>();
            match specs {
                Some(specs) => FieldPath::parse_list(&specs),
                None => Err("every entry of fields must be a string".to_string()),
            }
        }
        _ => Err(format!(
            "fields must be a string or a list of strings, found {}",
            fields_node.kind()
        )),
    }
    .map_err(|e| err(cx, fields_node.line, format!("bad field path: {e}")))?;
    for note in fields.notes() {
        cx.warn(fields_node.line, Some(name), note);
    }

    let plugin = match cfg.get("plugin") {
        None => None,
        Some(p) => Some(compile_plugin(p, name, cx)?),
    };
    Ok(TraitDef {
        name: name.to_string(),
        ty,
        fields,
        plugin,
    })
}

fn compile_plugin(p: &Node, trait_name: &str, cx: &mut Ctx<'_>) -> Result<Plugin, LoadError> {
    let (plugin_name, params) = match &p.value {
        NodeValue::Str(s) => (s.as_str(), None),
        NodeValue::Map(_) => {
            cx.unknown_keys(p, PLUGIN_KEYS, "plugin", Some(trait_name));
            match p.get("name") {
                Some(Node {
                    value: NodeValue::Str(s),
                    ..
                }) => (s.as_str(), p.get("parameters")),
                Some(n) => {
                    return Err(cx.error(
                        n.line,
                        Some(trait_name),
                        "plugin name must be a string".into(),
                    ))
                }
                None => {
                    return Err(cx.error(
                        p.line,
                        Some(trait_name),
                        "plugin specified, but no plugin name given".into(),
                    ))
                }
            }
        }
        _ => {
            return Err(cx.error(
                p.line,
                Some(trait_name),
                format!(
                    "plugin must be a name or a mapping with name and parameters, found {}",
                    p.kind()
                ),
            ))
        }
    };
    let mut ignored = Vec::new();
    let params_json = params.map(Node::to_json);
    let params_line = params.and_then(|n| n.line).or(p.line);
    let plugin = Plugin::from_config(plugin_name, params_json.as_ref(), &mut ignored)
        .map_err(|e| cx.error(params_line, Some(trait_name), e))?;
    for item in ignored {
        let holder = match item.flag {
            Some(i) => params
                .and_then(|n| n.get("flags"))
                .and_then(Node::as_seq)
                .and_then(|flags| flags.get(i)),
            None => params,
        };
        let line = holder
            .and_then(|h| h.get(&item.key))
            .and_then(|n| n.line)
            .or(params_line);
        cx.warn(line, Some(trait_name), item.message);
    }
    Ok(plugin)
}
