"""The workflows and the example a user copies: actionlint-clean, pinned, least privilege, and they check what they claim."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW_DIR = ROOT / ".github" / "workflows"
EXAMPLE = ROOT / "examples" / "pr-validation.yml"
WORKFLOW_FILES = [*sorted(WORKFLOW_DIR.glob("*.yml")), EXAMPLE]
# The example refers to the published action the way a user's workflow does.
PUBLISHED_ACTION = "your-org/aks-ray-action@v1"


def load(path: Path) -> dict:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    # YAML 1.1 reads the key `on` as True.
    document["on"] = document.pop(True, document.get("on"))
    return document


def steps(document: dict):
    for job_id, job in document["jobs"].items():
        for step in job.get("steps", []):
            yield job_id, step


def actionlint() -> str | None:
    built = sorted(ROOT.glob(".tools/actionlint-*/actionlint"))
    return str(built[-1]) if built else shutil.which("actionlint")


def test_the_expected_workflows_exist():
    assert {p.name for p in WORKFLOW_DIR.glob("*.yml")} >= {"ci.yml", "e2e-kind.yml", "self-test.yml", "release.yml"}


def test_actionlint_passes():
    binary = actionlint()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("actionlint is missing in CI: .ci/run must run `make actionlint-install`")
        pytest.skip("actionlint is not built: make actionlint-install (Go module, into .tools/)")
    result = subprocess.run([binary, *map(str, WORKFLOW_FILES)], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_finds_a_planted_mistake(tmp_path):
    """The check above can fail: a `with:` key the action does not declare is reported."""
    binary = actionlint()
    if binary is None:
        pytest.skip("actionlint is not built: make actionlint-install")
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    (tmp_path / ".git").mkdir()  # how actionlint finds the project root, and so `uses: ./`
    shutil.copy(ROOT / "action.yml", tmp_path / "action.yml")
    broken = (WORKFLOW_DIR / "self-test.yml").read_text(encoding="utf-8").replace('epochs: "1"', 'epochz: "1"')
    (tmp_path / ".github" / "workflows" / "self-test.yml").write_text(broken, encoding="utf-8")
    result = subprocess.run([binary, ".github/workflows/self-test.yml"], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert result.returncode == 1 and 'input "epochz" is not defined' in result.stdout


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.name)
def test_permissions_are_declared_at_the_top(path):
    assert "permissions" in load(path)


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.name)
def test_remote_actions_are_pinned_by_commit(path):
    for job_id, step in steps(load(path)):
        uses = step.get("uses")
        if not uses or uses == "./" or (path == EXAMPLE and uses == PUBLISHED_ACTION):
            continue
        assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", uses), f"{job_id}: {uses} is not pinned by commit SHA"


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.name)
def test_no_expression_inside_run(path):
    for job_id, step in steps(load(path)):
        assert "${{" not in step.get("run", ""), f"{job_id}: pass values through env:"


def test_self_test_trains_locally_and_checks_the_outputs():
    document = load(WORKFLOW_DIR / "self-test.yml")
    local = document["jobs"]["local"]["steps"]
    train = next(s for s in local if s.get("uses") == "./")
    assert train["with"]["target"] == "local"
    check = local[local.index(train) + 1]
    assert check["env"]["JOB_STATUS"] == f"${{{{ steps.{train['id']}.outputs.job-status }}}}"
    assert check["env"]["TEST_ACCURACY"] == f"${{{{ steps.{train['id']}.outputs.test-accuracy }}}}"
    assert '[[ "$JOB_STATUS" == SUCCEEDED ]]' in check["run"]
    assert '[[ "$TEST_ACCURACY" =~ ^(0|1)(\\.[0-9]+)?$ ]]' in check["run"]


def test_self_test_feeds_bad_input_and_expects_failure():
    job = load(WORKFLOW_DIR / "self-test.yml")["jobs"]["bad-input"]
    assert len(job["strategy"]["matrix"]["include"]) >= 4
    bad = next(s for s in job["steps"] if s.get("uses") == "./")
    assert bad["continue-on-error"] is True
    check = job["steps"][job["steps"].index(bad) + 1]
    assert check["env"]["OUTCOME"] == f"${{{{ steps.{bad['id']}.outcome }}}}"
    assert '[[ "$OUTCOME" == failure ]]' in check["run"]


def test_example_runs_on_training_changes_with_least_privilege():
    document = load(EXAMPLE)
    assert document["on"] == {"pull_request": {"paths": ["training/**"]}}
    assert document["permissions"] == {"id-token": "write", "contents": "read"}
    assert "github.event.pull_request.number" in document["concurrency"]["group"]


def test_example_reuses_a_long_lived_cluster_and_keeps_forks_away_from_azure():
    jobs = load(EXAMPLE)["jobs"]
    aks, fork = jobs["train-on-aks"], jobs["train-fork-on-runner"]
    assert aks["if"] == "github.event.pull_request.head.repo.full_name == github.repository"
    assert fork["if"] == "github.event.pull_request.head.repo.full_name != github.repository"
    assert fork["permissions"] == {"contents": "read"}
    train = next(s for s in aks["steps"] if s.get("uses") == PUBLISHED_ACTION)
    assert train["with"]["destroy-policy"] == "never" and train["with"]["target"] == "aks"
    fork_train = next(s for s in fork["steps"] if s.get("uses") == PUBLISHED_ACTION)
    assert fork_train["with"]["target"] == "local" and not any(k.startswith("azure-") for k in fork_train["with"])
    for job in (aks, fork):
        assert any("GITHUB_STEP_SUMMARY" in s.get("run", "") and "TEST_ACCURACY" in s.get("env", {}) for s in job["steps"])


def test_release_moves_the_major_tag():
    document = load(WORKFLOW_DIR / "release.yml")
    assert document["on"] == {"release": {"types": ["published"]}}
    assert document["permissions"] == {"contents": "write"}
    run = "\n".join(s.get("run", "") for _, s in steps(document))
    assert 'git tag --force "$major" HEAD' in run and 'git push --force origin "refs/tags/$major"' in run


def action_steps(path: Path):
    for job_id, step in steps(load(path)):
        if step.get("uses") in ("./", PUBLISHED_ACTION) and not step.get("continue-on-error"):
            yield pytest.param(step, id=f"{path.name}:{job_id}")


@pytest.mark.parametrize(
    "step", [*action_steps(WORKFLOW_DIR / "self-test.yml"), *action_steps(WORKFLOW_DIR / "e2e-kind.yml"), *action_steps(EXAMPLE)]
)
def test_the_inputs_a_workflow_gives_the_action_validate(step, monkeypatch, tmp_path):
    """What the self-test and the example pass would get through the action's validate step."""
    from aks_ray import cli, config

    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("AKS_RAY_OUTPUT_DIR", str(tmp_path / "out"))
    options = {config.flag_name(f): config.env_name(f) for s in config.SECTIONS.values() for f in dataclasses.fields(s)}
    for name, value in step["with"].items():
        if name in options:
            # Repository variables hold the Azure IDs; other expressions are a pull request's number.
            value = re.sub(r"\$\{\{ vars\.AZURE_\w+ \}\}", "00000000-0000-0000-0000-000000000001", str(value))
            monkeypatch.setenv(options[name], re.sub(r"\$\{\{[^}]*\}\}", "1", value))
    assert cli.main(["validate"]) == 0


def test_the_kind_jobs_run_the_kind_release_tests_kind_pins(tmp_path):
    """pytest-kind-ng (KIND_VERSION) and kind-action (version) use the release tests/kind/versions.env pins."""
    pinned = re.search(r"^KIND_VERSION=(\S+)$", (ROOT / "tests/kind/versions.env").read_text(), re.M).group(1)
    jobs = load(WORKFLOW_DIR / "e2e-kind.yml")["jobs"]
    kind_action = next(s for s in jobs["action-on-kind"]["steps"] if s.get("uses", "").startswith("helm/kind-action@"))
    assert kind_action["with"]["version"] == pinned
    # The e2e step's script, run by bash with a `make` that reports what it was given.
    script = next(s for s in jobs["e2e"]["steps"] if "make e2e" in s.get("run", ""))["run"]
    (tmp_path / "make").write_text('#!/bin/sh\necho "KIND_VERSION=$KIND_VERSION $*"\n')
    (tmp_path / "make").chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    env.pop("KIND_VERSION", None)
    result = subprocess.run(["bash", "-e", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"KIND_VERSION={pinned} e2e PYTEST_ARGS=-rs"
