"""`aks-ray infra plan | apply | destroy`: Terraform for the AKS cluster, driven safely.

plan     terraform init, then plan -out to a saved plan with -detailed-exitcode;
         the changes, by resource, go to the step summary.
apply    applies exactly that saved plan (or nothing, when it has no changes,
         so a reused cluster costs seconds), then reads `terraform output -json`
         into step outputs and the run folder's infra state (no secrets).
destroy  per --destroy-policy: never, always, or on-success (the run's
         metrics.json says SUCCEEDED). A state that holds no resources (a local
         state lost with an earlier runner, say) is not taken for success: the
         run's resource group is looked up by name and its aks-ray tags, and
         deleted, or the command fails saying what is left.

plan, apply and destroy wait --lock-timeout for a state lock another run holds.
With --tf-backend-config naming a storage account, the backend signs in with
Azure AD (use_azuread_auth=true), as the README's storage account, which allows
no shared keys, requires.

Terraform signs in the way the action does: ARM_USE_OIDC with the client,
tenant and subscription IDs in GitHub Actions (the azurerm provider fetches the
job's OIDC token itself), the Azure CLI login elsewhere. Variables reach it in
a JSON variables file built from the options. The plan, the variables file and
any local state stay out of --output-dir, which is uploaded as an artifact:
a plan file holds the prior state, secrets included.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import azure_errors, config, gha, preflight, proc, sweep, versions
from .azure_auth import require_oidc
from .config import Config
from .errors import EXIT_OK, AksRayError, OperationalError, UserError

log = logging.getLogger(__name__)

PLAN_FILE = "aks-ray.tfplan"
PLAN_SUMMARY_FILE = "plan-summary.json"
VARS_FILE = "aks-ray.tfvars.json"
# Written into the Terraform folder for local state, and removed again when a
# backend is configured; the marker says it is ours to remove.
LOCAL_BACKEND_OVERRIDE = "aks_ray_local_backend_override.tf"
OVERRIDE_MARKER = "# Written by aks-ray: local state for a trial run"

TIMEOUTS = {"init": 600, "plan": 1200, "show": 300, "apply": 3600, "output": 300, "destroy": 3600, "state": 300}
# Steps that take the state lock: their deadline grows by --lock-timeout.
LOCKING_STEPS = ("plan", "apply", "destroy")
RESOURCE_GROUP_DELETE_TIMEOUT = 3600
# Interrupted, Terraform finishes the operations in flight and saves the state
# before it exits; an AKS cluster or node pool being created or deleted can take
# ten minutes and more. Bounded all the same: a second Ctrl-C stops it at once.
INTERRUPT_GRACE = 1200
# Output names copied into the infra state and the step outputs; anything else (and
# anything Terraform marks sensitive) stays out.
PUBLIC_OUTPUTS = (
    "resource_group_name",
    "cluster_name",
    "cluster_id",
    "location",
    "kubernetes_version",
    "node_resource_group",
    "oidc_issuer_url",
    "system_pool_name",
    "ray_pool_name",
    "ray_pool_node_labels",
    "ray_pool_node_taints",
    # null unless terraform/ created a registry (container_registry_name).
    "container_registry_login_server",
)
TERRAFORM_FIX = (
    f"install Terraform {versions.TERRAFORM_VERSION} "
    f"(in a workflow: hashicorp/setup-terraform with terraform_version: {versions.TERRAFORM_VERSION})."
)


# ------------------------------------------------------------ pure parts


def terraform_variables(cfg: Config, now: dt.datetime) -> dict[str, Any]:
    """The Terraform input variables for this configuration (see terraform/variables.tf)."""
    azure = cfg.azure
    autoscaling = None
    if azure.ray_min_nodes is not None and azure.ray_max_nodes is not None:
        autoscaling = {"min_nodes": azure.ray_min_nodes, "max_nodes": azure.ray_max_nodes}
    expires = now.astimezone(dt.timezone.utc) + dt.timedelta(hours=azure.expires_in_hours)
    # A cluster kept on purpose carries no expiry, so `infra sweep` leaves it alone; one
    # meant to go gets an expiry that every run applying to it moves on.
    expires_on = "" if azure.destroy_policy == "never" else expires.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "location": azure.location,
        "name_prefix": azure.name_prefix,
        "resource_group_name": cfg.resource_group,
        "cluster_name": cfg.cluster_name,
        "kubernetes_version": azure.kubernetes_version,
        "system_vm_size": azure.system_vm_size,
        "system_node_count": azure.system_node_count,
        "ray_vm_size": azure.ray_vm_size,
        "ray_node_count": azure.ray_node_count,
        "ray_autoscaling": autoscaling,
        # Terraform (and Azure) spell the modes Delete and Deallocate.
        "ray_scale_down_mode": azure.ray_scale_down_mode.capitalize(),
        "container_registry_name": azure.container_registry_name,
        "tags": dict(azure.tags),
        "github_run_id": cfg.github.run_id,
        "expires_on": expires_on,
        # In GitHub Actions the provider signs in with OIDC only (see terraform_env).
        "use_azure_cli": not (cfg.github.actions and not cfg.github.act),
        # The identity that applies is the cluster identity, and it installs the operator and runs the job right
        # after, in this run; the module's own default (false) is for other callers of terraform/.
        "grant_deployer_cluster_admin": True,
        "pull_request_principal_id": azure.pull_request_principal_id,
        "pull_request_namespaces": list(azure.pull_request_namespaces),
    }


def terraform_env(cfg: Config) -> dict[str, str]:
    """How Terraform signs in: OIDC in GitHub Actions, the Azure CLI elsewhere."""
    azure = cfg.azure
    env = {"TF_IN_AUTOMATION": "1", "TF_INPUT": "0"}
    for name, value in (
        ("ARM_SUBSCRIPTION_ID", azure.azure_subscription_id),
        ("ARM_TENANT_ID", azure.azure_tenant_id),
        ("ARM_CLIENT_ID", azure.azure_client_id),
    ):
        if value:
            env[name] = value
    if cfg.github.actions and not cfg.github.act:
        env["ARM_USE_OIDC"] = "true"
        # The state backend honours this; the provider does not (its use_cli has a schema
        # default), so the variables file sets use_azure_cli = false for it.
        env["ARM_USE_CLI"] = "false"
    return env


def backend_settings(cfg: Config) -> list[tuple[str, str]]:
    """--tf-backend-config, with use_azuread_auth=true added when it names a storage account.

    Without it the azurerm backend lists the storage account's access keys, which an
    account with shared key access disabled (as the README creates it) refuses.
    """
    settings = list(cfg.azure.tf_backend_config)
    names = {key for key, _ in settings}
    if "storage_account_name" in names and "use_azuread_auth" not in names:
        settings.append(("use_azuread_auth", "true"))
    return settings


def init_args(cfg: Config) -> list[str]:
    args = ["init", "-input=false", "-no-color", "-reconfigure"]
    args += [f"-backend-config={key}={value}" for key, value in backend_settings(cfg)]
    return args


def _lock(cfg: Config) -> str:
    return f"-lock-timeout={cfg.azure.lock_timeout}s"


def plan_args(cfg: Config, work: Path) -> list[str]:
    return [
        "plan",
        "-input=false",
        "-no-color",
        "-detailed-exitcode",
        _lock(cfg),
        f"-out={work / PLAN_FILE}",
        f"-var-file={work / VARS_FILE}",
    ]


def apply_args(cfg: Config, work: Path) -> list[str]:
    # A saved plan is applied as it is: no variables, no prompt, no re-planning.
    return ["apply", "-input=false", "-no-color", _lock(cfg), str(work / PLAN_FILE)]


def destroy_args(cfg: Config, work: Path) -> list[str]:
    return ["destroy", "-input=false", "-no-color", "-auto-approve", _lock(cfg), f"-var-file={work / VARS_FILE}"]


_ADDRESS = re.compile(r"^[A-Za-z0-9_\-]+(\[[^\]\s]*\])?(\.[A-Za-z0-9_\-]+(\[[^\]\s]*\])?)+$")


ACTION_NAMES = {
    ("create",): "create",
    ("update",): "update",
    ("delete",): "destroy",
    ("delete", "create"): "replace",
    ("create", "delete"): "replace",
}


@dataclass(frozen=True)
class PlanSummary:
    """What a plan does, by resource: the counts Terraform prints, and the rows behind them."""

    rows: tuple[tuple[str, str], ...] = ()  # (address, create|update|destroy|replace)
    # -detailed-exitcode said 2: something (resources or only outputs) would change.
    changed: bool = False

    @property
    def counts(self) -> dict[str, int]:
        by_action = Counter(action for _, action in self.rows)
        return {
            "add": by_action["create"] + by_action["replace"],
            "change": by_action["update"],
            "destroy": by_action["destroy"] + by_action["replace"],
        }

    @property
    def has_changes(self) -> bool:
        return bool(self.rows)

    def to_json(self) -> dict[str, Any]:
        return {"rows": [list(row) for row in self.rows], "changed": self.changed, **self.counts}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> PlanSummary:
        return cls(tuple((str(address), str(action)) for address, action in doc.get("rows", [])), bool(doc.get("changed")))


def summarize_plan(plan: Mapping[str, Any], changed: bool = True) -> PlanSummary:
    """The resource changes of `terraform show -json <plan>`, without their values (they may be secret)."""
    rows = []
    for change in plan.get("resource_changes") or []:
        actions = tuple((change.get("change") or {}).get("actions") or ())
        name = ACTION_NAMES.get(actions)
        if name is not None:
            rows.append((change.get("address", "?"), name))
    return PlanSummary(tuple(rows), changed)


def plan_markdown(summary: PlanSummary, cfg: Config) -> str:
    counts = summary.counts
    title = f"### Terraform plan for `{cfg.resource_group}/{cfg.cluster_name}` ({cfg.azure.location})"
    if not summary.changed:
        return f"{title}\n\nNo changes: the infrastructure matches the configuration, so apply is skipped.\n"
    if not summary.has_changes:
        return f"{title}\n\nNo resource changes; only Terraform outputs change.\n"
    lines = [
        title,
        "",
        f"**{counts['add']} to add, {counts['change']} to change, {counts['destroy']} to destroy.**",
        "",
        "| resource | action |",
        "| --- | --- |",
    ]
    icons = {"create": "➕ create", "update": "✏️ update", "destroy": "🗑️ destroy", "replace": "♻️ replace"}
    lines += [f"| `{address}` | {icons[action]} |" for address, action in summary.rows]
    return "\n".join(lines) + "\n"


def public_outputs(output_json: Mapping[str, Any]) -> dict[str, Any]:
    """The values of `terraform output -json` that may be shown: known names, never sensitive ones."""
    return {
        name: item.get("value")
        for name, item in output_json.items()
        if name in PUBLIC_OUTPUTS and isinstance(item, Mapping) and not item.get("sensitive")
    }


def should_destroy(policy: str, infra_mode: str, succeeded: bool | None) -> tuple[bool, str]:
    """Whether to destroy, and why, in words for the log."""
    if infra_mode == "skip":
        return False, "infra-mode is skip: this run manages no Azure resources"
    if infra_mode == "reuse":
        return False, "infra-mode is reuse: the cluster was there before this run and stays"
    if policy == "never":
        return False, "destroy-policy is never: the cluster stays (its tags say when it expires)"
    if policy == "always":
        return True, "destroy-policy is always"
    if succeeded is None:
        return False, "destroy-policy is on-success, but no result of the run was found: kept, to be safe"
    if succeeded:
        return True, "destroy-policy is on-success and the run succeeded"
    return False, "destroy-policy is on-success and the run failed: kept for debugging"


def step_outputs(outputs: Mapping[str, Any], summary: PlanSummary | None) -> dict[str, str]:
    values = {
        "resource-group": str(outputs.get("resource_group_name", "")),
        "cluster-name": str(outputs.get("cluster_name", "")),
        "oidc-issuer-url": str(outputs.get("oidc_issuer_url", "")),
    }
    if summary is not None:
        counts = summary.counts
        values.update({"plan-add": str(counts["add"]), "plan-change": str(counts["change"]), "plan-destroy": str(counts["destroy"])})
    return values


def json_document(output: str) -> dict[str, Any]:
    """The JSON object in a terraform command's output.

    stderr is merged into the output, and Terraform writes warnings there (a
    broken CLI configuration file, a deprecation) around the one line of JSON
    that `show -json` and `output -json` print; the JSON is that line.
    """
    try:
        return json.loads(output)
    except ValueError:
        pass
    for line in output.splitlines():
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                continue
    raise ValueError("no JSON object in the output")


# ------------------------------------------------------------------ I/O


@dataclass
class Terraform:
    """Runs the terraform CLI in the configuration folder, with the run's environment."""

    cfg: Config
    executable: str = ""
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.executable = self.executable or proc.require_executable("terraform", TERRAFORM_FIX)
        self.env = self.env or terraform_env(self.cfg)
        self.dir = self.cfg.azure.terraform_dir.resolve()
        if not (self.dir / "terraform.tf").is_file() and not any(self.dir.glob("*.tf")):
            raise UserError(
                f"{self.dir} holds no Terraform configuration (*.tf).", "point --terraform-dir at the project's terraform/ folder."
            )
        self.work = self.dir / ".terraform" / "aks-ray"

    def run(self, step: str, args: list[str], *, echo: bool = True, ok: tuple[int, ...] = (0,)) -> proc.Result:
        timeout = TIMEOUTS[step] + (self.cfg.azure.lock_timeout if step in LOCKING_STEPS else 0)
        command = [self.executable, f"-chdir={self.dir}", *args]
        result = proc.run(command, timeout=timeout, env=self.env, echo=echo, interrupt_grace=INTERRUPT_GRACE)
        if result.returncode not in ok:
            doing = f"terraform {step}"
            explained = azure_errors.explain_text(result.output, doing=doing, assignee=self.cfg.azure.azure_client_id)
            if explained is not None:
                raise explained
            tail = result.tail(15) if echo else "(output not shown: it may hold secrets)"
            raise OperationalError(
                f"{doing} failed with exit code {result.returncode}:\n{tail}",
                "read the Terraform error above; fix the input or the Azure permission it names, and re-run.",
            )
        return result

    def prepare(self) -> None:
        """Choose the backend, write the variables file, and run terraform init."""
        self.work.mkdir(mode=0o700, parents=True, exist_ok=True)
        override = self.dir / LOCAL_BACKEND_OVERRIDE
        if self.cfg.azure.tf_backend_config:
            if override.is_file() and override.read_text(encoding="utf-8").startswith(OVERRIDE_MARKER):
                override.unlink()
        else:
            log.warning(
                "no --tf-backend-config: Terraform state stays on this machine (%s); fine for a trial, not for shared use", self.dir
            )
            override.write_text(
                f'{OVERRIDE_MARKER}; set --tf-backend-config to use the azurerm backend.\nterraform {{\n  backend "local" {{}}\n}}\n',
                encoding="utf-8",
            )
        variables = terraform_variables(self.cfg, dt.datetime.now(dt.timezone.utc))
        fd = os.open(self.work / VARS_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(variables, handle, indent=2)
        self.run("init", init_args(self.cfg))

    def plan(self) -> PlanSummary:
        # A plan left by an earlier run must never be the one a later apply finds.
        for stale in (PLAN_FILE, PLAN_SUMMARY_FILE):
            (self.work / stale).unlink(missing_ok=True)
        result = self.run("plan", plan_args(self.cfg, self.work), ok=(0, 2))
        if result.returncode == 0:
            summary = PlanSummary()
        else:
            shown = self.run("show", ["show", "-json", "-no-color", str(self.work / PLAN_FILE)], echo=False)
            try:
                summary = summarize_plan(json_document(shown.output))
            except ValueError:
                raise OperationalError(
                    "terraform show -json did not print JSON.", "check the Terraform version (see README, Versions)."
                ) from None
            if not summary.has_changes:
                log.info("the plan changes Terraform outputs only")
        (self.work / PLAN_SUMMARY_FILE).write_text(json.dumps(summary.to_json()) + "\n", encoding="utf-8")
        return summary

    def saved_plan(self) -> PlanSummary | None:
        path = self.work / PLAN_SUMMARY_FILE
        if not path.is_file() or not (self.work / PLAN_FILE).is_file():
            return None
        return PlanSummary.from_json(json.loads(path.read_text(encoding="utf-8")))

    def apply(self) -> None:
        self.run("apply", apply_args(self.cfg, self.work))
        # A plan file is spent once applied; removing it keeps a re-run from applying it twice.
        (self.work / PLAN_FILE).unlink(missing_ok=True)

    def outputs(self) -> dict[str, Any]:
        result = self.run("output", ["output", "-json", "-no-color"], echo=False)
        try:
            return public_outputs(json_document(result.output or "{}"))
        except ValueError:
            raise OperationalError(
                "terraform output -json did not print JSON.", "check the Terraform version (see README, Versions)."
            ) from None

    def destroy(self) -> None:
        self.run("destroy", destroy_args(self.cfg, self.work))

    def resources(self) -> list[str]:
        """The managed resources in the state (`terraform state list`, data sources left out); empty for an empty state."""
        result = self.run("state", ["state", "list", "-no-color"], echo=False, ok=(0, 1))
        if result.returncode == 1 and "No state file was found" not in result.output:
            raise OperationalError(
                f"terraform state list failed:\n{result.tail(10)}", "read the Terraform error above; check the backend settings."
            )
        # stderr is merged in; Terraform's warnings there are sentences, an address has no spaces.
        return [
            line for line in (raw.strip() for raw in result.output.splitlines()) if _ADDRESS.match(line) and not line.startswith("data.")
        ]


def plan(cfg: Config, terraform: Terraform | None = None, *, preflight_check: bool = True, transport: Any = None) -> PlanSummary | None:
    """Preflight, then init + plan; None when infra-mode says not to plan."""
    if cfg.azure.infra_mode != "apply":
        log.info("infra-mode is %s: no plan", cfg.azure.infra_mode)
        return None
    kept = config.kept_cluster_without_backend(cfg.azure)
    if kept:
        raise UserError(kept)
    require_oidc(cfg.github, "Terraform")
    if preflight_check:
        preflight.run(cfg, transport=transport)
    terraform = terraform or Terraform(cfg)
    with gha.group("terraform init and plan"):
        terraform.prepare()
        summary = terraform.plan()
    counts = summary.counts
    log.info("plan: %d to add, %d to change, %d to destroy", counts["add"], counts["change"], counts["destroy"])
    gha.append_summary(cfg.github.step_summary, plan_markdown(summary, cfg))
    gha.set_outputs(
        cfg.github.output, {"plan-add": str(counts["add"]), "plan-change": str(counts["change"]), "plan-destroy": str(counts["destroy"])}
    )
    return summary


def apply(cfg: Config, terraform: Terraform | None = None) -> dict[str, Any]:
    """Apply the saved plan (if it changes anything) and hand the outputs on; return them."""
    mode = cfg.azure.infra_mode
    fallback = {"resource_group_name": cfg.resource_group, "cluster_name": cfg.cluster_name, "location": cfg.azure.location}
    if mode == "skip":
        log.info("infra-mode is skip: no Terraform, no Azure calls")
        return fallback
    require_oidc(cfg.github, "Terraform")
    terraform = terraform or Terraform(cfg)
    summary: PlanSummary | None = None
    applied = False
    with gha.group("terraform apply and outputs"):
        if mode == "apply":
            summary = terraform.saved_plan()
            if summary is None:
                raise UserError(
                    "there is no saved plan to apply.", "run `aks-ray infra plan` first, in the same job and with the same --terraform-dir."
                )
            if summary.changed:
                terraform.apply()
                applied = True
            else:
                log.info("the saved plan has no changes: nothing to apply")
        else:
            terraform.prepare()
        outputs = terraform.outputs()
    if not outputs.get("cluster_name"):
        log.info("Terraform has no outputs (no state here): using the names from the options")
        outputs = fallback
    cfg.run_dir.save_infra({**outputs, "infra_mode": mode, "applied": applied, "plan": summary.counts if summary else None})
    gha.set_outputs(cfg.github.output, step_outputs(outputs, summary))
    return outputs


def destroy(cfg: Config, succeeded: bool | None, terraform: Terraform | None = None, *, transport: Any = None) -> bool:
    """Destroy per policy; return whether it did."""
    decision, reason = should_destroy(cfg.azure.destroy_policy, cfg.azure.infra_mode, succeeded)
    log.info("destroy: %s", reason)
    if not decision:
        if cfg.azure.infra_mode == "apply":
            gha.notice(
                f"{reason}. To delete it: aks-ray infra destroy --destroy-policy always with the same --tf-backend-config "
                f"(or az group delete -n {cfg.resource_group})",
                title="aks-ray: cluster kept",
            )
        return False
    require_oidc(cfg.github, "Terraform")
    try:
        terraform = terraform or Terraform(cfg)
        with gha.group("terraform destroy"):
            terraform.prepare()
            if terraform.resources():
                terraform.destroy()
                how = "terraform destroy"
            else:
                # Nothing in the state: the cluster may still exist (its state was lost with
                # an earlier runner). Find its resource group by name and tags instead.
                how = destroy_untracked(cfg, transport=transport)
    except AksRayError as exc:
        by_hand = f"delete them with `aks-ray infra destroy --destroy-policy always` or `az group delete -n {cfg.resource_group}`."
        raise OperationalError(f"{exc.message} The Azure resources may still exist.", f"{by_hand} {exc.fix}".strip()) from exc
    cfg.run_dir.update_infra(destroyed=True)
    title = "No Azure resources were left" if how.startswith("nothing") else "Azure resources destroyed"
    gha.append_summary(cfg.github.step_summary, f"### {title}\n\n`{cfg.resource_group}/{cfg.cluster_name}`: {reason}; {how}.\n")
    return True


def untracked_verdict(name: str, group: Mapping[str, Any] | None) -> tuple[str, str]:
    """What to do with the run's resource group when the state holds nothing: ('gone'|'delete'|'foreign', why)."""
    if group is None:
        return "gone", f"the state holds no resources and there is no resource group {name}: nothing is left"
    tags = group.get("tags") or {}
    key, value = sweep.MANAGED_BY_TAG
    if group.get("managedBy"):
        return "foreign", f"resource group {name} is managed by {group['managedBy']}, not by aks-ray"
    if tags.get(key) != value:
        return "foreign", f"resource group {name} exists but has no {key}={value} tag, so aks-ray did not create it"
    return "delete", f"resource group {name} carries {key}={value} but the Terraform state holds nothing (state lost)"


def destroy_untracked(cfg: Config, *, transport: Any = None, credential: Any = None) -> str:
    """Delete the run's resource group when the Terraform state lost track of it; say how it ended."""
    from azure.core.exceptions import AzureError, ResourceNotFoundError

    name = cfg.resource_group
    client = sweep.resource_client(cfg, transport=transport, credential=credential)
    doing = f"looking up resource group {name}"
    try:
        try:
            found = client.resource_groups.get(name)
            group = {"tags": dict(found.tags or {}), "managedBy": found.managed_by or ""}
        except ResourceNotFoundError:
            group = None
        verdict, why = untracked_verdict(name, group)
        log.info("destroy: %s", why)
        if verdict == "gone":
            return "nothing to destroy: the state was empty and the resource group does not exist"
        if verdict == "foreign":
            raise OperationalError(
                f"the Terraform state holds no resources, and {why}; it was left alone.",
                f"if it is yours to delete: az group delete -n {name} (or point --tf-backend-config at the state that created it).",
            )
        doing = f"deleting resource group {name}"
        sweep.delete_groups(client, [name], timeout=RESOURCE_GROUP_DELETE_TIMEOUT)
    except AzureError as exc:
        raise azure_errors.explain(exc, doing=doing, assignee=cfg.azure.azure_client_id) from None
    return f"the state was empty, so resource group {name} (tagged as aks-ray's) was deleted"


def plan_step(cfg: Config, *, transport: Any = None) -> int:
    plan(cfg, transport=transport)
    return EXIT_OK


def apply_step(cfg: Config) -> int:
    apply(cfg)
    return EXIT_OK


def destroy_step(cfg: Config, *, transport: Any = None) -> int:
    destroy(cfg, cfg.run_dir.run_succeeded(), transport=transport)
    return EXIT_OK
