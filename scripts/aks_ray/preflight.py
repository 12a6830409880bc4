"""Preflight: will Azure let this cluster exist? Answered in seconds, before any plan is applied.

Checks, with the arithmetic shown in the log and the step summary:
- the region offers --kubernetes-version for a new cluster (the managed
  clusters' Kubernetes-versions list, standard support plan), and it is not
  within END_OF_LIFE_WARNING_DAYS of the end of its support (a warning);
- the region exists and offers the chosen VM sizes to this subscription
  (resource SKUs and their restrictions);
- the subscription's regional vCPU quota, per VM family and in total, covers
  the nodes the plan would add (nodes of an existing cluster already count
  against the quota, so only the difference is needed);
- the Ray head and workers fit on the Ray pool's nodes at all.

A shortfall fails with what to change; nothing has been created at that point.
"""

from __future__ import annotations

import datetime as dt
import difflib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import azure_errors, gha, versions
from .azure_auth import build_credential, transport_kwargs
from .config import Config, millicpus
from .errors import UserError

log = logging.getLogger(__name__)

TOTAL_REGIONAL = "cores"  # the usage name of "Total Regional vCPUs"

# AKS keeps this much CPU per node for the kubelet and the OS (millicores, by vCPU count).
AKS_CPU_RESERVED_MILLI = {1: 60, 2: 100, 4: 140, 8: 180, 16: 260, 32: 420, 64: 740}
# What the AKS daemon sets (Cilium, CNS, CSI drivers, kube-proxy or its replacement) request per node, roughly.
DAEMONSET_CPU_MILLI = 500


@dataclass(frozen=True)
class Sku:
    name: str
    family: str
    vcpus: int
    restriction: str | None = None  # why this subscription cannot use it in the region; None if it can


@dataclass(frozen=True)
class Quota:
    name: str
    label: str
    current: int
    limit: int

    @property
    def free(self) -> int:
        return self.limit - self.current


@dataclass(frozen=True)
class PoolNeed:
    pool: str
    vm_size: str
    nodes: int
    existing_nodes: int = 0  # nodes of this pool that already exist and count against the quota


@dataclass(frozen=True)
class KubeVersion:
    version: str  # MAJOR.MINOR
    patches: tuple[str, ...] = ()
    preview: bool = False
    support_plans: tuple[str, ...] = ("KubernetesOfficial",)

    @property
    def standard(self) -> bool:
        """Offered with standard (community) support, which a Free or Standard tier cluster needs; not LTS only."""
        return "KubernetesOfficial" in self.support_plans


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def markdown(self, location: str) -> str:
        verdict = "passed ✅" if self.ok else "failed ❌"
        parts = [f"### Azure preflight in `{location}` {verdict}", "", "```text", *self.lines, "```", ""]
        parts += [f"- ❌ {p}" for p in self.problems] + [f"- ⚠️ {w}" for w in self.warnings]
        return "\n".join(parts) + "\n"


# ------------------------------------------------------------ pure parts


def pool_needs(cfg: Config, existing: Mapping[str, tuple[str, int]] | None = None) -> list[PoolNeed]:
    """Nodes each pool may reach (the autoscaler's maximum counts); `existing` maps pool name to (vm size, count)."""
    azure = cfg.azure
    existing = existing or {}
    ray_nodes = azure.ray_max_nodes if azure.ray_max_nodes is not None else azure.ray_node_count

    def already(pool: str, vm_size: str) -> int:
        size, count = existing.get(pool, ("", 0))
        return count if size.lower() == vm_size.lower() else 0

    return [
        PoolNeed("system", azure.system_vm_size, azure.system_node_count, already("system", azure.system_vm_size)),
        PoolNeed("ray", azure.ray_vm_size, ray_nodes, already("ray", azure.ray_vm_size)),
    ]


def sku_index(skus: Iterable[Mapping[str, Any]], location: str) -> dict[str, Sku]:
    """VM sizes offered in `location`, by lower-case name, from resource SKU records.

    The records are the REST shapes (camelCase keys): the Azure SDK's models are
    mappings of exactly those, so recorded responses and live ones read alike.
    """
    index: dict[str, Sku] = {}
    for item in skus:
        if str(item.get("resourceType", "")).lower() != "virtualmachines":
            continue
        if location.lower() not in [str(loc).lower() for loc in item.get("locations") or []]:
            continue
        caps = {c.get("name"): c.get("value") for c in item.get("capabilities") or []}
        try:
            vcpus = int(caps.get("vCPUs") or 0)
        except ValueError:
            vcpus = 0
        restriction = next(
            (
                str(r.get("reasonCode") or "restricted")
                for r in item.get("restrictions") or []
                if str(r.get("type", "")).lower() == "location"
            ),
            None,
        )
        name = str(item.get("name", ""))
        index[name.lower()] = Sku(name, str(item.get("family") or ""), vcpus, restriction)
    return index


def quota_index(usages: Iterable[Mapping[str, Any]]) -> dict[str, Quota]:
    """Quotas by lower-case usage name, from usage records (REST shapes, as sku_index)."""
    index = {}
    for item in usages:
        name = item.get("name") or {}
        if not name.get("value"):
            continue
        value = str(name["value"])
        index[value.lower()] = Quota(
            value, str(name.get("localizedValue") or value), int(item.get("currentValue") or 0), int(item.get("limit") or 0)
        )
    return index


def kubernetes_index(items: Iterable[Any]) -> dict[str, KubeVersion]:
    """The region's versions by MAJOR.MINOR, from the SDK's KubernetesVersion models (or their REST dicts)."""

    def field(item: Any, attr: str, rest: str) -> Any:
        return item.get(rest) if isinstance(item, Mapping) else getattr(item, attr, None)

    index = {}
    for item in items:
        version = str(field(item, "version", "version") or "")
        if not version:
            continue
        capabilities = field(item, "capabilities", "capabilities")
        plans = field(capabilities, "support_plan", "supportPlan") if capabilities is not None else None
        patches = field(item, "patch_versions", "patchVersions") or {}
        index[version] = KubeVersion(
            version,
            tuple(sorted(patches, key=_version_key)),
            bool(field(item, "is_preview", "isPreview")),
            tuple(str(p) for p in plans) if plans else ("KubernetesOfficial",),
        )
    return index


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) if part.isdigit() else 0 for part in version.split("."))


def check_kubernetes(wanted: str, offered: Mapping[str, KubeVersion], location: str, today: dt.date, report: Report) -> None:
    """Is `wanted` (MAJOR.MINOR or MAJOR.MINOR.PATCH) one a new cluster in `location` can have, and for how long?"""
    minor = ".".join(wanted.split(".")[:2])
    usable = sorted((v for v in offered.values() if v.standard and not v.preview), key=lambda v: _version_key(v.version))
    names = ", ".join(v.version for v in usable) or "none"
    found = offered.get(minor)
    if found is None or not found.standard:
        why = "only with long-term support (the Premium tier)" if found is not None else "not at all"
        report.problems.append(
            f"Kubernetes {wanted} is offered in {location} {why}: a new cluster there can have {names}. "
            f"Fix: set --kubernetes-version to one of those (`az aks get-versions -l {location} -o table`)."
        )
        return
    if wanted != minor and found.patches and wanted not in found.patches:
        report.problems.append(
            f"Kubernetes {wanted} is not a patch {location} offers for {minor} ({', '.join(found.patches)}). "
            f"Fix: set --kubernetes-version {minor} (AKS picks the newest patch) or one of those patches."
        )
        return
    line = f"Kubernetes {wanted}: offered in {location}"
    if found.preview:
        report.warnings.append(f"Kubernetes {minor} is a preview version in {location}: no support; prefer one of {names}.")
        line += " (preview)"
    end = versions.KUBERNETES_END_OF_LIFE.get(minor)
    if end:
        end_date = dt.date.fromisoformat(end)
        line += f"; AKS standard support ends {end}"
        days = (end_date - today).days
        if days <= versions.END_OF_LIFE_WARNING_DAYS:
            newer = [v.version for v in usable if _version_key(v.version) > _version_key(minor)]
            report.warnings.append(
                f"Kubernetes {minor} reaches the end of AKS standard support on {end} "
                f"({'in ' + str(days) + ' days' if days >= 0 else str(-days) + ' days ago'}); "
                f"AKS will upgrade or stop supporting it. Move to {' or '.join(newer) if newer else 'a newer version'}."
            )
    report.lines.append(line)


def allocatable_milli(vcpus: int, with_daemonsets: bool) -> int:
    reserved = next((milli for cores, milli in sorted(AKS_CPU_RESERVED_MILLI.items()) if vcpus <= cores), 740)
    return vcpus * 1000 - reserved - (DAEMONSET_CPU_MILLI if with_daemonsets else 0)


def ray_fit(cfg: Config, ray_sku: Sku, nodes: int) -> tuple[list[str], list[str], list[str]]:
    """Can the Ray head and workers be placed on `nodes` Ray nodes? (lines, problems, warnings)."""
    head = millicpus(cfg.kube.head_cpus)
    worker = cfg.training.cpus_per_worker * 1000
    pods = [head] + [worker] * cfg.training.workers
    lines = [
        f"Ray pods: head {head / 1000:g} CPU + {cfg.training.workers} worker(s) x {cfg.training.cpus_per_worker} CPU"
        f" = {sum(pods) / 1000:g} CPUs on up to {nodes} x {ray_sku.name} ({ray_sku.vcpus} vCPUs,"
        f" about {allocatable_milli(ray_sku.vcpus, True) / 1000:g} allocatable after AKS reservations and daemon sets)"
    ]
    problems, warnings = [], []
    hard = allocatable_milli(ray_sku.vcpus, with_daemonsets=False)
    biggest = max(pods)
    if biggest > hard:
        problems.append(
            f"a Ray pod asks for {biggest / 1000:g} CPUs but a {ray_sku.name} node has at most {hard / 1000:g} allocatable: "
            "it can never run. "
            f"Fix: lower --cpus-per-worker/--head-cpus, or choose a larger --ray-vm-size."
        )
        return lines, problems, warnings
    if not _packs(pods, allocatable_milli(ray_sku.vcpus, with_daemonsets=True), nodes):
        warnings.append(
            f"the Ray pods ({sum(pods) / 1000:g} CPUs) may not all fit on {nodes} x {ray_sku.name} once AKS's own pods run there; "
            "the job would wait for CPUs. Consider more Ray nodes (--ray-node-count/--ray-max-nodes) or fewer --workers."
        )
    return lines, problems, warnings


def _packs(pods: list[int], capacity: int, nodes: int) -> bool:
    """First-fit decreasing: good enough to tell whether pods fit on identical nodes."""
    free = [capacity] * nodes
    for pod in sorted(pods, reverse=True):
        slot = next((i for i, room in enumerate(free) if room >= pod), None)
        if slot is None:
            return False
        free[slot] -= pod
    return True


def check(cfg: Config, skus: Mapping[str, Sku], quotas: Mapping[str, Quota], needs: list[PoolNeed]) -> Report:
    """The whole verdict, from data already fetched."""
    azure = cfg.azure
    report = Report()
    location = azure.location
    if not skus:
        report.problems.append(
            f"the region {location!r} offers no VM sizes to this subscription: it is not a region name, or the subscription cannot use it. "
            "Fix: choose a region from `az account list-locations -o table` (--location)."
        )
        return report
    by_family: dict[str, list[tuple[PoolNeed, Sku]]] = {}
    for need in needs:
        sku = skus.get(need.vm_size.lower())
        if sku is None:
            close = difflib.get_close_matches(need.vm_size.lower(), list(skus), n=3, cutoff=0.8)
            hint = f" Did you mean {', '.join(skus[c].name for c in close)}?" if close else ""
            report.problems.append(
                f"the VM size {need.vm_size} ({need.pool} pool) is not offered in {location}.{hint} "
                f"Fix: pick one from `az vm list-skus -l {location} --resource-type virtualMachines -o table`."
            )
            continue
        if sku.restriction:
            report.problems.append(
                f"the VM size {sku.name} ({need.pool} pool) is restricted for this subscription in {location} ({sku.restriction}). "
                "Fix: choose another size or region, or ask Azure support to lift the restriction."
            )
            continue
        by_family.setdefault(sku.family, []).append((need, sku))
    if report.problems:
        return report

    report.lines.append(f"vCPU quota in {location}:")
    total_new = 0
    for family, items in sorted(by_family.items()):
        terms = " + ".join(f"{n.pool} {n.nodes} x {s.name} ({s.vcpus} vCPUs)" for n, s in items)
        need = sum(n.nodes * s.vcpus for n, s in items)
        existing = sum(n.existing_nodes * s.vcpus for n, s in items)
        new = max(0, need - existing)
        total_new += new
        report.lines.append(_quota_line(quotas.get(family.lower()), family, terms, need, existing, new, report, location))
    total = quotas.get(TOTAL_REGIONAL)
    report.lines.append(
        _quota_line(
            total,
            "Total Regional vCPUs",
            "all pools",
            sum(n.nodes * s.vcpus for items in by_family.values() for n, s in items),
            sum(n.existing_nodes * s.vcpus for items in by_family.values() for n, s in items),
            total_new,
            report,
            location,
        )
    )

    ray_need = next(n for n in needs if n.pool == "ray")
    lines, problems, warnings = ray_fit(cfg, skus[ray_need.vm_size.lower()], ray_need.nodes)
    report.lines += lines
    report.problems += problems
    report.warnings += warnings
    return report


def _quota_line(quota: Quota | None, family: str, terms: str, need: int, existing: int, new: int, report: Report, location: str) -> str:
    head = f"  {family}: {terms} = {need} vCPUs"
    if existing:
        head += f", {existing} of them already running, so {new} more"
    if quota is None:
        report.warnings.append(f"no quota record for {family} in {location}; the check was skipped for it")
        return f"{head}; no quota record"
    verdict = "ok" if new <= quota.free else f"SHORT by {new - quota.free}"
    if new > quota.free:
        report.problems.append(
            f"{quota.label} quota in {location} is too small: {new} more vCPUs needed, "
            f"{quota.current} of {quota.limit} used leaves {quota.free}. "
            f"Fix: request a limit of at least {quota.current + new} (Azure portal > Quotas > Compute > {quota.label}, {location}), "
            "or use fewer or smaller nodes (--ray-node-count, --ray-vm-size), or another --location."
        )
    return f"{head}; {quota.current} of {quota.limit} in use, {quota.free} free: {verdict}"


# ------------------------------------------------------------------ I/O


def fetch_kubernetes_versions(cfg: Config, credential: Any, transport: Any = None) -> dict[str, KubeVersion]:
    """The Kubernetes versions the region offers (managed clusters' listKubernetesVersions)."""
    from azure.core.exceptions import AzureError
    from azure.mgmt.containerservice import ContainerServiceClient

    azure = cfg.azure
    kwargs = transport_kwargs(transport)
    client = ContainerServiceClient(credential, azure.azure_subscription_id, **kwargs)
    try:
        result = client.managed_clusters.list_kubernetes_versions(azure.location)
    except AzureError as exc:
        raise azure_errors.explain(
            exc, doing=f"reading the Kubernetes versions AKS offers in {azure.location}", assignee=azure.azure_client_id
        ) from None
    # The SDK's models are mappings of the REST shape, where `values` is also a Mapping method.
    items = result.get("values") if isinstance(result, Mapping) else result.values
    return kubernetes_index(items or [])


def fetch(cfg: Config, credential: Any, transport: Any = None) -> tuple[dict[str, Sku], dict[str, Quota], dict[str, tuple[str, int]]]:
    """Resource SKUs and usages of the region, and the node pools of the cluster if it exists already."""
    from azure.core.exceptions import AzureError, ResourceNotFoundError
    from azure.mgmt.compute import ComputeManagementClient
    from azure.mgmt.containerservice import ContainerServiceClient

    azure = cfg.azure
    kwargs = transport_kwargs(transport)
    compute = ComputeManagementClient(credential, azure.azure_subscription_id, **kwargs)
    location = azure.location
    try:
        skus = sku_index(compute.resource_skus.list(filter=f"location eq '{location}'"), location)
        if not skus:
            return skus, {}, {}
        quotas = quota_index(compute.usage.list(location))
    except AzureError as exc:
        if getattr(exc, "status_code", None) in (400, 404) and "location" in str(exc).lower():
            return {}, {}, {}
        raise azure_errors.explain(exc, doing=f"reading VM sizes and vCPU quota in {location}", assignee=azure.azure_client_id) from None
    existing: dict[str, tuple[str, int]] = {}
    try:
        cluster = ContainerServiceClient(credential, azure.azure_subscription_id, **kwargs).managed_clusters.get(
            cfg.resource_group, cfg.cluster_name
        )
        for pool in cluster.agent_pool_profiles or []:
            existing[str(pool.name)] = (str(pool.vm_size or ""), int(pool.count or 0))
    except ResourceNotFoundError:
        pass
    except AzureError as exc:
        raise azure_errors.explain(
            exc, doing=f"reading AKS cluster {cfg.resource_group}/{cfg.cluster_name}", assignee=azure.azure_client_id
        ) from None
    return skus, quotas, existing


def run(cfg: Config, *, transport: Any = None, credential: Any = None, today: dt.date | None = None) -> Report:
    """Fetch, check, report; raise UserError (exit 2) when Azure would refuse the cluster."""
    azure = cfg.azure
    if not azure.azure_subscription_id:
        raise UserError("the subscription ID is not set.", "set --azure-subscription-id (or ARM_SUBSCRIPTION_ID).")
    with gha.group(f"preflight: Kubernetes version, VM sizes and vCPU quota in {azure.location}"):
        credential = credential or build_credential(cfg.github, azure.azure_tenant_id, azure.azure_client_id, transport)
        skus, quotas, existing = fetch(cfg, credential, transport)
        report = check(cfg, skus, quotas, pool_needs(cfg, existing))
        if skus:  # a region that exists: ask it which Kubernetes versions it offers
            offered = fetch_kubernetes_versions(cfg, credential, transport)
            check_kubernetes(azure.kubernetes_version, offered, azure.location, today or dt.date.today(), report)
        for line in report.lines:
            log.info("%s", line)
        for warning in report.warnings:
            gha.warning(warning, title="aks-ray preflight")
    gha.append_summary(cfg.github.step_summary, report.markdown(azure.location))
    if not report.ok:
        raise UserError("preflight: Azure would refuse this cluster:\n" + "\n".join(f"  - {p}" for p in report.problems))
    log.info("preflight passed")
    return report
