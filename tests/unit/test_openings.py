"""Issue 12's smaller openings: training output cannot issue workflow commands or break the summary, nor see the runner's secrets."""

from __future__ import annotations

import pytest

from aks_ray import job, local, report
from aks_ray.rundir import RunDir


class Sink:
    """Stands in for the log follower's Kubernetes client: _line is all these tests drive."""


@pytest.mark.parametrize(
    "line",
    ["::add-mask::anything", "::stop-commands::tok", "::error title=fake::all tests passed", "::set-output name=x::y"],
)
def test_driver_lines_on_kubernetes_cannot_be_workflow_commands(tmp_path, capsys, line):
    follower = job.LogFollower(Sink(), "aks-ray", RunDir(tmp_path))
    follower._line(line)
    err = capsys.readouterr().err
    assert err.startswith("  | "), "prefixed like the local target's lines"
    assert not any(printed.startswith("::") for printed in err.splitlines())
    assert (tmp_path / "job.log").read_text().strip() != "" and "  | " not in (tmp_path / "job.log").read_text()


def test_the_summary_fence_outlasts_any_backtick_run():
    text = "Traceback\n```\n# Injected heading\n````markdown\n[click](https://evil.example)"
    fence, *body, closing = report.fenced(text)
    assert fence.startswith("`````") and closing == "`````"
    assert body == [text]
    assert report.fenced("plain")[0] == "```text"


def test_the_local_training_process_gets_a_minimal_environment():
    runner = {
        "PATH": "/usr/bin",
        "HOME": "/home/runner",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "HTTPS_PROXY": "http://proxy:3128",
        "RAY_DEDUP_LOGS": "0",
        "RAY_AUTH_TOKEN": "ray-token",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "request-token",
        "ACTIONS_ID_TOKEN_REQUEST_URL": "https://pipelines.example/oidc",
        "ACTIONS_RUNTIME_TOKEN": "runtime-token",
        "GITHUB_TOKEN": "ghs_abc",
        "GITHUB_ENV": "/home/runner/work/_temp/_runner_file_commands/set_env",
        "GITHUB_OUTPUT": "/home/runner/work/_temp/_runner_file_commands/set_output",
        "ARM_CLIENT_SECRET": "azure-secret",
        "KUBECONFIG": "/home/runner/.kube/config",
    }
    env = local.training_environment(runner)
    assert env == {
        "PATH": "/usr/bin",
        "HOME": "/home/runner",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "HTTPS_PROXY": "http://proxy:3128",
        "RAY_DEDUP_LOGS": "0",
    }
