"""A Kueue queue for the RayJob (issue 13, point 9): the option, the render, what the wait makes of a queued RayJob.

The RayJob and Workload shapes are those KubeRay 1.7 and Kueue v0.17 write (kuberay_objects.py);
the wait itself, through the real client against a stand-in API server, is in
tests/integration/test_kube_io.py.
"""

from __future__ import annotations

import copy

import pytest
from kuberay_objects import (
    JUST_ADMITTED,
    PENDING_MESSAGE,
    QUEUE,
    QUEUED,
    RUNNING,
    WORKLOAD_ADMITTED,
    WORKLOAD_EVICTED,
    WORKLOAD_NEVER_FITS,
    WORKLOAD_NO_QUEUE,
    WORKLOAD_PENDING,
)

from aks_ray import cli, config, diagnose, rayjob
from aks_ray.errors import EXIT_USER, ConfigError
from aks_ray.jobstatus import JobState, never_fits, newest_workload, queue_message, waiting_in_queue


def load(tmp_path, **env):
    return config.load({}, {"AKS_RAY_OUTPUT_DIR": str(tmp_path / "out"), "AKS_RAY_TARGET": "kubeconfig", **env})


# ---------------------------------------------------------------- the option


@pytest.mark.parametrize(
    "name",
    ["aks-ray-queue", "q", "team-a.gpu", "0queue", "a" * 63],
    ids=["plain", "one-letter", "with-a-dot", "digit-first", "63-characters"],
)
def test_queue_names_kueue_accepts(tmp_path, name):
    assert load(tmp_path, AKS_RAY_QUEUE_NAME=name).kube.queue_name == name


@pytest.mark.parametrize(
    "name",
    ["Team-Queue", "queue_1", "-queue", "queue-", "team..a", "a" * 64, "queue.", "q/ueue"],
    ids=["upper-case", "underscore", "dash-first", "dash-last", "empty-label", "64-characters", "dot-last", "slash"],
)
def test_queue_names_kueue_refuses_are_bad_input_that_names_the_input_and_the_fix(tmp_path, name):
    with pytest.raises(ConfigError) as excinfo:
        load(tmp_path, AKS_RAY_QUEUE_NAME=name)
    [problem] = excinfo.value.problems
    assert problem.startswith("AKS_RAY_QUEUE_NAME (--queue-name): ")
    assert "LocalQueue" in problem and "kubectl get localqueues" in problem


def test_the_action_input_reaches_the_option(tmp_path):
    cfg = load(tmp_path, AKS_RAY_INPUTS='{"queue-name": "aks-ray-queue", "queue-timeout": "45m"}')
    assert (cfg.kube.queue_name, cfg.kube.queue_timeout) == ("aks-ray-queue", 2700)


def test_no_queue_by_default_and_a_30_minute_queue_timeout(tmp_path):
    cfg = load(tmp_path)
    assert cfg.kube.queue_name is None and cfg.kube.queue_timeout == 1800


@pytest.mark.parametrize("raw", ["0", "soon", "-5m"])
def test_a_queue_timeout_that_is_not_a_duration_is_bad_input(tmp_path, raw):
    with pytest.raises(ConfigError, match=r"--queue-timeout.*not a duration"):
        load(tmp_path, AKS_RAY_QUEUE_TIMEOUT=raw)


def test_keep_cluster_with_a_queue_exits_2_before_anything_with_the_reason(tmp_path, capsys):
    code = cli.main(
        ["job", "submit", "--target", "kubeconfig", "--queue-name", QUEUE, "--keep-cluster", "--output-dir", str(tmp_path / "out")]
    )
    assert code == EXIT_USER
    err = capsys.readouterr().err
    assert "--keep-cluster: Kueue does not queue a RayJob that keeps its Ray cluster" in err
    assert "drop --keep-cluster, or --queue-name" in err


def test_keep_cluster_without_a_queue_and_a_queue_on_the_local_target_are_fine(tmp_path):
    assert load(tmp_path, AKS_RAY_KEEP_CLUSTER="true").common.keep_cluster
    assert load(tmp_path, AKS_RAY_TARGET="local", AKS_RAY_QUEUE_NAME=QUEUE, AKS_RAY_KEEP_CLUSTER="true").kube.queue_name == QUEUE


# ---------------------------------------------------------------- the render


def render(tmp_path, **env):
    cfg = load(tmp_path, **env)
    return rayjob.find(rayjob.render_run(cfg, rayjob.identity(cfg, "aks-ray-1-abcdef")), "RayJob")


def test_a_queued_rayjob_is_created_suspended_with_kueues_label_and_deletes_its_cluster(tmp_path):
    job = render(tmp_path, AKS_RAY_QUEUE_NAME=QUEUE)
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == QUEUE
    # The run's own labels stay: cleanup and collect find the run by them.
    assert job["metadata"]["labels"]["aks-ray.io/run"] == "aks-ray-1-abcdef"
    spec = job["spec"]
    assert spec["suspend"] is True
    # Kueue v0.17 refuses a queued RayJob without it; KubeRay 1.7 refuses it beside deletionRules.
    assert spec["shutdownAfterJobFinishes"] is True and "deletionStrategy" not in spec
    assert spec["ttlSecondsAfterFinished"] == rayjob.QUEUED_CLUSTER_TTL_SECONDS
    # What else Kueue's webhook checks: no autoscaling, at most 7 worker groups, none named "head".
    cluster = spec["rayClusterSpec"]
    assert cluster["enableInTreeAutoscaling"] is False
    assert [g["groupName"] for g in cluster["workerGroupSpecs"]] == ["train"]
    # The deadlines are unchanged: KubeRay counts them from the admission.
    assert spec["preRunningDeadlineSeconds"] < spec["activeDeadlineSeconds"] == 3600


def test_without_a_queue_the_rayjob_is_not_suspended_and_keeps_its_deletion_rules(tmp_path):
    job = render(tmp_path)
    assert "kueue.x-k8s.io/queue-name" not in job["metadata"]["labels"]
    assert "suspend" not in job["spec"] and "shutdownAfterJobFinishes" not in job["spec"]
    assert job["spec"]["deletionStrategy"]["deletionRules"]


# ---------------------------------------------------------------- what the wait reads


def test_a_suspended_rayjob_whose_workload_is_pending_waits_in_the_queue():
    assert waiting_in_queue(QUEUED, WORKLOAD_PENDING)
    assert waiting_in_queue(QUEUED, None)  # the Workload unread (403): the RayJob's suspend says it
    assert queue_message(WORKLOAD_PENDING) == f"Pending: {PENDING_MESSAGE}"
    # KubeRay's own reading of the state, for the log.
    assert not JobState.of(QUEUED).terminal and "suspended" in JobState.of(QUEUED).meaning()


def test_admission_is_kueue_clearing_suspend_or_its_workload_admitted():
    assert not waiting_in_queue(JUST_ADMITTED, None)  # still Suspended in KubeRay's status, but Kueue has let it go
    assert not waiting_in_queue(QUEUED, WORKLOAD_ADMITTED)  # admitted, suspend about to be cleared
    assert not waiting_in_queue(RUNNING, None)
    assert queue_message(WORKLOAD_ADMITTED) == "Quota reserved in ClusterQueue aks-ray-cluster-queue"


def test_an_evicted_workload_says_why_and_waits_again():
    evicted = copy.deepcopy(RUNNING)
    evicted["spec"]["suspend"] = True
    assert waiting_in_queue(evicted, WORKLOAD_EVICTED)
    assert queue_message(WORKLOAD_EVICTED).startswith("evicted (Preempted): Preempted to accommodate a workload")


def test_a_run_larger_than_the_whole_queue_is_told_apart():
    assert never_fits(WORKLOAD_NEVER_FITS) and not never_fits(WORKLOAD_PENDING) and not never_fits(None)
    assert queue_message(WORKLOAD_NO_QUEUE) == f"Inadmissible: LocalQueue {QUEUE} doesn't exist"
    assert queue_message(None) == "" and queue_message({"status": {}}) == ""


def test_the_newest_workload_is_the_runs():
    old = copy.deepcopy(WORKLOAD_PENDING)
    old["metadata"]["creationTimestamp"] = "2026-11-25T19:00:00Z"
    assert newest_workload([old, WORKLOAD_ADMITTED]) is WORKLOAD_ADMITTED
    assert newest_workload([]) is None


@pytest.mark.parametrize(
    ("workload", "fix"),
    [
        pytest.param(WORKLOAD_PENDING, "raise --queue-timeout", id="quota-busy"),
        pytest.param(WORKLOAD_NEVER_FITS, "more than the ClusterQueue's whole quota", id="never-fits"),
        pytest.param(WORKLOAD_NO_QUEUE, f"check --queue-name {QUEUE}", id="no-local-queue"),
        pytest.param(None, "raise --queue-timeout", id="workload-unread"),
    ],
)
def test_the_never_admitted_finding_names_kueues_reason_and_the_fix(workload, fix):
    finding = diagnose.queue_finding(QUEUED, QUEUE, 1800, queue_message(workload))
    assert finding.title == "never admitted"
    assert f"waited 1800 s in Kueue's queue {QUEUE} and was never admitted" in finding.message
    assert fix in finding.fix
    if workload is not None:
        assert queue_message(workload) in finding.message
    else:
        assert "could not be read" in finding.message


def test_the_summary_of_a_run_still_in_the_queue_says_so():
    """collect's findings (diagnose.diagnose) come from the RayJob alone: still suspended in its queue."""
    [finding] = diagnose.diagnose(QUEUED)
    assert finding.title == "never admitted"
    assert f"is still suspended in Kueue's queue {QUEUE}" in finding.message
    assert diagnose.diagnose(JUST_ADMITTED) == [], "admitted (suspend cleared): nothing to say of the queue"
    assert diagnose.diagnose(RUNNING) == []
