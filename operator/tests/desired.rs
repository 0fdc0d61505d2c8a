//! The objects a region owns, read like the manifests they are.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::EnvVar;
use operator::config_check::ConfigFiles;
use operator::crd::StackTachRegion;
use operator::desired::*;

/// `examples/region-multicell.yaml` as the API server would hand it over (namespace
/// and uid set).
fn region() -> StackTachRegion {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/region-multicell.yaml"
    );
    let mut r: StackTachRegion =
        serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    r.metadata.namespace = Some("stacktach".into());
    r.metadata.uid = Some("0a1b2c3d-0000-4000-8000-000000000001".into());
    r
}

fn files(triggers: &str) -> ConfigFiles {
    ConfigFiles {
        event_definitions: None,
        triggers: Some(triggers.into()),
        pipelines: Some("usage_pipeline:\n  - logger\n".into()),
    }
}

fn label<'a>(labels: &'a Option<BTreeMap<String, String>>, key: &str) -> Option<&'a str> {
    labels.as_ref()?.get(key).map(String::as_str)
}

fn secret_env<'a>(env: &'a [EnvVar], name: &str) -> (&'a str, &'a str) {
    let e = env
        .iter()
        .find(|e| e.name == name)
        .unwrap_or_else(|| panic!("no env {name}"));
    let r = e
        .value_from
        .as_ref()
        .unwrap()
        .secret_key_ref
        .as_ref()
        .unwrap();
    assert!(
        e.value.is_none(),
        "{name} must come from a Secret, not a literal"
    );
    (r.name.as_str(), r.key.as_str())
}

#[cfg(feature = "config-check")]
#[test]
fn a_cell_gets_a_configmap_with_its_yagi_conf_and_no_credentials() {
    let r = region();
    let cm = cell_config_map(&r, &r.spec.cells[0]).unwrap();
    assert_eq!(cm.metadata.name.as_deref(), Some("region-east-yagi-east-a"));
    assert_eq!(cm.metadata.namespace.as_deref(), Some("stacktach"));
    assert_eq!(
        label(&cm.metadata.labels, "app.kubernetes.io/component"),
        Some("yagi")
    );
    assert_eq!(
        label(&cm.metadata.labels, "app.kubernetes.io/instance"),
        Some("region-east")
    );
    assert_eq!(
        label(&cm.metadata.labels, "app.kubernetes.io/managed-by"),
        Some("stv3-operator")
    );
    assert_eq!(
        label(&cm.metadata.labels, "stacktach.io/cell"),
        Some("east-a")
    );
    let owner = &cm.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("StackTachRegion", "region-east")
    );
    assert_eq!(owner.controller, Some(true));

    let conf = &cm.data.as_ref().unwrap()["yagi.conf"];
    for line in [
        "host = rabbitmq.east-a.example.net",
        "port = 5671",
        "vhost = /nova",
        "ssl = True",
        "queues = notifications.info, notifications.error",
        "[consumer:notifications.error]",
        "max_messages = 200",
        "ShoeboxHandler",
        "roll_size_mb = 200",
    ] {
        assert!(conf.contains(line), "yagi.conf lacks {line:?}:\n{conf}");
    }
    assert!(
        !conf.contains("\nuser") && !conf.contains("\npassword"),
        "credentials in:\n{conf}"
    );

    // The worker's own parser reads it.
    let parsed = worker::yagi::config::parse_yagi_config(conf, "yagi.conf".as_ref()).unwrap();
    assert_eq!(parsed.consumers.len(), 2);
    assert_eq!(parsed.consumers[0].max_messages, 200);
    assert!(parsed.broker.params.tls);
}

#[test]
fn a_cell_gets_a_deployment_with_credentials_from_its_secret() {
    let r = region();
    let region_cfg = region_config_data(&r, &files("[]"));
    let d = cell_deployment(&r, &r.spec.cells[2], &Resolved::config(region_cfg.clone())).unwrap();
    assert_eq!(d.metadata.name.as_deref(), Some("region-east-yagi-east-c"));
    assert!(d.metadata.owner_references.is_some());
    let spec = d.spec.as_ref().unwrap();
    assert_eq!(spec.replicas, Some(1), "yagiReplicas defaults to 1");
    let selector = spec.selector.match_labels.as_ref().unwrap();
    assert_eq!(selector["stacktach.io/cell"], "east-c");
    let template = &spec.template;
    let tl = &template.metadata.as_ref().unwrap().labels;
    for (k, v) in selector {
        assert_eq!(
            label(tl, k),
            Some(v.as_str()),
            "the template matches the selector"
        );
    }
    let annotations = template
        .metadata
        .as_ref()
        .unwrap()
        .annotations
        .as_ref()
        .unwrap();
    assert_eq!(annotations[CONFIG_HASH_ANNOTATION].len(), 32);

    let pod = template.spec.as_ref().unwrap();
    let c = &pod.containers[0];
    assert_eq!(
        c.image.as_deref(),
        Some("registry.example.net/stacktach/stv3:0.1.0")
    );
    assert_eq!(
        c.command.as_ref().unwrap()[..3],
        ["yagi-event", "--config", "/etc/stv3/cell/yagi.conf"]
    );
    let env = c.env.as_deref().unwrap();
    assert_eq!(secret_env(env, ENV_AMQP_USER), ("cell-rabbitmq", "user"));
    assert_eq!(
        secret_env(env, ENV_AMQP_PASSWORD),
        ("cell-rabbitmq", "pass")
    );
    assert_eq!(secret_env(env, ENV_DATABASE_URL), ("stv3-db", "url"));
    // The region's pod knobs.
    assert_eq!(
        pod.node_selector.as_ref().unwrap()["node-role.example.net/stacktach"],
        "true"
    );
    assert_eq!(
        pod.tolerations.as_ref().unwrap()[0].key.as_deref(),
        Some("dedicated")
    );
    assert_eq!(
        pod.image_pull_secrets.as_ref().unwrap()[0].name,
        "registry-credentials"
    );
    assert_eq!(
        pod.security_context.as_ref().unwrap().run_as_user,
        Some(10001)
    );
}

#[test]
fn a_config_change_rolls_exactly_the_deployments_that_use_it() {
    let r = region();
    let before = region_config_data(&r, &files("[]"));
    let after = region_config_data(&r, &files("- name: other\n"));
    let hash = |d: k8s_openapi::api::apps::v1::Deployment| {
        d.spec
            .unwrap()
            .template
            .metadata
            .unwrap()
            .annotations
            .unwrap()[CONFIG_HASH_ANNOTATION]
            .clone()
    };
    let a0 =
        hash(cell_deployment(&r, &r.spec.cells[0], &Resolved::config(before.clone())).unwrap());
    let b0 =
        hash(cell_deployment(&r, &r.spec.cells[1], &Resolved::config(before.clone())).unwrap());
    assert_ne!(a0, b0, "each cell hashes its own yagi.conf");
    assert_eq!(
        a0,
        hash(cell_deployment(&r, &r.spec.cells[0], &Resolved::config(before.clone())).unwrap()),
        "stable"
    );
    assert_ne!(
        a0,
        hash(cell_deployment(&r, &r.spec.cells[0], &Resolved::config(after.clone())).unwrap())
    );
    assert_ne!(
        hash(pipeline_worker_deployment(&r, &Resolved::config(before.clone())).unwrap()),
        hash(pipeline_worker_deployment(&r, &Resolved::config(after.clone())).unwrap())
    );
    // The API reads winchester.yaml only: triggers do not roll it, its settings do.
    assert_eq!(
        hash(api_deployment(&r, &Resolved::config(before.clone())).unwrap()),
        hash(api_deployment(&r, &Resolved::config(after.clone())).unwrap()),
        "a triggers.yaml change must not roll the API"
    );
    let mut settings = r.clone();
    settings.spec.config.winchester.statistics_period_seconds += 1;
    let settings_cfg = region_config_data(&settings, &files("[]"));
    assert_ne!(
        hash(api_deployment(&r, &Resolved::config(before.clone())).unwrap()),
        hash(api_deployment(&settings, &Resolved::config(settings_cfg.clone())).unwrap()),
        "a winchester.yaml change rolls the API"
    );

    // A change to one cell leaves the others' hashes alone.
    let mut changed = r.clone();
    changed.spec.cells[0].rabbitmq.host = "elsewhere".into();
    assert_ne!(
        a0,
        hash(
            cell_deployment(
                &changed,
                &changed.spec.cells[0],
                &Resolved::config(before.clone())
            )
            .unwrap()
        )
    );
    assert_eq!(
        b0,
        hash(
            cell_deployment(
                &changed,
                &changed.spec.cells[1],
                &Resolved::config(before.clone())
            )
            .unwrap()
        )
    );
}

#[test]
fn the_region_configmap_holds_the_files_and_no_database_url() {
    let r = region();
    let cm = region_config_map(&r, &files("[]")).unwrap();
    assert_eq!(cm.metadata.name.as_deref(), Some("region-east-config"));
    let data = cm.data.unwrap();
    assert_eq!(data["triggers.yaml"], "[]");
    let w = &data["winchester.yaml"];
    for line in [
        "pipeline_worker_batch_size: 500",
        "pipeline_worker_delay: 5",
        "trim_events: true",
        "trim_events_age: \"$timestamp - 30d\"",
        "statistics_period: 30",
        "trigger_definitions: triggers.yaml",
        "pipeline_config: pipelines.yaml",
    ] {
        assert!(w.contains(line), "winchester.yaml lacks {line:?}:\n{w}");
    }
    assert!(
        w.contains("distiller_config: event_definitions.yaml")
            && w.contains(&format!(
                "- {REGION_CONFIG_DIR}\n    - {DEFAULTS_CONFIG_DIR}"
            )),
        "files not given are found in the image's defaults:\n{w}"
    );
    assert!(
        !w.contains("url:") && !w.contains("mysql://"),
        "a database URL in:\n{w}"
    );
}

#[test]
fn pipeline_workers_leave_replicas_to_their_autoscaler() {
    let r = region();
    let d = pipeline_worker_deployment(&r, &Resolved::default()).unwrap();
    assert_eq!(
        d.metadata.name.as_deref(),
        Some("region-east-pipeline-worker")
    );
    assert_eq!(
        d.spec.as_ref().unwrap().replicas,
        None,
        "the HPA owns replicas"
    );
    let json = serde_json::to_value(&d).unwrap();
    assert!(
        json["spec"].get("replicas").is_none(),
        "replicas must not even be serialized"
    );
    let c = &d.spec.unwrap().template.spec.unwrap().containers[0];
    assert_eq!(
        c.resources.as_ref().unwrap().requests.as_ref().unwrap()["cpu"].0,
        "250m"
    );

    let hpa = pipeline_worker_hpa(&r).unwrap();
    let spec = hpa.spec;
    assert_eq!(spec.scale_target_ref.kind, "Deployment");
    assert_eq!(spec.scale_target_ref.name, "region-east-pipeline-worker");
    assert_eq!((spec.min_replicas, spec.max_replicas), (Some(2), 10));
    let metrics = spec.metrics.unwrap();
    let target = &metrics[0].resource.as_ref().unwrap().target;
    assert_eq!(target.average_utilization, Some(70));
}

#[test]
fn the_api_gets_a_deployment_and_a_service() {
    let r = region();
    let d = api_deployment(&r, &Resolved::default()).unwrap();
    assert_eq!(d.spec.as_ref().unwrap().replicas, Some(2));
    let c = &d.spec.unwrap().template.spec.unwrap().containers[0];
    assert_eq!(
        c.image_pull_policy.as_deref(),
        Some("Always"),
        "the api's override"
    );
    let s = api_service(&r).unwrap();
    assert_eq!(s.metadata.name.as_deref(), Some("region-east-api"));
    let spec = s.spec.unwrap();
    assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
    assert_eq!(spec.ports.unwrap()[0].port, 8000);
    assert_eq!(spec.selector.unwrap()["app.kubernetes.io/component"], "api");
    assert_eq!(
        api_endpoint(&r),
        "http://region-east-api.stacktach.svc:8000"
    );
}

#[test]
fn a_region_never_stored_has_no_owner_reference() {
    let mut r = region();
    r.metadata.uid = None;
    assert!(cell_config_map(&r, &r.spec.cells[0]).is_err());
}

#[test]
fn a_managed_database_url_comes_from_the_generated_secret() {
    let r: StackTachRegion = serde_saphyr::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/region-minimal.yaml"
        ))
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        database_url_secret(&r),
        ("region-one-db".to_string(), "url".to_string())
    );
    let (image, _) = image(&r, Component::Yagi);
    assert_eq!(image, format!("ghcr.io/stacktach/stv3:{DEFAULT_TAG}"));
}

/// The region's config as a pod sees it: the ConfigMap under [`REGION_CONFIG_DIR`], the
/// image's defaults (what worker/Dockerfile copies from `etc/`) under
/// [`DEFAULTS_CONFIG_DIR`], and the URL from the environment. Both directories are
/// moved under `root` (the rendered file names them absolutely).
#[cfg(feature = "config-check")]
fn load_as_a_pod(
    root: &std::path::Path,
    data: &BTreeMap<String, String>,
) -> worker::winchester::config::LoadedConfig {
    let region_dir = root.join("region");
    let defaults_dir = root.join("defaults");
    std::fs::create_dir_all(&region_dir).unwrap();
    std::fs::create_dir_all(&defaults_dir).unwrap();
    let etc = concat!(env!("CARGO_MANIFEST_DIR"), "/../etc");
    for f in ["event_definitions.yaml", "triggers.yaml", "pipelines.yaml"] {
        std::fs::copy(format!("{etc}/{f}"), defaults_dir.join(f)).unwrap();
    }
    for (name, text) in data {
        let text = text
            .replace(REGION_CONFIG_DIR, region_dir.to_str().unwrap())
            .replace(DEFAULTS_CONFIG_DIR, defaults_dir.to_str().unwrap());
        std::fs::write(region_dir.join(name), text).unwrap();
    }
    worker::winchester::config::load_config_with_url(
        &region_dir.join("winchester.yaml"),
        Some("mysql://stv3@db/stv3"),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

#[cfg(feature = "config-check")]
#[test]
fn the_rendered_config_loads_with_the_worker_loader_from_the_region_or_the_image() {
    let r = region();
    let root = std::env::temp_dir().join(format!("stv3-op-config-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    // The region gives triggers and pipelines; the event definitions are the image's.
    let given = ConfigFiles {
        event_definitions: None,
        triggers: Some(
            "- name: only_this\n  distinguished_by: [instance_id]\n  expiration: \"$last + 1h\"\n  \
             fire_pipeline: usage_pipeline\n  expire_pipeline: usage_pipeline\n  \
             match_criteria: [{event_type: compute.instance.*}]\n  \
             fire_criteria: [{event_type: compute.instance.exists}]\n"
                .into(),
        ),
        pipelines: Some("usage_pipeline:\n  - logger\n".into()),
    };
    let cfg = load_as_a_pod(&root.join("given"), &region_config_data(&r, &given));
    assert_eq!(cfg.settings.database.url, "mysql://stv3@db/stv3");
    assert_eq!(cfg.settings.pipeline_worker_batch_size, 500);
    assert!(cfg.settings.trim_events && cfg.settings.purge_completed_streams);
    let names: Vec<&str> = cfg.triggers.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["only_this"]);
    assert!(cfg.distiller.is_some(), "the image's event definitions");
    // Nothing given: everything from the image, as the sandbox runs it.
    let cfg = load_as_a_pod(
        &root.join("defaults"),
        &region_config_data(&r, &ConfigFiles::default()),
    );
    let sandbox = worker::winchester::config::load_config_with_url(
        std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../etc/winchester.yaml"
        )),
        Some("sqlite::memory:"),
    )
    .unwrap();
    let names = |c: &worker::winchester::config::LoadedConfig| -> Vec<String> {
        c.triggers.iter().map(|t| t.name.clone()).collect()
    };
    assert_eq!(names(&cfg), names(&sandbox));
    assert!(!names(&cfg).is_empty());
    let _ = std::fs::remove_dir_all(&root);
}

fn minimal() -> StackTachRegion {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/region-minimal.yaml"
    );
    let mut r: StackTachRegion =
        serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    r.metadata.namespace = Some("stacktach".into());
    r.metadata.uid = Some("0a1b2c3d-0000-4000-8000-000000000002".into());
    r
}

#[test]
fn a_managed_database_is_a_statefulset_a_headless_service_and_a_secret() {
    let r = minimal();
    let sts = database_statefulset(&r).unwrap().expect("managed");
    assert_eq!(sts.metadata.name.as_deref(), Some("region-one-db"));
    let spec = sts.spec.unwrap();
    assert_eq!(spec.replicas, Some(1));
    assert_eq!(spec.service_name.as_deref(), Some("region-one-db"));
    let pvc = &spec.volume_claim_templates.unwrap()[0];
    let storage = &pvc
        .spec
        .as_ref()
        .unwrap()
        .resources
        .as_ref()
        .unwrap()
        .requests
        .as_ref()
        .unwrap()["storage"];
    assert_eq!(storage.0, "10Gi");
    let pod = spec.template.spec.unwrap();
    let c = &pod.containers[0];
    assert_eq!(c.image.as_deref(), Some("mysql:8.4"));
    let env = c.env.as_deref().unwrap();
    assert_eq!(
        secret_env(env, "MYSQL_PASSWORD"),
        ("region-one-db", "password")
    );
    assert_eq!(
        secret_env(env, "MYSQL_ROOT_PASSWORD"),
        ("region-one-db", "root-password")
    );
    assert_eq!(pod.security_context.unwrap().run_as_user, Some(999));

    let svc = database_service(&r).unwrap().spec.unwrap();
    assert_eq!(svc.cluster_ip.as_deref(), Some("None"), "headless");

    let pw = DatabasePasswords {
        user: "u-secret".into(),
        root: "r-secret".into(),
    };
    assert!(
        !format!("{pw:?}").contains("secret"),
        "passwords never in Debug output"
    );
    let secret = database_secret(&r, &pw).unwrap();
    let data = secret.string_data.unwrap();
    assert_eq!(
        data["url"],
        "mysql://stv3:u-secret@region-one-db-0.region-one-db.stacktach.svc:3306/stv3"
    );
    assert_eq!(data["root-password"], "r-secret");

    assert!(
        database_statefulset(&region()).unwrap().is_none(),
        "external: nothing to run"
    );
}

#[test]
fn the_migration_job_runs_db_upgrade_with_the_url_from_the_environment() {
    let r = region();
    let job = migration_job(&r).unwrap();
    let name = job.metadata.name.clone().unwrap();
    assert!(name.starts_with("region-east-migrate-"), "{name}");
    let pod = job.spec.unwrap().template.spec.unwrap();
    assert_eq!(pod.restart_policy.as_deref(), Some("OnFailure"));
    let c = &pod.containers[0];
    assert_eq!(
        c.command.as_ref().unwrap(),
        &["stv3", "db", "upgrade"],
        "the URL is read from $STV3_DATABASE_URL, never passed as an argument"
    );
    assert_eq!(
        secret_env(c.env.as_deref().unwrap(), ENV_DATABASE_URL),
        ("stv3-db", "url")
    );

    // A new image is a new Job; the same image is the same Job.
    let mut newer = r.clone();
    newer.spec.images.tag = Some("0.2.0".into());
    assert_ne!(migration_job(&newer).unwrap().metadata.name.unwrap(), name);
    assert_eq!(migration_job(&r).unwrap().metadata.name.unwrap(), name);
    assert_eq!(
        migration_image(&newer),
        "registry.example.net/stacktach/stv3:0.2.0"
    );

    // Any change to the Job's pod is a new Job too (a Job's template is immutable), but
    // not a new schema version.
    let mut moved = r.clone();
    moved.spec.pod.node_selector = Some([("disk".to_string(), "ssd".to_string())].into());
    assert_ne!(migration_job(&moved).unwrap().metadata.name.unwrap(), name);
    assert_eq!(migration_image(&moved), migration_image(&r));
}

#[test]
fn the_multicell_example_scales_on_the_backlog_with_keda() {
    let r = region();
    let backlog = operator::keda::backlog(&r).expect("the example sets backlog scaling");
    let so = operator::keda::scaled_object(&r, backlog).unwrap();
    assert_eq!(so.data["spec"]["minReplicaCount"], 2);
    assert_eq!(so.data["spec"]["maxReplicaCount"], 10);
    let ta = operator::keda::trigger_authentication(&r, backlog).unwrap();
    assert_eq!(
        ta.data["spec"]["secretTargetRef"][0]["name"], "stv3-db",
        "the external database's Secret, by reference"
    );
}

#[test]
fn the_api_gets_its_token_from_a_secret_and_is_probed() {
    let mut r = region();
    r.spec.api.token_secret_ref = None;
    let d = api_deployment(&r, &Resolved::default()).unwrap();
    let c = &d.spec.unwrap().template.spec.unwrap().containers[0];
    assert!(
        c.env
            .as_ref()
            .unwrap()
            .iter()
            .all(|e| e.name != "STV3_API_TOKEN"),
        "no token configured: none passed"
    );
    let probe = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
        p.as_ref().unwrap().http_get.as_ref().unwrap().path.clone()
    };
    assert_eq!(probe(&c.readiness_probe).as_deref(), Some("/readyz"));
    assert_eq!(probe(&c.liveness_probe).as_deref(), Some("/healthz"));

    r.spec.api.token_secret_ref = Some(operator::crd::TokenSecretRef {
        name: "api-token".into(),
        key: "token".into(),
    });
    r.spec.api.protect_reads = true;
    let d = api_deployment(&r, &Resolved::default()).unwrap();
    let c = &d.spec.unwrap().template.spec.unwrap().containers[0];
    assert_eq!(
        secret_env(c.env.as_ref().unwrap(), "STV3_API_TOKEN"),
        ("api-token", "token")
    );
    assert!(c
        .command
        .as_ref()
        .unwrap()
        .contains(&"--protect-reads".to_string()));
}

/// Every container the operator creates requests CPU and memory (the HPA computes
/// utilisation from the CPU request), and what the region sets replaces the default.
#[test]
fn every_container_has_requests_and_the_region_can_replace_them() {
    use k8s_openapi::api::core::v1::{Container, PodSpec};
    let r = minimal();
    let cfg = region_config_data(&r, &files("[]"));
    let pod = |spec: Option<PodSpec>| spec.unwrap().containers;
    let tmpl = |d: k8s_openapi::api::apps::v1::Deployment| pod(d.spec.unwrap().template.spec);
    let mut containers: Vec<(&str, Vec<Container>)> = vec![
        (
            "yagi",
            tmpl(cell_deployment(&r, &r.spec.cells[0], &Resolved::config(cfg.clone())).unwrap()),
        ),
        (
            "pipeline-worker",
            tmpl(pipeline_worker_deployment(&r, &Resolved::config(cfg.clone())).unwrap()),
        ),
        (
            "api",
            tmpl(api_deployment(&r, &Resolved::config(cfg.clone())).unwrap()),
        ),
        (
            "migration",
            pod(migration_job(&r).unwrap().spec.unwrap().template.spec),
        ),
    ];
    containers.push((
        "database",
        pod(database_statefulset(&r)
            .unwrap()
            .unwrap()
            .spec
            .unwrap()
            .template
            .spec),
    ));
    for (what, cs) in &containers {
        for c in cs {
            let requests = c
                .resources
                .as_ref()
                .and_then(|r| r.requests.as_ref())
                .unwrap_or_else(|| panic!("{what}: no requests"));
            assert!(requests.contains_key("cpu"), "{what}: no CPU request");
            assert!(requests.contains_key("memory"), "{what}: no memory request");
        }
    }
    let mut custom = r.clone();
    custom.spec.cells[0].resources =
        Some(serde_json::from_value(serde_json::json!({ "requests": { "cpu": "1" } })).unwrap());
    let c = &tmpl(
        cell_deployment(
            &custom,
            &custom.spec.cells[0],
            &Resolved::config(cfg.clone()),
        )
        .unwrap(),
    )[0];
    let requests = c.resources.as_ref().unwrap().requests.as_ref().unwrap();
    assert_eq!(requests["cpu"].0, "1");
    assert!(
        !requests.contains_key("memory"),
        "the region's resources replace the default"
    );
}
