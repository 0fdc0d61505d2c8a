//! Objects still written as JSON, checked: k8s-openapi's types skip keys they do not
//! know, so a misspelt key would vanish without a word.

use serde_json::Value;

use crate::{Error, Result};

/// The typed object `v` describes. k8s-openapi's types skip keys they do not know, so
/// a misspelt key in a `json!` block would vanish without a word (a probe that is
/// never set, a limit never applied): the typed object is written back and every key
/// of `v` must still be there, or this fails naming the first one lost.
pub(super) fn from_json<T: serde::de::DeserializeOwned + serde::Serialize>(v: Value) -> Result<T> {
    let typed: T = serde_json::from_value(v.clone())?;
    let back = serde_json::to_value(&typed)?;
    match dropped_key(&v, &back, String::new()) {
        Some(path) => Err(Error::DroppedField(path)),
        None => Ok(typed),
    }
}

/// The path of the first key of `given` (recursively) that `kept` lacks; nulls and
/// empty objects or lists given may be dropped (they mean "absent" to the API server).
pub fn dropped_key(given: &Value, kept: &Value, path: String) -> Option<String> {
    match (given, kept) {
        (Value::Object(g), Value::Object(k)) => g.iter().find_map(|(key, gv)| {
            let here = format!("{path}.{key}");
            match k.get(key) {
                Some(kv) => dropped_key(gv, kv, here),
                None if is_empty(gv) => None,
                None => Some(here),
            }
        }),
        (Value::Array(g), Value::Array(k)) => g
            .iter()
            .zip(k)
            .enumerate()
            .find_map(|(i, (gv, kv))| dropped_key(gv, kv, format!("{path}[{i}]")))
            .or_else(|| (g.len() > k.len()).then(|| format!("{path}[{}]", k.len()))),
        _ => None,
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::Deployment;
    use serde_json::json;

    #[test]
    fn a_misspelt_key_fails_with_its_path() {
        let given = json!({ "apiVersion": "apps/v1", "kind": "Deployment",
            "spec": { "template": { "spec": {
                "containers": [{ "name": "c", "readinesProbe": { "periodSeconds": 5 } }] } } } });
        match from_json::<Deployment>(given) {
            Err(Error::DroppedField(path)) => {
                assert_eq!(path, ".spec.template.spec.containers[0].readinesProbe")
            }
            other => panic!("expected DroppedField, got {other:?}"),
        }
        let given = json!({ "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": { "labels": {} }, "spec": { "template": { "spec": {
                "containers": [{ "name": "c", "readinessProbe": { "periodSeconds": 5 } }] } } } });
        assert!(from_json::<Deployment>(given).is_ok());
    }
}
