#!/usr/bin/env bash
# StackTach.v3 sandbox, tests and packaging, after the original sandbox's build.sh.
#
#   ./build.sh            run the system (the sandbox, on the embedded default) and serve
#                         the API on 127.0.0.1:8000 (STV3_API_LISTEN to change it);
#                         options: --reset, --amqp [URL], --database URL|mysql, --rate N,
#                         --seconds N (see ./target/release/stv3 sandbox --help)
#   ./build.sh -t         install and start what the tests need, then run them all
#   ./build.sh -t --no-e2e  the same without the Kubernetes end-to-end tests (local use only;
#                           CI never skips them)
#   ./build.sh -p         build release binaries and package them under dist/, and the
#                         two images as OCI archives under dist/images/ (no daemon)
#   ./build.sh -h         this help
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$ROOT"

usage() {
  sed -n '2,14p' "$0" | grep -v '^set ' | sed 's/^# \{0,1\}//'
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
  # Services only when asked for: the default sandbox needs nothing installed.
  local args=() want_amqp=0 want_mysql=0 reset=0 url="sqlite://data/winchester.db"
  local listen="${STV3_API_LISTEN:-127.0.0.1:8000}"
  while [ $# -gt 0 ]; do
    case "$1" in
      # Cleared here, before the API opens the database, not by the sandbox.
      --reset) reset=1 ;;
      --amqp) want_amqp=1; args+=("$1")
        if [ $# -gt 1 ] && [[ "$2" == amqp* ]]; then args+=("$2"); shift; fi ;;
      --database)
        [ $# -gt 1 ] || { echo "build.sh: --database needs a URL (or 'mysql')" >&2; exit 2; }
        if [ "$2" = mysql ]; then url="mysql://stv3:stv3@127.0.0.1:3306/stv3_sandbox"; else url="$2"; fi
        args+=("--database" "$url")
        [[ "$2" == mysql* ]] && want_mysql=1
        shift ;;
      *) args+=("$1") ;;
    esac
    shift
  done
  [ "$want_amqp" -eq 0 ] || scripts/services.sh up rabbitmq
  [ "$want_mysql" -eq 0 ] || scripts/services.sh up mariadb
  log "building"
  cargo build --release -p stv3-worker -p stv3-api -p klugman --bins
  if [ "$reset" -eq 1 ]; then log "clearing data/"; rm -rf data; fi
  mkdir -p data
  # The schema first, so the API can serve the database before the sandbox writes to it.
  ./target/release/stv3 db upgrade --database "$url" >/dev/null
  # The REST API over the sandbox's database, as the original sandbox served quincy.
  log "starting the API on http://$listen (logs in data/api.log)"
  ./target/release/stv3-api --config etc/winchester.yaml --database "$url" \
    --listen "$listen" >data/api.log 2>&1 &
  API_PID=$!  # global: the EXIT trap runs after this function's locals are gone
  trap 'kill "$API_PID" 2>/dev/null || true; wait "$API_PID" 2>/dev/null || true' EXIT
  local tries=0
  # Bash's /dev/tcp rather than curl: nothing more to install.
  until (exec 3<>"/dev/tcp/${listen%:*}/${listen##*:}") 2>/dev/null; do
    tries=$((tries + 1))
    if ! kill -0 "$API_PID" 2>/dev/null || [ "$tries" -gt 50 ]; then
      echo "build.sh: the API did not start (see data/api.log); set STV3_API_LISTEN to use another address" >&2
      tail -n 5 data/api.log >&2 || true
      exit 1
    fi
    sleep 0.2
  done
  log "starting the sandbox (Ctrl-C stops it; logs in data/sandbox.log)"
  echo "console: http://$listen/ui/   try: ./target/release/klugman http://$listen streams --state completed" >&2
  ./target/release/stv3 sandbox "${args[@]}" --api-url "http://$listen"
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
  # A test run builds each crate once: incremental state would add gigabytes to target/
  # and save nothing (set CARGO_INCREMENTAL=1 to keep it when iterating locally).
  export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
  check_disk
  log "services (MariaDB, RabbitMQ)"
  scripts/services.sh up
  # The URLs the integration tests read.
  set -a
  eval "$(scripts/services.sh env)"
  set +a

  # Python tools the API's tests run: the original klugman (compared with ours) and
  # schemathesis (the fuzzing pass), in venvs under ~/.cache/stv3 (idempotent).
  log "python tools (original klugman, schemathesis)"
  scripts/python-tools.sh >/dev/null

  # The alert rules (charts/stacktach-operator/files/alerts.yaml) checked and unit-tested
  # by promtool, built from the Go module proxy once (e2e/promtool/build.sh, cached).
  command -v go >/dev/null 2>&1 || export PATH="$PATH:/usr/local/go/bin"
  log "alert rules (promtool check rules, promtool test rules)"
  local promtool
  promtool=$(e2e/promtool/build.sh)
  "$promtool" check rules charts/stacktach-operator/files/alerts.yaml
  "$promtool" test rules e2e/promtool/alerts_test.yaml

  # Headless Chromium and chromedriver for the console's browser tests
  # (api/tests/console_browser.rs), from Debian's packages (idempotent).
  log "chromium and chromedriver for the console's browser tests"
  STV3_CHROMEDRIVER=$(scripts/browser.sh)
  export STV3_CHROMEDRIVER

  # The S3-compatible server the backup upload tests talk to (worker/tests/backup_s3.rs):
  # the Versity S3 Gateway, built from the Go module proxy once (e2e/s3gw/build.sh, cached).
  log "S3 gateway for the backup tests (versitygw)"
  STV3_S3GW=$(e2e/s3gw/build.sh)
  export STV3_S3GW

  log "cargo fmt --check"
  cargo fmt --all --check
  log "cargo clippy"
  cargo clippy --workspace --all-targets -- -D warnings
  log "cargo test"
  cargo test --workspace
  log "API fuzzing (schemathesis against /openapi.json)"
  api/fuzz/schemathesis.sh
  if [ "$e2e" -eq 0 ]; then
    log "skipping end-to-end tests (--no-e2e)"
  else
    run_e2e
  fi
}

# A cold run needs about 12 GB of build output (target/, the Go build cache, image
# layers); a full disk shows up much later as a linker's "Bus error". Say it first.
check_disk() {
  local dir="${CARGO_TARGET_DIR:-$ROOT/target}" avail_kb
  mkdir -p "$dir"
  avail_kb=$(df -Pk "$dir" | awk 'NR == 2 { print $4 }')
  if [ -n "$avail_kb" ] && [ "$avail_kb" -lt $((12 * 1024 * 1024)) ]; then
    echo "build.sh: warning: only $((avail_kb / 1024)) MB free under $dir; a cold test run needs about 12 GB" >&2
  fi
}

# The Kubernetes end-to-end tests: control-plane and node binaries built from Go modules
# (once, then cached outside the repo), the product's images (as ./build.sh -p makes
# them) and the tests' own images, three up/down cycles that must leave nothing behind,
# then a cluster of plain processes with one real node, the e2e crate's tests, and the
# cluster stopped again even when they fail.
run_e2e() {
  command -v go >/dev/null 2>&1 || export PATH="$PATH:/usr/local/go/bin"
  command -v go >/dev/null 2>&1 || { echo "build.sh: Go is needed to build the test control plane" >&2; exit 1; }
  log "e2e: control-plane and node binaries (built once, then cached)"
  e2e/cluster/build-bins.sh
  log "e2e: the product's images (release binaries, scripts/images.sh)"
  build_images
  # The chaos soak: the release yagi-event and pipeline workers over the host's
  # MariaDB and RabbitMQ, SIGKILLed, restarted, the services restarted and grants
  # revoked on a schedule from the seed; exits non-zero unless nothing was lost or
  # done twice (docs/benchmarks.md has the full-size run).
  # (The binary build_images just made: `cargo run -p stv3-e2e` would resolve the
  # workspace's features for that package alone and rebuild the workers.)
  log "chaos soak (20,000 notifications, seed 7)"
  "${CARGO_TARGET_DIR:-target}/release/soak" --notifications 20000 --seed 7
  log "e2e: the tests' images (e2e/images/build.sh: pause, MariaDB, RabbitMQ; cached)"
  e2e/images/build.sh
  trap 'log "e2e: stopping the control plane"; e2e/cluster/down.sh || true' EXIT
  # A cluster left over from an interrupted run would fail the cycle test's first check.
  e2e/cluster/down.sh >/dev/null 2>&1 || true
  log "e2e: three up/down cycles leave nothing behind"
  e2e/cluster/cycle-test.sh 3
  log "e2e: starting the control plane"
  e2e/cluster/up.sh
  log "e2e: cargo test -p stv3-e2e"
  STV3_E2E_KUBECONFIG="$ROOT/e2e/cluster/.state/kubeconfig" \
    cargo test -p stv3-e2e -- --include-ignored
}

# Release binaries and the two OCI image archives in dist/images/ (scripts/images.sh).
build_images() {
  log "building release binaries"
  cargo build --release --workspace --bins
  log "building the images (buildah, no daemon, nothing pulled)"
  scripts/images.sh
}

package() {
  ensure_rust
  build_images
  local version dist
  version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
  dist=dist/stv3-$version-$(uname -m)-linux
  rm -rf "$dist"
  mkdir -p "$dist/bin"
  for bin in stv3 yagi-event pipeline-worker stv3-api klugman stv3-operator crdgen; do
    cp "target/release/$bin" "$dist/bin/"
  done
  cp -r etc README.md "$dist/"
  tar -C dist -czf "$dist.tar.gz" "$(basename "$dist")"
  log "packaged $dist.tar.gz"
}

case "${1:-}" in
  "" | --*) [ "${1:-}" != "--help" ] || { usage; exit 0; }; run_sandbox "$@" ;;
  -t) shift; run_tests "$@" ;;
  -p) package ;;
  -h | --help) usage ;;
  *) echo "build.sh: unknown option: $1" >&2; usage >&2; exit 2 ;;
esac
