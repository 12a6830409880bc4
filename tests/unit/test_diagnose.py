"""diagnose: KubeRay 1.7 statuses, pods and events in, plain findings with fixes out."""

from __future__ import annotations

import kuberay_objects as K
import pytest
from kuberay_objects import (
    APP_FAILED,
    BACKOFF_LIMIT_EXCEEDED,
    CRASH_LOOP_SUBMITTER,
    DEADLINE_EXCEEDED,
    FAILED_SCHEDULING_CPU_GPU,
    FAILED_SCHEDULING_MEMORY,
    FAILED_SCHEDULING_TAINT,
    HEAD_AT_10_244_0_4,
    HEALTHY_HEAD,
    IMAGE_PULL_BACKOFF,
    JOB,
    OOM_KILLED_HEAD,
    OOM_KILLED_WORKER,
    OTHER_RUN_EVENT,
    PRE_RUNNING_DEADLINE,
    RAY_OOM_LOG,
    RUNNING,
    RUNTIME_ENV_FAILED,
    SCHEDULED,
    SUBMISSION_FAILED,
    SUCCEEDED,
)

from aks_ray import diagnose


def titles(findings):
    return [f.title for f in findings]


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (FAILED_SCHEDULING_MEMORY["message"], ["memory"]),
        (FAILED_SCHEDULING_CPU_GPU["message"], ["cpu", "nvidia.com/gpu"]),
        (FAILED_SCHEDULING_TAINT["message"], []),
        ("0/5 nodes are available: 3 Insufficient cpu, 2 Insufficient cpu.", ["cpu"]),
    ],
    ids=["memory-behind-a-taint", "cpu-and-gpu", "selector-only", "deduplicated"],
)
def test_short_resources_names_what_is_missing(message, expected):
    assert diagnose.short_resources(message) == expected


def test_unschedulable_names_the_short_resource_and_the_option():
    [finding] = diagnose.event_findings([FAILED_SCHEDULING_MEMORY])
    assert finding.title == "not enough room in the cluster"
    assert "short of memory" in finding.message
    assert "--memory-per-worker" in finding.fix
    assert "--cpus-per-worker" not in finding.fix


def test_gpu_shortage_points_at_gpu_nodes():
    [finding] = diagnose.event_findings([FAILED_SCHEDULING_CPU_GPU])
    assert "cpu, nvidia.com/gpu" in finding.message
    assert "--use-gpu" in finding.fix and "--cpus-per-worker" in finding.fix


def test_selector_mismatch_is_not_called_a_shortage():
    [finding] = diagnose.event_findings([FAILED_SCHEDULING_TAINT])
    assert finding.title == "no node matches"
    assert "--node-selector" in finding.fix


def test_normal_events_and_other_runs_say_nothing():
    events = diagnose.events_of_run([SCHEDULED, OTHER_RUN_EVENT], JOB)
    assert events == [SCHEDULED]
    assert diagnose.event_findings(events) == []


def test_image_pull_backoff_names_the_image_and_the_option():
    [finding] = diagnose.pod_findings([IMAGE_PULL_BACKOFF])
    assert finding.title == "image pull failed"
    assert "rayproject/ray:2.60.0-py311-cpux" in finding.message
    assert "Ray worker" in finding.message
    assert "--ray-image" in finding.fix


@pytest.mark.parametrize(
    ("pod", "option"),
    [(OOM_KILLED_WORKER, "--memory-per-worker"), (OOM_KILLED_HEAD, "--head-memory")],
    ids=["worker", "head"],
)
def test_oom_killed_points_at_the_memory_of_that_pod(pod, option):
    findings = diagnose.pod_findings([pod])
    assert titles(findings) == ["out of memory"], "an OOMKilled crash loop is reported once, as OOM"
    assert option in findings[0].fix


def test_crash_loop_without_oom_points_at_the_log():
    [finding] = diagnose.pod_findings([CRASH_LOOP_SUBMITTER])
    assert finding.title == "container keeps crashing"
    assert "submitter" in finding.message
    assert "--previous" in finding.fix


def test_healthy_pods_say_nothing():
    assert diagnose.pod_findings([HEALTHY_HEAD]) == []


def test_submitter_backoff_from_status_and_event():
    findings = diagnose.diagnose(SUBMISSION_FAILED, [CRASH_LOOP_SUBMITTER], [BACKOFF_LIMIT_EXCEEDED])
    assert "submitter gave up" in titles(findings)
    assert "submission failed" in titles(findings)
    assert all(f.fix for f in findings)


def test_runtime_env_failure_from_the_status_message():
    findings = diagnose.status_findings(RUNTIME_ENV_FAILED)
    assert titles(findings) == ["runtime environment failed"], "not also reported as a generic training failure"
    assert "torch==2.13.0" in findings[0].message
    assert "--torch-index-url" in findings[0].fix and "PyPI" in findings[0].fix


def test_runtime_env_failure_from_the_driver_log():
    tail = [
        "2026-11-25 20:02:01,000 INFO cli.py:39 -- Job submitted",
        "ray.exceptions.RuntimeEnvSetupError: Failed to set up runtime environment.",
    ]
    findings = diagnose.status_findings(APP_FAILED, tail)
    assert titles(findings) == ["runtime environment failed"]


def test_a_failed_training_whose_log_mentions_the_runtime_env_is_a_training_failure():
    """Every job's log starts with Ray's 'Runtime env is setting up.': that alone is no runtime env failure."""
    findings = diagnose.status_findings(K.APP_FAILED_AS_SEEN, K.APP_FAILED_AS_SEEN["status"]["message"].splitlines())
    assert titles(findings) == ["training failed"]
    # KubeRay's first line and its quoted log's last, the error itself: not the first 500 characters of the log.
    assert "(Job entrypoint command failed with exit code 1" in findings[0].message
    assert "… RuntimeError: AKS_RAY_E2E the training failed on purpose)" in findings[0].message
    assert "--target local" in findings[0].fix


@pytest.mark.parametrize(
    ("job", "title", "fix_word"),
    [
        (DEADLINE_EXCEEDED, "ran too long", "--timeout"),
        (PRE_RUNNING_DEADLINE, "cluster never became ready", "--start-timeout"),
        (APP_FAILED, "training failed", "--target local"),
        (SUBMISSION_FAILED, "submission failed", "submitter"),
        (K.GRACE_PERIOD_FAILED, "follow stream ended early", "job-driver-"),
        (K.STATUS_CHECK_TIMEOUT, "dashboard unreachable", "--head-memory"),
        (K.VALIDATION_FAILED, "RayJob refused", "--job-name"),
    ],
    ids=["active-deadline", "pre-running-deadline", "app-failed", "submission-failed", "grace-period", "status-check", "validation"],
)
def test_each_failure_reason_has_its_own_fix(job, title, fix_word):
    findings = diagnose.status_findings(job)
    assert titles(findings) == [title]
    assert fix_word in findings[0].fix


def test_never_ready_and_ran_too_long_have_different_fixes():
    """The two deadlines are separate findings: one points at the cluster's start, the other at the training's length."""
    (never_ready,) = diagnose.status_findings(PRE_RUNNING_DEADLINE)
    (too_long,) = diagnose.status_findings(DEADLINE_EXCEEDED)
    assert "--start-timeout" in never_ready.fix and "--start-timeout" not in too_long.fix
    assert "--timeout" in too_long.fix and "--timeout" not in never_ready.fix.replace("--start-timeout", "")


def test_the_grace_period_finding_says_the_training_may_be_fine():
    (finding,) = diagnose.status_findings(K.GRACE_PERIOD_FAILED)
    assert "not the training's verdict" in finding.message and "result.json" in finding.fix


@pytest.mark.parametrize(
    ("message", "fix_word"),
    [
        ("The RayJob metadata is invalid: RayJob name should be no more than 47 characters", "--job-name"),
        ("The RayJob metadata is invalid: RayJob name should be a valid DNS1035 label: [a DNS-1035 label must consist of]", "--job-name"),
        ("The RayJob spec is invalid: authOptions.mode is 'token' but minimum Ray version is 2.52.0, got 2.40.0", "--ray-version"),
        ("The RayJob spec is invalid: activeDeadlineSeconds must be a positive integer", "--timeout"),
    ],
)
def test_validation_messages_of_kuberay_name_their_option(message, fix_word):
    assert fix_word in diagnose.validation_fix(message)


@pytest.mark.parametrize("job", [RUNNING, SUCCEEDED, None], ids=["running", "succeeded", "gone"])
def test_healthy_or_missing_rayjob_says_nothing(job):
    assert diagnose.status_findings(job) == []


def test_annotation_is_one_line_with_the_fix():
    [finding] = diagnose.pod_findings([OOM_KILLED_WORKER])
    text = finding.annotation()
    assert text.startswith("The Ray worker pod aks-ray/")
    assert " Fix: raise --memory-per-worker" in text


def test_diagnose_deduplicates_and_orders_specific_first():
    findings = diagnose.diagnose(
        PRE_RUNNING_DEADLINE, [IMAGE_PULL_BACKOFF, IMAGE_PULL_BACKOFF], [FAILED_SCHEDULING_MEMORY, FAILED_SCHEDULING_MEMORY]
    )
    assert titles(findings) == ["image pull failed", "not enough room in the cluster", "cluster never became ready"]


def test_rays_memory_monitor_is_named_with_the_pod_and_its_option():
    findings = diagnose.diagnose(APP_FAILED, [HEAD_AT_10_244_0_4], [], RAY_OOM_LOG)
    assert titles(findings) == ["out of memory"], "not also a generic training failure"
    [finding] = findings
    assert "3 worker(s) on the Ray head pod aks-ray/" in finding.message
    assert "1.90GB used of a 2.00GB limit" in finding.message
    assert "--head-memory" in finding.fix


def test_rays_memory_monitor_without_the_pod_still_names_the_node():
    [finding] = diagnose.ray_oom_findings(RAY_OOM_LOG[1:])
    assert "the Ray node 10.244.0.4 (1.90GB used of a 2.00GB limit)" in finding.message
    assert "--head-memory or --memory-per-worker" in finding.fix


def test_kuberays_own_warnings_are_passed_on_once():
    invalid = K.event(
        "RayJob",
        K.JOB,
        "InvalidRayJobSpec",
        "The RayJob spec is invalid: spec.shutdownAfterJobFinishes and spec.deletionStrategy.deletionRules are mutually exclusive",
    )
    normal = K.event("RayJob", K.JOB, "CreatedRayCluster", f"Created RayCluster aks-ray/{K.CLUSTER}", type_="Normal")
    findings = diagnose.event_findings([invalid, invalid, normal])
    assert titles(findings) == ["KubeRay: InvalidRayJobSpec"]
    assert "mutually exclusive" in findings[0].message
