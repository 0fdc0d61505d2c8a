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
KUBECONFIG_PATH="$STATE_DIR/kubeconfig"

# The real node (node.sh): a bridge of its own with the node's address, pods on it.
NODE_NAME=stv3-node-0
NODE_BRIDGE=stv3br0
NODE_IP=10.88.77.1
NODE_CIDR=10.88.77.0/24
POD_RANGE_START=10.88.77.10
POD_RANGE_END=10.88.77.250
CLUSTER_DNS_IP=10.96.0.10
# The node's taint (beside kwok's fake node) and label: pods meant for it tolerate the
# one and select the other.
NODE_TAINT_KEY=stv3.io/real-node
STORAGE_CLASS=stv3-local
PAUSE_IMAGE=localhost/stv3-e2e/pause:test
KUBELET_PORT=26250
KUBELET_HEALTHZ_PORT=26248
PROXY_HEALTHZ_PORT=26256
PROXY_METRICS_PORT=26249
DNS_HEALTH_PORT=26281
DNS_READY_PORT=26282
METRICS_SERVER_PORT=26450
# Set STV3_E2E_NO_NODE=1 for a control plane without the real node (no root needed).
WITH_NODE=1
[[ ${STV3_E2E_NO_NODE:-0} == 1 ]] && WITH_NODE=0

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
COREDNS_VERSION="$(gomod_version "$CLUSTER_DIR/coredns/go.mod" github.com/coredns/coredns)"
METRICS_SERVER_VERSION="$(gomod_version "$CLUSTER_DIR/metrics-server/go.mod" sigs.k8s.io/metrics-server)"

go_version() { go env GOVERSION 2>/dev/null || echo nogo; }

# The cache directory for this exact set of versions (and Go toolchain).
bin_dir() {
  local key
  key="k8s-${K8S_VERSION}_etcd-${ETCD_VERSION}_helm-${HELM_VERSION}_kwok-${KWOK_VERSION}_dns-${COREDNS_VERSION}_ms-${METRICS_SERVER_VERSION}_$(go_version)"
  echo "${STV3_E2E_BIN_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/stv3/e2e-bin/$key}"
}

# pid_alive NAME -> 0 when the process recorded in pids/NAME.pid is running.
pid_alive() {
  local f="$PID_DIR/$1.pid" pid exe="$1"
  [[ -f $f ]] || return 1
  pid="$(cat "$f")"
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 1
  # A process started from a system binary (containerd, socat) records its name.
  [[ -f $PID_DIR/$1.exe ]] && exe="$(cat "$PID_DIR/$1.exe")"
  # Guard against a recycled PID: the process must still be our binary.
  [[ "$(readlink "/proc/$pid/exe" 2>/dev/null)" == */"$exe" ]]
}

