"""What a RayJob's status means: whether it has ended, and the verdict it ended with.

Pure functions over the RayJob's `status` as the API server returns it; `job
wait` follows these states and `collect` reports them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import report

# KubeRay 1.7's JobDeploymentStatus values that end a RayJob.
TERMINAL_DEPLOYMENT = {"Complete", "Failed"}
# Ray's terminal job statuses.
TERMINAL_JOB = {"SUCCEEDED", "FAILED", "STOPPED"}
DEADLINE_REASONS = {"DeadlineExceeded", "PreRunningDeadlineExceeded"}


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
            lines.append(f"{label}: {old or '(none)'} -> {new}")
    if after.failed_attempts > before.failed_attempts:
        lines.append(f"failed attempts: {after.failed_attempts}")
    return lines
