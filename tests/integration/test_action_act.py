"""The self-test workflow under act, for real: host mode, offline, no Docker.

act runs .github/workflows/self-test.yml on this machine (`-P
ubuntu-latest=-self-hosted`): the composite action from this checkout creates
its private venv, trains with `target: local` on the bundled sample, and the
workflow checks the outputs; the bad-input jobs check that validation stops
the action before anything starts.

act fetches every remote action of a job before the job starts, even one whose
`if:` will skip it. With no route to GitHub, each of them (actions/setup-python,
actions/upload-artifact) is mapped with --local-repository to .github/act/stand-in,
which fails loudly if it ever runs, so a broken `env.ACT` guard cannot go unnoticed.
actions/checkout act replaces with a copy of the working tree by itself.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "self-test.yml"
ACTION = ROOT / "action.yml"
# The local job installs ray and torch into the action's own venv, then trains.
DEADLINE_SECONDS = 45 * 60
# What act gets instead of each remote action; it fails if it ever runs (the README uses it too).
STAND_IN = ROOT / ".github" / "act" / "stand-in"

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def act_executable() -> str | None:
    beside = Path(sys.executable).parent / "act"
    return str(beside) if beside.exists() else shutil.which("act")


def remote_actions(*files: Path) -> set[str]:
    """Every `owner/repo@ref` used by the given workflow or action files, checkout excepted."""
    found = set()
    for path in files:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        jobs = document.get("jobs", {}).values() if "jobs" in document else [document["runs"]]
        for job in jobs:
            for step in job.get("steps", []):
                uses = step.get("uses", "")
                if uses and not uses.startswith(("./", "docker://")) and not uses.startswith("actions/checkout@"):
                    found.add(uses)
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_remote_actions_are_found():
    """The stand-in mapping below covers what action.yml fetches: guard against a silent no-op."""
    assert {u.split("@")[0] for u in remote_actions(ACTION, WORKFLOW)} == {
        "actions/setup-python",
        "actions/upload-artifact",
        "hashicorp/setup-terraform",
    }


def test_self_test_workflow_passes_under_act(tmp_path):
    act = act_executable()
    if act is None:
        pytest.skip("act is not installed: it comes with the test extra (pip install -e '.[test]', or make test)")
    probe = subprocess.run([act, "--version"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"act cannot run on this machine: {probe.stderr.strip() or probe.stdout.strip()}")

    home = tmp_path / "home"
    home.mkdir()
    log_path = tmp_path / "act.log"

    command = [
        act, "workflow_dispatch",
        "--workflows", str(WORKFLOW),
        "--directory", str(ROOT),
        # Host mode: the steps run on this machine, no Docker.
        "--platform", "ubuntu-latest=-self-hosted",
        # Each job works in a copy of the tree under here (.gitignore'd files such as .venv are left out).
        "--action-cache-path", str(tmp_path / "act-cache"),
        # act's own servers listen on loopback only (their default is the machine's outward address).
        "--artifact-server-path", str(tmp_path / "artifacts"),
        "--artifact-server-addr", "127.0.0.1",
        "--artifact-server-port", str(free_port()),
        "--no-cache-server",
        "--concurrent-jobs", "2",
    ]  # fmt: skip
    for uses in sorted(remote_actions(ACTION, WORKFLOW)):
        command += ["--local-repository", f"{uses}={STAND_IN}"]

    # HOME in tmp_path: act reads no ~/.actrc and leaves nothing behind; the rest of the environment
    # (pip's settings, tools on PATH) is the runner's, as on a self-hosted runner. The action's python3
    # is the interpreter under this venv: a shim (pyenv's) may look for its versions under HOME.
    python_dir = Path(sys.base_prefix) / "bin"
    env = {**os.environ, "HOME": str(home), "PATH": f"{python_dir}{os.pathsep}{os.environ['PATH']}"}
    with open(log_path, "w", encoding="utf-8") as log:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            returncode = process.wait(timeout=DEADLINE_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            returncode = None
    output = log_path.read_text(encoding="utf-8", errors="replace")
    kept = log_path  # pytest keeps tmp_path of the last runs
    tail = "\n".join(output.splitlines()[-80:])

    assert returncode is not None, f"act did not finish within {DEADLINE_SECONDS} s; full log in {kept}; last lines:\n{tail}"
    assert returncode == 0, f"act exited {returncode}; full log in {kept}; last lines:\n{tail}"
    # One local job, the verdict job and six bad-input cases, each ending in its own verdict.
    assert output.count("Job succeeded") == 8, f"expected 8 succeeded jobs; full log in {kept}; last lines:\n{tail}"
    # The verdict job: a baseline, then a run below its floor, failed by the verdict with job-status untouched.
    assert "verdict=fail job-status=SUCCEEDED outcome=failure baseline-verdict=pass" in output, tail
    assert "Job failed" not in output
    # The action's outputs as the workflow's check step printed them.
    assert re.search(r"job-status=SUCCEEDED test-accuracy=[01]\.\d+ job-name=\S+ duration-seconds=\d+", output), tail
    # The bad-input jobs stopped at validation, naming the bad input.
    for named in ("--target", "--workers", "--job-name", "--training-dir", "--min-accuracy", "--baseline"):
        assert re.search(rf"::error title=aks-ray%3A invalid input::[^\n]*{re.escape(named)}", output), (
            f"no validation error naming {named}"
        )
    # Skipped remote actions are said, not silently dropped; their stand-ins never ran.
    assert "skipped actions/setup-python" in output
    assert "skipped actions/upload-artifact" in output
    assert "a stand-in for a remote action ran" not in output
