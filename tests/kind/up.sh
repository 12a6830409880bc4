#!/usr/bin/env bash
# Starts the kind cluster the e2e suite's pytest-kind-ng fixture reuses: builds
# what is missing (build.sh), starts a Docker daemon when none answers, creates
# the cluster from the node image, loads the operator, Ray, CoreDNS and busybox
# images with `kind load image-archive`, and starts cluster DNS.
#   up.sh
# On stdout, for `make e2e`: export AKS_RAY_E2E_KIND_IMAGE=... AKS_RAY_E2E_KIND_BIN=...
# AKS_RAY_KIND_NO_BUILD=1: build nothing; exit 3 (after saying what is
# missing) when the cache lacks a part, so CI can skip with that reason.
. "$(dirname "$0")/lib.sh"

EXIT_NO_CACHE=3
KIND_CONFIG="$KIND_STATE/kind-config.yaml"
READY_MARK="$KIND_STATE/ready"

no_cache() {
  log "$1; not starting the kind cluster ('tests/kind/build.sh' fills the cache)"
  if [[ -n ${STARTED_DOCKERD:-} ]]; then stop_own_dockerd; fi
  exit "$EXIT_NO_CACHE"
}

# The kind configuration: one node, with the kubeadm patches mounted and two
# changes to kubeadm's defaults, both for a 2-core machine without a registry:
#   - the static pods' CPU requests are lowered to 200m in all (kubeadm-patches/),
#     so that the e2e RayJob and the operator (1.8 CPUs) fit beside the control plane;
#   - kubeadm's CoreDNS is skipped (its Corefile needs plugins the local
#     cluster's CoreDNS build leaves out); up.sh starts that cluster's DNS instead.
write_kind_config() {
  mkdir -p "$KIND_STATE"
  cat >"$KIND_CONFIG" <<YAML
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
- role: control-plane
  extraMounts:
  - hostPath: $KIND_DIR/kubeadm-patches
    containerPath: /kind/kubeadm-patches
    readOnly: true
kubeadmConfigPatches:
- |
  kind: InitConfiguration
  skipPhases: [preflight, addon/coredns]
  patches:
    directory: /kind/kubeadm-patches
YAML
}

cluster_exists() { kind_ get clusters 2>/dev/null | grep -qxF "$KIND_CLUSTER_NAME"; }

# cluster_ready: made by this script to the end (images loaded, DNS up) and answering.
cluster_ready() {
  cluster_exists && [[ -f $READY_MARK && $(cat "$READY_MARK") == "$(docker inspect -f '{{.Id}}' "$KIND_NODE" 2>/dev/null)" ]] &&
    kubectl_kind get --raw /readyz >/dev/null 2>&1
}

load_images() {
  local ref archive
  for ref in "${LOADED_IMAGES[@]}"; do
    archive="$(image_archive "$ref")"
    log "kind load image-archive $(basename "$archive") ($(du -h "$archive" | cut -f1))"
    timeout 1200 "$KIND_BIN" load image-archive --name "$KIND_CLUSTER_NAME" "$archive"
  done
  # The project's RayJob names the Ray image by its default reference (tests/cluster/versions.env).
  node_exec ctr --namespace k8s.io images tag --force "$RAY_IMAGE" "$RAY_IMAGE_ALIAS" >/dev/null
}

start_dns() {
  coredns_manifest | kubectl_kind apply -f - >/dev/null
  kubectl_kind -n kube-system rollout status deployment/coredns --timeout=120s >&2
}

print_env() {
  echo "export AKS_RAY_E2E_KIND_IMAGE=$NODE_IMAGE AKS_RAY_E2E_KIND_BIN=$KIND_BIN KIND_VERSION=$KIND_VERSION"
}

main() {
  if [[ ${AKS_RAY_KIND_NO_BUILD:-0} == 1 ]]; then
    local missing
    missing="$(missing_files)"
    [[ -z $missing ]] || { sed 's/^/  missing: /' <<<"$missing" >&2; no_cache "the cache lacks parts"; }
    command -v docker >/dev/null || no_cache "the docker CLI is not installed (Debian: apt-get install docker.io)"
    ensure_docker
    node_image_current || no_cache "Docker has no current $NODE_IMAGE"
  else
    command -v docker >/dev/null || die "the docker CLI is not installed (Debian: apt-get install docker.io)"
    "$KIND_DIR/build.sh"
    ensure_docker
  fi
  if cluster_ready; then
    log "the kind cluster $KIND_CLUSTER_NAME is already up; kubeconfig $KIND_KUBECONFIG"
    print_env
    return 0
  fi
  local started=$SECONDS
  mkdir -p "$KIND_LOGS" "$(dirname "$KIND_KUBECONFIG")"
  rm -f "$READY_MARK"
  if cluster_exists; then
    log "removing the unfinished kind cluster $KIND_CLUSTER_NAME"
    kind_ delete cluster --name "$KIND_CLUSTER_NAME" >&2
  fi
  write_kind_config
  # kind mounts the host's /lib/modules into the node; Docker creates it when
  # absent (this sandbox has none), and down.sh removes it again then.
  [[ -e /lib/modules ]] || touch "$KIND_STATE/made-lib-modules"
  log "kind create cluster --name $KIND_CLUSTER_NAME --image $NODE_IMAGE (log: $KIND_LOGS/kind-create.log)"
  if ! timeout 600 "$KIND_BIN" create cluster --name "$KIND_CLUSTER_NAME" --image "$NODE_IMAGE" \
    --config "$KIND_CONFIG" --kubeconfig "$KIND_KUBECONFIG" --wait 180s --retain -v 1 \
    >"$KIND_LOGS/kind-create.log" 2>&1; then
    tail -n 30 "$KIND_LOGS/kind-create.log" >&2
    # The node's journal, kubelet and container logs, before down.sh removes the node.
    timeout 120 "$KIND_BIN" export logs --name "$KIND_CLUSTER_NAME" "$KIND_LOGS/node" >/dev/null 2>&1 || true
    die "kind create cluster failed; the node's logs are in $KIND_LOGS/node (tests/kind/down.sh removes the node)"
  fi
  log "control plane up in $((SECONDS - started))s"
  load_images
  start_dns
  kubectl_kind wait --for=condition=Ready "node/$KIND_NODE" --timeout=60s >/dev/null
  docker inspect -f '{{.Id}}' "$KIND_NODE" >"$READY_MARK"
  log "kind cluster $KIND_CLUSTER_NAME ready in $((SECONDS - started))s; kubeconfig $KIND_KUBECONFIG"
  print_env
}

main "$@"
