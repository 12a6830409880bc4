"""The outputs every target writes, derived from job.log alone."""

from __future__ import annotations

import json

import pytest

from aks_ray import config, report
from aks_ray.metrics import METRICS_PREFIX
from aks_ray.rundir import RunDir

DATASET = {
    "kind": "dataset",
    "name": "mnist-sample",
    "source": "bundled sample",
    "train_size": 1000,
    "test_size": 500,
    "warning": "Trained on the bundled MNIST SAMPLE",
}
EPOCHS = [
    {
        "kind": "epoch",
        "epoch": 1,
        "epochs": 2,
        "train_loss": 1.2,
        "test_loss": 0.8,
        "test_accuracy": 0.81,
        "seconds": 3.0,
        "samples_per_second": 400.0,
    },
    {
        "kind": "epoch",
        "epoch": 2,
        "epochs": 2,
        "train_loss": 0.6,
        "test_loss": 0.5,
        "test_accuracy": 0.88,
        "seconds": 2.0,
        "samples_per_second": 500.0,
    },
]


@pytest.fixture
def cfg(tmp_path):
    env = {
        "AKS_RAY_OUTPUT_DIR": str(tmp_path / "out"),
        "GITHUB_OUTPUT": str(tmp_path / "gh_output"),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "gh_summary"),
    }
    return config.load({}, env)


def write_log(cfg, records, extra=()):
    cfg.output_dir.mkdir(parents=True, exist_ok=True)
    lines = [*extra, *(f"(RayTrainWorker pid=1) {METRICS_PREFIX}{json.dumps(r)}" for r in records)]
    cfg.run_dir.write_job_log("\n".join(lines))
    # The phases as the steps record them, each in its own process.
    cfg.run_dir.record_phase("ray start", 5.0)
    cfg.run_dir.record_phase("train", 20.25)


def outcome(status=report.SUCCEEDED, **kwargs):
    return report.RunOutcome(target="local", status=status, job_id="raysubmit_1", **kwargs)


def test_a_successful_run_writes_every_file_and_the_github_outputs(cfg, tmp_path):
    write_log(cfg, [DATASET, *EPOCHS])
    doc = report.write_outputs(cfg, outcome(dashboard="open it", dashboard_command="kubectl port-forward svc/x 8265"))

    assert doc["final"] == {"test_accuracy": 0.88, "train_seconds": 5.0, "samples_per_second": 440.0}
    assert json.loads((cfg.output_dir / "metrics.json").read_text()) == doc
    assert json.loads((cfg.output_dir / "timings.json").read_text()) == {"ray start": 5.0, "train": 20.25, "total": 25.25}
    assert (cfg.output_dir / "training-curves.png").read_bytes()[:4] == b"\x89PNG"
    summary = (cfg.output_dir / "summary.md").read_text()
    assert "SUCCEEDED" in summary and "88.00%" in summary and "> [!WARNING]" in summary and "open it" in summary
    assert "| 2 | 0.6000 | 0.5000 | 88.00% | 2.0 | 500 |" in summary
    assert (tmp_path / "gh_summary").read_text().strip() == summary.strip()
    outputs = dict(line.split("=", 1) for line in (tmp_path / "gh_output").read_text().splitlines())
    assert outputs["job-status"] == "SUCCEEDED"
    assert outputs["test-accuracy"] == "0.8800"
    assert outputs["duration-seconds"] == "25"
    assert outputs["dashboard-command"] == "kubectl port-forward svc/x 8265"
    assert outputs["artifacts-path"] == str(cfg.output_dir.resolve())


def test_the_trainings_result_json_gives_the_final_metrics_when_the_stream_lost_them(cfg, tmp_path):
    """The follow stream ended before the final record: result.json from the head still has it."""
    write_log(cfg, [DATASET, *EPOCHS])  # no "final" record in the log
    result = {"dataset": DATASET, "final": {"kind": "final", "test_accuracy": 0.8912, "train_seconds": 4.5, "samples_per_second": 444.4}}
    doc = report.write_outputs(cfg, outcome(result=result))
    assert doc["final"] == {"test_accuracy": 0.8912, "train_seconds": 4.5, "samples_per_second": 444.4}
    outputs = dict(line.split("=", 1) for line in (tmp_path / "gh_output").read_text().splitlines())
    assert outputs["test-accuracy"] == "0.8912"


def test_a_failure_before_any_epoch_still_writes_everything(cfg, tmp_path):
    write_log(cfg, [], extra=["Traceback (most recent call last):", "ValueError: boom"])
    doc = report.write_outputs(cfg, outcome(report.FAILED, error="ValueError: boom"))

    assert doc["status"] == "FAILED" and doc["epochs"] == [] and doc["final"]["test_accuracy"] is None
    summary = (cfg.output_dir / "summary.md").read_text()
    assert "FAILED" in summary and "ValueError: boom" in summary and "–%" in summary
    assert (cfg.output_dir / "training-curves.png").exists()
    assert "test-accuracy=\n" in (tmp_path / "gh_output").read_text()


def test_no_job_log_at_all_is_not_a_crash(cfg):
    doc = report.write_outputs(cfg, outcome(report.TIMED_OUT, error="deadline"))
    assert doc["dataset"] is None and (cfg.output_dir / "summary.md").exists()


def test_timings_accumulate_per_phase_across_processes(tmp_path):
    for _ in range(2):  # a new RunDir each time: each step is its own process, the file is the timer
        with RunDir(tmp_path).phase("poll"):
            pass
    RunDir(tmp_path).record_phase("poll", 1.5)
    timings = RunDir(tmp_path).timings()
    assert list(timings.phases) == ["poll"] and timings.phases["poll"] >= 1.5
    assert json.loads((tmp_path / "timings.json").read_text())["total"] == timings.total
