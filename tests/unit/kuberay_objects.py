"""Objects in the shape the API server returns them for a KubeRay 1.7 run (camelCase JSON).

The RayJob statuses follow KubeRay 1.7's RayJobStatus (ray.io_rayjobs.yaml; the
integration test validates every one against the CRD's status schema), the pods
and events follow core/v1 as `kubectl get -o json` shows them.
"""

from __future__ import annotations

import copy
from typing import Any

NAMESPACE = "aks-ray"
JOB = "aks-ray-1234-ab12cd"
CLUSTER = f"{JOB}-x7k2p"
HEAD_POD = f"{CLUSTER}-head-5vq8d"
WORKER_POD = f"{CLUSTER}-train-worker-m2zlf"
SUBMITTER_POD = f"{JOB}-8hj4k"


def rayjob(**status: Any) -> dict[str, Any]:
    base_status = {
        "jobId": f"{JOB}-tp9wx",
        "rayClusterName": CLUSTER,
        "dashboardURL": f"{JOB}-head-svc.{NAMESPACE}.svc.cluster.local:8265",
        "startTime": "2026-11-25T20:00:00Z",
        "observedGeneration": 1,
        "failed": 0,
        "succeeded": 0,
        "rayClusterStatus": {"desiredCPU": "2", "desiredMemory": "5Gi", "desiredWorkerReplicas": 1, "state": "ready"},
    }
    base_status.update(status)
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayJob",
        "metadata": {"name": JOB, "namespace": NAMESPACE, "uid": "0f1c1c6e-4d7e-4a43-9b54-2a3f1d7a9e01", "generation": 1},
        "spec": {"entrypoint": "python train_mnist.py", "submissionMode": "K8sJobMode"},
        "status": base_status,
    }


RUNNING = rayjob(jobDeploymentStatus="Running", jobStatus="RUNNING", rayJobInfo={"startTime": "2026-11-25T20:01:10Z"})
INITIALIZING = rayjob(jobDeploymentStatus="Initializing", jobStatus="")
SUCCEEDED = rayjob(
    jobDeploymentStatus="Complete",
    jobStatus="SUCCEEDED",
    succeeded=1,
    endTime="2026-11-25T20:04:00Z",
    rayJobInfo={"startTime": "2026-11-25T20:01:10Z", "endTime": "2026-11-25T20:03:58Z"},
)
APP_FAILED = rayjob(
    jobDeploymentStatus="Failed",
    jobStatus="FAILED",
    reason="AppFailed",
    failed=1,
    message=(
        "Job entrypoint command failed with exit code 1, last available logs (truncated to 20,000 chars):\n"
        "ZeroDivisionError: division by zero\n"
    ),
    endTime="2026-11-25T20:03:00Z",
)
# The message as KubeRay 1.7 wrote it for the e2e suite's failing training (2026-12-02, local cluster):
# the quoted log starts with Ray's "Runtime env is setting up." line, as every job's does.
APP_FAILED_AS_SEEN = rayjob(
    jobDeploymentStatus="Failed",
    jobStatus="FAILED",
    reason="AppFailed",
    failed=1,
    message=(
        "Job entrypoint command failed with exit code 1, last available logs (truncated to 20,000 chars):\n"
        "2026-12-02 07:00:34,603\tINFO job_manager.py:581 -- Runtime env is setting up.\n"
        "Running entrypoint for job aks-ray-f60cdd-sxmtt: python _aks_ray_entrypoint.py\n"
        "AKS_RAY_E2E before the failure\n"
        "Traceback (most recent call last):\n"
        '  File "/tmp/ray/session_2026-12-02_07-00-00_348450_1/runtime_resources/working_dir_files/'
        '_ray_pkg_31b4a2334ac4d359/train_fail.py", line 6, in <module>\n'
        "    load()\n"
        '  File "/tmp/ray/session_2026-12-02_07-00-00_348450_1/runtime_resources/working_dir_files/'
        '_ray_pkg_31b4a2334ac4d359/train_fail.py", line 5, in load\n'
        '    raise RuntimeError("AKS_RAY_E2E the training failed on purpose")\n'
        "RuntimeError: AKS_RAY_E2E the training failed on purpose\n"
    ),
    endTime="2026-12-02T07:01:42Z",
)
RUNTIME_ENV_FAILED = rayjob(
    jobDeploymentStatus="Failed",
    jobStatus="FAILED",
    reason="AppFailed",
    failed=1,
    message=(
        "runtime_env setup failed: Failed to set up runtime environment.\n"
        "Could not create the actor because its associated runtime env failed to be created.\n"
        "ERROR: Could not find a version that satisfies the requirement torch==2.13.0 (from versions: none)"
    ),
)
SUBMISSION_FAILED = rayjob(
    jobDeploymentStatus="Failed",
    jobStatus="",
    reason="SubmissionFailed",
    failed=1,
    message="Job submission has failed. Reason: BackoffLimitExceeded. Message: Job has reached the specified backoff limit",
)
DEADLINE_EXCEEDED = rayjob(
    jobDeploymentStatus="Failed",
    jobStatus="RUNNING",
    reason="DeadlineExceeded",
    failed=1,
    message="The RayJob has passed the activeDeadlineSeconds. StartTime: 2026-11-25 20:00:00 +0000 UTC. ActiveDeadlineSeconds: 600",
)
PRE_RUNNING_DEADLINE = rayjob(
    jobDeploymentStatus="Failed",
    jobStatus="",
    reason="PreRunningDeadlineExceeded",
    failed=1,
    message="The RayJob has passed the preRunningDeadlineSeconds. StartTime: 2026-11-25 20:00:00 +0000 UTC. PreRunningDeadlineSeconds: 600",
)
STOPPED = rayjob(jobDeploymentStatus="Complete", jobStatus="STOPPED", endTime="2026-11-25T20:04:00Z")
COMPLETE_BUT_FAILED = rayjob(jobDeploymentStatus="Complete", jobStatus="FAILED", endTime="2026-11-25T20:04:00Z")

# The states and messages below are KubeRay 1.7's own (rayjob_controller.go, utils/validation.go).
NEW = rayjob()
del NEW["status"]
VALIDATION_FAILED = {
    **NEW,
    "status": {
        "jobDeploymentStatus": "ValidationFailed",
        "reason": "ValidationFailed",
        "message": "The RayJob metadata is invalid: RayJob name should be no more than 47 characters",
    },
}
WAITING = rayjob(jobDeploymentStatus="Waiting", jobStatus="")
RETRYING = rayjob(jobDeploymentStatus="Retrying", jobStatus="FAILED", reason="AppFailed", failed=1)
SUSPENDING = rayjob(jobDeploymentStatus="Suspending", jobStatus="RUNNING")
SUSPENDED = rayjob(jobDeploymentStatus="Suspended", jobStatus="", rayClusterName="", jobId="", dashboardURL="")
GRACE_PERIOD_FAILED = rayjob(
    jobDeploymentStatus="Failed",
    jobStatus="FAILED",
    reason="JobDeploymentStatusTransitionGracePeriodExceeded",
    failed=1,
    message="The RayJob submitter finished at 2026-11-25 20:02:30 but the ray job did not reach terminal state within 30s",
)
GRACE_PERIOD_COMPLETE = rayjob(
    jobDeploymentStatus="Complete",
    jobStatus="SUCCEEDED",
    reason="JobDeploymentStatusTransitionGracePeriodExceeded",
    succeeded=1,
    message=(
        "JobDeploymentStatus does not transition to Complete or Failed within the grace period after JobStatus reaches a terminal state."
    ),
)
STATUS_CHECK_TIMEOUT = rayjob(
    jobDeploymentStatus="Failed",
    jobStatus="RUNNING",
    reason="JobStatusCheckTimeoutExceeded",
    failed=1,
    message="Job status checks have been failing since 2026-11-25 20:02:00; exceeded timeout of 300s",
)

# A RayJob created with queue-name: KubeRay 1.7 takes it New -> Initializing (StartTime set) -> Suspending
# -> Suspended, resetting the cluster name, job id, dashboard URL and cluster status on the way (the
# Suspending case of rayjob_controller.go); StartTime stays until it leaves Suspended.
QUEUE = "aks-ray-queue"
QUEUED = rayjob(jobDeploymentStatus="Suspended", rayClusterName="", jobId="", dashboardURL="", rayClusterStatus={})
for _key in ("rayClusterName", "jobId", "dashboardURL"):
    del QUEUED["status"][_key]
QUEUED["metadata"]["labels"] = {"app.kubernetes.io/managed-by": "aks-ray", "aks-ray.io/run": JOB, "kueue.x-k8s.io/queue-name": QUEUE}
QUEUED["spec"].update(suspend=True, shutdownAfterJobFinishes=True, ttlSecondsAfterFinished=600)
# Admitted: Kueue set spec.suspend false; KubeRay has not looked yet (still Suspended).
JUST_ADMITTED = copy.deepcopy(QUEUED)
JUST_ADMITTED["spec"]["suspend"] = False

# KubeRay 1.7's JobDeploymentStatus values (rayjob_types.go), "" being a RayJob it has not written yet.
KUBERAY_1_7_DEPLOYMENT_STATUSES = frozenset(
    {"", "Initializing", "Running", "Complete", "Failed", "ValidationFailed", "Suspending", "Suspended", "Retrying", "Waiting"}
)

ALL_RAYJOBS = {
    "queued": QUEUED,
    "just-admitted": JUST_ADMITTED,
    "new": NEW,
    "validation-failed": VALIDATION_FAILED,
    "waiting": WAITING,
    "retrying": RETRYING,
    "suspending": SUSPENDING,
    "suspended": SUSPENDED,
    "grace-period-failed": GRACE_PERIOD_FAILED,
    "grace-period-complete": GRACE_PERIOD_COMPLETE,
    "status-check-timeout": STATUS_CHECK_TIMEOUT,
    "initializing": INITIALIZING,
    "running": RUNNING,
    "succeeded": SUCCEEDED,
    "app-failed": APP_FAILED,
    "runtime-env-failed": RUNTIME_ENV_FAILED,
    "submission-failed": SUBMISSION_FAILED,
    "deadline-exceeded": DEADLINE_EXCEEDED,
    "pre-running-deadline": PRE_RUNNING_DEADLINE,
    "stopped": STOPPED,
    "complete-but-failed": COMPLETE_BUT_FAILED,
}


def pod(
    name: str, node_type: str | None, container: str, image: str = "rayproject/ray:2.60.0-py311-cpu", **container_status: Any
) -> dict[str, Any]:
    labels = {"app.kubernetes.io/managed-by": "aks-ray", "aks-ray.io/run": JOB}
    if node_type:
        labels.update({"ray.io/node-type": node_type, "ray.io/cluster": CLUSTER, "ray.io/is-ray-node": "yes"})
    else:
        labels.update({"aks-ray.io/component": "submitter", "batch.kubernetes.io/job-name": JOB, "job-name": JOB})
    status = {"name": container, "image": image, "imageID": "", "ready": False, "restartCount": 0, "started": False, "state": {}}
    status.update(container_status)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels, "creationTimestamp": "2026-11-25T20:00:05Z"},
        "spec": {"containers": [{"name": container, "image": image}]},
        "status": {"phase": "Pending", "containerStatuses": [status]},
    }


IMAGE_PULL_BACKOFF = pod(
    WORKER_POD,
    "worker",
    "ray-worker",
    image="rayproject/ray:2.60.0-py311-cpux",
    state={
        "waiting": {
            "reason": "ImagePullBackOff",
            "message": 'Back-off pulling image "rayproject/ray:2.60.0-py311-cpux": ErrImagePull: failed to resolve reference: not found',
        }
    },
)
OOM_KILLED_WORKER = pod(
    WORKER_POD,
    "worker",
    "ray-worker",
    restartCount=1,
    started=True,
    ready=True,
    state={"running": {"startedAt": "2026-11-25T20:02:30Z"}},
    lastState={
        "terminated": {"exitCode": 137, "reason": "OOMKilled", "startedAt": "2026-11-25T20:01:00Z", "finishedAt": "2026-11-25T20:02:29Z"}
    },
)
OOM_KILLED_HEAD = pod(
    HEAD_POD,
    "head",
    "ray-head",
    restartCount=1,
    state={"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 10s restarting failed container"}},
    lastState={"terminated": {"exitCode": 137, "reason": "OOMKilled"}},
)
CRASH_LOOP_SUBMITTER = pod(
    SUBMITTER_POD,
    None,
    "ray-job-submitter",
    restartCount=3,
    state={"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s restarting failed container"}},
    lastState={"terminated": {"exitCode": 1, "reason": "Error"}},
)
RUNNING_SUBMITTER = pod(
    SUBMITTER_POD, None, "ray-job-submitter", started=True, ready=True, state={"running": {"startedAt": "2026-11-25T20:01:00Z"}}
)
HEALTHY_HEAD = copy.deepcopy(
    pod(HEAD_POD, "head", "ray-head", started=True, ready=True, state={"running": {"startedAt": "2026-11-25T20:00:40Z"}})
)
HEALTHY_HEAD["status"]["phase"] = "Running"


def event(kind: str, name: str, reason: str, message: str, type_: str = "Warning", when: str = "2026-11-25T20:01:00Z") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{name}.1879c2a5f1e0a3b4", "namespace": NAMESPACE, "creationTimestamp": when},
        "involvedObject": {
            "kind": kind,
            "namespace": NAMESPACE,
            "name": name,
            "apiVersion": "v1",
            "uid": "3d0b5e2c-0000-4000-8000-000000000001",
        },
        "reason": reason,
        "message": message,
        "type": type_,
        "count": 1,
        "firstTimestamp": when,
        "lastTimestamp": when,
        "source": {"component": "default-scheduler"},
        "reportingComponent": "default-scheduler",
        "reportingInstance": "",
    }


FAILED_SCHEDULING_MEMORY = event(
    "Pod",
    WORKER_POD,
    "FailedScheduling",
    "0/3 nodes are available: 1 node(s) had untolerated taint {CriticalAddonsOnly: true}, 2 Insufficient memory. "
    "preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, 2 No preemption victims found for incoming pod.",
)
FAILED_SCHEDULING_CPU_GPU = event(
    "Pod",
    WORKER_POD,
    "FailedScheduling",
    "0/2 nodes are available: 2 Insufficient cpu, 2 Insufficient nvidia.com/gpu. "
    "preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod.",
)
FAILED_SCHEDULING_TAINT = event(
    "Pod",
    HEAD_POD,
    "FailedScheduling",
    "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. "
    "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.",
)
BACKOFF_LIMIT_EXCEEDED = event(
    "Job", JOB, "BackoffLimitExceeded", "Job has reached the specified backoff limit", when="2026-11-25T20:05:00Z"
)
SCHEDULED = event(
    "Pod", HEAD_POD, "Scheduled", f"Successfully assigned {NAMESPACE}/{HEAD_POD} to aks-ray-12345678-vmss000000", type_="Normal"
)
OTHER_RUN_EVENT = event("Pod", "aks-ray-9999-ffffff-abcde-head-zzzzz", "FailedScheduling", "0/1 nodes are available: 1 Insufficient cpu.")


# Ray's memory monitor at work on a 2Gi head pod (lines as the submitter's log shows them, colour codes included).
RAY_OOM_LOG = [
    "\x1b[33m(raylet)\x1b[0m [2026-11-25 20:59:24,468 E 299 299] (raylet) node_manager.cc:3517: 3 Workers (tasks / actors) killed due to "
    "memory pressure (OOM), 0 Workers crashed due to other reasons at node (ID: 15c2231d56a42503a354af27096555bff7754b1f0f3a092e52efd9c8, "
    "IP: 10.244.0.4) over the last time period.",
    "\x1b[36m(RayTrainWorker pid=142, ip=10.244.0.6)\x1b[0m ray.exceptions.OutOfMemoryError: 2 worker(s) were killed due to the node "
    "running low on memory. Memory on the node (IP: 10.244.0.4, ID: 15c2231d56a42503a354af27096555bff7754b1f0f3a092e52efd9c8) "
    "was 1.90GB used / 2.00GB limit (0.951132)",
]
HEAD_AT_10_244_0_4 = copy.deepcopy(HEALTHY_HEAD)
HEAD_AT_10_244_0_4["status"]["podIP"] = "10.244.0.4"


# ------------------------------------------------------------------ Kueue
# Kueue v0.17's Workload of a queued RayJob (kueue.x-k8s.io/v1beta2), its conditions as Kueue's
# scheduler and workload controller write them (pkg/workload, pkg/scheduler/flavorassigner).


def workload(*conditions: dict[str, Any], admission: dict[str, Any] | None = None) -> dict[str, Any]:
    uid = QUEUED["metadata"]["uid"]
    obj: dict[str, Any] = {
        "apiVersion": "kueue.x-k8s.io/v1beta2",
        "kind": "Workload",
        "metadata": {
            "name": f"rayjob-{JOB}-3f2a1",
            "namespace": NAMESPACE,
            "uid": "5b6c8d2e-1f3a-4c5b-9d7e-8f9a0b1c2d3e",
            "creationTimestamp": "2026-11-25T20:00:01Z",
            "labels": {"kueue.x-k8s.io/job-uid": uid},
            "annotations": {"kueue.x-k8s.io/job-owner-gvk": "ray.io/v1, Kind=RayJob", "kueue.x-k8s.io/job-owner-name": JOB},
            "ownerReferences": [
                {"apiVersion": "ray.io/v1", "kind": "RayJob", "name": JOB, "uid": uid, "controller": True, "blockOwnerDeletion": True}
            ],
        },
        "spec": {
            "active": True,
            "queueName": QUEUE,
            "priority": 0,
            "podSets": [{"name": "head", "count": 1}, {"name": "train", "count": 1}, {"name": "submitter", "count": 1}],
        },
        "status": {"conditions": list(conditions)},
    }
    if admission:
        obj["status"]["admission"] = admission
    return obj


def condition(kind: str, status: str, reason: str, message: str, when: str = "2026-11-25T20:00:02Z") -> dict[str, Any]:
    return {"type": kind, "status": status, "reason": reason, "message": message, "lastTransitionTime": when, "observedGeneration": 1}


PENDING_MESSAGE = "couldn't assign flavors to pod set head: insufficient unused quota for cpu in flavor default-flavor, 500m more needed"
WORKLOAD_PENDING = workload(condition("QuotaReserved", "False", "Pending", PENDING_MESSAGE))
WORKLOAD_NEVER_FITS = workload(
    condition(
        "QuotaReserved",
        "False",
        "Pending",
        "couldn't assign flavors to pod set train: insufficient quota for cpu in flavor default-flavor, previously considered "
        "podsets requests (800m) + current podset request (4) > maximum capacity (2)",
    )
)
WORKLOAD_NO_QUEUE = workload(condition("QuotaReserved", "False", "Inadmissible", f"LocalQueue {QUEUE} doesn't exist"))
WORKLOAD_ADMITTED = workload(
    condition("QuotaReserved", "True", "QuotaReserved", "Quota reserved in ClusterQueue aks-ray-cluster-queue", "2026-11-25T20:06:00Z"),
    condition("Admitted", "True", "Admitted", "The workload is admitted", "2026-11-25T20:06:00Z"),
    admission={
        "clusterQueue": "aks-ray-cluster-queue",
        "podSetAssignments": [
            {"name": "head", "count": 1, "flavors": {"cpu": "default-flavor", "memory": "default-flavor"}},
            {"name": "train", "count": 1, "flavors": {"cpu": "default-flavor", "memory": "default-flavor"}},
            {"name": "submitter", "count": 1, "flavors": {"cpu": "default-flavor", "memory": "default-flavor"}},
        ],
    },
)
# Preempted by a run of a higher priority: quota taken back, Admitted false, Evicted true.
WORKLOAD_EVICTED = workload(
    condition("QuotaReserved", "False", "Preempted", "Preempted to accommodate a workload (UID: 9d1c...) in the ClusterQueue"),
    condition("Admitted", "False", "NoReservation", "The workload has no reservation"),
    condition("Evicted", "True", "Preempted", "Preempted to accommodate a workload (UID: 9d1c...) in the ClusterQueue"),
)
