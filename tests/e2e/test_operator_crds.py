"""The chart's CRDs applied server-side against a real API server (issue 13, point 8). API calls only: no pod, no lock.

The first test applies the shared 1.7.0 chart's own CRDs, which is what `operator install`
does on a first install (identical content on a cluster that has them: no change). The
others work on copies of the RayJob CRD renamed into a group of their own, so that making
one "older" never touches the CRD the cluster's runs use; each is deleted afterwards.
"""

from __future__ import annotations

import copy
import uuid

import pytest

from aks_ray import config, kube, operator, versions
from aks_ray.config import PROJECT_ROOT
from aks_ray.errors import OperationalError

SHARED_CHART = PROJECT_ROOT.parent / "shared" / "fixtures" / f"kuberay-operator-{versions.KUBERAY_CHART_VERSION}"

pytestmark = [
    pytest.mark.kind,
    pytest.mark.skipif(not (SHARED_CHART / "crds").is_dir(), reason=f"the shared chart fixture {SHARED_CHART} is absent"),
]


@pytest.fixture
def api(cluster, tmp_path):
    cfg = config.load(
        {},
        {
            "AKS_RAY_TARGET": "kubeconfig",
            "AKS_RAY_OUTPUT_DIR": str(tmp_path / "out"),
            **cluster.kube_env(),
        },
    )
    connected = kube.connect(cfg)
    yield connected
    connected.api_client.close()


def managers(crd: dict) -> set[tuple[str, str]]:
    return {(entry["manager"], entry["operation"]) for entry in crd["metadata"].get("managedFields") or []}


def schema_properties(crd: dict) -> dict:
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]


def test_the_charts_crds_are_applied_server_side_as_aks_ray_and_established(api):
    crds = operator.chart_crds(SHARED_CHART)
    assert [crd["metadata"]["name"] for crd in crds] == ["rayclusters.ray.io", "raycronjobs.ray.io", "rayjobs.ray.io", "rayservices.ray.io"]

    operator.apply_crds(api, crds)

    for crd in crds:
        stored = kube.read_crd(api, crd["metadata"]["name"])
        assert ("aks-ray", "Apply") in managers(stored), managers(stored)
        assert operator.crd_established(stored)
        assert schema_properties(stored).keys() == schema_properties(crd).keys(), "the chart's schema, as the chart has it"


@pytest.fixture
def renamed(api):
    """The chart's RayJob CRD in a group of this test's own, and an "older" one: a field and a printer column fewer."""
    group = f"t{uuid.uuid4().hex[:8]}.aks-ray.test"
    newer = copy.deepcopy(next(c for c in operator.chart_crds(SHARED_CHART) if c["metadata"]["name"] == "rayjobs.ray.io"))
    newer["metadata"] = {"name": f"rayjobs.{group}"}
    newer["spec"]["group"] = group
    older = copy.deepcopy(newer)
    del schema_properties(older)["deletionStrategy"]
    older["spec"]["versions"][0]["additionalPrinterColumns"] = older["spec"]["versions"][0]["additionalPrinterColumns"][:-1]
    yield older, newer
    kube.call("delete the test CRD", lambda: api.extensions.delete_custom_resource_definition(newer["metadata"]["name"]))


def test_an_older_crd_of_aks_ray_is_brought_to_the_newer_one(api, renamed):
    older, newer = renamed
    name = newer["metadata"]["name"]
    operator.apply_crds(api, [older])
    assert "deletionStrategy" not in schema_properties(kube.read_crd(api, name))

    operator.apply_crds(api, [newer])

    stored = kube.read_crd(api, name)
    assert "deletionStrategy" in schema_properties(stored)
    assert len(stored["spec"]["versions"][0]["additionalPrinterColumns"]) == len(newer["spec"]["versions"][0]["additionalPrinterColumns"])
    assert operator.crd_established(stored) and ("aks-ray", "Apply") in managers(stored)


def create_as(api, crd: dict, manager: str) -> None:
    """Create the CRD as another tool would (helm's first install, kubectl create), under its field manager."""
    kube.call("create the test CRD", lambda: api.extensions.create_custom_resource_definition(crd, field_manager=manager))


def test_an_older_crd_helm_created_is_taken_over(api, renamed):
    """A release installed before aks-ray applied CRDs itself: helm created them; its fields are taken over."""
    older, newer = renamed
    create_as(api, older, "helm")

    operator.apply_crds(api, [newer])

    stored = kube.read_crd(api, newer["metadata"]["name"])
    assert "deletionStrategy" in schema_properties(stored)
    assert ("aks-ray", "Apply") in managers(stored)


def test_an_older_crd_another_tool_manages_is_left_to_the_clusters_owner(api, renamed):
    older, newer = renamed
    create_as(api, older, "kubectl-create")

    with pytest.raises(OperationalError) as info:
        operator.apply_crds(api, [newer])

    assert "kubectl-create" in info.value.message and "--force-conflicts" in info.value.fix
    stored = kube.read_crd(api, newer["metadata"]["name"])
    assert "deletionStrategy" not in schema_properties(stored), "nothing was forced"
