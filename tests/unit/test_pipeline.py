"""The step list and its runner: which steps run after a failure or a cancel, on every target, and what a failure leaves."""

from __future__ import annotations

import json

import pytest

from aks_ray import cli, config, gha, pipeline
from aks_ray.errors import EXIT_INTERRUPTED, EXIT_USER, OperationalError, UserError
from aks_ray.rundir import RunDir


@pytest.fixture(autouse=True)
def plain_annotations():
    gha.use_workflow_commands(False)


AKS = ["validate", "infra-plan", "infra-apply", "credentials", "operator", "submit", "wait", "collect", "verdict", "cleanup", "destroy"]
KUBE = ["validate", "operator", "submit", "wait", "collect", "verdict", "cleanup"]
LOCAL = ["validate", "local", "verdict"]


def test_each_target_runs_its_steps_in_order():
    assert [s.id for s in pipeline.steps_for("aks")] == AKS
    assert [s.id for s in pipeline.steps_for("kubeconfig")] == KUBE
    assert [s.id for s in pipeline.steps_for("local")] == LOCAL


class Steps:
    """Runs no real step: records which ran, and fails or interrupts the one it is told to."""

    def __init__(self, failing: str | None = None, how: BaseException | int | None = None) -> None:
        self.failing, self.how = failing, how
        self.ran: list[str] = []

    def __call__(self, step: pipeline.Step, cfg: config.Config) -> int:
        self.ran.append(step.id)
        if step.id != self.failing:
            return 0
        if isinstance(self.how, int):
            return self.how
        raise self.how


# (target, the step that fails, what then runs after it, in order)
AFTER_A_FAILURE = [
    ("aks", "validate", []),
    ("aks", "infra-plan", []),  # nothing was applied: nothing to destroy
    ("aks", "infra-apply", ["destroy"]),  # apply may have created something
    ("aks", "credentials", ["destroy"]),
    ("aks", "operator", ["destroy"]),
    ("aks", "submit", ["collect", "cleanup", "destroy"]),  # a submission may have created the RayJob
    ("aks", "wait", ["collect", "cleanup", "destroy"]),
    ("aks", "collect", ["cleanup", "destroy"]),
    ("aks", "cleanup", ["destroy"]),
    ("aks", "destroy", []),
    ("kubeconfig", "operator", []),
    ("kubeconfig", "submit", ["collect", "cleanup"]),
    ("kubeconfig", "wait", ["collect", "cleanup"]),
    ("kubeconfig", "collect", ["cleanup"]),
    ("local", "local", []),
]


@pytest.mark.parametrize("how", ["failure", "cancel", "exit 1"])
@pytest.mark.parametrize("target, failing, after", AFTER_A_FAILURE, ids=[f"{t}-{f}" for t, f, _ in AFTER_A_FAILURE])
def test_what_runs_after_a_step_fails_or_is_cancelled(target, failing, after, how):
    error = {"failure": OperationalError("it broke"), "cancel": KeyboardInterrupt(), "exit 1": 1}[how]
    steps = Steps(failing, error)
    code = pipeline.execute(config.Config(), pipeline.steps_for(target), run=steps, reload=lambda cfg: cfg)
    ids = [s.id for s in pipeline.steps_for(target)]
    assert steps.ran == ids[: ids.index(failing) + 1] + after
    assert code == (EXIT_INTERRUPTED if how == "cancel" else 1)


@pytest.mark.parametrize("target", ["aks", "kubeconfig", "local"])
def test_all_steps_run_when_all_succeed(target):
    steps = Steps()
    assert pipeline.execute(config.Config(), pipeline.steps_for(target), run=steps, reload=lambda cfg: cfg) == 0
    assert steps.ran == {"aks": AKS, "kubeconfig": KUBE, "local": LOCAL}[target]


def test_the_first_failure_decides_the_exit_code():
    steps = Steps("credentials", UserError("no such cluster"))
    assert pipeline.execute(config.Config(), pipeline.steps_for("aks"), run=steps, reload=lambda cfg: cfg) == EXIT_USER


def test_a_crash_still_runs_clean_up_then_shows_itself():
    steps = Steps("wait", RuntimeError("a bug"))
    with pytest.raises(RuntimeError, match="a bug"):
        pipeline.execute(config.Config(), pipeline.steps_for("kubeconfig"), run=steps, reload=lambda cfg: cfg)
    assert steps.ran == [s for s in KUBE if s != "verdict"]  # the verdict judges a finished job only


def test_each_step_reads_its_config_anew():
    seen = []
    configs = iter([config.Config(), config.Config(), config.Config(), config.Config()])

    def run(step, cfg):
        seen.append(cfg)
        return 0

    pipeline.execute(next(configs), pipeline.steps_for("local"), run=run, reload=lambda cfg: next(configs))
    assert seen[0] is not seen[1]


# ------------------------------------------------- what a failure leaves


def load(tmp_path, **env: str) -> config.Config:
    return config.load({}, {"AKS_RAY_OUTPUT_DIR": str(tmp_path / "out"), **env})


def test_run_step_records_the_outcome_and_the_time(tmp_path):
    cfg = load(tmp_path)
    step = pipeline.Step("operator", "x", "x", command=("operator", "install"), function=lambda cfg: 0)
    assert pipeline.run_step(step, cfg) == 0
    run_dir = RunDir(tmp_path / "out")
    [record] = run_dir.steps()
    assert (record.step, record.outcome, record.error) == ("operator", "success", "")
    assert "operator" in run_dir.timings().phases
    assert run_dir.load_metrics() is None  # success writes no report of its own


def test_a_failed_step_before_submission_leaves_a_report_naming_it(tmp_path):
    cfg = load(tmp_path)

    def unreachable(cfg):
        raise OperationalError("helm could not fetch the chart from https://charts.example/: connection refused", "check the URL")

    step = pipeline.Step("operator", "x", "x", command=("operator", "install"), function=unreachable)
    with pytest.raises(OperationalError):
        pipeline.run_step(step, cfg)
    out = tmp_path / "out"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "FAILED"
    assert metrics["failed_step"]["step"] == "operator"
    assert "connection refused" in metrics["failed_step"]["error"]
    summary = (out / "summary.md").read_text()
    assert "step `operator` failed" in summary and "connection refused" in summary
    assert json.loads((out / "timings.json").read_text())["operator"] >= 0


def test_a_later_failure_amends_the_report_rather_than_replacing_it(tmp_path):
    cfg = load(tmp_path)
    out = tmp_path / "out"
    RunDir(out).save_metrics({"status": "SUCCEEDED", "final": {"test_accuracy": 0.98}})
    RunDir(out).write_text("summary.md", "## the job's own report\n")

    def broken(cfg):
        raise OperationalError("cleanup failed: the API server went away")

    step = pipeline.Step("cleanup", "x", "x", command=("cleanup",), function=broken)
    with pytest.raises(OperationalError):
        pipeline.run_step(step, cfg)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "SUCCEEDED" and metrics["final"]["test_accuracy"] == 0.98
    assert metrics["failed_steps"][0]["step"] == "cleanup"
    summary = (out / "summary.md").read_text()
    assert summary.startswith("## the job's own report") and "`aks-ray cleanup` failed" in summary


def test_a_bad_chart_path_at_operator_install_exits_2_and_says_so_in_the_outputs(tmp_path, monkeypatch, capsys):
    """Through the real CLI: the operator step's own check refuses the chart; the output folder names the step."""
    out = tmp_path / "out"
    monkeypatch.chdir(tmp_path)
    code = cli.main(["operator", "install", "--kuberay-chart", str(tmp_path / "no-such-chart"), "--output-dir", str(out)])
    assert code == EXIT_USER
    assert "no-such-chart" in capsys.readouterr().err
    assert json.loads((out / "metrics.json").read_text())["failed_step"]["step"] == "operator"
    assert "no-such-chart" in (out / "summary.md").read_text()


def test_validate_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["validate", "--output-dir", str(tmp_path / "out")]) == 0
    assert not (tmp_path / "out").exists()


def test_local_dry_run_creates_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    assert cli.main(["run", "--target", "local", "--dry-run", "--output-dir", str(tmp_path / "out")]) == 0
    assert "would start a local Ray head" in capsys.readouterr().out
    assert not (tmp_path / "out").exists()
    assert list((tmp_path / "tmp").iterdir()) == []
