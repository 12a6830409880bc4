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
    "sandbox-options": {
        "AKS_RAY_EGRESS_BLOCKED_CIDRS": "169.254.169.254/32,10.0.0.0/8,fd00::/8",
        "AKS_RAY_NAMESPACE_QUOTA": "pods=5,requests.cpu=4,count/rayjobs.ray.io=1",
        "AKS_RAY_OPERATOR_NAMESPACE": "ray-operators",
    },
    "no-quota-no-blocked-ranges": {"AKS_RAY_NAMESPACE_QUOTA": "none", "AKS_RAY_EGRESS_BLOCKED_CIDRS": "none"},
    "kueue-queue": {"AKS_RAY_QUEUE_NAME": "aks-ray-queue", "AKS_RAY_TIMEOUT": "20m"},
    "keep-cluster-ttl": {"AKS_RAY_KEEP_CLUSTER": "true", "AKS_RAY_KEEP_CLUSTER_TTL": "168h"},
    "lost-run-ttl-longest-kept": {"AKS_RAY_KEEP_CLUSTER": "true", "AKS_RAY_KEEP_CLUSTER_TTL": "168h", "AKS_RAY_LOST_RUN_TTL": "168h"},
    "lost-run-ttl-shortest": {"AKS_RAY_LOST_RUN_TTL": "1s"},
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
    job = rayjob.find(rendered(tmp_path, env), "RayJob")
    assert validate(job, schema) == []


@pytest.mark.parametrize("env", OPTION_SETS.values(), ids=OPTION_SETS.keys())
def test_core_objects_pass_the_kubernetes_schema(tmp_path, env):
    core = [obj for obj in rendered(tmp_path, env) if obj["kind"] != "RayJob"]
    assert {obj["kind"] for obj in core} >= {"Namespace", "LimitRange", "NetworkPolicy", "ConfigMap"}
    for obj in core:
        kubernetes_validate.validate(obj, versions.KUBERNETES_VERSION + ".0", strict=True)


def pod_templates(job):
    cluster = job["spec"]["rayClusterSpec"]
    return {
        "head": cluster["headGroupSpec"]["template"],
        "worker": cluster["workerGroupSpecs"][0]["template"],
        "submitter": job["spec"]["submitterPodTemplate"],
    }


@pytest.mark.parametrize("env", OPTION_SETS.values(), ids=OPTION_SETS.keys())
def test_sandboxed_pod_templates_pass_the_pod_schema(tmp_path, env):
    """Each pod template of the RayJob, as the Pod KubeRay makes of it, against Kubernetes' own Pod schema."""
    job = rayjob.find(rendered(tmp_path, env), "RayJob")
    for role, template in pod_templates(job).items():
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"x-{role}", **template["metadata"]}, "spec": template["spec"]}
        kubernetes_validate.validate(pod, versions.KUBERNETES_VERSION + ".0", strict=True)


def test_the_pod_schema_refuses_a_misspelt_security_field(tmp_path):
    job = rayjob.find(rendered(tmp_path, {}), "RayJob")
    template = copy.deepcopy(pod_templates(job)["head"])
    template["spec"]["securityContext"]["runAsNonRot"] = template["spec"]["securityContext"].pop("runAsNonRoot")
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "spec": template["spec"]}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(pod, versions.KUBERNETES_VERSION + ".0", strict=True)


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
    job = copy.deepcopy(rayjob.find(rendered(tmp_path, {}), "RayJob"))
    mutate(job)
    assert validate(job, schema) != []


def test_status_fixtures_have_kuberays_shape(schema):
    """The statuses the unit tests feed to diagnose and the state machine are ones KubeRay 1.7 can write."""
    objects = kuberay_objects()
    for name, job in objects.ALL_RAYJOBS.items():
        assert validate(job, schema) == [], name
        written = objects.KUBERAY_1_7_DEPLOYMENT_STATUSES - {""}  # "new" is a RayJob KubeRay has not written yet
        assert "status" not in job if name == "new" else job["status"]["jobDeploymentStatus"] in written, name


def test_kuberay_1_7_has_no_deletion_rule_for_a_stopped_job(tmp_path, schema):
    """A STOPPED job matches no rule: the CRD allows only SUCCEEDED and FAILED (and Failed), so cleanup must delete it.

    When a later KubeRay accepts STOPPED, this fails: add the rule to manifests/rayjob.yaml then.
    """
    job = copy.deepcopy(rayjob.find(rendered(tmp_path, {}), "RayJob"))
    job["spec"]["deletionStrategy"]["deletionRules"].append(
        {"policy": "DeleteCluster", "condition": {"jobStatus": "STOPPED", "ttlSeconds": 1800}}
    )
    assert validate(job, schema) != []


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
    assert kinds[-6:] == ["Namespace", "ResourceQuota", "LimitRange", "NetworkPolicy", "ConfigMap", "RayJob"], "the sandbox is shown"
    assert {"CustomResourceDefinition", "Deployment", "ServiceAccount", "ClusterRole"} <= set(kinds), (
        "the operator's objects are printed too"
    )
    assert validate(documents[-1], schema) == []
    for document in documents:
        if document["kind"] in ("CustomResourceDefinition", "RayJob"):
            continue
        kubernetes_validate.validate(document, versions.KUBERNETES_VERSION + ".0", strict=True)
    assert not (tmp_path / "out").exists()
