"""`aks-ray run --target aks`: Azure first, then the kubeconfig pipeline, then clean-up.

    preflight -> terraform plan -> apply (per --infra-mode) -> credentials
      -> kube_pipeline.run (KubeRay, the RayJob, collection) on the new cluster
      -> terraform destroy per --destroy-policy, always, even after a failure

The Ray pods land on the Ray node pool: unless --node-selector/--tolerations
say otherwise, they select its label and tolerate its taint (the values
terraform/ gives the pool, config.RAY_POOL_LABEL and RAY_POOL_TAINT).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import importlib
import json
import logging
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from . import credentials, gha, infra
from .config import RAY_POOL_LABEL, RAY_POOL_TAINT, Config
from .errors import EXIT_OPERATIONAL, AksRayError, UserError

log = logging.getLogger(__name__)


def kube_config_for_aks(cfg: Config, kubeconfig: Path | None) -> Config:
    """The Config the kubeconfig pipeline runs with: this cluster's kubeconfig, Ray pods on the Ray pool."""
    kube = cfg.kube
    replaced = dataclasses.replace(
        kube,
        kubeconfig=kubeconfig if kubeconfig is not None else kube.kubeconfig,
        # The written kubeconfig has one context, its current one; a context
        # named for some other cluster would not be in it.
        kube_context=None if kubeconfig is not None else kube.kube_context,
        node_selector=kube.node_selector or (RAY_POOL_LABEL,),
        tolerations=kube.tolerations or (RAY_POOL_TAINT,),
    )
    return dataclasses.replace(cfg, kube=replaced)


def _default_kube_run(cfg: Config) -> int:
    # Imported only now: the kubeconfig pipeline pulls in the Kubernetes client and Helm.
    return importlib.import_module("aks_ray.kube_pipeline").run(cfg)


@dataclasses.dataclass
class _Progress:
    may_exist: bool = False  # whether this run may have created Azure resources
    outputs: dict[str, Any] = dataclasses.field(default_factory=dict)
    phases: dict[str, float] = dataclasses.field(default_factory=dict)
    result: int | None = None


def run(
    cfg: Config,
    *,
    transport: Any = None,
    terraform: infra.Terraform | None = None,
    kube_run: Callable[[Config], int] | None = None,
) -> int:
    """The whole aks target: the training pipeline's exit code, or 1 if it passed but clean-up failed."""
    kube_run = kube_run or _default_kube_run
    if cfg.common.dry_run:
        return _dry_run(cfg, kube_run)
    progress = _Progress()
    try:
        progress.result = _provision_and_train(cfg, progress, transport, terraform, kube_run)
    finally:
        destroyed_ok = _clean_up(cfg, progress, terraform, transport)
        if progress.outputs:
            # After the training pipeline's own step outputs, so these names stand.
            gha.set_outputs(cfg.github.output, infra.step_outputs(progress.outputs, None))
        if progress.phases:
            log.info("aks phases: %s", ", ".join(f"{name} {seconds:.1f} s" for name, seconds in progress.phases.items()))
    if not destroyed_ok and progress.result == 0:
        return EXIT_OPERATIONAL
    return progress.result


def _provision_and_train(
    cfg: Config, progress: _Progress, transport: Any, terraform: infra.Terraform | None, kube_run: Callable[[Config], int]
) -> int:
    mode = cfg.azure.infra_mode
    kubeconfig: Path | None = None
    if mode == "skip":
        if cfg.kube.kubeconfig is None:
            raise UserError(
                "--infra-mode skip makes no Azure calls, so it needs a kubeconfig for the cluster.",
                "set --kubeconfig (or KUBECONFIG), or use --infra-mode reuse to fetch one.",
            )
    else:
        with _phase(progress, "plan"):
            summary = infra.plan(cfg, terraform, transport=transport)
        progress.may_exist = mode == "apply"
        with _phase(progress, "apply"):
            progress.outputs = infra.apply(cfg, terraform)
        if summary is not None and not summary.changed:
            log.info("the cluster already matches the configuration: reused as it is")
        with _phase(progress, "credentials"), gha.group("credentials: kubeconfig for the AKS cluster"):
            kubeconfig = credentials.obtain_kubeconfig(cfg, transport=transport)
        gha.export_env(cfg.github.env_file, "KUBECONFIG", str(kubeconfig))
    return kube_run(kube_config_for_aks(cfg, kubeconfig))


def _dry_run(cfg: Config, kube_run: Callable[[Config], int]) -> int:
    """Say what Terraform would be asked for, then let the kubeconfig pipeline print its objects; touch nothing."""
    variables = infra.terraform_variables(cfg, dt.datetime.now(dt.timezone.utc))
    lines = [f"# aks-ray --dry-run (aks): no Azure call was made. Terraform in {cfg.azure.terraform_dir} would plan with these variables:"]
    lines += [f"#   {name} = {json.dumps(value)}" for name, value in variables.items()]
    lines.append(f"# then destroy per --destroy-policy {cfg.azure.destroy_policy} (--infra-mode {cfg.azure.infra_mode}).")
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()
    return kube_run(kube_config_for_aks(cfg, None))


@contextlib.contextmanager
def _phase(progress: _Progress, name: str) -> Iterator[None]:
    started = time.monotonic()
    try:
        yield
    finally:
        progress.phases[name] = round(time.monotonic() - started, 3)


def _clean_up(cfg: Config, progress: _Progress, terraform: infra.Terraform | None, transport: Any = None) -> bool:
    """Destroy per policy when this run may have created something; False if destroying failed."""
    if not progress.may_exist:
        return True
    try:
        with _phase(progress, "destroy"):
            infra.destroy(cfg, succeeded=progress.result == 0, terraform=terraform, transport=transport)
        return True
    except AksRayError as exc:
        gha.error(
            f"{exc} The Azure resources may still exist: delete them with `aks-ray infra destroy --destroy-policy always` "
            f"or `az group delete -n {cfg.resource_group}`.",
            title="aks-ray: destroy failed",
        )
        return False
