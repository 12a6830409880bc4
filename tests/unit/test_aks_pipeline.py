"""The aks target through the real step list: Azure and Terraform steps for real (fake ARM transport, fake
terraform on PATH), the Kubernetes steps stood in for; the order, what the Kubernetes steps receive, and
clean-up on every path."""

from __future__ import annotations

import dataclasses
import functools
import os

import pytest
from azure_http_fakes import FakeAzure, actions_environ, usage, vm_sku
from terraform_fakes import FakeTerraform

from aks_ray import config, credentials, gha, infra, pipeline, rayjob
from aks_ray.config import RAY_POOL_LABEL, RAY_POOL_TAINT
from aks_ray.errors import EXIT_USER, OperationalError

BACKEND = "resource_group_name=tfstate-rg,storage_account_name=tfstate,container_name=tfstate,key=aks-ray.tfstate"
SKUS = [vm_sku("Standard_D2s_v5", "standardDSv5Family", 2), vm_sku("Standard_D4s_v5", "standardDSv5Family", 4)]
KUBE_STEPS = {"operator", "submit", "wait", "collect", "cleanup"}


@pytest.fixture(autouse=True)
def plain_annotations():
    gha.use_workflow_commands(False)


@pytest.fixture
def tf(tmp_path, monkeypatch) -> FakeTerraform:
    return FakeTerraform(tmp_path, monkeypatch)


def cloud(quota: int = 100) -> FakeAzure:
    return FakeAzure(
        cluster_exists=True, pools=[], skus=SKUS, usages=[usage("cores", "Total", 0, quota), usage("standardDSv5Family", "DSv5", 0, quota)]
    )


def load(tmp_path, tf: FakeTerraform, monkeypatch, **env: str | None) -> config.Config:
    """The step's environment in os.environ, as on a runner: every step reads its Config anew from it."""
    for name in [n for n in os.environ if n.startswith(("AKS_RAY_", "ARM_", "AZURE_", "GITHUB_", "ACTIONS_", "KUBECONFIG"))]:
        monkeypatch.delenv(name)
    for name, value in {**actions_environ(tmp_path, **env), "AKS_RAY_TERRAFORM_DIR": str(tf.dir)}.items():
        monkeypatch.setenv(name, value)
    return config.load({})


class KubeSteps:
    """Stands in for the Kubernetes steps: records the Config each received; one of them may fail."""

    def __init__(self, failing: str | None = None, error: BaseException | None = None) -> None:
        self.failing, self.error = failing, error
        self.received: dict[str, config.Config] = {}

    def __call__(self, step_id: str, cfg: config.Config) -> int:
        self.received[step_id] = cfg
        if step_id == self.failing:
            raise self.error or OperationalError(f"{step_id} failed")
        return 0


def run_aks(cfg: config.Config, azure: FakeAzure, kube: KubeSteps) -> int:
    seams = {
        "infra-plan": functools.partial(infra.plan_step, transport=azure.transport()),
        "credentials": functools.partial(credentials.main, transport=azure.transport()),
        "destroy": functools.partial(infra.destroy_step, transport=azure.transport()),
    }

    def run(step: pipeline.Step, cfg: config.Config) -> int:
        function = functools.partial(kube, step.id) if step.id in KUBE_STEPS else seams.get(step.id, step.function)
        return pipeline.run_step(dataclasses.replace(step, function=function), cfg)

    return pipeline.execute(cfg, pipeline.steps_for("aks"), run=run)


def test_success_provisions_trains_on_the_ray_pool_and_destroys(tmp_path, tf, monkeypatch):
    azure, kube = cloud(), KubeSteps()
    cfg = load(tmp_path, tf, monkeypatch)

    assert run_aks(cfg, azure, kube) == 0

    assert tf.commands() == ["init", "plan", "show", "apply", "output", "init", "state", "destroy"]
    given = kube.received["submit"]
    kubeconfig = tmp_path / "runner-temp" / "aks-ray" / "kubeconfig-aksray-aks"
    # The kubeconfig reached the later steps the way it does in the action: exported, then read from the environment.
    assert given.kube.kubeconfig == kubeconfig
    assert rayjob.node_selector(given) == {RAY_POOL_LABEL[0]: RAY_POOL_LABEL[1]}
    assert [(t["key"], t["value"], t["effect"]) for t in rayjob.tolerations(given)] == [RAY_POOL_TAINT]
    assert given.training == cfg.training
    assert f"KUBECONFIG={kubeconfig}" in (tmp_path / "gh" / "env").read_text()
    # The preflight and the credentials both went through Azure.
    assert azure.called("usages") and azure.called("list_user_credential")
    outputs = (tmp_path / "gh" / "output").read_text()
    assert "cluster-name=aksray-aks\n" in outputs and "oidc-issuer-url=https://eastus.oic.prod-aks.azure.com/tenant/issuer/\n" in outputs
    # One timer for every phase, on this target too.
    phases = cfg.run_dir.timings().phases
    assert {"infra-plan", "infra-apply", "credentials", "destroy"} <= set(phases)
    assert [r.step for r in cfg.run_dir.steps()] == [s.id for s in pipeline.steps_for("aks")][1:]  # validate writes nothing


def test_on_success_keeps_a_failed_run_for_debugging(tmp_path, tf, monkeypatch):
    cfg = load(tmp_path, tf, monkeypatch, AKS_RAY_DESTROY_POLICY="on-success", AKS_RAY_TF_BACKEND_CONFIG=BACKEND)
    cfg.run_dir.save_metrics({"status": "FAILED"})  # what collect writes after a failed job

    assert run_aks(cfg, cloud(), KubeSteps("wait")) == 1

    assert "destroy" not in tf.commands()


def test_a_crash_in_a_kubernetes_step_still_collects_cleans_up_and_destroys(tmp_path, tf, monkeypatch):
    kube = KubeSteps("wait", RuntimeError("a bug"))
    with pytest.raises(RuntimeError, match="a bug"):
        run_aks(load(tmp_path, tf, monkeypatch, AKS_RAY_DESTROY_POLICY="always"), cloud(), kube)

    assert {"collect", "cleanup"} <= set(kube.received)
    assert tf.commands()[-3:] == ["init", "state", "destroy"]


def test_a_failed_apply_destroys_what_it_may_have_created(tmp_path, tf, monkeypatch):
    tf.exit("apply", 1)
    kube = KubeSteps()

    assert run_aks(load(tmp_path, tf, monkeypatch), cloud(), kube) == 1

    assert tf.commands()[-3:] == ["init", "state", "destroy"]
    assert kube.received == {}


def test_a_failed_preflight_touches_nothing_and_says_why_in_the_outputs(tmp_path, tf, monkeypatch):
    cfg = load(tmp_path, tf, monkeypatch)

    assert run_aks(cfg, cloud(quota=4), KubeSteps()) == EXIT_USER

    assert tf.calls() == []
    failed = cfg.run_dir.load_metrics()["failed_step"]
    assert failed["step"] == "infra-plan" and "quota" in failed["error"]


def test_a_failed_destroy_fails_a_successful_run(tmp_path, tf, monkeypatch, capsys):
    tf.exit("destroy", 1)

    assert run_aks(load(tmp_path, tf, monkeypatch), cloud(), KubeSteps()) == 1

    assert "az group delete -n aksray-rg" in capsys.readouterr().err


def test_a_reused_cluster_with_no_changes_skips_apply_and_destroy(tmp_path, tf, monkeypatch):
    tf.exit("plan", 0)

    cfg = load(tmp_path, tf, monkeypatch, AKS_RAY_DESTROY_POLICY="never", AKS_RAY_TF_BACKEND_CONFIG=BACKEND)
    assert run_aks(cfg, cloud(), KubeSteps()) == 0

    assert tf.commands() == ["init", "plan", "output"]


def test_a_pull_request_runs_on_the_kept_cluster_with_the_pull_request_identity(tmp_path, tf, monkeypatch):
    """Issue 12: no plan, no apply, no destroy, no operator install; the access check asks only for its namespace."""
    tf.stdout("output", {})  # no state read: the names come from the inputs
    azure = cloud()
    azure.k8s_namespaces_allowed = ("aks-ray-pr",)  # RBAC Writer on that namespace, nothing cluster-wide
    kube = KubeSteps()
    cfg = load(
        tmp_path,
        tf,
        monkeypatch,
        GITHUB_EVENT_NAME="pull_request",
        AKS_RAY_INFRA_MODE="reuse",
        AKS_RAY_DESTROY_POLICY="never",
        AKS_RAY_NAMESPACE="aks-ray-pr",
        AKS_RAY_RESOURCE_GROUP="aksray-rg",
        AKS_RAY_CLUSTER_NAME="aksray-aks",
    )

    assert run_aks(cfg, azure, kube) == 0

    assert "plan" not in tf.commands() and "apply" not in tf.commands() and "destroy" not in tf.commands()
    assert not azure.called("usages"), "no preflight: nothing is planned"
    assert [c.path for c in azure.called("k8s_namespaces")] == ["/api/v1/namespaces/aks-ray-pr/pods"]
    assert "operator" not in kube.received, "the operator is the cluster's"
    assert {"submit", "wait", "collect", "cleanup"} <= set(kube.received)
    assert dict((r.step, r.outcome) for r in cfg.run_dir.steps())["operator"] == "success"


def test_a_pull_request_that_would_apply_stops_before_anything(tmp_path, tf, monkeypatch):
    azure, kube = cloud(), KubeSteps()
    with pytest.raises(config.ConfigError) as caught:
        load(tmp_path, tf, monkeypatch, GITHUB_EVENT_NAME="pull_request")  # infra-mode apply, the default

    assert any("--allow-pull-request-infra" in problem for problem in caught.value.problems)
    assert tf.calls() == [] and azure.calls == [] and kube.received == {}


def test_skip_needs_a_kubeconfig_and_calls_no_azure(tmp_path, tf, monkeypatch):
    azure = cloud()
    assert run_aks(load(tmp_path, tf, monkeypatch, AKS_RAY_INFRA_MODE="skip"), azure, KubeSteps()) == EXIT_USER

    kube = KubeSteps()
    given = tmp_path / "my-kubeconfig"
    (tmp_path / "again").mkdir()
    cfg = load(tmp_path / "again", tf, monkeypatch, AKS_RAY_INFRA_MODE="skip", KUBECONFIG=str(given), AKS_RAY_KUBE_CONTEXT="mine")
    assert run_aks(cfg, azure, kube) == 0

    assert kube.received["submit"].kube.kubeconfig == given
    assert kube.received["submit"].kube.kube_context == "mine"
    assert tf.calls() == [] and azure.calls == []


def test_dry_run_touches_nothing_and_shows_the_terraform_variables(tmp_path, tf, monkeypatch, capsys):
    cfg = load(tmp_path, tf, monkeypatch, AKS_RAY_DRY_RUN="true")

    assert pipeline.run(cfg) == 0

    out = capsys.readouterr().out
    assert '#   ray_vm_size = "Standard_D4s_v5"' in out
    assert "kind: RayJob" in out and "aks-ray.io/pool" in out  # the RayJob lands on the Ray pool
    assert tf.calls() == []
    assert not cfg.output_dir.exists()
