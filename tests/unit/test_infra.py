"""aks-ray infra plan | apply | destroy, against a fake terraform on PATH that records its arguments."""

from __future__ import annotations

import datetime as dt
import json
import stat
import time

import pytest
from azure_http_fakes import CLIENT, SUBSCRIPTION, TENANT, FakeAzure, actions_environ, resource_group, usage, vm_sku
from terraform_fakes import FakeTerraform

from aks_ray import config, gha, infra
from aks_ray.errors import ConfigError, OperationalError, UserError

BACKEND = "resource_group_name=tfstate-rg,storage_account_name=tfstate,container_name=tfstate,key=aks-ray/terraform.tfstate"


@pytest.fixture(autouse=True)
def plain_annotations():
    gha.use_workflow_commands(False)


@pytest.fixture
def tf(tmp_path, monkeypatch) -> FakeTerraform:
    return FakeTerraform(tmp_path, monkeypatch)


def load(tmp_path, tf: FakeTerraform | None = None, **env: str | None) -> config.Config:
    environ = actions_environ(tmp_path, **env)
    if tf is not None:
        environ["AKS_RAY_TERRAFORM_DIR"] = str(tf.dir)
    return config.load({}, environ)


def outputs_file(tmp_path) -> dict[str, str]:
    path = tmp_path / "gh" / "output"
    return dict(line.split("=", 1) for line in path.read_text().splitlines()) if path.exists() else {}


# ------------------------------------------------------------ pure parts


def test_variables_come_from_the_options(tmp_path):
    cfg = load(
        tmp_path, AKS_RAY_RAY_MIN_NODES="0", AKS_RAY_RAY_MAX_NODES="4", AKS_RAY_TAGS="team=ml,cost-center=42", AKS_RAY_EXPIRES_IN_HOURS="6"
    )
    now = dt.datetime(2030, 1, 31, 12, 0, tzinfo=dt.timezone.utc)

    variables = infra.terraform_variables(cfg, now)

    assert variables == {
        "location": "eastus",
        "name_prefix": "aksray",
        "resource_group_name": "aksray-rg",
        "cluster_name": "aksray-aks",
        "kubernetes_version": "1.36",
        "system_vm_size": "Standard_D2s_v5",
        "system_node_count": 1,
        "ray_vm_size": "Standard_D4s_v5",
        "ray_node_count": 3,
        "ray_autoscaling": {"min_nodes": 0, "max_nodes": 4},
        "ray_scale_down_mode": "Delete",
        "container_registry_name": None,
        "tags": {"team": "ml", "cost-center": "42"},
        "github_run_id": "9876543210",
        "expires_on": "2030-01-31T18:00:00Z",
        "use_azure_cli": False,
        "grant_deployer_cluster_admin": True,
        "pull_request_principal_id": None,
        "pull_request_namespaces": ["aks-ray-pr"],
    }


@pytest.mark.parametrize(
    ("policy", "expires"),
    [("always", "2030-01-31T13:00:00Z"), ("on-success", "2030-01-31T13:00:00Z"), ("never", "")],
)
def test_a_cluster_kept_on_purpose_gets_no_expiry_and_others_a_fresh_one(tmp_path, policy, expires):
    cfg = load(tmp_path, AKS_RAY_DESTROY_POLICY=policy, AKS_RAY_TF_BACKEND_CONFIG=BACKEND, AKS_RAY_EXPIRES_IN_HOURS="1")
    variables = infra.terraform_variables(cfg, dt.datetime(2030, 1, 31, 12, 0, tzinfo=dt.timezone.utc))
    assert variables["expires_on"] == expires


def test_the_provider_may_use_the_azure_cli_login_only_outside_actions(tmp_path):
    now = dt.datetime.now(dt.timezone.utc)
    assert infra.terraform_variables(load(tmp_path), now)["use_azure_cli"] is False
    assert infra.terraform_variables(load(tmp_path, ACT="true"), now)["use_azure_cli"] is True
    assert infra.terraform_variables(load(tmp_path, GITHUB_ACTIONS=None), now)["use_azure_cli"] is True


def test_every_variable_passed_is_declared_in_terraform(tmp_path):
    import hcl2

    declared = set()
    with open(infra.versions.__file__.replace("scripts/aks_ray/versions.py", "terraform/variables.tf")) as handle:
        for block in hcl2.load(handle)["variable"]:
            declared |= {name.strip('"') for name in block}
    assert set(infra.terraform_variables(load(tmp_path), dt.datetime.now(dt.timezone.utc))) <= declared


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        pytest.param(
            {}, {"ARM_USE_OIDC": "true", "ARM_USE_CLI": "false", "ARM_CLIENT_ID": CLIENT, "ARM_TENANT_ID": TENANT}, id="actions-oidc"
        ),
        pytest.param({"GITHUB_ACTIONS": None}, {"ARM_CLIENT_ID": CLIENT, "ARM_TENANT_ID": TENANT}, id="elsewhere-cli-login"),
        pytest.param({"ACT": "true"}, {"ARM_CLIENT_ID": CLIENT, "ARM_TENANT_ID": TENANT}, id="act-no-oidc"),
    ],
)
def test_terraform_signs_in_with_oidc_only_in_actions(tmp_path, env, expected):
    assert infra.terraform_env(load(tmp_path, **env)) == {
        "TF_IN_AUTOMATION": "1",
        "TF_INPUT": "0",
        "ARM_SUBSCRIPTION_ID": SUBSCRIPTION,
        **expected,
    }


def test_plan_summary_counts_like_terraform():
    plan = {
        "resource_changes": [
            {"address": "a.create", "change": {"actions": ["create"]}},
            {"address": "b.update", "change": {"actions": ["update"]}},
            {"address": "c.delete", "change": {"actions": ["delete"]}},
            {"address": "d.replace", "change": {"actions": ["delete", "create"]}},
            {"address": "e.replace", "change": {"actions": ["create", "delete"]}},
            {"address": "f.same", "change": {"actions": ["no-op"]}},
            {"address": "data.g", "change": {"actions": ["read"]}},
        ]
    }
    summary = infra.summarize_plan(plan)
    assert summary.counts == {"add": 3, "change": 1, "destroy": 3}
    assert [action for _, action in summary.rows] == ["create", "update", "destroy", "replace", "replace"]


@pytest.mark.parametrize(
    ("policy", "mode", "succeeded", "destroy"),
    [
        ("always", "apply", True, True),
        ("always", "apply", False, True),
        ("on-success", "apply", True, True),
        ("on-success", "apply", False, False),
        ("on-success", "apply", None, False),
        ("never", "apply", True, False),
        ("always", "reuse", True, False),
        ("always", "skip", True, False),
    ],
    ids=lambda v: str(v),
)
def test_destroy_policy(policy, mode, succeeded, destroy):
    assert infra.should_destroy(policy, mode, succeeded)[0] is destroy


def test_only_known_non_sensitive_outputs_are_kept():
    raw = {
        "cluster_name": {"sensitive": False, "value": "c"},
        "kube_admin_config_raw": {"sensitive": True, "value": "secret"},
        "oidc_issuer_url": {"sensitive": True, "value": "marked sensitive, so dropped"},
        "something_new": {"sensitive": False, "value": "unknown, so dropped"},
    }
    assert infra.public_outputs(raw) == {"cluster_name": "c"}


# --------------------------------------------------------- orchestration


def test_plan_with_changes_saves_the_plan_and_summarises_it(tmp_path, tf):
    cfg = load(tmp_path, tf)

    summary = infra.plan(cfg, preflight_check=False)

    assert tf.commands() == ["init", "plan", "show"]
    assert tf.call("init")["argv"] == ["init", "-input=false", "-no-color", "-reconfigure"]
    work = tf.dir / ".terraform" / "aks-ray"
    plan_call = tf.call("plan")
    assert plan_call["chdir"] == str(tf.dir)
    assert plan_call["argv"] == [
        "plan",
        "-input=false",
        "-no-color",
        "-detailed-exitcode",
        "-lock-timeout=900s",
        f"-out={work / 'aks-ray.tfplan'}",
        f"-var-file={work / 'aks-ray.tfvars.json'}",
    ]
    assert plan_call["var_file"]["github_run_id"] == "9876543210"
    assert plan_call["env"]["ARM_USE_OIDC"] == "true"
    assert tf.call("show")["argv"] == ["show", "-json", "-no-color", str(work / "aks-ray.tfplan")]
    assert stat.S_IMODE((work / "aks-ray.tfvars.json").stat().st_mode) == 0o600
    assert summary.counts == {"add": 4, "change": 0, "destroy": 0}
    step_summary = (tmp_path / "gh" / "summary.md").read_text()
    assert "**4 to add, 0 to change, 0 to destroy.**" in step_summary
    assert "| `azurerm_kubernetes_cluster_node_pool.ray` | ➕ create |" in step_summary
    assert outputs_file(tmp_path) == {"plan-add": "4", "plan-change": "0", "plan-destroy": "0"}
    # No backend configured: local state, through an override file aks-ray owns.
    assert (tf.dir / infra.LOCAL_BACKEND_OVERRIDE).read_text().startswith(infra.OVERRIDE_MARKER)


def test_backend_config_goes_to_init_with_azure_ad_auth_and_removes_the_local_override(tmp_path, tf):
    (tf.dir / infra.LOCAL_BACKEND_OVERRIDE).write_text(infra.OVERRIDE_MARKER + "\n")
    cfg = load(tmp_path, tf, AKS_RAY_TF_BACKEND_CONFIG=BACKEND)

    infra.plan(cfg, preflight_check=False)

    assert tf.call("init")["argv"][4:] == [
        "-backend-config=resource_group_name=tfstate-rg",
        "-backend-config=storage_account_name=tfstate",
        "-backend-config=container_name=tfstate",
        "-backend-config=key=aks-ray/terraform.tfstate",
        # Added: the README's storage account allows no shared keys, so the backend must not list them.
        "-backend-config=use_azuread_auth=true",
    ]
    assert not (tf.dir / infra.LOCAL_BACKEND_OVERRIDE).exists()


def test_an_explicit_use_azuread_auth_is_not_doubled(tmp_path, tf):
    infra.plan(load(tmp_path, tf, AKS_RAY_TF_BACKEND_CONFIG=BACKEND + ",use_azuread_auth=false"), preflight_check=False)
    assert [a for a in tf.call("init")["argv"] if "use_azuread_auth" in a] == ["-backend-config=use_azuread_auth=false"]


def test_an_override_someone_else_wrote_is_left_alone(tmp_path, tf):
    (tf.dir / infra.LOCAL_BACKEND_OVERRIDE).write_text('terraform {\n  backend "local" {}\n}\n')
    infra.plan(load(tmp_path, tf, AKS_RAY_TF_BACKEND_CONFIG=BACKEND), preflight_check=False)
    assert (tf.dir / infra.LOCAL_BACKEND_OVERRIDE).exists()


def test_lock_timeout_reaches_plan_apply_and_destroy(tmp_path, tf):
    cfg = load(tmp_path, tf, AKS_RAY_LOCK_TIMEOUT="2m")
    infra.plan(cfg, preflight_check=False)
    infra.apply(cfg)
    infra.destroy(cfg, succeeded=True)
    for command in ("plan", "apply", "destroy"):
        assert "-lock-timeout=120s" in tf.call(command)["argv"], command


@pytest.mark.parametrize("policy", ["never", "on-success"])
def test_a_policy_that_keeps_the_cluster_needs_a_remote_state(tmp_path, policy):
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, AKS_RAY_DESTROY_POLICY=policy)
    (problem,) = caught.value.problems
    assert problem.startswith(f"--destroy-policy: {policy} may keep the cluster") and "--tf-backend-config" in problem
    assert "--infra-mode reuse" in problem
    assert caught.value.exit_code == 2
    load(tmp_path, AKS_RAY_DESTROY_POLICY=policy, AKS_RAY_INFRA_MODE="reuse")
    load(tmp_path, AKS_RAY_DESTROY_POLICY=policy, AKS_RAY_TF_BACKEND_CONFIG=BACKEND)


def test_infra_plan_refuses_a_kept_cluster_without_remote_state_whatever_the_target(tmp_path, tf):
    cfg = load(tmp_path, tf, AKS_RAY_TARGET="local", AKS_RAY_DESTROY_POLICY="never")
    with pytest.raises(UserError, match="--tf-backend-config"):
        infra.plan(cfg, preflight_check=False)
    assert tf.calls() == []


def test_apply_applies_exactly_the_saved_plan_and_hands_on_outputs(tmp_path, tf, capsys):
    cfg = load(tmp_path, tf)
    infra.plan(cfg, preflight_check=False)

    outputs = infra.apply(cfg)

    work = tf.dir / ".terraform" / "aks-ray"
    assert tf.commands() == ["init", "plan", "show", "apply", "output"]
    assert tf.call("apply")["argv"] == ["apply", "-input=false", "-no-color", "-lock-timeout=900s", str(work / "aks-ray.tfplan")]
    assert not (work / "aks-ray.tfplan").exists(), "a spent plan is not applied twice"
    assert outputs["cluster_name"] == "aksray-aks"
    state = json.loads((cfg.output_dir / "infra.json").read_text())
    assert state["resource_group_name"] == "aksray-rg"
    assert state["applied"] is True
    assert state["plan"] == {"add": 4, "change": 0, "destroy": 0}
    assert outputs_file(tmp_path)["cluster-name"] == "aksray-aks"
    assert outputs_file(tmp_path)["oidc-issuer-url"] == "https://eastus.oic.prod-aks.azure.com/tenant/issuer/"
    everything = (cfg.output_dir / "infra.json").read_text() + (tmp_path / "gh" / "output").read_text() + capsys.readouterr().err
    assert "SECRET-ADMIN-TOKEN" not in everything


def test_a_reused_cluster_with_no_changes_skips_apply(tmp_path, tf):
    tf.exit("plan", 0)
    cfg = load(tmp_path, tf)

    summary = infra.plan(cfg, preflight_check=False)
    infra.apply(cfg)

    assert not summary.changed
    assert tf.commands() == ["init", "plan", "output"]
    assert "No changes" in (tmp_path / "gh" / "summary.md").read_text()
    assert json.loads((cfg.output_dir / "infra.json").read_text())["applied"] is False


def test_apply_without_a_saved_plan_is_refused(tmp_path, tf):
    with pytest.raises(UserError) as caught:
        infra.apply(load(tmp_path, tf))
    assert "aks-ray infra plan" in caught.value.fix
    assert tf.calls() == []


def test_a_failing_apply_fails_the_step(tmp_path, tf):
    cfg = load(tmp_path, tf)
    infra.plan(cfg, preflight_check=False)
    tf.exit("apply", 1)
    tf.stderr("apply", "Error: creating Kubernetes Cluster: unexpected status 400 (400 Bad Request) with error: InvalidParameter")

    with pytest.raises(OperationalError) as caught:
        infra.apply(cfg)

    assert "terraform apply failed with exit code 1" in caught.value.message
    assert "InvalidParameter" in caught.value.message
    assert not (cfg.output_dir / "infra.json").exists()


def test_a_missing_role_in_terraform_output_names_role_and_scope(tmp_path, tf):
    tf.exit("plan", 1)
    scope = f"/subscriptions/{SUBSCRIPTION}/resourcegroups/aksray-rg"
    tf.stderr(
        "plan",
        "Error: creating Resource Group: unexpected status 403 (403 Forbidden) with error: AuthorizationFailed: The client "
        f"'{CLIENT}' with object id '4444' does not have authorization to perform action "
        f"'Microsoft.Resources/subscriptions/resourcegroups/write' over scope '{scope}' or the scope is invalid.",
    )

    with pytest.raises(UserError) as caught:
        infra.plan(load(tmp_path, tf), preflight_check=False)

    assert f'az role assignment create --assignee {CLIENT} --role "Contributor" --scope {scope}' in caught.value.fix


def test_missing_id_token_permission_stops_before_terraform(tmp_path, tf):
    with pytest.raises(UserError) as caught:
        infra.plan(load(tmp_path, tf, ACTIONS_ID_TOKEN_REQUEST_URL=None), preflight_check=False)
    assert "id-token: write" in caught.value.fix
    assert tf.calls() == []


def test_preflight_runs_before_terraform_and_stops_it(tmp_path, tf):
    cloud = FakeAzure(
        cluster_exists=False,
        skus=[vm_sku("Standard_D2s_v5", "standardDSv5Family", 2), vm_sku("Standard_D4s_v5", "standardDSv5Family", 4)],
        usages=[usage("cores", "Total Regional vCPUs", 0, 10), usage("standardDSv5Family", "Standard DSv5 Family vCPUs", 0, 10)],
    )

    with pytest.raises(UserError) as caught:
        infra.plan(load(tmp_path, tf), transport=cloud.transport())

    assert "quota in eastus is too small" in caught.value.message
    assert tf.calls() == []


def test_reuse_reads_outputs_without_planning(tmp_path, tf):
    cfg = load(tmp_path, tf, AKS_RAY_INFRA_MODE="reuse")

    assert infra.plan(cfg) is None
    outputs = infra.apply(cfg)

    assert tf.commands() == ["init", "output"]
    assert outputs["cluster_name"] == "aksray-aks"


def test_reuse_without_state_falls_back_to_the_option_names(tmp_path, tf):
    tf.stdout("output", {})
    outputs = infra.apply(load(tmp_path, tf, AKS_RAY_INFRA_MODE="reuse", AKS_RAY_NAME_PREFIX="demo"))
    assert outputs == {"resource_group_name": "demo-rg", "cluster_name": "demo-aks", "location": "eastus"}


def test_skip_runs_no_terraform(tmp_path, tf):
    cfg = load(tmp_path, tf, AKS_RAY_INFRA_MODE="skip")
    assert infra.plan(cfg) is None
    infra.apply(cfg)
    assert not infra.destroy(cfg, succeeded=True)
    assert tf.calls() == []


@pytest.mark.parametrize(
    ("policy", "status", "destroyed"),
    [
        ("always", "FAILED", True),
        ("on-success", "SUCCEEDED", True),
        ("on-success", "FAILED", False),
        ("on-success", None, False),
        ("never", "SUCCEEDED", False),
    ],
    ids=lambda v: str(v),
)
def test_infra_destroy_follows_the_policy_and_the_runs_result(tmp_path, tf, policy, status, destroyed):
    cfg = load(tmp_path, tf, AKS_RAY_DESTROY_POLICY=policy, AKS_RAY_TF_BACKEND_CONFIG=BACKEND)
    cfg.output_dir.mkdir(parents=True)
    if status:
        (cfg.output_dir / "metrics.json").write_text(json.dumps({"status": status}))

    assert infra.destroy_step(cfg) == 0

    assert (["init", "state", "destroy"] if destroyed else []) == tf.commands()
    if destroyed:
        work = tf.dir / ".terraform" / "aks-ray"
        assert tf.call("destroy")["argv"] == [
            "destroy",
            "-input=false",
            "-no-color",
            "-auto-approve",
            "-lock-timeout=900s",
            f"-var-file={work / 'aks-ray.tfvars.json'}",
        ]
        assert tf.call("destroy")["var_file"]["cluster_name"] == "aksray-aks"
        assert json.loads((cfg.output_dir / "infra.json").read_text())["destroyed"] is True


def test_a_failed_destroy_is_an_operational_error(tmp_path, tf):
    tf.exit("destroy", 1)
    tf.stderr("destroy", "Error: deleting Kubernetes Cluster: context deadline exceeded")
    with pytest.raises(OperationalError) as caught:
        infra.destroy(load(tmp_path, tf), succeeded=True)
    assert "context deadline exceeded" in caught.value.message


def test_terraform_missing_from_path_is_a_user_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(UserError) as caught:
        infra.plan(load(tmp_path), preflight_check=False)
    assert "hashicorp/setup-terraform" in caught.value.fix


def test_warnings_around_the_json_do_not_break_reading_it(tmp_path, tf):
    # Terraform warns on stderr (merged into the output) about, say, a broken ~/.terraformrc.
    warning = "There are some problems with the CLI configuration:\n│ Warning: Unable to open CLI configuration file\n╵"
    tf.stderr("show", warning)
    tf.stderr("output", warning)
    cfg = load(tmp_path, tf)

    summary = infra.plan(cfg, preflight_check=False)
    outputs = infra.apply(cfg)

    assert summary.counts["add"] == 4
    assert outputs["cluster_name"] == "aksray-aks"


def test_a_failed_plan_leaves_no_earlier_plan_for_apply(tmp_path, tf):
    cfg = load(tmp_path, tf)
    infra.plan(cfg, preflight_check=False)
    tf.exit("plan", 1)

    with pytest.raises(OperationalError):
        infra.plan(cfg, preflight_check=False)
    with pytest.raises(UserError, match="no saved plan"):
        infra.apply(cfg)

    assert "apply" not in tf.commands()


# ------------------------------------------- destroy with an empty state

OURS = {"aks-ray-managed-by": "terraform", "aks-ray-github-run-id": "1234", "aks-ray-expires-on": "2030-01-01T00:00:00Z"}


def test_an_empty_state_deletes_the_run_group_found_by_its_tags(tmp_path, tf):
    tf.state(["data.azurerm_client_config.current"])  # only a data source: nothing managed
    cloud = FakeAzure(resource_groups={"aksray-rg": resource_group("aksray-rg", OURS)}, delete_polls=2)
    cfg = load(tmp_path, tf)

    assert infra.destroy(cfg, succeeded=True, transport=cloud.transport())

    assert tf.commands() == ["init", "state"], "terraform destroy on an empty state would only claim success"
    assert cloud.deleted == ["aksray-rg"]
    assert len(cloud.called("operation_result")) == 3, "the deletion is waited for until ARM says it is done"
    summary = (tmp_path / "gh" / "summary.md").read_text()
    assert "resource group aksray-rg (tagged as aks-ray's) was deleted" in summary


def test_an_empty_state_and_no_group_is_an_honest_nothing_to_do(tmp_path, tf):
    tf.state([])
    cloud = FakeAzure()

    assert infra.destroy(load(tmp_path, tf), succeeded=True, transport=cloud.transport())

    assert [c.method for c in cloud.called("resource_group")] == ["GET"]
    summary = (tmp_path / "gh" / "summary.md").read_text()
    assert "nothing to destroy" in summary and "destroyed" not in summary


@pytest.mark.parametrize(
    "group",
    [
        pytest.param(resource_group("aksray-rg", {"team": "ml"}), id="untagged"),
        pytest.param(resource_group("aksray-rg", OURS, managed_by="/subscriptions/x/resourceGroups/y"), id="managed-by-another"),
    ],
)
def test_an_empty_state_never_deletes_a_group_aks_ray_did_not_make(tmp_path, tf, group):
    tf.state([])
    cloud = FakeAzure(resource_groups={"aksray-rg": group})

    with pytest.raises(OperationalError) as caught:
        infra.destroy(load(tmp_path, tf), succeeded=True, transport=cloud.transport())

    assert caught.value.exit_code == 1
    assert "the Terraform state holds no resources" in caught.value.message and "left alone" in caught.value.message
    assert "az group delete -n aksray-rg" in caught.value.fix
    assert cloud.deleted == [] and [c.method for c in cloud.called("resource_group")] == ["GET"]
    assert not (tmp_path / "gh" / "summary.md").exists() or "destroyed" not in (tmp_path / "gh" / "summary.md").read_text()


def test_a_deletion_that_outlasts_its_deadline_fails_saying_so(tmp_path, tf, monkeypatch):
    tf.state([])
    cloud = FakeAzure(resource_groups={"aksray-rg": resource_group("aksray-rg", OURS)}, delete_polls=-1)
    monkeypatch.setattr(infra, "RESOURCE_GROUP_DELETE_TIMEOUT", 0.5)

    with pytest.raises(OperationalError) as caught:
        infra.destroy(load(tmp_path, tf), succeeded=True, transport=cloud.transport())

    assert "still being deleted after" in caught.value.message
    # Let the SDK's polling thread see the deletion end, so that it stops with the test.
    cloud._deleting["aksray-rg"] = 0
    deadline = time.monotonic() + 10
    while "aksray-rg" not in cloud.deleted and time.monotonic() < deadline:
        time.sleep(0.05)
    assert cloud.deleted == ["aksray-rg"]
