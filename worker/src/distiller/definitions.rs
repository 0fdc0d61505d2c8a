//! Loading and validating event definitions files.
//!
//! The YAML is read into a `serde_json::Value` first (serde-saphyr expands anchors,
//! aliases and `<<` merge keys; repeated keys keep the last value, as PyYAML did),
//! then every definition is checked and compiled: patterns, field paths, types and
//! plugins. Anything wrong is a [`LoadError`] naming the file, the definition and the
//! trait, so nothing can fail later for a reason the file could have shown.

use super::error::LoadError;
use super::path::FieldPath;
use super::pattern::TypeMatcher;
use super::plugins::Plugin;
use crate::event::TraitType;
use serde_json::Value;

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

/// Parses YAML text into compiled definitions, in file order.
pub(crate) fn load(text: &str, file: &str) -> Result<Vec<Definition>, LoadError> {
    let options = serde_saphyr::options! {
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::LastWins,
        with_snippet: false,
    };
    let doc: Value = serde_saphyr::from_str_with_options(text, options).map_err(|e| {
        let loc = e.location();
        LoadError::Yaml {
            file: file.to_string(),
            line: loc.as_ref().map(|l| l.line()),
            column: loc.as_ref().map(|l| l.column()),
            message: e.to_string(),
        }
    })?;
    let items = match doc {
        Value::Array(items) => items,
        other => {
            return Err(LoadError::Structure {
                file: file.to_string(),
                reason: format!(
                    "expected a list of event definitions, found {}",
                    kind_of(&other)
                ),
            })
        }
    };
    items
        .iter()
        .enumerate()
        .map(|(index, item)| compile(item, index, file))
        .collect()
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

fn compile(item: &Value, index: usize, file: &str) -> Result<Definition, LoadError> {
    let event_type_label = item
        .get("event_type")
        .map(|v| v.to_string())
        .unwrap_or_else(|| "missing".to_string());
    let err = |trait_name: Option<&str>, reason: String| LoadError::Definition {
        file: file.to_string(),
        index,
        event_type: event_type_label.clone(),
        trait_name: trait_name.map(str::to_string),
        reason,
    };
    let map = item.as_object().ok_or_else(|| {
        err(
            None,
            format!("a definition must be a mapping, found {}", kind_of(item)),
        )
    })?;

    let patterns: Vec<&str> = match map.get("event_type") {
        None => return Err(err(None, "required key 'event_type' is missing".into())),
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(list)) if !list.is_empty() => list
            .iter()
            .map(|p| p.as_str())
            .collect::<Option<_>>()
            .ok_or_else(|| err(None, "every event_type pattern must be a string".into()))?,
        Some(_) => {
            return Err(err(
                None,
                "event_type must be a string or a non-empty list of strings".into(),
            ))
        }
    };

    let mut traits = default_traits();
    match map.get("traits") {
        None => return Err(err(None, "required key 'traits' is missing".into())),
        Some(Value::Null) => {}
        Some(Value::Object(cfg)) => {
            for (name, tcfg) in cfg {
                let def = compile_trait(name, tcfg).map_err(|reason| err(Some(name), reason))?;
                traits.retain(|t| t.name != def.name);
                traits.push(def);
            }
        }
        Some(other) => {
            return Err(err(
                None,
                format!(
                    "traits must be a mapping of trait name to definition, found {}",
                    kind_of(other)
                ),
            ))
        }
    }
    Ok(Definition {
        matcher: TypeMatcher::new(&patterns),
        traits,
    })
}

fn compile_trait(name: &str, cfg: &Value) -> Result<TraitDef, String> {
    let map = cfg.as_object().ok_or_else(|| {
        format!(
            "a trait definition must be a mapping, found {}",
            kind_of(cfg)
        )
    })?;
    if let Some(k) = map
        .keys()
        .find(|k| !["fields", "type", "plugin"].contains(&k.as_str()))
    {
        return Err(format!("unknown key '{k}' (expected fields, type, plugin)"));
    }
    let ty = match map.get("type") {
        None => TraitType::Text,
        Some(Value::String(s)) => TraitType::parse(s)
            .ok_or_else(|| format!("invalid type '{s}' (expected text, int, float or datetime)"))?,
        Some(other) => {
            return Err(format!(
                "invalid type {other} (expected text, int, float or datetime)"
            ))
        }
    };
    let fields = match map.get("fields") {
        None => return Err("required key 'fields' is missing".to_string()),
        Some(Value::String(s)) => FieldPath::parse(s),
        Some(Value::Array(list)) => {
            let specs: Vec<&str> = list
                .iter()
                .map(|v| v.as_str())
                .collect::<Option<_>>()
                .ok_or_else(|| "every entry of fields must be a string".to_string())?;
            FieldPath::parse_list(&specs)
        }
        Some(other) => Err(format!(
            "fields must be a string or a list of strings, found {}",
            kind_of(other)
        )),
    }
    .map_err(|e| format!("bad field path: {e}"))?;
    let plugin = match map.get("plugin") {
        None => None,
        Some(Value::String(pname)) => Some(Plugin::from_config(pname, None)?),
        Some(Value::Object(p)) => {
            let pname = match p.get("name") {
                Some(Value::String(s)) => s,
                Some(_) => return Err("plugin name must be a string".to_string()),
                None => return Err("plugin specified, but no plugin name given".to_string()),
            };
            if let Some(k) = p
                .keys()
                .find(|k| !["name", "parameters"].contains(&k.as_str()))
            {
                return Err(format!(
                    "unknown plugin key '{k}' (expected name, parameters)"
                ));
            }
            Some(Plugin::from_config(pname, p.get("parameters"))?)
        }
        Some(other) => {
            return Err(format!(
                "plugin must be a name or a mapping with name and parameters, found {}",
                kind_of(other)
            ))
        }
    };
    Ok(TraitDef {
        name: name.to_string(),
        ty,
        fields,
        plugin,
    })
}
