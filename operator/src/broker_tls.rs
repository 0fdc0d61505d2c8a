//! A cell's broker TLS beyond `tls: true`: the CA its collectors trust, the client
//! certificate they present, and the name they verify. Kept apart from `desired` so the
//! one question "what does TLS add to a cell?" has one answer: lines of `yagi.conf`,
//! read-only volumes and their mounts, the Secret keys whose change rolls the pods, and
//! the ConfigMaps read for the same reason.
//!
//! The material reaches the pod as mounted files (never environment variables, never
//! copied into the cell's ConfigMap): a CA from a ConfigMap or a Secret key, a client
//! certificate from a `kubernetes.io/tls` Secret (`tls.crt`, `tls.key`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, KeyToPath, Secret, SecretVolumeSource, Volume, VolumeMount,
};
use kube::Api;

use crate::crd::{Cell, RabbitMq};
use crate::Result;

/// Where the CA bundle is mounted in a collector.
pub const CA_DIR: &str = "/etc/stv3/broker-tls/ca";
/// Where the client certificate and key are mounted in a collector.
pub const CLIENT_DIR: &str = "/etc/stv3/broker-tls/client";
/// The keys of a `kubernetes.io/tls` Secret.
pub const TLS_CRT: &str = "tls.crt";
pub const TLS_KEY: &str = "tls.key";
const CA_FILE: &str = "ca.crt";

/// The `[rabbit_broker]` lines TLS adds to a cell's `yagi.conf` (nothing without
/// `tls: true`).
pub fn yagi_conf_lines(r: &RabbitMq) -> String {
    if !r.tls {
        return String::new();
    }
    let mut out = String::new();
    if r.ca_bundle.is_some() {
        out.push_str(&format!("ssl_ca_file = {CA_DIR}/{CA_FILE}\n"));
    }
    if r.client_certificate.is_some() {
        out.push_str(&format!(
            "ssl_cert_file = {CLIENT_DIR}/{TLS_CRT}\nssl_key_file = {CLIENT_DIR}/{TLS_KEY}\n"
        ));
    }
    if let Some(name) = &r.server_name {
        out.push_str(&format!("ssl_server_name = {name}\n"));
    }
    out
}

/// The read-only volumes a cell's collectors need for TLS.
pub fn volumes(cell: &Cell) -> Vec<Volume> {
    let r = &cell.rabbitmq;
    let mut out = Vec::new();
    if !r.tls {
        return out;
    }
    if let Some(ca) = &r.ca_bundle {
        let one = |key: &str| {
            Some(vec![KeyToPath {
                key: key.to_string(),
                path: CA_FILE.to_string(),
                mode: None,
            }])
        };
        let volume = Volume {
            name: "broker-ca".into(),
            ..Default::default()
        };
        if let Some(m) = &ca.config_map_ref {
            out.push(Volume {
                config_map: Some(ConfigMapVolumeSource {
                    name: m.name.clone(),
                    items: one(&m.key),
                    ..Default::default()
                }),
                ..volume
            });
        } else if let Some(s) = &ca.secret_ref {
            out.push(Volume {
                secret: Some(SecretVolumeSource {
                    secret_name: Some(s.name.clone()),
                    items: one(&s.key),
                    ..Default::default()
                }),
                ..volume
            });
        }
    }
    if let Some(c) = &r.client_certificate {
        out.push(Volume {
            name: "broker-client".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(c.secret_name.clone()),
                items: Some(
                    [TLS_CRT, TLS_KEY]
                        .map(|k| KeyToPath {
                            key: k.into(),
                            path: k.into(),
                            mode: None,
                        })
                        .to_vec(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    out
}

/// The mounts of [`volumes`] in the collector container.
pub fn mounts(cell: &Cell) -> Vec<VolumeMount> {
    volumes(cell)
        .into_iter()
        .map(|v| VolumeMount {
            mount_path: if v.name == "broker-ca" {
                CA_DIR
            } else {
                CLIENT_DIR
            }
            .into(),
            name: v.name,
            read_only: Some(true),
            ..Default::default()
        })
        .collect()
}

/// The Secret keys TLS reads, as (name, key): hashed into the pod template so a
/// renewed certificate rolls the collectors (they read it once, at start).
pub fn secret_keys(cell: &Cell) -> Vec<(String, String)> {
    let r = &cell.rabbitmq;
    let mut out = Vec::new();
    if !r.tls {
        return out;
    }
    if let Some(s) = r.ca_bundle.as_ref().and_then(|c| c.secret_ref.as_ref()) {
        out.push((s.name.clone(), s.key.clone()));
    }
    if let Some(c) = &r.client_certificate {
        for key in [TLS_CRT, TLS_KEY] {
            out.push((c.secret_name.clone(), key.to_string()));
        }
    }
    out
}

/// The CA ConfigMap a cell reads, as (name, key).
pub fn config_map_key(cell: &Cell) -> Option<(&str, &str)> {
    let r = &cell.rabbitmq;
    r.ca_bundle
        .as_ref()
        .filter(|_| r.tls)
        .and_then(|c| c.config_map_ref.as_ref())
        .map(|m| (m.name.as_str(), m.key.as_str()))
}

/// The CA bundles of the region's cells that come from ConfigMaps, by
/// `<name>/<key>`: what [`ca_hash_input`] hashes. A missing ConfigMap or key is left
/// out (hashed as absent), so its appearing rolls the collectors.
pub async fn read_ca_config_maps<'a>(
    api: &Api<ConfigMap>,
    cells: impl IntoIterator<Item = &'a Cell>,
) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let mut read: BTreeMap<String, Option<ConfigMap>> = BTreeMap::new();
    for cell in cells {
        let Some((name, key)) = config_map_key(cell) else {
            continue;
        };
        if !read.contains_key(name) {
            read.insert(name.to_string(), api.get_opt(name).await?);
        }
        let value = read
            .get(name)
            .and_then(Option::as_ref)
            .and_then(|cm| cm.data.as_ref())
            .and_then(|d| d.get(key));
        if let Some(v) = value {
            out.insert(format!("{name}/{key}"), v.clone());
        }
    }
    Ok(out)
}

/// The part of `ca_bundles` (from [`read_ca_config_maps`]) this cell reads, for the
/// pod template's config hash.
pub fn ca_hash_input(
    ca_bundles: &BTreeMap<String, String>,
    cell: &Cell,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Some((name, key)) = config_map_key(cell) {
        let id = format!("{name}/{key}");
        let value = ca_bundles
            .get(&id)
            .cloned()
            .unwrap_or_else(|| "<absent>".into());
        out.insert(format!("broker-ca:{id}"), value);
    }
    out
}

/// What keeps a TLS cell's collectors from starting that their Deployment does not
/// say (a pod waits in ContainerCreating for a volume that cannot be mounted): the
/// client certificate Secret or the CA Secret missing, or a key missing from it.
pub fn missing_material(
    ns: &str,
    cell: &Cell,
    secrets: &BTreeMap<String, Secret>,
    ca_bundles: &BTreeMap<String, String>,
) -> Option<String> {
    for (name, key) in secret_keys(cell) {
        let has = secrets.get(&name).is_some_and(|s| {
            s.data.as_ref().is_some_and(|d| d.contains_key(&key))
                || s.string_data.as_ref().is_some_and(|d| d.contains_key(&key))
        });
        if !has {
            return Some(format!(
                "Secret {ns}/{name} with key {key} not found: the collectors mount it for \
                 TLS to the broker and cannot start until it exists"
            ));
        }
    }
    if let Some((name, key)) = config_map_key(cell) {
        if !ca_bundles.contains_key(&format!("{name}/{key}")) {
            return Some(format!(
                "ConfigMap {ns}/{name} with key {key} not found: the collectors mount it as \
                 the broker's CA bundle and cannot start until it exists"
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{BundleKeyRef, CaBundle, ClientCertificate};

    fn cell(tls: serde_json::Value) -> Cell {
        let mut rabbit = serde_json::json!({
            "host": "rabbit", "credentialsSecretRef": { "name": "c1" }
        });
        if let (Some(r), Some(t)) = (rabbit.as_object_mut(), tls.as_object()) {
            r.extend(t.clone());
        }
        serde_json::from_value(serde_json::json!({ "name": "c1", "rabbitmq": rabbit }))
            .expect("a cell")
    }

    #[test]
    fn nothing_without_tls() {
        let c = cell(serde_json::json!({}));
        assert_eq!(yagi_conf_lines(&c.rabbitmq), "");
        assert!(volumes(&c).is_empty() && secret_keys(&c).is_empty());
    }

    #[test]
    fn ca_from_a_config_map_and_a_client_certificate() {
        let c = cell(serde_json::json!({
            "tls": true, "port": 5671, "serverName": "rabbit.cell1.example",
            "caBundle": { "configMapRef": { "name": "cell1-ca" } },
            "clientCertificate": { "secretName": "cell1-client" },
        }));
        assert_eq!(
            c.rabbitmq.ca_bundle,
            Some(CaBundle {
                config_map_ref: Some(BundleKeyRef {
                    name: "cell1-ca".into(),
                    key: "ca.crt".into()
                }),
                secret_ref: None
            })
        );
        assert_eq!(
            c.rabbitmq.client_certificate,
            Some(ClientCertificate {
                secret_name: "cell1-client".into()
            })
        );
        let conf = yagi_conf_lines(&c.rabbitmq);
        assert!(conf.contains("ssl_ca_file = /etc/stv3/broker-tls/ca/ca.crt\n"));
        assert!(conf.contains("ssl_key_file = /etc/stv3/broker-tls/client/tls.key\n"));
        assert!(conf.contains("ssl_server_name = rabbit.cell1.example\n"));
        let v = volumes(&c);
        assert_eq!(v.len(), 2);
        assert_eq!(
            v[0].config_map.as_ref().map(|m| m.name.as_str()),
            Some("cell1-ca")
        );
        let m = mounts(&c);
        assert_eq!(m[1].mount_path, CLIENT_DIR);
        assert_eq!(
            secret_keys(&c),
            vec![
                ("cell1-client".to_string(), "tls.crt".to_string()),
                ("cell1-client".to_string(), "tls.key".to_string())
            ]
        );

        let mut bundles = BTreeMap::new();
        let absent = ca_hash_input(&bundles, &c);
        let msg = missing_material("ns", &c, &BTreeMap::new(), &bundles).unwrap();
        assert!(
            msg.contains("Secret ns/cell1-client with key tls.crt"),
            "{msg}"
        );
        bundles.insert("cell1-ca/ca.crt".to_string(), "PEM".to_string());
        assert_ne!(
            ca_hash_input(&bundles, &c),
            absent,
            "a CA appearing rolls the pods"
        );
    }
}
