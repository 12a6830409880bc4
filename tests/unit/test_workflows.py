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
CLUSTER_EXAMPLE = ROOT / "examples" / "cluster.yml"
VERDICT_EXAMPLE = ROOT / "examples" / "model-verdict.yml"
EXAMPLES = (EXAMPLE, CLUSTER_EXAMPLE, VERDICT_EXAMPLE)
WORKFLOW_FILES = [*sorted(WORKFLOW_DIR.glob("*.yml")), *EXAMPLES]
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
        if not uses or uses == "./" or (path in EXAMPLES and uses == PUBLISHED_ACTION):
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


def published_step(job: dict) -> dict:
    return next(s for s in job["steps"] if s.get("uses") == PUBLISHED_ACTION)


def test_pull_requests_run_jobs_on_the_kept_cluster_with_the_pull_request_identity():
    """The pull request's workflow file is its own: it gets an identity that can only run jobs, and changes nothing."""
    aks = load(EXAMPLE)["jobs"]["train-on-aks"]
    train = published_step(aks)["with"]
    assert train["target"] == "aks" and train["infra-mode"] == "reuse" and train["destroy-policy"] == "never"
    assert train["azure-client-id"] == "${{ vars.AZURE_PR_CLIENT_ID }}"
    assert "allow-pull-request-infra" not in train and "pull-request-principal-id" not in train
    # Names given, so no Terraform state is read: the pull-request identity has no role on the state container.
    assert "tf-backend-config" not in train and train["resource-group"] and train["cluster-name"]
    # Nothing is applied, so no shared lock to serialise on; a new push cancels the obsolete run.
    assert "github.event.pull_request.number" in aks["concurrency"]["group"] and aks["concurrency"]["cancel-in-progress"] is True
    assert "environment" not in aks, "an environment would change the OIDC subject away from pull_request"


def test_the_cluster_workflow_applies_from_trusted_code_only():
    document = load(CLUSTER_EXAMPLE)
    assert set(document["on"]) == {"push", "schedule", "workflow_dispatch"}, "never on a pull request"
    assert document["on"]["push"]["branches"] == ["main"]
    assert document["permissions"] == {"contents": "read"}
    (job,) = document["jobs"].values()
    assert job["environment"] == "aks-cluster"
    assert job["permissions"] == {"id-token": "write", "contents": "read"}
    # One state for the cluster: runs take turns and a new one never cancels an apply half way.
    assert job["concurrency"] == {"group": "aks-ray-shared-cluster", "cancel-in-progress": False}
    train = published_step(job)["with"]
    assert train["infra-mode"] == "apply" and train["destroy-policy"] == "never"
    assert "use_azuread_auth=true" in train["tf-backend-config"]
    assert train["azure-client-id"] == "${{ vars.AZURE_CLUSTER_CLIENT_ID }}"


def test_the_two_examples_agree_on_the_cluster_and_the_pull_requests_namespace():
    cluster = published_step(next(iter(load(CLUSTER_EXAMPLE)["jobs"].values())))["with"]
    pull_request = published_step(load(EXAMPLE)["jobs"]["train-on-aks"])["with"]
    assert pull_request["namespace"] in cluster["pull-request-namespaces"].split(",")
    assert cluster["namespace"] != pull_request["namespace"], "the cluster's own runs stay out of the pull requests' namespace"
    assert cluster["azure-client-id"] != pull_request["azure-client-id"]
    # The names the pull request reuses are the ones the cluster workflow's apply creates (the defaults).
    assert (pull_request["resource-group"], pull_request["cluster-name"]) == ("aksray-rg", "aksray-aks")
    assert "name-prefix" not in cluster and "resource-group" not in cluster and "cluster-name" not in cluster


def test_the_pull_request_example_asking_to_apply_would_be_refused(monkeypatch, tmp_path, capsys):
    """The refusal is real for the example itself: the same inputs with infra-mode apply stop at validation."""
    from aks_ray import cli
    from aks_ray.errors import EXIT_USER

    step = published_step(load(EXAMPLE)["jobs"]["train-on-aks"])
    set_inputs(monkeypatch, tmp_path, {**step["with"], "infra-mode": "apply"}, "pull_request")
    assert cli.main(["validate"]) == EXIT_USER
    assert "--allow-pull-request-infra" in capsys.readouterr().err


def test_release_moves_the_major_tag():
    document = load(WORKFLOW_DIR / "release.yml")
    assert document["on"] == {"release": {"types": ["published"]}}
    assert document["permissions"] == {"contents": "write"}
    run = "\n".join(s.get("run", "") for _, s in steps(document))
    assert 'git tag --force "$major" HEAD' in run and 'git push --force origin "refs/tags/$major"' in run


def action_steps(path: Path):
    """Each step that runs the action, with the event it runs on (a workflow's first trigger)."""
    event = next(iter(load(path)["on"]))
    for job_id, step in steps(load(path)):
        if step.get("uses") in ("./", PUBLISHED_ACTION) and not step.get("continue-on-error"):
            yield pytest.param(step, event, id=f"{path.name}:{job_id}")


def set_inputs(monkeypatch, tmp_path, inputs: dict, event: str) -> None:
    """The step's inputs as the action hands them to validate, on a runner of that event."""
    from aks_ray import config

    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("AKS_RAY_OUTPUT_DIR", str(tmp_path / "out"))
    monkeypatch.setenv("GITHUB_EVENT_NAME", event)
    options = {config.flag_name(f): config.env_name(f) for s in config.SECTIONS.values() for f in dataclasses.fields(s)}
    for name, value in inputs.items():
        if name in options:
            # Repository variables hold the Azure IDs; other expressions are a pull request's number.
            value = re.sub(r"\$\{\{ vars\.AZURE_\w+ \}\}", "00000000-0000-0000-0000-000000000001", str(value))
            monkeypatch.setenv(options[name], re.sub(r"\$\{\{[^}]*\}\}", "1", value))


@pytest.mark.parametrize(
    ("step", "event"),
    [
        *action_steps(WORKFLOW_DIR / "self-test.yml"),
        *action_steps(WORKFLOW_DIR / "e2e-kind.yml"),
        *action_steps(EXAMPLE),
        *action_steps(CLUSTER_EXAMPLE),
    ],
)
def test_the_inputs_a_workflow_gives_the_action_validate(step, event, monkeypatch, tmp_path):
    """What the self-test and the examples pass would get through the action's validate step, on their own event."""
    from aks_ray import cli

    set_inputs(monkeypatch, tmp_path, step["with"], event)
    assert cli.main(["validate"]) == 0


def test_forks_train_on_the_runner_away_from_azure():
    jobs = load(EXAMPLE)["jobs"]
    aks, fork = jobs["train-on-aks"], jobs["train-fork-on-runner"]
    assert aks["if"] == "github.event.pull_request.head.repo.full_name == github.repository"
    assert fork["if"] == "github.event.pull_request.head.repo.full_name != github.repository"
    assert fork["permissions"] == {"contents": "read"}
    fork_train = published_step(fork)["with"]
    assert fork_train["target"] == "local" and not any(k.startswith("azure-") for k in fork_train)
    assert "github.event.pull_request.number" in fork["concurrency"]["group"] and fork["concurrency"]["cancel-in-progress"] is True
    for job in (aks, fork):
        assert any("GITHUB_STEP_SUMMARY" in s.get("run", "") and "TEST_ACCURACY" in s.get("env", {}) for s in job["steps"])


def test_verdict_example_makes_the_baseline_on_push_and_judges_pull_requests():
    document = load(VERDICT_EXAMPLE)
    assert document["on"]["push"]["branches"] == ["main"] and "pull_request" in document["on"]
    assert document["permissions"] == {"contents": "read"}
    baseline, judge = document["jobs"]["baseline"], document["jobs"]["verdict"]
    assert baseline["if"] == "github.event_name == 'push'" and judge["if"] == "github.event_name == 'pull_request'"
    assert baseline["permissions"] == {"contents": "read"}
    assert judge["permissions"] == {"contents": "read", "actions": "read", "pull-requests": "write"}
    make, compare = (next(s for s in job["steps"] if s.get("uses") == PUBLISHED_ACTION)["with"] for job in (baseline, judge))
    # The same artifact name (baseline auto finds it by name) and the same training, or the comparison measures the settings.
    for name in ("artifact-name", "target", "training-dir", "dataset", "epochs"):
        assert make[name] == compare[name], name
    assert "baseline" not in make and "comment" not in make
    assert compare["baseline"] == "auto" and compare["comment"] == "true"
    assert float(compare["min-accuracy"]) > 0.9 and float(compare["max-accuracy-drop"]) < 0.05
    check = judge["steps"][-1]
    assert check["env"]["VERDICT"] == "${{ steps.train.outputs.verdict }}"


@pytest.mark.parametrize("job_id, event", [("baseline", "push"), ("verdict", "pull_request")])
def test_verdict_example_inputs_validate_for_their_event(job_id, event, monkeypatch, tmp_path):
    from aks_ray import cli, config

    job = load(VERDICT_EXAMPLE)["jobs"][job_id]
    step = next(s for s in job["steps"] if s.get("uses") == PUBLISHED_ACTION)
    monkeypatch.chdir(ROOT)
    options = {config.flag_name(f): config.env_name(f) for s in config.SECTIONS.values() for f in dataclasses.fields(s)}
    context = {
        "GITHUB_EVENT_NAME": event,
        "GITHUB_BASE_REF": "main" if event == "pull_request" else "",
        "GITHUB_TOKEN": "ghs_example",
        "GITHUB_REPOSITORY": "you/yours",
        "GITHUB_WORKFLOW_REF": "you/yours/.github/workflows/model-verdict.yml@refs/pull/1/merge",
        "AKS_RAY_OUTPUT_DIR": str(tmp_path / "out"),
    }
    for name, value in {**context, **{options[k]: str(v) for k, v in step["with"].items() if k in options}}.items():
        monkeypatch.setenv(name, value)
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
