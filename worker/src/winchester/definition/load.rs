//! Reading and validating `triggers.yaml`.
//!
//! Every problem is collected (not only the first) with the file, the line, the
//! trigger it concerns (by name, or by position when it has none) and the reason.
//! Keys the original did not know are warnings, so users' files still load.

use super::criteria::{Constant, Criteria, Criterion, Number, Op};
use super::{DistinguishedBy, TriggerDefinition};
use crate::distiller::TypeMatcher;
use crate::timex::Expression;
use crate::winchester::config::{ConfigError, ConfigErrors, Diagnostics};
use crate::winchester::pipelines::PipelineConfig;
use crate::yaml::{self, Node, NodeValue};
use std::collections::{BTreeMap, BTreeSet};

const TRIGGER_KEYS: &[&str] = &[
    "name",
    "debug_level",
    "distinguished_by",
    "expiration",
    "fire_delay",
    "fire_pipeline",
    "expire_pipeline",
    "match_criteria",
    "fire_criteria",
    "load_criteria",
];
const CRITERIA_KEYS: &[&str] = &[
    "event_type",
    "number",
    "timestamp",
    "map_distinguished_by",
    "traits",
];
const EXPIRATION_VARIABLES: &[&str] = &["first", "last", "timestamp"];

/// Loads trigger definitions from YAML text; `source` names the text in messages
/// (usually the file path). With `pipelines`, every pipeline a trigger names must be
/// defined there. Warnings are logged.
pub fn load_triggers(
    text: &str,
    source: &str,
    pipelines: Option<&PipelineConfig>,
) -> Result<Vec<TriggerDefinition>, ConfigErrors> {
    let (defs, warnings) = load_triggers_with_warnings(text, source, pipelines)?;
    for w in warnings {
        tracing::warn!("{w}");
    }
    Ok(defs)
}

/// [`load_triggers`], returning the warnings instead of logging them.
pub fn load_triggers_with_warnings(
    text: &str,
    source: &str,
    pipelines: Option<&PipelineConfig>,
) -> Result<(Vec<TriggerDefinition>, Vec<ConfigError>), ConfigErrors> {
    let mut d = Diagnostics::new(source);
    let doc = match yaml::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            d.error(e.line, "", format!("invalid YAML syntax: {}", e.message));
            return d.finish(Vec::new());
        }
    };
    let items = match &doc.value {
        NodeValue::Null => {
            d.warn(None, "", "no trigger definitions in the file");
            return d.finish(Vec::new());
        }
        NodeValue::Seq(items) => items,
        _ => {
            d.error(
                doc.line,
                "",
                format!(
                    "expected a list of trigger definitions, found {}",
                    doc.kind()
                ),
            );
            return d.finish(Vec::new());
        }
    };
    let mut defs = Vec::new();
    let mut seen: BTreeMap<String, Option<usize>> = BTreeMap::new();
    for (index, item) in items.iter().enumerate() {
        let errors_before = d.errors.len();
        let def = compile_trigger(item, index, pipelines, &mut d);
        // Names are checked for duplicates even when a definition has other problems.
        if let Some(name) = item.get("name").and_then(Node::as_str) {
            if let Some(first) = seen.get(name) {
                let at = first.map(|l| format!(" (first defined at line {l})"));
                d.error(
                    item.line,
                    &format!("trigger '{name}'"),
                    format!("duplicate trigger name{}", at.unwrap_or_default()),
                );
            } else {
                seen.insert(name.to_string(), item.line);
            }
        }
        if let Some(def) = def {
            if d.errors.len() == errors_before {
                defs.push(def);
            }
        }
    }
    d.finish(defs)
}

/// Where we are, for messages: the trigger's context and the path inside it.
struct Ctx<'a> {
    trigger: String,
    d: &'a mut Diagnostics,
}

impl Ctx<'_> {
    fn error(&mut self, node: Option<&Node>, fallback_line: Option<usize>, msg: impl Into<String>) {
        let line = node.and_then(|n| n.line).or(fallback_line);
        self.d.error(line, &self.trigger, msg);
    }
    fn warn(&mut self, line: Option<usize>, msg: impl Into<String>) {
        self.d.warn(line, &self.trigger, msg);
    }
}

fn compile_trigger(
    item: &Node,
    index: usize,
    pipelines: Option<&PipelineConfig>,
    d: &mut Diagnostics,
) -> Option<TriggerDefinition> {
    let name = match item.get("name").map(|n| &n.value) {
        Some(NodeValue::Str(s)) if !s.is_empty() => Some(s.clone()),
        Some(NodeValue::Int(i)) => Some(i.to_string()),
        _ => None,
    };
    let trigger = match &name {
        Some(n) => format!("trigger '{n}'"),
        None => format!("trigger {index} (unnamed)"),
    };
    let mut cx = Ctx { trigger, d };
    let line = item.line;
    let Some(entries) = item.as_map() else {
        cx.error(
            Some(item),
            line,
            format!(
                "a trigger definition must be a mapping, found {}",
                item.kind()
            ),
        );
        return None;
    };
    if name.is_none() {
        match item.get("name") {
            None
            | Some(Node {
                value: NodeValue::Null,
                ..
            }) => cx.error(None, line, "required field 'name' is missing"),
            Some(n) => cx.error(
                Some(n),
                line,
                format!("'name' must be a non-empty string, found {}", n.brief()),
            ),
        }
    }
    for (key, value) in entries {
        if !TRIGGER_KEYS.contains(&key.as_str()) {
            cx.warn(
                value.line.or(line),
                format!(
                    "unknown key '{key}' ignored (known: {})",
                    TRIGGER_KEYS.join(", ")
                ),
            );
        }
    }

    let debug_level = match item.get("debug_level") {
        None => 0,
        Some(n) => {
            let parsed = match &n.value {
                NodeValue::Null => Some(0),
                NodeValue::Int(i) => u8::try_from(*i).ok(),
                NodeValue::Str(s) => s.trim().parse::<u8>().ok(),
                _ => None,
            };
            parsed.unwrap_or_else(|| {
                cx.error(
                    Some(n),
                    line,
                    format!(
                        "debug_level must be an integer 0, 1 or 2, found {}",
                        n.brief()
                    ),
                );
                0
            })
        }
    };

    let distinguished_by = compile_distinguished_by(item.get("distinguished_by"), line, &mut cx);
    let dist_names: BTreeSet<&str> = distinguished_by.iter().map(|d| d.trait_name()).collect();

    let expiration = match item.get("expiration") {
        None
        | Some(Node {
            value: NodeValue::Null,
            ..
        }) => {
            cx.error(None, line, "required field 'expiration' is missing");
            None
        }
        Some(n) => timex(n, "expiration", line, &mut cx).and_then(|expr| {
            let bad: Vec<String> = expr
                .variables()
                .iter()
                .filter(|v| !EXPIRATION_VARIABLES.contains(&v.as_str()))
                .map(|v| format!("${v}"))
                .collect();
            if !bad.is_empty() {
                cx.error(
                    Some(n),
                    line,
                    format!(
                        "expiration '{}' uses {}: only $first, $last and $timestamp are defined",
                        expr.source(),
                        bad.join(", ")
                    ),
                );
                return None;
            }
            if expr.variables().iter().any(|v| v == "timestamp") {
                cx.warn(
                    n.line,
                    format!(
                        "expiration '{}' uses $timestamp, which means the time the stream \
                         is updated (\"now\"), not an event's time; $last is the last event's",
                        expr.source()
                    ),
                );
            }
            Some(expr)
        }),
    };

    let fire_delay = match item.get("fire_delay") {
        None => chrono::Duration::zero(),
        Some(n) => {
            let micros = match n.value {
                NodeValue::Null => Some(0),
                NodeValue::Int(i) if i >= 0 => i.checked_mul(1_000_000),
                NodeValue::Float(f) if (0.0..9.2e12).contains(&f) => Some((f * 1e6).round() as i64),
                _ => None,
            };
            match micros {
                Some(m) => chrono::Duration::microseconds(m),
                None => {
                    cx.error(
                        Some(n),
                        line,
                        format!(
                            "fire_delay must be a non-negative number of seconds, found {}",
                            n.brief()
                        ),
                    );
                    chrono::Duration::zero()
                }
            }
        }
    };

    let fire_pipeline = pipeline_name(
        item.get("fire_pipeline"),
        "fire_pipeline",
        line,
        pipelines,
        &mut cx,
    );
    let expire_pipeline = pipeline_name(
        item.get("expire_pipeline"),
        "expire_pipeline",
        line,
        pipelines,
        &mut cx,
    );
    let fire_given = item.get("fire_pipeline").is_some_and(|n| !n.is_null());
    let expire_given = item.get("expire_pipeline").is_some_and(|n| !n.is_null());
    if fire_pipeline.is_none() && expire_pipeline.is_none() && !fire_given && !expire_given {
        cx.error(
            None,
            line,
            "at least one of 'fire_pipeline' or 'expire_pipeline' must be given",
        );
    }

    let match_criteria = criteria_list(item, "match_criteria", true, &dist_names, line, &mut cx);
    if match_criteria.as_ref().is_some_and(Vec::is_empty) {
        cx.warn(
            item.get("match_criteria").and_then(|n| n.line).or(line),
            "match_criteria is empty: this trigger matches no event",
        );
    }
    let fire_criteria = criteria_list(item, "fire_criteria", true, &dist_names, line, &mut cx);
    let load_criteria = criteria_list(item, "load_criteria", false, &dist_names, line, &mut cx);

    Some(TriggerDefinition {
        name: name?,
        debug_level,
        distinguished_by,
        expiration: expiration?,
        fire_delay,
        fire_pipeline,
        expire_pipeline,
        match_criteria: match_criteria?,
        fire_criteria: fire_criteria?,
        load_criteria: load_criteria.unwrap_or_default(),
    })
}

/// Parses a timex expression given as a string.
fn timex(n: &Node, what: &str, line: Option<usize>, cx: &mut Ctx<'_>) -> Option<Expression> {
    let Some(src) = n.as_str() else {
        cx.error(
            Some(n),
            line,
            format!(
                "{what} must be a timex expression (a string), found {}",
                n.brief()
            ),
        );
        return None;
    };
    match Expression::compile(src) {
        Ok(expr) => Some(expr),
        Err(e) => {
            cx.error(
                Some(n),
                line,
                format!("{what}: invalid timex expression '{src}': {e}"),
            );
            None
        }
    }
}

fn compile_distinguished_by(
    node: Option<&Node>,
    line: Option<usize>,
    cx: &mut Ctx<'_>,
) -> Vec<DistinguishedBy> {
    let Some(node) = node else {
        return Vec::new();
    };
    let items = match &node.value {
        NodeValue::Null => return Vec::new(),
        NodeValue::Seq(items) => items,
        _ => {
            cx.error(
                Some(node),
                line,
                format!(
                    "distinguished_by must be a list of trait names or {{trait: timex}} \
                     mappings, found {}",
                    node.brief()
                ),
            );
            return Vec::new();
        }
    };
    let mut out: Vec<DistinguishedBy> = Vec::new();
    for (i, entry) in items.iter().enumerate() {
        let what = format!("distinguished_by[{i}]");
        let dt = match &entry.value {
            NodeValue::Str(s) if !s.is_empty() => Some(DistinguishedBy::Trait(s.clone())),
            NodeValue::Map(m) if m.len() == 1 => {
                let (trait_name, expr_node) = &m[0];
                timex(expr_node, &format!("{what} ({trait_name})"), line, cx).and_then(|expr| {
                    let bad: Vec<String> = expr
                        .variables()
                        .iter()
                        .filter(|v| v.as_str() != "timestamp")
                        .map(|v| format!("${v}"))
                        .collect();
                    if bad.is_empty() {
                        Some(DistinguishedBy::Timex {
                            trait_name: trait_name.clone(),
                            expr,
                        })
                    } else {
                        cx.error(
                            Some(expr_node),
                            line,
                            format!(
                                "{what} ({trait_name}): '{}' uses {}: only $timestamp (the \
                                 trait's value) is defined",
                                expr.source(),
                                bad.join(", ")
                            ),
                        );
                        None
                    }
                })
            }
            NodeValue::Map(m) => {
                cx.error(
                    Some(entry),
                    line,
                    format!(
                        "{what}: invalid distinguishing expression {}: only one trait is \
                         allowed in an expression (found {})",
                        entry.brief(),
                        m.len()
                    ),
                );
                None
            }
            _ => {
                cx.error(
                    Some(entry),
                    line,
                    format!(
                        "{what}: expected a trait name or a {{trait: timex}} mapping, found {}",
                        entry.brief()
                    ),
                );
                None
            }
        };
        if let Some(dt) = dt {
            if out.iter().any(|o| o.trait_name() == dt.trait_name()) {
                cx.warn(
                    entry.line.or(line),
                    format!("{what}: '{}' is listed more than once", dt.trait_name()),
                );
            }
            out.push(dt);
        }
    }
    out
}

fn pipeline_name(
    node: Option<&Node>,
    key: &str,
    line: Option<usize>,
    pipelines: Option<&PipelineConfig>,
    cx: &mut Ctx<'_>,
) -> Option<String> {
    let node = node?;
    match &node.value {
        NodeValue::Null => None,
        NodeValue::Str(s) if s.is_empty() => None,
        NodeValue::Str(s) => {
            if let Some(p) = pipelines {
                if !p.pipelines.contains_key(s) {
                    let known: Vec<&str> = p.pipelines.keys().map(String::as_str).collect();
                    cx.error(
                        Some(node),
                        line,
                        format!(
                            "{key} '{s}' is not defined in the pipeline configuration \
                             (defined: {})",
                            if known.is_empty() {
                                "none".to_string()
                            } else {
                                known.join(", ")
                            }
                        ),
                    );
                }
            }
            Some(s.clone())
        }
        _ => {
            cx.error(
                Some(node),
                line,
                format!("{key} must be a pipeline name, found {}", node.brief()),
            );
            None
        }
    }
}

fn criteria_list(
    item: &Node,
    key: &str,
    required: bool,
    dist_names: &BTreeSet<&str>,
    line: Option<usize>,
    cx: &mut Ctx<'_>,
) -> Option<Vec<Criteria>> {
    let node = match item.get(key) {
        None
        | Some(Node {
            value: NodeValue::Null,
            ..
        }) => {
            if required {
                cx.error(None, line, format!("required field '{key}' is missing"));
                return None;
            }
            return Some(Vec::new());
        }
        Some(n) => n,
    };
    let Some(items) = node.as_seq() else {
        cx.error(
            Some(node),
            line,
            format!("{key} must be a list of criteria, found {}", node.kind()),
        );
        return None;
    };
    let mut out = Vec::new();
    let mut ok = true;
    for (i, c) in items.iter().enumerate() {
        match compile_criteria(c, &format!("{key}[{i}]"), dist_names, line, cx) {
            Some(c) => out.push(c),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn compile_criteria(
    node: &Node,
    path: &str,
    dist_names: &BTreeSet<&str>,
    line: Option<usize>,
    cx: &mut Ctx<'_>,
) -> Option<Criteria> {
    let line = node.line.or(line);
    let Some(entries) = node.as_map() else {
        cx.error(
            Some(node),
            line,
            format!(
                "{path}: a criteria must be a mapping, found {}",
                node.kind()
            ),
        );
        return None;
    };
    let errors_before = cx.d.errors.len();
    for (key, value) in entries {
        if !CRITERIA_KEYS.contains(&key.as_str()) {
            cx.warn(
                value.line.or(line),
                format!(
                    "{path}: unknown key '{key}' ignored (known: {})",
                    CRITERIA_KEYS.join(", ")
                ),
            );
        }
    }

    let patterns: Vec<String> = match node.get("event_type") {
        None => vec!["*".to_string()],
        Some(n) => match &n.value {
            NodeValue::Str(s) => vec![s.clone()],
            NodeValue::Seq(items) => {
                let mut v = Vec::new();
                for p in items {
                    match p.as_str() {
                        Some(s) => v.push(s.to_string()),
                        None => cx.error(
                            Some(p),
                            line,
                            format!(
                                "{path}.event_type: a pattern must be a string, found {}",
                                p.brief()
                            ),
                        ),
                    }
                }
                if items.is_empty() {
                    cx.warn(
                        n.line,
                        format!("{path}.event_type is empty: matches no event"),
                    );
                }
                v
            }
            _ => {
                cx.error(
                    Some(n),
                    line,
                    format!(
                        "{path}.event_type must be a pattern or a list of patterns, found {}",
                        n.brief()
                    ),
                );
                Vec::new()
            }
        },
    };

    let number = match node.get("number") {
        None => 1,
        Some(n) => match n.value {
            NodeValue::Int(i) => u32::try_from(i).unwrap_or_else(|_| {
                cx.error(
                    Some(n),
                    line,
                    format!("{path}.number must be a non-negative integer, found {i}"),
                );
                1
            }),
            _ => {
                cx.error(
                    Some(n),
                    line,
                    format!(
                        "{path}.number must be a non-negative integer, found {}",
                        n.brief()
                    ),
                );
                1
            }
        },
    };

    let timestamp = match node.get("timestamp") {
        None => None,
        Some(n) if n.is_null() => None,
        Some(n) => timex(n, &format!("{path}.timestamp"), line, cx),
    };

    let mut map_distinguished_by = BTreeMap::new();
    if let Some(n) = node.get("map_distinguished_by") {
        match &n.value {
            NodeValue::Null => {}
            NodeValue::Map(m) => {
                for (k, v) in m {
                    match v.as_str() {
                        Some(s) => {
                            if !dist_names.contains(k.as_str()) {
                                cx.warn(
                                    v.line.or(line),
                                    format!(
                                        "{path}.map_distinguished_by: '{k}' is not a \
                                         distinguishing trait of this trigger; ignored"
                                    ),
                                );
                            }
                            map_distinguished_by.insert(k.clone(), s.to_string());
                        }
                        None => cx.error(
                            Some(v),
                            line,
                            format!(
                                "{path}.map_distinguished_by.{k} must be a trait name, found {}",
                                v.brief()
                            ),
                        ),
                    }
                }
            }
            _ => cx.error(
                Some(n),
                line,
                format!(
                    "{path}.map_distinguished_by must be a mapping of trait names, found {}",
                    n.brief()
                ),
            ),
        }
    }

    let mut traits = Vec::new();
    if let Some(n) = node.get("traits") {
        match &n.value {
            NodeValue::Null => {}
            NodeValue::Map(m) => {
                for (name, c) in m {
                    let what = format!("{path}.traits.{name}");
                    if let Some(criterion) = compile_criterion(c, &what, line, cx) {
                        traits.push((name.clone(), criterion));
                    }
                }
            }
            _ => cx.error(
                Some(n),
                line,
                format!(
                    "{path}.traits must be a mapping of trait criteria, found {}",
                    n.brief()
                ),
            ),
        }
    }

    if cx.d.errors.len() != errors_before {
        return None;
    }
    Some(Criteria {
        number,
        map_distinguished_by,
        event_types: TypeMatcher::new(&patterns),
        timestamp,
        traits,
    })
}

fn compile_criterion(
    node: &Node,
    what: &str,
    line: Option<usize>,
    cx: &mut Ctx<'_>,
) -> Option<Criterion> {
    match &node.value {
        NodeValue::Map(m) if m.len() == 1 => {
            let (kind, value) = &m[0];
            match kind.as_str() {
                "int" | "float" => numeric(value, kind == "int", what, line, cx),
                "datetime" => {
                    timex(value, &format!("{what} (datetime)"), line, cx).map(Criterion::Time)
                }
                "string" | "text" => constant(value, what, line, cx).map(Criterion::Equals),
                other => {
                    cx.error(
                        Some(node),
                        line,
                        format!(
                            "{what}: unknown criterion type '{other}' (expected int, float, \
                             datetime, string or text)"
                        ),
                    );
                    None
                }
            }
        }
        NodeValue::Map(m) => {
            let keys: Vec<&str> = m.iter().map(|(k, _)| k.as_str()).collect();
            cx.error(
                Some(node),
                line,
                format!(
                    "{what}: only exactly one type of match is allowed per criterion \
                     expression (found {})",
                    if keys.is_empty() {
                        "none".to_string()
                    } else {
                        keys.join(", ")
                    }
                ),
            );
            None
        }
        _ => constant(node, what, line, cx).map(Criterion::Equals),
    }
}

fn constant(node: &Node, what: &str, line: Option<usize>, cx: &mut Ctx<'_>) -> Option<Constant> {
    match &node.value {
        NodeValue::Str(s) => Some(Constant::Text(s.clone())),
        NodeValue::Int(i) => Some(Constant::Number(Number::Int(*i))),
        NodeValue::Float(f) => Some(Constant::Number(Number::Float(*f))),
        NodeValue::Bool(b) => Some(Constant::Number(Number::Int(i64::from(*b)))),
        _ => {
            cx.error(
                Some(node),
                line,
                format!(
                    "{what}: a constant criterion must be a string or a number, found {} \
                     (it could never match)",
                    node.brief()
                ),
            );
            None
        }
    }
}

fn numeric(
    node: &Node,
    int: bool,
    what: &str,
    line: Option<usize>,
    cx: &mut Ctx<'_>,
) -> Option<Criterion> {
    let kind = if int { "int" } else { "float" };
    let number = |v: &str| -> Option<Number> {
        if int {
            v.parse::<i64>().ok().map(Number::Int)
        } else {
            v.parse::<f64>().ok().map(Number::Float)
        }
    };
    match &node.value {
        NodeValue::Int(i) => Some(Criterion::Compare {
            op: Op::Eq,
            value: Number::Int(*i),
        }),
        NodeValue::Float(f) => Some(Criterion::Compare {
            op: Op::Eq,
            value: Number::Float(*f),
        }),
        NodeValue::Bool(b) => Some(Criterion::Compare {
            op: Op::Eq,
            value: Number::Int(i64::from(*b)),
        }),
        NodeValue::Str(s) => {
            let s = s.trim();
            let (op_text, value_text) = match s.split_once(char::is_whitespace) {
                Some((op, rest)) => (op, rest.trim()),
                None => ("=", s),
            };
            let bad = |cx: &mut Ctx<'_>, why: String| {
                cx.error(
                    Some(node),
                    line,
                    format!("{what}: invalid {kind} criterion '{s}': {why}"),
                );
                None
            };
            if s.is_empty() {
                return bad(cx, "it is empty".to_string());
            }
            let Some(op) = Op::parse(op_text) else {
                return bad(
                    cx,
                    format!("unknown operator '{op_text}' (use =, ==, !=, >, >=, <, <=)"),
                );
            };
            match number(value_text) {
                Some(value) => Some(Criterion::Compare { op, value }),
                None => {
                    let hint = if value_text.starts_with(['<', '>', '=', '!']) {
                        " (put a space between the operator and the number)"
                    } else {
                        ""
                    };
                    bad(
                        cx,
                        format!(
                            "'{value_text}' is not {}{hint}",
                            if int { "an integer" } else { "a number" }
                        ),
                    )
                }
            }
        }
        _ => {
            cx.error(
                Some(node),
                line,
                format!(
                    "{what}: an {kind} criterion must be a number or an \"OP NUMBER\" string, found {}",
                    node.brief()
                ),
            );
            None
        }
    }
}
