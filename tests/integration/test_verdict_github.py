"""The verdict's GitHub side against a loopback stand-in for the REST API, with the real client code (httpx).

The stand-in (tests/fakes/github_rest.py) answers with the real API's shapes:
workflow runs, run artifacts, the artifact zip behind a redirect to another
origin, issue comments, and a 403 for a token that may not do something.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from aks_ray import config, report, verdict
from aks_ray.github_api import Forbidden, GitHubClient, GitHubError, read_artifact_zip
from aks_ray.metrics import METRICS_PREFIX

# The stand-ins live in tests/fakes, beside the other fakes.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fakes"))
from github_rest import WORKFLOW, FakeGitHub, artifact_zip, serve

pytestmark = pytest.mark.integration

WRITE_TOKEN = "ghs_writeTokenForTheBaseRepo0123456789"
FORK_TOKEN = "ghs_readOnlyTokenOfAForkPullRequest01"
NO_ACTIONS_TOKEN = "ghs_tokenWithoutActionsRead0123456789"
PR = 42
DATASET = {"kind": "dataset", "name": "mnist", "source": "download", "train_size": 60000, "test_size": 10000}


def epoch(n, accuracy, loss):
    return {
        "kind": "epoch",
        "epoch": n,
        "epochs": 2,
        "train_loss": loss + 0.02,
        "test_loss": loss,
        "test_accuracy": accuracy,
        "seconds": 10.0,
        "samples_per_second": 6000.0,
    }


def metrics_doc(accuracies):
    records = [DATASET, *(epoch(i + 1, a, 0.1 - 0.02 * i) for i, a in enumerate(accuracies))]
    parsed = report.parse_log(f"{METRICS_PREFIX}{json.dumps(r)}" for r in records)
    return report.metrics_document(report.RunOutcome(target="aks", status="SUCCEEDED", job_name="rayjob-main"), parsed)


def artifact_files(accuracies, total=300.0):
    return {
        "metrics.json": json.dumps(metrics_doc(accuracies)),
        "timings.json": json.dumps({"train": total - 20, "total": total}),
        "job.log": "…",
    }


@pytest.fixture
def github():
    fake = FakeGitHub(
        tokens={
            WRITE_TOKEN: {"actions": "read", "pull_requests": "write"},
            FORK_TOKEN: {"actions": "read", "pull_requests": "read"},
            NO_ACTIONS_TOKEN: {"pull_requests": "write"},
        }
    )
    with serve(fake):
        yield fake


@pytest.fixture
def environ(tmp_path, github):
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"action": "synchronize", "number": PR, "pull_request": {"number": PR, "base": {"ref": "main"}}}))
    return {
        "AKS_RAY_OUTPUT_DIR": str(tmp_path / "out"),
        "GITHUB_OUTPUT": str(tmp_path / "gh_output"),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "gh_summary"),
        "GITHUB_ACTIONS": "true",
        "GITHUB_API_URL": github.url,
        "GITHUB_SERVER_URL": "https://github.example",
        "GITHUB_REPOSITORY": github.repository,
        "GITHUB_EVENT_NAME": "pull_request",
        "GITHUB_EVENT_PATH": str(event),
        "GITHUB_REF": f"refs/pull/{PR}/merge",
        "GITHUB_BASE_REF": "main",
        "GITHUB_HEAD_REF": "feature",
        "GITHUB_WORKFLOW_REF": f"{github.repository}/.github/workflows/{WORKFLOW}@refs/pull/{PR}/merge",
        "GITHUB_RUN_ID": "777",
        "GITHUB_TOKEN": WRITE_TOKEN,
    }


def train(env, accuracies):
    out = Path(env["AKS_RAY_OUTPUT_DIR"])
    out.mkdir(parents=True, exist_ok=True)
    records = [DATASET, *(epoch(i + 1, a, 0.1 - 0.02 * i) for i, a in enumerate(accuracies))]
    (out / "job.log").write_text("".join(f"{METRICS_PREFIX}{json.dumps(r)}\n" for r in records))
    cfg = config.load({}, env)
    cfg.run_dir.save_timings(cfg.run_dir.timings().__class__())  # a second training in the same folder starts its timings over
    cfg.run_dir.record_phase("train", 250.0)
    report.write_outputs(cfg, report.RunOutcome(target="aks", status="SUCCEEDED"))
    return out


def run_verdict(env, **flags):
    return verdict.main(config.load(flags, env), ("verdict",))


def outputs(env):
    return dict(line.split("=", 1) for line in Path(env["GITHUB_OUTPUT"]).read_text().splitlines())


def everything_written(env) -> str:
    out = Path(env["AKS_RAY_OUTPUT_DIR"])
    texts = [p.read_text(errors="replace") for p in out.iterdir() if p.suffix in (".json", ".md", ".log")]
    return "\n".join([*texts, Path(env["GITHUB_OUTPUT"]).read_text(), Path(env["GITHUB_STEP_SUMMARY"]).read_text()])


# ------------------------------------------------------------------ baseline: auto


def test_auto_takes_the_newest_successful_base_branch_artifact_and_compares(github, environ, capsys):
    # Oldest first; the API lists newest first.
    github.add_run(artifacts={"aks-ray-output": artifact_files([0.95, 0.97])})
    github.add_run(artifacts={"aks-ray-output": artifact_files([0.97, 0.988], total=310.0)})  # the baseline
    github.add_run(artifacts={"other-matrix-leg": artifact_files([0.5, 0.6])})  # newer, but not this artifact
    github.add_run(conclusion="failure", artifacts={"aks-ray-output": artifact_files([0.1, 0.2])})
    github.add_run(event="pull_request", artifacts={"aks-ray-output": artifact_files([0.99, 0.999])})  # a fork's `main`
    github.add_run(head_repository="forker/mnist-on-ray", event="push", artifacts={"aks-ray-output": artifact_files([0.99, 0.999])})
    github.add_run(branch="feature", artifacts={"aks-ray-output": artifact_files([0.99, 0.999])})
    out = train(environ, [0.96, 0.981])

    assert run_verdict(environ, baseline="auto", max_accuracy_drop="0.005") == 1

    summary = (out / "summary.md").read_text()
    assert "Baseline: artifact `aks-ray-output` of run #2" in summary
    assert "| final test accuracy | 98.80% | 98.10% | -0.70 pp worse |" in summary
    assert "| total time (s) | 310.0 | 250.0 | -60.0 (-19.4%) better |" in summary
    assert summary.count('line "baseline"') == 2
    assert outputs(environ)["verdict"] == "fail"
    assert "a drop of 0.70 pp, more than max-accuracy-drop 0.50 pp" in capsys.readouterr().err
    block = json.loads((out / "metrics.json").read_text())["verdict"]
    assert block["baseline"].startswith("artifact `aks-ray-output` of run #2")
    # What was asked: this workflow's successful runs on the base branch, then artifacts by name.
    listing = next(r for r in github.requests if r.path.endswith(f"/workflows/{WORKFLOW}/runs"))
    assert listing.query["branch"] == "main" and listing.query["status"] == "success"
    assert all(r.headers["authorization"] == f"Bearer {WRITE_TOKEN}" for r in github.requests)
    assert all(r.headers["x-github-api-version"] == "2022-11-28" for r in github.requests)
    # The zip came from the other origin, and the token did not go there.
    (blob,) = github.blob_requests
    assert "authorization" not in blob.headers
    assert WRITE_TOKEN not in everything_written(environ)


def test_auto_with_no_baseline_yet_is_a_notice_and_the_floor_still_decides(github, environ, capsys):
    github.add_run(artifacts={"something-else": {"x.txt": "x"}})
    out = train(environ, [0.96, 0.981])

    assert run_verdict(environ, baseline="auto", min_accuracy="0.98") == 0

    err = capsys.readouterr().err
    assert "::notice title=aks-ray%3A no baseline::baseline none yet: no successful run of train.yml on `main`" in err
    assert outputs(environ)["verdict"] == "pass"
    assert "Baseline: none yet" in (out / "summary.md").read_text()


def test_auto_without_actions_read_is_a_notice_not_a_crash(github, environ, capsys):
    github.add_run(artifacts={"aks-ray-output": artifact_files([0.97, 0.988])})
    train(environ, [0.96, 0.981])
    env = {**environ, "GITHUB_TOKEN": NO_ACTIONS_TOKEN}

    assert run_verdict(env, baseline="auto") == 0

    err = capsys.readouterr().err
    assert "may not read this workflow's runs or artifacts" in err and "actions: read" in err
    assert "HTTP 403: Resource not accessible by integration" in err
    assert outputs(env)["verdict"] == "pass"


# ------------------------------------------------------------------ the comment


def test_a_comment_is_created_then_updated_one_comment_after_two_runs(github, environ):
    github.add_comment(PR, "Looks good to me")
    github.add_comment(PR, f"Quoting the bot: {verdict.comment_marker('aks-ray-output')} (not the report)")
    github.add_run(artifacts={"aks-ray-output": artifact_files([0.97, 0.988])})
    train(environ, [0.96, 0.981])

    assert run_verdict(environ, baseline="auto", min_accuracy="0.99", comment="true") == 1
    train(environ, [0.97, 0.989])
    assert run_verdict(environ, baseline="auto", min_accuracy="0.98", comment="true") == 0

    comments = github.comments_on(PR)
    ours = [c for c in comments if c["user"]["type"] == "Bot"]
    assert len(comments) == 3 and len(ours) == 1
    body = ours[0]["body"]
    assert body.startswith(verdict.comment_marker("aks-ray-output") + "\n## aks-ray verdict: ✅ pass")
    assert "| final test accuracy | 98.80% | 98.90% | +0.10 pp better |" in body
    assert "### Per epoch" in body and "### Timings" in body and "```mermaid" in body
    assert "https://github.example/octo-org/mnist-on-ray/actions/runs/777#artifacts" in body
    assert comments[1]["body"].startswith("Quoting the bot")  # the reviewer's comment was left alone
    methods = [(r.method, r.path.rsplit("/", 2)[-2:]) for r in github.requests if r.method in ("POST", "PATCH")]
    assert [m for m, _ in methods] == ["POST", "PATCH"]


def test_a_matrix_leg_gets_its_own_comment(github, environ):
    train(environ, [0.96, 0.981])
    assert run_verdict(environ, comment="true") == 0
    assert run_verdict(environ, comment="true", artifact_name="aks-ray-output-gpu") == 0
    assert len(github.comments_on(PR)) == 2


def test_a_fork_read_only_token_gets_a_notice_and_the_summary_keeps_everything(github, environ, capsys):
    out = train(environ, [0.96, 0.981])
    env = {**environ, "GITHUB_TOKEN": FORK_TOKEN}

    assert run_verdict(env, min_accuracy="0.9", comment="true") == 0

    err = capsys.readouterr().err
    assert "::notice title=aks-ray%3A no comment::comment: the token may not write to pull request #42" in err
    assert "A pull request from a fork gets a read-only token" in err
    assert github.comments_on(PR) == []
    assert "## aks-ray verdict: ✅ pass" in (out / "summary.md").read_text()
    assert "## aks-ray verdict: ✅ pass" in Path(env["GITHUB_STEP_SUMMARY"]).read_text()


def test_pull_request_target_finds_the_number_in_the_event_payload(github, environ):
    train(environ, [0.96, 0.981])
    env = {**environ, "GITHUB_EVENT_NAME": "pull_request_target", "GITHUB_REF": "refs/heads/main"}
    assert run_verdict(env, comment="true") == 0
    assert len(github.comments_on(PR)) == 1


# ------------------------------------------------------------------ the client itself


def client(github, token=WRITE_TOKEN, sleeps=None):
    return GitHubClient(github.url, token, github.repository, sleep=(sleeps.append if sleeps is not None else lambda s: None))


def test_transient_errors_are_retried_a_bounded_number_of_times(github):
    github.add_run(artifacts={"aks-ray-output": artifact_files([0.9, 0.95])})
    github.fail_next[r"/runs$"] = 2
    sleeps: list[float] = []
    with client(github, sleeps=sleeps) as api:
        found = api.baseline(WORKFLOW, "main", "aks-ray-output")
    assert found is not None and found.metrics["final"]["test_accuracy"] == 0.95 and found.timings["total"] == 300.0
    assert len(sleeps) == 2 and sleeps[1] > sleeps[0] * 0.9  # backoff grows

    github.fail_next[r"/runs$"] = 99
    with client(github) as api, pytest.raises(GitHubError, match="HTTP 502"):
        next(api.successful_runs(WORKFLOW, "main"))
    assert github.fail_next[r"/runs$"] == 99 - 4  # ATTEMPTS calls, then it gives up


def test_a_comment_post_is_not_retried_after_a_server_error(github):
    """Its answer lost, a POST may have been done: a retry could post the report twice."""
    with client(github) as api:
        marker = verdict.comment_marker("x")
        original = github.handle

        def fail_posts(method, path, query, headers, body):
            if method == "POST":
                return 502, {"message": "Server Error"}, {}
            return original(method, path, query, headers, body)

        github.handle = fail_posts
        with pytest.raises(GitHubError, match="HTTP 502"):
            api.upsert_comment(PR, marker, f"{marker}\nbody")
    assert len([r for r in github.requests if r.method == "POST"]) == 1


def test_comments_are_found_across_pages(github):
    github.page_size_cap = 2
    marker = verdict.comment_marker("aks-ray-output")
    for i in range(5):
        github.add_comment(PR, f"chatter {i}")
    mine = github.add_comment(PR, f"{marker}\nold report", {"login": "github-actions[bot]", "id": 41898282, "type": "Bot"})
    with client(github) as api:
        result = api.upsert_comment(PR, marker, f"{marker}\nnew report")
    assert result.action == "updated" and result.id == mine["id"] and mine["body"].endswith("new report")
    assert len([r for r in github.requests if r.path.endswith("/comments") and r.method == "GET"]) == 3


def test_a_bad_token_is_forbidden_not_retried(github):
    api = GitHubClient(github.url, "ghs_wrong", github.repository, sleep=lambda s: pytest.fail("retried a 401"))
    with api, pytest.raises(Forbidden, match="HTTP 401: Bad credentials"):
        api.upsert_comment(PR, "<!-- m -->", "<!-- m -->")


def test_an_expired_artifact_is_passed_over(github):
    github.add_run(artifacts={"aks-ray-output": artifact_files([0.9, 0.91])})
    github.add_run(artifacts={"aks-ray-output": artifact_files([0.9, 0.99])}, expired=True)
    with client(github) as api:
        found = api.baseline(WORKFLOW, "main", "aks-ray-output")
    assert found.metrics["final"]["test_accuracy"] == 0.91 and found.artifact.run.run_number == 1


# ------------------------------------------------------------------ the zip, read safely


def zipped(files):
    return artifact_zip(files)


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        pytest.param({"metrics.json": '{"a": 1}'}, ({"a": 1}, None), id="root"),
        pytest.param({"out/metrics.json": '{"a": 2}', "metrics.json": '{"a": 1}'}, ({"a": 1}, None), id="shallowest-wins"),
        pytest.param({"../../etc/metrics.json": '{"a": 3}'}, ({"a": 3}, None), id="traversal-name-only-read-in-memory"),
        pytest.param({"metrics.json": '{"a": 1}', "timings.json": "[1]"}, ({"a": 1}, None), id="odd-timings-ignored"),
        pytest.param({"metrics.json": '{"a": 1}', "timings.json": '{"total": 9}'}, ({"a": 1}, {"total": 9}), id="with-timings"),
    ],
)
def test_read_artifact_zip(files, expected):
    assert read_artifact_zip(zipped(files)) == expected


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(b"PK not really", "not a zip file", id="not-a-zip"),
        pytest.param(None, "has no metrics.json", id="no-metrics"),
        pytest.param("bomb", "more than a metrics file can be", id="too-big"),
        pytest.param("[]", "not a JSON object", id="not-an-object"),
    ],
)
def test_read_artifact_zip_refuses(data, message):
    if data is None:
        data = zipped({"job.log": "x"})
    elif data == "bomb":
        data = zipped({"metrics.json": " " * (6 * 1024 * 1024)})
    elif data == "[]":
        data = zipped({"metrics.json": "[]"})
    with pytest.raises(ValueError, match=message):
        read_artifact_zip(data)


def test_a_corrupt_baseline_artifact_is_a_notice(github, environ, capsys):
    github.add_run(artifacts={"aks-ray-output": {"metrics.json": json.dumps({"accuracy": 0.99})}})
    train(environ, [0.96, 0.981])
    assert run_verdict(environ, baseline="auto") == 0
    assert "is not an aks-ray metrics.json" in capsys.readouterr().err


def test_a_workflow_new_in_this_pull_request_has_no_baseline_yet(github, environ, capsys):
    train(environ, [0.96, 0.981])
    env = {**environ, "GITHUB_WORKFLOW_REF": f"{github.repository}/.github/workflows/brand-new.yml@refs/pull/{PR}/merge"}
    assert run_verdict(env, baseline="auto", min_accuracy="0.9") == 0
    err = capsys.readouterr().err
    assert "none yet: GitHub has no runs of brand-new.yml to look at" in err and "HTTP 404: Not Found" in err
    assert outputs(env)["verdict"] == "pass"
