"""phases.py: the run's phases from the RayJob, its pods and the training's records, as a real run left them.

kuberay_runs/*.json are what `aks-ray collect` gathered from two kubeconfig runs
on the local cluster (KubeRay 1.7.0): one that succeeded (head and worker each
restarted once, a K8sJobMode submitter) and one whose image could not be pulled.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path

import pytest

from aks_ray import collect, config, phases, report
from aks_ray.metrics import parse_log
from aks_ray.rundir import RunDir, Timings

RUNS = Path(__file__).parent / "kuberay_runs"


def load(name: str) -> dict:
    return json.loads((RUNS / f"{name}.json").read_text(encoding="utf-8"))


def utc(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.timezone.utc).timestamp()


CREATED = utc("2026-12-02T00:32:26")
DRIVER = {"kind": "driver", "started_at": utc("2026-12-02T00:35:05")}


def as_dict(found: list[phases.JobPhase]) -> dict[str, float]:
    return {p.phase: p.seconds for p in found}


def test_a_successful_run_has_every_phase_in_order_counted_from_the_rayjob_creation():
    run = load("succeeded")
    found = phases.job_phases(run["rayjob"], run["pods"], run["epochs"], DRIVER, collected_at=utc("2026-12-02T00:37:41"))
    assert [p.phase for p in found] == list(phases.ORDER)
    assert as_dict(found) == {
        "RayJob created": 0.0,
        "Ray pods scheduled": 20.0,  # the worker, created after the head
        "images ready": 21.0,  # the worker's wait-gcs-ready init container started
        "containers running": 98.0,  # the worker's second start, after its first exited
        "Ray head ready": 106.0,
        "Ray cluster ready": 114.0,
        "submitter started": 115.0,
        "job submitted": 119.0,
        "runtime env ready": 159.0,
        "Ray Train workers up": pytest.approx(289.899, abs=0.001),
        "first epoch done": pytest.approx(290.93, abs=0.001),
        "last epoch done": pytest.approx(290.93, abs=0.001),
        "job ended": 313.0,
        "outputs collected": 315.0,
    }
    assert found[0].at == "2026-12-02T00:32:26Z"
    assert found[-1].to_json() == {"phase": "outputs collected", "seconds": 315.0, "at": "2026-12-02T00:37:41Z"}


def test_a_run_whose_image_never_came_has_only_what_happened():
    run = load("image-pull-failed")
    found = as_dict(phases.job_phases(run["rayjob"], run["pods"], [], None))
    # Both pods were scheduled (the worker 24 s after the head); no container ever started,
    # the head never got Ready (its condition is False), Ray never got the job.
    assert found == {"RayJob created": 0.0, "Ray pods scheduled": 24.0, "job ended": 120.0}


def test_a_job_with_no_pods_and_no_status_gives_its_creation_alone():
    rayjob = {"metadata": {"name": "j", "creationTimestamp": "2026-12-02T00:32:26Z"}}
    assert as_dict(phases.job_phases(rayjob, [], [], None)) == {"RayJob created": 0.0}


@pytest.mark.parametrize(
    "rayjob",
    [None, {}, {"metadata": {}}, {"metadata": {"creationTimestamp": "not a time"}}],
    ids=["gone", "empty", "no-creation-time", "garbled"],
)
def test_with_nothing_to_count_from_there_are_no_phases_and_no_error(rayjob):
    run = load("succeeded")
    assert phases.job_phases(rayjob, run["pods"], run["epochs"], DRIVER) == []


def test_a_head_no_longer_ready_falls_back_on_the_rayjobs_copy_of_its_condition():
    run = load("succeeded")
    head = next(p for p in run["pods"] if p["metadata"]["labels"].get("ray.io/node-type") == "head")
    for condition in head["status"]["conditions"]:
        if condition["type"] == "Ready":
            condition.update(status="False", lastTransitionTime="2026-12-02T00:37:40+00:00", reason="PodCompleted")
    found = as_dict(phases.job_phases(run["rayjob"], run["pods"], [], None))
    assert found["Ray head ready"] == 106.0  # status.rayClusterStatus's HeadPodReady, not the pod's time of going unready


def test_a_pod_that_has_not_started_holds_back_the_cluster_wide_phases():
    run = load("succeeded")
    pods = copy.deepcopy(run["pods"])
    worker = next(p for p in pods if p["metadata"]["labels"].get("ray.io/node-type") == "worker")
    worker["status"] = {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]}
    rayjob = copy.deepcopy(run["rayjob"])
    rayjob["status"]["rayClusterStatus"]["conditions"] = []
    found = as_dict(phases.job_phases(rayjob, pods, [], None))
    assert "Ray pods scheduled" not in found and "images ready" not in found and "containers running" not in found
    assert "Ray cluster ready" not in found
    assert found["Ray head ready"] == 106.0


def test_the_python_clients_datetimes_read_as_the_api_servers_strings():
    run = load("succeeded")
    rayjob = copy.deepcopy(run["rayjob"])
    rayjob["metadata"]["creationTimestamp"] = dt.datetime(2026, 12, 2, 0, 32, 26, tzinfo=dt.timezone.utc)
    assert as_dict(phases.job_phases(rayjob, run["pods"], [], None))["Ray head ready"] == 106.0


def test_the_records_come_from_the_training_log_as_collect_reads_them():
    run = load("succeeded")
    lines = ["Running entrypoint for job x: python _aks_ray_entrypoint.py", "AKS_RAY_METRICS " + json.dumps(DRIVER)]
    lines += ["AKS_RAY_METRICS " + json.dumps(e) for e in run["epochs"]]
    training = parse_log(lines)
    found = as_dict(phases.job_phases(run["rayjob"], run["pods"], training.epochs, training.driver))
    assert found["runtime env ready"] == 159.0 and found["first epoch done"] == pytest.approx(290.93, abs=0.001)


def test_timings_json_keeps_the_phases_beside_the_steps_seconds(tmp_path: Path):
    run_dir = RunDir(tmp_path)
    run_dir.record_phase("wait", 300.0)
    run = load("succeeded")
    run_dir.save_job_phases([p.to_json() for p in phases.job_phases(run["rayjob"], run["pods"], run["epochs"], DRIVER)])
    run_dir.record_phase("cleanup", 1.5)  # a later step's record must not drop them
    doc = json.loads((tmp_path / "timings.json").read_text())
    assert doc["wait"] == 300.0 and doc["cleanup"] == 1.5 and doc["total"] == 301.5
    assert phases.seconds_of(doc["job_phases"])["job ended"] == 313.0
    assert run_dir.timings().phases == {"wait": 300.0, "cleanup": 1.5}


def test_the_summary_counts_the_epochs_as_training_and_the_start_up_on_its_own_line(tmp_path: Path):
    run = load("succeeded")
    found = [p.to_json() for p in phases.job_phases(run["rayjob"], run["pods"], run["epochs"], DRIVER)]
    # The training's final record: from before Ray Train's start to the model's hand-back (the run's own figure).
    final = {"test_accuracy": 0.562, "train_seconds": 134.927, "samples_per_second": 7.4}
    doc = {"status": "SUCCEEDED", "dataset": {"name": "mnist-sample"}, "epochs": run["epochs"], "final": final}
    outcome = report.RunOutcome(target="kubeconfig", status="SUCCEEDED", job_name="aks-ray-2a453e")
    text = report.summary_markdown(doc, outcome, Timings({"wait": 317.3}, found), tmp_path)
    assert "| training time (the epochs) | 1.0 s |" in text
    assert "| throughput (the epochs) | 1,214 samples/s |" in text
    assert "| start-up (RayJob created to the first epoch's start) | 289.9 s |" in text
    assert "134.9" not in text and "| 7 samples/s" not in text
    assert "| Ray head ready | 106.0 | head pod's Ready condition (else the RayJob's HeadPodReady) |" in text
    assert text.index("### Phases of the run") < text.index("### Timings")


def test_a_summary_without_phases_has_no_start_up_line(tmp_path: Path):
    doc = {"status": "FAILED", "dataset": None, "epochs": [], "final": {"test_accuracy": None, "train_seconds": None}}
    text = report.summary_markdown(doc, report.RunOutcome(target="local", status="FAILED"), Timings(), tmp_path)
    assert "start-up" not in text and "### Phases of the run" not in text
    assert "| training time (the epochs) | – s |" in text


def test_collect_records_the_phases_from_the_objects_and_job_log_it_collected(tmp_path: Path):
    cfg = config.load({}, {"AKS_RAY_OUTPUT_DIR": str(tmp_path / "out"), "AKS_RAY_TARGET": "kubeconfig"})
    run = load("succeeded")
    cfg.run_dir.record_phase("wait", 317.3)
    log = ["AKS_RAY_METRICS " + json.dumps(DRIVER), *("(RayTrainWorker pid=1) AKS_RAY_METRICS " + json.dumps(e) for e in run["epochs"])]
    cfg.run_dir.write_job_log("\n".join(log))
    collect.record_job_phases(cfg, run["rayjob"], run["pods"], collected_at=utc("2026-12-02T00:37:41"))
    recorded = phases.seconds_of(json.loads((tmp_path / "out/timings.json").read_text())["job_phases"])
    assert recorded["runtime env ready"] == 159.0 and recorded["outputs collected"] == 315.0
    assert len(recorded) == len(phases.ORDER)


def test_collect_survives_objects_of_a_shape_never_seen(tmp_path: Path):
    cfg = config.load({}, {"AKS_RAY_OUTPUT_DIR": str(tmp_path / "out"), "AKS_RAY_TARGET": "kubeconfig"})
    odd = {"metadata": {"creationTimestamp": "2026-12-02T00:32:26Z"}, "status": {"rayClusterStatus": {"conditions": "not a list"}}}
    collect.record_job_phases(cfg, odd, [{"metadata": "not a dict"}], collected_at=utc("2026-12-02T00:37:41"))
    assert cfg.run_dir.timings().job_phases == []


# ------------------------------------------------------------------ the local target

HEAD_STARTING = utc("2026-12-02T07:00:00")


def local_moments(**later: float) -> dict[str, float]:
    return {phases.HEAD_STARTING: HEAD_STARTING, **{name: HEAD_STARTING + s for name, s in later.items()}}


def test_the_local_phases_count_from_the_head_start_and_take_the_job_times_from_the_jobs_api():
    moments = local_moments()
    moments[phases.HEAD_READY] = HEAD_STARTING + 4.2
    moments[phases.OUTPUTS_COLLECTED] = HEAD_STARTING + 40.0
    moments[phases.HEAD_STOPPED] = HEAD_STARTING + 41.5
    # The Jobs API's JobDetails: milliseconds since the epoch.
    job_info = {"start_time": int((HEAD_STARTING + 5.0) * 1000), "end_time": int((HEAD_STARTING + 38.0) * 1000)}
    driver = {"kind": "driver", "started_at": HEAD_STARTING + 7.5}
    epochs = [
        {"kind": "epoch", "epoch": 1, "seconds": 1.5, "finished_at": HEAD_STARTING + 30.0},
        {"kind": "epoch", "epoch": 2, "seconds": 1.4, "finished_at": HEAD_STARTING + 31.4},
    ]
    found = phases.local_job_phases(moments, job_info, epochs, driver)
    assert [p.phase for p in found] == list(phases.LOCAL_ORDER)
    assert as_dict(found) == {
        "Ray head starting": 0.0,
        "Ray head ready": 4.2,
        "job submitted": 5.0,
        "runtime env ready": 7.5,
        "Ray Train workers up": 28.5,
        "first epoch done": 30.0,
        "last epoch done": 31.4,
        "job ended": 38.0,
        "outputs collected": 40.0,
        "Ray head stopped": 41.5,
    }
    assert found[0].at == "2026-12-02T07:00:00Z"
    assert phases.startup_seconds([p.to_json() for p in found]) == 28.5
    assert phases.origin([p.to_json() for p in found]) == "Ray head starting"


class JobDetailsLike:
    """Ray's JobDetails is an object with attributes, not a dict; an unfinished job has end_time None."""

    start_time = int((HEAD_STARTING + 6.0) * 1000)
    end_time = None


def test_a_local_run_cut_short_lists_what_it_reached_and_nothing_without_its_origin():
    found = phases.local_job_phases(local_moments(**{phases.HEAD_READY: 3.0}), JobDetailsLike())
    assert as_dict(found) == {"Ray head starting": 0.0, "Ray head ready": 3.0, "job submitted": 6.0}
    assert phases.local_job_phases({phases.HEAD_READY: HEAD_STARTING}, None) == []
    assert phases.local_job_phases(local_moments(), {"start_time": 0, "end_time": None}) == [
        phases.JobPhase("Ray head starting", 0.0, "2026-12-02T07:00:00Z")
    ]


def test_the_local_summary_names_its_origin_and_its_own_sources(tmp_path: Path):
    epochs = [{"kind": "epoch", "epoch": 1, "seconds": 2.0, "finished_at": HEAD_STARTING + 20.0}]
    found = phases.local_job_phases(local_moments(**{phases.HEAD_READY: 4.0}), None, epochs)
    doc = {"status": "SUCCEEDED", "dataset": None, "epochs": [], "final": {}}
    outcome = report.RunOutcome(target="local", status="SUCCEEDED")
    text = report.summary_markdown(doc, outcome, Timings({"train": 25.0}, [p.to_json() for p in found]), tmp_path)
    assert "| start-up (Ray head starting to the first epoch's start) | 18.0 s |" in text
    assert "in seconds since: Ray head starting." in text
    assert "| Ray head ready | 4.0 | aks-ray, once the head's dashboard answered |" in text
