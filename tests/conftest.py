"""Shared test configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
FULL_MNIST = SHARED / "data" / "mnist"


@pytest.fixture(autouse=True)
def _workflow_commands_on(monkeypatch):
    """cli.main() switches annotations to plain text outside Actions; each test starts from the default."""
    from aks_ray import gha

    monkeypatch.setattr(gha, "_workflow_commands", True)


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch):
    """No test sees the developer's or CI's AKS_RAY_*/GitHub variables unless it sets them."""
    import os

    for name in list(os.environ):
        if name.startswith("AKS_RAY_E2E_"):
            continue
        if name.startswith(("AKS_RAY_", "GITHUB_", "ACTIONS_", "ARM_", "AZURE_")) or name in ("ACT", "RUNNER_TEMP", "KUBECONFIG"):
            monkeypatch.delenv(name, raising=False)
