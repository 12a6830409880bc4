"""terraform/: formatted, parsed and checked against what the Python side relies on, and checkov-clean.

- `terraform fmt -check` with the real Terraform CLI, or OpenTofu built by
  `make terraform-install` where there is none (skipped, saying so, if neither);
- the HCL parsed with python-hcl2: every variable typed, described and
  validated, defaults equal to the CLI's, the two pools as specified, the Ray
  pool's label and taint exactly config.RAY_POOL_LABEL/RAY_POOL_TAINT, the
  outputs infra.py reads, tags with the run id and expiry;
- checkov (installed by `make checkov-install` in .tools/checkov-venv, apart from
  the project's venv): no failed check, and every skipped one says why.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import hcl2
import pytest

from aks_ray import config, infra, versions

REPO = Path(__file__).resolve().parents[2]
TERRAFORM_DIR = REPO / "terraform"
CHECKOV = REPO / ".tools" / "checkov-venv" / "bin" / "checkov"


def terraform_bin() -> str | None:
    """TERRAFORM_BIN, else Terraform at /usr/local/bin or on PATH, else the OpenTofu `make terraform-install` built."""
    for candidate in (os.environ.get("TERRAFORM_BIN"), "/usr/local/bin/terraform", shutil.which("terraform")):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    built = REPO / ".tools" / f"opentofu-{versions.OPENTOFU_VERSION}" / "tofu"
    return str(built) if built.is_file() else None


def clean(value: Any) -> Any:
    """python-hcl2 keeps HCL's quotes and adds block markers; take both away."""
    if isinstance(value, dict):
        return {clean(k): clean(v) for k, v in value.items() if k not in ("__is_block__", "__comments__", "__inline_comments__")}
    if isinstance(value, list):
        return [clean(v) for v in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def parse(name: str) -> dict[str, Any]:
    with open(TERRAFORM_DIR / name, encoding="utf-8") as handle:
        return clean(hcl2.load(handle))


def blocks(doc: dict[str, Any], kind: str) -> dict[str, Any]:
    """{'label': body} for `variable "x" {}`, {'type.name': body} for resources."""
    found: dict[str, Any] = {}
    for item in doc.get(kind, []):
        for label, body in item.items():
            if kind in ("resource", "data"):
                for name, inner in body.items():
                    found[f"{label}.{name}"] = inner
            else:
                found[label] = body
    return found


VARIABLES = blocks(parse("variables.tf"), "variable")
RESOURCES = blocks(parse("main.tf"), "resource")
OUTPUTS = blocks(parse("outputs.tf"), "output")
LOCALS = parse("locals.tf")["locals"][0]


def single(block: Any) -> dict[str, Any]:
    """A nested block parses as a one-element list."""
    assert isinstance(block, list) and len(block) == 1, block
    return block[0]


# ------------------------------------------------------------- terraform CLI


def test_terraform_fmt_check():
    binary = terraform_bin()
    if binary is None:
        pytest.skip(
            f"no Terraform CLI here: install Terraform {versions.TERRAFORM_VERSION}, or run `make terraform-install`, which builds "
            f"OpenTofu {versions.OPENTOFU_VERSION} from its Go module into .tools/; or point TERRAFORM_BIN at one"
        )
    result = subprocess.run(
        [binary, "fmt", "-check", "-diff", "-recursive", str(TERRAFORM_DIR)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, f"terraform fmt would change:\n{result.stdout}{result.stderr}"


# ------------------------------------------------------------------- HCL


@pytest.mark.parametrize("name", sorted(VARIABLES))
def test_every_variable_is_typed_described_and_validated(name):
    body = VARIABLES[name]
    assert body.get("type"), f"variable {name} has no type"
    assert len(body.get("description", "")) >= 20, f"variable {name} needs a description that says what it is"
    if body["type"] in ("bool", "${bool}"):
        return  # a bool has nothing to validate beyond its type
    validations = body.get("validation", [])
    assert validations, f"variable {name} has no validation block"
    for validation in validations:
        assert validation["condition"].startswith("${") and name in validation["condition"]
        message = validation["error_message"]
        assert message.endswith(".") and len(message) >= 20, f"variable {name}: error messages are plain sentences"


def test_defaults_match_the_command_line():
    defaults = {f.name: f.default for f in dataclasses.fields(config.AzureOptions)}
    for name in ("location", "name_prefix", "kubernetes_version", "system_vm_size", "system_node_count", "ray_vm_size", "ray_node_count"):
        assert VARIABLES[name]["default"] == defaults[name], name
    assert VARIABLES["kubernetes_version"]["default"] == versions.KUBERNETES_VERSION


def test_the_variables_infra_passes_are_declared():
    cfg = config.load({}, {"AKS_RAY_TARGET": "aks", "ARM_SUBSCRIPTION_ID": "33333333-3333-3333-3333-333333333333"})
    import datetime as dt

    assert set(infra.terraform_variables(cfg, dt.datetime.now(dt.timezone.utc))) <= set(VARIABLES)


def test_provider_pin_matches_versions_py():
    terraform = parse("terraform.tf")["terraform"][0]
    azurerm = terraform["required_providers"][0]["azurerm"]
    assert azurerm["source"] == "hashicorp/azurerm"
    assert azurerm["version"] == f"= {versions.AZURERM_PROVIDER_VERSION}"
    assert "azurerm" in terraform["backend"][0], "state goes to an azurerm backend configured by -backend-config"


def test_cluster_has_oidc_workload_identity_and_no_local_accounts():
    cluster = RESOURCES["azurerm_kubernetes_cluster.this"]
    assert cluster["oidc_issuer_enabled"] is True
    assert cluster["workload_identity_enabled"] is True
    assert cluster["local_account_disabled"] is True
    assert single(cluster["azure_active_directory_role_based_access_control"])["azure_rbac_enabled"] is True
    assert cluster["kubernetes_version"] == "${var.kubernetes_version}"
    assert "http_application_routing_enabled" not in cluster, "the HTTP application routing add-on was retired in 2025"


def test_system_pool_runs_critical_addons_only():
    pool = single(RESOURCES["azurerm_kubernetes_cluster.this"]["default_node_pool"])
    assert pool["only_critical_addons_enabled"] is True
    assert pool["vm_size"] == "${var.system_vm_size}"
    assert pool["node_count"] == "${var.system_node_count}"


def test_ray_pool_carries_exactly_the_label_and_taint_the_rayjob_uses():
    pool = RESOURCES["azurerm_kubernetes_cluster_node_pool.ray"]
    assert pool["mode"] == "User"
    assert pool["vm_size"] == "${var.ray_vm_size}"
    assert pool["node_labels"] == "${local.ray_pool_labels}"
    assert pool["node_taints"] == "${local.ray_pool_taints}"
    key, value = config.RAY_POOL_LABEL
    assert LOCALS["ray_pool_labels"] == {key: value}
    taint_key, taint_value, effect = config.RAY_POOL_TAINT
    assert LOCALS["ray_pool_taints"] == [f"{taint_key}={taint_value}:{effect}"]


def test_ray_pool_scales_to_zero_or_keeps_a_fixed_count():
    pool = RESOURCES["azurerm_kubernetes_cluster_node_pool.ray"]
    assert pool["auto_scaling_enabled"] == "${local.ray_autoscaling}"
    assert pool["node_count"] == "${local.ray_autoscaling ? null : var.ray_node_count}"
    assert pool["min_count"] == "${local.ray_autoscaling ? var.ray_autoscaling.min_nodes : null}"
    assert "var.ray_autoscaling.min_nodes >= 0" in VARIABLES["ray_autoscaling"]["validation"][0]["condition"]


def test_tags_carry_the_run_id_set_once_and_an_expiry_every_apply_manages():
    assert "aks-ray-github-run-id" in LOCALS["run_tags"] and "var.github_run_id" in LOCALS["run_tags"]
    assert "aks-ray-expires-on" in LOCALS["run_tags"] and 'var.expires_on == ""' in LOCALS["run_tags"]
    for address in ("azurerm_resource_group.this", "azurerm_kubernetes_cluster.this", "azurerm_kubernetes_cluster_node_pool.ray"):
        resource = RESOURCES[address]
        assert resource["tags"] == "${local.tags}", address
        ignored = " ".join(single(resource["lifecycle"])["ignore_changes"])
        assert "aks-ray-github-run-id" in ignored, address
        # Frozen at creation, a long-lived cluster would look expired a day later and be swept.
        assert "aks-ray-expires-on" not in ignored, address


def test_the_tags_the_python_side_looks_for_are_the_ones_terraform_sets():
    from aks_ray import sweep

    key, value = sweep.MANAGED_BY_TAG
    assert f'"{key}" = "{value}"' in (TERRAFORM_DIR / "locals.tf").read_text(encoding="utf-8")
    assert f'"{sweep.EXPIRES_TAG}" = var.expires_on' in (TERRAFORM_DIR / "locals.tf").read_text(encoding="utf-8")


def test_the_provider_signs_in_as_the_variables_say():
    provider = parse("terraform.tf")["provider"][0]["azurerm"]
    assert provider["use_cli"] == "${var.use_azure_cli}"
    assert VARIABLES["use_azure_cli"]["type"] in ("bool", "${bool}")


def test_outputs_infra_reads_are_present_and_described():
    assert set(infra.PUBLIC_OUTPUTS) <= set(OUTPUTS)
    for name, body in OUTPUTS.items():
        assert body.get("description"), f"output {name} has no description"
        assert not body.get("sensitive"), f"output {name}: aks-ray publishes outputs; a secret does not belong here"


@pytest.mark.parametrize("example", sorted(p.name for p in (TERRAFORM_DIR / "examples").glob("*.tfvars")))
def test_examples_set_only_declared_variables(example):
    with open(TERRAFORM_DIR / "examples" / example, encoding="utf-8") as handle:
        values = clean(hcl2.load(handle))
    assert values and set(values) <= set(VARIABLES)
    for name, value in values.items():
        if isinstance(value, str) and "regex(" in VARIABLES[name]["validation"][0]["condition"]:
            pattern = re.search(r'regex\("(.*?)", var\.', VARIABLES[name]["validation"][0]["condition"]).group(1).replace("\\\\", "\\")
            assert re.search(pattern, value), f"{example}: {name} = {value!r} fails its validation"


# --------------------------------------------------------------- checkov

SKIP_COMMENT = re.compile(r"#\s*checkov:skip=(?P<check>CKV2?_[A-Z]+_\d+)(?::(?P<reason>.*))?")


def test_every_skipped_check_says_why():
    for path in TERRAFORM_DIR.glob("*.tf"):
        for match in SKIP_COMMENT.finditer(path.read_text(encoding="utf-8")):
            assert len((match.group("reason") or "").strip()) >= 20, f"{path.name}: {match.group('check')} is skipped without a reason"


def test_checkov_passes():
    if not CHECKOV.is_file():
        pytest.skip(f"checkov is not installed: run `make checkov-install` (checkov {versions.CHECKOV_VERSION} in .tools/checkov-venv)")
    result = subprocess.run(
        [str(CHECKOV), "--directory", str(TERRAFORM_DIR), "--framework", "terraform", "--output", "json", "--quiet", "--skip-download"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    doc = json.loads(result.stdout) if result.stdout.strip() else {}
    reports = doc if isinstance(doc, list) else [doc]
    failed = [
        f"{c['check_id']} {c['resource']} ({c['file_path']}:{c['file_line_range']}): {c['check_name']}"
        for r in reports
        for c in r.get("results", {}).get("failed_checks", [])
    ]
    assert result.returncode == 0 and not failed, "checkov failed:\n" + "\n".join(failed) + result.stderr[-2000:]
    passed = sum(r.get("summary", {}).get("passed", 0) for r in reports)
    assert passed >= 10, "checkov checked almost nothing: is it reading terraform/?"


# ------------------------------------------------------------- the two identities (issue 12, point 1)


def test_cluster_admin_for_the_deployer_is_off_unless_asked_for():
    assert VARIABLES["grant_deployer_cluster_admin"]["default"] is False
    admins = RESOURCES["azurerm_role_assignment.cluster_admin"]
    assert "var.grant_deployer_cluster_admin ?" in admins["for_each"]
    # aks-ray's own apply asks for it: the applying identity installs the operator and runs the job next.
    cfg = config.load({}, {"AKS_RAY_TARGET": "aks", "ARM_SUBSCRIPTION_ID": "33333333-3333-3333-3333-333333333333"})
    import datetime as dt

    assert infra.terraform_variables(cfg, dt.datetime.now(dt.timezone.utc))["grant_deployer_cluster_admin"] is True


def test_the_pull_request_identity_gets_cluster_user_and_namespace_writer_only():
    assert VARIABLES["pull_request_principal_id"]["default"] is None
    assert VARIABLES["pull_request_namespaces"]["default"] == ["aks-ray-pr"]
    granted = {
        name: body
        for name, body in RESOURCES.items()
        if name.startswith("azurerm_role_assignment.") and "var.pull_request_principal_id" in str(body["principal_id"])
    }
    assert set(granted) == {"azurerm_role_assignment.pull_request_cluster_user", "azurerm_role_assignment.pull_request_namespace_writer"}
    user = granted["azurerm_role_assignment.pull_request_cluster_user"]
    writer = granted["azurerm_role_assignment.pull_request_namespace_writer"]
    assert user["role_definition_name"] == "Azure Kubernetes Service Cluster User Role"
    assert user["scope"] == "${azurerm_kubernetes_cluster.this.id}"
    assert "var.pull_request_principal_id == null ? 0 : 1" in user["count"]
    assert writer["role_definition_name"] == "Azure Kubernetes Service RBAC Writer"
    assert writer["scope"] == "${azurerm_kubernetes_cluster.this.id}/namespaces/${each.value}"
    assert "var.pull_request_namespaces" in writer["for_each"]
    # Nothing else names the pull-request identity: no subscription scope, no cluster admin.
    for name, body in RESOURCES.items():
        if name not in granted:
            assert "pull_request_principal_id" not in json.dumps(body), name


def test_the_pull_request_options_reach_terraform():
    import datetime as dt

    environ = {
        "AKS_RAY_TARGET": "aks",
        "ARM_SUBSCRIPTION_ID": "33333333-3333-3333-3333-333333333333",
        "AKS_RAY_PULL_REQUEST_PRINCIPAL_ID": "55555555-5555-5555-5555-555555555555",
        "AKS_RAY_PULL_REQUEST_NAMESPACES": "aks-ray-pr, ml-pr",
    }
    variables = infra.terraform_variables(config.load({}, environ), dt.datetime.now(dt.timezone.utc))
    assert variables["pull_request_principal_id"] == "55555555-5555-5555-5555-555555555555"
    assert variables["pull_request_namespaces"] == ["aks-ray-pr", "ml-pr"]


# ------------------------------------------------------------- images on the nodes (issue 15, point 3)


def test_the_registry_is_optional_basic_without_an_admin_user():
    assert VARIABLES["container_registry_name"]["default"] is None
    registry = RESOURCES["azurerm_container_registry.this"]
    assert registry["count"] == "${var.container_registry_name == null ? 0 : 1}"
    assert registry["sku"] == "Basic"
    assert registry["admin_enabled"] is False, "no static password: the nodes pull as the kubelet identity"
    assert "anonymous_pull_enabled" not in registry
    assert registry["tags"] == "${local.tags}"
    # Azure's rule for registry names, which the provider checks too (ContainerRegistryName), and the CLI's.
    condition = VARIABLES["container_registry_name"]["validation"][0]["condition"]
    pattern = re.search(r'regex\("(.*?)", var\.', condition).group(1)
    assert pattern == config.CONTAINER_REGISTRY_NAME_PATTERN
    assert re.fullmatch(pattern, "aksrayimages") and not re.fullmatch(pattern, "aks-ray") and not re.fullmatch(pattern, "a" * 51)


def test_the_kubelet_identity_pulls_from_the_registry_and_nothing_else_is_granted_on_it():
    grant = RESOURCES["azurerm_role_assignment.kubelet_acr_pull"]
    assert grant["count"] == RESOURCES["azurerm_container_registry.this"]["count"], "the grant exists exactly when the registry does"
    assert grant["scope"] == "${azurerm_container_registry.this[0].id}"
    assert grant["role_definition_name"] == "AcrPull"
    assert grant["principal_id"] == "${azurerm_kubernetes_cluster.this.kubelet_identity[0].object_id}"
    others = [
        name
        for name, body in RESOURCES.items()
        if name != "azurerm_role_assignment.kubelet_acr_pull" and "azurerm_container_registry" in json.dumps(body)
    ]
    assert others == [], others


def test_the_registrys_login_server_is_an_output_infra_publishes():
    output = OUTPUTS["container_registry_login_server"]
    assert output["value"] == "${one(azurerm_container_registry.this[*].login_server)}"
    assert "container_registry_login_server" in infra.PUBLIC_OUTPUTS


def test_the_ray_pools_scale_down_mode_is_a_variable_defaulting_to_the_providers_delete():
    assert RESOURCES["azurerm_kubernetes_cluster_node_pool.ray"]["scale_down_mode"] == "${var.ray_scale_down_mode}"
    variable = VARIABLES["ray_scale_down_mode"]
    assert variable["default"] == "Delete"
    cli_default = next(f.default for f in dataclasses.fields(config.AzureOptions) if f.name == "ray_scale_down_mode")
    assert cli_default.capitalize() == variable["default"]
    assert 'contains(["Delete", "Deallocate"], var.ray_scale_down_mode)' in variable["validation"][0]["condition"]
    assert "Deallocate" in variable["description"] and "OS disk" in variable["description"]


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, {"container_registry_name": None, "ray_scale_down_mode": "Delete"}),
        (
            {"AKS_RAY_CONTAINER_REGISTRY_NAME": "aksrayimages", "AKS_RAY_RAY_SCALE_DOWN_MODE": "deallocate"},
            {"container_registry_name": "aksrayimages", "ray_scale_down_mode": "Deallocate"},
        ),
    ],
    ids=["defaults", "registry-and-deallocate"],
)
def test_the_registry_and_scale_down_options_reach_terraform_as_it_spells_them(environ, expected):
    import datetime as dt

    environ = {"AKS_RAY_TARGET": "aks", "ARM_SUBSCRIPTION_ID": "33333333-3333-3333-3333-333333333333", **environ}
    variables = infra.terraform_variables(config.load({}, environ), dt.datetime.now(dt.timezone.utc))
    assert {name: variables[name] for name in expected} == expected
    assert variables["ray_scale_down_mode"] in VARIABLES["ray_scale_down_mode"]["validation"][0]["condition"]


def test_a_bad_registry_name_is_refused_before_terraform():
    with pytest.raises(config.ConfigError, match="--container-registry-name"):
        config.load({}, {"AKS_RAY_TARGET": "aks", "AKS_RAY_CONTAINER_REGISTRY_NAME": "aks-ray"})
