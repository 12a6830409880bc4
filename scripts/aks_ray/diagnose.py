"""Why a RayJob failed or stalled, in plain words with the fix: pure functions.

Input is what the API server returns, as dicts in its JSON shape: the RayJob
(its status as KubeRay 1.7 writes it), the pods of the run, the namespace's
events, and the tail of the submitter's log. Output is a list of findings, each
turned into one `::error::` annotation. Nothing here talks to a cluster.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from . import jobstatus
from .rayjob import KUEUE_QUEUE_LABEL

# What each Kubernetes resource is called on the aks-ray command line.
RESOURCE_OPTIONS = {
    "cpu": "--cpus-per-worker / --head-cpus (or --workers)",
    "memory": "--memory-per-worker / --head-memory",
    "nvidia.com/gpu": "--use-gpu (GPU nodes are needed)",
    "pods": "--workers",
    "ephemeral-storage": "node disk size",
}

_INSUFFICIENT = re.compile(r"Insufficient ([A-Za-z0-9./_-]+)")
_RUNTIME_ENV = re.compile(r"runtime[_ ]env|RuntimeEnvSetupError|Failed to set up runtime environment|pip install", re.IGNORECASE)
_PULL_REASONS = {"ImagePullBackOff", "ErrImagePull", "InvalidImageName", "ErrImageNeverPull"}


@dataclass(frozen=True)
class Finding:
    title: str
    message: str
    fix: str

    def annotation(self) -> str:
        return f"{self.message} Fix: {self.fix}"


def _name(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata", {})
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def _role(pod: dict[str, Any]) -> str:
    labels = pod.get("metadata", {}).get("labels", {}) or {}
    if labels.get("ray.io/node-type") == "head":
        return "Ray head"
    if labels.get("ray.io/node-type") == "worker":
        return "Ray worker"
    if labels.get("aks-ray.io/component") == "submitter" or "job-name" in labels or "batch.kubernetes.io/job-name" in labels:
        return "submitter"
    return "pod"


def _memory_option(role: str) -> str:
    return {"Ray head": "--head-memory", "Ray worker": "--memory-per-worker"}.get(role, "--memory-per-worker")


def _container_statuses(pod: dict[str, Any]) -> Iterable[dict[str, Any]]:
    status = pod.get("status", {}) or {}
    yield from status.get("initContainerStatuses") or []
    yield from status.get("containerStatuses") or []


def pod_findings(pods: Iterable[dict[str, Any]]) -> list[Finding]:
    """Image pulls that fail, containers killed for memory, containers crash-looping."""
    findings = []
    for pod in pods:
        role, name = _role(pod), _name(pod)
        for container in _container_statuses(pod):
            state, last = container.get("state") or {}, container.get("lastState") or {}
            waiting = state.get("waiting") or {}
            if waiting.get("reason") in _PULL_REASONS:
                findings.append(
                    Finding(
                        "image pull failed",
                        f"The {role} pod {name} cannot pull its image {container.get('image', '')!r} "
                        f"({waiting['reason']}: {waiting.get('message', '').strip()}).",
                        "check that --ray-image names an image that exists, and that the nodes "
                        "can reach its registry (add an imagePullSecret for a private one).",
                    )
                )
            for terminated in (state.get("terminated") or {}, last.get("terminated") or {}):
                if terminated.get("reason") == "OOMKilled":
                    option = _memory_option(role)
                    findings.append(
                        Finding(
                            "out of memory",
                            f"The {role} pod {name} (container {container.get('name')}) was "
                            "killed for using more memory than it requested (OOMKilled).",
                            f"raise {option}, or lower --batch-size.",
                        )
                    )
                    break
            if waiting.get("reason") == "CrashLoopBackOff" and not any(f.title == "out of memory" and name in f.message for f in findings):
                findings.append(
                    Finding(
                        "container keeps crashing",
                        f"The {role} pod {name} (container {container.get('name')}) keeps crashing (CrashLoopBackOff).",
                        f"read its log in k8s/pods/ of the artifact (kubectl logs -n {name.split('/')[0]} "
                        f"{name.split('/')[1]} -c {container.get('name')} --previous).",
                    )
                )
    return findings


def short_resources(message: str) -> list[str]:
    """The resources a FailedScheduling message says are short: 'Insufficient cpu' -> ['cpu']."""
    seen: list[str] = []
    for resource in _INSUFFICIENT.findall(message):
        resource = resource.rstrip(".,")
        if resource not in seen:
            seen.append(resource)
    return seen


def events_of_run(events: Iterable[dict[str, Any]], job_name: str) -> list[dict[str, Any]]:
    """The events about this run's objects: KubeRay names all of them after the RayJob."""
    return [e for e in events if str((e.get("involvedObject") or {}).get("name", "")).startswith(job_name)]


def event_findings(events: Iterable[dict[str, Any]]) -> list[Finding]:
    """Scheduling failures and submitter back-off from the namespace's events (latest per object)."""
    findings = []
    seen: set[tuple[str, str]] = set()
    for event in sorted(events, key=_event_time, reverse=True):
        involved = event.get("involvedObject", {}) or {}
        kind, name = involved.get("kind", ""), involved.get("name", "")
        reason, message = event.get("reason", ""), (event.get("message") or "").strip()
        if (kind, reason) in seen:
            continue
        if reason == "FailedScheduling":
            seen.add((kind, reason))
            short = short_resources(message)
            if short:
                options = "; ".join(f"{r}: {RESOURCE_OPTIONS.get(r, 'the request for ' + r)}" for r in short)
                findings.append(
                    Finding(
                        "not enough room in the cluster",
                        f"Pod {involved.get('namespace', '')}/{name} cannot be scheduled: "
                        f"the nodes are short of {', '.join(short)} ({message}).",
                        f"ask for less ({options}), or add nodes or bigger ones (--ray-node-count, --ray-vm-size on the aks target).",
                    )
                )
            elif "taint" in message or "node affinity" in message or "node selector" in message:
                findings.append(
                    Finding(
                        "no node matches",
                        f"Pod {involved.get('namespace', '')}/{name} cannot be scheduled: no "
                        f"node matches its node selector or tolerates its taints ({message}).",
                        "check --node-selector and --tolerations against `kubectl get nodes --show-labels` and the nodes' taints.",
                    )
                )
            else:
                findings.append(
                    Finding(
                        "cannot be scheduled",
                        f"Pod {involved.get('namespace', '')}/{name} cannot be scheduled: {message}",
                        "read the message: it names what no node offers.",
                    )
                )
        elif reason == "BackoffLimitExceeded" and kind == "Job":
            seen.add((kind, reason))
            findings.append(
                Finding(
                    "submitter gave up",
                    f"The submitter Job {involved.get('namespace', '')}/{name} failed every attempt it was allowed ({message}).",
                    "read the submitter's log (job.log and k8s/pods/ in the artifact): it shows why `ray job submit` failed.",
                )
            )
        elif event.get("type") == "Warning" and kind in ("RayJob", "RayCluster"):
            # KubeRay's own complaints (an invalid spec, a cluster it could not create): its words, as they are.
            seen.add((kind, reason))
            findings.append(
                Finding(
                    f"KubeRay: {reason}",
                    f"KubeRay reports on {kind} {involved.get('namespace', '')}/{name}: {message}",
                    "read the message; k8s/events.yaml in the artifact has the whole sequence.",
                )
            )
    return findings


def _event_time(event: dict[str, Any]) -> str:
    return str(event.get("lastTimestamp") or event.get("eventTime") or (event.get("metadata") or {}).get("creationTimestamp") or "")


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_RAY_OOM_NODE = re.compile(r"Memory on the node \(IP: ([0-9a-fA-F.:]+)[^)]*\) was ([0-9.]+ ?[KMGT]?i?B) used / ([0-9.]+ ?[KMGT]?i?B) limit")
_RAY_OOM_COUNT = re.compile(r"(\d+) Workers \(tasks / actors\) killed due to memory pressure \(OOM\).*?IP: ([0-9a-fA-F.:]+)\)")


def ray_oom_findings(lines: Iterable[str], pods: Iterable[dict[str, Any]] = ()) -> list[Finding]:
    """Ray's own memory monitor killing workers: Kubernetes never sees an OOMKilled container then."""
    by_ip = {(pod.get("status") or {}).get("podIP"): pod for pod in pods}
    usage: dict[str, str] = {}
    killed: dict[str, int] = {}
    for raw in lines:
        line = _ANSI.sub("", raw)
        if match := _RAY_OOM_NODE.search(line):
            usage[match[1]] = f"{match[2]} used of a {match[3]} limit"
        elif match := _RAY_OOM_COUNT.search(line):
            killed[match[2]] = max(killed.get(match[2], 0), int(match[1]))
    findings = []
    for ip in list(dict.fromkeys([*usage, *killed])):
        pod = by_ip.get(ip)
        role = _role(pod) if pod else "Ray"
        where = f"the {role} pod {_name(pod)}" if pod else f"the Ray node {ip}"
        count = f"{killed[ip]} worker(s)" if ip in killed else "workers"
        detail = f" ({usage[ip]})" if ip in usage else ""
        option = _memory_option(role) if pod else "--head-memory or --memory-per-worker"
        findings.append(
            Finding(
                "out of memory",
                f"Ray's memory monitor killed {count} on {where}{detail}: the pod is near its memory limit.",
                f"raise {option}, or lower --batch-size.",
            )
        )
    return findings


def runtime_env_failure(line: str) -> bool:
    """A line that says a runtime environment failed (not one that only mentions it, like Ray's 'Runtime env is setting up.')."""
    lowered = line.lower()
    return bool(_RUNTIME_ENV.search(line)) and ("error" in lowered or "fail" in lowered)


def status_findings(rayjob: dict[str, Any] | None, log_tail: Iterable[str] = ()) -> list[Finding]:
    """The RayJob's own verdict (reason and message) and what the driver's log says."""
    if not rayjob:
        return []
    status = rayjob.get("status", {}) or {}
    reason, message = status.get("reason", ""), (status.get("message") or "").strip()
    name = _name(rayjob)
    tail = list(log_tail)
    findings = []
    queue = ((rayjob.get("metadata") or {}).get("labels") or {}).get(KUEUE_QUEUE_LABEL)
    if queue and (rayjob.get("spec") or {}).get("suspend") and not reason:
        findings.append(queue_finding(rayjob, queue))
    # Lines, not the whole message: KubeRay's message for a failed entrypoint quotes the job's log,
    # whose first line is Ray's "Runtime env is setting up." for every job, failed or not.
    message_lines = [line for line in message.splitlines() if runtime_env_failure(line)]
    runtime_env_lines = [line for line in tail if runtime_env_failure(line)]
    if message_lines or runtime_env_lines:
        evidence = message if message_lines else runtime_env_lines[-1].strip()
        findings.append(
            Finding(
                "runtime environment failed",
                "Ray could not set up the job's runtime environment (pip install of "
                f"torch, or the upload of the training directory): {evidence[:500]}",
                "make sure the Ray pods can reach PyPI (and the --torch-index-url if one is given), or "
                "use a --ray-image with torch inside (manifests/Dockerfile), and keep --training-dir small.",
            )
        )
    if reason == "DeadlineExceeded":
        findings.append(
            Finding(
                "ran too long",
                f"RayJob {name} started but did not finish within its deadline (activeDeadlineSeconds, from --timeout): {message}",
                "raise --timeout, or train for fewer --epochs; the job.log shows how far the training got.",
            )
        )
    elif reason == "PreRunningDeadlineExceeded":
        findings.append(
            Finding(
                "cluster never became ready",
                f"RayJob {name} never reached Running within --start-timeout: its Ray cluster did not become ready, or the "
                f"job was not submitted, in time ({message}).",
                "see the scheduling and image errors listed with this one (an image that cannot be pulled, no room for the pods); "
                "if the cluster was only slow (a first pull of the Ray image on a new node takes minutes), raise --start-timeout.",
            )
        )
    elif reason == "SubmissionFailed":
        findings.append(
            Finding(
                "submission failed",
                f"RayJob {name}: the submitter could not submit or follow the job ({message}).",
                "read the submitter's log (job.log); KubeRay retried it submitterConfig.backoffLimit times.",
            )
        )
    elif reason == "JobDeploymentStatusTransitionGracePeriodExceeded":
        findings.append(
            Finding(
                "follow stream ended early",
                f"RayJob {name}: the submitter ended (its `ray job logs --follow` stream stopped) while Ray's job had not "
                f"finished, so KubeRay marked the RayJob {status.get('jobDeploymentStatus', 'Failed')} after 30 s ({message}). "
                "This is KubeRay's bookkeeping, not the training's verdict: the training may have been healthy.",
                "look at k8s/head/session-logs/job-driver-*.log and k8s/head/artifacts/result.json in the outputs for the "
                "training's own end; run again if it was cut short (the stream drops on API server or network hiccups).",
            )
        )
    elif reason == "JobStatusCheckTimeoutExceeded":
        findings.append(
            Finding(
                "dashboard unreachable",
                f"RayJob {name}: KubeRay could not ask the Ray head for the job's status for 5 minutes ({message}).",
                "the head pod or its dashboard went away (look for an OOMKilled or evicted head pod above); "
                "raise --head-memory if it was killed for memory.",
            )
        )
    elif reason == "AppFailed" and not findings:
        findings.append(
            Finding(
                "training failed",
                f"RayJob {name}: the training script failed ({jobstatus.brief(message) or 'no message'}).",
                "read the end of job.log for the Python traceback; run the same training with --target local to reproduce it.",
            )
        )
    elif reason == "ValidationFailed" or status.get("jobDeploymentStatus") == "ValidationFailed":
        findings.append(Finding("RayJob refused", f"KubeRay refused RayJob {name}: {message}", validation_fix(message)))
    elif reason and not findings:
        findings.append(
            Finding("RayJob failed", f"RayJob {name} failed ({reason}): {message}", "read job.log and k8s/events.yaml in the artifact.")
        )
    return findings


def validation_fix(message: str) -> str:
    """The option behind a KubeRay validation message (utils/validation.go in KubeRay 1.7)."""
    if "RayJob name" in message or "metadata is invalid" in message:
        return "use a --job-name of at most 47 characters that starts with a letter, or leave it empty."
    if "Ray version" in message or "RayVersion" in message:
        return "use a --ray-image with Ray 2.52.0 or later, and set --ray-version when its tag does not say the version."
    if "Deadline" in message or "deadline" in message:
        return "check --timeout and --start-timeout."
    return "fix the option that the message names."


def diagnose(
    rayjob: dict[str, Any] | None,
    pods: Iterable[dict[str, Any]] = (),
    events: Iterable[dict[str, Any]] = (),
    log_tail: Iterable[str] = (),
) -> list[Finding]:
    """Every finding, the most specific first, without duplicates."""
    pods, log_tail = list(pods), list(log_tail)
    message_lines = (((rayjob or {}).get("status") or {}).get("message") or "").splitlines()
    findings = (
        pod_findings(pods) + ray_oom_findings(log_tail + message_lines, pods) + event_findings(events) + status_findings(rayjob, log_tail)
    )
    if any(f.title == "out of memory" for f in findings):
        # The training "failed" because its workers were killed: the memory finding says it better.
        findings = [f for f in findings if f.title != "training failed"]
    unique: list[Finding] = []
    for finding in findings:
        if finding not in unique:
            unique.append(finding)
    return unique


def queue_finding(rayjob: dict[str, Any] | None, queue_name: str, waited_seconds: float | None = None, kueue_says: str = "") -> Finding:
    """The run waited in Kueue's queue past --queue-timeout and was never admitted.

    `kueue_says` is the Workload's condition message (jobstatus.queue_message), when the identity
    may read Workloads; "maximum capacity" in it means no quota the ClusterQueue has would ever fit.
    """
    name = _name(rayjob or {})
    waited = f"waited {waited_seconds:.0f} s" if waited_seconds is not None else "is still suspended"
    why = f" Kueue says: {kueue_says[:500]}" if kueue_says else " (Kueue's Workload could not be read to say why.)"
    if "maximum capacity" in kueue_says:
        fix = (
            "the run asks for more than the ClusterQueue's whole quota: lower --workers, --cpus-per-worker, --head-cpus or "
            "the memory options, or have the cluster owner raise the ClusterQueue's nominalQuota."
        )
    elif "doesn't exist" in kueue_says or "is inactive" in kueue_says or "is stopped" in kueue_says:
        fix = f"check --queue-name {queue_name}: the LocalQueue (or its ClusterQueue) must exist and be active in the namespace."
    else:
        fix = (
            f"other runs held the quota of the ClusterQueue behind LocalQueue {queue_name} all along: raise --queue-timeout, "
            "or have the cluster owner raise the ClusterQueue's quota (kubectl get clusterqueues shows its usage)."
        )
    return Finding(
        "never admitted",
        f"RayJob {name} {waited} in Kueue's queue {queue_name} and was never admitted.{why}",
        fix,
    )
