"""`aks-ray job submit` and `aks-ray job wait`: create the RayJob, then follow it to a verdict.

The action runs each step as its own process, so submit writes the run's names
to --output-dir/state.json (no secrets in it) and wait, collect, cleanup and
dashboard read them back.

wait logs every transition of the RayJob's jobDeploymentStatus, jobStatus and
reason; streams the submitter pod's log (the driver's output: `ray job logs
--follow`) into the terminal and job.log as soon as the pod runs; and gives up
at the deadline. A failure ends in plain `::error::` annotations with the fix.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from . import diagnose, gha, kube, metrics, rayjob, redact, report, retry, sandbox
from .config import Config
from .errors import DeadlineExceeded, OperationalError, UserError

log = logging.getLogger(__name__)

STATE_FILE = "state.json"
SUBMITTER_CONTAINER = "ray-job-submitter"
POLL_SECONDS = 5.0
# KubeRay enforces --timeout itself (activeDeadlineSeconds); aks-ray waits a
# little longer so that KubeRay's verdict, with its reason, arrives first.
WAIT_GRACE_SECONDS = 120

# KubeRay 1.7's JobDeploymentStatus values that end a RayJob.
TERMINAL_DEPLOYMENT = {"Complete", "Failed"}
# Ray's terminal job statuses.
TERMINAL_JOB = {"SUCCEEDED", "FAILED", "STOPPED"}
DEADLINE_REASONS = {"DeadlineExceeded", "PreRunningDeadlineExceeded"}


# ------------------------------------------------------------------ state


@dataclass
class RunState:
    """What later steps need to find this run's objects. Never a secret."""

    job_name: str
    namespace: str
    target: str = ""
    created_at: float = 0.0
    verdict: str = ""

    def save(self, output_dir: Path) -> None:
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / STATE_FILE).write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")


def load_state(cfg: Config, required: bool = True) -> RunState | None:
    """The run's state: state.json, else --job-name; None (or UserError) when neither exists."""
    path = cfg.output_dir / STATE_FILE
    if path.is_file():
        data = json.loads(path.read_text(encoding="utf-8"))
        return RunState(**{k: v for k, v in data.items() if k in RunState.__dataclass_fields__})
    if cfg.kube.job_name:
        return RunState(job_name=cfg.kube.job_name, namespace=cfg.kube.namespace, target=cfg.target)
    if required:
        raise UserError(
            f"no run to work on: {path} does not exist and --job-name is empty.",
            "run `aks-ray job submit` with the same --output-dir first, or pass the RayJob's name as --job-name.",
        )
    return None


# ------------------------------------------------------- pure state logic


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


def submitter_pod_ready_for_logs(pod: dict[str, Any]) -> bool:
    """True once the submitter container has started: only then has it a log to follow."""
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == SUBMITTER_CONTAINER:
            state = status.get("state") or {}
            return bool(state.get("running") or state.get("terminated"))
    return False


# ---------------------------------------------------------- log following


class LogFollower:
    """Streams each submitter pod's log, once, as the pods appear."""

    def __init__(self, kube_: kube.Kube, namespace: str, job_log: Path) -> None:
        self.kube, self.namespace, self.job_log = kube_, namespace, job_log
        self.followed: set[str] = set()
        self.threads: list[threading.Thread] = []
        self.responses: list[Any] = []
        self.lock = threading.Lock()
        self.progress = metrics.ProgressAnnouncer()
        job_log.parent.mkdir(parents=True, exist_ok=True)
        job_log.write_text("", encoding="utf-8")

    def follow_new(self, pods: list[dict[str, Any]]) -> None:
        for pod in sorted(pods, key=lambda p: p["metadata"].get("creationTimestamp") or ""):
            name = pod["metadata"]["name"]
            if name in self.followed or not submitter_pod_ready_for_logs(pod):
                continue
            if self.followed:
                gha.warning(f"the submitter was retried: following the new pod {self.namespace}/{name}", title="aks-ray: submitter retry")
            self.followed.add(name)
            log.info("streaming the log of the submitter pod %s/%s", self.namespace, name)
            thread = threading.Thread(target=self._stream, args=(name,), daemon=True, name=f"log-{name}")
            thread.start()
            self.threads.append(thread)

    def _stream(self, pod: str) -> None:
        try:
            response = self.kube.core.read_namespaced_pod_log(
                pod, self.namespace, container=SUBMITTER_CONTAINER, follow=True, _preload_content=False
            )
        except Exception as exc:
            log.warning("cannot stream the log of %s/%s: %s", self.namespace, pod, kube.api_message(exc))
            return
        self.responses.append(response)
        pending = b""
        try:
            for chunk in response.stream(4096, decode_content=True):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for raw in lines:
                    self._line(raw.decode("utf-8", errors="replace"))
            if pending:
                self._line(pending.decode("utf-8", errors="replace"))
        except Exception as exc:  # the stream ends when the pod goes away; nothing to fail over
            log.debug("log stream of %s ended: %s", pod, exc)

    def _line(self, line: str) -> None:
        # Prefixed, as the local target does: a training line can then never be a workflow command.
        line = redact.text(line)
        with self.lock:
            sys.stderr.write(f"  | {line}\n")
            sys.stderr.flush()
            with self.job_log.open("a", encoding="utf-8") as handle:
                handle.write(line + "\n")
            progress = self.progress.announce(line)
            if progress:
                log.info("%s", progress)

    def stop(self, grace: float = 5.0) -> None:
        for thread in self.threads:
            thread.join(timeout=grace)
        for response in self.responses:
            try:
                response.close()
            except Exception as exc:
                log.debug("closing a log stream: %s", exc)


# -------------------------------------------------------------- commands


def submit(cfg: Config, job_name: str | None = None) -> RunState:
    """Render everything (bad input fails here, before anything exists), then create it."""
    name = job_name or rayjob.new_job_name(cfg)
    run = rayjob.identity(cfg, name)
    objects = rayjob.render_run(cfg, run)
    namespace_obj, configmap, job = (rayjob.find(objects, kind) for kind in ("Namespace", "ConfigMap", "RayJob"))
    api = kube.connect(cfg)
    state = RunState(job_name=run.job_name, namespace=run.namespace, target=cfg.target, created_at=time.time())
    with gha.group(f"create RayJob {run.namespace}/{run.job_name}"):
        if kube.ensure_namespace(api, namespace_obj):
            log.info("created namespace %s", run.namespace)
        policy = sandbox.prepare(api, run.namespace, objects)
        # The API server (and the CRD's rules) judge the objects before any exists.
        for obj in (policy, configmap, job):
            kube.create(api, obj, dry_run=True)
        # Saved before anything is created, so that `cleanup` finds whatever a crash leaves.
        state.save(cfg.output_dir)
        kube.create(api, policy)  # before the RayJob: no pod of the run ever runs outside the sandbox
        log.info("created NetworkPolicy %s/%s (the run's sandbox)", run.namespace, policy["metadata"]["name"])
        kube.create(api, configmap)
        log.info(
            "created ConfigMap %s/%s (the training directory, %d files)",
            run.namespace,
            run.configmap_name,
            len(configmap.get("data", {})) + len(configmap.get("binaryData", {})),
        )
        kube.create(api, job)
        log.info("created RayJob %s/%s (%d worker(s), image %s)", run.namespace, run.job_name, cfg.training.workers, cfg.kube.ray_image)
    gha.set_outputs(cfg.github.output, {"job-name": run.job_name})
    return state


def gather_diagnostics(api: kube.Kube, state: RunState, log_tail: list[str]) -> list[diagnose.Finding]:
    """Findings from the RayJob, its pods and its events; never raises (it runs on the way out)."""
    try:
        run = rayjob.RunIdentity(state.job_name, state.namespace, {})
        job = kube.get_rayjob(api, state.namespace, state.job_name)
        pods = kube.list_pods(api, state.namespace, run.selector)
        cluster = ((job or {}).get("status") or {}).get("rayClusterName")
        if cluster:
            known = {p["metadata"]["name"] for p in pods}
            pods += [p for p in kube.list_pods(api, state.namespace, f"ray.io/cluster={cluster}") if p["metadata"]["name"] not in known]
        events = diagnose.events_of_run(kube.list_events(api, state.namespace), state.job_name)
        return diagnose.diagnose(job, pods, events, log_tail)
    except Exception as exc:
        log.warning("could not gather diagnostics: %s", exc)
        return []


def report_findings(findings: list[diagnose.Finding]) -> None:
    for finding in findings:
        gha.error(finding.annotation(), title=f"aks-ray: {finding.title}")


def wait(cfg: Config, state: RunState | None = None) -> JobState:
    """Follow the RayJob to a terminal state or the deadline; raise OperationalError unless it succeeded."""
    state = state or load_state(cfg)
    assert state is not None
    api = kube.connect(cfg)
    run = rayjob.RunIdentity(state.job_name, state.namespace, {})
    follower = LogFollower(api, state.namespace, cfg.output_dir / report.JOB_LOG)
    deadline = retry.Deadline(cfg.common.timeout + WAIT_GRACE_SECONDS, what=f"RayJob {state.namespace}/{state.job_name}")
    seen: dict[str, JobState | None] = {"last": None}

    def poll() -> JobState | None:
        obj = kube.get_rayjob(api, state.namespace, state.job_name)
        if obj is None:
            raise OperationalError(
                f"RayJob {state.namespace}/{state.job_name} does not exist (any more).",
                "it was deleted while aks-ray waited; run the job again, and do not clean up before `aks-ray collect`.",
            )
        current = JobState.of(obj)
        for line in transitions(seen["last"], current):
            log.info("RayJob %s/%s %s", state.namespace, state.job_name, line)
        if current.deployment == "Running" and (seen["last"] is None or seen["last"].deployment != "Running"):
            from .dashboard import command_line

            log.info("Ray dashboard while the job runs (localhost only): %s", command_line(cfg, run))
        seen["last"] = current
        follower.follow_new(kube.list_pods(api, state.namespace, f"{run.selector},{rayjob.COMPONENT_LABEL}=submitter"))
        return current if current.terminal else None

    try:
        with gha.group(f"wait for RayJob {state.namespace}/{state.job_name} (deadline {deadline.seconds:.0f} s)"):
            try:
                final = retry.wait_until(
                    poll, deadline, interval=POLL_SECONDS, fix="raise --timeout, or look at the events below for what held the job up."
                )
            except DeadlineExceeded:
                state.verdict = report.TIMED_OUT
                state.save(cfg.output_dir)
                report_findings(gather_diagnostics(api, state, report.read_job_log(cfg.output_dir)[-500:]))
                raise
    finally:
        follower.stop()
    state.verdict = final.verdict()
    state.save(cfg.output_dir)
    if final.succeeded:
        log.info("RayJob %s/%s succeeded in %.0f s", state.namespace, state.job_name, deadline.elapsed)
        return final
    report_findings(gather_diagnostics(api, state, report.read_job_log(cfg.output_dir)[-500:]))
    raise OperationalError(
        f"RayJob {state.namespace}/{state.job_name} ended {final.deployment} (job {final.job_status or 'not started'}"
        f"{', reason ' + final.reason if final.reason else ''}): {final.message[:300]}",
        "see the errors above, and job.log and k8s/ in the outputs.",
    )


def main(cfg: Config, words: tuple[str, ...]) -> int:
    if words[-1] == "submit":
        submit(cfg)
    else:
        wait(cfg)
    return 0
