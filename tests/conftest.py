"""Shared test configuration."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
FULL_MNIST = SHARED / "data" / "mnist"


def pytest_configure(config):
    """SIGINT as a terminal has it, whoever started pytest.

    A command a non-interactive shell starts in the background (`cmd &`, `nohup cmd &`)
    ignores SIGINT, and an ignored signal stays ignored in every program it execs: the
    cancel tests' Ctrl-C would then reach no CLI, no Terraform and no Ray. A handled
    signal is reset to its default on exec, so restoring Python's handler here gives
    every process the tests start a SIGINT that works (seen: six cancel and signal
    tests failing under `nohup .ci/run &`, all passing in the foreground).
    """
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


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
