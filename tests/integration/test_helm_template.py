"""`helm template` of the real KubeRay 1.7.0 chart with manifests/kuberay-values.yaml, through pyhelm3 and a real helm."""

from __future__ import annotations

import pytest

from aks_ray import config, operator, versions

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def resources(kuberay_chart, helm, tmp_path_factory):
    import os

    old_path = os.environ["PATH"]
    os.environ["PATH"] = f"{os.path.dirname(helm)}:{old_path}"
    try:
        cfg = config.load(
            {},
            {
                "AKS_RAY_TARGET": "kubeconfig",
                "AKS_RAY_KUBERAY_CHART": str(kuberay_chart),
                "AKS_RAY_OUTPUT_DIR": str(tmp_path_factory.mktemp("out")),
            },
        )
        return operator.render_operator(cfg)
    finally:
        os.environ["PATH"] = old_path


def by_kind(resources, kind):
    return [r for r in resources if r["kind"] == kind]


def test_chart_version_matches_the_pin(kuberay_chart):
    import yaml

    chart = yaml.safe_load((kuberay_chart / "Chart.yaml").read_text())
    assert chart["name"] == versions.KUBERAY_CHART_NAME
    assert chart["version"] == versions.KUBERAY_CHART_VERSION


def test_values_reach_the_operator_deployment(resources):
    [deployment] = by_kind(resources, "Deployment")
    assert deployment["metadata"]["name"] == operator.OPERATOR_DEPLOYMENT
    assert deployment["metadata"]["namespace"] == "kuberay-system"
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"quay.io/kuberay/operator:v{versions.KUBERAY_CHART_VERSION}"
    values = operator.load_values()
    assert container["resources"] == values["resources"]
    gates = next(arg for arg in container["args"] if arg.startswith("--feature-gates="))
    assert "RayJobDeletionPolicy=true" in gates, "the RayJob's deletionStrategy needs this gate"


def test_crds_the_pipeline_waits_for_are_in_the_chart(resources):
    names = {crd["metadata"]["name"] for crd in by_kind(resources, "CustomResourceDefinition")}
    assert set(operator.REQUIRED_CRDS) <= names


def test_operator_may_manage_what_a_rayjob_needs(resources):
    rules = [rule for role in by_kind(resources, "ClusterRole") for rule in role.get("rules", [])]

    def allowed(group, resource, verb):
        return any(group in r.get("apiGroups", []) and resource in r.get("resources", []) and verb in r.get("verbs", []) for r in rules)

    for group, resource in (("ray.io", "rayjobs"), ("ray.io", "rayclusters"), ("batch", "jobs"), ("", "pods"), ("", "secrets")):
        assert allowed(group, resource, "create") or allowed(group, resource, "*"), f"{group}/{resource}"


def test_no_service_is_exposed_publicly(resources):
    for service in by_kind(resources, "Service"):
        assert service["spec"].get("type", "ClusterIP") == "ClusterIP", service["metadata"]["name"]
