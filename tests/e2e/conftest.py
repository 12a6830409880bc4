"""The end-to-end harness: a Kubernetes cluster for the session, one namespace per test.

The cluster is, in this order:
  1. the one in the kubeconfig named by AKS_RAY_E2E_KUBECONFIG (any cluster: the
     project's own test cluster, minikube, AKS), or
  2. a kind cluster from pytest-kind-ng's `kind_cluster` fixture (needs Docker):
     one of that name already there is reused (tests/kind/up.sh makes one from a
     node image built on the machine, for machines without a registry), else it is
     created for the session; kept with --keep-cluster for the next local run.
Without either, every test here is skipped with the reason.

Each test gets its own namespace. On teardown every pod's logs (current and
previous) and the namespace's events are stored under AKS_RAY_E2E_OUTPUT
(default tests/e2e/.artifacts/<test>/) before the namespace is deleted.

Configuration, from the environment:
  AKS_RAY_E2E_KUBECONFIG   kubeconfig of an existing cluster (skips kind)
  AKS_RAY_E2E_CONTEXT      its context (default: the current one)
  AKS_RAY_E2E_KIND_IMAGE   kind node image for pytest-kind-ng (--kind-image; default
                           the kind release's own, kindest/node)
  AKS_RAY_E2E_KIND_BIN     kind binary for pytest-kind-ng (--kind-bin; default `kind`
                           on PATH, else pytest-kind-ng downloads release KIND_VERSION)
  AKS_RAY_E2E_RAY_IMAGE    Ray image for the RayJob (default: the project's pin)
  AKS_RAY_E2E_TORCH_IMAGE  an image whose tag names the pinned torch, for the whole-run test (tests/cluster's)
  AKS_RAY_E2E_CHART        KubeRay chart: repository URL or local folder (default: the
                           shared fixture when present, else KubeRay's repository)
  AKS_RAY_E2E_TIMEOUT      deadline of one training run (default 30m)
  AKS_RAY_E2E_OUTPUT       where pod logs and events of each test are kept
  AKS_RAY_E2E_KEEP_NAMESPACES=1   leave the test namespaces behind for debugging
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from aks_ray.config import PROJECT_ROOT

E2E_DIR = Path(__file__).resolve().parent
SHARED_CHART = PROJECT_ROOT.parent / "shared" / "fixtures" / "kuberay-operator-1.7.0"


@dataclass(frozen=True)
class Cluster:
    kubeconfig: Path
    context: str | None
    source: str

    def kube_env(self) -> dict[str, str]:
        env = {"AKS_RAY_KUBECONFIG": str(self.kubeconfig)}
        if self.context:
            env["AKS_RAY_KUBE_CONTEXT"] = self.context
        return env


def _docker_works() -> str | None:
    """None if Docker answers, else why not."""
    if shutil.which("docker") is None:
        return "docker is not installed"
    try:
        result = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True, timeout=20, check=False
        )
    except subprocess.TimeoutExpired:
        return "docker info did not answer within 20 s"
    return None if result.returncode == 0 else f"the Docker daemon is not reachable ({result.stderr.strip()[:200]})"


@pytest.fixture(scope="session")
def cluster(request) -> Cluster:
    given = os.environ.get("AKS_RAY_E2E_KUBECONFIG", "").strip()
    if given:
        path = Path(given).expanduser()
        if not path.is_file():
            pytest.skip(f"AKS_RAY_E2E_KUBECONFIG={given} does not exist")
        return Cluster(path, os.environ.get("AKS_RAY_E2E_CONTEXT") or None, f"kubeconfig {path}")
    why_not = _docker_works()
    if why_not:
        pytest.skip(
            f"no cluster for the e2e suite: AKS_RAY_E2E_KUBECONFIG is not set and kind cannot run ({why_not}). "
            "Set AKS_RAY_E2E_KUBECONFIG to a cluster's kubeconfig, or run where Docker works (make e2e)."
        )
    _kind_options_from_env(request.config)
    kind = request.getfixturevalue("kind_cluster")
    image = request.config.option.kind_image or "the kind release's default image"
    return Cluster(Path(kind.kubeconfig_path), None, f"kind cluster {kind.name} ({image})")


def _kind_options_from_env(config) -> None:
    """pytest-kind-ng's --kind-image and --kind-bin, from the environment where not given on the command line."""
    image = os.environ.get("AKS_RAY_E2E_KIND_IMAGE", "").strip()
    if image and not config.option.kind_image:
        config.option.kind_image = image
    if config.option.kind_bin:
        return
    given = os.environ.get("AKS_RAY_E2E_KIND_BIN", "").strip()
    if given and not os.access(given, os.X_OK):
        pytest.skip(f"AKS_RAY_E2E_KIND_BIN={given} is not an executable (tests/kind/build.sh builds kind)")
    config.option.kind_bin = given or shutil.which("kind")


@pytest.fixture(scope="session")
def kube_api(cluster):
    from kubernetes import client, config

    api_client = config.new_client_from_config(config_file=str(cluster.kubeconfig), context=cluster.context)
    return client.CoreV1Api(api_client)


def _artifact_dir(request) -> Path:
    base = Path(os.environ.get("AKS_RAY_E2E_OUTPUT", E2E_DIR / ".artifacts"))
    return base / re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)


def store_namespace_diagnostics(api, namespace: str, folder: Path) -> None:
    """Every pod's logs (and the previous container's) and all events of the namespace."""
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    for pod in api.list_namespaced_pod(namespace).items:
        containers = [c.name for c in (pod.spec.init_containers or []) + pod.spec.containers]
        for container in containers:
            for previous in (False, True):
                try:
                    text = api.read_namespaced_pod_log(pod.metadata.name, namespace, container=container, previous=previous)
                except Exception as exc:  # no previous container, or the pod never started
                    if not previous:
                        text = f"(no log: {getattr(exc, 'reason', exc)})\n"
                    else:
                        continue
                suffix = ".previous.log" if previous else ".log"
                (folder / f"{pod.metadata.name}.{container}{suffix}").write_text(text, encoding="utf-8")
    events = api.list_namespaced_event(namespace).items
    lines = [
        f"{e.last_timestamp or e.event_time or ''} {e.type} {e.reason} {e.involved_object.kind}/{e.involved_object.name}: {e.message}"
        for e in sorted(events, key=lambda e: str(e.last_timestamp or e.event_time or ""))
    ]
    (folder / "events.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "pods.yaml").write_text(
        yaml.safe_dump(api.api_client.sanitize_for_serialization(api.list_namespaced_pod(namespace)), sort_keys=False), encoding="utf-8"
    )


@pytest.fixture
def namespace(request, cluster, kube_api):
    """A fresh namespace for one test; its pods' logs and events are kept, then it is deleted."""
    name = f"aks-ray-e2e-{uuid.uuid4().hex[:6]}"
    # Enforcing the restricted Pod Security Standard, as aks-ray labels a namespace it creates:
    # the API server itself refuses any pod of a run that leaves the sandbox.
    labels = {"aks-ray.io/e2e": "true", "pod-security.kubernetes.io/enforce": "restricted"}
    kube_api.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})
    yield name
    try:
        store_namespace_diagnostics(kube_api, name, _artifact_dir(request))
    finally:
        if os.environ.get("AKS_RAY_E2E_KEEP_NAMESPACES") != "1":
            kube_api.delete_namespace(name, propagation_policy="Background")


@pytest.fixture(scope="session")
def chart() -> str:
    given = os.environ.get("AKS_RAY_E2E_CHART", "").strip()
    if given:
        return given
    return str(SHARED_CHART) if (SHARED_CHART / "Chart.yaml").is_file() else ""


@pytest.fixture(scope="session")
def helm_on_path():
    """helm for `aks-ray operator install`: on PATH, or from scripts/tools/get-helm.sh."""
    if shutil.which("helm"):
        return shutil.which("helm")
    result = subprocess.run(
        ["bash", str(PROJECT_ROOT / "scripts/tools/get-helm.sh")], capture_output=True, text=True, timeout=300, check=False
    )
    if result.returncode != 0:
        pytest.skip(f"helm is needed to install KubeRay and could not be had: {result.stderr.strip()[-300:]}")
    return result.stdout.strip().splitlines()[-1]
