//! `stv3-operator`: reconciles every `StackTachRegion` in the cluster (or in
//! `WATCH_NAMESPACE`), as the leader of its replicas.
//!
//! Settings (environment; the Helm chart sets them):
//! - `WATCH_NAMESPACE`: the namespaces to watch, comma-separated (one controller and
//!   one set of watches each); unset or empty: every namespace.
//! - `METRICS_LISTEN`: where `/metrics`, `/healthz` and `/readyz` are served
//!   (default `0.0.0.0:8080`).
//! - `LEADER_ELECTION_LEASE_NAME`, `LEADER_ELECTION_NAMESPACE` (else `POD_NAMESPACE`),
//!   `LEADER_ELECTION_LEASE_SECONDS`, `LEADER_ELECTION_RENEW_GRACE_SECONDS`, `POD_NAME`
//!   (the identity): see `operator::leader`.
//!
//! Exit status: 0 after SIGTERM/Ctrl-C (the Lease released), 1 when the Lease was
//! lost (the kubelet restarts the pod as a candidate) or on a start-up error.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::NamespaceResourceScope;
use kube::core::PartialObjectMeta;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{reflector, watcher, Controller, PredicateConfig, WatchStreamExt};
use kube::{Api, Client, Resource, ResourceExt};
use operator::crd::StackTachRegion;
use operator::desired::{self, FIELD_MANAGER};
use operator::leader::{self, Election, LeaderConfig};
use operator::observe::{self, Health, Metrics};
use operator::reconcile::{error_policy, reconcile};
use operator::{status, Context};
use prometheus_client::registry::Registry;

/// Environment variable naming the namespaces to watch, comma-separated; unset or
/// empty: every namespace (the Helm chart's `watchNamespaces`).
const WATCH_NAMESPACE_ENV: &str = "WATCH_NAMESPACE";
/// Environment variable with the address of the metrics and health endpoints.
const METRICS_LISTEN_ENV: &str = "METRICS_LISTEN";

/// An Api over the watched namespace, or over every namespace.
fn api<K>(client: &Client, ns: Option<&str>) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>,
{
    match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// The regions (in `store`) in the namespace of `obj` that reference it by name, as
/// `names` of a region lists them: the regions to reconcile when a Secret or ConfigMap
/// they read appears, changes or goes.
fn referencing_regions<K: Resource>(
    store: &Store<StackTachRegion>,
    obj: &PartialObjectMeta<K>,
    names: fn(&StackTachRegion) -> std::collections::BTreeSet<String>,
) -> Vec<ObjectRef<StackTachRegion>> {
    let (ns, name) = (obj.namespace(), obj.name_any());
    store
        .state()
        .into_iter()
        .filter(|r| r.namespace() == ns && names(r).contains(&name))
        .map(|r| ObjectRef::from_obj(&*r))
        .collect()
}

/// The namespaces of `WATCH_NAMESPACE` (comma-separated), or `None` for every
/// namespace when it is unset or empty.
fn watch_namespaces(value: Option<&str>) -> anyhow::Result<Option<Vec<String>>> {
    let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let mut list: Vec<String> = Vec::new();
    for ns in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let valid = ns.len() <= 63
            && ns
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !ns.starts_with('-')
            && !ns.ends_with('-');
        anyhow::ensure!(
            valid,
            "{WATCH_NAMESPACE_ENV}: {ns:?} is not a namespace name (a DNS label)"
        );
        if !list.iter().any(|n| n == ns) {
            list.push(ns.to_string());
        }
    }
    Ok(Some(list))
}

/// The controller of the regions of one namespace (or of every namespace): its own
/// watches, so that an operator for a few namespaces streams nothing of the others.
fn controller(
    client: &Client,
    ns: Option<&str>,
    ctx: Arc<Context>,
    health: &Health,
    shutdown: &tokio_util::sync::CancellationToken,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let wc = watcher::Config::default();
    // The regions' own watch passes on spec and annotation changes only: the status
    // the reconciler writes does not wake it again. Owned objects still trigger. Its
    // failures (the API server unreachable) are what /healthz reports.
    let (reader, writer) = reflector::store();
    let watch_health = health.clone();
    let regions = watcher(api::<StackTachRegion>(client, ns), wc.clone())
        .inspect(move |event| match event {
            Ok(_) => watch_health.watch_ok(),
            Err(_) => watch_health.watch_failed(),
        })
        .default_backoff()
        .reflect(writer)
        .applied_objects()
        .predicate_filter(status::reconcile_trigger, PredicateConfig::default());
    // Owned objects carry the operator's managed-by label: a cluster-wide operator
    // then streams its own objects, not every Deployment of the cluster.
    let owned = wc
        .clone()
        .labels(&format!("app.kubernetes.io/managed-by={FIELD_MANAGER}"));
    // Secrets and ConfigMaps the regions reference (credentials, config files): their
    // metadata only (a Secret's data never crosses the watch), so that one that
    // appears or changes is reconciled in seconds, and a rotated password rolls the
    // pods reading it (the pod templates carry a hash of what they read).
    let secret_refs = {
        let store = reader.clone();
        move |s: PartialObjectMeta<Secret>| {
            referencing_regions(&store, &s, desired::referenced_secrets)
        }
    };
    let config_refs = {
        let store = reader.clone();
        move |c: PartialObjectMeta<ConfigMap>| {
            referencing_regions(&store, &c, desired::referenced_config_maps)
        }
    };
    let secrets = watcher(api::<PartialObjectMeta<Secret>>(client, ns), wc.clone())
        .default_backoff()
        .touched_objects();
    let config_maps = watcher(api::<PartialObjectMeta<ConfigMap>>(client, ns), wc.clone())
        .default_backoff()
        .touched_objects();
    let stop = shutdown.clone();
    let metrics = ctx.metrics.clone();
    Controller::for_stream(regions, reader)
        .owns(api::<Deployment>(client, ns), owned.clone())
        .owns(api::<ConfigMap>(client, ns), owned.clone())
        .owns(api::<Service>(client, ns), owned.clone())
        .owns(api::<StatefulSet>(client, ns), owned.clone())
        .owns(api::<HorizontalPodAutoscaler>(client, ns), owned.clone())
        .owns(api::<PodDisruptionBudget>(client, ns), owned.clone())
        .owns(api::<Job>(client, ns), owned)
        .watches_stream(secrets, secret_refs)
        .watches_stream(config_maps, config_refs)
        .graceful_shutdown_on(async move { stop.cancelled().await })
        .run(reconcile, error_policy, ctx)
        .for_each(move |result| {
            let metrics = metrics.clone();
            async move {
                match result {
                    Ok((obj, _)) => tracing::debug!(region = %obj.name, "reconciled"),
                    // A region deleted while a reconcile was queued: nothing to do but
                    // drop its gauges.
                    Err(kube::runtime::controller::Error::ObjectNotFound(obj)) => {
                        tracing::debug!(region = %obj.name, "gone before its reconcile");
                        metrics.forget_region(obj.namespace.as_deref().unwrap_or(""), &obj.name);
                    }
                    Err(e) => {
                        tracing::warn!(error = %operator::redact(&e.to_string()), "reconcile failed")
                    }
                }
            }
        })
}

#[tokio::main]
async fn main() -> ExitCode {
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,kube=warn".into()),
        )
        .with_writer(std::io::stderr);
    // JSON lines in a container (the image sets STV3_LOG_FORMAT=json), text otherwise.
    if std::env::var("STV3_LOG_FORMAT").as_deref() == Ok("json") {
        logs.json().flatten_event(true).init();
    } else {
        logs.init();
    }
    // Every TLS client in the process (kube's, lapin's through the worker) uses rustls
    // on ring; installing it explicitly keeps a second provider, should a dependency
    // ever bring one, from making rustls refuse to pick.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match run().await {
        Ok(code) => code,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<ExitCode> {
    let shutdown = observe::shutdown_on_signals();
    let env = |k: &str| std::env::var(k).ok();
    // Checked before anything else: a typo in the namespace list is a start-up error.
    let namespaces = watch_namespaces(env(WATCH_NAMESPACE_ENV).as_deref())?;

    let listen: SocketAddr = env(METRICS_LISTEN_ENV)
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| observe::DEFAULT_LISTEN.into())
        .parse()
        .with_context(|| format!("{METRICS_LISTEN_ENV} is not an address such as 0.0.0.0:8080"))?;
    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);
    let health = Health::default();
    let (_, server) =
        observe::serve(listen, Arc::new(registry), health.clone(), shutdown.clone()).await?;

    let client = Client::try_default().await?;
    let lease = LeaderConfig::from_env(env)?;
    tracing::info!(lease = %lease.lease_name, namespace = %lease.namespace,
        identity = %lease.identity, "standing for leader");
    // A candidate knows its part once it has read the Lease: ready (standing by).
    let ready = health.clone();
    let mut leadership = match leader::acquire(client.clone(), &lease, &shutdown, move || {
        ready.set_ready(true)
    })
    .await?
    {
        Election::Leader(l) => l,
        Election::ShutDown => {
            let _ = server.await;
            return Ok(ExitCode::SUCCESS);
        }
    };
    tracing::info!(identity = %lease.identity, "leading: reconciling");
    metrics.set_leader(true);

    let reporter = Reporter {
        controller: "stv3-operator".into(),
        instance: env("POD_NAME"),
    };
    let ctx = Arc::new(Context {
        client: client.clone(),
        recorder: Recorder::new(client.clone(), reporter),
        metrics: metrics.clone(),
        database_probes: Default::default(),
    });
    let controllers: Vec<_> = match &namespaces {
        None => {
            tracing::info!("watching every namespace");
            vec![controller(&client, None, ctx.clone(), &health, &shutdown).boxed()]
        }
        Some(list) => {
            tracing::info!(namespaces = ?list, "watching these namespaces");
            list.iter()
                .map(|ns| controller(&client, Some(ns), ctx.clone(), &health, &shutdown).boxed())
                .collect()
        }
    };
    let health_after = health.clone();
    let controller = async move {
        futures::future::join_all(controllers).await;
        health_after.controller_stopped();
    };

    tokio::select! {
        () = controller => {
            // Shut down by a signal: hand the Lease over at once.
            metrics.set_leader(false);
            leadership.release().await;
            let _ = server.await;
            tracing::info!("stopped");
            Ok(ExitCode::SUCCESS)
        }
        () = leadership.lost() => {
            // Another replica holds the Lease now: stop writing at once.
            metrics.set_leader(false);
            tracing::error!("lost the leader Lease; exiting so the pod restarts as a candidate");
            Ok(ExitCode::FAILURE)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::watch_namespaces;

    #[test]
    fn watch_namespace_takes_a_list() {
        assert_eq!(watch_namespaces(None).unwrap(), None);
        assert_eq!(watch_namespaces(Some(" ")).unwrap(), None);
        assert_eq!(
            watch_namespaces(Some("a, b,a,,c-1")).unwrap(),
            Some(vec!["a".to_string(), "b".into(), "c-1".into()])
        );
        let err = watch_namespaces(Some("a,B_x")).unwrap_err().to_string();
        assert!(err.contains("\"B_x\""), "{err}");
    }
}
