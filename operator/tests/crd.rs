//! The committed CRD matches the types, stays under the client-side-apply annotation
//! limit, and the examples deserialize into the types.

use kube::CustomResourceExt;
use operator::crd::{StackTachRegion, StackTachRegionSpec};
use operator::{crd_yaml, CRD_FILE};
use std::path::PathBuf;

fn workspace_file(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(rel)
}

#[test]
fn committed_crd_matches_the_types() {
    let path = workspace_file(CRD_FILE);
    let committed =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        committed == crd_yaml(),
        "{CRD_FILE} is out of date with the Rust types; regenerate it with\n  \
         cargo run -p stv3-operator --bin crdgen > {CRD_FILE}"
    );
}

#[test]
fn crd_fits_the_last_applied_annotation() {
    // `kubectl apply` (client side) stores the whole object in an annotation capped at
    // 262,144 bytes; stay well under it.
    let len = crd_yaml().len();
    assert!(len < 262_144, "the CRD is {len} bytes");
    let json = serde_json::to_string(&StackTachRegion::crd())
        .unwrap()
        .len();
    assert!(json < 200_000, "the CRD is {json} bytes as JSON");
}

#[test]
fn crd_identity() {
    let crd = StackTachRegion::crd();
    assert_eq!(
        crd.metadata.name.as_deref(),
        Some("stacktachregions.stacktach.io")
    );
    assert_eq!(crd.spec.scope, "Namespaced");
    let v = &crd.spec.versions[0];
    assert_eq!(v.name, "v1alpha1");
    assert!(v.subresources.as_ref().unwrap().status.is_some());
    let columns: Vec<_> = v
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(columns, ["Cells", "Ready", "Age"]);
}

/// Every property in the schema (outside the k8s-openapi types, which carry their
/// own) has a description, so `kubectl explain` helps.
#[test]
fn every_field_has_a_description() {
    let crd = serde_json::to_value(StackTachRegion::crd()).unwrap();
    let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    let mut missing = Vec::new();
    walk(&schema["properties"]["spec"], "spec", &mut missing);
    walk(&schema["properties"]["status"], "status", &mut missing);
    assert!(
        missing.is_empty(),
        "fields without a description: {missing:?}"
    );

    fn walk(node: &serde_json::Value, path: &str, missing: &mut Vec<String>) {
        if node
            .get("description")
            .and_then(|d| d.as_str())
            .unwrap_or("")
            .is_empty()
        {
            missing.push(path.to_string());
        }
        if let Some(props) = node.get("properties").and_then(|p| p.as_object()) {
            for (k, v) in props {
                walk(v, &format!("{path}.{k}"), missing);
            }
        }
        if let Some(items) = node.get("items") {
            if items.get("properties").is_some() {
                walk_props(items, path, missing);
            }
        }
    }
    fn walk_props(node: &serde_json::Value, path: &str, missing: &mut Vec<String>) {
        for (k, v) in node["properties"].as_object().unwrap() {
            walk(v, &format!("{path}[].{k}"), missing);
        }
    }
}

fn example(name: &str) -> StackTachRegion {
    let path = workspace_file(&format!("examples/{name}"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn minimal_example_is_one_cell_with_a_managed_database() {
    let region = example("region-minimal.yaml");
    let spec: &StackTachRegionSpec = &region.spec;
    assert_eq!(spec.cells.len(), 1);
    assert_eq!(spec.cells[0].yagi_replicas, 1, "the default");
    assert_eq!(spec.cells[0].queues.len(), 1, "the default queue");
    assert!(spec.database.managed.is_some() && spec.database.external.is_none());
}

#[test]
fn multicell_example_is_three_cells_with_an_external_database() {
    let region = example("region-multicell.yaml");
    let names: Vec<_> = region.spec.cells.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names.len(), 3);
    assert!(region.spec.database.external.is_some() && region.spec.database.managed.is_none());
    assert!(region.spec.pipeline_workers.min_replicas <= region.spec.pipeline_workers.max_replicas);
}

#[cfg(feature = "config-check")]
#[test]
fn multicell_example_inline_config_passes_the_worker_parsers() {
    let region = example("region-multicell.yaml");
    let inline =
        |s: &Option<operator::crd::ConfigSource>| s.as_ref().and_then(|s| s.inline.clone());
    let files = operator::config_check::ConfigFiles {
        event_definitions: inline(&region.spec.config.event_definitions),
        triggers: inline(&region.spec.config.triggers),
        pipelines: inline(&region.spec.config.pipelines),
    };
    assert!(files.triggers.is_some() && files.pipelines.is_some());
    operator::config_check::check(&files).unwrap();
}
