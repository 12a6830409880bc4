"""RayJob state decisions, run state, log-follow readiness, and the pure parts of collect and operator."""

from __future__ import annotations

import io
import json
import tarfile

import pytest
from kuberay_objects import (
    ALL_RAYJOBS,
    APP_FAILED,
    CRASH_LOOP_SUBMITTER,
    DEADLINE_EXCEEDED,
    HEALTHY_HEAD,
    INITIALIZING,
    JOB,
    KUBERAY_1_7_DEPLOYMENT_STATUSES,
    PRE_RUNNING_DEADLINE,
    RUNNING,
    RUNNING_SUBMITTER,
    SUCCEEDED,
)

from aks_ray import cleanup, collect, config, operator, report
from aks_ray.errors import UserError
from aks_ray.job import submitter_pod_ready_for_logs
from aks_ray.jobstatus import JobState, transitions, with_rays_own_status
from aks_ray.rundir import RunState


@pytest.mark.parametrize(
    ("name", "terminal", "verdict"),
    [
        ("initializing", False, None),
        ("running", False, None),
        ("succeeded", True, report.SUCCEEDED),
        ("app-failed", True, report.FAILED),
        ("runtime-env-failed", True, report.FAILED),
        ("submission-failed", True, report.FAILED),
        ("deadline-exceeded", True, report.TIMED_OUT),
        ("pre-running-deadline", True, report.TIMED_OUT),
        ("stopped", True, report.STOPPED),
        ("complete-but-failed", True, report.FAILED),
        ("new", False, None),
        ("validation-failed", True, report.FAILED),
        ("waiting", False, None),
        ("retrying", False, None),
        ("suspending", False, None),
        ("suspended", False, None),
        ("grace-period-failed", True, report.FAILED),
        ("grace-period-complete", True, report.SUCCEEDED),
        ("status-check-timeout", True, report.FAILED),
    ],
)
def test_terminal_and_verdict_of_every_kuberay_state(name, terminal, verdict):
    state = JobState.of(ALL_RAYJOBS[name])
    assert state.terminal is terminal
    if terminal:
        assert state.verdict() == verdict
    assert state.succeeded is (verdict == report.SUCCEEDED)


def test_the_table_covers_every_deployment_status_of_kuberay_1_7():
    """Every JobDeploymentStatus constant of KubeRay 1.7's rayjob_types.go has a row above."""
    assert {JobState.of(obj).deployment for obj in ALL_RAYJOBS.values()} == KUBERAY_1_7_DEPLOYMENT_STATUSES


@pytest.mark.parametrize("name", ["new", "initializing", "waiting", "running", "retrying", "suspending", "suspended"])
def test_every_waiting_state_is_explained_in_the_log(name):
    state = JobState.of(ALL_RAYJOBS[name])
    assert state.meaning() and "does not know" not in state.meaning()
    if state.deployment:
        assert transitions(None, state)[0] == f"jobDeploymentStatus: (none) -> {state.deployment} ({state.meaning()})"


def test_an_unknown_future_state_keeps_waiting_and_says_so():
    state = JobState(deployment="Quiescing")
    assert not state.terminal and "does not know" in state.meaning()


@pytest.mark.parametrize(
    ("name", "bookkeeping"),
    [("grace-period-failed", True), ("status-check-timeout", True), ("app-failed", False), ("grace-period-complete", False)],
)
def test_failures_that_are_not_the_trainings(name, bookkeeping):
    assert JobState.of(ALL_RAYJOBS[name]).not_the_applications is bookkeeping


def test_a_job_that_completed_with_a_failed_ray_job_is_not_a_success():
    state = JobState.of(ALL_RAYJOBS["complete-but-failed"])
    assert state.terminal and not state.succeeded


def test_fresh_rayjob_without_status_waits():
    state = JobState.of({"apiVersion": "ray.io/v1", "kind": "RayJob", "metadata": {"name": JOB}})
    assert state == JobState() and not state.terminal


def test_transitions_log_each_changed_field_once():
    first = transitions(None, JobState.of(INITIALIZING))
    assert first == [
        "jobDeploymentStatus: (none) -> Initializing (the Ray cluster is starting (pods scheduled, images pulled, Ray started))"
    ]
    second = transitions(JobState.of(INITIALIZING), JobState.of(RUNNING))
    assert second == [
        "jobDeploymentStatus: Initializing -> Running (the job was submitted; KubeRay follows it)",
        "jobStatus: (none) -> RUNNING",
    ]
    assert transitions(JobState.of(RUNNING), JobState.of(RUNNING)) == []
    last = transitions(JobState.of(RUNNING), JobState.of(DEADLINE_EXCEEDED))
    assert last == ["jobDeploymentStatus: Running -> Failed", "reason: (none) -> DeadlineExceeded", "failed attempts: 1"]


def test_transition_to_success():
    assert transitions(JobState.of(RUNNING), JobState.of(SUCCEEDED)) == [
        "jobDeploymentStatus: Running -> Complete",
        "jobStatus: RUNNING -> SUCCEEDED",
    ]


@pytest.mark.parametrize(
    ("pod", "ready"),
    [(RUNNING_SUBMITTER, True), (CRASH_LOOP_SUBMITTER, False), (HEALTHY_HEAD, False)],
    ids=["running-submitter", "waiting-submitter", "not-a-submitter"],
)
def test_submitter_log_is_followed_once_the_container_started(pod, ready):
    assert submitter_pod_ready_for_logs(pod) is ready


def test_terminated_submitter_still_has_a_log():
    pod = json.loads(json.dumps(RUNNING_SUBMITTER))
    pod["status"]["containerStatuses"][0]["state"] = {"terminated": {"exitCode": 0, "reason": "Completed"}}
    assert submitter_pod_ready_for_logs(pod)


# ---------------------------------------------------------------- run state


def make_cfg(tmp_path, **env):
    environ = {"AKS_RAY_OUTPUT_DIR": str(tmp_path / "out"), "AKS_RAY_TARGET": "kubeconfig", **env}
    return config.load({}, environ)


def find_run(cfg):
    return cfg.run_dir.find_job(cfg.kube.job_name, cfg.kube.namespace, cfg.target)


def test_state_round_trip_and_no_secret(tmp_path):
    cfg = make_cfg(tmp_path, ACTIONS_ID_TOKEN_REQUEST_TOKEN="eyJhbGciOiJSUzI1NiJ9.secret-oidc-token", GITHUB_RUN_ID="77")
    cfg.run_dir.save_job(RunState(job_name=JOB, namespace="aks-ray", target="kubeconfig", created_at=1.5))
    text = (cfg.output_dir / "state.json").read_text()
    assert "secret-oidc-token" not in text
    assert find_run(cfg) == RunState(job_name=JOB, namespace="aks-ray", target="kubeconfig", created_at=1.5)


def test_state_falls_back_to_job_name(tmp_path):
    cfg = make_cfg(tmp_path, AKS_RAY_JOB_NAME="my-run", AKS_RAY_NAMESPACE="team-a")
    assert find_run(cfg) == RunState(job_name="my-run", namespace="team-a", target="kubeconfig")


def test_no_state_is_bad_input_that_names_the_fix(tmp_path):
    cfg = make_cfg(tmp_path)
    with pytest.raises(UserError, match="job submit") as excinfo:
        cfg.run_dir.require_job(cfg.kube.job_name, cfg.kube.namespace, cfg.target)
    assert excinfo.value.exit_code == 2
    assert find_run(cfg) is None


def test_cleanup_without_a_run_deletes_nothing_and_needs_no_cluster(tmp_path):
    # No state.json and no --job-name: cleanup must not go looking for "all aks-ray objects".
    cfg = make_cfg(tmp_path, KUBECONFIG=str(tmp_path / "missing-kubeconfig"))
    assert cleanup.main(cfg) == 0


# ------------------------------------------------------------ collect, pure


def test_redact_removes_literal_credentials_and_managed_fields():
    pod = {
        "metadata": {
            "name": "p",
            "managedFields": [{"manager": "kubectl"}],
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": '{"token":"x"}'},
        },
        "spec": {
            "containers": [
                {
                    "name": "ray-head",
                    "env": [
                        {"name": "RAY_AUTH_TOKEN", "value": "s3cr3t-token"},
                        {"name": "AZURE_CLIENT_SECRET", "value": "hunter2"},
                        {"name": "RAY_AUTH_TOKEN_FROM_SECRET", "valueFrom": {"secretKeyRef": {"name": "c", "key": "auth_token"}}},
                        {"name": "OMP_NUM_THREADS", "value": "2"},
                    ],
                }
            ]
        },
    }
    text = collect.dump_yaml(pod)
    assert "s3cr3t-token" not in text and "hunter2" not in text and '"token":"x"' not in text
    assert "managedFields" not in text
    assert "OMP_NUM_THREADS" in text and "'2'" in text, "ordinary values stay"
    assert "secretKeyRef" in text, "a reference to a Secret is not the secret"


def test_driver_log_is_the_most_complete_submitter_log_not_the_newest():
    older = {"metadata": {"name": "s-1", "creationTimestamp": "2026-11-25T20:00:00Z"}}
    newer = {"metadata": {"name": "s-2", "creationTimestamp": "2026-11-25T20:05:00Z"}}
    whole = "".join(f'AKS_RAY_METRICS {{"kind": "epoch", "epoch": {i}}}\n' for i in range(1, 4))
    retry = "Waiting for Ray Dashboard GCS to become healthy at http://head:8265 ...\n"
    # A retried submitter that only waited for the dashboard does not replace the whole log.
    assert collect.pick_driver_log([older, newer], {"s-1": whole, "s-2": retry}) == whole
    # One that followed the job further wins, whichever pod is newer.
    assert collect.pick_driver_log([newer, older], {"s-1": retry, "s-2": whole}) == whole
    assert collect.pick_driver_log([older, newer], {"s-1": "first try\n", "s-2": "  \n"}) == "first try\n"
    assert collect.pick_driver_log([older, newer], {"s-1": "same\n", "s-2": "later\n"}) == "later\n"
    assert collect.pick_driver_log([], {}) == ""


def test_the_heads_driver_log_is_found_by_the_jobs_submission_id(tmp_path):
    logs = tmp_path / "session-logs"
    logs.mkdir()
    (logs / "job-driver-other-run.log").write_text("not ours\n")
    (logs / f"job-driver-{JOB}-tp9wx.log").write_text("ours, every line\n")
    assert collect.head_driver_log(logs, f"{JOB}-tp9wx") == "ours, every line\n"
    assert collect.head_driver_log(logs, "") == ""
    assert collect.head_driver_log(tmp_path / "absent", f"{JOB}-tp9wx") == ""


def test_result_json_from_the_head(tmp_path):
    assert collect.head_result(tmp_path) is None
    (tmp_path / "result.json").write_text("{not json")
    assert collect.head_result(tmp_path) is None
    (tmp_path / "result.json").write_text(json.dumps({"dataset": {"kind": "dataset"}}))
    assert collect.head_result(tmp_path) is None, "no final block: the training did not get that far"
    doc = {"dataset": {"kind": "dataset", "source": "mirror"}, "final": {"kind": "final", "test_accuracy": 0.981}}
    (tmp_path / "result.json").write_text(json.dumps(doc))
    assert collect.head_result(tmp_path) == doc


@pytest.mark.parametrize(
    ("job", "verdict", "expected"),
    [
        (SUCCEEDED, "", report.SUCCEEDED),
        (APP_FAILED, "", report.FAILED),
        (PRE_RUNNING_DEADLINE, "", report.TIMED_OUT),
        (RUNNING, report.TIMED_OUT, report.TIMED_OUT),
        (RUNNING, "", report.FAILED),
        (None, "", report.FAILED),
    ],
    ids=["succeeded", "failed", "pre-running-deadline", "wait-timed-out", "collected-while-running", "rayjob-gone"],
)
def test_outcome_status(job, verdict, expected):
    assert collect.outcome_status(job, RunState(JOB, "aks-ray", verdict=verdict)) == expected


def _tar(members):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_safe_extract_keeps_files_and_refuses_escapes(tmp_path):
    archive = _tar([("artifacts/model.pt", b"weights"), ("../../escape.txt", b"x"), ("artifacts/link", None), ("/abs.txt", b"y")])
    names = collect.safe_extract(archive, tmp_path / "dest")
    assert names == ["artifacts/model.pt"]
    assert (tmp_path / "dest/artifacts/model.pt").read_bytes() == b"weights"
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "dest/artifacts/link").exists()


# ----------------------------------------------------------- operator, pure


def test_crd_established_reads_the_condition():
    crd = {"status": {"conditions": [{"type": "NamesAccepted", "status": "True"}, {"type": "Established", "status": "True"}]}}
    assert operator.crd_established(crd)
    crd["status"]["conditions"][1]["status"] = "False"
    assert not operator.crd_established(crd)
    assert not operator.crd_established(None)


def test_deployment_available_needs_the_updated_replicas():
    deployment = {
        "spec": {"replicas": 1},
        "status": {
            "updatedReplicas": 1,
            "availableReplicas": 1,
            "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}],
        },
    }
    assert operator.deployment_available(deployment)
    deployment["status"]["updatedReplicas"] = 0  # an upgrade still rolling out
    assert not operator.deployment_available(deployment)
    assert not operator.deployment_available({"spec": {"replicas": 1}, "status": {}})


def test_chart_source_repository_local_and_missing(tmp_path):
    cfg = make_cfg(tmp_path)
    source = operator.chart_source(cfg)
    assert (source.ref, source.repo, source.version) == ("kuberay-operator", "https://ray-project.github.io/kuberay-helm/", "1.7.0")
    chart = tmp_path / "kuberay-operator"
    chart.mkdir()
    assert operator.chart_source(make_cfg(tmp_path, AKS_RAY_KUBERAY_CHART=str(chart))).repo is None
    with pytest.raises(UserError, match="--kuberay-chart"):
        operator.chart_source(make_cfg(tmp_path, AKS_RAY_KUBERAY_CHART=str(tmp_path / "nope")))


# ---------------------------------------------------------------- kube.call


def test_api_unreachable_through_every_retry_is_operational_not_a_traceback():
    from aks_ray import kube
    from aks_ray.errors import OperationalError

    calls = []

    def refused():
        calls.append(1)
        raise ConnectionRefusedError(111, "Connection refused")

    with pytest.raises(OperationalError, match="did not answer") as excinfo:
        kube.call("read RayJob aks-ray/x", refused, attempts=3, sleep=lambda s: None)
    assert len(calls) == 3
    assert "kubeconfig" in excinfo.value.fix


def test_api_errors_that_are_answers_are_not_retried():
    from kubernetes.client.exceptions import ApiException

    from aks_ray import kube

    calls = []

    def forbidden():
        calls.append(1)
        raise ApiException(status=403, reason="Forbidden")

    with pytest.raises(ApiException):
        kube.call("create RayJob", forbidden, attempts=5, sleep=lambda s: None)
    assert len(calls) == 1
    assert kube.is_transient(ApiException(status=503)) and not kube.is_transient(ApiException(status=404))


# ---------------------------------------------------------------- dashboard


def test_dashboard_is_a_localhost_port_forward_to_the_head_service(tmp_path):
    from aks_ray import dashboard
    from aks_ray.rundir import RunIdentity

    cfg = make_cfg(tmp_path, AKS_RAY_KUBECONFIG=str(tmp_path / "kc"), AKS_RAY_KUBE_CONTEXT="ci")
    run = RunIdentity(JOB, "team-a", {})
    args = dashboard.port_forward_args(cfg, run)
    assert args == [
        "kubectl",
        "--kubeconfig",
        str(tmp_path / "kc"),
        "--context",
        "ci",
        "port-forward",
        "--address",
        "127.0.0.1",
        "-n",
        "team-a",
        f"service/{JOB}-head-svc",
        "8265:8265",
    ]
    paragraph = dashboard.summary_paragraph(cfg, run, kept=False)
    assert dashboard.command_line(cfg, run) in paragraph
    assert "auth_token" in paragraph and "never exposed publicly" in paragraph


def test_kept_cluster_is_not_deleted_and_the_dashboard_is_announced(tmp_path, capsys):
    cfg = make_cfg(tmp_path, AKS_RAY_KEEP_CLUSTER="true", KUBECONFIG=str(tmp_path / "missing-kubeconfig"))
    cfg.run_dir.save_job(RunState(job_name=JOB, namespace="aks-ray"))
    assert cleanup.main(cfg) == 0, "no cluster is contacted when the cluster is kept"
    assert "--keep-cluster" in capsys.readouterr().err


def test_safe_extract_of_a_folders_contents(tmp_path):
    # `tar -C <dir> .` as collect runs it in the head pod: members start with "./".
    archive = _tar([("./raylet.out", b"raylet"), ("./old/worker.log", b"w")])
    names = collect.safe_extract(archive, tmp_path / "logs")
    assert sorted(names) == ["./old/worker.log", "./raylet.out"]
    assert (tmp_path / "logs/raylet.out").read_bytes() == b"raylet"


@pytest.mark.parametrize(
    ("name", "ray_status", "verdict"),
    [
        ("grace-period-failed", "SUCCEEDED", report.SUCCEEDED),
        ("grace-period-failed", "FAILED", report.FAILED),
        ("grace-period-failed", "STOPPED", report.STOPPED),
        ("grace-period-failed", None, report.FAILED),
        ("grace-period-failed", "RUNNING", report.FAILED),
        ("status-check-timeout", "SUCCEEDED", report.SUCCEEDED),
        ("app-failed", "SUCCEEDED", report.FAILED),
        ("deadline-exceeded", "SUCCEEDED", report.TIMED_OUT),
    ],
)
def test_rays_own_status_corrects_only_kuberays_bookkeeping(name, ray_status, verdict):
    """A healthy training that KubeRay failed because the follow stream ended early is reported by Ray's status."""
    final = with_rays_own_status(JobState.of(ALL_RAYJOBS[name]), ray_status)
    assert final.terminal and final.verdict() == verdict


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("", ""),
        ("The RayJob has passed the preRunningDeadlineSeconds.", "The RayJob has passed the preRunningDeadlineSeconds."),
        (
            "Job entrypoint command failed with exit code 1, last available logs (truncated to 20,000 chars):\n"
            "Runtime env is setting up.\nTraceback (most recent call last):\n  ...\nValueError: bad learning rate\n\n",
            "Job entrypoint command failed with exit code 1, last available logs (truncated to 20,000 chars): … "
            "ValueError: bad learning rate",
        ),
    ],
)
def test_kuberays_message_in_one_line_keeps_its_first_line_and_the_quoted_logs_last(message, expected):
    from aks_ray.jobstatus import brief

    assert brief(message) == expected
