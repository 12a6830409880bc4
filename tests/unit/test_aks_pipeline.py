"""aks-ray run --target aks: the order of the phases, what the kubeconfig pipeline receives, and clean-up on every path."""

from __future__ import annotations

import pytest
from azure_http_fakes import FakeAzure, actions_environ, usage, vm_sku
from terraform_fakes import FakeTerraform

from aks_ray import aks_pipeline, config, gha
from aks_ray.config import RAY_POOL_LABEL, RAY_POOL_TAINT
from aks_ray.errors import OperationalError, UserError

BACKEND = "resource_group_name=tfstate-rg,storage_account_name=tfstate,container_name=tfstate,key=aks-ray.tfstate"
SKUS = [vm_sku("Standard_D2s_v5", "standardDSv5Family", 2), vm_sku("Standard_D4s_v5", "standardDSv5Family", 4)]


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


def load(tmp_path, tf: FakeTerraform, **env: str | None) -> config.Config:
    return config.load({}, {**actions_environ(tmp_path, **env), "AKS_RAY_TERRAFORM_DIR": str(tf.dir)})


class KubePipeline:
    """Stands in for kube_pipeline.run: records the Config it was given, returns or raises as told."""

    def __init__(self, result: int | BaseException = 0) -> None:
        self.result = result
        self.received: list[config.Config] = []

    def __call__(self, cfg: config.Config) -> int:
        self.received.append(cfg)
        if isinstance(self.result, BaseException):
            raise self.result
        return self.result


def test_success_provisions_trains_on_the_ray_pool_and_destroys(tmp_path, tf):
    azure = cloud()
    kube = KubePipeline(0)
    cfg = load(tmp_path, tf)

    assert aks_pipeline.run(cfg, transport=azure.transport(), kube_run=kube) == 0

    assert tf.commands() == ["init", "plan", "show", "apply", "output", "init", "state", "destroy"]
    given = kube.received[0]
    kubeconfig = tmp_path / "runner-temp" / "aks-ray" / "kubeconfig-aksray-aks"
    assert given.kube.kubeconfig == kubeconfig
    assert given.kube.node_selector == (RAY_POOL_LABEL,)
    assert given.kube.tolerations == (RAY_POOL_TAINT,)
    assert given.training == cfg.training
    assert f"KUBECONFIG={kubeconfig}" in (tmp_path / "gh" / "env").read_text()
    # The preflight and the credentials both went through Azure.
    assert azure.called("usages") and azure.called("list_user_credential")
    outputs = (tmp_path / "gh" / "output").read_text().splitlines()
    assert outputs[-3:] == [
        "resource-group=aksray-rg",
        "cluster-name=aksray-aks",
        "oidc-issuer-url=https://eastus.oic.prod-aks.azure.com/tenant/issuer/",
    ]


def test_explicit_selector_and_tolerations_are_kept(tmp_path, tf):
    kube = KubePipeline(0)
    cfg = load(
        tmp_path,
        tf,
        AKS_RAY_NODE_SELECTOR="pool=gpu",
        AKS_RAY_TOLERATIONS="sku=gpu:NoSchedule",
        AKS_RAY_DESTROY_POLICY="never",
        AKS_RAY_TF_BACKEND_CONFIG=BACKEND,
    )

    aks_pipeline.run(cfg, transport=cloud().transport(), kube_run=kube)

    assert kube.received[0].kube.node_selector == (("pool", "gpu"),)
    assert kube.received[0].kube.tolerations == (("sku", "gpu", "NoSchedule"),)
    assert "destroy" not in tf.commands()


def test_on_success_keeps_a_failed_run_for_debugging(tmp_path, tf):
    cfg = load(tmp_path, tf, AKS_RAY_DESTROY_POLICY="on-success", AKS_RAY_TF_BACKEND_CONFIG=BACKEND)

    assert aks_pipeline.run(cfg, transport=cloud().transport(), kube_run=KubePipeline(1)) == 1

    assert "destroy" not in tf.commands()


def test_a_crash_in_the_kube_pipeline_still_destroys(tmp_path, tf):
    cfg = load(tmp_path, tf, AKS_RAY_DESTROY_POLICY="always")

    with pytest.raises(OperationalError, match="job failed"):
        aks_pipeline.run(cfg, transport=cloud().transport(), kube_run=KubePipeline(OperationalError("job failed")))

    assert tf.commands()[-3:] == ["init", "state", "destroy"]


def test_a_failed_apply_destroys_what_it_may_have_created(tmp_path, tf):
    tf.exit("apply", 1)
    kube = KubePipeline(0)

    with pytest.raises(OperationalError):
        aks_pipeline.run(load(tmp_path, tf), transport=cloud().transport(), kube_run=kube)

    assert tf.commands()[-3:] == ["init", "state", "destroy"]
    assert kube.received == []


def test_a_failed_preflight_touches_nothing(tmp_path, tf):
    with pytest.raises(UserError, match="quota"):
        aks_pipeline.run(load(tmp_path, tf), transport=cloud(quota=4).transport(), kube_run=KubePipeline(0))

    assert tf.calls() == []


def test_a_failed_destroy_fails_a_successful_run(tmp_path, tf, capsys):
    tf.exit("destroy", 1)

    assert aks_pipeline.run(load(tmp_path, tf), transport=cloud().transport(), kube_run=KubePipeline(0)) == 1

    assert "az group delete -n aksray-rg" in capsys.readouterr().err


def test_a_reused_cluster_with_no_changes_skips_apply_and_destroy(tmp_path, tf):
    tf.exit("plan", 0)
    cfg = load(tmp_path, tf, AKS_RAY_DESTROY_POLICY="never", AKS_RAY_TF_BACKEND_CONFIG=BACKEND)

    assert aks_pipeline.run(cfg, transport=cloud().transport(), kube_run=KubePipeline(0)) == 0

    assert tf.commands() == ["init", "plan", "output"]


def test_skip_needs_a_kubeconfig_and_calls_no_azure(tmp_path, tf):
    azure = cloud()
    with pytest.raises(UserError, match="needs a kubeconfig"):
        aks_pipeline.run(load(tmp_path, tf, AKS_RAY_INFRA_MODE="skip"), transport=azure.transport(), kube_run=KubePipeline(0))

    kube = KubePipeline(0)
    given = tmp_path / "my-kubeconfig"
    cfg = load(tmp_path, tf, AKS_RAY_INFRA_MODE="skip", KUBECONFIG=str(given), AKS_RAY_KUBE_CONTEXT="mine")
    assert aks_pipeline.run(cfg, transport=azure.transport(), kube_run=kube) == 0

    assert kube.received[0].kube.kubeconfig == given
    assert kube.received[0].kube.kube_context == "mine"
    assert kube.received[0].kube.node_selector == (RAY_POOL_LABEL,)
    assert tf.calls() == [] and azure.calls == []


def test_dry_run_touches_nothing_and_shows_the_terraform_variables(tmp_path, tf, capsys):
    azure = cloud()
    kube = KubePipeline(0)

    rc = aks_pipeline.run(load(tmp_path, tf, AKS_RAY_DRY_RUN="true"), transport=azure.transport(), kube_run=kube)

    assert rc == 0
    out = capsys.readouterr().out
    assert '#   ray_vm_size = "Standard_D4s_v5"' in out
    assert all(line.startswith("#") for line in out.splitlines()), "stdout stays a YAML stream (comments only from this part)"
    assert tf.calls() == [] and azure.calls == []
    assert kube.received[0].kube.tolerations == (RAY_POOL_TAINT,)
