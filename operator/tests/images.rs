//! The images and the objects the operator creates must agree: every program a region's
//! pods and Job run is built into the `stv3` image (worker/Dockerfile) from a binary
//! target of the workspace, the defaults directory the rendered config falls back on
//! is where the image puts `etc/`, and the operator image holds the operator. CI has no
//! container engine, so this is what keeps the Dockerfiles honest.

use operator::crd::StackTachRegion;
use operator::desired::*;
use serde_json::Value;

fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn region() -> StackTachRegion {
    let mut r: StackTachRegion =
        serde_saphyr::from_str(&read("examples/region-minimal.yaml")).unwrap();
    r.metadata.namespace = Some("stacktach".into());
    r.metadata.uid = Some("0a1b2c3d-0000-4000-8000-000000000009".into());
    r
}

/// The first word of every container command in a pod template, as JSON.
fn programs(object: Value, out: &mut Vec<String>) {
    let containers = object
        .pointer("/spec/template/spec/containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for c in containers {
        let program = c
            .pointer("/command/0")
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("a container without a command: {c}"));
        out.push(program.to_string());
    }
}

/// `[[bin]]` names of a package's Cargo.toml (and `src/bin/*.rs` auto-targets).
fn binaries(package_dir: &str) -> Vec<String> {
    let toml = read(&format!("{package_dir}/Cargo.toml"));
    let mut names: Vec<String> = toml
        .split("[[bin]]")
        .skip(1)
        .filter_map(|section| {
            let line = section
                .lines()
                .find(|l| l.trim_start().starts_with("name"))?;
            Some(line.split('"').nth(1)?.to_string())
        })
        .collect();
    if let Ok(dir) = std::fs::read_dir(root().join(package_dir).join("src/bin")) {
        for entry in dir.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if let Some(stem) = name.strip_suffix(".rs") {
                names.push(stem.to_string());
            }
        }
    }
    names
}

#[test]
fn every_program_the_pods_run_is_built_into_the_stv3_image() {
    let r = region();
    let cell = &r.spec.cells[0];
    let mut run = Vec::new();
    programs(
        serde_json::to_value(cell_deployment(&r, cell, &Default::default()).unwrap()).unwrap(),
        &mut run,
    );
    programs(
        serde_json::to_value(pipeline_worker_deployment(&r, &Default::default()).unwrap()).unwrap(),
        &mut run,
    );
    programs(
        serde_json::to_value(api_deployment(&r, &Default::default()).unwrap()).unwrap(),
        &mut run,
    );
    programs(
        serde_json::to_value(migration_job(&r).unwrap()).unwrap(),
        &mut run,
    );
    run.sort();
    run.dedup();
    assert_eq!(run, ["pipeline-worker", "stv3", "stv3-api", "yagi-event"]);

    let dockerfile = read("worker/Dockerfile");
    let mut built: Vec<String> = binaries("worker");
    built.extend(binaries("api"));
    for program in &run {
        assert!(
            built.contains(program),
            "{program} is not a binary target of the workspace ({built:?})"
        );
        assert!(
            dockerfile.contains(&format!("target/release/{program} ")),
            "worker/Dockerfile does not copy {program} into the image"
        );
    }
    assert!(
        dockerfile.contains(&format!("{DEFAULTS_CONFIG_DIR}/")),
        "worker/Dockerfile must put etc/ in {DEFAULTS_CONFIG_DIR}, where the rendered \
         winchester.yaml looks for files a region does not give"
    );
    for file in ["event_definitions.yaml", "triggers.yaml", "pipelines.yaml"] {
        assert!(
            dockerfile.contains(&format!("etc/{file}")),
            "{file} not in the image"
        );
    }
    // Non-root, as the pods' security context requires.
    assert!(dockerfile.contains("USER 65532"));
}

#[test]
fn the_operator_image_runs_the_operator() {
    let dockerfile = read("operator/Dockerfile");
    assert!(binaries("operator").contains(&"stv3-operator".to_string()));
    assert!(dockerfile.contains("--bin stv3-operator"));
    assert!(dockerfile.contains("ENTRYPOINT [\"/usr/local/bin/stv3-operator\"]"));
    assert!(dockerfile.contains("USER 65532"));
    let values = read("charts/stacktach-operator/values.yaml");
    assert!(values.contains("repository: ghcr.io/stacktach/stv3-operator"));
}

/// The daemonless build (scripts/images.sh) puts exactly the binaries each Dockerfile
/// copies into its image: it reuses the Dockerfiles' final stages, and only the list of
/// binaries to take from target/release is its own.
#[test]
fn the_daemonless_build_takes_the_binaries_the_dockerfiles_copy() {
    let script = read("scripts/images.sh");
    for (dockerfile, image) in [
        ("worker/Dockerfile", "stv3"),
        ("operator/Dockerfile", "stv3-operator"),
    ] {
        let text = read(dockerfile);
        let mut copied: Vec<String> = text
            .split("target/release/")
            .skip(1)
            .filter_map(|s| s.split_whitespace().next())
            .map(str::to_string)
            .collect();
        copied.sort();
        let line = script
            .lines()
            .find(|l| l.starts_with(&format!("build_image \"$REGISTRY/{image}\" {dockerfile} ")))
            .unwrap_or_else(|| {
                panic!("scripts/images.sh does not build {image} from {dockerfile}")
            });
        let mut built: Vec<String> = line
            .split_whitespace()
            .skip(3)
            .map(str::to_string)
            .collect();
        built.sort();
        assert_eq!(
            built, copied,
            "{image}: scripts/images.sh and {dockerfile} disagree"
        );
    }
}
