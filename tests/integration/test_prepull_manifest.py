"""manifests/prepull-daemonset.yaml: the pre-pull of the Ray image onto the Ray pool (issue 15, point 3).

Validated by the API server with a server-side dry run when the local test cluster
(tests/cluster; AKS_RAY_E2E_KUBECONFIG or its default kubeconfig) is reachable: the
Namespace as written, the DaemonSet in a scratch namespace with the same Pod
Security labels (a dry run creates nothing, so the manifest's own namespace does
not exist for it), and no Pod Security warning. Elsewhere, against Kubernetes'
own schemas with kubernetes-validate. Either way: the Ray pool's label and
taint, and the project's Ray image.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from aks_ray import config, versions

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DOCS = list(yaml.safe_load_all((ROOT / "manifests" / "prepull-daemonset.yaml").read_text(encoding="utf-8")))
NAMESPACE = next(doc for doc in DOCS if doc["kind"] == "Namespace")
DAEMONSET = next(doc for doc in DOCS if doc["kind"] == "DaemonSet")
KUBECONFIG = os.environ.get("AKS_RAY_E2E_KUBECONFIG", "/var/lib/aks-ray-cluster/kubeconfig")
CLUSTER_VERSIONS = dict(
    line.split("=", 1) for line in (ROOT / "tests" / "cluster" / "versions.env").read_text(encoding="utf-8").splitlines() if "=" in line
)


def kubectl() -> str | None:
    """The local cluster's own kubectl (tests/cluster/lib.sh's cache folder), else one on PATH."""
    cache = Path(os.environ.get("AKS_RAY_CLUSTER_CACHE", "/var/cache/aks-ray-cluster"))
    built = cache / f"k8s-v{CLUSTER_VERSIONS['KUBERNETES_VERSION']}" / "bin" / "kubectl"
    for candidate in (str(built), shutil.which("kubectl")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def run(binary: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [binary, "--kubeconfig", KUBECONFIG, "--request-timeout=20s", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def reachable_cluster() -> str | None:
    binary = kubectl()
    if binary is None or not Path(KUBECONFIG).is_file():
        return None
    return binary if run(binary, "get", "--raw", "/readyz").returncode == 0 else None


def test_the_manifest_places_the_ray_image_on_the_ray_pool_only():
    spec = DAEMONSET["spec"]["template"]["spec"]
    key, value = config.RAY_POOL_LABEL
    assert spec["nodeSelector"] == {key: value}
    taint_key, taint_value, effect = config.RAY_POOL_TAINT
    assert spec["tolerations"] == [{"key": taint_key, "operator": "Equal", "value": taint_value, "effect": effect}]
    pull, hold = spec["initContainers"], spec["containers"]
    assert [c["command"] for c in pull] == [["true"]]
    assert {c["image"] for c in pull + hold} == {versions.RAY_IMAGE}
    assert spec["automountServiceAccountToken"] is False
    assert DAEMONSET["metadata"]["namespace"] == NAMESPACE["metadata"]["name"]


def test_the_manifest_validates():
    binary = reachable_cluster()
    if binary is None:
        for doc in DOCS:
            kubernetes_validate.validate(doc, versions.KUBERNETES_VERSION + ".0", strict=True)
        return
    result = run(binary, "apply", "--dry-run=server", "-o", "json", "-f", "-", stdin=json.dumps(NAMESPACE))
    assert result.returncode == 0, result.stderr
    scratch = f"aks-ray-prepull-test-{uuid.uuid4().hex[:6]}"
    namespace = {**NAMESPACE, "metadata": {**NAMESPACE["metadata"], "name": scratch}}
    created = run(binary, "create", "-f", "-", stdin=json.dumps(namespace))
    assert created.returncode == 0, created.stderr
    try:
        daemonset = {**DAEMONSET, "metadata": {**DAEMONSET["metadata"], "namespace": scratch}}
        result = run(binary, "apply", "--dry-run=server", "-o", "json", "-f", "-", stdin=json.dumps(daemonset))
        assert result.returncode == 0, result.stderr
        assert "PodSecurity" not in result.stderr, f"the pods would break the namespace's restricted Pod Security: {result.stderr}"
        assert (
            json.loads(result.stdout)["spec"]["template"]["spec"]["nodeSelector"] == DAEMONSET["spec"]["template"]["spec"]["nodeSelector"]
        )
    finally:
        run(binary, "delete", "namespace", scratch, "--wait=false")
