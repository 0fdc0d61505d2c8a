//! The managed database's lifecycle (kwok plays the kubelet; the data claim stays
//! Pending, which is all these checks need): a region deleted and re-created with
//! `deletionPolicy: Retain` finds its data claim and the same passwords; with `Delete`
//! both go; the schema refuses a smaller volume; switching to an external database
//! prunes the StatefulSet and keeps the claim as the policy says; an external database
//! is ready only when it answers with a migrated schema.
//!
//! Needs the cluster from `e2e/cluster/up.sh` and the operator binary. `#[ignore]`d in
//! a plain `cargo test`.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use operator::crd::StackTachRegion;
use serde_json::json;
use stv3_e2e::operator::{cell, create_secret, install_crds, OperatorOptions, OperatorProcess};
use stv3_e2e::{admin_client, api_error, wait_for, TestNamespace, WAIT};

fn region(policy: &str) -> Result<StackTachRegion> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "stacktach.io/v1alpha1", "kind": "StackTachRegion",
        "metadata": { "name": "r" },
        "spec": {
            "cells": [cell("a")],
            "database": { "managed": { "storageSize": "1Gi", "deletionPolicy": policy } },
        },
    }))?)
}

async fn password(secrets: &Api<Secret>) -> Result<Option<Vec<u8>>> {
    Ok(secrets
        .get_opt("r-db")
        .await?
        .and_then(|s| s.data)
        .and_then(|d| d.get("password").map(|v| v.0.clone())))
}

async fn create_and_wait(client: &Client, ns: &str, policy: &str) -> Result<Vec<u8>> {
    let regions: Api<StackTachRegion> = Api::namespaced(client.clone(), ns);
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    // A region just deleted may still be going (its owned objects' garbage collection).
    wait_for("the region to be created", WAIT, || async {
        Ok(regions
            .create(&PostParams::default(), &region(policy)?)
            .await
            .ok()
            .map(|_| ()))
    })
    .await?;
    wait_for("the data claim", WAIT, || async {
        Ok(claims.get_opt("data-r-db-0").await?.map(|_| ()))
    })
    .await?;
    wait_for("the generated Secret", WAIT, || async {
        password(&secrets).await
    })
    .await
}

async fn delete_region(client: &Client, ns: &str) -> Result<()> {
    let regions: Api<StackTachRegion> = Api::namespaced(client.clone(), ns);
    regions.delete("r", &DeleteParams::foreground()).await?;
    wait_for("the region to go", WAIT, || async {
        Ok(regions.get_opt("r").await?.is_none().then_some(()))
    })
    .await?;
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
    wait_for("the StatefulSet to go", WAIT, || async {
        Ok(sts.get_opt("r-db").await?.is_none().then_some(()))
    })
    .await
}

#[tokio::test]
#[ignore = "needs the test cluster: e2e/cluster/up.sh, then cargo test -p stv3-e2e -- --include-ignored"]
async fn a_managed_database_keeps_or_deletes_its_volume_and_passwords_together() -> Result<()> {
    let client = admin_client().await?;
    install_crds(&client, "crds/stacktach.io_stacktachregions.yaml").await?;
    let ns = TestNamespace::create(&client, "dbpolicy").await?;
    let n = ns.name.clone();
    create_secret(&client, &n, "rmq", &[("username", "u"), ("password", "p")]).await?;
    let op = OperatorProcess::start(&OperatorOptions::in_namespace(&n, "dbpolicy"))?;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &n);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &n);

    // Retain: deleted and re-created, the region finds its claim and its passwords.
    let first = create_and_wait(&client, &n, "Retain")
        .await
        .with_context(|| format!("operator log:\n{}", op.log_text()))?;
    let claim_uid = claims.get("data-r-db-0").await?.metadata.uid;
    delete_region(&client, &n).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    ensure!(
        claims.get_opt("data-r-db-0").await?.is_some(),
        "Retain: the data claim went with the region"
    );
    ensure!(
        password(&secrets).await?.as_ref() == Some(&first),
        "Retain: the credentials Secret went with the region"
    );
    let again = create_and_wait(&client, &n, "Retain").await?;
    ensure!(
        again == first,
        "Retain: a re-created region got new passwords for old data"
    );
    ensure!(
        claims.get("data-r-db-0").await?.metadata.uid == claim_uid,
        "Retain: the re-created region got a new claim"
    );

    // A smaller volume is refused by the schema, saying why.
    let regions: Api<StackTachRegion> = Api::namespaced(client.clone(), &n);
    let err = regions
        .patch(
            "r",
            &PatchParams::default(),
            &Patch::Merge(
                json!({ "spec": { "database": { "managed": { "storageSize": "512Mi" } } } }),
            ),
        )
        .await
        .err()
        .context("a smaller storageSize was accepted")?;
    let (code, _, message) = api_error(&err).context("not an API error")?;
    ensure!(
        code == 422 && message.contains("cannot shrink"),
        "refused with {code}: {message}"
    );

    // Switched to Delete, then deleted: the claim and the Secret both go.
    regions
        .patch(
            "r",
            &PatchParams::default(),
            &Patch::Merge(
                json!({ "spec": { "database": { "managed": { "deletionPolicy": "Delete" } } } }),
            ),
        )
        .await?;
    wait_for(
        "the Secret to be owned by the region (Delete)",
        WAIT,
        || async {
            let owned = secrets
                .get("r-db")
                .await?
                .metadata
                .owner_references
                .is_some_and(|o| o.iter().any(|o| o.kind == "StackTachRegion"));
            Ok(owned.then_some(()))
        },
    )
    .await
    .with_context(|| format!("operator log:\n{}", op.log_text()))?;
    delete_region(&client, &n).await?;
    wait_for("Delete: the claim and the Secret to go", WAIT, || async {
        let gone = claims.get_opt("data-r-db-0").await?.is_none()
            && secrets.get_opt("r-db").await?.is_none();
        Ok(gone.then_some(()))
    })
    .await?;

    // Managed → external: the StatefulSet is pruned, the claim kept (Retain).
    create_and_wait(&client, &n, "Retain").await?;
    create_secret(
        &client,
        &n,
        "ext",
        &[("url", stv3_e2e::external_database_url()?.as_str())],
    )
    .await?;
    regions
        .patch(
            "r",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "database": {
                "managed": null, "external": { "urlSecretRef": { "name": "ext" } } } } })),
        )
        .await?;
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), &n);
    wait_for("the managed StatefulSet to be pruned", WAIT, || async {
        Ok(sts.get_opt("r-db").await?.is_none().then_some(()))
    })
    .await
    .with_context(|| format!("operator log:\n{}", op.log_text()))?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    ensure!(
        claims.get_opt("data-r-db-0").await?.is_some() && password(&secrets).await?.is_some(),
        "Retain: the claim and Secret stay after the switch to an external database"
    );
    drop(op);
    ns.delete().await
}

/// `DatabaseReady` of an external database is a real connection and a migrated schema,
/// not the URL Secret's presence: a wrong password says the database refused (the
/// message shows the URL without it), an empty database says it needs migrating, and
/// the migrated database of `external_database_url` is ready. A changed URL is probed
/// again at once (the Secret's change wakes the region; the probe is keyed by the URL).
#[tokio::test]
#[ignore = "needs the test cluster: e2e/cluster/up.sh, then cargo test -p stv3-e2e -- --include-ignored"]
async fn an_external_database_is_ready_when_it_answers_migrated() -> Result<()> {
    let client = admin_client().await?;
    install_crds(&client, "crds/stacktach.io_stacktachregions.yaml").await?;
    let ns = TestNamespace::create(&client, "dbexternal").await?;
    let n = ns.name.clone();
    create_secret(&client, &n, "rmq", &[("username", "u"), ("password", "p")]).await?;
    let good = stv3_e2e::external_database_url()?;
    let (userinfo, rest) = good
        .strip_prefix("mysql://")
        .and_then(|r| r.split_once('@'))
        .context("a mysql:// URL with a user")?;
    let user = userinfo.split(':').next().unwrap_or(userinfo);
    let wrong = format!("mysql://{user}:not-the-password@{rest}");
    let (server, _) = rest.rsplit_once('/').context("a database in the URL")?;
    let empty = format!("mysql://{userinfo}@{server}/stv3_e2e_never_migrated");
    let created = std::process::Command::new("mariadb")
        .args(["--protocol=tcp", "-h"])
        .arg(server.split(':').next().unwrap_or(server))
        .args(["-P", server.split(':').nth(1).unwrap_or("3306"), "-u", user])
        .arg("-e")
        .arg("DROP DATABASE IF EXISTS stv3_e2e_never_migrated; CREATE DATABASE stv3_e2e_never_migrated")
        .env("MYSQL_PWD", userinfo.split_once(':').map_or("", |(_, p)| p))
        .output()?;
    ensure!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );

    create_secret(&client, &n, "ext", &[("url", wrong.as_str())]).await?;
    let op = OperatorProcess::start(&OperatorOptions::in_namespace(&n, "dbexternal"))?;
    let regions: Api<StackTachRegion> = Api::namespaced(client.clone(), &n);
    let region: StackTachRegion = serde_json::from_value(json!({
        "apiVersion": "stacktach.io/v1alpha1", "kind": "StackTachRegion",
        "metadata": { "name": "r" },
        "spec": {
            "cells": [cell("a")],
            "database": { "external": { "urlSecretRef": { "name": "ext" } } },
        },
    }))?;
    regions.create(&PostParams::default(), &region).await?;
    let database_ready = |want: &'static str| {
        let regions = regions.clone();
        async move {
            let r = regions.get("r").await?;
            Ok(stv3_e2e::operator::condition(&r, "DatabaseReady")
                .filter(|(_, reason, _)| reason == want))
        }
    };
    let (status, _, message) = wait_for("DatabaseReady ExternalUnreachable", WAIT, || {
        database_ready("ExternalUnreachable")
    })
    .await
    .with_context(|| format!("operator log:\n{}", op.log_text()))?;
    ensure!(status == "False", "a refused login is not ready: {message}");
    ensure!(
        !message.contains("not-the-password") && message.contains("Access denied"),
        "the message says why, without the password: {message}"
    );

    let secrets: Api<Secret> = Api::namespaced(client.clone(), &n);
    let set_url = |url: String| {
        let secrets = secrets.clone();
        async move {
            secrets
                .patch(
                    "ext",
                    &PatchParams::default(),
                    &Patch::Merge(json!({ "stringData": { "url": url } })),
                )
                .await
        }
    };
    set_url(empty).await?;
    let (status, _, message) = wait_for("DatabaseReady ExternalSchemaNotMigrated", WAIT, || {
        database_ready("ExternalSchemaNotMigrated")
    })
    .await?;
    ensure!(
        status == "False",
        "an empty database is not ready: {message}"
    );

    set_url(good).await?;
    let (status, _, message) = wait_for("DatabaseReady ExternalSchemaMigrated", WAIT, || {
        database_ready("ExternalSchemaMigrated")
    })
    .await?;
    ensure!(
        status == "True" && message.contains("schema version"),
        "the migrated database is ready: {message}"
    );
    drop(op);
    ns.delete().await
}
