#!/usr/bin/env bash
# Checks a running local test cluster, stage by stage, with real objects:
#   smoke.sh [control-plane|node|full]   (default: the stage up.sh reached)
# control-plane: the KubeRay CRDs apply, a RayJob passes server-side validation
#                and a malformed one is refused.
# node:          + a pod runs, resolves a service by name, logs and exec work.
# full:          + the project's Helm install of the KubeRay chart (its values
#                file) runs the operator, and a RayJob reaches SUCCEEDED.
# Prints "N passed, N failed" last; exits 1 if any check failed.
. "$(dirname "$0")/lib.sh"

REPO_DIR="$(cd "$CLUSTER_DIR/../.." && pwd)"
CHART="${AKS_RAY_SMOKE_CHART:-$REPO_DIR/../shared/fixtures/kuberay-operator-1.7.0}"
VALUES="${AKS_RAY_SMOKE_VALUES:-$REPO_DIR/manifests/kuberay-values.yaml}"
NS=aks-ray-smoke
passed=0 failed=0

check() {
  local what="$1"; shift
  if "$@" >"$STATE_DIR/smoke-last.log" 2>&1; then
    passed=$((passed + 1)); log "ok: $what"
  else
    failed=$((failed + 1)); log "FAILED: $what"; sed 's/^/    /' "$STATE_DIR/smoke-last.log" | tail -n 30 >&2
  fi
}

rayjob_doc() { sed "s|@RAY_IMAGE@|$RAY_IMAGE_ALIAS|g" "$CLUSTER_DIR/manifests/smoke-rayjob.yaml"; }

crds_apply() {
  kubectl_ apply --server-side -f "$CHART/crds" &&
    wait_for "the RayJob CRD to be established" 60 \
      kubectl_ wait --for condition=established --timeout=5s crd/rayjobs.ray.io crd/rayclusters.ray.io
}
rayjob_valid() { rayjob_doc | kubectl_ -n default apply --dry-run=server -f -; }
rayjob_invalid_refused() {
  local out
  if out="$(rayjob_doc | sed 's/replicas: 1$/replicas: "one"/' | kubectl_ -n default apply --dry-run=server -f - 2>&1)"; then
    echo "a RayJob with replicas: \"one\" was accepted"; return 1
  fi
  grep -q 'must be of type integer' <<<"$out" || { echo "$out"; return 1; }
}

pod_runs() {
  kubectl_ -n "$NS" run probe --image="$BUSYBOX_IMAGE" --image-pull-policy=Never --restart=Never \
    -- sh -c 'echo probe-started; sleep 600' &&
    kubectl_ -n "$NS" wait --for=condition=Ready pod/probe --timeout=90s
}
pod_logs() { kubectl_ -n "$NS" logs probe | grep -q probe-started; }
pod_dns() { kubectl_ -n "$NS" exec probe -- nslookup kubernetes.default.svc.$CLUSTER_DOMAIN | grep -q "$KUBERNETES_SERVICE_IP"; }

find_helm() { command -v helm || { [[ -x $REPO_DIR/.tools/bin/helm ]] && echo "$REPO_DIR/.tools/bin/helm"; }; }
operator_install() {
  local helm values=()
  helm="$(find_helm)" || { echo "no helm: run scripts/tools/get-helm.sh"; return 1; }
  [[ -f $VALUES ]] && values=(--values "$VALUES")
  "$helm" --kubeconfig "$KUBECONFIG_PATH" upgrade --install kuberay-operator "$CHART" \
    --namespace kuberay-system --create-namespace "${values[@]}" --wait --timeout 180s
}
rayjob_succeeds() {
  rayjob_doc | kubectl_ -n "$NS" apply -f - || return 1
  local deadline=$((SECONDS + 900)) status=""
  while ((SECONDS < deadline)); do
    status="$(kubectl_ -n "$NS" get rayjob smoke -o jsonpath='{.status.jobStatus}/{.status.jobDeploymentStatus}')"
    case "$status" in
      SUCCEEDED/*) break ;;
      FAILED/* | */Failed) break ;;
    esac
    sleep 5
  done
  kubectl_ -n "$NS" get rayjob,raycluster,pods -o wide
  kubectl_ -n "$NS" logs job/smoke --tail=20 || true
  [[ $status == SUCCEEDED/* ]] || { echo "RayJob status: ${status:-none}"; return 1; }
  kubectl_ -n "$NS" logs job/smoke | grep -q 'aks-ray-smoke 14.0'
}

main() {
  local stage="${1:-$(cat "$STATE_DIR/stage" 2>/dev/null || echo none)}"
  case "$stage" in control-plane | node | full) ;; *) die "no cluster is up (stage '$stage')" ;; esac
  # A namespace left by an earlier run goes first, with everything in it.
  kubectl_ delete namespace "$NS" --ignore-not-found --timeout=180s >/dev/null
  kubectl_ create namespace "$NS" >/dev/null
  check "KubeRay CRDs apply and are established" crds_apply
  check "a RayJob passes server-side validation" rayjob_valid
  check "a malformed RayJob is refused by the API server" rayjob_invalid_refused
  if [[ $stage != control-plane ]]; then
    check "a pod runs" pod_runs
    check "its logs are served" pod_logs
    check "exec works and the pod resolves kubernetes.default" pod_dns
  fi
  if [[ $stage == full ]]; then
    check "the KubeRay operator installs with Helm and becomes available" operator_install
    check "a RayJob reaches SUCCEEDED" rayjob_succeeds
  fi
  kubectl_ delete namespace "$NS" --wait=false >/dev/null 2>&1 || true
  echo "smoke: $passed passed, $failed failed"
  ((failed == 0))
}

main "$@"
