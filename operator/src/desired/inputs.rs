//! What the pods read from outside their own objects: the Secret keys (as environment
//! variables) and the region's config, and the hashes of them put on pod templates so
//! that a change rolls exactly the pods that read it.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Secret;
use sha2::{Digest, Sha256};

use super::{database_url_secret, Component};
use crate::crd::{Cell, StackTachRegion};

/// data of its ConfigMap) and the Secrets its pods reference that exist, by name.
#[derive(Clone, Debug, Default)]
pub struct Resolved {
    /// The data of the region's ConfigMap ([`super::region_config_data`]).
    pub region_config: BTreeMap<String, String>,
    /// The referenced Secrets ([`referenced_secrets`]) that exist.
    pub secrets: BTreeMap<String, Secret>,
    /// The cells' CA bundles kept in ConfigMaps
    /// ([`crate::broker_tls::read_ca_config_maps`]).
    pub ca_bundles: BTreeMap<String, String>,
}

impl Resolved {
    /// Only config data (no Secret read yet).
    pub fn config(region_config: BTreeMap<String, String>) -> Resolved {
        Resolved {
            region_config,
            secrets: BTreeMap::new(),
            ca_bundles: BTreeMap::new(),
        }
    }
}

/// A Secret key a component's containers read (as an environment variable).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SecretUse {
    /// The Secret's name, in the region's namespace.
    pub name: String,
    /// The key within it.
    pub key: String,
}

fn secret_use(name: &str, key: &str) -> SecretUse {
    SecretUse {
        name: name.into(),
        key: key.into(),
    }
}

/// The Secret keys the pods of `component` (of `cell`, for collectors) read: what
/// their hash covers, and what the operator watches for them.
pub fn secret_uses(
    region: &StackTachRegion,
    component: Component,
    cell: Option<&Cell>,
) -> Vec<SecretUse> {
    let (db_name, db_key) = database_url_secret(region);
    let mut uses = vec![secret_use(&db_name, &db_key)];
    match component {
        Component::Yagi => {
            if let Some(cell) = cell {
                let c = &cell.rabbitmq.credentials_secret_ref;
                uses.push(secret_use(&c.name, &c.username_key));
                uses.push(secret_use(&c.name, &c.password_key));
                for (name, key) in crate::broker_tls::secret_keys(cell) {
                    uses.push(secret_use(&name, &key));
                }
            }
        }
        Component::PipelineWorker => {
            if let Some(r) = &region.spec.pipeline_workers.notabene_password_secret_ref {
                uses.push(secret_use(&r.name, &r.key));
            }
        }
        Component::Api => {
            if let Some(t) = &region.spec.api.token_secret_ref {
                uses.push(secret_use(&t.name, &t.key));
            }
        }
        Component::Database | Component::Migration | Component::Backup | Component::Config => {}
    }
    uses
}

/// Every Secret the region's pods read, by name: what the reconciler reads to hash,
/// and what a change of wakes the region.
pub fn referenced_secrets(region: &StackTachRegion) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = [Component::PipelineWorker, Component::Api]
        .into_iter()
        .flat_map(|c| secret_uses(region, c, None))
        .map(|u| u.name)
        .collect();
    for cell in &region.spec.cells {
        names.extend(
            secret_uses(region, Component::Yagi, Some(cell))
                .into_iter()
                .map(|u| u.name),
        );
    }
    names
}

/// Every ConfigMap the region's config files and cells' CA bundles reference, by name.
pub fn referenced_config_maps(region: &StackTachRegion) -> BTreeSet<String> {
    let c = &region.spec.config;
    [&c.event_definitions, &c.triggers, &c.pipelines]
        .into_iter()
        .flatten()
        .filter_map(|src| src.config_map_ref.as_ref())
        .map(|r| r.name.clone())
        .chain(
            region
                .spec
                .cells
                .iter()
                .filter_map(crate::broker_tls::config_map_key)
                .map(|(name, _)| name.to_string()),
        )
        .collect()
}

/// The hash of the values of `uses` in `secrets`, as put in [`super::SECRETS_HASH_ANNOTATION`];
/// a missing Secret or key hashes as absent, so its appearing rolls the pods too.
pub fn secrets_hash(secrets: &BTreeMap<String, Secret>, uses: &[SecretUse]) -> String {
    let mut sorted: Vec<&SecretUse> = uses.iter().collect();
    sorted.sort();
    sorted.dedup();
    let mut h = Sha256::new();
    for u in sorted {
        let secret = secrets.get(&u.name);
        let value = secret
            .and_then(|s| s.data.as_ref())
            .and_then(|d| d.get(&u.key))
            .map(|v| v.0.as_slice())
            .or_else(|| {
                secret
                    .and_then(|s| s.string_data.as_ref())
                    .and_then(|d| d.get(&u.key))
                    .map(|v| v.as_bytes())
            });
        for part in [u.name.as_bytes(), u.key.as_bytes()] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part);
        }
        match value {
            Some(v) => {
                h.update(b"present");
                h.update((v.len() as u64).to_le_bytes());
                h.update(v);
            }
            None => h.update(b"absent"),
        }
    }
    let digest = h.finalize();
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// The hash of config data, as put in [`super::CONFIG_HASH_ANNOTATION`].
pub fn config_hash<'a>(data: impl IntoIterator<Item = &'a BTreeMap<String, String>>) -> String {
    let mut h = Sha256::new();
    for map in data {
        for (k, v) in map {
            h.update((k.len() as u64).to_le_bytes());
            h.update(k.as_bytes());
            h.update((v.len() as u64).to_le_bytes());
            h.update(v.as_bytes());
        }
        h.update(b"\x00map");
    }
    let digest = h.finalize();
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}
