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
    """SIGINT, 7.5 s, SIGTERM while Terraform is still stopping: the CLI waits for it; nothing is left."""
    stop_seconds = SIGINT_TO_SIGTERM + 1.0  # the SIGTERM comes a good second before Terraform is done
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


# ------------------------------------------------- proc.run on its own

# A CLI in miniature: one proc.run, and what came of it on stdout.
DRIVER = """
import json, sys
from aks_ray import proc, signals
try:
    result = proc.run(sys.argv[2:], timeout=60, interrupt_grace=float(sys.argv[1]))
    print(json.dumps({"returncode": result.returncode, "output": result.output}))
except signals.Interrupted as exc:
    print(json.dumps({"interrupted": signals.name(exc.signum)}))
"""
# A program that records the signals it gets and, told to stop, takes `stop` s to do so;
# `yields` makes a second signal stop it at once, as Terraform's second interrupt does.
CHILD = """
import json, os, signal, sys, time
record, stop, mode = sys.argv[1], float(sys.argv[2]), sys.argv[3]
got = []
def note(**fields):
    with open(record, "a") as handle:
        handle.write(json.dumps({"pid": os.getpid(), **fields}) + "\\n")
def on_signal(signum, frame):
    got.append(signum)
    note(signal=signal.Signals(signum).name)
signal.signal(signal.SIGINT, on_signal)
signal.signal(signal.SIGTERM, on_signal)
note(event="start")
while not got:
    time.sleep(0.02)
until = time.monotonic() + stop
while time.monotonic() < until and not (mode == "yields" and len(got) > 1):
    time.sleep(0.02)
note(event="exit")
sys.exit(3)
"""


class Driven:
    def __init__(self, tmp_path: Path, grace: float, stop: float, mode: str) -> None:
        self.record = tmp_path / "child.jsonl"
        env = {**os.environ, "PYTHONPATH": str(Path(aks_ray.__file__).parents[1])}
        child = [sys.executable, "-c", CHILD, str(self.record), str(stop), mode]
        self.process = subprocess.Popen(
            [sys.executable, "-c", DRIVER, str(grace), *child], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        wait_for(lambda: self.notes(event="start"), 30, "the child to start")
        self.child = self.notes(event="start")[0]["pid"]

    def notes(self, **match) -> list[dict]:
        if not self.record.exists():
            return []
        found = [json.loads(line) for line in self.record.read_text().splitlines()]
        return [n for n in found if all(n.get(k) == v for k, v in match.items())]

    def signals(self) -> list[str]:
        return [n["signal"] for n in self.notes() if "signal" in n]

    def result(self) -> tuple[dict, str]:
        out, err = self.process.communicate(timeout=60)
        return json.loads(out), err

    def kill(self) -> None:
        with_suppressed(os.killpg, self.child, signal.SIGKILL)
        with_suppressed(self.process.kill)


@pytest.fixture
def driven(tmp_path):
    made: list[Driven] = []

    def start(grace: float, stop: float, mode: str = "yields") -> Driven:
        made.append(Driven(tmp_path, grace, stop, mode))
        return made[-1]

    yield start
    for each in made:
        each.kill()


def test_sigterm_alone_interrupts_and_reaches_the_program_as_sigint(driven):
    run = driven(grace=30, stop=0.5)
    run.process.send_signal(signal.SIGTERM)
    result, err = run.result()
    assert result == {"interrupted": "SIGTERM"}
    assert run.signals() == ["SIGINT"]
    assert run.notes(event="exit"), "the program stopped on its own"
    assert "stopped after the interrupt (exit code 3)" in err


def test_the_same_signal_twice_stops_the_program_at_once(driven):
    run = driven(grace=60, stop=60)
    started = time.monotonic()
    run.process.send_signal(signal.SIGINT)
    wait_for(lambda: run.signals(), 10, "the interrupt to reach the program")
    run.process.send_signal(signal.SIGINT)
    result, err = run.result()
    assert result == {"interrupted": "SIGINT"}
    assert run.signals() == ["SIGINT", "SIGINT"]
    assert time.monotonic() - started < 30, "the second Ctrl-C did not cut the 60 s stop short"
    assert "SIGINT again" in err


def test_a_program_that_will_not_stop_is_killed_when_the_grace_is_over(driven):
    run = driven(grace=1, stop=60, mode="stubborn")
    run.process.send_signal(signal.SIGINT)
    result, err = run.result()
    assert result == {"interrupted": "SIGINT"}
    assert run.notes(event="exit") == [], "killed, not stopped"
    assert group_members(run.child) == []
    assert "did not stop in time" in err
