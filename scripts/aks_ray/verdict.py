"""`aks-ray verdict`: does this run's model pass? A floor, a baseline, one report on the pull request.

Runs after the outputs exist (metrics.json in --output-dir). The job's own
state (job-status) stays what it was; this step adds a judgement on the
figures: `pass`, `fail`, or empty when there is no figure to judge.

- A floor (--min-accuracy): the final test accuracy must reach it.
- A baseline (--baseline: a metrics.json, or auto: the base branch's newest
  artifact of the same name): every metric side by side with the difference,
  as `dvc metrics diff` tables them, and --max-accuracy-drop fails a fall
  larger than that.
- A run on the bundled sample is labelled as such in every verdict: a floor
  passed on 500 test images is a smoke test, not a measure of the model.

The decision and every piece of Markdown are pure functions over plain data;
main() reads the files, asks GitHub, and writes the verdict block into
metrics.json, the section into summary.md and the step summary, the `verdict`
step output, and (with --comment) one comment on the pull request.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import gha
from .config import Config, GitHubContext, baseline_file, metrics_json_problem, token_problems
from .errors import EXIT_OK, EXIT_OPERATIONAL, ConfigError, UserError

log = logging.getLogger(__name__)

PASS, FAIL, EMPTY = "pass", "fail", ""
SAMPLE_DATASET = "mnist-sample"
SUMMARY_START, SUMMARY_END = "<!-- aks-ray:verdict -->", "<!-- /aks-ray:verdict -->"
# This run in blue, the baseline in grey, in both charts (xychart-beta draws no legend, so the title names them).
RUN_COLOUR, BASELINE_COLOUR = "#2563eb", "#9ca3af"
# Accuracies and their differences are compared after rounding away float noise (0.988 - 0.983 is not 0.005).
PRECISION = 9


# ------------------------------------------------------------------ figures


@dataclass(frozen=True)
class Figures:
    """The numbers a verdict compares, from one run's metrics.json (and timings.json)."""

    dataset: str = ""
    sample: bool = False
    test_accuracy: float | None = None
    test_loss: float | None = None
    epoch_seconds: float | None = None
    samples_per_second: float | None = None
    total_seconds: float | None = None
    curve_accuracy: tuple[float, ...] = ()
    curve_loss: tuple[float, ...] = ()


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) else None


def plain_name(value: Any) -> str:
    """A dataset name fit for a comment: the training script prints it, and a pull request's script could print
    Markdown, HTML or @mentions that the bot would then post."""
    text = re.sub(r"[^A-Za-z0-9._-]", "", str(value or ""))[:64]
    return text or "unknown"


def is_sample(dataset: dict[str, Any] | None) -> bool:
    dataset = dataset or {}
    return dataset.get("name") == SAMPLE_DATASET or dataset.get("source") == "bundled sample"


def figures(doc: dict[str, Any], timings: dict[str, Any] | None = None) -> Figures:
    """What metrics.json (the shape report.py writes) says, reduced to the compared figures."""
    final = doc.get("final") or {}
    epochs = [e for e in doc.get("epochs") or [] if isinstance(e, dict)]
    seconds = [s for s in (_number(e.get("seconds")) for e in epochs) if s is not None]
    weighted = [
        (_number(e.get("samples_per_second")), _number(e.get("seconds")))
        for e in epochs
        if _number(e.get("samples_per_second")) is not None and _number(e.get("seconds"))
    ]
    throughput = sum(rate * secs for rate, secs in weighted) / sum(secs for _, secs in weighted) if weighted else None
    total = (doc.get("timings") or {}).get("total") if isinstance(doc.get("timings"), dict) else None
    if total is None and timings:
        total = timings.get("total")
    dataset = doc.get("dataset") or {}
    accuracy = _number(final.get("test_accuracy"))
    if accuracy is None and epochs:
        accuracy = _number(epochs[-1].get("test_accuracy"))
    return Figures(
        dataset=plain_name(dataset.get("name")),
        sample=is_sample(dataset),
        test_accuracy=accuracy,
        test_loss=_number(epochs[-1].get("test_loss")) if epochs else _number(final.get("test_loss")),
        epoch_seconds=sum(seconds) / len(seconds) if seconds else None,
        samples_per_second=throughput if throughput is not None else _number(final.get("samples_per_second")),
        total_seconds=_number(total),
        curve_accuracy=tuple(_number(e.get("test_accuracy")) or 0.0 for e in epochs),
        curve_loss=tuple(_number(e.get("test_loss")) or 0.0 for e in epochs),
    )


# ------------------------------------------------------------------ comparison


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    higher_is_better: bool


METRICS = (
    Metric("test_accuracy", "final test accuracy", True),
    Metric("test_loss", "final test loss", False),
    Metric("epoch_seconds", "seconds per epoch", False),
    Metric("samples_per_second", "samples/s over the epochs", True),
    Metric("total_seconds", "total time (s)", False),
)


@dataclass(frozen=True)
class Row:
    metric: Metric
    baseline: float | None
    run: float | None

    @property
    def change(self) -> float | None:
        return None if self.baseline is None or self.run is None else round(self.run - self.baseline, PRECISION)

    @property
    def better(self) -> bool | None:
        """True when this run improved on the baseline, False when it got worse, None when equal or unknown."""
        if not self.change:
            return None
        return (self.change > 0) == self.metric.higher_is_better


def compare(run: Figures, baseline: Figures) -> list[Row]:
    return [Row(m, getattr(baseline, m.key), getattr(run, m.key)) for m in METRICS]


def _value(key: str, value: float | None) -> str:
    if value is None:
        return "–"
    if key == "test_accuracy":
        return f"{100 * value:.2f}%"
    if key == "test_loss":
        return f"{value:.4f}"
    if key == "samples_per_second":
        return f"{value:,.0f}"
    return f"{value:.1f}"


def _change(row: Row) -> str:
    change = row.change
    if change is None:
        return "–"
    key = row.metric.key
    if key == "test_accuracy":
        text = f"{100 * change:+.2f} pp"
    elif key == "test_loss":
        text = f"{change:+.4f}"
    elif key == "samples_per_second":
        text = f"{change:+,.0f}"
    else:
        text = f"{change:+.1f}"
    if row.baseline and key != "test_accuracy":
        text += f" ({100 * change / row.baseline:+.1f}%)"
    return text + {True: " better", False: " worse", None: ""}[row.better]


def comparison_table(rows: Sequence[Row]) -> str:
    """baseline | this run | change, per metric, like `dvc metrics diff`."""
    lines = ["| metric | baseline | this run | change |", "| --- | ---: | ---: | ---: |"]
    for row in rows:
        lines.append(
            f"| {row.metric.label} | {_value(row.metric.key, row.baseline)} | {_value(row.metric.key, row.run)} | {_change(row)} |"
        )
    return "\n".join(lines) + "\n"


def comparison_block(rows: Sequence[Row]) -> list[dict[str, Any]]:
    return [{"metric": r.metric.key, "baseline": r.baseline, "run": r.run, "change": r.change} for r in rows]


# ------------------------------------------------------------------ decision


@dataclass(frozen=True)
class Decision:
    result: str
    # What failed (empty on pass), what was checked and held, and what a reader must know besides.
    failures: tuple[str, ...] = ()
    checks: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


def pct(value: float) -> str:
    return f"{100 * value:.2f}%"


def dataset_label(run: Figures) -> str:
    return f"the bundled sample ({run.dataset}, a smoke test)" if run.sample else f"the {run.dataset} dataset"


def floor_check(accuracy: float, floor: float) -> bool:
    """True when the accuracy reaches the floor."""
    return round(accuracy, PRECISION) >= round(floor, PRECISION)


def drop_check(accuracy: float, baseline_accuracy: float, max_drop: float) -> bool:
    """True when accuracy fell by no more than max_drop below the baseline's."""
    return round(baseline_accuracy - accuracy, PRECISION) <= round(max_drop, PRECISION)


def decide(
    run: Figures,
    *,
    min_accuracy: float | None = None,
    max_accuracy_drop: float | None = None,
    baseline: Figures | None = None,
) -> Decision:
    """pass, fail or empty, with every reason in words a reviewer can act on."""
    notes = []
    if run.sample:
        notes.append(
            f"Measured on the bundled MNIST sample ({run.dataset}): a smoke test of the pipeline, not the model's accuracy; "
            "train on the full set (dataset: full) for a figure to trust."
        )
    if run.test_accuracy is None:
        return Decision(EMPTY, notes=(*notes, "No test accuracy: no epoch finished, so there is nothing to judge."))
    accuracy, where = run.test_accuracy, dataset_label(run)
    failures, checks = [], []
    if min_accuracy is not None:
        if floor_check(accuracy, min_accuracy):
            checks.append(f"test accuracy {pct(accuracy)} reaches the floor {pct(min_accuracy)} (min-accuracy) on {where}")
        else:
            failures.append(f"test accuracy {pct(accuracy)} is below the floor {pct(min_accuracy)} (min-accuracy) on {where}")
    if baseline is not None and baseline.test_accuracy is not None:
        base = baseline.test_accuracy
        if baseline.dataset != run.dataset:
            notes.append(
                f"The baseline was measured on {dataset_label(baseline)}, this run on {where}: the figures are not comparable"
                + (", so max-accuracy-drop was not applied." if max_accuracy_drop is not None else ".")
            )
        elif max_accuracy_drop is not None:
            fell = f"test accuracy went from the baseline's {pct(base)} to {pct(accuracy)} on {where}"
            if drop_check(accuracy, base, max_accuracy_drop):
                checks.append(f"{fell}, within max-accuracy-drop {100 * max_accuracy_drop:.2f} pp")
            else:
                failures.append(
                    f"{fell}: a drop of {100 * (base - accuracy):.2f} pp, more than max-accuracy-drop {100 * max_accuracy_drop:.2f} pp"
                )
    if not failures and not checks:
        checks.append(f"test accuracy {pct(accuracy)} on {where}; no floor or maximum drop was set")
    return Decision(FAIL if failures else PASS, tuple(failures), tuple(checks), tuple(notes))


def verdict_block(
    decision: Decision,
    run: Figures,
    *,
    min_accuracy: float | None,
    max_accuracy_drop: float | None,
    baseline_source: str,
    rows: Sequence[Row],
    decided_at: str,
) -> dict[str, Any]:
    """metrics.json's `verdict`: the result and why, so a later tool need not parse Markdown."""
    return {
        "result": decision.result,
        "failures": list(decision.failures),
        "checks": list(decision.checks),
        "notes": list(decision.notes),
        "test_accuracy": run.test_accuracy,
        "dataset": run.dataset,
        "sample": run.sample,
        "min_accuracy": min_accuracy,
        "max_accuracy_drop": max_accuracy_drop,
        "baseline": baseline_source or None,
        "comparison": comparison_block(rows),
        "decided_at": decided_at,
    }


# ------------------------------------------------------------------ Markdown


def _chart(title: str, y_label: str, run: Sequence[float], baseline: Sequence[float]) -> str:
    """One Mermaid xychart-beta: this run's line, and the baseline's when there is one, over the epochs both have."""
    epochs = min(len(run), len(baseline)) if baseline else len(run)
    palette = f"{RUN_COLOUR}, {BASELINE_COLOUR}" if baseline else RUN_COLOUR
    values = [run[:epochs], *([baseline[:epochs]] if baseline else [])]
    low, high = min(min(v) for v in values), max(max(v) for v in values)
    pad = (high - low) * 0.1 or abs(high) * 0.05 or 1.0
    lines = [
        f'%%{{init: {{"themeVariables": {{"xyChart": {{"plotColorPalette": "{palette}"}}}}}}}}%%',
        "xychart-beta",
        f'    title "{title}"',
        f'    x-axis "epoch" [{", ".join(str(i + 1) for i in range(epochs))}]',
        f'    y-axis "{y_label}" {low - pad:.4g} --> {high + pad:.4g}',
        f'    line "this run" [{", ".join(f"{v:.4g}" for v in run[:epochs])}]',
    ]
    if baseline:
        lines.append(f'    line "baseline" [{", ".join(f"{v:.4g}" for v in baseline[:epochs])}]')
    return "```mermaid\n" + "\n".join(lines) + "\n```\n"


def mermaid_charts(run: Figures, baseline: Figures | None = None) -> str:
    """Test accuracy and test loss per epoch, this run against the baseline; '' when no epoch finished."""
    if not run.curve_accuracy:
        return ""
    base_acc = [100 * v for v in baseline.curve_accuracy] if baseline else []
    base_loss = list(baseline.curve_loss) if baseline else []
    who = "this run (blue) vs baseline (grey)" if baseline and baseline.curve_accuracy else "this run"
    parts = [
        _chart(f"Test accuracy (%): {who}", "accuracy (%)", [100 * v for v in run.curve_accuracy], base_acc),
        _chart(f"Test loss: {who}", "cross-entropy", list(run.curve_loss), base_loss),
    ]
    if baseline and baseline.curve_accuracy and len(baseline.curve_accuracy) != len(run.curve_accuracy):
        shown = min(len(baseline.curve_accuracy), len(run.curve_accuracy))
        parts.append(
            f"The baseline ran {len(baseline.curve_accuracy)} epoch(s), this run {len(run.curve_accuracy)}: "
            f"the charts show the first {shown}.\n"
        )
    return "\n".join(parts)


def verdict_markdown(decision: Decision, *, rows: Sequence[Row], baseline_source: str, baseline_note: str, charts: str) -> str:
    """The verdict section: the result first, then the reasons, the comparison and the curves."""
    heading = {PASS: "✅ pass", FAIL: "❌ fail", EMPTY: "➖ no figure to judge"}[decision.result]
    lines = [f"## aks-ray verdict: {heading}", ""]
    if decision.failures:
        lines += ["> [!CAUTION]", *(f"> {f[0].upper() + f[1:]}." for f in decision.failures), ""]
    lines += [f"- {c[0].upper() + c[1:]}." for c in decision.checks]
    if decision.checks:
        lines.append("")
    for note in decision.notes:
        lines += ["> [!NOTE]", f"> {note}", ""]
    if rows:
        lines += ["### Compared with the baseline", "", f"Baseline: {baseline_source}.", "", comparison_table(rows)]
    elif baseline_note:
        lines += [f"Baseline: {baseline_note}", ""]
    if charts:
        lines += ["### Curves", "", charts]
    return "\n".join(lines).rstrip("\n") + "\n"


def epochs_table(doc: dict[str, Any]) -> str:
    epochs = [e for e in doc.get("epochs") or [] if isinstance(e, dict)]
    if not epochs:
        return ""
    lines = ["| epoch | train loss | test loss | test accuracy | seconds | samples/s |", "| ---: | ---: | ---: | ---: | ---: | ---: |"]
    for e in epochs:
        lines.append(
            f"| {e.get('epoch')} | {_number(e.get('train_loss')) or 0:.4f} | {_number(e.get('test_loss')) or 0:.4f} "
            f"| {100 * (_number(e.get('test_accuracy')) or 0):.2f}% | {_number(e.get('seconds')) or 0:.1f} "
            f"| {_number(e.get('samples_per_second')) or 0:,.0f} |"
        )
    return "\n".join(lines) + "\n"


def timings_table(timings: dict[str, Any] | None) -> str:
    phases = [(k, v) for k, v in (timings or {}).items() if k != "total" and _number(v) is not None]
    if not phases:
        return ""
    lines = ["| phase | seconds |", "| --- | ---: |", *(f"| {k} | {v:.1f} |" for k, v in phases)]
    total = _number((timings or {}).get("total"))
    if total is not None:
        lines.append(f"| **total** | **{total:.1f}** |")
    return "\n".join(lines) + "\n"


def comment_marker(artifact_name: str) -> str:
    """The hidden line that lets the next run find this comment: one comment per pull request and artifact."""
    return f"<!-- aks-ray-action:verdict artifact={artifact_name} -->"


def comment_body(
    marker: str,
    verdict_md: str,
    doc: dict[str, Any],
    timings: dict[str, Any] | None,
    *,
    run_url: str = "",
) -> str:
    """The pull-request comment: the verdict (with comparison and curves), the per-epoch table, the timings, the cost, the links."""
    status = doc.get("status") or "unknown"
    parts = [marker, verdict_md.rstrip("\n"), ""]
    parts.append(f"Job: **{status}** on target `{doc.get('target') or '?'}`.")
    parts.append("")
    if epochs := epochs_table(doc):
        parts += ["### Per epoch", "", epochs]
    if table := timings_table(timings):
        parts += ["### Timings", "", table]
    if isinstance(doc.get("cost"), dict):  # the aks target's collection wrote it (collect.cost_estimate); summary.md has it
        from .cost import markdown as cost_markdown

        parts += ["### Cost", "", cost_markdown(doc["cost"])]
    if run_url:
        parts.append(f"[The workflow run]({run_url}) · [its artifact, with job.log, metrics.json and model.pt]({run_url}#artifacts)")
    return "\n".join(parts).rstrip("\n") + "\n"


def marked(section: str) -> str:
    """The verdict section between its markers: how summary.md and the step summary both carry it."""
    return f"{SUMMARY_START}\n{section.rstrip()}\n{SUMMARY_END}\n"


def replace_section(text: str, section: str) -> str:
    """summary.md with the verdict section put in place of an earlier one (a rerun), or appended."""
    block = marked(section)
    pattern = re.compile(re.escape(SUMMARY_START) + r".*?" + re.escape(SUMMARY_END) + r"\n?", re.S)
    if pattern.search(text):
        return pattern.sub(lambda _m: block, text, count=1)
    return (text.rstrip("\n") + "\n\n" if text.strip() else "") + block


def failure_message(decision: Decision) -> str:
    """The ::error:: line: every failed check, each naming the figure, the limit and the dataset."""
    return "Verdict fail: " + "; ".join(decision.failures) + "."


# ------------------------------------------------------------------ I/O


@dataclass
class Baseline:
    doc: dict[str, Any]
    timings: dict[str, Any] | None
    source: str

    @property
    def figures(self) -> Figures:
        return figures(self.doc, self.timings)


@dataclass
class BaselineLookup:
    baseline: Baseline | None = None
    # Why there is none (for the summary and a notice), when there is none.
    note: str = ""
    notices: list[str] = field(default_factory=list)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return loaded if isinstance(loaded, dict) else None


def baseline_from_file(raw: str) -> Baseline:
    path = baseline_file(raw)
    doc = read_json(path)
    problem = "is not readable JSON" if doc is None else metrics_json_problem(doc)
    if problem:
        raise UserError(f"--baseline: {path} {problem}.", "point it at the metrics.json an aks-ray run wrote")
    return Baseline(doc=doc, timings=read_json(path.parent / "timings.json"), source=f"`{path}`")


def baseline_from_github(cfg: Config) -> BaselineLookup:
    """The base branch's newest artifact of the same name; a notice, never a failure, when there is none or no access."""
    from .github_api import Forbidden, GitHubClient, GitHubError, NotFound

    github = cfg.github
    name, branch = cfg.verdict.artifact_name, github.base_ref
    try:
        with GitHubClient(github.api_url, github.token, github.repository) as client:
            found = client.baseline(github.workflow_file, branch, name)
    except NotFound as exc:
        note = (
            f"none yet: GitHub has no runs of {github.workflow_file} to look at ({exc}); a workflow this pull request adds "
            "has none on the base branch until it is merged and runs there."
        )
        return BaselineLookup(note=note, notices=[note])
    except Forbidden as exc:
        note = f"none: the token may not read this workflow's runs or artifacts ({exc}); give the job permissions actions: read."
        return BaselineLookup(note=note, notices=[note])
    except (GitHubError, ValueError) as exc:
        note = f"none: the base branch's artifact could not be read ({exc})."
        return BaselineLookup(note=note, notices=[note])
    if found is None:
        note = (
            f"none yet: no successful run of {github.workflow_file} on `{branch}` has an artifact `{name}`; "
            "a push to that branch running this workflow makes one."
        )
        return BaselineLookup(note=note, notices=[note])
    problem = metrics_json_problem(found.metrics)
    if problem:
        note = f"none: the metrics.json in {found.source} {problem}."
        return BaselineLookup(note=note, notices=[note])
    return BaselineLookup(Baseline(found.metrics, found.timings, found.source))


def resolve_baseline(cfg: Config) -> BaselineLookup:
    if not cfg.verdict.baseline:
        return BaselineLookup(note="")
    if cfg.verdict.baseline == "auto":
        return baseline_from_github(cfg)
    return BaselineLookup(baseline_from_file(cfg.verdict.baseline))


def pull_request_number(github: GitHubContext) -> int | None:
    """From refs/pull/N/merge, else from the event payload (pull_request_target runs on the base branch's ref)."""
    if github.pull_request:
        return int(github.pull_request)
    if github.event_path is not None:
        payload = read_json(github.event_path) or {}
        number = (payload.get("pull_request") or {}).get("number")
        if isinstance(number, int):
            return number
    return None


def post_comment(cfg: Config, body: str, marker: str) -> str:
    """Create or update the one comment; returns a line for the log. Never raises for permissions or the network."""
    from .github_api import Forbidden, GitHubClient, GitHubError

    github = cfg.github
    number = pull_request_number(github)
    if number is None:
        gha.notice("comment: this run is not for a pull request, so there is nothing to comment on; the job summary has the report.")
        return "no comment: not a pull request"
    if not github.token or not github.repository:
        gha.notice("comment: no GITHUB_TOKEN was given to the step, so no comment was posted; the job summary has the report.")
        return "no comment: no token"
    try:
        with GitHubClient(github.api_url, github.token, github.repository) as client:
            result = client.upsert_comment(number, marker, body)
    except Forbidden as exc:
        gha.notice(
            f"comment: the token may not write to pull request #{number} ({exc}). A pull request from a fork gets a read-only "
            "token; elsewhere give the job permissions pull-requests: write. The job summary has the whole report.",
            title="aks-ray: no comment",
        )
        return "no comment: the token is read-only"
    except GitHubError as exc:
        gha.notice(f"comment: GitHub did not take the comment ({exc}); the job summary has the report.", title="aks-ray: no comment")
        return "no comment: GitHub error"
    log.info("%s the report comment on #%d: %s", result.action, number, result.html_url)
    return f"comment {result.action}: {result.html_url}"


def draw_curves(path: Path, doc: dict[str, Any], baseline_doc: dict[str, Any], title: str) -> None:
    """training-curves.png again, with the baseline's test loss and accuracy drawn beside this run's."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
    ticks: set[int] = set()
    # The same colours as the Mermaid charts: this run blue, the baseline grey.
    for source, style, colour, label in ((doc, "-", RUN_COLOUR, "this run"), (baseline_doc, ":", BASELINE_COLOUR, "baseline")):
        epochs = [e for e in source.get("epochs") or [] if isinstance(e, dict)]
        xs = [e.get("epoch") for e in epochs]
        if not xs:
            continue
        ticks.update(x for x in xs if isinstance(x, int))
        loss_ax.plot(xs, [e.get("test_loss") for e in epochs], "o" + style, color=colour, label=f"test loss, {label}")
        if label == "this run":
            loss_ax.plot(xs, [e.get("train_loss") for e in epochs], "s--", color=colour, alpha=0.5, label="train loss, this run")
        acc_ax.plot(xs, [100 * (e.get("test_accuracy") or 0) for e in epochs], "o" + style, color=colour, label=f"test accuracy, {label}")
    loss_ax.set(title="Loss", xlabel="epoch", ylabel="cross-entropy")
    acc_ax.set(title="Test accuracy", xlabel="epoch", ylabel="%")
    for ax in (loss_ax, acc_ax):
        ax.grid(True, alpha=0.3)
        ax.set_xticks(sorted(ticks))
        if ax.lines:
            ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(cfg: Config, words: tuple[str, ...] = ()) -> int:
    """Judge the outputs in --output-dir; exit 1 on a fail verdict, 0 otherwise (the job's own failure is reported elsewhere)."""
    problems = token_problems(cfg)
    if problems:
        raise ConfigError(problems)
    options, output_dir = cfg.verdict, cfg.output_dir
    metrics_path = output_dir / "metrics.json"
    doc = read_json(metrics_path)
    if doc is None:
        gha.notice(f"verdict: no {metrics_path}, so no figure to judge; the run's earlier steps say why.", title="aks-ray verdict")
        gha.set_outputs(cfg.github.output, {"verdict": EMPTY})
        return EXIT_OK
    timings = read_json(output_dir / "timings.json")
    run = figures(doc, timings)

    with gha.group("Verdict: floor and baseline"):
        lookup = resolve_baseline(cfg)
        for notice in lookup.notices:
            gha.notice(f"baseline {notice}", title="aks-ray: no baseline")
        baseline = lookup.baseline
        base_figures = baseline.figures if baseline else None
        decision = decide(run, min_accuracy=options.min_accuracy, max_accuracy_drop=options.max_accuracy_drop, baseline=base_figures)
        rows = compare(run, base_figures) if base_figures else []
        section = verdict_markdown(
            decision,
            rows=rows,
            baseline_source=baseline.source if baseline else "",
            baseline_note=lookup.note,
            charts=mermaid_charts(run, base_figures),
        )
        doc["verdict"] = verdict_block(
            decision,
            run,
            min_accuracy=options.min_accuracy,
            max_accuracy_drop=options.max_accuracy_drop,
            baseline_source=baseline.source if baseline else "",
            rows=rows,
            decided_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        )
        metrics_path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        summary_path = output_dir / "summary.md"
        previous = summary_path.read_text(encoding="utf-8") if summary_path.exists() else ""
        summary_path.write_text(replace_section(previous, section), encoding="utf-8")
        # The same marked block, so the step summary and summary.md stay one text (the markers are invisible there).
        gha.append_summary(cfg.github.step_summary, marked(section))
        if baseline is not None and baseline.doc.get("epochs"):
            try:
                draw_curves(
                    output_dir / "training-curves.png", doc, baseline.doc, f"MNIST CNN on Ray ({doc.get('target')}): against the baseline"
                )
            except Exception as exc:  # a plot is never worth failing a verdict over
                log.warning("could not redraw training-curves.png with the baseline: %s", exc)
        gha.set_outputs(cfg.github.output, {"verdict": decision.result})
        log.info("verdict: %s", decision.result or "empty (no figure)")

    if options.comment:
        github = cfg.github
        run_url = f"{github.server_url}/{github.repository}/actions/runs/{github.run_id}" if github.repository and github.run_id else ""
        marker = comment_marker(options.artifact_name)
        log.info(post_comment(cfg, comment_body(marker, section, doc, timings, run_url=run_url), marker))

    if decision.result == FAIL:
        gha.error(failure_message(decision), title="aks-ray verdict: fail")
        return EXIT_OPERATIONAL
    if decision.result == EMPTY and options.min_accuracy is not None and doc.get("status") == "SUCCEEDED":
        gha.error(
            f"the job SUCCEEDED but reported no test accuracy, so the floor {pct(options.min_accuracy)} cannot be checked; "
            "make the training script print its metrics records (see training/train_mnist.py)",
            title="aks-ray verdict: no figure",
        )
        return EXIT_OPERATIONAL
    return EXIT_OK
