"""A cancelled workflow, replayed against the real process tree.

GitHub cancels a step by signalling the step's process: SIGINT, then SIGTERM
7.5 s later, then SIGKILL 2.5 s after that (actions/runner, ProcessInvoker).
These tests run action.yml's own `run:` lines through bash as the runner does,
with the fake terraform (tests/fakes/terraform) on PATH: it creates resources
one by one into a local state, records every signal it gets, and on an
interrupt takes a while to finish the resource in flight, as Terraform does.

The runner's delays are scaled by AKS_RAY_CANCEL_TEST_SCALE (default 0.2, so
1.5 s and 0.5 s); the order of the signals is the runner's.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

import aks_ray
from aks_ray import config, infra

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
FAKES = ROOT / "tests" / "fakes"
SCALE = float(os.environ.get("AKS_RAY_CANCEL_TEST_SCALE", "0.2"))
SIGINT_TO_SIGTERM = 7.5 * SCALE
SIGTERM_TO_SIGKILL = 2.5 * SCALE
STEPS = {step.get("id"): step for step in yaml.safe_load((ROOT / "action.yml").read_text(encoding="utf-8"))["runs"]["steps"]}
# The runner's shell for `shell: bash` (actions/runner, ScriptHandlerHelpers).
RUNNER_BASH = ["bash", "--noprofile", "--norc", "-e", "-o", "pipefail"]


# ------------------------------------------------------------ processes


def process_table() -> dict[int, tuple[str, int]]:
    """pid -> (state, process group) of every process on the machine, from /proc."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        table[int(entry.name)] = (fields[0], int(fields[2]))
    return table


def running(pid: int) -> bool:
    state = process_table().get(pid)
    return state is not None and state[0] != "Z"


def group_members(pgid: int) -> list[int]:
    """Processes of a process group that still run (a zombie waits only for its reaper)."""
    return [pid for pid, (state, group) in process_table().items() if group == pgid and state != "Z"]


def wait_for(condition, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}")


# ------------------------------------------------------------ the step


class Workflow:
    """A job's environment for the aks target, with the fake terraform and action.yml's steps."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.tf_dir = tmp_path / "tf"
        shutil.copytree(ROOT / "terraform", self.tf_dir, ignore=shutil.ignore_patterns(".terraform", "*.tfstate*", "*_override.tf"))
        self.events_file = tmp_path / "terraform-events.jsonl"
        bin_dir = tmp_path / "venv-bin"
        bin_dir.mkdir()
        # The console script the action's venv would hold, running this checkout's package.
        shim = bin_dir / "aks-ray"
        shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m aks_ray.cli "$@"\n')
        shim.chmod(0o755)
        (tmp_path / "gh").mkdir()
        self.env = {
            "PATH": f"{FAKES}:{os.environ['PATH']}",
            "HOME": os.environ.get("HOME", str(tmp_path)),
            "PYTHONPATH": str(Path(aks_ray.__file__).parents[1]),
            "ACTION_VENV_BIN": str(bin_dir),
            "AKS_RAY_TARGET": "aks",
            "AKS_RAY_OUTPUT_DIR": str(tmp_path / "out"),
            "AKS_RAY_TERRAFORM_DIR": str(self.tf_dir),
            "AKS_RAY_DESTROY_POLICY": "always",
            "AKS_RAY_AZURE_SUBSCRIPTION_ID": "11111111-1111-1111-1111-111111111111",
            "AKS_RAY_AZURE_TENANT_ID": "33333333-3333-3333-3333-333333333333",
            "AKS_RAY_AZURE_CLIENT_ID": "22222222-2222-2222-2222-222222222222",
            "GITHUB_ACTIONS": "true",
            "GITHUB_RUN_ID": "9876543210",
            "GITHUB_OUTPUT": str(tmp_path / "gh" / "output"),
            "GITHUB_STEP_SUMMARY": str(tmp_path / "gh" / "summary.md"),
            "ACTIONS_ID_TOKEN_REQUEST_URL": "http://127.0.0.1:9/token",
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "request-token",
            "FAKE_TERRAFORM_EVENTS": str(self.events_file),
            # Long enough that the interrupt always lands while a resource is being created.
            "FAKE_TERRAFORM_RESOURCE_SECONDS": "30",
        }
        self.started: list[subprocess.Popen] = []

    def plan(self, monkeypatch) -> None:
        """A saved plan, made by the real code (no preflight: there is no Azure here)."""
        for name, value in self.env.items():
            monkeypatch.setenv(name, value)
        infra.plan(config.load({}, dict(os.environ)), preflight_check=False)

    def start(self, step_id: str, run: str | None = None, **env: str) -> subprocess.Popen:
        """action.yml's `run:` for the step (or `run`), as the runner runs it: a script file given to bash."""
        script = self.tmp / f"{step_id}.sh"
        script.write_text((run or STEPS[step_id]["run"]) + "\n")
        process = subprocess.Popen(
            [*RUNNER_BASH, str(script)],
            env={**self.env, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        self.started.append(process)
        return process

    def events(self, **match) -> list[dict]:
        if not self.events_file.exists():
            return []
        found = [json.loads(line) for line in self.events_file.read_text().splitlines()]
        return [e for e in found if all(e.get(k) == v for k, v in match.items())]

    def state(self) -> list[str]:
        doc = json.loads((self.tf_dir / "terraform.tfstate").read_text())
        return [
            f"{r['type']}.{r['name']}" + (f"[{json.dumps(i['index_key'])}]" if "index_key" in i else "")
            for r in doc["resources"]
            for i in r["instances"]
        ]

    def cleanup(self) -> None:
        """Whatever a failed test left running: the steps' groups and every fake terraform."""
        for process in self.started:
            with_suppressed(os.killpg, process.pid, signal.SIGKILL)
            with_suppressed(process.communicate, timeout=10)
        for start in self.events(event="start"):
            with_suppressed(os.killpg, start["pid"], signal.SIGKILL)


def with_suppressed(call, *args, **kwargs) -> None:
    with contextlib.suppress(OSError, subprocess.TimeoutExpired, ValueError):
        call(*args, **kwargs)


@pytest.fixture
def workflow(tmp_path, monkeypatch):
    flow = Workflow(tmp_path)
    yield flow
    flow.cleanup()


def interrupted_apply(workflow: Workflow, stop_seconds: float, run: str | None = None) -> tuple[subprocess.Popen, dict]:
    """Start `infra apply` and wait until Terraform is creating its first resource."""
    step = workflow.start("infra-apply", run=run, FAKE_TERRAFORM_STOP_SECONDS=str(stop_seconds))
    wait_for(lambda: workflow.events(command="apply", event="creating"), 60, "terraform apply to start creating")
    (apply,) = workflow.events(command="apply", event="start")
    assert running(apply["pid"])
    return step, apply


def destroy_after(workflow: Workflow) -> tuple[int, str]:
    step = workflow.start("destroy")
    _, err = step.communicate(timeout=60)
    return step.returncode, err


# ------------------------------------------------------------ the tests


def test_a_cancelled_apply_stops_terraform_cleanly_and_destroy_removes_what_it_made(workflow, monkeypatch):
    """SIGINT, 7.5 s, SIGTERM: Terraform stops on its own within the runner's 10 s; nothing is left."""
    stop_seconds = SIGINT_TO_SIGTERM + SIGTERM_TO_SIGKILL / 2  # after the SIGTERM, before the runner's SIGKILL
    workflow.plan(monkeypatch)
    step, apply = interrupted_apply(workflow, stop_seconds)

    step.send_signal(signal.SIGINT)
    time.sleep(SIGINT_TO_SIGTERM)
    assert step.poll() is None, "the CLI returned while Terraform was still stopping"
    step.send_signal(signal.SIGTERM)
    _, err = step.communicate(timeout=60)

    assert step.returncode == 130, err
    assert "interrupted" in err
    # Terraform heard one interrupt: the runner's SIGTERM is the same cancel, not a second Ctrl-C
    # (which would make Terraform exit at once and lose what it was creating).
    assert [e["signal"] for e in workflow.events(pid=apply["pid"], event="signal")] == ["SIGINT"]
    # It stopped on its own (it says so when it exits), before the CLI did: nothing of its group is left.
    assert workflow.events(pid=apply["pid"], event="exit") == [{"pid": apply["pid"], "command": "apply", "event": "exit", "code": 1}]
    assert group_members(apply["pid"]) == []
    assert group_members(step.pid) == []
    # The CLI read Terraform's output to its end, and said what happened.
    assert "Gracefully shutting down..." in err and "Error: execution halted" in err
    assert "passing the interrupt on to" in err and "still waiting for" in err
    created = [e["address"] for e in workflow.events(pid=apply["pid"], event="created")]
    # The resource in flight when the interrupt came was finished and saved; no other was started.
    assert len(created) == 1
    assert [e["address"] for e in workflow.events(pid=apply["pid"], event="creating")] == created
    assert workflow.state() == created
    assert not (workflow.tmp / "out" / "infra.json").exists()

    code, err = destroy_after(workflow)

    assert code == 0, err
    assert sorted(e["address"] for e in workflow.events(command="destroy", event="destroyed")) == sorted(created)
    assert workflow.state() == []


def test_terraform_outlives_the_runners_sigkill_of_the_cli_and_finishes_its_stop(workflow, monkeypatch):
    """The runner's whole sequence: the CLI is killed 10 s in; Terraform, told to stop, finishes anyway.

    A Terraform killed mid-apply would forget the resource it was creating (and
    keep a remote state's lock); it keeps running because it is in its own
    session and writes its output into a file, not a pipe that would break.
    """
    stop_seconds = SIGINT_TO_SIGTERM + SIGTERM_TO_SIGKILL + 2.0  # still stopping when the CLI is killed
    workflow.plan(monkeypatch)
    step, apply = interrupted_apply(workflow, stop_seconds)

    step.send_signal(signal.SIGINT)
    time.sleep(SIGINT_TO_SIGTERM)
    step.send_signal(signal.SIGTERM)
    time.sleep(SIGTERM_TO_SIGKILL)
    step.kill()  # the runner kills the step's process only, not its group
    step.communicate(timeout=30)

    assert running(apply["pid"]), "terraform died with the CLI"
    wait_for(lambda: workflow.events(pid=apply["pid"], event="exit"), 30, "terraform to finish stopping")
    assert [e["signal"] for e in workflow.events(pid=apply["pid"], event="signal")] == ["SIGINT"]
    assert workflow.events(pid=apply["pid"], event="exit")[0]["code"] == 1
    wait_for(lambda: not group_members(apply["pid"]), 10, "terraform's process group to be gone")
    created = [e["address"] for e in workflow.events(pid=apply["pid"], event="created")]
    assert len(created) == 1, "the resource in flight, finished after the CLI was gone"
    assert workflow.state() == created

    code, err = destroy_after(workflow)

    assert code == 0, err
    assert sorted(e["address"] for e in workflow.events(command="destroy", event="destroyed")) == sorted(created)


def test_without_exec_the_runners_signals_never_reach_the_cli(workflow, monkeypatch):
    """Why action.yml's lines exec: bash gets the signals, dies of SIGTERM, and Terraform is never told."""
    workflow.plan(monkeypatch)
    step, apply = interrupted_apply(workflow, 1.0, run=STEPS["infra-apply"]["run"].removeprefix("exec "))

    step.send_signal(signal.SIGINT)
    time.sleep(SIGINT_TO_SIGTERM)
    step.send_signal(signal.SIGTERM)
    step.wait(timeout=30)  # not its output: the CLI that outlives bash holds the pipes open

    assert step.returncode == -signal.SIGTERM
    assert group_members(step.pid), "the CLI should have outlived its bash"
    assert running(apply["pid"])
    assert workflow.events(pid=apply["pid"], event="signal") == []
