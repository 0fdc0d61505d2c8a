# The test cluster's real node, stv3-node-0: containerd (its own root, state and socket
# under the state dir), a CNI bridge, kubelet, kube-proxy (iptables), CoreDNS and
# metrics-server on the host, a default StorageClass of prepared local volumes, and a
# relay that gives in-cluster clients the API server. Sourced by up.sh (node_up) and
# down.sh (node_down); see ../../../shared/notes/real-node.md for why each setting is
# what it is. Everything here stays on this machine: loopback, the bridge, and the pod
# network namespaces.
# shellcheck shell=bash

NODE_STATE="$STATE_DIR/node"
CONTAINERD_SOCK="$NODE_STATE/containerd/containerd.sock"
CNI_CONF_DIR="$NODE_STATE/cni/net.d"
CNI_IPAM_DIR="$NODE_STATE/cni/ipam"
VOLUMES_DIR="$NODE_STATE/volumes"
SYSCTL_SAVE="$NODE_STATE/sysctl.saved"
# Local volumes up.sh prepares for PersistentVolumeClaims (the default StorageClass).
NODE_VOLUMES="${STV3_E2E_NODE_VOLUMES:-16}"

# ctr against the node's containerd, in the namespace kubelet uses.
node_ctr() { ctr --address "$CONTAINERD_SOCK" --namespace k8s.io "$@"; }

node_ensure_tools() {
  local missing=() p
  for p in containerd runc containernetworking-plugins socat iptables nftables; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if ((${#missing[@]})); then
    [[ $(id -u) == 0 ]] || die "the real node needs root to install ${missing[*]} (or STV3_E2E_NO_NODE=1)"
    log "installing ${missing[*]} with apt-get"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >&2 \
      || die "apt-get install ${missing[*]} failed"
  fi
  [[ $(id -u) == 0 ]] || die "the real node needs root (bridge, iptables, mounts); or set STV3_E2E_NO_NODE=1"
  for p in kubelet kube-proxy kubectl coredns metrics-server; do
    [[ -x $BIN_DIR/$p ]] || die "$BIN_DIR/$p is missing: run e2e/cluster/build-bins.sh"
  done
}

# ---------------------------------------------------------------- host network
# The sysctls kubelet changes (its kernel tunables), saved once so down.sh puts them back.
NODE_SYSCTLS=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
  kernel.keys.root_maxkeys kernel.keys.root_maxbytes)
NFT_TABLES_SAVE="$NODE_STATE/nft-tables.before"

node_network_up() {
  mkdir -p "$NODE_STATE"
  if [[ ! -s $SYSCTL_SAVE ]]; then
    local k
    for k in "${NODE_SYSCTLS[@]}"; do echo "$k=$(sysctl -n "$k")"; done >"$SYSCTL_SAVE"
  fi
  # iptables (nft backend) creates tables on first use; down.sh removes the ones it made.
  if [[ ! -e $NFT_TABLES_SAVE ]] && command -v nft >/dev/null; then
    nft list tables >"$NFT_TABLES_SAVE" 2>/dev/null || true
  fi
  [[ $(sysctl -n net.bridge.bridge-nf-call-iptables 2>/dev/null || echo 0) == 1 ]] \
    || die "pods reach Services only with net.bridge.bridge-nf-call-iptables=1 (module br_netfilter)"
  if ! ip link show "$NODE_BRIDGE" >/dev/null 2>&1; then
    ip link add "$NODE_BRIDGE" type bridge
    ip addr add "$NODE_IP/24" dev "$NODE_BRIDGE"
  fi
  ip link set "$NODE_BRIDGE" up
  ip route replace "$SERVICE_CIDR" dev "$NODE_BRIDGE" src "$NODE_IP"
  # Forwarding on the bridge only; the machine's global ip_forward stays as it is.
  sysctl -qw "net.ipv4.conf.$NODE_BRIDGE.forwarding=1"
}

# ---------------------------------------------------------------- containerd
node_containerd_up() {
  local d="$NODE_STATE/containerd"
  mkdir -p "$d/root" "$d/state" "$CNI_CONF_DIR" "$CNI_IPAM_DIR"
  cat >"$NODE_STATE/containerd.toml" <<EOF
version = 2
root = "$d/root"
state = "$d/state"
[grpc]
  address = "$CONTAINERD_SOCK"
[plugins."io.containerd.grpc.v1.cri"]
  # No CAP_SYS_RESOURCE here: never ask for a negative OOM score.
  restrict_oom_score_adj = true
  sandbox_image = "$PAUSE_IMAGE"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$CNI_CONF_DIR"
EOF
  cat >"$CNI_CONF_DIR/10-stv3.conflist" <<EOF
{"cniVersion": "1.0.0", "name": "stv3", "plugins": [{
  "type": "bridge", "bridge": "$NODE_BRIDGE", "isGateway": false, "ipMasq": false, "hairpinMode": true,
  "ipam": {"type": "host-local",
           "ranges": [[{"subnet": "$NODE_CIDR", "rangeStart": "$POD_RANGE_START", "rangeEnd": "$POD_RANGE_END", "gateway": "$NODE_IP"}]],
           "routes": [{"dst": "$SERVICE_CIDR", "gw": "$NODE_IP"}],
           "dataDir": "$CNI_IPAM_DIR"}}]}
EOF
  start_exe containerd "$(command -v containerd)" --config "$NODE_STATE/containerd.toml"
  containerd_ok() { node_ctr version >/dev/null 2>&1; }
  wait_for containerd "containerd answering" containerd_ok
}

# Imports every archive: the product's images (dist/images, ./build.sh -p) and the e2e
# test images (e2e/images/build.sh). One archive per call (ctr imports only the first).
node_import_images() {
  local dir archives=() a e2e_dir
  e2e_dir="$("$CLUSTER_DIR/../images/build.sh" --print)"
  [[ -s $e2e_dir/pause.oci.tar ]] || die "no e2e test images in $e2e_dir: run e2e/images/build.sh"
  for dir in "$e2e_dir" "${STV3_E2E_IMAGES:-$CLUSTER_DIR/../../dist/images}"; do
    [[ -d $dir ]] || continue
    for a in "$dir"/*.oci.tar; do [[ -e $a ]] && archives+=("$a"); done
  done
  for a in "${archives[@]}"; do
    node_ctr images import --no-unpack=false "$a" >>"$LOG_DIR/images.log" 2>&1 \
      || die "importing $a into the node's containerd failed; see $LOG_DIR/images.log"
  done
  node_ctr images ls -q >"$NODE_STATE/images.txt"
  log "node images: $(grep -vc '^sha256:' "$NODE_STATE/images.txt") imported ($(tr '\n' ' ' <"$NODE_STATE/images.txt" | grep -o '[a-z0-9./-]*stv3[a-z0-9./:-]*' | tr '\n' ' '))"
  grep -qx "$PAUSE_IMAGE" "$NODE_STATE/images.txt" || die "$PAUSE_IMAGE is not in the node's images"
}

# ---------------------------------------------------------------- kubelet
node_kubelet_up() {
  mkdir -p "$NODE_STATE/kubelet" "$NODE_STATE/pod-logs" "$NODE_STATE/kubelet-plugins"
  local taints=""
  if ((WITH_KWOK)); then
    # Beside kwok's fake node, real pods are opt-in: a toleration and a nodeSelector.
    taints="registerWithTaints:
- {key: $NODE_TAINT_KEY, value: \"true\", effect: NoSchedule}"
  fi
  cat >"$NODE_STATE/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $KUBELET_HEALTHZ_PORT
tlsCertFile: $PKI_DIR/kubelet-serving.crt
tlsPrivateKeyFile: $PKI_DIR/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI_DIR/ca.crt}
authorization: {mode: Webhook}
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
podLogsDir: $NODE_STATE/pod-logs
volumePluginDir: $NODE_STATE/kubelet-plugins
makeIPTablesUtilChains: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%"}
clusterDomain: cluster.local
clusterDNS: ["$CLUSTER_DNS_IP"]
resolvConf: ""
maxPods: 110
$taints
EOF
  start kubelet --config "$NODE_STATE/kubelet.yaml" --kubeconfig "$STATE_DIR/kubelet.kubeconfig" \
    --root-dir "$NODE_STATE/kubelet" --node-ip "$NODE_IP" --hostname-override "$NODE_NAME" \
    --node-labels "$NODE_TAINT_KEY=true"
  node_ready() {
    "$BIN_DIR/kubectl" --kubeconfig "$KUBECONFIG_PATH" get node "$NODE_NAME" \
      -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null | grep -qx True
  }
  wait_for kubelet "node $NODE_NAME Ready" node_ready
}

# ---------------------------------------------------------------- kube-proxy
node_proxy_up() {
  cat >"$NODE_STATE/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $STATE_DIR/kube-proxy.kubeconfig}
hostnameOverride: $NODE_NAME
mode: iptables
clusterCIDR: $NODE_CIDR
bindAddress: $NODE_IP
healthzBindAddress: 127.0.0.1:$PROXY_HEALTHZ_PORT
metricsBindAddress: 127.0.0.1:$PROXY_METRICS_PORT
nodePortAddresses: ["$NODE_CIDR"]
oomScoreAdj: 0
iptables: {localhostNodePorts: false}
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s, udpTimeout: 0s, udpStreamTimeout: 0s}
EOF
  start kube-proxy --config "$NODE_STATE/kube-proxy.yaml"
  proxy_ok() { curl -sS --max-time 2 "http://127.0.0.1:$PROXY_HEALTHZ_PORT/healthz" >/dev/null 2>&1; }
  wait_for kube-proxy "kube-proxy healthy" proxy_ok
}

# ---------------------------------------------------------------- cluster add-ons
node_kubectl() { "$BIN_DIR/kubectl" --kubeconfig "$KUBECONFIG_PATH" "$@"; }

node_dns_up() {
  cat >"$NODE_STATE/Corefile" <<EOF
.:53 {
    bind $NODE_IP
    errors
    health 127.0.0.1:$DNS_HEALTH_PORT
    ready 127.0.0.1:$DNS_READY_PORT
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $STATE_DIR/coredns.kubeconfig stv3-e2e
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    cache 30
}
EOF
  start coredns -conf "$NODE_STATE/Corefile"
  dns_ready() { curl -sS --max-time 2 "http://127.0.0.1:$DNS_READY_PORT/ready" >/dev/null 2>&1; }
  wait_for coredns "CoreDNS ready" dns_ready
}

node_metrics_server_up() {
  start metrics-server --secure-port "$METRICS_SERVER_PORT" --bind-address "$NODE_IP" \
    --tls-cert-file "$PKI_DIR/metrics-server-serving.crt" --tls-private-key-file "$PKI_DIR/metrics-server-serving.key" \
    --kubeconfig "$STATE_DIR/metrics-server.kubeconfig" \
    --authentication-kubeconfig "$STATE_DIR/metrics-server.kubeconfig" \
    --authorization-kubeconfig "$STATE_DIR/metrics-server.kubeconfig" \
    --kubelet-preferred-address-types InternalIP --kubelet-certificate-authority "$PKI_DIR/ca.crt" \
    --kubelet-use-node-status-port --node-selector "$NODE_TAINT_KEY=true" \
    --metric-resolution 10s --kubelet-request-timeout 5s --profiling=false
  ms_ok() { curl -sS --max-time 2 --cacert "$PKI_DIR/ca.crt" "https://$NODE_IP:$METRICS_SERVER_PORT/livez" >/dev/null 2>&1; }
  wait_for metrics-server "metrics-server live" ms_ok
}

# The objects the add-ons need: RBAC for the host processes' identities, the kube-dns
# and metrics-server Services (no selector: their endpoint is the host, on the bridge),
# the metrics.k8s.io APIService, the default StorageClass and its prepared volumes.
node_objects() {
  local ca_b64 i pvs=""
  ca_b64=$(base64 -w0 <"$PKI_DIR/ca.crt")
  mkdir -p "$VOLUMES_DIR"
  for ((i = 0; i < NODE_VOLUMES; i++)); do
    local v
    v=$(printf 'stv3-node-0-pv%02d' "$i")
    mkdir -p "$VOLUMES_DIR/$v"
    pvs+="---
apiVersion: v1
kind: PersistentVolume
metadata: {name: $v, labels: {stv3.io/e2e-volume: \"true\"}}
spec:
  capacity: {storage: 100Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: $STORAGE_CLASS
  local: {path: $VOLUMES_DIR/$v}
  nodeAffinity:
    required:
      nodeSelectorTerms:
      - matchExpressions:
        - {key: kubernetes.io/hostname, operator: In, values: [$NODE_NAME]}
"
  done
  node_kubectl apply -f - >>"$LOG_DIR/node-objects.log" 2>&1 <<EOF || die "creating the node's add-on objects failed; see $LOG_DIR/node-objects.log"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:coredns"}
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "system:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:coredns"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: "system:coredns"}]
---
apiVersion: v1
kind: Service
metadata: {name: kube-dns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  clusterIP: $CLUSTER_DNS_IP
  ports:
  - {name: dns, port: 53, protocol: UDP, targetPort: 53}
  - {name: dns-tcp, port: 53, protocol: TCP, targetPort: 53}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: kube-dns-host, namespace: kube-system, labels: {kubernetes.io/service-name: kube-dns}}
addressType: IPv4
endpoints: [{addresses: ["$NODE_IP"], conditions: {ready: true}}]
ports:
- {name: dns, port: 53, protocol: UDP}
- {name: dns-tcp, port: 53, protocol: TCP}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:metrics-server"}
rules:
- apiGroups: [""]
  resources: [nodes/metrics]
  verbs: [get]
- apiGroups: [""]
  resources: [pods, nodes]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "system:metrics-server"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:metrics-server"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: "system:metrics-server"}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "metrics-server:system:auth-delegator"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:auth-delegator"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: "system:metrics-server"}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: "metrics-server-auth-reader", namespace: kube-system}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: extension-apiserver-authentication-reader}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: "system:metrics-server"}]
---
apiVersion: v1
kind: Service
metadata: {name: metrics-server, namespace: kube-system, labels: {k8s-app: metrics-server}}
spec:
  ports:
  - {name: https, port: 443, protocol: TCP, targetPort: $METRICS_SERVER_PORT}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: metrics-server-host, namespace: kube-system, labels: {kubernetes.io/service-name: metrics-server}}
addressType: IPv4
endpoints: [{addresses: ["$NODE_IP"], conditions: {ready: true}}]
ports:
- {name: https, port: $METRICS_SERVER_PORT, protocol: TCP}
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1beta1.metrics.k8s.io}
spec:
  group: metrics.k8s.io
  version: v1beta1
  groupPriorityMinimum: 100
  versionPriority: 100
  caBundle: $ca_b64
  service: {name: metrics-server, namespace: kube-system, port: 443}
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: $STORAGE_CLASS
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Retain
$pvs
EOF
}

node_relay_up() {
  # In-cluster clients (the operator as a pod) reach the API server through the
  # "kubernetes" Service, whose endpoint is the advertise address on the bridge.
  start_exe apiserver-relay "$(command -v socat)" \
    "TCP-LISTEN:$APISERVER_PORT,bind=$NODE_IP,fork,reuseaddr" "TCP:127.0.0.1:$APISERVER_PORT"
}

node_up() {
  local t0=$SECONDS
  node_containerd_up
  node_import_images
  node_kubelet_up
  node_proxy_up
  # The add-ons' RBAC, Services and APIService before the add-ons read them.
  node_objects
  node_dns_up
  node_metrics_server_up
  node_relay_up
  metrics_api_ok() { node_kubectl get --raw /apis/metrics.k8s.io/v1beta1/nodes >/dev/null 2>&1; }
  wait_for metrics-server "metrics.k8s.io served" metrics_api_ok
  log "node $NODE_NAME up in $((SECONDS - t0))s"
}

# ---------------------------------------------------------------- down
# Stops and removes everything node_up and node_network_up made, in the order that
# leaves nothing behind; fine when nothing of it runs.
node_down() {
  # Nothing of a node to take down (a cluster started with STV3_E2E_NO_NODE=1, or none).
  if [[ ! -d $NODE_STATE ]] && ! ip link show "$NODE_BRIDGE" >/dev/null 2>&1; then
    return 0
  fi
  [[ $(id -u) == 0 ]] || die "the real node's state is in $NODE_STATE: run down.sh as root to remove it"
  # 1. The pods through the API (CNI DEL frees veths and addresses), while kubelet runs.
  if pid_alive kubelet && pid_alive kube-apiserver; then
    node_kubectl delete pods --all-namespaces --field-selector "spec.nodeName=$NODE_NAME" \
      --grace-period=1 --wait=false >/dev/null 2>&1 || true
    local i
    for ((i = 0; i < 40; i++)); do
      [[ -z $(node_kubectl get pods -A --field-selector "spec.nodeName=$NODE_NAME" -o name 2>/dev/null) ]] && break
      sleep 0.5
    done
  fi
  # 2. The node's processes.
  stop_group kube-proxy coredns metrics-server apiserver-relay kubelet
  # 3. kube-proxy's rules, and the chain it leaves.
  if [[ -f $NODE_STATE/kube-proxy.yaml && -x ${BIN_DIR:-}/kube-proxy ]]; then
    "$BIN_DIR/kube-proxy" --cleanup --config "$NODE_STATE/kube-proxy.yaml" >>"$LOG_DIR/kube-proxy.log" 2>&1 || true
  fi
  # Whatever KUBE-* chains and jumps remain (kube-proxy's KUBE-FIREWALL, kubelet's
  # canaries): everything else is written back exactly as it was.
  local ipt
  for ipt in iptables ip6tables; do
    command -v "$ipt-save" >/dev/null || continue
    if "$ipt-save" 2>/dev/null | grep -q -- 'KUBE-'; then
      "$ipt-save" | grep -v -- 'KUBE-' | "$ipt-restore" -w || log "could not remove the KUBE-* rules from $ipt"
    fi
  done
  # The nft tables iptables created for them, now empty.
  if [[ -f $NFT_TABLES_SAVE ]] && command -v nft >/dev/null; then
    local table
    while read -r table; do
      grep -qxF "$table" "$NFT_TABLES_SAVE" && continue
      # "table ip filter" -> delete it when no rule is left in it.
      if ! nft list "$table" 2>/dev/null | grep -qE '^\s+(ip|ip6|meta|counter|jump|tcp|udp|ct|mark|iifname|oifname)'; then
        nft delete "$table" 2>/dev/null || true
      fi
    done < <(nft list tables 2>/dev/null)
  fi
  # 4. Containers, then containerd.
  if pid_alive containerd; then
    local t ns c
    for ns in $(ctr --address "$CONTAINERD_SOCK" namespaces ls -q 2>/dev/null); do
      c=(ctr --address "$CONTAINERD_SOCK" --namespace "$ns")
      for t in $("${c[@]}" tasks ls -q 2>/dev/null); do "${c[@]}" tasks kill -s SIGKILL "$t" >/dev/null 2>&1 || true; done
      sleep 0.3
      for t in $("${c[@]}" tasks ls -q 2>/dev/null); do "${c[@]}" tasks rm -f "$t" >/dev/null 2>&1 || true; done
      for t in $("${c[@]}" containers ls -q 2>/dev/null); do "${c[@]}" containers rm "$t" >/dev/null 2>&1 || true; done
    done
  fi
  stop_group containerd
  # Shims of this containerd that outlived it (they are started per container).
  pkill -KILL -f "containerd-shim-runc-v2 .*-address $CONTAINERD_SOCK" 2>/dev/null || true
  # 5. Mounts under the node's state, and the pods' network namespaces.
  local m
  if [[ -d $NODE_STATE ]]; then
    for m in $(awk -v p="$NODE_STATE/" 'index($2, p) == 1 { print $2 }' /proc/self/mounts | sort -r); do
      umount -l "$m" 2>/dev/null || true
    done
  fi
  for m in $(awk '$2 ~ /^\/run\/netns\/cni-/ { print $2 }' /proc/self/mounts); do umount -l "$m" 2>/dev/null || true; done
  rm -f /run/netns/cni-* 2>/dev/null || true
  # 6. The pods' cgroups.
  find /sys/fs/cgroup/*/kubepods* /sys/fs/cgroup/*/k8s.io /sys/fs/cgroup/*/stv3-smoke -depth -type d \
    -exec rmdir {} + 2>/dev/null || true
  # 7. The bridge (its routes and forwarding flag go with it), containerd's run dir.
  ip link del "$NODE_BRIDGE" 2>/dev/null || true
  # The shims' sockets and fifos (they always live in /run/containerd), unless another
  # containerd on this machine uses that directory too.
  pgrep -x containerd >/dev/null || rm -rf /run/containerd
  # 8. The sysctls kubelet changed.
  if [[ -s $SYSCTL_SAVE ]]; then
    sysctl -q -p "$SYSCTL_SAVE" >/dev/null 2>&1 || true
    rm -f "$SYSCTL_SAVE"
  fi
  # 9. Node state (containerd's store, kubelet's dir, volumes, IPAM); logs stay.
  if [[ -d $NODE_STATE ]]; then
    chmod -R u+w "$NODE_STATE" 2>/dev/null || true
    rm -rf "$NODE_STATE"
  fi
}
