#!/usr/bin/env bash
# Checks that up.sh and down.sh leave this machine as they found it: takes a snapshot of
# what they touch (processes, mounts, cgroups, links, network namespaces, routes,
# iptables and nft rules, sysctls, listening sockets), runs N up/down cycles (default
# 3), and compares. Exits 1 with the difference when anything is left behind. The
# cluster must be down when it starts.
#
#   e2e/cluster/cycle-test.sh [N]
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CYCLES=${1:-3}
OUT="$STATE_DIR/cycle-test"
mkdir -p "$OUT"

# The processes up.sh starts, by executable name.
OURS='^(etcd|kube-apiserver|kube-controller-manager|kube-scheduler|kwok|kubelet|kube-proxy|coredns|metrics-server|containerd|containerd-shim.*|socat|runc|pause)$'

snapshot() {
  # Each probe may find nothing (grep exits 1): that is a finding, not a failure.
  (
  set +e +o pipefail
  {
    echo "## processes"
    for p in /proc/[0-9]*; do
      local exe
      exe=$(readlink "$p/exe" 2>/dev/null) || continue
      exe=${exe##*/}
      [[ $exe =~ $OURS ]] && echo "$exe"
    done | sort
    echo "## mounts"
    awk '{ print $2, $3 }' /proc/self/mounts | sort
    echo "## cgroups"
    find /sys/fs/cgroup -mindepth 1 -maxdepth 3 -type d \( -name 'kubepods*' -o -name k8s.io -o -name 'stv3*' \) 2>/dev/null | sort
    echo "## links"
    ip -o link show | awk -F': ' '{ print $2 }' | sed 's/@.*//' | sort
    echo "## netns"
    ls /run/netns 2>/dev/null | sort || true
    echo "## routes"
    ip route show table all 2>/dev/null | grep -v '^local\|^broadcast' | sort
    echo "## iptables"
    iptables-save 2>/dev/null | grep -v '^#' | sed 's/\[[0-9]*:[0-9]*\]//' | sort
    echo "## ip6tables"
    ip6tables-save 2>/dev/null | grep -v '^#' | sed 's/\[[0-9]*:[0-9]*\]//' | sort
    echo "## nft tables"
    nft list tables 2>/dev/null | sort || true
    echo "## sysctls"
    sysctl vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops \
      kernel.keys.root_maxkeys kernel.keys.root_maxbytes net.ipv4.ip_forward \
      net.ipv4.conf.all.forwarding net.ipv4.conf.all.route_localnet \
      net.bridge.bridge-nf-call-iptables 2>/dev/null
    echo "## listening"
    ss -Hltnu 2>/dev/null | awk '{ print $1, $5 }' | grep -E ":(2[0-9]{4}|53)$" | sort -u
    echo "## files"
    ls -d /run/containerd 2>/dev/null
  } >"$1"
  exit 0
  )
}

if compgen -G "$PID_DIR/*.pid" >/dev/null; then
  die "the cluster is up (pids in $PID_DIR): stop it with down.sh before the cycle test"
fi
snapshot "$OUT/before"
for ((i = 1; i <= CYCLES; i++)); do
  log "cycle $i/$CYCLES: up"
  "$CLUSTER_DIR/up.sh" >"$OUT/up-$i.log" 2>&1 || { tail -n 30 "$OUT/up-$i.log" >&2; die "up.sh failed in cycle $i (log: $OUT/up-$i.log)"; }
  snapshot "$OUT/up-$i"
  log "cycle $i/$CYCLES: down"
  "$CLUSTER_DIR/down.sh" >"$OUT/down-$i.log" 2>&1 || { tail -n 30 "$OUT/down-$i.log" >&2; die "down.sh failed in cycle $i (log: $OUT/down-$i.log)"; }
  snapshot "$OUT/after-$i"
done
# The cycles did something: while up, the node's bridge and processes were there.
grep -qx "$NODE_BRIDGE" "$OUT/up-1" || ((WITH_NODE == 0)) || die "up.sh made no bridge $NODE_BRIDGE: the snapshot sees nothing"
grep -qx kubelet "$OUT/up-1" || ((WITH_NODE == 0)) || die "no kubelet while up: the snapshot sees nothing"
if ! diff -u "$OUT/before" "$OUT/after-$CYCLES" >"$OUT/diff"; then
  cat "$OUT/diff" >&2
  die "$CYCLES up/down cycles left something behind (above; snapshots in $OUT)"
fi
log "$CYCLES up/down cycles left nothing behind"
