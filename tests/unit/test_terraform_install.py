"""Terraform reaches every run of the aks target: the action installs the pinned version unless it is on PATH.

GitHub's ubuntu-latest has no Terraform, so a workflow copied from the README or
examples/ that runs the aks target must get it from somewhere: the action's own
hashicorp/setup-terraform step, or one of its own before the action.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from aks_ray import versions

ROOT = Path(__file__).resolve().parents[2]
ACTION = yaml.safe_load((ROOT / "action.yml").read_text(encoding="utf-8"))
STEPS = ACTION["runs"]["steps"]
ACTION_USES = re.compile(r"^(\./|[\w.-]+/aks-ray-action@)")


def readme_workflows() -> list[tuple[str, dict]]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    found = []
    for index, block in enumerate(re.findall(r"```yaml\n(.*?)```", text, re.S)):
        document = yaml.safe_load(block)
        if isinstance(document, dict) and "jobs" in document:
            found.append((f"README.md:block{index}", document))
    return found


def file_workflows() -> list[tuple[str, dict]]:
    paths = [*sorted((ROOT / "examples").glob("*.yml")), *sorted((ROOT / ".github" / "workflows").glob("*.yml"))]
    return [(str(p.relative_to(ROOT)), yaml.safe_load(p.read_text(encoding="utf-8"))) for p in paths]


WORKFLOWS = readme_workflows() + file_workflows()


def aks_jobs() -> list[tuple[str, str, dict]]:
    """(workflow, job id, job) of every job with a step that runs the action with the aks target (its default)."""
    found = []
    for name, document in WORKFLOWS:
        for job_id, job in document["jobs"].items():
            for step in job.get("steps", []):
                if ACTION_USES.match(step.get("uses", "")) and (step.get("with") or {}).get("target", "aks") == "aks":
                    found.append((name, job_id, job))
                    break
    return found


def setup_terraform_uses() -> list[tuple[str, dict]]:
    found = [("action.yml", s) for s in STEPS if s.get("uses", "").startswith("hashicorp/setup-terraform@")]
    for name, document in WORKFLOWS:
        for job in document["jobs"].values():
            found += [(name, s) for s in job.get("steps", []) if s.get("uses", "").startswith("hashicorp/setup-terraform@")]
    return found


def action_terraform_steps() -> tuple[dict, dict, dict]:
    ids = [s.get("id") for s in STEPS]
    look = STEPS[ids.index("terraform")]
    setup = next(s for s in STEPS if s.get("uses", "").startswith("hashicorp/setup-terraform@"))
    twin = STEPS[STEPS.index(setup) + 1]
    return look, setup, twin


def test_the_readme_and_the_example_run_the_aks_target():
    names = {name for name, _job_id, _job in aks_jobs()}
    assert any(n.startswith("README.md") for n in names), "the README's AKS quick start was not found"
    assert "examples/pr-validation.yml" in names


@pytest.mark.parametrize(("workflow", "job_id", "job"), aks_jobs(), ids=lambda v: v if isinstance(v, str) else None)
def test_every_aks_job_gets_the_pinned_terraform(workflow, job_id, job):
    own = [s for s in job["steps"] if s.get("uses", "").startswith("hashicorp/setup-terraform@")]
    if own:  # a workflow may install it itself, then it must be the pinned version
        assert own[0]["with"]["terraform_version"] == versions.TERRAFORM_VERSION
        return
    look, setup, _twin = action_terraform_steps()
    # The action installs it for the aks target, before the first Terraform step.
    ids = [s.get("id") for s in STEPS]
    assert STEPS.index(setup) < ids.index("infra-plan")
    assert "steps.validate.outputs.target == 'aks'" in setup["if"] and "steps.validate.outputs.target == 'aks'" in look["if"]


@pytest.mark.parametrize(("where", "step"), setup_terraform_uses(), ids=lambda v: v if isinstance(v, str) else None)
def test_setup_terraform_is_pinned_by_commit_without_its_wrapper(where, step):
    assert step["uses"] == versions.SETUP_TERRAFORM_ACTION, f"{where}: pin {versions.SETUP_TERRAFORM_ACTION}"
    assert step["with"]["terraform_wrapper"] is False, f"{where}: the wrapper changes Terraform's output and exit codes"
    version = step["with"]["terraform_version"]
    assert version in (versions.TERRAFORM_VERSION, "${{ steps.terraform.outputs.version }}"), where


def test_the_action_skips_setup_when_the_pinned_version_is_present_and_under_act():
    _look, setup, twin = action_terraform_steps()
    assert "steps.terraform.outputs.present != 'true'" in setup["if"] and "env.ACT != 'true'" in setup["if"]
    assert "steps.terraform.outputs.present != 'true'" in twin["if"] and "env.ACT == 'true'" in twin["if"]
    assert "skipped hashicorp/setup-terraform" in twin["run"]


def run_look_step(tmp_path: Path, reported_version: str | None) -> dict[str, str]:
    """Run the action's 'look for Terraform' script under bash with a fake terraform (or none) on PATH."""
    look, _setup, _twin = action_terraform_steps()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if reported_version is not None:
        fake = bin_dir / "terraform"
        fake.write_text(f'#!/bin/sh\necho "{{\\"terraform_version\\": \\"{reported_version}\\", \\"platform\\": \\"linux_amd64\\"}}"\n')
        fake.chmod(0o755)
    output = tmp_path / "output"
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "GITHUB_OUTPUT": str(output),
        "GITHUB_ACTION_PATH": str(ROOT),
        "PYTHON": os.environ.get("PYTHON_FOR_TESTS", __import__("sys").executable),
    }
    subprocess.run(["bash", "-euo", "pipefail", "-c", look["run"]], env=env, check=True, timeout=60, capture_output=True)
    return dict(line.split("=", 1) for line in output.read_text().splitlines())


@pytest.mark.parametrize(
    ("on_path", "present"),
    [(versions.TERRAFORM_VERSION, "true"), ("1.11.4", "false"), (None, "false")],
    ids=["pinned-on-path", "older-on-path", "none"],
)
def test_the_look_step_finds_only_the_pinned_version(tmp_path, on_path, present):
    outputs = run_look_step(tmp_path, on_path)
    assert outputs == {"version": versions.TERRAFORM_VERSION, "present": present}
