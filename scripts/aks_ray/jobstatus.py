"""What a RayJob's status means: whether it has ended, and the verdict it ended with.

Pure functions over the RayJob's `status` as the API server returns it; `job
wait` follows these states and `collect` reports them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import report

# KubeRay 1.7's JobDeploymentStatus values (ray-operator/apis/ray/v1/rayjob_types.go) that end a
# RayJob for aks-ray. ValidationFailed is final too: the controller writes it, with its reason
# and message, when it refuses the spec (a name over 47 characters, say), and never looks again.
TERMINAL_DEPLOYMENT = {"Complete", "Failed", "ValidationFailed"}
# The other states KubeRay 1.7 writes, and what each means while aks-ray waits.
WAITING_DEPLOYMENT = {
    "": "created, not yet seen by the KubeRay operator (is it running? aks-ray operator install)",
    "Initializing": "the Ray cluster is starting (pods scheduled, images pulled, Ray started)",
    "Waiting": "the cluster is ready and KubeRay waits for a job id (InteractiveMode)",
    "Running": "the job was submitted; KubeRay follows it",
    "Retrying": "the attempt failed and KubeRay deletes the cluster to start a new attempt (spec.backoffLimit)",
    "Suspending": "suspended: KubeRay deletes the cluster and the submitter",
    "Suspended": "suspended (spec.suspend is true, set by a queue such as Kueue or by a person): nothing runs until it is resumed",
}
# Ray's terminal job statuses.
TERMINAL_JOB = {"SUCCEEDED", "FAILED", "STOPPED"}
DEADLINE_REASONS = {"DeadlineExceeded", "PreRunningDeadlineExceeded"}
# KubeRay's reasons for a Failed RayJob that are not the application's verdict: the submitter's
# follow stream ended before Ray's job did (30 s after the submitter exits), or KubeRay could
# not reach the dashboard for 5 minutes. The training itself may have been healthy.
NOT_THE_APPLICATIONS = {"JobDeploymentStatusTransitionGracePeriodExceeded", "JobStatusCheckTimeoutExceeded"}


@dataclass(frozen=True)
class JobState:
    """The parts of a RayJob's status that decide what happens next."""

    deployment: str = ""
    job_status: str = ""
    reason: str = ""
    message: str = ""
    failed_attempts: int = 0

    @classmethod
    def of(cls, obj: dict[str, Any] | None) -> JobState:
        status = (obj or {}).get("status") or {}
        return cls(
            deployment=status.get("jobDeploymentStatus", "") or "",
            job_status=status.get("jobStatus", "") or "",
            reason=status.get("reason", "") or "",
            message=(status.get("message") or "").strip(),
            failed_attempts=int(status.get("failed") or 0),
        )

    @property
    def terminal(self) -> bool:
        return self.deployment in TERMINAL_DEPLOYMENT

    @property
    def refused(self) -> bool:
        """KubeRay refused the spec (ValidationFailed): nothing was started."""
        return self.deployment == "ValidationFailed"

    @property
    def not_the_applications(self) -> bool:
        """Failed for a reason of KubeRay's bookkeeping, not because the training failed."""
        return self.terminal and not self.succeeded and self.reason in NOT_THE_APPLICATIONS

    def meaning(self) -> str:
        """What the deployment status means, in words, for the log ('' for the final states)."""
        if self.deployment in WAITING_DEPLOYMENT:
            return WAITING_DEPLOYMENT[self.deployment]
        if self.terminal:
            return ""
        return "a state this version of aks-ray does not know; it keeps waiting until the deadline"

    @property
    def succeeded(self) -> bool:
        return self.deployment == "Complete" and self.job_status == "SUCCEEDED"

    def verdict(self) -> str:
        """The outputs' status word (report.SUCCEEDED, ...) for a terminal state."""
        if self.succeeded:
            return report.SUCCEEDED
        if self.reason in DEADLINE_REASONS:
            return report.TIMED_OUT
        if self.job_status == "STOPPED":
            return report.STOPPED
        return report.FAILED


def brief(message: str, limit: int = 300) -> str:
    """KubeRay's message in one line: its first line and, when it quotes the job's log, that log's last line.

    For a failed entrypoint KubeRay writes "Job entrypoint command failed with exit code 1, last
    available logs (...):" and then the log, whose last line is as a rule the error itself.
    """
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    first = lines[0][:limit]
    return first if len(lines) == 1 else f"{first} … {lines[-1][:limit]}"


def transitions(before: JobState | None, after: JobState) -> list[str]:
    """One line per field of interest that changed, for the log."""
    before = before or JobState()
    lines = []
    for label, old, new in (
        ("jobDeploymentStatus", before.deployment, after.deployment),
        ("jobStatus", before.job_status, after.job_status),
        ("reason", before.reason, after.reason),
    ):
        if old != new and new:
            line = f"{label}: {old or '(none)'} -> {new}"
            if label == "jobDeploymentStatus" and after.meaning():
                line += f" ({after.meaning()})"
            lines.append(line)
    if after.failed_attempts > before.failed_attempts:
        lines.append(f"failed attempts: {after.failed_attempts}")
    return lines


def with_rays_own_status(final: JobState, ray_status: str | None) -> JobState:
    """KubeRay's verdict corrected by what the Ray Jobs API on the head says, for a failure of KubeRay's bookkeeping.

    Only for NOT_THE_APPLICATIONS reasons: there KubeRay wrote Failed without Ray's job
    having ended (or after it succeeded). Ray's terminal status, when it has one, is
    the training's verdict; otherwise KubeRay's stands.
    """
    if not final.not_the_applications or ray_status not in TERMINAL_JOB:
        return final
    deployment = "Complete" if ray_status != "FAILED" else "Failed"
    reason = final.reason if ray_status != "SUCCEEDED" else ""
    message = f"Ray's job ended {ray_status} (KubeRay had marked the RayJob {final.deployment}: {final.reason})"
    return JobState(deployment=deployment, job_status=ray_status, reason=reason, message=message, failed_attempts=final.failed_attempts)


# ---------------------------------------------------------------- Kueue
# A queued RayJob (--queue-name) is created with spec.suspend true; Kueue sets it false when it
# admits the job (Kueue v0.17's RayJob integration, RunWithPodSetsInfo) and true again when it
# evicts or preempts it. KubeRay 1.7 then starts the RayJob afresh: its StartTime, from which both
# deadlines count, is set when the RayJob leaves Suspended (initRayJobStatusIfNeed), so the time
# spent in the queue counts against neither.


def _condition(workload: dict[str, Any] | None, kind: str) -> dict[str, Any] | None:
    for condition in ((workload or {}).get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind:
            return condition
    return None


def workload_admitted(workload: dict[str, Any] | None) -> bool:
    """Kueue's Workload says Admitted (quota reserved and every admission check ready)."""
    condition = _condition(workload, "Admitted")
    return bool(condition and condition.get("status") == "True")


def waiting_in_queue(rayjob: dict[str, Any] | None, workload: dict[str, Any] | None = None) -> bool:
    """Kueue holds the RayJob: it is suspended and its Workload (when it can be read) is not admitted."""
    if workload_admitted(workload):
        return False
    return bool(((rayjob or {}).get("spec") or {}).get("suspend"))


def queue_message(workload: dict[str, Any] | None) -> str:
    """What Kueue says of a Workload it has not admitted: why it waits ('' when it says nothing, or is unread).

    Kueue writes the reason on the QuotaReserved condition (reason Pending: "couldn't assign flavors
    to pod set head: insufficient unused quota for cpu in flavor ..."; reason Inadmissible: "LocalQueue
    x doesn't exist"), and on Evicted when it took the quota back.
    """
    evicted = _condition(workload, "Evicted")
    if evicted and evicted.get("status") == "True":
        return f"evicted ({evicted.get('reason', '')}): {evicted.get('message', '')}".strip()
    reserved = _condition(workload, "QuotaReserved")
    if reserved and reserved.get("status") == "False":
        return f"{reserved.get('reason', '')}: {reserved.get('message', '')}".strip(": ")
    if reserved and reserved.get("status") == "True":
        admitted = _condition(workload, "Admitted")
        waiting = f"; {admitted.get('message', '')}" if admitted and admitted.get("status") != "True" else ""
        return f"{reserved.get('message', '')}{waiting}"
    return ""


def never_fits(workload: dict[str, Any] | None) -> bool:
    """Kueue says the run asks more than the ClusterQueue could ever give ("... > maximum capacity")."""
    return "maximum capacity" in queue_message(workload)


def newest_workload(workloads: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The RayJob's Workload (Kueue keeps one per job; the newest, should an old one still be there)."""
    return max(workloads, key=lambda w: (w.get("metadata") or {}).get("creationTimestamp") or "", default=None)
