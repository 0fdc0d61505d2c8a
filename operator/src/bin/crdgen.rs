//! Prints the `StackTachRegion` CRD as YAML: `cargo run -p stv3-operator --bin crdgen >
//! crds/stacktach.io_stacktachregions.yaml`.

fn main() {
    print!("{}", operator::crd_yaml());
}
