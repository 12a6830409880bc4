"""The verdict: its pure functions as tables, its options' bad input, and main() on files report.py wrote."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from aks_ray import cli, config, report, verdict
from aks_ray.errors import ConfigError
from aks_ray.metrics import METRICS_PREFIX

ROOT = Path(__file__).resolve().parents[2]
MERMAID_DIR = ROOT / ".tools" / "mermaid"
MERMAID_PARSE = ROOT / "tests" / "tools" / "mermaid_parse.mjs"

FULL = {"kind": "dataset", "name": "mnist", "source": "download", "train_size": 60000, "test_size": 10000}
SAMPLE = {
    "kind": "dataset",
    "name": "mnist-sample",
    "source": "bundled sample",
    "train_size": 1000,
    "test_size": 500,
    "warning": "Trained on the bundled MNIST SAMPLE",
}


def epoch(n, accuracy, loss, seconds=10.0, rate=6000.0, of=3):
    return {
        "kind": "epoch",
        "epoch": n,
        "epochs": of,
        "train_loss": loss + 0.05,
        "test_loss": loss,
        "test_accuracy": accuracy,
        "seconds": seconds,
        "samples_per_second": rate,
    }


def doc(dataset=FULL, epochs=(), status="SUCCEEDED"):
    """metrics.json as report.metrics_document builds it, without running a job."""
    metrics = report.parse_log(f"{METRICS_PREFIX}{json.dumps(r)}" for r in [dataset, *epochs])
    return report.metrics_document(report.RunOutcome(target="local", status=status, job_id="raysubmit_1"), metrics)


BASE_EPOCHS = [epoch(1, 0.97, 0.09, 12.0, 5000.0), epoch(2, 0.985, 0.05, 10.0, 6000.0), epoch(3, 0.988, 0.04, 10.0, 6000.0)]
RUN_EPOCHS = [epoch(1, 0.96, 0.12, 11.0, 5500.0), epoch(2, 0.975, 0.08, 11.0, 5500.0), epoch(3, 0.981, 0.06, 11.0, 5500.0)]


# ------------------------------------------------------------------ figures


def test_figures_are_read_from_metrics_json_as_report_writes_it():
    fig = verdict.figures(doc(FULL, BASE_EPOCHS), {"ray start": 5.0, "train": 40.0, "total": 45.0})
    assert fig.dataset == "mnist" and not fig.sample
    assert fig.test_accuracy == 0.988 and fig.test_loss == 0.04
    assert fig.epoch_seconds == pytest.approx(32 / 3)
    # Weighted by seconds: (12*5000 + 10*6000 + 10*6000) / 32.
    assert fig.samples_per_second == pytest.approx(180000 / 32)
    assert fig.total_seconds == 45.0
    assert fig.curve_accuracy == (0.97, 0.985, 0.988) and fig.curve_loss == (0.09, 0.05, 0.04)


@pytest.mark.parametrize(
    ("dataset", "sample"),
    [
        pytest.param(SAMPLE, True, id="bundled-sample"),
        pytest.param({**FULL, "name": "mnist-sample"}, True, id="sample-by-name"),
        pytest.param({**FULL, "source": "bundled sample"}, True, id="sample-by-source"),
        pytest.param(FULL, False, id="full"),
        pytest.param(None, False, id="no-dataset-record"),
    ],
)
def test_sample_labelling(dataset, sample):
    assert verdict.is_sample(dataset) is sample


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        pytest.param("mnist", "mnist", id="plain"),
        pytest.param("@octo-org/everyone <img src=x> **bold**", "octo-orgeveryoneimgsrcxbold", id="markup-and-mentions-dropped"),
        pytest.param("", "unknown", id="empty"),
        pytest.param("x" * 100, "x" * 64, id="long"),
    ],
)
def test_the_dataset_name_a_training_script_printed_is_posted_plain(name, shown):
    assert verdict.figures(doc({**FULL, "name": name})).dataset == shown


def test_a_run_with_no_epoch_has_no_figures():
    fig = verdict.figures(doc(FULL, [], status="FAILED"))
    assert fig.test_accuracy is None and fig.test_loss is None and fig.epoch_seconds is None and fig.curve_accuracy == ()


# ------------------------------------------------------------------ checks


@pytest.mark.parametrize(
    ("accuracy", "floor", "ok"),
    [
        pytest.param(0.99, 0.98, True, id="above"),
        pytest.param(0.98, 0.98, True, id="equal"),
        pytest.param(0.1 + 0.7, 0.8, True, id="equal-after-float-noise"),
        pytest.param(0.9799, 0.98, False, id="just-below"),
        pytest.param(0.0, 0.0, True, id="zero-floor"),
        pytest.param(1.0, 1.0, True, id="perfect"),
    ],
)
def test_floor_check(accuracy, floor, ok):
    assert verdict.floor_check(accuracy, floor) is ok


@pytest.mark.parametrize(
    ("accuracy", "baseline", "max_drop", "ok"),
    [
        pytest.param(0.983, 0.988, 0.005, True, id="drop-equal-to-limit-despite-float-noise"),
        pytest.param(0.982, 0.988, 0.005, False, id="drop-over-limit"),
        pytest.param(0.99, 0.988, 0.0, True, id="improved-with-zero-tolerance"),
        pytest.param(0.988, 0.988, 0.0, True, id="equal-with-zero-tolerance"),
        pytest.param(0.9879, 0.988, 0.0, False, id="any-drop-with-zero-tolerance"),
    ],
)
def test_drop_check(accuracy, baseline, max_drop, ok):
    assert verdict.drop_check(accuracy, baseline, max_drop) is ok


BASE = verdict.figures(doc(FULL, BASE_EPOCHS))
RUN = verdict.figures(doc(FULL, RUN_EPOCHS))
RUN_SAMPLE = verdict.figures(doc(SAMPLE, [epoch(1, 0.81, 0.8)]))
RUN_NONE = verdict.figures(doc(FULL, []))


@pytest.mark.parametrize(
    ("run", "floor", "max_drop", "baseline", "result", "expect"),
    [
        pytest.param(RUN, None, None, None, "pass", ["no floor or maximum drop was set"], id="nothing-set-passes"),
        pytest.param(RUN, 0.98, None, None, "pass", ["98.10% reaches the floor 98.00%", "the mnist dataset"], id="floor-reached"),
        pytest.param(RUN, 0.99, None, None, "fail", ["98.10% is below the floor 99.00%", "on the mnist dataset"], id="floor-missed"),
        pytest.param(
            RUN, None, 0.01, BASE, "pass", ["from the baseline's 98.80% to 98.10%", "within max-accuracy-drop 1.00 pp"], id="drop-within"
        ),
        pytest.param(RUN, None, 0.005, BASE, "fail", ["a drop of 0.70 pp, more than max-accuracy-drop 0.50 pp"], id="drop-too-big"),
        pytest.param(RUN, 0.99, 0.005, BASE, "fail", ["below the floor", "a drop of 0.70 pp"], id="both-fail-both-said"),
        pytest.param(RUN, None, None, BASE, "pass", ["no floor or maximum drop"], id="baseline-without-limit-only-compares"),
        pytest.param(
            RUN_SAMPLE,
            0.5,
            None,
            None,
            "pass",
            ["the bundled sample (mnist-sample, a smoke test)", "smoke test of the pipeline"],
            id="sample-labelled-on-pass",
        ),
        pytest.param(
            RUN_SAMPLE,
            0.99,
            None,
            None,
            "fail",
            ["below the floor 99.00% (min-accuracy) on the bundled sample"],
            id="sample-labelled-on-fail",
        ),
        pytest.param(
            RUN_SAMPLE, None, 0.001, BASE, "pass", ["not comparable", "max-accuracy-drop was not applied"], id="other-dataset-not-compared"
        ),
        pytest.param(RUN_NONE, 0.9, None, None, "", ["nothing to judge"], id="no-figure-is-empty"),
    ],
)
def test_decide(run, floor, max_drop, baseline, result, expect):
    decision = verdict.decide(run, min_accuracy=floor, max_accuracy_drop=max_drop, baseline=baseline)
    assert decision.result == result
    said = " ".join([*decision.failures, *decision.checks, *decision.notes])
    for words in expect:
        assert words in said
    assert bool(decision.failures) is (result == "fail")


def test_the_sample_is_never_passed_silently():
    decision = verdict.decide(RUN_SAMPLE, min_accuracy=0.5)
    assert decision.result == "pass" and any("bundled MNIST sample" in n for n in decision.notes)
    section = verdict.verdict_markdown(decision, rows=[], baseline_source="", baseline_note="", charts="")
    assert "> [!NOTE]\n> Measured on the bundled MNIST sample" in section


# ------------------------------------------------------------------ comparison and Markdown


def test_comparison_rows_like_dvc_metrics_diff():
    rows = verdict.compare(RUN, verdict.figures(doc(FULL, BASE_EPOCHS), {"total": 60.0}))
    table = verdict.comparison_table(rows)
    assert table.splitlines()[:2] == ["| metric | baseline | this run | change |", "| --- | ---: | ---: | ---: |"]
    assert "| final test accuracy | 98.80% | 98.10% | -0.70 pp worse |" in table
    assert "| final test loss | 0.0400 | 0.0600 | +0.0200 (+50.0%) worse |" in table
    assert "| seconds per epoch | 10.7 | 11.0 | +0.3 (+3.1%) worse |" in table
    assert "| samples/s over the epochs | 5,625 | 5,500 | -125 (-2.2%) worse |" in table
    # This run has no timings.json: the difference is unknown, not zero.
    assert "| total time (s) | 60.0 | – | – |" in table
    assert [r["metric"] for r in verdict.comparison_block(rows)] == [m.key for m in verdict.METRICS]


def test_an_improvement_reads_better():
    (row,) = [r for r in verdict.compare(BASE, RUN) if r.metric.key == "test_accuracy"]
    assert row.better is True and verdict._change(row) == "+0.70 pp better"


def test_charts_carry_both_curves_over_the_common_epochs():
    short_base = verdict.figures(doc(FULL, BASE_EPOCHS[:2]))
    charts = verdict.mermaid_charts(RUN, short_base)
    assert charts.count("```mermaid\n") == 2 and charts.count("xychart-beta") == 2
    assert 'x-axis "epoch" [1, 2]' in charts
    assert 'line "this run" [96, 97.5]' in charts and 'line "baseline" [97, 98.5]' in charts
    assert "this run (blue) vs baseline (grey)" in charts and "The baseline ran 2 epoch(s), this run 3" in charts
    assert verdict.mermaid_charts(RUN_NONE) == ""
    alone = verdict.mermaid_charts(RUN)
    assert 'line "baseline"' not in alone and 'x-axis "epoch" [1, 2, 3]' in alone


def mermaid_blocks(markdown: str) -> list[str]:
    return [block.split("\n```", 1)[0] for block in markdown.split("```mermaid\n")[1:]]


def test_mermaid_blocks_parse_with_mermaid_itself():
    """mermaid's own parser, installed by make mermaid-install (mermaid 12.3.0, jsdom 29.1.1)"""
    node = shutil.which("node")
    if node is None or not (MERMAID_DIR / "node_modules" / "mermaid").is_dir():
        pytest.skip("no Mermaid parser here: make mermaid-install")
    one_epoch = verdict.figures(doc(SAMPLE, [epoch(1, 0.81, 0.8)]))
    flat = verdict.figures(doc(FULL, [epoch(1, 0.9, 0.3), epoch(2, 0.9, 0.3)]))
    blocks = [
        *mermaid_blocks(verdict.mermaid_charts(RUN, BASE)),
        *mermaid_blocks(verdict.mermaid_charts(RUN)),
        *mermaid_blocks(verdict.mermaid_charts(one_epoch, BASE)),
        *mermaid_blocks(verdict.mermaid_charts(flat)),
    ]
    assert len(blocks) == 8

    def parse(texts):
        return subprocess.run(
            [node, "--input-type=module", "-e", MERMAID_PARSE.read_text()],
            input="\n%%%%\n".join(texts),
            cwd=MERMAID_DIR,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    result = parse(blocks)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(": ok xychart") == len(blocks)
    # The parser does reject a broken chart, so the pass above means something.
    broken = parse([blocks[0].replace("] ", " ").replace("]\n", "\n", 1)])
    assert broken.returncode == 1 and "ERROR" in broken.stdout


def test_summary_section_is_replaced_on_a_rerun_not_repeated():
    first = verdict.replace_section("# summary\n", "## aks-ray verdict: ❌ fail\n")
    second = verdict.replace_section(first, "## aks-ray verdict: ✅ pass\n")
    assert second.count(verdict.SUMMARY_START) == 1 and "✅ pass" in second and "❌ fail" not in second
    assert second.startswith("# summary\n\n")


def test_comment_body_has_the_verdict_first_and_the_links():
    decision = verdict.decide(RUN, min_accuracy=0.99)
    section = verdict.verdict_markdown(decision, rows=verdict.compare(RUN, BASE), baseline_source="`x`", baseline_note="", charts="")
    body = verdict.comment_body(
        verdict.comment_marker("aks-ray-output"),
        section,
        doc(FULL, RUN_EPOCHS),
        {"train": 33.0, "total": 40.0},
        run_url="https://github.example/o/r/actions/runs/7",
    )
    lines = body.splitlines()
    assert lines[0] == "<!-- aks-ray-action:verdict artifact=aks-ray-output -->"
    assert lines[1] == "## aks-ray verdict: ❌ fail"
    order = [body.index(s) for s in ("Compared with the baseline", "### Per epoch", "### Timings", "actions/runs/7#artifacts")]
    assert order == sorted(order)
    assert "| **total** | **40.0** |" in body


# ------------------------------------------------------------------ bad input


def metrics_file(tmp_path, content) -> Path:
    path = tmp_path / "base" / "metrics.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


PR_ENV = {
    "GITHUB_EVENT_NAME": "pull_request",
    "GITHUB_BASE_REF": "main",
    "GITHUB_TOKEN": "ghs_token",
    "GITHUB_REPOSITORY": "o/r",
    "GITHUB_WORKFLOW_REF": "o/r/.github/workflows/train.yml@refs/pull/7/merge",
}


@pytest.mark.parametrize(
    ("flags", "env", "expected"),
    [
        pytest.param({"min_accuracy": "98"}, {}, "--min-accuracy: 98 is outside 0..1", id="floor-as-percent"),
        pytest.param({"min_accuracy": "-0.1"}, {}, "--min-accuracy: -0.1 is outside 0..1", id="floor-negative"),
        pytest.param(
            {}, {"AKS_RAY_MIN_ACCURACY": "high"}, "AKS_RAY_MIN_ACCURACY (--min-accuracy): 'high' is not a number", id="floor-env-word"
        ),
        pytest.param(
            {"max_accuracy_drop": "1.5", "baseline": "auto"}, PR_ENV, "--max-accuracy-drop: 1.5 is outside 0..1", id="drop-over-one"
        ),
        pytest.param({"max_accuracy_drop": "0.01"}, {}, "--max-accuracy-drop: needs a baseline", id="drop-without-baseline"),
        pytest.param({"baseline": "nope/metrics.json"}, {}, "does not exist; point it at the metrics.json", id="baseline-missing"),
        pytest.param({"baseline": "auto"}, {**PR_ENV, "GITHUB_EVENT_NAME": "push"}, "this is a push run", id="auto-outside-pull-request"),
        pytest.param({"baseline": "auto"}, {}, "this is a local run", id="auto-on-a-laptop"),
        pytest.param({"artifact_name": "a/b"}, {}, "--artifact-name: 'a/b' is not a usable artifact name", id="artifact-name-slash"),
    ],
)
def test_bad_verdict_input_is_refused_naming_the_input_and_the_fix(flags, env, expected):
    with pytest.raises(ConfigError) as caught:
        config.load(flags, env)
    assert any(expected in problem for problem in caught.value.problems), caught.value.problems


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param("not json", "is not readable JSON", id="not-json"),
        pytest.param([1, 2], "is not a JSON object", id="a-list"),
        pytest.param({"accuracy": 0.9}, "lacks status, target, dataset, epochs, final", id="another-tool's-metrics"),
        pytest.param(
            {"status": "", "target": "", "dataset": None, "epochs": {}, "final": {}},
            "has epochs or final of the wrong type",
            id="wrong-types",
        ),
    ],
)
def test_a_baseline_that_is_not_our_metrics_json_is_refused(tmp_path, content, expected):
    path = metrics_file(tmp_path, content)
    with pytest.raises(ConfigError) as caught:
        config.load({"baseline": str(path)}, {})
    assert any(f"--baseline: {path} {expected}" in p for p in caught.value.problems), caught.value.problems


def test_good_verdict_input_is_accepted(tmp_path):
    path = metrics_file(tmp_path, doc(FULL, BASE_EPOCHS))
    cfg = config.load({"min_accuracy": "0.98", "max_accuracy_drop": "0.005", "baseline": str(path.parent)}, {})
    assert cfg.verdict.min_accuracy == 0.98 and cfg.verdict.max_accuracy_drop == 0.005 and cfg.verdict.baseline == str(path.parent)
    auto = config.load({"baseline": "AUTO"}, PR_ENV)
    assert auto.verdict.baseline == "auto" and auto.github.workflow_file == "train.yml"
    assert "ghs_token" not in repr(auto)


@pytest.mark.parametrize(
    ("flags", "env", "expected"),
    [
        pytest.param({"baseline": "auto"}, PR_ENV, "--baseline: auto needs the job's token", id="auto-without-token"),
        pytest.param({"comment": "true"}, {"GITHUB_ACTIONS": "true"}, "--comment: needs the job's token", id="comment-without-token"),
    ],
)
def test_a_missing_token_is_refused_by_the_steps_that_get_it_only(flags, env, expected, tmp_path, monkeypatch, capsys):
    env = {**env, "GITHUB_TOKEN": "", "AKS_RAY_OUTPUT_DIR": str(tmp_path / "out")}
    # Every other step loads the same options without the token (the training step must never be given it).
    cfg = config.load(flags, env)
    assert config.token_problems(cfg) and not cfg.github.token
    with pytest.raises(ConfigError, match=re.escape(expected)):
        verdict.main(cfg)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    words = ["--baseline", "auto"] if flags.get("baseline") else ["--comment"]
    assert cli.main(["validate", *words]) == 2
    assert expected in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_bad_input_exits_2_before_anything_runs(tmp_path, capsys):
    assert cli.main(["verdict", "--output-dir", str(tmp_path / "out"), "--min-accuracy", "99"]) == 2
    assert "--min-accuracy: 99 is outside 0..1" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ main()


@pytest.fixture(autouse=True)
def _root_logging_restored():
    """cli.main() points the root logger at this test's stderr; the next test must not log into a closed capture."""
    import logging

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = handlers, level


@pytest.fixture
def environ(tmp_path):
    return {
        "AKS_RAY_OUTPUT_DIR": str(tmp_path / "out"),
        "GITHUB_OUTPUT": str(tmp_path / "gh_output"),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "gh_summary"),
    }


def train(env, dataset, epochs, status=report.SUCCEEDED):
    """The outputs as a run leaves them: job.log, then report.write_outputs (metrics.json, summary.md, ...)."""
    cfg = config.load({}, env)
    cfg.output_dir.mkdir(parents=True, exist_ok=True)
    lines = [f"(RayTrainWorker pid=1) {METRICS_PREFIX}{json.dumps(r)}" for r in [dataset, *epochs]]
    cfg.run_dir.write_job_log("\n".join(lines) + "\n")
    cfg.run_dir.record_phase("ray start", 5.0)
    cfg.run_dir.record_phase("train", 35.0)
    report.write_outputs(cfg, report.RunOutcome(target="local", status=status))
    return cfg.output_dir


def outputs(tmp_path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in (tmp_path / "gh_output").read_text().splitlines())


def run_verdict(env, **flags):
    return verdict.main(config.load(flags, env), ("verdict",))


def test_a_floor_it_misses_fails_with_the_figure_the_floor_and_the_dataset(tmp_path, environ, capsys):
    out = train(environ, SAMPLE, [epoch(1, 0.81, 0.8, of=1)])
    assert run_verdict(environ, min_accuracy="0.99") == 1

    err = capsys.readouterr().err
    assert "::error title=aks-ray verdict%3A fail::Verdict fail: test accuracy 81.00%25 is below the floor 99.00%25 (min-accuracy)" in err
    assert "on the bundled sample (mnist-sample, a smoke test)" in err
    assert outputs(tmp_path)["verdict"] == "fail"
    assert outputs(tmp_path)["job-status"] == "SUCCEEDED"  # report.py's output, untouched
    written = json.loads((out / "metrics.json").read_text())
    assert written["status"] == "SUCCEEDED"
    assert written["verdict"]["result"] == "fail" and written["verdict"]["min_accuracy"] == 0.99 and written["verdict"]["sample"] is True
    summary = (out / "summary.md").read_text()
    assert summary.startswith("## aks-ray: MNIST CNN on Ray (local) SUCCEEDED")
    assert "## aks-ray verdict: ❌ fail" in summary and "is below the floor 99.00%" in summary
    assert "## aks-ray verdict: ❌ fail" in (tmp_path / "gh_summary").read_text()


def test_a_reachable_floor_passes_and_says_it_was_the_sample(tmp_path, environ):
    out = train(environ, SAMPLE, [epoch(1, 0.81, 0.8, of=1)])
    assert run_verdict(environ, min_accuracy="0.5") == 0
    assert outputs(tmp_path)["verdict"] == "pass"
    summary = (out / "summary.md").read_text()
    assert "## aks-ray verdict: ✅ pass" in summary and "Measured on the bundled MNIST sample" in summary


def test_a_baseline_file_gives_the_comparison_the_charts_and_a_max_drop_verdict(tmp_path, environ):
    base_env = {**environ, "AKS_RAY_OUTPUT_DIR": str(tmp_path / "base")}
    base_out = train(base_env, FULL, BASE_EPOCHS)
    out = train(environ, FULL, RUN_EPOCHS)
    assert run_verdict(environ, baseline=str(base_out / "metrics.json"), max_accuracy_drop="0.005") == 1

    summary = (out / "summary.md").read_text()
    assert f"Baseline: `{base_out / 'metrics.json'}`." in summary
    assert "| final test accuracy | 98.80% | 98.10% | -0.70 pp worse |" in summary
    assert "| total time (s) | 40.0 | 40.0 | +0.0 (+0.0%) |" in summary
    assert summary.count("```mermaid\n%%{init") == 2 and summary.count('line "baseline"') == 2
    block = json.loads((out / "metrics.json").read_text())["verdict"]
    assert block["result"] == "fail" and block["max_accuracy_drop"] == 0.005
    assert block["comparison"][0] == {"metric": "test_accuracy", "baseline": 0.988, "run": 0.981, "change": -0.007}
    assert (out / "training-curves.png").read_bytes()[:4] == b"\x89PNG"


def test_a_rerun_rewrites_the_verdict_instead_of_adding_one(tmp_path, environ):
    out = train(environ, FULL, RUN_EPOCHS)
    assert run_verdict(environ, min_accuracy="0.99") == 1
    assert run_verdict(environ, min_accuracy="0.9") == 0
    summary = (out / "summary.md").read_text()
    assert summary.count("## aks-ray verdict") == 1 and "✅ pass" in summary
    assert json.loads((out / "metrics.json").read_text())["verdict"]["result"] == "pass"


def test_no_figure_is_an_empty_verdict(tmp_path, environ):
    train(environ, FULL, [], status=report.FAILED)
    assert run_verdict(environ, min_accuracy="0.9") == 0  # the job's own failure fails the workflow
    assert outputs(tmp_path)["verdict"] == ""


def test_a_succeeded_job_without_figures_cannot_pass_a_floor(tmp_path, environ, capsys):
    train(environ, FULL, [])
    assert run_verdict(environ, min_accuracy="0.9") == 1
    assert "reported no test accuracy, so the floor 90.00%25 cannot be checked" in capsys.readouterr().err


def test_no_metrics_json_at_all_is_a_notice(tmp_path, environ, capsys):
    assert run_verdict(environ, min_accuracy="0.9") == 0
    assert "::notice" in capsys.readouterr().err and outputs(tmp_path)["verdict"] == ""


def test_comment_outside_a_pull_request_is_a_notice(tmp_path, environ, capsys):
    train(environ, FULL, RUN_EPOCHS)
    assert run_verdict(environ, comment="true") == 0
    assert "not for a pull request" in capsys.readouterr().err


def test_the_cli_runs_the_verdict_step(tmp_path, environ, monkeypatch):
    train(environ, FULL, RUN_EPOCHS)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    assert cli.main(["verdict", "--min-accuracy", "0.995"]) == 1
    assert cli.main(["verdict", "--min-accuracy", "0.98"]) == 0
    assert outputs(tmp_path)["verdict"] == "pass"  # the last write wins for a step output
