"""aks-ray credentials against a fake Azure at the HTTP boundary: the real azure-identity and azure-mgmt code runs."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import kubernetes
import pytest
import yaml
from azure_http_fakes import (
    AKS_TOKEN,
    ARM_TOKEN,
    CA_PEM,
    CLIENT,
    CLIENT_KEY,
    GITHUB_JWT,
    OIDC_REQUEST_TOKEN,
    SUBSCRIPTION,
    TENANT,
    FakeAzure,
    actions_environ,
    authorization_failed,
    user_kubeconfig,
)

from aks_ray import azure_auth, config, credentials, exec_plugin, gha
from aks_ray.errors import EXIT_USER, OperationalError, UserError

SECRETS = (AKS_TOKEN, ARM_TOKEN, GITHUB_JWT, OIDC_REQUEST_TOKEN)


@pytest.fixture(autouse=True)
def workflow_commands():
    gha.use_workflow_commands(True)
    yield
    gha.use_workflow_commands(False)


def load(tmp_path: Path, **overrides: str | None) -> config.Config:
    return config.load({}, actions_environ(tmp_path, **overrides))


def masked(stderr: str) -> set[str]:
    return {line.removeprefix("::add-mask::") for line in stderr.splitlines() if line.startswith("::add-mask::")}


def unmasked_leaks(stderr: str, secrets: tuple[str, ...]) -> list[str]:
    """Secrets that appear on a line other than their own ::add-mask:: command."""
    return [s for s in secrets for line in stderr.splitlines() if s in line and not line.startswith("::add-mask::")]


def test_aad_cluster_gets_a_private_kubeconfig_with_the_exec_plugin(tmp_path, capsys):
    cloud = FakeAzure(aad=True)
    cfg = load(tmp_path)

    assert credentials.main(cfg, transport=cloud.transport()) == 0

    path = tmp_path / "runner-temp" / "aks-ray" / "kubeconfig-aksray-aks"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    doc = yaml.safe_load(path.read_text())
    user = doc["users"][0]["user"]
    assert list(user) == ["exec"]
    assert user["exec"]["command"] == sys.executable
    assert user["exec"]["args"] == ["-m", "aks_ray.exec_plugin", "--azure-tenant-id", TENANT, "--azure-client-id", CLIENT]
    assert doc["clusters"][0]["cluster"]["server"].startswith("https://aksray-abc123")
    text = path.read_text()
    assert "kubelogin" not in text
    assert not [s for s in SECRETS if s in text], "no bearer token rests in the kubeconfig"

    # KUBECONFIG handed on; outputs carry the path, never a token.
    assert (tmp_path / "gh" / "env").read_text() == f"KUBECONFIG={path}\n"
    outputs = (tmp_path / "gh" / "output").read_text()
    assert outputs == f"kubeconfig={path}\ncluster-name=aksray-aks\nresource-group=aksray-rg\n"

    # The sign-in went the OIDC way: GitHub's token, exchanged for ARM and AKS tokens.
    assert len(cloud.called("github_oidc")) >= 1
    scopes = {c.form["scope"] for c in cloud.called("aad_token")}
    assert scopes == {"https://management.azure.com/.default", "6dae42f8-4368-4678-94ff-3960e28e3630/.default"}
    credential_call = cloud.called("list_user_credential")[0]
    assert credential_call.query["format"] == "exec"
    assert f"/subscriptions/{SUBSCRIPTION}/resourceGroups/aksray-rg/" in credential_call.path

    # The access check trusted the cluster's own CA, from a private file.
    k8s_call = cloud.called("k8s_namespaces")[0]
    ca_file = Path(k8s_call.verify)
    assert ca_file.read_text() == CA_PEM
    assert stat.S_IMODE(ca_file.stat().st_mode) == 0o600

    err = capsys.readouterr().err
    assert {GITHUB_JWT, ARM_TOKEN, AKS_TOKEN} <= masked(err)
    assert unmasked_leaks(err, SECRETS) == []


def test_local_account_cluster_keeps_its_user_and_masks_its_secrets(tmp_path, capsys):
    cloud = FakeAzure(aad=False)
    cfg = load(tmp_path)

    path = credentials.obtain_kubeconfig(cfg, transport=cloud.transport())

    user = yaml.safe_load(path.read_text())["users"][0]["user"]
    assert user["client-key-data"] == CLIENT_KEY
    assert "exec" not in user
    assert cloud.called("k8s_namespaces") == []
    err = capsys.readouterr().err
    assert {CLIENT_KEY, "local-account-token-789"} <= masked(err)
    assert unmasked_leaks(err, (CLIENT_KEY, "local-account-token-789", *SECRETS)) == []


def test_names_come_from_the_infra_state_file(tmp_path):
    cloud = FakeAzure()
    cfg = load(tmp_path, AKS_RAY_NAME_PREFIX="other")
    cfg.run_dir.save_infra({"resource_group_name": "aksray-rg", "cluster_name": "aksray-aks"})

    credentials.obtain_kubeconfig(cfg, transport=cloud.transport())

    assert (
        "/resourceGroups/aksray-rg/providers/Microsoft.ContainerService/managedClusters/aksray-aks"
        in cloud.called("managed_cluster")[0].path
    )


def test_waits_for_the_role_assignment_to_reach_the_cluster(tmp_path):
    cloud = FakeAzure(k8s_forbidden_times=2)
    slept = []

    credentials.obtain_kubeconfig(load(tmp_path), transport=cloud.transport(), sleep=slept.append)

    assert len(cloud.called("k8s_namespaces")) == 3
    assert len(slept) == 2


def test_a_role_that_never_arrives_fails_naming_the_role(tmp_path, monkeypatch):
    monkeypatch.setattr(credentials, "ACCESS_DEADLINE_SECONDS", 0)
    cloud = FakeAzure(k8s_forbidden_times=1000)

    with pytest.raises(OperationalError) as caught:
        credentials.obtain_kubeconfig(load(tmp_path), transport=cloud.transport(), sleep=lambda s: None)

    assert "Azure Kubernetes Service RBAC Cluster Admin" in caught.value.fix
    assert "403" in caught.value.message


def test_the_pull_request_identity_passes_the_access_check_with_its_namespace_alone(tmp_path):
    """A namespace-scoped identity may not list namespaces; the check asks only for what a run uses, in --namespace."""
    cloud = FakeAzure(k8s_namespaces_allowed=("aks-ray-pr",))

    credentials.obtain_kubeconfig(load(tmp_path, AKS_RAY_NAMESPACE="aks-ray-pr"), transport=cloud.transport(), sleep=lambda s: None)

    (check,) = cloud.called("k8s_namespaces")
    assert check.path == "/api/v1/namespaces/aks-ray-pr/pods"


def test_the_pull_request_identity_in_another_namespace_fails_naming_both_roles(tmp_path, monkeypatch):
    monkeypatch.setattr(credentials, "ACCESS_DEADLINE_SECONDS", 0)
    cloud = FakeAzure(k8s_namespaces_allowed=("aks-ray-pr",))

    with pytest.raises(OperationalError) as caught:
        credentials.obtain_kubeconfig(load(tmp_path, AKS_RAY_NAMESPACE="pr-7"), transport=cloud.transport(), sleep=lambda s: None)

    assert "403" in caught.value.message
    assert "Azure Kubernetes Service RBAC Writer' on namespace pr-7" in caught.value.fix
    assert "manifests/pull-request-rbac.yaml" in caught.value.fix


def test_missing_id_token_permission_is_named_before_any_request(tmp_path):
    cloud = FakeAzure()
    cfg = load(tmp_path, ACTIONS_ID_TOKEN_REQUEST_URL=None, ACTIONS_ID_TOKEN_REQUEST_TOKEN=None)

    with pytest.raises(UserError) as caught:
        credentials.obtain_kubeconfig(cfg, transport=cloud.transport())

    assert caught.value.exit_code == EXIT_USER
    assert "id-token: write" in caught.value.fix
    assert cloud.calls == []


def test_an_expired_github_request_token_says_so(tmp_path):
    cloud = FakeAzure(failures={"github_oidc": (401, {"message": "token expired"})})

    with pytest.raises(UserError) as caught:
        credentials.obtain_kubeconfig(load(tmp_path), transport=cloud.transport())

    assert "expired" in caught.value.message
    assert "id-token: write" in caught.value.fix
    assert cloud.called("managed_cluster") == []


def test_no_matching_federated_credential_says_which_subjects_to_add(tmp_path):
    error = {
        "error": "invalid_client",
        "error_description": "AADSTS70021: No matching federated identity record found for presented assertion.",
    }
    cloud = FakeAzure(failures={"aad_token": (400, error)})

    with pytest.raises(UserError) as caught:
        credentials.obtain_kubeconfig(load(tmp_path), transport=cloud.transport())

    assert "AADSTS70021" in caught.value.message
    assert "repo:OWNER/REPO:pull_request" in caught.value.fix


def test_a_missing_role_names_the_role_and_the_scope(tmp_path):
    scope = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/aksray-rg/providers/Microsoft.ContainerService/managedClusters/aksray-aks"
    cloud = FakeAzure(
        failures={
            "list_user_credential": authorization_failed(
                "Microsoft.ContainerService/managedClusters/listClusterUserCredential/action", scope
            )
        }
    )

    with pytest.raises(UserError) as caught:
        credentials.obtain_kubeconfig(load(tmp_path), transport=cloud.transport())

    assert "Azure Kubernetes Service Cluster User Role" in caught.value.fix
    assert (
        f'az role assignment create --assignee {CLIENT} --role "Azure Kubernetes Service Cluster User Role" --scope {scope}'
        in caught.value.fix
    )
    assert "403" in caught.value.message


def test_a_stopped_cluster_says_how_to_start_it(tmp_path):
    cloud = FakeAzure(power="Stopped")

    with pytest.raises(UserError) as caught:
        credentials.obtain_kubeconfig(load(tmp_path), transport=cloud.transport())

    assert caught.value.fix == "start it: az aks start -g aksray-rg -n aksray-aks"
    assert cloud.called("list_user_credential") == []


def test_a_missing_cluster_points_at_infra_apply(tmp_path):
    with pytest.raises(UserError) as caught:
        credentials.obtain_kubeconfig(load(tmp_path), transport=FakeAzure(cluster_exists=False).transport())

    assert "was not found" in caught.value.message
    assert "aks-ray infra apply" in caught.value.fix


def test_outside_actions_the_default_credential_chain_is_used(tmp_path):
    cfg = load(tmp_path, GITHUB_ACTIONS=None, ACTIONS_ID_TOKEN_REQUEST_URL=None, ACTIONS_ID_TOKEN_REQUEST_TOKEN=None)
    credential = azure_auth.build_credential(cfg.github, TENANT, CLIENT)
    assert type(credential.inner).__name__ == "DefaultAzureCredential"


# ------------------------------------------------------------ the exec plugin


def test_token_plugin_prints_an_exec_credential_renewed_before_expiry(tmp_path, capsys):
    out = io.StringIO()
    before = time.time()

    # The plugin reads its settings through config, from the flags the kubeconfig passes and the environment.
    rc = exec_plugin.main(
        ["--azure-tenant-id", TENANT, "--azure-client-id", CLIENT],
        environ=actions_environ(tmp_path),
        transport=FakeAzure().transport(),
        stdout=out,
    )

    assert rc == 0
    doc = json.loads(out.getvalue())
    assert doc["apiVersion"] == "client.authentication.k8s.io/v1beta1"
    assert doc["kind"] == "ExecCredential"
    assert doc["status"]["token"] == AKS_TOKEN
    renew = time.mktime(time.strptime(doc["status"]["expirationTimestamp"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    assert before + 3600 - exec_plugin.RENEW_MARGIN_SECONDS - 5 <= renew <= time.time() + 3600 - exec_plugin.RENEW_MARGIN_SECONDS + 5
    assert AKS_TOKEN in masked(capsys.readouterr().err)


def test_exec_credential_of_a_nearly_expired_token_is_due_now():
    doc = exec_plugin.exec_credential("t", expires_on=1_000_060, now=1_000_000)
    assert doc["status"]["expirationTimestamp"] == "1970-01-12T13:46:40Z"


def test_the_plugin_entry_point_fails_cleanly_without_oidc(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ACTIONS_", "GITHUB_", "ARM_", "AZURE_"))}
    env["GITHUB_ACTIONS"] = "true"
    result = subprocess.run(
        [sys.executable, "-m", "aks_ray.exec_plugin", "--azure-tenant-id", TENANT, "--azure-client-id", CLIENT],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == EXIT_USER
    assert result.stdout == ""
    assert "id-token: write" in result.stderr


@pytest.mark.parametrize(
    ("expires_on", "tokens_sent"),
    [(4_102_444_800, ["plugin-token-1", "plugin-token-1"]), (1_000_000, ["plugin-token-2", "plugin-token-3"])],
    ids=["valid-token-reused", "due-token-renewed"],
)
def test_the_kubernetes_client_runs_the_plugin_again_only_when_the_token_is_due(tmp_path, expires_on, tokens_sent):
    """The real kubernetes client reads the ExecCredential that exec_credential() shapes, and renews it when due."""
    counter = tmp_path / "calls"
    script = (
        "import json, pathlib; from aks_ray.exec_plugin import exec_credential; "
        f"p = pathlib.Path({str(counter)!r}); n = len(p.read_text()) + 1 if p.exists() else 1; p.write_text('x' * n); "
        f"print(json.dumps(exec_credential(f'plugin-token-{{n}}', {expires_on})))"
    )
    plugin = exec_plugin.kubeconfig_user(sys.executable, TENANT, CLIENT)
    plugin["args"] = ["-c", script]
    doc = credentials.render_kubeconfig(yaml.safe_load(user_kubeconfig(aad=True)), aad=True, plugin=plugin)
    path = tmp_path / "kubeconfig"
    credentials.write_private(path, yaml.safe_dump(doc))
    configuration = kubernetes.client.Configuration()

    kubernetes.config.load_kube_config(config_file=str(path), client_configuration=configuration)

    sent = [configuration.auth_settings()["BearerToken"]["value"].removeprefix("Bearer ") for _ in range(2)]
    assert sent == tokens_sent
