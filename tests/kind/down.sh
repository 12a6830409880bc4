#!/usr/bin/env bash
# Removes what up.sh made: the kind cluster (its node container and volume),
# the `kind` Docker network when nothing else uses it, the kubeconfig, and the
# Docker daemon up.sh started, if it started one. Always safe to run.
#   down.sh            keeps the build cache (the node image in Docker included)
#   down.sh --images   also removes the node image from Docker
. "$(dirname "$0")/lib.sh"

remove_images=0
case "${1:-}" in
  "") ;;
  --images) remove_images=1 ;;
  *) die "usage: down.sh [--images]" ;;
esac

if docker_answers; then
  if [[ -x $KIND_BIN ]] && "$KIND_BIN" get clusters 2>/dev/null | grep -qxF "$KIND_CLUSTER_NAME"; then
    log "kind delete cluster --name $KIND_CLUSTER_NAME"
    timeout 300 "$KIND_BIN" delete cluster --name "$KIND_CLUSTER_NAME" >&2
  fi
  # Whatever a killed run left: node containers of this cluster, with their volumes.
  leftovers="$(docker ps -aq --filter "label=io.x-k8s.kind.cluster=$KIND_CLUSTER_NAME")"
  if [[ -n $leftovers ]]; then
    # shellcheck disable=SC2086
    docker rm -f -v $leftovers >/dev/null
  fi
  if docker network inspect kind >/dev/null 2>&1 &&
    [[ $(docker network inspect -f '{{len .Containers}}' kind) == 0 ]]; then
    docker network rm kind >/dev/null
  fi
  if ((remove_images)) && docker image inspect "$NODE_IMAGE" >/dev/null 2>&1; then
    log "removing the node image $NODE_IMAGE"
    docker rmi "$NODE_IMAGE" >/dev/null
  fi
fi
rm -f "$KIND_KUBECONFIG" "$KIND_STATE/ready"
if [[ -f $KIND_STATE/made-lib-modules ]]; then
  rmdir /lib/modules 2>/dev/null || true
  rm -f "$KIND_STATE/made-lib-modules"
fi
rmdir "$(dirname "$KIND_KUBECONFIG")" "$(dirname "$(dirname "$KIND_KUBECONFIG")")" 2>/dev/null || true

stop_own_dockerd
if ((remove_images)) && [[ -d $KIND_CACHE/docker ]] && ! docker_answers; then
  # The data of the daemon this path starts: only its own images are there.
  log "removing $KIND_CACHE/docker (the node image and the daemon's other data)"
  rm -rf "$KIND_CACHE/docker"
fi
log "kind cluster removed (the build cache in $KIND_CACHE is kept)"
