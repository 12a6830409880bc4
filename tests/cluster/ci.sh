#!/usr/bin/env bash
# Entry point for .ci/run: brings the local test cluster up from the cache
# within a deadline, or says plainly why it cannot.
#   ci.sh up     prints "export KUBECONFIG=... AKS_RAY_CLUSTER_STAGE=... AKS_RAY_CLUSTER_NETPOL=..." on stdout
#                (NETPOL: kube-router when NetworkPolicies are enforced, else none)
#   ci.sh down   removes the cluster (always safe)
# Exit codes of "up":
#   0   the cluster is up; eval the printed line
#   3   nothing usable is cached and a cold build does not fit CI's time:
#       skip the cluster suites and report this reason
#   1   the cluster failed to start from a complete cache (a real failure)
# Environment: AKS_RAY_CLUSTER_STAGE (full, node or control-plane; default
# full: the highest cached stage at or below it is started),
# AKS_RAY_CLUSTER_UP_TIMEOUT (seconds, default 900),
# AKS_RAY_CLUSTER_ALLOW_COLD_BUILD=1 to build a missing cache anyway.
. "$(dirname "$0")/lib.sh"

EXIT_NO_CACHE=3

# highest_cached_stage WANTED: the most complete stage, not above WANTED, whose
# artifacts are all cached; empty when not even the control plane is.
highest_cached_stage() {
  local order=(control-plane node full) best="" s
  for s in "${order[@]}"; do
    [[ -z $(missing_artifacts "$s") ]] && best="$s"
    [[ $s == "$1" ]] && break
  done
  echo "$best"
}

up() {
  local wanted="${AKS_RAY_CLUSTER_STAGE:-full}" timeout="${AKS_RAY_CLUSTER_UP_TIMEOUT:-900}"
  local stage build=1
  stage="$(highest_cached_stage "$wanted")"
  if [[ ${AKS_RAY_CLUSTER_ALLOW_COLD_BUILD:-0} == 1 ]]; then
    stage="$wanted"
  elif [[ -z $stage ]]; then
    log "no cached cluster build in $CACHE_DIR: a cold build (Kubernetes from source on 2 cores," \
      "plus the Ray image) takes longer than CI can spare. Run 'make cluster-up' once on this" \
      "machine to fill the cache, or set AKS_RAY_CLUSTER_ALLOW_COLD_BUILD=1. Skipping the cluster."
    missing_artifacts "$wanted" | sed 's/^/  missing: /' >&2
    return "$EXIT_NO_CACHE"
  else
    build=0
    if [[ $stage != "$wanted" ]]; then
      log "the cache holds stage '$stage', not '$wanted'; missing:"
      missing_artifacts "$wanted" | sed 's/^/  /' >&2
    fi
  fi
  # kube-router came after many caches were filled: a few minutes of Go build, so CI makes it rather
  # than run the cluster without a policy engine (the NetworkPolicy test would then fail).
  if [[ $build == 0 && $stage != control-plane && ! -x $NETPOL_BIN/kube-router ]]; then
    log "building kube-router into the cache (a few minutes): the cluster enforces NetworkPolicies with it"
    "$CLUSTER_DIR/build.sh" netpol >&2 || log "kube-router did not build: the cluster starts without a policy engine"
  fi
  # Left over from an earlier run that was killed: start clean.
  "$CLUSTER_DIR/down.sh" >&2
  local kubeconfig
  if ! kubeconfig="$(AKS_RAY_CLUSTER_NO_BUILD=$((1 - build)) timeout --signal=TERM "$timeout" \
    "$CLUSTER_DIR/up.sh" "$stage")"; then
    log "the cluster did not come up (stage $stage, deadline ${timeout}s); last log lines:"
    tail -n 20 "$LOG_DIR"/*.log >&2 2>/dev/null || true
    "$CLUSTER_DIR/down.sh" >&2 || true
    return 1
  fi
  echo "export KUBECONFIG=$kubeconfig AKS_RAY_CLUSTER_STAGE=$stage AKS_RAY_CLUSTER_NETPOL=$(cat "$STATE_DIR/netpol" 2>/dev/null || echo none)"
}

case "${1:-}" in
  up) up ;;
  down) "$CLUSTER_DIR/down.sh" ;;
  *) die "usage: ci.sh up|down" ;;
esac
