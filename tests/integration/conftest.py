"""Fixtures for the integration tests: the KubeRay chart + CRDs fixture and a real helm binary."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from aks_ray.config import PROJECT_ROOT

# The KubeRay operator chart, release 1.7.0, with its CRDs: in ../shared beside the
# project on the team's machines; anywhere else, point AKS_RAY_KUBERAY_FIXTURE at a copy.
KUBERAY_FIXTURE = Path(os.environ.get("AKS_RAY_KUBERAY_FIXTURE", PROJECT_ROOT.parent / "shared" / "fixtures" / "kuberay-operator-1.7.0"))
GET_HELM = PROJECT_ROOT / "scripts" / "tools" / "get-helm.sh"


@pytest.fixture(scope="session")
def kuberay_chart() -> Path:
    if not (KUBERAY_FIXTURE / "Chart.yaml").is_file():
        pytest.skip(f"the KubeRay 1.7.0 chart fixture is not at {KUBERAY_FIXTURE} (set AKS_RAY_KUBERAY_FIXTURE to a copy of the chart)")
    return KUBERAY_FIXTURE


@pytest.fixture(scope="session")
def rayjob_crd(kuberay_chart: Path) -> Path:
    return kuberay_chart / "crds" / "ray.io_rayjobs.yaml"


@pytest.fixture(scope="session")
def helm(tmp_path_factory) -> str:
    """A real helm: on PATH, in .tools/bin, or installed there by scripts/tools/get-helm.sh."""
    found = shutil.which("helm") or (str(PROJECT_ROOT / ".tools/bin/helm") if (PROJECT_ROOT / ".tools/bin/helm").is_file() else None)
    if found:
        return found
    try:
        result = subprocess.run(["bash", str(GET_HELM)], capture_output=True, text=True, timeout=300, check=False)
    except subprocess.TimeoutExpired:
        pytest.skip("helm is not installed and scripts/tools/get-helm.sh did not finish within 300 s")
    path = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    if result.returncode != 0 or not Path(path).is_file():
        pytest.skip(f"helm is not installed and scripts/tools/get-helm.sh could not install it: {result.stderr.strip()[-300:]}")
    return path
