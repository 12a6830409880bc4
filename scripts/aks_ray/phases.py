"""When each phase of a Kubernetes run happened, from the timestamps the cluster and the job wrote.

The CLI's own step durations (timings.json's `operator`, `submit`, `wait`, ...)
say how long the CLI waited, polling included. These say what the run spent its
time on: the API server's timestamps on the RayJob and its pods, the RayJob's
status (KubeRay 1.7's RayJobStatus), and the wall-clock times the training
prints in its AKS_RAY_METRICS records (training/train_mnist.py). Each phase is
given in seconds since the RayJob was created.

The local target (local.py) has no RayJob and no pods: its phases count from the
moment `aks-ray` began starting its Ray head, and take the job's submission and
end from the Ray Jobs API's record of it (local_job_phases, LOCAL_ORDER).

Pure functions of the objects `collect` reads before `cleanup` deletes them.
Whatever a run did not get to (a job that failed before any pod started) is
left out: the list is partial, never an error. Kubernetes timestamps have
one-second resolution; the training's and the collector's clocks are their
machines' own, so on a cluster whose clocks drift the late phases drift with them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# The phases in the order a run goes through them; timings.json and summary.md list them so.
RAYJOB_CREATED = "RayJob created"
PODS_SCHEDULED = "Ray pods scheduled"
IMAGES_READY = "images ready"
CONTAINERS_RUNNING = "containers running"
HEAD_READY = "Ray head ready"
CLUSTER_READY = "Ray cluster ready"
SUBMITTER_STARTED = "submitter started"
JOB_SUBMITTED = "job submitted"
RUNTIME_ENV_READY = "runtime env ready"
WORKERS_UP = "Ray Train workers up"
FIRST_EPOCH_DONE = "first epoch done"
LAST_EPOCH_DONE = "last epoch done"
JOB_ENDED = "job ended"
OUTPUTS_COLLECTED = "outputs collected"

ORDER = (
    RAYJOB_CREATED,
    PODS_SCHEDULED,
    IMAGES_READY,
    CONTAINERS_RUNNING,
    HEAD_READY,
    CLUSTER_READY,
    SUBMITTER_STARTED,
    JOB_SUBMITTED,
    RUNTIME_ENV_READY,
    WORKERS_UP,
    FIRST_EPOCH_DONE,
    LAST_EPOCH_DONE,
    JOB_ENDED,
    OUTPUTS_COLLECTED,
)

# What each phase's time is taken from: the summary's table says it, so nobody has to guess.
SOURCES = {
    RAYJOB_CREATED: "RayJob metadata.creationTimestamp",
    PODS_SCHEDULED: "last Ray pod's PodScheduled condition",
    IMAGES_READY: "last Ray pod's first container start (its image was on the node)",
    CONTAINERS_RUNNING: "last Ray container's current start (after any restart)",
    HEAD_READY: "head pod's Ready condition (else the RayJob's HeadPodReady)",
    CLUSTER_READY: "last Ray pod's Ready condition (else the RayJob's RayClusterProvisioned)",
    SUBMITTER_STARTED: "ray-job-submitter container's first start",
    JOB_SUBMITTED: "RayJob status.rayJobInfo.startTime (the Ray job's submission)",
    RUNTIME_ENV_READY: "the driver's first record (its runtime env was set up)",
    WORKERS_UP: "first epoch's start on the Ray Train workers",
    FIRST_EPOCH_DONE: "first epoch record's finished_at",
    LAST_EPOCH_DONE: "last epoch record's finished_at",
    JOB_ENDED: "RayJob status.endTime",
    OUTPUTS_COLLECTED: "the collector, once logs and model were copied",
}

# The local target's own ends: its origin and the head's stop (the other phases are the ones above).
HEAD_STARTING = "Ray head starting"
HEAD_STOPPED = "Ray head stopped"

LOCAL_ORDER = (
    HEAD_STARTING,
    HEAD_READY,
    JOB_SUBMITTED,
    RUNTIME_ENV_READY,
    WORKERS_UP,
    FIRST_EPOCH_DONE,
    LAST_EPOCH_DONE,
    JOB_ENDED,
    OUTPUTS_COLLECTED,
    HEAD_STOPPED,
)

LOCAL_SOURCES = {
    **SOURCES,
    HEAD_STARTING: "aks-ray, as it ran `ray start`",
    HEAD_READY: "aks-ray, once the head's dashboard answered",
    JOB_SUBMITTED: "the Ray Jobs API's start_time for the job",
    JOB_ENDED: "the Ray Jobs API's end_time for the job",
    HEAD_STOPPED: "aks-ray, once every process of the head had exited",
}


def sources(target: str) -> Mapping[str, str]:
    """What each phase's time is taken from, on this target."""
    return LOCAL_SOURCES if target == "local" else SOURCES


SUBMITTER_CONTAINER = "ray-job-submitter"  # KubeRay's name for it, in a Job's pod or (SidecarMode) the head's


@dataclass(frozen=True)
class JobPhase:
    phase: str
    seconds: float  # since the RayJob was created
    at: str  # the moment itself, ISO 8601 UTC

    def to_json(self) -> dict[str, Any]:
        return {"phase": self.phase, "seconds": self.seconds, "at": self.at}


def timestamp(value: Any) -> float | None:
    """Seconds since the epoch from an API timestamp ('...Z', '...+00:00', a client's datetime); None if absent or unreadable."""
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, str) and value:
        try:
            moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    if moment.tzinfo is None:  # the API server writes UTC
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.timestamp()


def _seconds(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _latest(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _status(obj: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return (obj or {}).get("status") or {}


def condition_true_since(conditions: Sequence[Mapping[str, Any]] | None, kind: str) -> float | None:
    """When a condition of this type last became True; None if it is not True now (then its time says when it stopped)."""
    for condition in conditions or []:
        if condition.get("type") == kind and str(condition.get("status")) == "True":
            return timestamp(condition.get("lastTransitionTime"))
    return None


def _container_starts(status: Mapping[str, Any]) -> list[float]:
    """Every start of one container the pod status still records: its current run and the one before a restart."""
    starts = []
    for block in (status.get("state") or {}, status.get("lastState") or {}):
        for phase in ("running", "terminated"):
            started = timestamp((block.get(phase) or {}).get("startedAt"))
            if started is not None:
                starts.append(started)
    return starts


def _current_start(status: Mapping[str, Any]) -> float | None:
    state = status.get("state") or {}
    return timestamp((state.get("running") or state.get("terminated") or {}).get("startedAt"))


def _node_type(pod: Mapping[str, Any]) -> str:
    return ((pod.get("metadata") or {}).get("labels") or {}).get("ray.io/node-type", "")


def _pod_first_start(pod: Mapping[str, Any]) -> float | None:
    status = _status(pod)
    starts = [
        s for cs in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []) for s in _container_starts(cs)
    ]
    return min(starts) if starts else None


def _pod_running_since(pod: Mapping[str, Any]) -> float | None:
    """When the pod's main containers were all in their current run (None until every one has started)."""
    statuses = _status(pod).get("containerStatuses") or []
    ray = [s for s in statuses if s.get("name") != SUBMITTER_CONTAINER] or statuses
    starts = [_current_start(s) for s in ray]
    return None if not starts or None in starts else max(s for s in starts if s is not None)


def _all_or_none(pods: Sequence[Mapping[str, Any]], moment) -> float | None:
    """The latest of `moment(pod)` over the pods, only when every pod has one: the phase is done for the whole cluster."""
    moments = [moment(pod) for pod in pods]
    return None if not moments or None in moments else _latest(moments)


def pod_moments(pods: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """When the last Ray pod was scheduled, had its image, ran its containers; the head's and cluster's readiness; the submitter's start."""
    ray_pods = [p for p in pods if _node_type(p) in ("head", "worker")]
    moments: dict[str, float | None] = {
        PODS_SCHEDULED: _all_or_none(ray_pods, lambda p: condition_true_since(_status(p).get("conditions"), "PodScheduled")),
        IMAGES_READY: _all_or_none(ray_pods, _pod_first_start),
        CONTAINERS_RUNNING: _all_or_none(ray_pods, _pod_running_since),
        HEAD_READY: _latest(condition_true_since(_status(p).get("conditions"), "Ready") for p in ray_pods if _node_type(p) == "head"),
    }
    if ray_pods:
        moments[CLUSTER_READY] = _all_or_none(ray_pods, lambda p: condition_true_since(_status(p).get("conditions"), "Ready"))
    submitter_starts = [
        start
        for pod in pods
        for cs in _status(pod).get("containerStatuses") or []
        if cs.get("name") == SUBMITTER_CONTAINER
        for start in _container_starts(cs)
    ]
    moments[SUBMITTER_STARTED] = min(submitter_starts) if submitter_starts else None
    return {name: value for name, value in moments.items() if value is not None}


def rayjob_moments(rayjob: Mapping[str, Any] | None) -> dict[str, float]:
    """The RayJob's own timestamps: its creation, its cluster's readiness, the Ray job's submission and the end."""
    status = _status(rayjob)
    cluster = status.get("rayClusterStatus") or {}
    info = status.get("rayJobInfo") or {}
    moments = {
        RAYJOB_CREATED: timestamp(((rayjob or {}).get("metadata") or {}).get("creationTimestamp")),
        HEAD_READY: condition_true_since(cluster.get("conditions"), "HeadPodReady"),
        CLUSTER_READY: condition_true_since(cluster.get("conditions"), "RayClusterProvisioned"),
        JOB_SUBMITTED: timestamp(info.get("startTime")),
        JOB_ENDED: timestamp(status.get("endTime")) or timestamp(info.get("endTime")),
    }
    return {name: value for name, value in moments.items() if value is not None}


def training_moments(epochs: Sequence[Mapping[str, Any]], driver: Mapping[str, Any] | None) -> dict[str, float]:
    """From the training's records: the driver's start, the first epoch's start and the first and last epochs' ends."""
    moments: dict[str, float | None] = {RUNTIME_ENV_READY: _seconds((driver or {}).get("started_at"))}
    timed = sorted(
        (e for e in epochs if _seconds(e.get("finished_at")) is not None),
        key=lambda e: (_seconds(e.get("epoch")) or 0, _seconds(e.get("finished_at")) or 0),
    )
    if timed:
        first, last = timed[0], timed[-1]
        finished = _seconds(first.get("finished_at"))
        took = _seconds(first.get("seconds"))
        moments[WORKERS_UP] = None if finished is None or took is None else finished - took
        moments[FIRST_EPOCH_DONE] = finished
        moments[LAST_EPOCH_DONE] = _seconds(last.get("finished_at"))
    return {name: value for name, value in moments.items() if value is not None}


def job_phases(
    rayjob: Mapping[str, Any] | None,
    pods: Sequence[Mapping[str, Any]],
    epochs: Sequence[Mapping[str, Any]] = (),
    driver: Mapping[str, Any] | None = None,
    collected_at: float | None = None,
) -> list[JobPhase]:
    """The run's phases in ORDER, each in seconds since the RayJob was created; [] when there is no creation time to count from.

    The pods' own conditions win over the RayJob's copies of the cluster's (they are the source);
    the RayJob's fill in what pods no longer show (a head whose Ready went False as it stopped).
    """
    moments = {**rayjob_moments(rayjob), **pod_moments(pods), **training_moments(epochs, driver)}
    if collected_at is not None:
        moments[OUTPUTS_COLLECTED] = collected_at
    return _since_origin(moments, ORDER)


def local_job_phases(
    aks_ray_moments: Mapping[str, float],
    job_info: Any = None,
    epochs: Sequence[Mapping[str, Any]] = (),
    driver: Mapping[str, Any] | None = None,
) -> list[JobPhase]:
    """The local target's phases in LOCAL_ORDER, in seconds since HEAD_STARTING; [] without that origin.

    `aks_ray_moments` are the ones local.py saw itself (HEAD_STARTING, HEAD_READY,
    OUTPUTS_COLLECTED, HEAD_STOPPED); `job_info` is the Jobs API's JobDetails (or its
    dict), whose start_time and end_time are milliseconds since the epoch.
    """
    moments = {**training_moments(epochs, driver), **aks_ray_moments}
    for name, key in ((JOB_SUBMITTED, "start_time"), (JOB_ENDED, "end_time")):
        value = _seconds(job_info.get(key) if isinstance(job_info, Mapping) else getattr(job_info, key, None))
        if value:  # Ray writes 0 or None for a time it has not reached
            moments[name] = value / 1000.0
    return _since_origin(moments, LOCAL_ORDER)


def _since_origin(moments: Mapping[str, float], order: Sequence[str]) -> list[JobPhase]:
    """The moments present, in `order`, in seconds since the first name of `order` (none when that one is missing)."""
    origin = moments.get(order[0])
    if origin is None:
        return []
    return [JobPhase(name, round(moments[name] - origin, 3), _iso(moments[name])) for name in order if name in moments]


def origin(phases: Iterable[Mapping[str, Any]]) -> str | None:
    """The phase the others count from (the list's first: RayJob created, or Ray head starting)."""
    for p in phases:
        if isinstance(p, Mapping) and "phase" in p:
            return str(p["phase"])
    return None


def _iso(seconds: float) -> str:
    moment = dt.datetime.fromtimestamp(seconds, dt.timezone.utc)
    return moment.isoformat(timespec="milliseconds" if moment.microsecond else "seconds").replace("+00:00", "Z")


def seconds_of(phases: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """timings.json's `job_phases` list as {phase: seconds since the origin (the RayJob's creation, or the local head's start)}."""
    return {
        str(p["phase"]): float(p["seconds"])
        for p in phases
        if isinstance(p, Mapping) and "phase" in p and _seconds(p.get("seconds")) is not None
    }


def startup_seconds(phases: Iterable[Mapping[str, Any]]) -> float | None:
    """The start-up: from the origin (the RayJob's creation, the local head's start) to the first epoch's start on the workers."""
    return seconds_of(phases).get(WORKERS_UP)
