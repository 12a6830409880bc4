"""`aks-ray operator install`: the KubeRay operator, installed or upgraded with Helm, then waited for.

pyhelm3 drives the helm CLI. The chart (kuberay-operator, version pinned by
--kuberay-version) comes from --kuberay-chart: KubeRay's Helm repository, or a
local chart folder or .tgz for clusters without internet. The values are
manifests/kuberay-values.yaml. A second run with the same chart and values
changes nothing and says so, without contacting the chart repository; runs that
would change it take a lock (lease.py) so that only one installs at a time, and a
release left pending is never uninstalled or rolled back. On a first install or a
chart version change the chart's CRDs are applied server-side before helm runs
(helm never upgrades a CRD of crds/). Then it waits, with a deadline, until the RayJob and RayCluster CRDs are Established and the operator
Deployment is Available.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import tarfile
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from . import diagnose, gha, kube, lease, redact, retry, versions
from .config import PROJECT_ROOT, Config
from .errors import DeadlineExceeded, OperationalError, UserError
from .rayjob import MANIFESTS_DIR

log = logging.getLogger(__name__)

RELEASE_NAME = "kuberay-operator"
VALUES_FILE = MANIFESTS_DIR / "kuberay-values.yaml"
REQUIRED_CRDS = ("rayjobs.ray.io", "rayclusters.ray.io")
OPERATOR_DEPLOYMENT = "kuberay-operator"  # the chart's fullnameOverride
OPERATOR_POD_SELECTOR = "app.kubernetes.io/name=kuberay-operator"
# The operator's own fixes where diagnose's (written for the Ray pods) would name the wrong option.
OPERATOR_FIXES = {
    "image pull failed": (
        "the nodes must reach quay.io for the operator image; on a cluster without internet, load that image "
        "into the nodes or mirror it and set image.repository in manifests/kuberay-values.yaml."
    ),
    "not enough room in the cluster": "the operator asks for little (manifests/kuberay-values.yaml); add a node or free one.",
}
READY_DEADLINE_SECONDS = 300
HELM_TIMEOUT = "5m"
TOOLS_HELM = PROJECT_ROOT / ".tools" / "bin" / "helm"


@dataclass(frozen=True)
class ChartSource:
    """Where the chart comes from: a repository URL or a local path."""

    ref: str
    repo: str | None
    version: str | None

    def describe(self) -> str:
        """For people: a URL's credentials (https://user:token@...) are never printed."""
        if self.repo:
            return f"{versions.KUBERAY_CHART_NAME} {self.version} from {redact.url(self.repo)}"
        return redact.url(self.ref) if self.ref.startswith("oci://") else f"local chart {self.ref}"


def chart_source(cfg: Config) -> ChartSource:
    """--kuberay-chart as helm wants it. A local path that does not exist is bad input."""
    chart = cfg.kube.kuberay_chart
    # config.parse_chart admits only https:// and oci:// URLs; anything else is a path.
    if chart.startswith(("https://", "oci://")):
        if chart.startswith("oci://"):
            return ChartSource(ref=chart, repo=None, version=cfg.kube.kuberay_version)
        return ChartSource(ref=versions.KUBERAY_CHART_NAME, repo=chart, version=cfg.kube.kuberay_version)
    path = Path(chart).expanduser()
    if not path.exists():
        raise UserError(
            f"--kuberay-chart {chart} is neither a Helm repository URL nor an existing chart folder or .tgz.",
            "pass KubeRay's repository URL or the path of a downloaded chart.",
        )
    return ChartSource(ref=str(path.resolve()), repo=None, version=None)


def load_values() -> dict[str, Any]:
    with VALUES_FILE.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle) or {}


def find_helm() -> str:
    """helm on PATH, else the one scripts/tools/get-helm.sh puts in .tools/bin."""
    path = shutil.which("helm") or (str(TOOLS_HELM) if TOOLS_HELM.is_file() else None)
    if path is None:
        raise UserError(
            "`helm` was not found on PATH or in .tools/bin.",
            "install Helm 3 (https://helm.sh/docs/intro/install/) or run scripts/tools/get-helm.sh.",
        )
    return path


def helm_client(cfg: Config) -> Any:
    from pyhelm3 import Client

    return Client(executable=find_helm(), kubeconfig=cfg.kube.kubeconfig, kubecontext=cfg.kube.kube_context, default_timeout=HELM_TIMEOUT)


async def _get_chart(client: Any, source: ChartSource) -> Any:
    return await client.get_chart(source.ref, repo=source.repo, version=source.version)


def render_operator(cfg: Config) -> list[dict[str, Any]]:
    """`helm template` of the operator chart with the project's values (for --dry-run and the tests)."""
    client = helm_client(cfg)
    source = chart_source(cfg)

    async def render() -> list[dict[str, Any]]:
        chart = await _get_chart(client, source)
        resources = await client.template_resources(
            chart, RELEASE_NAME, load_values(), namespace=cfg.kube.operator_namespace, include_crds=True
        )
        return [r for r in resources if r]

    return asyncio.run(render())


# What helm leaves while an install, upgrade or rollback is under way (or was cut off).
PENDING_STATUSES = {"pending-install", "pending-upgrade", "pending-rollback", "uninstalling"}
UNCHANGED, INSTALL, BUSY = "unchanged", "install", "busy"
LOCK_LEASE = "aks-ray-operator-install"
# Longer than helm's own --timeout (HELM_TIMEOUT, 5 minutes) plus the time to fetch the chart.
LOCK_DURATION_SECONDS = 600
# How long a run waits for another run's install before it gives up.
LOCK_DEADLINE_SECONDS = 900


@dataclass(frozen=True)
class Release:
    """The deployed release as `helm status` and `helm get values` report it."""

    status: str
    chart_name: str
    chart_version: str
    values: dict[str, Any]


def decide(release: Release | None, chart_version: str | None, values: dict[str, Any]) -> str:
    """UNCHANGED (the same chart version and values are deployed), INSTALL, or BUSY (another helm operation's state).

    A pending release is never undone here: it is another run's install in progress,
    or one that was cut off, and only its owner or the cluster's owner may decide.
    """
    if release is None:
        return INSTALL
    if release.status in PENDING_STATUSES:
        return BUSY
    same_chart = release.chart_name == versions.KUBERAY_CHART_NAME and chart_version is not None and release.chart_version == chart_version
    if release.status == "deployed" and same_chart and release.values == values:
        return UNCHANGED
    return INSTALL


def wanted_chart_version(cfg: Config, source: ChartSource) -> str | None:
    """The chart version this run would install: --kuberay-version, or a local chart's own Chart.yaml."""
    if source.version:
        return source.version
    path = Path(source.ref)
    chart_yaml = path / "Chart.yaml" if path.is_dir() else None
    if chart_yaml is not None and chart_yaml.is_file():
        return str((yaml.safe_load(chart_yaml.read_text(encoding="utf-8")) or {}).get("version") or "") or None
    return None  # a packed .tgz: compared after helm has read it


async def current_release(client: Any, namespace: str) -> Release | None:
    """The deployed release, read from the cluster only (helm status and get values: no chart repository)."""
    from pyhelm3.errors import ReleaseNotFoundError

    try:
        revision = await client.get_current_revision(RELEASE_NAME, namespace=namespace)
    except ReleaseNotFoundError:
        return None
    metadata = await revision.chart_metadata()
    status = getattr(revision.status, "value", str(revision.status))
    return Release(status=status, chart_name=str(metadata.name), chart_version=str(metadata.version), values=await revision.values() or {})


def install(cfg: Config) -> bool:
    """Install or upgrade the release; True if helm changed something.

    Nothing is done, and no chart repository contacted, when the same chart version and
    values are deployed. Otherwise the run takes the lock Lease first, looks again (the
    run that held it may have installed the same), and only then installs.
    """
    client = helm_client(cfg)
    source = chart_source(cfg)
    values = load_values()
    namespace = cfg.kube.operator_namespace
    wanted = wanted_chart_version(cfg, source)

    async def look() -> str:
        return decide(await current_release(client, namespace), wanted, values)

    async def upgrade() -> Any:
        release = await current_release(client, namespace)
        async with chart_folder(client, source) as (chart, folder):
            version = str(chart.metadata.version)
            if wanted is None and decide(release, version, values) == UNCHANGED:
                return None
            if crds_change(release, version):
                apply_crds(api, chart_crds(folder))
            # --skip-crds: helm would only create the ones missing, and never upgrade one; apply_crds did both,
            # and a same-version upgrade (other values) has nothing to change in them.
            return await client.install_or_upgrade_release(
                RELEASE_NAME, chart, values, namespace=namespace, create_namespace=True, wait=False, timeout=HELM_TIMEOUT, skip_crds=True
            )

    def helm_failed(exc: Exception) -> OperationalError:
        return OperationalError(
            # helm's stderr (pyhelm3 puts it into the error) may carry the exec plugin's output: redacted.
            redact.text(f"helm could not install {source.describe()} into namespace {namespace}: {exc}"),
            "read helm's message above; check that the chart is reachable and "
            "that you may create cluster-wide objects (CRDs, ClusterRoles).",
        )

    from pyhelm3.errors import Error as HelmError

    try:
        if asyncio.run(look()) == UNCHANGED:
            log.info("release %s/%s already runs %s with the same values: nothing to do", namespace, RELEASE_NAME, source.describe())
            return False
    except HelmError as exc:
        raise helm_failed(exc) from None
    api = kube.connect(cfg)
    kube.ensure_namespace(api, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    holder = lease.holder_identity(cfg.github.run_id)
    with lease.LeaseLock(api, namespace, LOCK_LEASE, holder, LOCK_DURATION_SECONDS, LOCK_DEADLINE_SECONDS):
        try:
            decision = asyncio.run(look())
            if decision == UNCHANGED:
                log.info(
                    "release %s/%s was brought to %s by another run meanwhile: nothing to do", namespace, RELEASE_NAME, source.describe()
                )
                return False
            if decision == BUSY:
                raise OperationalError(
                    f"release {namespace}/{RELEASE_NAME} is in a pending state (an install or upgrade outside aks-ray's lock, "
                    "or one that was cut off); aks-ray never uninstalls or rolls back a release it did not start.",
                    f"ask the cluster's owner to finish or undo it (helm -n {namespace} history {RELEASE_NAME}; helm rollback or "
                    "helm uninstall), then run again.",
                )
            revision = asyncio.run(upgrade())
        except HelmError as exc:
            raise helm_failed(exc) from None
    if revision is None:
        log.info("release %s/%s already runs %s with the same values: nothing to do", namespace, RELEASE_NAME, source.describe())
        return False
    log.info("installed %s as release %s/%s, revision %s", source.describe(), namespace, RELEASE_NAME, revision.revision)
    return True


# ---------------------------------------------------------------- the chart's CRDs

# Managers whose fields aks-ray may take over when a newer chart changes them: its own, and helm's, which
# created the CRDs on a first install before aks-ray applied them itself (helm names its manager after its
# binary). Fields of any other manager (kubectl, Argo CD, Flux) are the cluster owner's: never forced.
OWN_FIELD_MANAGERS = frozenset({kube.FIELD_MANAGER, "helm"})
CRD_ESTABLISHED_DEADLINE_SECONDS = 120
# Helm's rule for what in crds/ is a manifest.
CRD_SUFFIXES = (".yaml", ".yml", ".json")


def crds_change(release: Release | None, chart_version: str) -> bool:
    """Whether the chart's CRDs are to be applied: on a first install, and when the chart version changes.

    Helm creates a crds/ CRD that is missing and never touches one that exists, so a new chart
    version's CRDs (new fields a new operator writes) reach the cluster only through aks-ray.
    """
    return release is None or release.chart_name != versions.KUBERAY_CHART_NAME or release.chart_version != chart_version


def chart_crds(folder: Path) -> list[dict[str, Any]]:
    """Every CustomResourceDefinition in the chart's crds/ folder (sub-folders included, as helm reads it), by name."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: 4 MB of KubeRay CRDs in a second, not half a minute
    crds = []
    for path in sorted((folder / "crds").rglob("*")):
        if path.is_file() and path.suffix in CRD_SUFFIXES:
            with path.open(encoding="utf-8") as handle:
                crds += [doc for doc in yaml.load_all(handle, Loader=loader) if doc and doc.get("kind") == "CustomResourceDefinition"]
    return sorted(crds, key=lambda crd: crd["metadata"]["name"])


@contextlib.asynccontextmanager
async def chart_folder(client: Any, source: ChartSource) -> AsyncIterator[tuple[Any, Path]]:
    """The chart unpacked in a folder (pulled once from a repository, unpacked from a .tgz), and helm's Chart for it.

    Helm installs from that folder, so the CRDs applied are those of the chart installed.
    """
    if source.repo or source.ref.startswith("oci://"):
        async with client.pull_chart(source.ref, repo=source.repo, version=source.version) as chart:
            yield chart, Path(chart.ref)
        return
    path = Path(source.ref)
    if path.is_dir():
        yield await _get_chart(client, source), path
        return
    with tempfile.TemporaryDirectory(prefix="aks-ray-chart-") as unpacked:
        with tarfile.open(path) as archive:
            archive.extractall(unpacked, filter="data")  # no path outside the folder, no devices or links out
        folder = next(Path(unpacked).glob("*/Chart.yaml")).parent
        yield await client.get_chart(folder), folder


def apply_crds(api: kube.Kube, crds: list[dict[str, Any]], deadline_seconds: float = CRD_ESTABLISHED_DEADLINE_SECONDS) -> None:
    """Apply each CRD server-side as aks-ray, then wait, with a deadline, until every one is Established."""
    for crd in crds:
        name = crd["metadata"]["name"]
        try:
            kube.apply_crd(api, crd)
        except Exception as exc:
            if kube.status_of(exc) in (401, 403):
                raise OperationalError(
                    f"not allowed to apply CRD {name}: {kube.api_message(exc)}",
                    "the operator install needs the cluster identity (it may patch customresourcedefinitions); "
                    "a pull request's aks run leaves the operator to the cluster workflow.",
                ) from None
            if not kube.is_conflict(exc):
                raise
            conflicts = kube.apply_conflicts(exc)
            others = sorted(set(conflicts) - OWN_FIELD_MANAGERS)
            if others or not conflicts:
                raise OperationalError(
                    f"CRD {name}: the chart's version changes fields that {', '.join(others) or 'another manager'} manages "
                    f"({kube.api_message(exc)}); aks-ray takes over only its own and helm's.",
                    "the CRDs are the cluster owner's: upgrade them the way they were installed, or hand them to aks-ray "
                    "(kubectl apply --server-side --force-conflicts --field-manager aks-ray -f <chart>/crds/), then run again.",
                ) from None
            fields = sorted({field for found in conflicts.values() for field in found})
            log.info("CRD %s: taking over %s from %s", name, ", ".join(fields), ", ".join(conflicts))
            kube.apply_crd(api, crd, force=True)
        log.info("applied CRD %s (server-side, field manager %s)", name, kube.FIELD_MANAGER)
    names = [crd["metadata"]["name"] for crd in crds]
    deadline = retry.Deadline(deadline_seconds, what="the chart's CRDs to be Established")

    def established() -> bool:
        waiting = [name for name in names if not crd_established(kube.read_crd(api, name))]
        if waiting:
            log.info("waiting for CRDs to be Established: %s", ", ".join(waiting))
        return not waiting

    fix = "kubectl get crd <name> -o yaml: its conditions say why (NamesAccepted False: a name another CRD has)."
    retry.wait_until(established, deadline, interval=1.0, fix=fix)


# ---------------------------------------------------------------- readiness


def crd_established(crd: dict[str, Any] | None) -> bool:
    conditions = ((crd or {}).get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)


def deployment_available(deployment: dict[str, Any] | None) -> bool:
    status = (deployment or {}).get("status") or {}
    conditions = status.get("conditions") or []
    available = any(c.get("type") == "Available" and c.get("status") == "True" for c in conditions)
    # The new ReplicaSet must be the one that is available after an upgrade.
    updated = status.get("updatedReplicas", 0) >= ((deployment or {}).get("spec") or {}).get("replicas", 1)
    return available and updated


def wait_ready(cfg: Config, seconds: float = READY_DEADLINE_SECONDS) -> None:
    api = kube.connect(cfg)
    namespace = cfg.kube.operator_namespace
    deadline = retry.Deadline(seconds, what="the KubeRay operator")

    def ready() -> bool:
        missing = []
        for name in REQUIRED_CRDS:
            crd = kube.get_or_none(f"read CRD {name}", lambda name=name: api.extensions.read_custom_resource_definition(name))
            if not crd_established(api.to_dict(crd) if crd is not None else None):
                missing.append(f"CRD {name} not Established")
        deployment = kube.get_or_none(
            f"read Deployment {namespace}/{OPERATOR_DEPLOYMENT}",
            lambda: api.apps.read_namespaced_deployment(OPERATOR_DEPLOYMENT, namespace),
        )
        if not deployment_available(api.to_dict(deployment) if deployment is not None else None):
            missing.append(f"Deployment {namespace}/{OPERATOR_DEPLOYMENT} not Available")
        if missing:
            log.info("waiting for the KubeRay operator: %s", "; ".join(missing))
        return not missing

    try:
        retry.wait_until(
            ready,
            deadline,
            interval=3.0,
            fix=f"look at the operator pod: kubectl -n {namespace} describe pod -l {OPERATOR_POD_SELECTOR}",
        )
    except DeadlineExceeded:
        # Say why, in plain words: the usual causes are an image that cannot be pulled and no room.
        try:
            pods = kube.list_pods(api, namespace, OPERATOR_POD_SELECTOR)
            names = {p["metadata"]["name"] for p in pods}
            events = [e for e in kube.list_events(api, namespace) if (e.get("involvedObject") or {}).get("name") in names]
            for finding in diagnose.pod_findings(pods) + diagnose.event_findings(events):
                fix = OPERATOR_FIXES.get(finding.title, finding.fix)
                gha.error(f"{finding.message} Fix: {fix}", title=f"aks-ray: KubeRay operator: {finding.title}")
        except Exception as exc:
            log.warning("could not look at the operator pods: %s", exc)
        raise
    log.info(
        "KubeRay operator ready in %.0f s: CRDs established, Deployment %s/%s available", deadline.elapsed, namespace, OPERATOR_DEPLOYMENT
    )


def main(cfg: Config) -> int:
    source = chart_source(cfg)
    with gha.group(f"install the KubeRay operator ({source.describe()})"):
        changed = install(cfg)
        wait_ready(cfg)
    gha.set_outputs(cfg.github.output, {"operator-changed": str(changed).lower()})
    return 0
