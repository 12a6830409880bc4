#!/usr/bin/env bash
# Starts the local single-node test cluster from the cached binaries and images.
#   up.sh [control-plane|node|full]   (default: full)
#     control-plane  etcd, kube-apiserver, kube-controller-manager, kube-scheduler
#     node           + containerd, kubelet, kube-proxy, CoreDNS: pods run
#     full           + the KubeRay operator and Ray images loaded into containerd
# Missing cache parts are built first unless AKS_RAY_CLUSTER_NO_BUILD=1.
# Prints the kubeconfig path on stdout when the cluster is ready.
. "$(dirname "$0")/lib.sh"
. "$CLUSTER_DIR/certs.sh"

CERTS="$STATE_DIR/pki"

preflight() {
  [[ $(id -u) == 0 ]] || die "run as root: the cluster needs mounts, cgroups and network namespaces"
  if [[ -f $STATE_DIR/stage ]]; then
    die "a cluster is already up (stage $(cat "$STATE_DIR/stage")); run tests/cluster/down.sh first"
  fi
  [[ -d $RUN_DIR ]] && die "$RUN_DIR is left from a cluster that was not taken down; run tests/cluster/down.sh first"
  local cidr
  for cidr in "$POD_CIDR" "$SERVICE_CIDR"; do
    if ip route show to match "${cidr%/*}" | grep -qv '^default'; then
      die "$cidr is already routed on this machine: $(ip route show to match "${cidr%/*}" | grep -v '^default')"
    fi
  done
  local port
  for port in 2379 2380 6443 10250 10257 10259; do
    if ss -Hltn "sport = :$port" | grep -q .; then die "TCP port $port is already in use"; fi
  done
}

# A host-only bridge: the node's address, the pods' gateway and the API
# server's advertised address. Nothing is forwarded between it and any other
# interface, so pods can reach this machine and each other, and nothing else.
setup_network() {
  cat /proc/sys/net/ipv4/ip_forward >"$STATE_DIR/ip_forward.orig"
  ip link add "$BRIDGE" type bridge
  ip addr add "$NODE_IP/${POD_CIDR#*/}" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  # Service addresses that kube-proxy has not translated stay on the bridge.
  ip route add "$SERVICE_CIDR" dev "$BRIDGE"
  iptables -t mangle -I FORWARD -i "$BRIDGE" ! -o "$BRIDGE" -j DROP -m comment --comment aks-ray-cluster
  iptables -t mangle -I FORWARD ! -i "$BRIDGE" -o "$BRIDGE" -j DROP -m comment --comment aks-ray-cluster
  # Needed for pod -> service -> pod on the same bridge; the rules above keep it local.
  echo 1 >/proc/sys/net/ipv4/ip_forward
}

start_etcd() {
  start_daemon etcd "$ETCD_BIN/etcd" --name default --data-dir "$STATE_DIR/etcd" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster default=http://127.0.0.1:2380 --listen-metrics-urls http://127.0.0.1:2381 \
    --unsafe-no-fsync --quota-backend-bytes 2147483648
  wait_for "etcd health" 60 curl -fsS http://127.0.0.1:2381/health
}

start_apiserver() {
  start_daemon kube-apiserver "$K8S_BIN/kube-apiserver" \
    --etcd-servers http://127.0.0.1:2379 \
    --bind-address "$NODE_IP" --advertise-address "$NODE_IP" --secure-port 6443 \
    --service-cluster-ip-range "$SERVICE_CIDR" \
    --client-ca-file "$CERTS/ca.crt" \
    --tls-cert-file "$CERTS/apiserver.crt" --tls-private-key-file "$CERTS/apiserver.key" \
    --kubelet-client-certificate "$CERTS/apiserver-kubelet-client.crt" \
    --kubelet-client-key "$CERTS/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority "$CERTS/ca.crt" \
    --kubelet-preferred-address-types InternalIP \
    --service-account-issuer "https://kubernetes.default.svc.$CLUSTER_DOMAIN" \
    --service-account-key-file "$CERTS/service-account.pub" \
    --service-account-signing-key-file "$CERTS/service-account.key" \
    --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
    --allow-privileged=true --profiling=false --v=1
  wait_for "kube-apiserver readiness" 120 kubectl_ get --raw /readyz
}

start_controllers() {
  start_daemon kube-controller-manager "$K8S_BIN/kube-controller-manager" \
    --kubeconfig "$CERTS/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$CERTS/controller-manager.kubeconfig" \
    --authorization-kubeconfig "$CERTS/controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port 10257 --leader-elect=false \
    --service-account-private-key-file "$CERTS/service-account.key" \
    --root-ca-file "$CERTS/ca.crt" \
    --cluster-signing-cert-file "$CERTS/ca.crt" --cluster-signing-key-file "$CERTS/ca.key" \
    --use-service-account-credentials=true --controllers '*' \
    --cluster-name aks-ray-local --v=1
  start_daemon kube-scheduler "$K8S_BIN/kube-scheduler" \
    --kubeconfig "$CERTS/scheduler.kubeconfig" \
    --authentication-kubeconfig "$CERTS/scheduler.kubeconfig" \
    --authorization-kubeconfig "$CERTS/scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port 10259 --leader-elect=false --v=1
  # The default service account appears once the controller manager runs.
  wait_for "the default service account" 90 kubectl_ -n default get serviceaccount default
}

start_containerd() {
  mkdir -p "$CONTAINERD_ROOT" "$RUN_DIR/containerd" "$STATE_DIR/cni/net.d"
  cat >"$STATE_DIR/containerd.toml" <<TOML
version = 2
root = "$CONTAINERD_ROOT"
state = "$RUN_DIR/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "$CONTAINERD_SOCK"
[ttrpc]
  address = "$CONTAINERD_SOCK.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$CACHE_DIR/containerd-opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    discard_unpacked_layers = false
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "$TOOLS_BIN/runc-wrapper"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$STATE_DIR/cni/net.d"
TOML
  cat >"$STATE_DIR/cni/net.d/10-aksray.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "aksray",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$NODE_IP"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$STATE_DIR/cni/ipam"
      }
    }
  ]
}
JSON
  start_daemon containerd /usr/bin/containerd --config "$STATE_DIR/containerd.toml"
  wait_for "containerd" 60 ctr_ version
}


start_kubelet() {
  : >"$STATE_DIR/host-resolv.conf"
  cat >"$STATE_DIR/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $CERTS/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $CERTS/kubelet.crt
tlsPrivateKeyFile: $CERTS/kubelet.key
clusterDomain: $CLUSTER_DOMAIN
clusterDNS: [$DNS_SERVICE_IP]
# Pods with dnsPolicy Default get no upstream server: no DNS query leaves the machine.
resolvConf: $STATE_DIR/host-resolv.conf
cgroupDriver: cgroupfs
# This machine has cgroup v1 only; kubelet 1.35+ refuses it unless told otherwise.
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
podLogsDir: $STATE_DIR/pod-logs
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
# Absolute thresholds: this machine's free disk varies a lot (9 to 80 GB seen),
# and a percentage of its 252 GB would evict the Ray pods at 5 GB free.
evictionHard: {memory.available: 200Mi, nodefs.available: 1Gi, imagefs.available: 1Gi, nodefs.inodesFree: 1%}
serializeImagePulls: false
maxPods: 50
YAML
  start_daemon kubelet "$K8S_BIN/kubelet" --config "$STATE_DIR/kubelet.yaml" \
    --kubeconfig "$CERTS/kubelet.kubeconfig" --root-dir "$STATE_DIR/kubelet" \
    --hostname-override "$NODE_NAME" --node-ip "$NODE_IP" --v=1
  wait_for "node $NODE_NAME to be Ready" 120 \
    kubectl_ wait --for=condition=Ready "node/$NODE_NAME" --timeout=1s
}

start_kube_proxy() {
  cat >"$STATE_DIR/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $CERTS/kube-proxy.kubeconfig}
mode: iptables
clusterCIDR: $POD_CIDR
hostnameOverride: $NODE_NAME
bindAddress: $NODE_IP
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: [$NODE_IP/32]
# 0 leaves the machine's conntrack sysctls as they are.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
YAML
  start_daemon kube-proxy "$K8S_BIN/kube-proxy" --config "$STATE_DIR/kube-proxy.yaml" --v=1
  wait_for "kube-proxy health" 60 curl -fsS http://127.0.0.1:10256/healthz
}

# kube-router's firewall only: it turns each NetworkPolicy into iptables rules and
# ipsets on this node, beside the bridge CNI and kube-proxy (which keep routing
# and services), so a run's policy is enforced here as Cilium enforces it on AKS.
# AKS_RAY_CLUSTER_NETPOL=0 starts the cluster without it (policies then only exist).
start_netpol() {
  [[ ${AKS_RAY_CLUSTER_NETPOL:-1} == 0 ]] && { log "no NetworkPolicy engine (AKS_RAY_CLUSTER_NETPOL=0)"; return; }
  if [[ ! -x $NETPOL_BIN/kube-router ]]; then
    log "no kube-router in the cache ($NETPOL_BIN): NetworkPolicies are not enforced; tests/cluster/build.sh netpol builds it"
    return
  fi
  start_daemon kube-router "$NETPOL_BIN/kube-router" --kubeconfig "$CERTS/admin.kubeconfig" \
    --run-firewall=true --run-router=false --run-service-proxy=false --enable-cni=false \
    --enable-ipv6=false --hostname-override "$NODE_NAME" --service-cluster-ip-range "$SERVICE_CIDR" \
    --health-port "$NETPOL_HEALTH_PORT" --metrics-port 0 --v=1
  wait_for "kube-router health" 60 curl -fsS "http://127.0.0.1:$NETPOL_HEALTH_PORT/healthz"
  echo kube-router >"$STATE_DIR/netpol"
}

start_coredns() {
  coredns_manifest | kubectl_ apply -f - >/dev/null
  kubectl_ -n kube-system rollout status deployment/coredns --timeout=120s >&2
}

main() {
  local stage="${1:-full}"
  case "$stage" in control-plane | node | full) ;; *) die "unknown stage '$stage' (control-plane, node or full)" ;; esac
  # Already up at this stage and answering: nothing to do (make cluster-up twice).
  if [[ $(cat "$STATE_DIR/stage" 2>/dev/null) == "$stage" ]] && kubectl_ get --raw /readyz >/dev/null 2>&1; then
    log "the cluster is already up (stage $stage)"
    echo "$KUBECONFIG_PATH"
    return 0
  fi
  preflight
  if [[ ${AKS_RAY_CLUSTER_NO_BUILD:-0} != 1 ]]; then "$CLUSTER_DIR/build.sh" "$stage"; fi
  local started=$SECONDS
  rm -rf "$STATE_DIR"
  mkdir -p "$STATE_DIR" "$CERTS" "$LOG_DIR" "$RUN_DIR" "$PID_DIR"
  echo starting >"$STATE_DIR/stage"
  # down.sh removes only the pod network namespaces made after this list.
  ls /var/run/netns >"$STATE_DIR/netns.before" 2>/dev/null || true
  # Anything that fails from here on leaves state that down.sh removes.
  trap 'log "cluster-up failed; logs are in $LOG_DIR; run tests/cluster/down.sh"' ERR
  make_all_certs "$CERTS"
  cp "$CERTS/admin.kubeconfig" "$KUBECONFIG_PATH"
  setup_network
  start_etcd
  start_apiserver
  start_controllers
  echo control-plane >"$STATE_DIR/stage"
  if [[ $stage != control-plane ]]; then
    start_containerd
    load_image "$PAUSE_IMAGE"
    load_image "$COREDNS_IMAGE"
    load_image "$BUSYBOX_IMAGE"
    if [[ $stage == full ]]; then
      load_image "$KUBERAY_OPERATOR_IMAGE"
      load_image "$RAY_IMAGE" "$RAY_IMAGE_ALIAS"
    fi
    start_kubelet
    start_kube_proxy
    start_netpol
    start_coredns
    echo "$stage" >"$STATE_DIR/stage"
  fi
  log "cluster ($stage) ready in $((SECONDS - started))s; export KUBECONFIG=$KUBECONFIG_PATH"
  echo "$KUBECONFIG_PATH"
}

main "$@"
