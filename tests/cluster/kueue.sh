#!/usr/bin/env bash
# Installs Kueue on the running local test cluster, or removes it.
#   kueue.sh up     builds it if the cache has none (unless AKS_RAY_CLUSTER_NO_BUILD=1),
#                   imports its image, applies its manifests and waits until its
#                   webhooks answer
#   kueue.sh down   removes it, CRDs and webhooks included (always safe)
# Not part of any stage: Kueue's webhooks sit in front of every Pod, Job and
# RayJob created on the cluster, so only the queue tests (tests/e2e/test_queue.py)
# run with it, and take it away after.
. "$(dirname "$0")/lib.sh"

MANIFESTS="$KUEUE_DIR/kueue.yaml"

up() {
  [[ $(cat "$STATE_DIR/stage" 2>/dev/null) == full ]] || die "the cluster is not up at stage full (make cluster-up)"
  if [[ ! -f $MANIFESTS || ! -f $(image_archive "$KUEUE_IMAGE") ]]; then
    [[ ${AKS_RAY_CLUSTER_NO_BUILD:-0} == 1 ]] && die "Kueue is not in the cache ($KUEUE_DIR); run tests/cluster/build.sh kueue"
    "$CLUSTER_DIR/build.sh" kueue
  fi
  load_image "$KUEUE_IMAGE"
  kubectl_ apply --server-side --force-conflicts -f "$MANIFESTS" >/dev/null
  kubectl_ -n kueue-system rollout status deployment/kueue-controller-manager --timeout=180s >&2
  # Ready is not enough: the webhook serves once Kueue has written its own certificate into the
  # webhook configurations. A server-side dry run of a ResourceFlavor goes through that webhook.
  local probe="$STATE_DIR/kueue-probe.yaml"
  printf 'apiVersion: kueue.x-k8s.io/v1beta2\nkind: ResourceFlavor\nmetadata: {name: aks-ray-kueue-probe}\n' >"$probe"
  wait_for "Kueue's webhook" 180 kubectl_ create --dry-run=server -f "$probe"
  log "Kueue $KUEUE_VERSION is up"
}

down() {
  [[ -f $MANIFESTS ]] || { log "no Kueue manifests in the cache: nothing to remove"; return 0; }
  kubectl_ delete --ignore-not-found --wait=true --timeout=180s -f "$MANIFESTS" >/dev/null 2>&1 || true
  log "Kueue removed"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  *) die "usage: kueue.sh up|down" ;;
esac
