#!/usr/bin/env bash
# StackTach.v3 sandbox, tests and packaging, after the original sandbox's build.sh.
#
#   ./build.sh            run the system (the sandbox, on the embedded default)
#   ./build.sh -t         install and start what the tests need, then run them all
#   ./build.sh -t --no-e2e  the same without the Kubernetes end-to-end tests (local use only)
#   ./build.sh -p         build release binaries and package them under dist/
#   ./build.sh -h         this help
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$ROOT"

usage() {
  sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
}

log() { printf '\n==> %s\n' "$*" >&2; }

ensure_rust() {
  command -v cargo >/dev/null 2>&1 || {
    echo "build.sh: cargo is not installed; install Rust (rustup) first" >&2
    exit 1
  }
  # rustfmt and clippy are part of the checks; add them when the toolchain lacks them.
  if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
    command -v rustup >/dev/null 2>&1 || { echo "build.sh: rustfmt/clippy missing and no rustup" >&2; exit 1; }
    rustup component add rustfmt clippy
  fi
}

run_sandbox() {
  ensure_rust
  log "building stv3"
  cargo build --release -p stv3-worker --bin stv3
  local sample=etc/sample-notifications.jsonl
  log "distilling $sample with etc/event_definitions.yaml"
  # Until the ingest pipeline lands, the sandbox shows the engine's first step:
  # every bundled notification distilled into its event.
  ./target/release/stv3 distill --definitions etc/event_definitions.yaml "$sample"
  log "done: $(wc -l <"$sample") notifications distilled. Try: ./target/release/stv3 timex '\$timestamp + 2d' --var timestamp=2015-02-27T15:27:18Z"
}

run_tests() {
  local e2e=1
  for arg in "$@"; do
    case "$arg" in
      --no-e2e) e2e=0 ;;
      *) echo "build.sh: unknown test option: $arg" >&2; usage >&2; exit 2 ;;
    esac
  done
  ensure_rust
  log "services (MariaDB, RabbitMQ)"
  scripts/services.sh up
  # The URLs the integration tests read.
  set -a
  eval "$(scripts/services.sh env)"
  set +a

  log "cargo fmt --check"
  cargo fmt --all --check
  log "cargo clippy"
  cargo clippy --workspace --all-targets -- -D warnings
  log "cargo test"
  cargo test --workspace
  if [ "$e2e" -eq 0 ]; then
    log "skipping end-to-end tests (--no-e2e)"
  fi
}

package() {
  ensure_rust
  log "building release binaries"
  cargo build --release --workspace --bins
  local version dist
  version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
  dist=dist/stv3-$version-$(uname -m)-linux
  rm -rf "$dist"
  mkdir -p "$dist/bin"
  find target/release -maxdepth 1 -type f -perm -u+x -name 'stv3*' -exec cp {} "$dist/bin/" \;
  cp -r etc README.md "$dist/"
  tar -C dist -czf "$dist.tar.gz" "$(basename "$dist")"
  log "packaged $dist.tar.gz"
}

case "${1:-}" in
  "") run_sandbox ;;
  -t) shift; run_tests "$@" ;;
  -p) package ;;
  -h | --help) usage ;;
  *) echo "build.sh: unknown option: $1" >&2; usage >&2; exit 2 ;;
esac
