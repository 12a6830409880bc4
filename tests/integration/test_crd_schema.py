"""Every rendered RayJob against KubeRay 1.7's real RayJob CRD; core objects against Kubernetes' own schemas."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from k8s_schema import crd_schema, validate

from aks_ray import cli, config, rayjob, versions

pytestmark = pytest.mark.integration

UNIT_DIR = Path(__file__).resolve().parents[1] / "unit"


def kuberay_objects():
    spec = importlib.util.spec_from_file_location("kuberay_objects", UNIT_DIR / "kuberay_objects.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def schema(rayjob_crd):
    return crd_schema(rayjob_crd)


OPTION_SETS = {
    "defaults": {},
    "one-worker-one-epoch": {"AKS_RAY_WORKERS": "1", "AKS_RAY_EPOCHS": "1"},
    "aks-ray-pool": {"AKS_RAY_TARGET": "aks", "AKS_RAY_INFRA_MODE": "skip"},
    "big-workers": {
        "AKS_RAY_WORKERS": "8",
        "AKS_RAY_CPUS_PER_WORKER": "4",
        "AKS_RAY_MEMORY_PER_WORKER": "8Gi",
        "AKS_RAY_HEAD_MEMORY": "4Gi",
    },
    "gpu": {"AKS_RAY_USE_GPU": "true", "AKS_RAY_NODE_SELECTOR": "accelerator=nvidia", "AKS_RAY_TOLERATIONS": "sku=gpu:NoSchedule"},
    "keep-cluster-short-timeout": {"AKS_RAY_KEEP_CLUSTER": "true", "AKS_RAY_TIMEOUT": "5m"},
    "custom-mirror-and-name": {
        "AKS_RAY_MNIST_MIRROR": "https://example.org/mnist/",
        "AKS_RAY_JOB_NAME": "pr-31-mnist",
        "AKS_RAY_NAMESPACE": "team-a",
    },
    "github-context": {
        "GITHUB_RUN_ID": "9876543210",
        "GITHUB_RUN_ATTEMPT": "3",
        "GITHUB_REF": "refs/pull/42/merge",
        "GITHUB_SHA": "0123456789abcdef0123456789abcdef01234567",
    },
}


def rendered(tmp_path, env):
    cfg = config.load({}, {"AKS_RAY_OUTPUT_DIR": str(tmp_path), "AKS_RAY_TARGET": "kubeconfig", **env})
    return rayjob.render_run(cfg, rayjob.identity(cfg, rayjob.new_job_name(cfg)))


@pytest.mark.parametrize("env", OPTION_SETS.values(), ids=OPTION_SETS.keys())
def test_rendered_rayjob_passes_the_crd_schema(tmp_path, schema, env):
    job = rendered(tmp_path, env)[2]
    assert validate(job, schema) == []


@pytest.mark.parametrize("env", OPTION_SETS.values(), ids=OPTION_SETS.keys())
def test_core_objects_pass_the_kubernetes_schema(tmp_path, env):
    namespace, configmap, _ = rendered(tmp_path, env)
    for obj in (namespace, configmap):
        kubernetes_validate.validate(obj, versions.KUBERNETES_VERSION + ".0", strict=True)


# The validator itself must be able to say no, or the tests above prove nothing.
def _mutations():
    def misspelt(job):
        job["spec"]["submiterConfig"] = job["spec"].pop("submitterConfig")

    def wrong_type(job):
        job["spec"]["activeDeadlineSeconds"] = "1h"

    def legacy_and_rules(job):
        job["spec"]["deletionStrategy"]["onSuccess"] = {"policy": "DeleteCluster"}

    def two_conditions(job):
        job["spec"]["deletionStrategy"]["deletionRules"][0]["condition"]["jobDeploymentStatus"] = "Failed"

    def bad_policy(job):
        job["spec"]["deletionStrategy"]["deletionRules"][0]["policy"] = "DeleteEverything"

    def bad_auth_mode(job):
        job["spec"]["rayClusterSpec"]["authOptions"]["mode"] = "password"

    def bad_managed_by(job):
        job["spec"]["managedBy"] = "aks-ray"

    return {f.__name__: f for f in (misspelt, wrong_type, legacy_and_rules, two_conditions, bad_policy, bad_auth_mode, bad_managed_by)}


@pytest.mark.parametrize("mutate", _mutations().values(), ids=_mutations().keys())
def test_the_validator_refuses_broken_rayjobs(tmp_path, schema, mutate):
    job = copy.deepcopy(rendered(tmp_path, {})[2])
    mutate(job)
    assert validate(job, schema) != []


def test_status_fixtures_have_kuberays_shape(schema):
    """The statuses the unit tests feed to diagnose and the state machine are ones KubeRay 1.7 can write."""
    objects = kuberay_objects()
    for name, job in objects.ALL_RAYJOBS.items():
        assert validate(job, schema) == [], name
        assert job["status"]["jobDeploymentStatus"] in {"Initializing", "Running", "Complete", "Failed"}


def test_dry_run_prints_objects_that_pass_the_schemas(tmp_path, monkeypatch, capsys, schema, kuberay_chart, helm):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-such-kubeconfig"))
    monkeypatch.setenv("AKS_RAY_OUTPUT_DIR", str(tmp_path / "out"))
    monkeypatch.setenv("PATH", f"{Path(helm).parent}:{__import__('os').environ['PATH']}")
    code = cli.main(
        ["run", "--target", "kubeconfig", "--dry-run", "--workers", "1", "--epochs", "1", "--kuberay-chart", str(kuberay_chart)]
    )
    assert code == 0
    out = capsys.readouterr().out
    documents = [d for d in yaml.load_all(out, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) if d]
    kinds = [d["kind"] for d in documents]
    assert kinds[-3:] == ["Namespace", "ConfigMap", "RayJob"]
    assert {"CustomResourceDefinition", "Deployment", "ServiceAccount", "ClusterRole"} <= set(kinds), (
        "the operator's objects are printed too"
    )
    assert validate(documents[-1], schema) == []
    for document in documents:
        if document["kind"] in ("CustomResourceDefinition", "RayJob"):
            continue
        kubernetes_validate.validate(document, versions.KUBERNETES_VERSION + ".0", strict=True)
    assert not (tmp_path / "out").exists()
