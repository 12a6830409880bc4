"""tests/kind/up.sh without its cache: .ci/run relies on exit 3, a reason on stderr and nothing to eval on stdout."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_up_without_the_cache_exits_3_naming_what_is_missing(tmp_path):
    env = {
        **os.environ,
        "AKS_RAY_KIND_NO_BUILD": "1",
        "AKS_RAY_KIND_CACHE": str(tmp_path / "kind-cache"),
        "AKS_RAY_CLUSTER_CACHE": str(tmp_path / "cluster-cache"),
        "AKS_RAY_KIND_STATE": str(tmp_path / "state"),
        "AKS_RAY_KIND_RUN": str(tmp_path / "run"),
    }
    result = subprocess.run(["bash", str(ROOT / "tests/kind/up.sh")], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 3, result.stderr
    assert result.stdout == ""
    assert f"missing: {tmp_path}/kind-cache/kind-v" in result.stderr
    assert f"missing: {tmp_path}/cluster-cache/images/localhost_aks-ray_ray_" in result.stderr
    assert "tests/kind/build.sh" in result.stderr
    assert not (tmp_path / "run").exists(), "no Docker daemon was started"
