"""The pull-request identity's rights on the cluster against the Kubernetes calls the code makes (issue 12, point 1).

What a pull request's run may do on the shared cluster is the union of:
- Azure's built-in "Azure Kubernetes Service RBAC Writer", assigned on the runs' namespace
  (its data actions are copied below from Azure's published role definition, a7ffa36f-...);
- manifests/pull-request-rbac.yaml: a Role for the ray.io objects, which Writer does not
  cover, and a ClusterRole to list nodes for the cost estimate.

Every Kubernetes client method named anywhere in the package is found in the source and
must be either covered by that union or listed, with its reason, as a call a pull request's
run does not need. A new call (a Secret read, say) fails here until someone decides which.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import re
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from aks_ray import config, pipeline, sandbox
from aks_ray.errors import EXIT_OK

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "scripts" / "aks_ray"
MANIFEST = ROOT / "manifests" / "pull-request-rbac.yaml"

# "Azure Kubernetes Service RBAC Writer", dataActions, less the Microsoft.ContainerService/managedClusters/ prefix.
WRITER_DATA_ACTIONS = (
    "apps/controllerrevisions/read",
    "apps/daemonsets/*",
    "apps/deployments/*",
    "apps/replicasets/*",
    "apps/statefulsets/*",
    "autoscaling/horizontalpodautoscalers/*",
    "batch/cronjobs/*",
    "coordination.k8s.io/leases/read",
    "coordination.k8s.io/leases/write",
    "coordination.k8s.io/leases/delete",
    "discovery.k8s.io/endpointslices/read",
    "batch/jobs/*",
    "configmaps/*",
    "endpoints/*",
    "events.k8s.io/events/read",
    "events/*",
    "extensions/daemonsets/*",
    "extensions/deployments/*",
    "extensions/ingresses/*",
    "extensions/networkpolicies/*",
    "extensions/replicasets/*",
    "limitranges/read",
    "metrics.k8s.io/pods/read",
    "metrics.k8s.io/nodes/read",
    "namespaces/read",
    "networking.k8s.io/ingresses/*",
    "networking.k8s.io/networkpolicies/*",
    "persistentvolumeclaims/*",
    "pods/*",
    "policy/poddisruptionbudgets/*",
    "replicationcontrollers/*",
    "resourcequotas/read",
    "secrets/*",
    "serviceaccounts/*",
    "services/*",
)
# Kubernetes verbs as Azure's data actions name them.
AZURE_VERB = {"get": "read", "list": "read", "watch": "read", "create": "write", "update": "write", "patch": "write", "delete": "delete"}

# Each client method the package calls: (API group, resource, verb) as the API server authorizes it.
# Custom-object methods are resolved per plural from the source (below).
CALLS = {
    "connect_get_namespaced_pod_exec": ("", "pods/exec", "create"),
    "create_namespace": ("", "namespaces", "create"),
    "create_namespaced_config_map": ("", "configmaps", "create"),
    "create_namespaced_lease": ("coordination.k8s.io", "leases", "create"),
    "create_namespaced_limit_range": ("", "limitranges", "create"),
    "create_namespaced_network_policy": ("networking.k8s.io", "networkpolicies", "create"),
    "create_namespaced_resource_quota": ("", "resourcequotas", "create"),
    "delete_namespace": ("", "namespaces", "delete"),
    "delete_namespaced_config_map": ("", "configmaps", "delete"),
    "delete_namespaced_lease": ("coordination.k8s.io", "leases", "delete"),
    "delete_namespaced_network_policy": ("networking.k8s.io", "networkpolicies", "delete"),
    "list_namespaced_config_map": ("", "configmaps", "list"),
    "list_namespaced_event": ("", "events", "list"),
    "list_namespaced_network_policy": ("networking.k8s.io", "networkpolicies", "list"),
    "list_namespaced_pod": ("", "pods", "list"),
    "list_node": ("", "nodes", "list"),
    "read_custom_resource_definition": ("apiextensions.k8s.io", "customresourcedefinitions", "get"),
    "patch_custom_resource_definition": ("apiextensions.k8s.io", "customresourcedefinitions", "patch"),
    "patch_namespaced_config_map": ("", "configmaps", "patch"),
    "patch_namespaced_network_policy": ("networking.k8s.io", "networkpolicies", "patch"),
    "read_namespace": ("", "namespaces", "get"),
    "read_namespaced_lease": ("coordination.k8s.io", "leases", "get"),
    "read_namespaced_pod": ("", "pods", "get"),
    "replace_namespaced_lease": ("coordination.k8s.io", "leases", "update"),
    "read_namespaced_deployment": ("apps", "deployments", "get"),
    "read_namespaced_pod_log": ("", "pods/log", "get"),
}
# The API group of each custom resource the package calls (ray.io unless named here): Kueue's Workloads,
# which job wait and submit read for a run with a queue (kube.list_workloads).
CUSTOM_GROUPS = {"workloads": "kueue.x-k8s.io"}
CUSTOM_VERBS = {"get": "get", "list": "list", "create": "create", "delete": "delete", "patch": "patch", "replace": "update"}
# What a pull request's run calls without the right to, and why that is fine.
NOT_FOR_PULL_REQUESTS = {
    ("", "namespaces", "create"): "only when the namespace is missing; the cluster owner creates it (the manifest's Namespace)",
    ("", "resourcequotas", "create"): "only when missing; refused, kube.ensure warns and the run goes on (the owner's to create)",
    ("", "limitranges", "create"): "only when missing; refused, kube.ensure warns and the run goes on (the owner's to create)",
    ("", "namespaces", "delete"): (
        "only a namespace a run created (cleanup, and job sweep for a lost run's), which a pull request's run never does"
    ),
}
# Calls of `operator install` only (the CRDs, the operator's Deployment in its own namespace), which a pull request's aks run skips.
OPERATOR_ONLY = {
    ("apiextensions.k8s.io", "customresourcedefinitions", "get"),
    # The chart's CRDs, applied server-side on a first install or a chart version change: the cluster identity's.
    ("apiextensions.k8s.io", "customresourcedefinitions", "patch"),
    ("apps", "deployments", "get"),
    # The install lock (lease.py), in the operator's namespace.
    *(("coordination.k8s.io", "leases", verb) for verb in ("create", "get", "update", "delete")),
}
# The access check of `credentials` (raw HTTP, not a client method): GET /api/v1/namespaces/<namespace>/pods.
RAW_CALLS = {("", "pods", "list")}


def manifest() -> list[dict]:
    return [doc for doc in yaml.safe_load_all(MANIFEST.read_text(encoding="utf-8")) if doc]


API_CLASSES = (
    client.CoreV1Api,
    client.AppsV1Api,
    client.NetworkingV1Api,
    client.CustomObjectsApi,
    client.ApiextensionsV1Api,
    client.CoordinationV1Api,
)


def client_methods() -> set[str]:
    names = {name for api in (*API_CLASSES, client.BatchV1Api) for name in dir(api) if not name.startswith("_")}
    return {name for name in names if not name.endswith("_with_http_info")} - {"api_client", "close"}


def source() -> str:
    return "\n".join(path.read_text(encoding="utf-8") for path in sorted(PACKAGE.glob("*.py")))


def custom_calls(text: str) -> set[tuple[str, str, str]]:
    """(group, plural, verb) of every custom-object call: the plural is the call's first string literal."""
    found = set()
    for call in re.finditer(r"\b(\w+?)_namespaced_custom_object\(", text):
        # The first string literal among the arguments, not a subscript such as meta["namespace"]; a call
        # whose plural is a variable (kube.list_custom's) is resolved through its callers below.
        arguments = text[call.end() : text.index(")", call.end())]
        plural = re.search(r'(?<!\[)"(\w+)"', arguments)
        if plural:
            found.add((CUSTOM_GROUPS.get(plural.group(1), "ray.io"), plural.group(1), CUSTOM_VERBS[call.group(1)]))
    for plural in re.findall(r"\blist_custom\([^,]+,[^,]+,\s*\"(\w+)\"", text):  # kube.list_custom(api, namespace, "rayjobs", ...)
        found.add(("ray.io", plural, "list"))
    return found


def code_calls() -> set[tuple[str, str, str]]:
    text = source()
    named = set(re.findall(r"\b[a-z][a-z_]+\b", text)) & client_methods()
    unknown = sorted(name for name in named if name not in CALLS and not name.endswith("_namespaced_custom_object"))
    assert not unknown, f"the package calls {unknown}: add them to CALLS (and decide whether a pull request's run needs them)"
    return {CALLS[name] for name in named if name in CALLS} | custom_calls(text) | RAW_CALLS


def writer_allows(group: str, resource: str, verb: str) -> bool:
    azure_verb = "action" if resource in ("pods/exec", "pods/attach", "pods/portforward") else AZURE_VERB[verb]
    action = "/".join(part for part in (group, resource, azure_verb) if part)
    return any(fnmatch.fnmatchcase(action, pattern) for pattern in WRITER_DATA_ACTIONS)


def role_grants(kind: str) -> set[tuple[str, str, str]]:
    granted = set()
    for doc in manifest():
        if doc["kind"] == kind:
            for rule in doc["rules"]:
                granted |= {(g, r, v) for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}
    return granted


def test_the_code_makes_the_calls_this_test_knows():
    """The scan finds what it should: the RayJob's create, the exec of collect, cleanup's listing by label."""
    calls = code_calls()
    assert {("ray.io", "rayjobs", "create"), ("ray.io", "rayjobs", "list"), ("", "pods/exec", "create")} <= calls
    assert ("ray.io", "rayclusters", "get") in calls
    assert ("kueue.x-k8s.io", "workloads", "list") in calls


def test_writer_and_the_manifest_cover_every_call_a_pull_request_run_makes():
    granted = role_grants("Role") | role_grants("ClusterRole")
    needed = code_calls() - NOT_FOR_PULL_REQUESTS.keys() - OPERATOR_ONLY
    missing = sorted(call for call in needed if not writer_allows(*call) and call not in granted)
    assert missing == [], "the pull-request identity could not make these calls: grant them in manifests/pull-request-rbac.yaml"


def test_what_a_pull_request_may_not_do_is_really_not_granted():
    """No stale excuse: each call listed as not for pull requests is granted by neither Writer nor the manifest."""
    granted = role_grants("Role") | role_grants("ClusterRole")
    for call, why in NOT_FOR_PULL_REQUESTS.items():
        assert not writer_allows(*call) and call not in granted, f"{call} is granted after all ({why})"


def test_writer_does_not_cover_the_ray_objects_so_the_role_is_needed():
    for call in custom_calls(source()):
        assert not writer_allows(*call), call


def test_the_manifest_grants_nothing_the_code_does_not_call():
    calls = code_calls()
    for kind in ("Role", "ClusterRole"):
        for grant in role_grants(kind):
            assert "*" not in grant, f"{kind} grants a wildcard: {grant}"
            assert grant in calls, f"{kind} grants {grant}, which no code calls"
    assert {g for g, _, _ in role_grants("Role")} == {"ray.io", "kueue.x-k8s.io"}, (
        "the Role is for what Writer cannot grant: the ray.io objects, and reading Kueue's Workloads"
    )
    assert {(r, v) for g, r, v in role_grants("Role") if g == "kueue.x-k8s.io"} == {("workloads", "list")}, "Kueue: read only"
    assert role_grants("ClusterRole") == {("", "nodes", "list")}


def test_the_manifest_binds_only_the_pull_request_identity_in_its_namespace():
    docs = {(doc["kind"], doc["metadata"]["name"]): doc for doc in manifest()}
    namespace = docs[("Namespace", "aks-ray-pr")]
    assert sandbox.namespace_labels().items() <= namespace["metadata"]["labels"].items()
    for kind in ("Role", "RoleBinding"):
        assert docs[(kind, "aks-ray-pull-request")]["metadata"]["namespace"] == "aks-ray-pr"
    for binding, role in (("RoleBinding", "Role"), ("ClusterRoleBinding", "ClusterRole")):
        doc = next(d for (k, _), d in docs.items() if k == binding)
        assert doc["roleRef"]["kind"] == role and (role, doc["roleRef"]["name"]) in docs
        assert doc["subjects"] == [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "PULL_REQUEST_PRINCIPAL_ID"}]
    assert not any(d["kind"] in ("ClusterRole", "Role") and d["metadata"]["name"].endswith("admin") for d in docs.values())


# ------------------------------------------------------------------ the operator on a pull request's run


@pytest.fixture
def helm(monkeypatch):
    """operator.main stands in for helm: each call recorded (the test asserts whether it ran, not what it returned)."""
    calls = []
    monkeypatch.setattr(pipeline, "STEP_BY_ID", dict(pipeline.STEP_BY_ID))
    step = pipeline.STEP_BY_ID["operator"]
    pipeline.STEP_BY_ID["operator"] = dataclasses.replace(step, function=lambda cfg: calls.append(cfg) or EXIT_OK)
    return calls


@pytest.mark.parametrize(
    ("env", "installs"),
    [
        pytest.param({"GITHUB_EVENT_NAME": "pull_request", "AKS_RAY_INFRA_MODE": "reuse"}, False, id="pull-request-aks-reuse"),
        pytest.param({"GITHUB_EVENT_NAME": "pull_request_target", "AKS_RAY_INFRA_MODE": "reuse"}, False, id="pull-request-target"),
        pytest.param(
            {"GITHUB_EVENT_NAME": "pull_request", "AKS_RAY_ALLOW_PULL_REQUEST_INFRA": "true"}, True, id="pull-request-with-the-opt-in"
        ),
        pytest.param({"GITHUB_EVENT_NAME": "push"}, True, id="push"),
        pytest.param({"GITHUB_EVENT_NAME": "schedule"}, True, id="schedule"),
        pytest.param({"GITHUB_EVENT_NAME": "pull_request", "AKS_RAY_TARGET": "kubeconfig"}, True, id="pull-request-on-its-own-kind"),
    ],
)
def test_a_pull_requests_aks_run_leaves_the_operator_to_the_cluster(tmp_path, helm, caplog, env, installs):
    environ = {"AKS_RAY_TARGET": "aks", "AKS_RAY_AZURE_SUBSCRIPTION_ID": "00000000-0000-0000-0000-000000000001", **env}
    environ["AKS_RAY_OUTPUT_DIR"] = str(tmp_path / "out")
    cfg = config.load({}, environ)

    with caplog.at_level("INFO"):
        assert pipeline.run_step(pipeline.STEP_BY_ID["operator"], cfg) == EXIT_OK

    assert len(helm) == (1 if installs else 0)
    assert ("uses the cluster's KubeRay operator as it is" in caplog.text) is not installs
    # Recorded as a step that succeeded, so the steps after it run.
    assert [(r.step, r.outcome) for r in cfg.run_dir.steps()] == [("operator", "success")]


def test_the_crd_apply_is_reached_only_through_the_operator_step():
    """The CRD patch (cluster identity only) lives in kube.apply_crd, which only operator.py calls; the test above
    shows a pull request's aks run never calls the operator step, so it never reaches the patch."""
    callers = {
        path.name
        for path in PACKAGE.glob("*.py")
        if re.search(r"\bapply_crd\(|patch_custom_resource_definition\(", path.read_text(encoding="utf-8"))
    }
    assert callers == {"kube.py", "operator.py"}
    assert "patch_custom_resource_definition(" not in (PACKAGE / "operator.py").read_text(encoding="utf-8")
