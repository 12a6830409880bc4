"""The outputs every target writes, identical in shape.

The target-specific code puts `job.log` (and `model.pt` when training got that
far) into the run folder, then calls write_outputs(), which derives the rest
from the log and the run folder's records: metrics.json, training-curves.png,
timings.json and summary.md, plus the step summary and step outputs under
GitHub Actions. A step that fails before any of that (an operator install that
cannot reach its chart) still leaves metrics.json and summary.md naming it:
record_failure().
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import gha, phases
from .config import Config
from .metrics import TrainingMetrics, epoch_figures, parse_log
from .rundir import CURVES, SUMMARY, StepRecord, Timings

log = logging.getLogger(__name__)

SUCCEEDED, FAILED, STOPPED, TIMED_OUT = "SUCCEEDED", "FAILED", "STOPPED", "TIMED_OUT"


@dataclass
class RunOutcome:
    target: str
    status: str
    job_id: str = ""
    job_name: str = ""
    error: str = ""
    # How to reach the Ray dashboard: a Markdown paragraph for the summary, and
    # the one command a later workflow step can run.
    dashboard: str = ""
    dashboard_command: str = ""
    cluster_name: str = ""
    resource_group: str = ""
    failed_step: StepRecord | None = None  # the first step that did not succeed (rundir.RunDir.failed_step)
    # The training's own result.json (its final metrics), when collected from where it ran: it beats
    # the log's final record, which a stream that ended early can lose.
    result: dict[str, Any] | None = None


def metrics_document(outcome: RunOutcome, metrics: TrainingMetrics) -> dict[str, Any]:
    doc = {
        "status": outcome.status,
        "job_id": outcome.job_id,
        "job_name": outcome.job_name,
        "target": outcome.target,
        "dataset": metrics.dataset,
        "epochs": metrics.epochs,
        "final": metrics.final_block(),
    }
    if outcome.failed_step is not None:
        doc["failed_step"] = failed_step_block(outcome.failed_step)
    return doc


def failed_step_block(record: StepRecord) -> dict[str, str]:
    return {"step": record.step, "outcome": record.outcome, "error": record.error}


def write_curves(path: Path, metrics: TrainingMetrics, title: str) -> None:
    """Loss and accuracy per epoch, side by side, readable at a glance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
    epochs = [e["epoch"] for e in metrics.epochs]
    if epochs:
        loss_ax.plot(epochs, [e["train_loss"] for e in metrics.epochs], "o-", label="train loss")
        loss_ax.plot(epochs, [e["test_loss"] for e in metrics.epochs], "s--", label="test loss")
        acc_ax.plot(epochs, [100 * e["test_accuracy"] for e in metrics.epochs], "o-", color="tab:green", label="test accuracy")
        for e in metrics.epochs[-1:]:
            acc_ax.annotate(
                f"{100 * e['test_accuracy']:.2f}%",
                (e["epoch"], 100 * e["test_accuracy"]),
                textcoords="offset points",
                xytext=(0, 8),
                ha="center",
            )
        loss_ax.legend()
        acc_ax.legend(loc="lower right")
        for ax in (loss_ax, acc_ax):
            ax.set_xticks(epochs)
    else:
        for ax in (loss_ax, acc_ax):
            ax.text(0.5, 0.5, "no epoch finished", ha="center", va="center", transform=ax.transAxes)
    loss_ax.set(title="Loss", xlabel="epoch", ylabel="cross-entropy")
    acc_ax.set(title="Test accuracy", xlabel="epoch", ylabel="%")
    for ax in (loss_ax, acc_ax):
        ax.grid(True, alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _fmt(value: Any, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def summary_markdown(doc: dict[str, Any], outcome: RunOutcome, timings: Timings, output_dir: Path) -> str:
    icon = {SUCCEEDED: "✅", FAILED: "❌", TIMED_OUT: "⏱️", STOPPED: "⏹️"}.get(outcome.status, "")
    final, dataset = doc["final"], doc["dataset"] or {}
    lines = [f"## aks-ray: MNIST CNN on Ray ({outcome.target}) {outcome.status} {icon}", ""]
    if dataset.get("warning"):
        lines += [f"> [!WARNING]\n> {dataset['warning']}", ""]
    if outcome.failed_step is not None:
        lines += [failed_step_markdown(outcome.failed_step), ""]
    accuracy = final.get("test_accuracy")
    # Training means the epochs: the final record's figures also count Ray Train's start and the model's hand-back.
    epochs = epoch_figures(doc["epochs"])
    train_seconds = epochs["seconds"] if epochs["seconds"] is not None else final.get("train_seconds")
    throughput = epochs["samples_per_second"] if epochs["samples_per_second"] is not None else final.get("samples_per_second")
    startup = phases.startup_seconds(timings.job_phases)
    origin = phases.origin(timings.job_phases)
    lines += [
        "| | |",
        "| --- | --- |",
        f"| status | **{outcome.status}** |",
        f"| test accuracy | **{_fmt(accuracy and 100 * accuracy, '.2f')}%** |",
        f"| training time (the epochs) | {_fmt(train_seconds, '.1f')} s |",
        f"| throughput (the epochs) | {_fmt(throughput, ',.0f')} samples/s |",
        *([f"| start-up ({origin} to the first epoch's start) | {startup:.1f} s |"] if startup is not None else []),
        f"| dataset | {dataset.get('name', 'unknown')} ({dataset.get('train_size', '?')} train / {dataset.get('test_size', '?')} test) |",
        f"| job | `{outcome.job_name or outcome.job_id or '–'}` |",
        f"| total time | {timings.total:.1f} s |",
        "",
    ]
    if doc["epochs"]:
        lines += [
            "### Per epoch",
            "",
            "| epoch | train loss | test loss | test accuracy | seconds | samples/s |",
            "| ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for e in doc["epochs"]:
            lines.append(
                f"| {e['epoch']} | {e['train_loss']:.4f} | {e['test_loss']:.4f} | {100 * e['test_accuracy']:.2f}% "
                f"| {e['seconds']:.1f} | {e['samples_per_second']:,.0f} |"
            )
        lines.append("")
    if timings.job_phases:
        lines += [
            "### Phases of the run",
            "",
            f"From the {'run' if outcome.target == 'local' else 'cluster'}'s and the job's own timestamps, in seconds since: {origin}.",
            "",
            "| phase | seconds | from |",
            "| --- | ---: | --- |",
        ]
        lines += [
            f"| {p['phase']} | {p['seconds']:.1f} | {phases.sources(outcome.target).get(p['phase'], '')} |"
            for p in timings.job_phases
            if isinstance(p.get("seconds"), (int, float))
        ]
        lines.append("")
    if timings.phases:
        lines += ["### Timings", "", "| step | seconds |", "| --- | ---: |"]
        lines += [f"| {name} | {seconds:.1f} |" for name, seconds in timings.phases.items()]
        lines.append("")
    if outcome.error:
        lines += ["### What went wrong (last lines)", "", *fenced(outcome.error.rstrip()), ""]
    if outcome.dashboard:
        lines += ["### Ray dashboard", "", outcome.dashboard, ""]
    lines += [f"Outputs: `{output_dir}` (job.log, metrics.json, model.pt, training-curves.png, timings.json, summary.md)."]
    return "\n".join(lines) + "\n"


def fenced(text: str, info: str = "text") -> list[str]:
    """A Markdown code block around `text` whose fence is longer than any backtick run inside it.

    A fixed ``` fence ends at the first ``` in a log line, and what follows
    (written by training code) would be rendered as the summary's own Markdown.
    """
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [f"{fence}{info}", text, fence]


def failed_step_markdown(record: StepRecord, command: str = "") -> str:
    what = {"cancelled": "was cancelled"}.get(record.outcome, "failed")
    name = f"`aks-ray {command}`" if command else f"step `{record.step}`"
    return f"> [!CAUTION]\n> {name} {what}: {record.error or 'see its log'}".replace("\n\n", "\n")


def step_outputs(doc: dict[str, Any], outcome: RunOutcome, timings: Timings, output_dir: Path) -> dict[str, str]:
    accuracy = doc["final"].get("test_accuracy")
    return {
        "job-status": outcome.status,
        "test-accuracy": "" if accuracy is None else f"{accuracy:.4f}",
        "job-name": outcome.job_name or outcome.job_id,
        "duration-seconds": f"{timings.total:.0f}",
        "artifacts-path": str(output_dir.resolve()),
        "dashboard-command": outcome.dashboard_command,
        "cluster-name": outcome.cluster_name,
        "resource-group": outcome.resource_group,
    }


def write_outputs(cfg: Config, outcome: RunOutcome) -> dict[str, Any]:
    """Write metrics.json, training-curves.png, timings.json and summary.md; return metrics.json's content.

    The timings and the failed step (if any) come from the run folder, where every step records them.
    """
    run_dir = cfg.run_dir
    output_dir = run_dir.ensure()
    if outcome.failed_step is None:
        outcome.failed_step = run_dir.failed_step()
    metrics = parse_log(run_dir.read_job_log())
    if outcome.result:
        metrics.final = {**(metrics.final or {}), **outcome.result["final"]}
        metrics.dataset = metrics.dataset or outcome.result.get("dataset")
    doc = metrics_document(outcome, metrics)
    if metrics.dataset and metrics.dataset.get("warning"):
        gha.warning(metrics.dataset["warning"], title="aks-ray: not the full MNIST set")
    run_dir.save_metrics(doc)
    timings = run_dir.timings()
    run_dir.save_timings(timings)  # timings.json exists whenever a report does, even with no phase timed yet
    try:
        write_curves(run_dir.path(CURVES), metrics, f"MNIST CNN on Ray ({outcome.target}): {outcome.status}")
    except Exception as exc:  # a plot is never worth failing a run, or losing the summary over
        log.warning("could not draw training-curves.png: %s", exc)
    summary = summary_markdown(doc, outcome, timings, output_dir)
    run_dir.write_text(SUMMARY, summary)
    gha.append_summary(cfg.github.step_summary, summary)
    gha.set_outputs(cfg.github.output, step_outputs(doc, outcome, timings, output_dir))
    return doc


def record_failure(cfg: Config, record: StepRecord, command: str) -> None:
    """Name a step that failed in metrics.json and summary.md, writing both when no report exists yet.

    A report already written (by collect, after a failed wait) is amended, not
    replaced: it holds the job's own figures and findings.
    """
    run_dir = cfg.run_dir
    try:
        doc = run_dir.load_metrics()
        if doc is None:
            write_outputs(cfg, RunOutcome(target=cfg.target, status=FAILED, error=record.error, failed_step=record))
            return
        doc.setdefault("failed_steps", []).append(failed_step_block(record))
        run_dir.save_metrics(doc)
        section = failed_step_markdown(record, command)
        summary = run_dir.path(SUMMARY)
        existing = summary.read_text(encoding="utf-8") if summary.exists() else ""
        run_dir.write_text(SUMMARY, existing.rstrip("\n") + "\n\n" + section + "\n")
        gha.append_summary(cfg.github.step_summary, section)
    except Exception as exc:  # on the way out of a failure already: never hide that failure behind this one
        log.warning("could not record the failure of %s in the outputs: %s", record.step, exc)
