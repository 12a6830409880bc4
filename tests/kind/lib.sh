# Shared settings for the kind scripts; sourced, never run.
# The local test cluster's lib.sh gives the Kubernetes version, the shared
# images and their cache (read only from here); this file adds kind's own.
KIND_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../cluster/lib.sh
. "$KIND_DIR/../cluster/lib.sh"
# shellcheck source=versions.env
. "$KIND_DIR/versions.env"
REPO_ROOT="$(cd "$KIND_DIR/../.." && pwd)"

# What the kind path builds, kept between runs and clones, keyed by version.
KIND_CACHE="${AKS_RAY_KIND_CACHE:-/var/cache/aks-ray-kind}"
# The Docker daemon this path starts when none answers (pid, sockets, state).
KIND_RUN="${AKS_RAY_KIND_RUN:-/run/aks-ray-kind}"
# The cluster's kind configuration and the logs of the last start (kind's own
# output, the daemon's log); down.sh keeps the logs.
KIND_STATE="${AKS_RAY_KIND_STATE:-/var/lib/aks-ray-kind}"
KIND_LOGS="$KIND_STATE/logs"

KIND_BIN="$KIND_CACHE/kind-$KIND_VERSION/kind"
KUBEADM_BIN="$KIND_CACHE/k8s-v$KUBERNETES_VERSION/kubeadm"
ETCD_SERVER_BIN="$KIND_CACHE/etcd-v$ETCD_VERSION/etcd"
KIND_TOOLS="$KIND_CACHE/tools-$(sha256sum <"$CLUSTER_DIR/runc-wrapper/main.go" | cut -c1-12)"
KIND_IMAGES="$KIND_CACHE/images"
NODE_IMAGE="localhost/aks-ray/kind-node:v$KUBERNETES_VERSION-kind-$KIND_VERSION"
# Where pytest-kind-ng keeps a cluster's kubeconfig (relative to the directory
# pytest runs in, the repository root for `make e2e`): a cluster it finds by
# name is reused with the kubeconfig it finds there.
KIND_KUBECONFIG="$REPO_ROOT/.pytest-kind/$KIND_CLUSTER_NAME/kubeconfig"
KIND_NODE="$KIND_CLUSTER_NAME-control-plane"
# Pod range of the one node: the first /24 of kind's default pod subnet.
KIND_POD_SUBNET=10.244.0.0/24

# The images kubeadm 1.34 runs, made here from the local cluster's binaries.
K8S_IMAGE_REPO=registry.k8s.io
ETCD_IMAGE="$K8S_IMAGE_REPO/etcd:$ETCD_VERSION-0"
# Loaded after creation with `kind load image-archive`, from the local cluster's cache.
LOADED_IMAGES=("$KUBERAY_OPERATOR_IMAGE" "$RAY_IMAGE" "$COREDNS_IMAGE" "$BUSYBOX_IMAGE")

DOCKERD_PID="$KIND_RUN/dockerd.pid"

log() { printf '[kind %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

kind_() { "$KIND_BIN" "$@"; }
kubectl_kind() { "$K8S_BIN/kubectl" --kubeconfig "$KIND_KUBECONFIG" "$@"; }
node_exec() { docker exec -i "$KIND_NODE" "$@"; }

# kind_image_archive REF: an archive this path makes (the local cluster's are image_archive).
kind_image_archive() { echo "$KIND_IMAGES/$(tr '/:' '__' <<<"$1").tar"; }

docker_answers() { timeout 20 docker info --format '{{.ServerVersion}}' >/dev/null 2>&1; }

# This sandbox's bounding set lacks CAP_SYS_RESOURCE (bit 24), which
# --privileged containers ask for: then Docker runs them through the wrapper.
lacks_sys_resource() {
  local bnd
  bnd="$(awk '/^CapBnd:/ {print $2}' /proc/self/status)"
  (((0x$bnd >> 24 & 1) == 0))
}

# ensure_docker: a Docker daemon that answers; when none does and this is
# root with Debian's dockerd installed, one of this path's own (stopped by down.sh).
ensure_docker() {
  docker_answers && return 0
  [[ -f $DOCKERD_PID ]] && kill -0 "$(cat "$DOCKERD_PID")" 2>/dev/null &&
    die "the Docker daemon this path started (pid $(cat "$DOCKERD_PID")) does not answer; see $KIND_LOGS/dockerd.log"
  [[ $(id -u) == 0 ]] || die "no Docker daemon answers, and only root can start one (run as root, or start Docker)"
  command -v dockerd >/dev/null ||
    die "no Docker daemon answers and dockerd is not installed: apt-get install docker.io (Debian), or start Docker"
  local runtime=()
  if lacks_sys_resource; then
    build_runc_wrapper
    runtime=(--add-runtime "aksray-runc=$KIND_TOOLS/runc-wrapper" --default-runtime aksray-runc)
  fi
  mkdir -p "$KIND_RUN" "$KIND_LOGS" "$KIND_CACHE/docker"
  # --iptables=false, --ip-forward=false, --bridge=none: this daemon leaves the
  # machine's firewall, forwarding and links alone (the local cluster's rules
  # live there too); kind's node needs only its own network and the published
  # API port, which docker-proxy serves on 127.0.0.1. --oom-score-adjust=0: the
  # sandbox refuses negative values. Images live in the cache (the node image
  # survives down.sh).
  log "starting dockerd (data in $KIND_CACHE/docker, log in $KIND_LOGS/dockerd.log)"
  setsid dockerd --data-root "$KIND_CACHE/docker" --exec-root "$KIND_RUN/docker" \
    --pidfile "$DOCKERD_PID" -H unix:///var/run/docker.sock \
    --iptables=false --ip-forward=false --ip-masq=false --bridge=none \
    --oom-score-adjust=0 --storage-driver overlay2 "${runtime[@]}" \
    >"$KIND_LOGS/dockerd.log" 2>&1 </dev/null &
  STARTED_DOCKERD=1
  wait_for "dockerd to answer" 60 docker_answers || {
    tail -n 20 "$KIND_LOGS/dockerd.log" >&2
    die "dockerd did not start"
  }
}

# stop_own_dockerd: stops the daemon ensure_docker started (none other), and
# unmounts what a killed one left under its folders.
stop_own_dockerd() {
  local pid
  if [[ -f $DOCKERD_PID ]] && pid="$(cat "$DOCKERD_PID")" && kill -0 "$pid" 2>/dev/null; then
    log "stopping the Docker daemon this path started (pid $pid)"
    kill -TERM "$pid"
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    if kill -0 "$pid" 2>/dev/null; then
      log "dockerd did not stop within 30 s; killing it"
      kill -KILL "$pid"
    fi
  fi
  awk -v run="$KIND_RUN/" -v data="$KIND_CACHE/docker/" 'index($2, run) == 1 || index($2, data) == 1 {print $2}' /proc/self/mounts |
    sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  rm -rf "$KIND_RUN"
}

build_runc_wrapper() {
  [[ -x $KIND_TOOLS/runc-wrapper ]] && return
  log "building the runc wrapper (tests/cluster/runc-wrapper)"
  mkdir -p "$KIND_TOOLS"
  (cd "$CLUSTER_DIR/runc-wrapper" && env GOFLAGS=-trimpath CGO_ENABLED=0 go build -o "$KIND_TOOLS/runc-wrapper.partial" .)
  mv "$KIND_TOOLS/runc-wrapper.partial" "$KIND_TOOLS/runc-wrapper"
}

# node_image_inputs: one hash of everything the node image is built from (by
# paths relative to the repository, so any clone agrees), so a changed file
# rebuilds it; stored as the image's label aks-ray.inputs.
node_image_inputs() {
  {
    (cd "$KIND_DIR" && sha256sum build.sh lib.sh versions.env node/*)
    (cd "$CLUSTER_DIR" && sha256sum versions.env runc-wrapper/main.go)
    stat -c '%s %Y' "$(image_archive "$PAUSE_IMAGE")" 2>/dev/null || echo "no pause archive"
  } | sha256sum | cut -c1-16
}

node_image_current() {
  [[ $(docker image inspect -f '{{index .Config.Labels "aks-ray.inputs"}}' "$NODE_IMAGE" 2>/dev/null) == "$(node_image_inputs)" ]]
}

# missing_files: the cached files a start without building needs, one per line
# (the node image, in Docker, is checked once a daemon answers: node_image_current).
missing_files() {
  local f ref
  for f in "$KIND_BIN" "$K8S_BIN/kubectl"; do [[ -x $f ]] || echo "$f"; done
  for ref in "${LOADED_IMAGES[@]}"; do
    f="$(image_archive "$ref")"
    [[ -f $f ]] || echo "$f"
  done
}
