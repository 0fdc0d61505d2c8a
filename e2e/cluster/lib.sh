# Shared helpers for build-bins.sh, up.sh and down.sh. Source it; do not run it.
# shellcheck shell=bash
# Variables here are used by the scripts that source this file.
# shellcheck disable=SC2034

CLUSTER_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STATE_DIR="${STV3_E2E_STATE_DIR:-$CLUSTER_DIR/.state}"
LOG_DIR="$STATE_DIR/logs"
PKI_DIR="$STATE_DIR/pki"
PID_DIR="$STATE_DIR/pids"

# Fixed, uncommon loopback ports (documented in docs/testing.md).
ETCD_CLIENT_PORT="${STV3_E2E_ETCD_CLIENT_PORT:-23791}"
ETCD_PEER_PORT="${STV3_E2E_ETCD_PEER_PORT:-23801}"
APISERVER_PORT="${STV3_E2E_APISERVER_PORT:-26443}"
KCM_PORT="${STV3_E2E_KCM_PORT:-26257}"
SCHED_PORT="${STV3_E2E_SCHED_PORT:-26259}"
KWOK_PORT="${STV3_E2E_KWOK_PORT:-26280}"
SERVICE_CIDR="10.96.0.0/16"
FIRST_SERVICE_IP="10.96.0.1"

log() { printf '[e2e-cluster] %s\n' "$*" >&2; }
die() { printf '[e2e-cluster] ERROR: %s\n' "$*" >&2; exit 1; }

# gomod_version FILE MODULE -> the version that FILE requires for MODULE.
gomod_version() {
  awk -v m="$2" '$1 == m { print $2; exit } $1 == "require" && $2 == m { print $3; exit }' "$1"
}

K8S_VERSION="$(gomod_version "$CLUSTER_DIR/go.mod" k8s.io/kubernetes)"
ETCD_VERSION="$(gomod_version "$CLUSTER_DIR/etcd/go.mod" go.etcd.io/etcd/server/v3)"
HELM_VERSION="$(gomod_version "$CLUSTER_DIR/helm/go.mod" helm.sh/helm/v3)"
KWOK_VERSION="$(gomod_version "$CLUSTER_DIR/kwok/go.mod" sigs.k8s.io/kwok)"

go_version() { go env GOVERSION 2>/dev/null || echo nogo; }

# The cache directory for this exact set of versions (and Go toolchain).
bin_dir() {
  local key
  key="k8s-${K8S_VERSION}_etcd-${ETCD_VERSION}_helm-${HELM_VERSION}_kwok-${KWOK_VERSION}_$(go_version)"
  echo "${STV3_E2E_BIN_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/stv3/e2e-bin/$key}"
}

# pid_alive NAME -> 0 when the process recorded in pids/NAME.pid is running.
pid_alive() {
  local f="$PID_DIR/$1.pid" pid
  [[ -f $f ]] || return 1
  pid="$(cat "$f")"
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 1
  # Guard against a recycled PID: the process must still be our binary.
  [[ "$(readlink "/proc/$pid/exe" 2>/dev/null)" == */"$1" ]]
}

