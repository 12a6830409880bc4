"""manifests/pull-request-rbac.yaml on a real API server: what it lets the pull-request identity do, and not.

No pod, no RayJob: the Role and RoleBinding go into the test's namespace, the
ClusterRole and ClusterRoleBinding under names of their own (deleted after), and
the API server's own RBAC authorizer answers SubjectAccessReviews for the bound
user. (Azure's RBAC Writer is not on a non-AKS cluster: this checks the manifest's
half, tests/unit/test_identities.py the union with Writer against the code.)
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
import yaml

from aks_ray.config import PROJECT_ROOT

pytestmark = [pytest.mark.kind]

MANIFEST = Path(PROJECT_ROOT) / "manifests" / "pull-request-rbac.yaml"
PLACEHOLDER_NAMESPACE = "aks-ray-pr"
PLACEHOLDER_USER = "PULL_REQUEST_PRINCIPAL_ID"


@pytest.fixture
def bound_user(cluster, namespace):
    """Apply the manifest for a made-up object ID in the test's namespace; yield (user, authorization API)."""
    from kubernetes import client, config

    api_client = config.new_client_from_config(config_file=str(cluster.kubeconfig), context=cluster.context)
    rbac, authz = client.RbacAuthorizationV1Api(api_client), client.AuthorizationV1Api(api_client)
    user = str(uuid.uuid4())
    suffix = uuid.uuid4().hex[:6]
    text = MANIFEST.read_text(encoding="utf-8").replace(PLACEHOLDER_USER, user).replace(PLACEHOLDER_NAMESPACE, namespace)
    cluster_wide = []
    for doc in filter(None, yaml.safe_load_all(text)):
        kind = doc["kind"]
        if kind == "Role":
            rbac.create_namespaced_role(namespace, doc)
        elif kind == "RoleBinding":
            rbac.create_namespaced_role_binding(namespace, doc)
        elif kind == "ClusterRole":
            doc["metadata"]["name"] += f"-{suffix}"
            cluster_wide.append(("role", rbac.create_cluster_role(doc).metadata.name))
        elif kind == "ClusterRoleBinding":
            doc["metadata"]["name"] += f"-{suffix}"
            doc["roleRef"]["name"] += f"-{suffix}"
            cluster_wide.append(("binding", rbac.create_cluster_role_binding(doc).metadata.name))
        else:
            assert kind == "Namespace", kind  # the test's namespace stands in for it
    try:
        wait_until_bindings_are_seen(authz, user, namespace)
        yield user, authz
    finally:
        for what, name in cluster_wide:
            (rbac.delete_cluster_role if what == "role" else rbac.delete_cluster_role_binding)(name)


RBAC_CACHE_DEADLINE_S = 30.0


def wait_until_bindings_are_seen(authz, user: str, namespace: str) -> None:
    """Wait until the API server's authorizer answers with the new bindings.

    The RBAC authorizer reads bindings from an informer cache, so a review sent right
    after the create can be answered without them (CI saw "nodes list" refused once).
    Until both bindings are seen, a refusal proves nothing, so the tests start after.
    """
    deadline = time.monotonic() + RBAC_CACHE_DEADLINE_S
    while not (allowed(authz, user, namespace, "ray.io", "rayjobs", "create") and allowed(authz, user, None, "", "nodes", "list")):
        if time.monotonic() > deadline:
            pytest.fail(f"the API server did not grant the manifest's calls within {RBAC_CACHE_DEADLINE_S:.0f} s")
        time.sleep(0.5)


def allowed(authz, user: str, namespace: str | None, group: str, resource: str, verb: str) -> bool:
    resource, _, subresource = resource.partition("/")
    attributes = {"group": group, "resource": resource, "verb": verb}
    if subresource:
        attributes["subresource"] = subresource
    if namespace:
        attributes["namespace"] = namespace
    spec = {"user": user, "resourceAttributes": attributes}
    review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}
    return bool(authz.create_subject_access_review(review).status.allowed)


GRANTED = [
    ("ray.io", "rayjobs", "create"),
    ("ray.io", "rayjobs", "get"),
    ("ray.io", "rayjobs", "list"),
    ("ray.io", "rayjobs", "delete"),
    ("ray.io", "rayclusters", "get"),
]
REFUSED_IN_NAMESPACE = [
    ("", "secrets", "get"),
    ("ray.io", "rayjobs", "patch"),
    ("ray.io", "rayclusters", "delete"),
    ("rbac.authorization.k8s.io", "rolebindings", "create"),
    ("", "resourcequotas", "delete"),
]
REFUSED_CLUSTER_WIDE = [
    ("", "namespaces", "create"),
    ("", "nodes", "delete"),
    ("apiextensions.k8s.io", "customresourcedefinitions", "get"),
    ("rbac.authorization.k8s.io", "clusterroles", "create"),
]


def test_the_role_grants_the_ray_calls_in_its_namespace_only(bound_user, namespace):
    user, authz = bound_user
    for call in GRANTED:
        assert allowed(authz, user, namespace, *call), f"{call} refused in {namespace}"
        assert not allowed(authz, user, "default", *call), f"{call} allowed outside the run's namespace"
    for call in REFUSED_IN_NAMESPACE:
        assert not allowed(authz, user, namespace, *call), f"{call} allowed in {namespace}"


def test_the_cluster_role_lists_nodes_and_nothing_else(bound_user):
    user, authz = bound_user
    assert allowed(authz, user, None, "", "nodes", "list")
    for call in REFUSED_CLUSTER_WIDE:
        assert not allowed(authz, user, None, *call), f"{call} allowed cluster-wide"
