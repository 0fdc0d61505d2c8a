//! `stv3-operator`: reconciles every `StackTachRegion` in the cluster.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::NamespaceResourceScope;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::{watcher, Controller};
use kube::{Api, Client, Resource};
use operator::crd::StackTachRegion;
use operator::reconcile::{error_policy, reconcile};
use operator::Context;

/// Environment variable naming the one namespace to watch; unset or empty: every
/// namespace (the Helm chart's `watchNamespace`).
const WATCH_NAMESPACE_ENV: &str = "WATCH_NAMESPACE";

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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,kube=warn".into()),
        )
        .init();
    // See Cargo.toml: two rustls providers are compiled in; pick kube's.
    let _ = rustls::crypto::ring::default_provider().install_default();

    let client = Client::try_default().await?;
    let reporter = Reporter {
        controller: "stv3-operator".into(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let ctx = Arc::new(Context {
        client: client.clone(),
        recorder: Recorder::new(client.clone(), reporter),
    });
    let watch_ns = std::env::var(WATCH_NAMESPACE_ENV)
        .ok()
        .filter(|ns| !ns.is_empty());
    let ns = watch_ns.as_deref();
    match ns {
        Some(ns) => tracing::info!(namespace = ns, "watching one namespace"),
        None => tracing::info!("watching every namespace"),
    }
    let wc = watcher::Config::default();
    Controller::new(api::<StackTachRegion>(&client, ns), wc.clone())
        .owns(api::<Deployment>(&client, ns), wc.clone())
        .owns(api::<ConfigMap>(&client, ns), wc.clone())
        .owns(api::<Service>(&client, ns), wc.clone())
        .owns(api::<StatefulSet>(&client, ns), wc.clone())
        .owns(api::<HorizontalPodAutoscaler>(&client, ns), wc.clone())
        .owns(api::<Job>(&client, ns), wc)
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((obj, _)) => tracing::debug!(region = %obj.name, "reconciled"),
                // A region deleted while a reconcile was queued: nothing to do.
                Err(kube::runtime::controller::Error::ObjectNotFound(obj)) => {
                    tracing::debug!(region = %obj.name, "gone before its reconcile")
                }
                Err(e) => tracing::warn!(error = %e, "reconcile failed"),
            }
        })
        .await;
    Ok(())
}
