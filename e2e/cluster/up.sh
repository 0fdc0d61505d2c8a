#!/usr/bin/env bash
# Starts the test control plane on loopback as plain processes: etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler and (if built) kwok with one fake node; and
# beside it one real node, stv3-node-0 (node.sh: containerd, kubelet, kube-proxy,
# CoreDNS, metrics-server, local volumes), which needs root. STV3_E2E_NO_NODE=1 leaves
# the real node out. With the real node and kwok both there, the real node is tainted
# (stv3.io/real-node): pods meant for it tolerate that and select the same label.
# Binaries come from build-bins.sh's cache. State (certs, kubeconfig, pids, logs, etcd
# data) lives in e2e/cluster/.state/ (git-ignored). Waits for /readyz, then prints
#   KUBECONFIG=<abs path>
# as its last line. Running it while the cluster is up is a no-op; a half-running
# cluster is stopped (down.sh) and started again.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=node.sh
source "$CLUSTER_DIR/node.sh"

START=$SECONDS
API_URL="https://127.0.0.1:$APISERVER_PORT"
TIMEOUT="${STV3_E2E_START_TIMEOUT:-120}"
# The node's address when there is one (a relay on it reaches the API server: the
# "kubernetes" Service's endpoint for in-cluster clients), else loopback.
ADVERTISE_ADDRESS=127.0.0.1
if ((WITH_NODE)); then ADVERTISE_ADDRESS=$NODE_IP; fi
# Scale-down waits this long after load falls (Kubernetes' default is 5 minutes; the
# tests watch a backlog drain and the workers shrink again).
HPA_DOWNSCALE_STABILIZATION="${STV3_E2E_HPA_DOWNSCALE_STABILIZATION:-30s}"

if [[ -n ${STV3_E2E_BIN_DIR:-} ]] || command -v go >/dev/null; then
  BIN_DIR="$(bin_dir)"
elif [[ -f $STATE_DIR/bin-dir ]]; then
  BIN_DIR="$(cat "$STATE_DIR/bin-dir")" # no Go here: reuse the last bin dir
else
  die "no go on PATH and no $STATE_DIR/bin-dir: run e2e/cluster/build-bins.sh first"
fi
for b in etcd kube-apiserver kube-controller-manager kube-scheduler helm; do
  [[ -x $BIN_DIR/$b ]] || die "$BIN_DIR/$b is missing: run e2e/cluster/build-bins.sh first"
done
WITH_KWOK=0
if [[ -x $BIN_DIR/kwok && -f $BIN_DIR/kwok-stages.yaml && ${STV3_E2E_NO_KWOK:-0} != 1 ]]; then WITH_KWOK=1; fi

ensure_tools() {
  local missing=()
  command -v openssl >/dev/null || missing+=(openssl)
  command -v curl >/dev/null || missing+=(curl)
  if ((${#missing[@]})); then
    log "installing ${missing[*]} with apt-get"
    command -v apt-get >/dev/null || die "need ${missing[*]} and there is no apt-get"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; } >&2 \
      || die "apt-get install ${missing[*]} failed"
  fi
}

# curl against the apiserver with the admin client certificate.
api_curl() {
  curl -sS --max-time 5 --cacert "$PKI_DIR/ca.crt" --cert "$PKI_DIR/admin.crt" \
    --key "$PKI_DIR/admin.key" "$@"
}

readyz_ok() { [[ "$(api_curl "$API_URL/readyz" 2>/dev/null)" == ok ]]; }

all_running() {
  local c
  for c in etcd kube-apiserver kube-controller-manager kube-scheduler; do pid_alive "$c" || return 1; done
  if ((WITH_KWOK)); then pid_alive kwok || return 1; fi
  if ((WITH_NODE)); then
    for c in containerd kubelet kube-proxy coredns metrics-server apiserver-relay; do pid_alive "$c" || return 1; done
  fi
  readyz_ok
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# ---------------------------------------------------------------- already up?
ensure_tools
if ((WITH_NODE)); then node_ensure_tools; fi
mkdir -p "$STATE_DIR" "$LOG_DIR" "$PID_DIR"
echo "$BIN_DIR" >"$STATE_DIR/bin-dir"
if all_running; then
  log "already running (pids in $PID_DIR); nothing to do"
  echo "KUBECONFIG=$KUBECONFIG_PATH"
  exit 0
fi
if compgen -G "$PID_DIR/*.pid" >/dev/null; then
  log "found a partly running or stale cluster: stopping it first"
  "$CLUSTER_DIR/down.sh" >&2
fi
# From here on, a failure stops whatever this run started (logs are kept).
trap 'rc=$?; if ((rc != 0)); then log "up.sh failed: stopping what it started"; "$CLUSTER_DIR/down.sh" >&2 || true; fi' EXIT
for p in "$ETCD_CLIENT_PORT" "$ETCD_PEER_PORT" "$APISERVER_PORT" "$KCM_PORT" "$SCHED_PORT" "$KWOK_PORT" \
  "$KUBELET_HEALTHZ_PORT" "$PROXY_HEALTHZ_PORT" "$PROXY_METRICS_PORT" "$DNS_HEALTH_PORT" "$DNS_READY_PORT"; do
  port_busy "$p" && die "port 127.0.0.1:$p is in use by a process this script did not start (see ss -ltnp)"
done

# ---------------------------------------------------------------- PKI (once)
gen_pki() {
  local d="$PKI_DIR"
  mkdir -p "$d"
  log "generating CA, serving, client and service-account keys in $d"
  (
    cd "$d"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 \
      -subj "/CN=stv3-e2e-ca" -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature"
    # client_cert NAME SUBJECT
    cat >serving.ext <<EOF
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:$FIRST_SERVICE_IP,IP:$NODE_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local
EOF
    cat >client.ext <<EOF
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth
EOF
    sign() { # NAME SUBJECT EXTFILE
      openssl req -new -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2"
      openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -out "$1.crt" \
        -days 3650 -extfile "$3"
      rm -f "$1.csr"
    }
    sign apiserver "/CN=kube-apiserver" serving.ext
    sign admin "/O=system:masters/CN=stv3-e2e-admin" client.ext
    sign kube-controller-manager "/CN=system:kube-controller-manager" client.ext
    sign kube-scheduler "/CN=system:kube-scheduler" client.ext
    # The real node (node.sh): kubelet's client and serving certificates, the API
    # server's client for kubelet (logs, exec), the add-ons' identities, and the
    # aggregation layer's front proxy (metrics.k8s.io).
    serving_ext() { # SUBJECT-ALT-NAMES
      printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
        "extendedKeyUsage=serverAuth" "subjectAltName=$1"
    }
    serving_ext "IP:$NODE_IP,DNS:$NODE_NAME" >kubelet-serving.ext
    serving_ext "IP:$NODE_IP,DNS:metrics-server.kube-system.svc" >metrics-server-serving.ext
    sign kubelet "/O=system:nodes/CN=system:node:$NODE_NAME" client.ext
    sign kubelet-serving "/CN=system:node:$NODE_NAME" kubelet-serving.ext
    sign kube-proxy "/CN=system:kube-proxy" client.ext
    sign apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" client.ext
    sign coredns "/CN=system:coredns" client.ext
    sign metrics-server "/CN=system:metrics-server" client.ext
    sign metrics-server-serving "/CN=metrics-server" metrics-server-serving.ext
    sign front-proxy-client "/CN=front-proxy-client" client.ext
    openssl genrsa -out sa.key 2048
    openssl rsa -in sa.key -pubout -out sa.pub
    chmod 600 ./*.key
  ) >"$LOG_DIR/pki.log" 2>&1 || die "openssl failed; see $LOG_DIR/pki.log"
}
# The last file gen_pki writes: an older .state/pki (without it) is made again.
[[ -f $PKI_DIR/sa.pub && -f $PKI_DIR/front-proxy-client.crt ]] || gen_pki

# write_kubeconfig FILE CERTNAME
write_kubeconfig() {
  local b64='base64 -w0'
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: stv3-e2e
  cluster:
    server: $API_URL
    certificate-authority-data: $($b64 <"$PKI_DIR/ca.crt")
users:
- name: $2
  user:
    client-certificate-data: $($b64 <"$PKI_DIR/$2.crt")
    client-key-data: $($b64 <"$PKI_DIR/$2.key")
contexts:
- name: stv3-e2e
  context:
    cluster: stv3-e2e
    user: $2
current-context: stv3-e2e
EOF
  chmod 600 "$1"
}
write_kubeconfig "$KUBECONFIG_PATH" admin
write_kubeconfig "$STATE_DIR/kube-controller-manager.kubeconfig" kube-controller-manager
write_kubeconfig "$STATE_DIR/kube-scheduler.kubeconfig" kube-scheduler
write_kubeconfig "$STATE_DIR/kubelet.kubeconfig" kubelet
write_kubeconfig "$STATE_DIR/kube-proxy.kubeconfig" kube-proxy
write_kubeconfig "$STATE_DIR/coredns.kubeconfig" coredns
write_kubeconfig "$STATE_DIR/metrics-server.kubeconfig" metrics-server

# ---------------------------------------------------------------- start
# start_exe NAME EXE ARGS... : detached (own session), logs to logs/NAME.log, pid to
# pids/NAME.pid (and the executable's name to pids/NAME.exe when it is not NAME).
start_exe() {
  local name="$1" exe="$2"; shift 2
  log "starting $name (log: $LOG_DIR/$name.log)"
  {
    echo "=== $(date -u +%FT%TZ) $exe $*"
  } >>"$LOG_DIR/$name.log"
  setsid "$exe" "$@" >>"$LOG_DIR/$name.log" 2>&1 </dev/null &
  local pid=$! i base="${exe##*/}"
  echo "$pid" >"$PID_DIR/$name.pid"
  if [[ $base != "$name" ]]; then echo "$base" >"$PID_DIR/$name.exe"; else rm -f "$PID_DIR/$name.exe"; fi
  # The pid is the forked shell until it execs the binary; wait for that, so that
  # pid_alive (which checks /proc/PID/exe) does not mistake the shell for a dead process.
  for ((i = 0; i < 100; i++)); do
    [[ "$(readlink "/proc/$pid/exe" 2>/dev/null)" == */"$base" ]] && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  pid_alive "$name" || die "$name did not start; see $LOG_DIR/$name.log"
}

# start NAME ARGS... : start_exe with the binary NAME from the bin dir.
start() {
  local name="$1"; shift
  start_exe "$name" "$BIN_DIR/$name" "$@"
}

# wait_for NAME DESCRIPTION COMMAND... : poll until COMMAND succeeds, the process dies, or timeout.
wait_for() {
  local name="$1" what="$2" deadline=$((SECONDS + TIMEOUT)); shift 2
  until "$@"; do
    if ! pid_alive "$name"; then
      tail -n 30 "$LOG_DIR/$name.log" >&2 || true
      die "$name exited while waiting for $what; see $LOG_DIR/$name.log"
    fi
    if ((SECONDS > deadline)); then
      tail -n 30 "$LOG_DIR/$name.log" >&2 || true
      die "timed out after ${TIMEOUT}s waiting for $what; see $LOG_DIR/$name.log"
    fi
    sleep 0.5
  done
  log "$what after $((SECONDS - START))s"
}

if ((WITH_NODE)); then node_network_up; fi
rm -rf "$STATE_DIR/etcd-data" # a fresh cluster every time
start etcd --name stv3-e2e --data-dir "$STATE_DIR/etcd-data" \
  --listen-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" \
  --advertise-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster "stv3-e2e=http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster-state new --unsafe-no-fsync --log-level warn
etcd_healthy() { curl -sS --max-time 2 "http://127.0.0.1:$ETCD_CLIENT_PORT/health" 2>/dev/null | grep -q '"health":"true"'; }
wait_for etcd "etcd healthy" etcd_healthy

start kube-apiserver \
  --etcd-servers "http://127.0.0.1:$ETCD_CLIENT_PORT" \
  --bind-address 127.0.0.1 --advertise-address "$ADVERTISE_ADDRESS" --secure-port "$APISERVER_PORT" \
  --cert-dir "$STATE_DIR/apiserver-certs" \
  --tls-cert-file "$PKI_DIR/apiserver.crt" --tls-private-key-file "$PKI_DIR/apiserver.key" \
  --client-ca-file "$PKI_DIR/ca.crt" \
  --service-account-issuer https://kubernetes.default.svc.cluster.local \
  --service-account-key-file "$PKI_DIR/sa.pub" \
  --service-account-signing-key-file "$PKI_DIR/sa.key" \
  --service-cluster-ip-range "$SERVICE_CIDR" \
  --authorization-mode Node,RBAC \
  --allow-privileged=true \
  --kubelet-preferred-address-types InternalIP \
  --kubelet-client-certificate "$PKI_DIR/apiserver-kubelet-client.crt" \
  --kubelet-client-key "$PKI_DIR/apiserver-kubelet-client.key" \
  --kubelet-certificate-authority "$PKI_DIR/ca.crt" \
  --requestheader-client-ca-file "$PKI_DIR/ca.crt" \
  --requestheader-allowed-names front-proxy-client \
  --requestheader-username-headers X-Remote-User \
  --requestheader-group-headers X-Remote-Group \
  --requestheader-extra-headers-prefix X-Remote-Extra- \
  --proxy-client-cert-file "$PKI_DIR/front-proxy-client.crt" \
  --proxy-client-key-file "$PKI_DIR/front-proxy-client.key" \
  --enable-aggregator-routing=true \
  --profiling=false
wait_for kube-apiserver "kube-apiserver /readyz ok" readyz_ok

start kube-controller-manager \
  --kubeconfig "$STATE_DIR/kube-controller-manager.kubeconfig" \
  --authentication-kubeconfig "$STATE_DIR/kube-controller-manager.kubeconfig" \
  --authorization-kubeconfig "$STATE_DIR/kube-controller-manager.kubeconfig" \
  --bind-address 127.0.0.1 --secure-port "$KCM_PORT" \
  --controllers '*' \
  --leader-elect=false \
  --use-service-account-credentials \
  --service-account-private-key-file "$PKI_DIR/sa.key" \
  --root-ca-file "$PKI_DIR/ca.crt" \
  --cluster-signing-cert-file "$PKI_DIR/ca.crt" --cluster-signing-key-file "$PKI_DIR/ca.key" \
  --horizontal-pod-autoscaler-sync-period 5s \
  --horizontal-pod-autoscaler-downscale-stabilization "$HPA_DOWNSCALE_STABILIZATION" \
  --profiling=false
kcm_healthy() { curl -sSk --max-time 2 "https://127.0.0.1:$KCM_PORT/healthz" 2>/dev/null | grep -qx ok; }
wait_for kube-controller-manager "kube-controller-manager healthy" kcm_healthy

start kube-scheduler \
  --kubeconfig "$STATE_DIR/kube-scheduler.kubeconfig" \
  --authentication-kubeconfig "$STATE_DIR/kube-scheduler.kubeconfig" \
  --authorization-kubeconfig "$STATE_DIR/kube-scheduler.kubeconfig" \
  --bind-address 127.0.0.1 --secure-port "$SCHED_PORT" \
  --leader-elect=false --profiling=false
sched_healthy() { curl -sSk --max-time 2 "https://127.0.0.1:$SCHED_PORT/healthz" 2>/dev/null | grep -qx ok; }
wait_for kube-scheduler "kube-scheduler healthy" sched_healthy

if ((WITH_KWOK)); then
  start kwok \
    --kubeconfig "$KUBECONFIG_PATH" \
    --config "$BIN_DIR/kwok-stages.yaml" \
    --manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake \
    --node-lease-duration-seconds 40 \
    --server-address "127.0.0.1:$KWOK_PORT" \
    --cidr 10.244.0.0/16 --node-ip 127.0.0.1
  kwok_healthy() { curl -sS --max-time 2 "http://127.0.0.1:$KWOK_PORT/healthz" 2>/dev/null | grep -qx ok; }
  wait_for kwok "kwok healthy" kwok_healthy
  # One fake node: kwok plays its kubelet, so scheduled pods become Running/Ready.
  api_curl -X POST -H 'Content-Type: application/json' "$API_URL/api/v1/nodes" -d @- \
    >"$LOG_DIR/kwok-node.json" 2>&1 <<'EOF' || die "creating the fake node failed; see $LOG_DIR/kwok-node.json"
{"apiVersion":"v1","kind":"Node","metadata":{"name":"kwok-node-0",
 "annotations":{"node.alpha.kubernetes.io/ttl":"0","kwok.x-k8s.io/node":"fake"},
 "labels":{"kubernetes.io/hostname":"kwok-node-0","kubernetes.io/os":"linux","kubernetes.io/arch":"amd64","type":"kwok"}},
 "status":{"allocatable":{"cpu":"32","memory":"256Gi","pods":"110"},
  "capacity":{"cpu":"32","memory":"256Gi","pods":"110"},
  "nodeInfo":{"architecture":"amd64","operatingSystem":"linux","kubeletVersion":"fake","kubeProxyVersion":"fake"}}}
EOF
  node_ready() {
    api_curl "$API_URL/api/v1/nodes/kwok-node-0" 2>/dev/null \
      | tr -d ' \n' | grep -q '"type":"Ready","status":"True"'
  }
  wait_for kwok "fake node kwok-node-0 Ready" node_ready
else
  log "kwok not built: no fake node (pods stay Pending; Deployments never become available)"
fi

if ((WITH_NODE)); then node_up; fi

log "cluster up in $((SECONDS - START))s; logs in $LOG_DIR"
echo "KUBECONFIG=$KUBECONFIG_PATH"
