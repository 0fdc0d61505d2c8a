//! The database step: the managed MySQL (its Secret, Service, StatefulSet and volume)
//! or the external database's URL Secret, and `DatabaseReady`.

use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret};
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};

use super::report::publish;
use super::{apply, delete_if_present};
use crate::crd::StackTachRegion;
use crate::desired::{self, DatabasePasswords};
use crate::status::{types, ConditionUpdate, Reason};
use crate::{Context, Error, Result};

/// Makes a random password (never logged).
fn password() -> String {
    use rand::distributions::{Alphanumeric, DistString};
    Alphanumeric.sample_string(&mut rand::thread_rng(), 32)
}

/// The managed database: its Secret is created once and never overwritten (its owner
/// follows `deletionPolicy`), the Service and StatefulSet are applied (the volume claim
/// template as it was created), and a larger `storageSize` expands the claim. An
/// external database: what a managed one left is pruned (the StatefulSet and Service;
/// the Secret and volume as the policy said). Returns `DatabaseReady`, and a problem
/// for `Degraded` (a volume that cannot grow) that blocks nothing else.
pub(super) async fn reconcile_database(
    ctx: &Context,
    ns: &str,
    region: &StackTachRegion,
) -> Result<(ConditionUpdate, Option<String>)> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let statefulsets: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), ns);
    let name = desired::database_name(region);
    let Some(managed) = &region.spec.database.managed else {
        prune_managed_database(ctx, ns, region).await?;
        return Ok((external_database_ready(ctx, &secrets, region).await?, None));
    };
    match secrets.get_opt(&name).await? {
        None => {
            let passwords = DatabasePasswords {
                user: password(),
                root: password(),
            };
            let secret = desired::database_secret(region, &passwords)?;
            match secrets.create(&PostParams::default(), &secret).await {
                Ok(_) => {}
                // Created meanwhile (another replica or an earlier attempt): keep it.
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => return Err(e.into()),
            }
        }
        Some(secret) => align_secret_owner(&secrets, region, &secret).await?,
    }
    apply(ctx, ns, &desired::database_service(region)?).await?;
    let existing = statefulsets.get_opt(&name).await?;
    let wanted =
        desired::database_statefulset_over(region, existing.as_ref())?.ok_or_else(|| {
            Error::MissingReference("a managed database without a StatefulSet".into())
        })?;
    let sts = apply(ctx, ns, &wanted).await?;
    let problem = expand_volume(ctx, ns, region, &managed.storage_size).await?;
    let ready = sts.status.and_then(|s| s.ready_replicas).unwrap_or(0);
    let update = if ready >= 1 {
        ConditionUpdate::yes(
            types::DATABASE_READY,
            Reason::MySQLReady,
            "the managed MySQL is ready",
        )
    } else {
        ConditionUpdate::no(
            types::DATABASE_READY,
            Reason::MySQLStarting,
            "the managed MySQL is not ready yet",
        )
    };
    Ok((update, problem))
}

/// The generated Secret's owner as `deletionPolicy` says: the region (Delete: garbage
/// collected with it) or none (Retain: it stays with the volume). A Secret made by an
/// older operator, always owned, is brought in line here.
async fn align_secret_owner(
    secrets: &Api<Secret>,
    region: &StackTachRegion,
    secret: &Secret,
) -> Result<()> {
    let uid = region.uid();
    let refs = secret.metadata.owner_references.clone().unwrap_or_default();
    let owned = refs.iter().any(|o| Some(&o.uid) == uid.as_ref());
    let want_owned = desired::deletes_database(region);
    if owned == want_owned {
        return Ok(());
    }
    let mut new_refs: Vec<_> = refs
        .into_iter()
        .filter(|o| Some(&o.uid) != uid.as_ref())
        .collect();
    if want_owned {
        new_refs.push(desired::owner_reference(region)?);
    }
    secrets
        .patch(
            &secret.name_any(),
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({ "metadata": { "ownerReferences": new_refs } })),
        )
        .await?;
    Ok(())
}

/// A larger `storageSize` than the data claim has: the claim is patched (the storage
/// driver grows the volume); refused (its StorageClass does not allow expansion), the
/// message says so and the volume keeps its size. A smaller one never gets here: the
/// CRD's schema refuses it.
async fn expand_volume(
    ctx: &Context,
    ns: &str,
    region: &StackTachRegion,
    size: &k8s_openapi::apimachinery::pkg::api::resource::Quantity,
) -> Result<Option<String>> {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), ns);
    let claim = desired::database_claim_name(region);
    let Some(pvc) = claims.get_opt(&claim).await? else {
        return Ok(None);
    };
    let current = pvc
        .spec
        .as_ref()
        .and_then(|s| s.resources.as_ref())
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .cloned();
    let grows = match (&current, quantity_bytes(&size.0)) {
        (Some(c), Some(want)) => quantity_bytes(&c.0).is_some_and(|have| want > have),
        _ => false,
    };
    if !grows {
        return Ok(None);
    }
    let patch = serde_json::json!({ "spec": { "resources": { "requests": { "storage": size } } } });
    match claims
        .patch(&claim, &PatchParams::default(), &Patch::Merge(patch))
        .await
    {
        Ok(_) => {
            tracing::info!(region = %region.name_any(), %claim, size = %size.0, "expanding the database volume");
            publish(
                ctx,
                region,
                EventType::Normal,
                "VolumeExpanding",
                format!("expanding PersistentVolumeClaim {claim} to {}", size.0),
            )
            .await;
            Ok(None)
        }
        Err(kube::Error::Api(s)) if s.code == 403 || s.code == 422 => Ok(Some(format!(
            "database.managed.storageSize {} cannot be applied: PersistentVolumeClaim {claim} \
             stays {} because the API server refused to expand it ({}); use a StorageClass \
             with allowVolumeExpansion, or set storageSize back",
            size.0,
            current.map(|c| c.0).unwrap_or_default(),
            s.message
        ))),
        Err(e) => Err(e.into()),
    }
}

/// The size of a Kubernetes quantity in bytes (`10Gi`, `500M`, `1e9`, `1024`); `None`
/// for what does not parse.
pub fn quantity_bytes(q: &str) -> Option<f64> {
    let q = q.trim();
    let split = q
        .find(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E')
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let n: f64 = number.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "m" => 1e-3,
        _ => return None,
    };
    Some(n * factor)
}

/// How long a probe of an external database stands for the next reconciles: a region
/// reconciled often (its pods changing) connects at most once a minute.
const PROBE_TTL: Duration = Duration::from_secs(60);
/// How long a probe may take before the database counts as unreachable: a reconcile
/// waits at most this for it.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// `DatabaseReady` of an external database: the URL Secret and key exist, the database
/// answers with those credentials, and its schema is migrated. The probe (one
/// connection, one query) is reused for [`PROBE_TTL`] unless the URL changed.
async fn external_database_ready(
    ctx: &Context,
    secrets: &Api<Secret>,
    region: &StackTachRegion,
) -> Result<ConditionUpdate> {
    let (name, key) = desired::database_url_secret(region);
    let url = secrets
        .get_opt(&name)
        .await?
        .and_then(|s| s.data)
        .and_then(|d| {
            d.get(&key)
                .map(|v| String::from_utf8_lossy(&v.0).trim().to_string())
        });
    let Some(url) = url else {
        return Ok(ConditionUpdate::no(
            types::DATABASE_READY,
            Reason::ExternalSecretMissing,
            format!("Secret {name} with key {key:?} not found: create it with the database URL"),
        ));
    };
    let region_key = format!(
        "{}/{}",
        region.namespace().unwrap_or_default(),
        region.name_any()
    );
    let fingerprint = desired::config_hash([&std::collections::BTreeMap::from([(
        "url".to_string(),
        url.clone(),
    )])]);
    if let Some(known) = ctx
        .database_probes
        .fresh(&region_key, &fingerprint, PROBE_TTL)
    {
        return Ok(known);
    }
    let update = probe_external(&url, &name).await;
    ctx.database_probes
        .record(region_key, fingerprint, update.clone());
    Ok(update)
}

/// One connection to `url` and its schema version, as a `DatabaseReady` update. The
/// URL is named only redacted (no password).
async fn probe_external(url: &str, secret: &str) -> ConditionUpdate {
    use worker::store;
    let shown = store::redact_url(url);
    if !url.starts_with("mysql") {
        return ConditionUpdate::no(
            types::DATABASE_READY,
            Reason::ExternalUnreachable,
            format!("{shown} (from Secret {secret}) is not a MySQL/MariaDB URL (mysql://…)"),
        );
    }
    let probe = async {
        let s = store::open(url).await?;
        s.schema_status().await
    };
    match tokio::time::timeout(PROBE_TIMEOUT, probe).await {
        Ok(Ok(st)) => match st.applied {
            Some(v) => ConditionUpdate::yes(
                types::DATABASE_READY,
                Reason::ExternalSchemaMigrated,
                format!(
                    "{shown} (from Secret {secret}) answers; schema version {v} \
                     (this operator's newest: {})",
                    st.latest
                ),
            ),
            None => ConditionUpdate::no(
                types::DATABASE_READY,
                Reason::ExternalSchemaNotMigrated,
                format!(
                    "{shown} answers but no migration was ever applied: the migration Job \
                     (stv3 db upgrade) migrates it"
                ),
            ),
        },
        Ok(Err(e)) => ConditionUpdate::no(
            types::DATABASE_READY,
            Reason::ExternalUnreachable,
            format!("{shown} (from Secret {secret}): {e}"),
        ),
        Err(_) => ConditionUpdate::no(
            types::DATABASE_READY,
            Reason::ExternalUnreachable,
            format!(
                "{shown} (from Secret {secret}) did not answer within {} s",
                PROBE_TIMEOUT.as_secs()
            ),
        ),
    }
}

/// After a switch from a managed to an external database: the StatefulSet and its
/// Service go (the volume goes with the StatefulSet only if its retention policy, set
/// from `deletionPolicy`, says Delete), and the generated Secret goes if the region
/// owns it (Delete) and stays otherwise.
async fn prune_managed_database(ctx: &Context, ns: &str, region: &StackTachRegion) -> Result<()> {
    let name = desired::database_name(region);
    let uid = region.uid();
    let owned = |m: &kube::api::ObjectMeta| {
        m.owner_references
            .iter()
            .flatten()
            .any(|o| Some(&o.uid) == uid.as_ref())
    };
    let statefulsets: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), ns);
    if let Some(sts) = statefulsets.get_opt(&name).await? {
        if owned(&sts.metadata) {
            tracing::info!(region = %region.name_any(), "the database is external now: deleting the managed MySQL");
            delete_if_present(&statefulsets, &name).await?;
            let services: Api<k8s_openapi::api::core::v1::Service> =
                Api::namespaced(ctx.client.clone(), ns);
            delete_if_present(&services, &name).await?;
        }
    }
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    if let Some(secret) = secrets.get_opt(&name).await? {
        if owned(&secret.metadata) {
            delete_if_present(&secrets, &name).await?;
        }
    }
    Ok(())
}
