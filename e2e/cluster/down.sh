#!/usr/bin/env bash
# Stops the test control plane started by up.sh, by PID: TERM, then KILL after a timeout.
# Fine when nothing runs. Keeps logs (.state/logs) and certs (.state/pki); removes etcd's
# data so the next up.sh starts from an empty cluster. The real node goes first, and
# with it everything up.sh made on this machine (node.sh's node_down: processes,
# containers, mounts, cgroups, the bridge, network namespaces, iptables rules, sysctls).
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=node.sh
source "$CLUSTER_DIR/node.sh"
BIN_DIR="$(cat "$STATE_DIR/bin-dir" 2>/dev/null || true)"

GRACE="${STV3_E2E_STOP_TIMEOUT:-15}"
stopped=()

# stop_group NAME... : TERM the running ones together, wait, KILL what is left.
stop_group() {
  local name pid t0=$SECONDS deadline=$((SECONDS + GRACE)) live=() pids=()
  for name in "$@"; do
    if pid_alive "$name"; then
      pid="$(cat "$PID_DIR/$name.pid")"
      kill -TERM "$pid" 2>/dev/null || true
      live+=("$name")
      pids+=("$pid")
    fi
  done
  local i alive=1
  while ((alive)) && ((SECONDS < deadline)); do
    alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    ((alive)) && sleep 0.2
  done
  for i in "${!pids[@]}"; do
    if kill -0 "${pids[i]}" 2>/dev/null; then
      log "${live[i]} (pid ${pids[i]}) did not stop in ${GRACE}s: KILL"
      kill -KILL "${pids[i]}" 2>/dev/null || true
    fi
  done
  for name in "$@"; do rm -f "$PID_DIR/$name.pid" "$PID_DIR/$name.exe"; done
  if ((${#live[@]})); then
    log "stopped ${live[*]} in $((SECONDS - t0))s"
    stopped+=("${live[@]}")
  fi
}

# The real node (its pods are deleted through the API, so it goes before the apiserver).
node_down
# Clients of the apiserver first (together), then the apiserver, then etcd.
stop_group kwok kube-scheduler kube-controller-manager
stop_group kube-apiserver
stop_group etcd
rm -rf "$STATE_DIR/etcd-data"
if ((${#stopped[@]})); then
  log "stopped: ${stopped[*]} (logs kept in $LOG_DIR)"
else
  log "nothing was running"
fi
