"""`aks-ray job submit` and `aks-ray job wait`: create the RayJob, then follow it to a verdict.

The action runs each step as its own process, so submit saves the run's names
in the run folder (rundir.RunState, no secrets) and wait, collect, cleanup and
dashboard read them back from there.

wait logs every transition of the RayJob's jobDeploymentStatus, jobStatus and
reason; streams the submitter pod's log (the driver's output: `ray job logs
--follow`) into the terminal and job.log as soon as the pod runs; and gives up
at the deadline. A failure ends in plain `::error::` annotations with the fix.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Any

from . import dashboard, diagnose, gha, jobstatus, kube, logstream, metrics, rayjob, redact, report, retry, sandbox
from .config import Config
from .errors import DeadlineExceeded, OperationalError, UserError
from .jobstatus import (
    TERMINAL_JOB,
    JobState,
    never_fits,
    newest_workload,
    queue_message,
    transitions,
    waiting_in_queue,
    with_rays_own_status,
)
from .rundir import RunDir, RunState

log = logging.getLogger(__name__)

SUBMITTER_CONTAINER = "ray-job-submitter"
POLL_SECONDS = 5.0
# KubeRay enforces --timeout itself (activeDeadlineSeconds); aks-ray waits a
# little longer so that KubeRay's verdict, with its reason, arrives first.
WAIT_GRACE_SECONDS = 120


# ------------------------------------------------------- pure state logic


def submitter_pod_ready_for_logs(pod: dict[str, Any]) -> bool:
    """True once the submitter container has started: only then has it a log to follow."""
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == SUBMITTER_CONTAINER:
            state = status.get("state") or {}
            return bool(state.get("running") or state.get("terminated"))
    return False


# ---------------------------------------------------------- log following


class LogFollower:
    """Streams each submitter pod's log as the pods appear, resuming dropped streams, each line printed once.

    A stream that ends while its pod still runs (an API server restart, an idle
    connection cut, the read timeout) is opened again from where it was
    (logstream.PodPosition); a retried submitter's replay of the driver's log is
    dropped line by line (logstream.DriverLines).
    """

    def __init__(self, kube_: kube.Kube, namespace: str, run_dir: RunDir) -> None:
        self.kube, self.namespace, self.run_dir = kube_, namespace, run_dir
        self.followed: set[str] = set()
        self.threads: list[threading.Thread] = []
        self.responses: list[Any] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.driver = logstream.DriverLines()
        self.progress = metrics.ProgressAnnouncer()
        run_dir.write_job_log("")

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

    def _open(self, pod: str, position: logstream.PodPosition) -> Any:
        kwargs: dict[str, Any] = {"container": SUBMITTER_CONTAINER, "follow": True, "timestamps": True}
        since = position.since_seconds(time.time())
        if since is not None:
            kwargs["since_seconds"] = since
        return self.kube.core.read_namespaced_pod_log(
            pod, self.namespace, _preload_content=False, _request_timeout=kube.STREAM_TIMEOUT, **kwargs
        )

    def _stream(self, pod: str) -> None:
        position = logstream.PodPosition()
        attempt = 0
        while not self.stopping.is_set():
            position.restart()
            try:
                response = self._open(pod, position)
                self.responses.append(response)
                self._read(pod, response, position)
            except Exception as exc:  # a dropped or timed-out stream: look at the pod, then resume or stop
                log.debug("log stream of %s/%s ended: %s", self.namespace, pod, exc)
            if not self._still_running(pod):
                return
            attempt += 1
            delay = min(10.0, 0.5 * 2**attempt)
            log.info("the log stream of %s/%s dropped while the pod runs: resuming in %.0f s", self.namespace, pod, delay)
            self.stopping.wait(delay)

    def _read(self, pod: str, response: Any, position: logstream.PodPosition) -> None:
        pending = b""
        for chunk in response.stream(4096, decode_content=True):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for raw in lines:
                self._pod_line(pod, raw.decode("utf-8", errors="replace"), position)
        if pending:
            self._pod_line(pod, pending.decode("utf-8", errors="replace"), position)

    def _still_running(self, pod: str) -> bool:
        """True while the submitter container runs (or its pod cannot be read: then it is worth another look)."""
        try:
            obj = kube.call(f"read pod {self.namespace}/{pod}", lambda: self.kube.core.read_namespaced_pod(pod, self.namespace))
        except Exception as exc:
            if kube.is_not_found(exc):
                return False
            log.debug("cannot read pod %s/%s: %s", self.namespace, pod, exc)
            return True
        for status in (self.kube.to_dict(obj).get("status") or {}).get("containerStatuses") or []:
            if status.get("name") == SUBMITTER_CONTAINER:
                return "terminated" not in (status.get("state") or {})
        return True

    def _pod_line(self, pod: str, raw: str, position: logstream.PodPosition) -> None:
        stamp, line = logstream.split_timestamp(raw)
        with self.lock:
            if not position.take(stamp) or not self.driver.new(pod, line):
                return
        self._line(line)

    def _line(self, line: str) -> None:
        # Prefixed, as the local target does: a training line can then never be a workflow command.
        line = redact.text(line)
        with self.lock:
            sys.stderr.write(f"  | {line}\n")
            sys.stderr.flush()
            self.run_dir.append_job_log(line)
            progress = self.progress.announce(line)
            if progress:
                log.info("%s", progress)

    def stop(self, grace: float = 5.0) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=grace)
        for response in self.responses:
            try:
                response.close()
            except Exception as exc:
                log.debug("closing a log stream: %s", exc)


# -------------------------------------------------------------- commands


def prepare_sandbox(api: kube.Kube, namespace: str, objects: list[dict[str, Any]]) -> dict[str, Any]:
    """Before the run's objects are created: the namespace's quota and limit range, a word on its labels.

    Returns the run's NetworkPolicy with the API server's own addresses added
    to the blocked ranges (the kubeconfig names the server, so only here, at
    submit, are they known).
    """
    labels = kube.namespace_labels(api, namespace)
    if labels.get(sandbox.POD_SECURITY_LABEL) != sandbox.POD_SECURITY_LEVEL:
        gha.warning(
            f"namespace {namespace} does not enforce the restricted Pod Security Standard "
            f"({sandbox.POD_SECURITY_LABEL}={labels.get(sandbox.POD_SECURITY_LABEL, 'unset')}); the run's pods still follow it. "
            f"Fix: kubectl label namespace {namespace} {sandbox.POD_SECURITY_LABEL}={sandbox.POD_SECURITY_LEVEL} --overwrite",
            title="aks-ray: sandbox",
        )
    for obj in objects:
        if obj["kind"] in ("ResourceQuota", "LimitRange") and kube.ensure(api, obj):
            log.info("created %s %s/%s", obj["kind"], namespace, obj["metadata"]["name"])
    policy = next(obj for obj in objects if obj["kind"] == "NetworkPolicy")
    server = kube.api_server_url(api)
    added = sandbox.block_addresses(policy, sandbox.api_server_addresses(server))
    if added:
        log.info("the training pods may not reach the API server %s (%s)", server, ", ".join(added))
    return policy


def submit(cfg: Config, job_name: str | None = None) -> RunState:
    """Render everything (bad input fails here, before anything exists), then create it."""
    name = job_name or rayjob.new_job_name(cfg)
    run = rayjob.identity(cfg, name)
    objects = rayjob.render_run(cfg, run)
    namespace_obj, configmap, job = (rayjob.find(objects, kind) for kind in ("Namespace", "ConfigMap", "RayJob"))
    api = kube.connect(cfg)
    state = RunState(job_name=run.job_name, namespace=run.namespace, target=cfg.target, created_at=time.time())
    run_dir = cfg.run_dir
    with gha.group(f"create RayJob {run.namespace}/{run.job_name}"):
        if cfg.kube.queue_name:
            require_kueue(api, run.namespace, cfg.kube.queue_name)
        if kube.ensure_namespace(api, namespace_obj):
            log.info("created namespace %s", run.namespace)
        policy = prepare_sandbox(api, run.namespace, objects)
        # The API server (and the CRD's rules) judge the objects before any exists.
        for obj in (policy, configmap, job):
            kube.create(api, obj, dry_run=True)
        # Saved before anything is created, so that `cleanup` finds whatever a crash leaves.
        run_dir.save_job(state)
        kube.create(api, policy)  # before the RayJob: no pod of the run ever runs outside the sandbox
        log.info("created NetworkPolicy %s/%s (the run's sandbox)", run.namespace, policy["metadata"]["name"])
        kube.create(api, configmap)
        log.info(
            "created ConfigMap %s/%s (the training directory, %d files)",
            run.namespace,
            run.configmap_name,
            len(configmap.get("data", {})) + len(configmap.get("binaryData", {})),
        )
        created = kube.create(api, job)
        log.info("created RayJob %s/%s (%d worker(s), image %s)", run.namespace, run.job_name, cfg.training.workers, cfg.kube.ray_image)
        own_run_objects(api, created, (configmap, policy))
    gha.set_outputs(cfg.github.output, {"job-name": run.job_name})
    return state


def require_kueue(api: kube.Kube, namespace: str, queue_name: str) -> None:
    """Refuse --queue-name on a cluster without Kueue, before anything is created: nothing would ever admit the RayJob.

    Kueue's Workload API answers 404 when no Kueue is installed; a 403 (the identity may not read
    Workloads) says nothing either way, and the run goes on.
    """
    try:
        kube.list_workloads(api, namespace, "")
    except Exception as exc:
        if kube.is_not_found(exc):
            raise UserError(
                f"--queue-name {queue_name}: the cluster has no Kueue (it serves no workloads.{kube.KUEUE_GROUP} API), so nothing "
                "would ever admit the suspended RayJob.",
                "install Kueue on the cluster (the cluster owner's), or leave --queue-name empty to run without a queue.",
            ) from None
        log.debug("cannot tell whether Kueue is installed (%s): going on", kube.api_message(exc)[:200])


def own_run_objects(api: kube.Kube, created_job: dict[str, Any], objects: tuple[dict[str, Any], ...]) -> None:
    """The RayJob owns the run's ConfigMap and NetworkPolicy: when KubeRay's DeleteSelf rule (or anyone) deletes
    the RayJob of a run whose runner was lost, Kubernetes deletes them too. Not fatal: cleanup deletes them by label."""
    for obj in objects:
        try:
            kube.set_owner(api, obj, created_job)
        except Exception as exc:
            meta = obj["metadata"]
            log.warning(
                "could not make RayJob %s the owner of %s %s/%s (%s): only `aks-ray cleanup` deletes it",
                created_job["metadata"]["name"],
                obj["kind"],
                meta["namespace"],
                meta["name"],
                kube.api_message(exc),
            )


def gather_diagnostics(api: kube.Kube, state: RunState, log_tail: list[str]) -> list[diagnose.Finding]:
    """Findings from the RayJob, its pods and its events; never raises (it runs on the way out)."""
    try:
        job = kube.get_rayjob(api, state.namespace, state.job_name)
        pods = kube.run_pods(api, state.identity(), job)
        events = diagnose.events_of_run(kube.list_events(api, state.namespace), state.job_name)
        return diagnose.diagnose(job, pods, events, log_tail)
    except Exception as exc:
        log.warning("could not gather diagnostics: %s", exc)
        return []


def report_findings(findings: list[diagnose.Finding]) -> None:
    for finding in findings:
        gha.error(finding.annotation(), title=f"aks-ray: {finding.title}")


class KueueView:
    """The run's Kueue Workload, for Kueue's own words on why a queued run waits.

    Optional: an identity that may not read Workloads (403), or a cluster whose Kueue serves no
    Workload API this client knows, is told once and never asked again; the run goes on.
    """

    def __init__(self, api: kube.Kube, namespace: str) -> None:
        self.api, self.namespace, self.readable = api, namespace, True

    def workload(self, rayjob: dict[str, Any]) -> dict[str, Any] | None:
        uid = (rayjob.get("metadata") or {}).get("uid")
        if not (self.readable and uid):
            return None
        try:
            return newest_workload(kube.list_workloads(self.api, self.namespace, f"{kube.KUEUE_JOB_UID_LABEL}={uid}"))
        except Exception as exc:
            if kube.status_of(exc) in (401, 403, 404):
                self.readable = False
                log.info(
                    "cannot read Kueue's workloads in %s (%s): the queue is followed through the RayJob alone",
                    self.namespace,
                    kube.api_message(exc)[:200],
                )
            else:
                log.debug("reading Kueue's workloads in %s: %s", self.namespace, exc)
            return None


class Requeued(Exception):
    """Kueue suspended the admitted RayJob again (evicted or preempted it): it waits in the queue anew."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# Kueue may evict an admitted run (preemption by a higher priority, a node lost); after this many
# admissions the run gives up rather than cycle through the queue until the runner's own limit.
MAX_ADMISSIONS = 3
QUEUE_REMINDER_SECONDS = 300.0


def read_rayjob(api: kube.Kube, state: RunState) -> dict[str, Any]:
    obj = kube.get_rayjob(api, state.namespace, state.job_name)
    if obj is None:
        raise OperationalError(
            f"RayJob {state.namespace}/{state.job_name} does not exist (any more).",
            "it was deleted while aks-ray waited; run the job again, and do not clean up before `aks-ray collect`.",
        )
    return obj


def wait_for_admission(
    api: kube.Kube, state: RunState, queue_name: str, kueue: KueueView, budget: retry.Deadline, seen: dict[str, JobState | None]
) -> JobState | None:
    """Wait while Kueue holds the RayJob in its queue: None once admitted, the final state if it ended while queued.

    Raises DeadlineExceeded when `budget` (what is left of --queue-timeout) runs out first.
    """
    where = f"RayJob {state.namespace}/{state.job_name}"
    said = {"message": None, "at": 0.0}
    held: dict[str, Any] = {"obj": None, "workload": None}

    def poll() -> JobState | str | None:
        obj = read_rayjob(api, state)
        current = JobState.of(obj)
        for line in transitions(seen["last"], current):
            log.info("%s %s", where, line)
        seen["last"] = current
        if current.terminal:
            return current
        workload = kueue.workload(obj)
        held.update(obj=obj, workload=workload)
        if not waiting_in_queue(obj, workload):
            return "admitted"
        message = queue_message(workload)
        if message != said["message"] or time.monotonic() - said["at"] > QUEUE_REMINDER_SECONDS:
            log.info(
                "%s queued in %s (%s%s; %.0f s of --queue-timeout left)",
                where,
                queue_name,
                current.deployment or "not yet seen by KubeRay",
                f"; Kueue: {message}" if message else "",
                budget.remaining,
            )
            if never_fits(workload) and message != said["message"]:
                gha.warning(f"{where} can never be admitted by the queue {queue_name} as it is: {message}", title="aks-ray: queue")
            said.update(message=message, at=time.monotonic())
        return None

    try:
        result = retry.wait_until(poll, budget, interval=POLL_SECONDS)
    except DeadlineExceeded:
        waited = budget.seconds
        finding = diagnose.queue_finding(held["obj"], queue_name, waited, queue_message(held["workload"]))
        report_findings([finding])
        raise DeadlineExceeded(
            f"{where} was never admitted by Kueue's queue {queue_name} within {waited:.0f} s (--queue-timeout).",
            "raise the quota of the ClusterQueue behind that LocalQueue (the cluster owner's), or raise --queue-timeout "
            "so the run waits longer for the runs ahead of it.",
        ) from None
    if isinstance(result, JobState):
        return result
    log.info(
        "%s admitted by Kueue's queue %s after %.0f s: --start-timeout and --timeout count from now", where, queue_name, budget.elapsed
    )
    return None


def wait(cfg: Config, state: RunState) -> JobState:
    """Follow the RayJob to a terminal state or the deadline; raise OperationalError unless it succeeded.

    With --queue-name the RayJob first waits in Kueue's queue, within --queue-timeout (the time queued
    in total); the job's own deadline starts at each admission, as KubeRay's do.
    """
    api = kube.connect(cfg)
    run_dir = cfg.run_dir
    queue_name = cfg.kube.queue_name
    kueue = KueueView(api, state.namespace)
    seen: dict[str, JobState | None] = {"last": None}
    queued_for = 0.0
    admissions = 0
    while True:
        if queue_name:
            budget = retry.Deadline(max(0.0, cfg.kube.queue_timeout - queued_for), what=f"the queue {queue_name}")
            try:
                ended = wait_for_admission(api, state, queue_name, kueue, budget, seen)
            except DeadlineExceeded:
                state.verdict = report.TIMED_OUT
                run_dir.save_job(state)
                raise
            queued_for += budget.elapsed
            admissions += 1
            if ended is not None:
                return conclude(api, cfg, state, ended, retry.Deadline(WAIT_GRACE_SECONDS, what="the ended RayJob"))
        try:
            return follow(api, cfg, state, kueue, seen)
        except Requeued as requeued:
            if admissions >= MAX_ADMISSIONS:
                state.verdict = report.FAILED
                run_dir.save_job(state)
                raise OperationalError(
                    f"RayJob {state.namespace}/{state.job_name} was evicted by Kueue {admissions} times ({requeued.message}).",
                    f"run it when the queue {queue_name} is quieter, or ask the cluster owner about the ClusterQueue's "
                    "preemption (a run of a higher priority takes the quota back).",
                ) from None
            gha.warning(
                f"Kueue took RayJob {state.namespace}/{state.job_name} out of the running and back into the queue {queue_name}: "
                f"{requeued.message or 'suspended again'}",
                title="aks-ray: queue",
            )


def follow(api: kube.Kube, cfg: Config, state: RunState, kueue: KueueView, seen: dict[str, JobState | None]) -> JobState:
    """From the start (or the admission) to a terminal state, within --timeout and a grace."""
    run = state.identity()
    run_dir = cfg.run_dir
    queue_name = cfg.kube.queue_name
    follower = LogFollower(api, state.namespace, run_dir)
    deadline = retry.Deadline(cfg.common.timeout + WAIT_GRACE_SECONDS, what=f"RayJob {state.namespace}/{state.job_name}")

    def poll() -> JobState | None:
        obj = read_rayjob(api, state)
        current = JobState.of(obj)
        for line in transitions(seen["last"], current):
            log.info("RayJob %s/%s %s", state.namespace, state.job_name, line)
        if queue_name and not current.terminal and ((obj.get("spec") or {}).get("suspend")):
            workload = kueue.workload(obj)
            if waiting_in_queue(obj, workload):
                seen["last"] = current
                raise Requeued(queue_message(workload))
        if (
            current.deployment in ("Retrying", "Suspended", "Suspending")
            and current.deployment != getattr(seen["last"], "deployment", None)
            # With a queue, a suspended RayJob is the queue's business (wait_for_admission); KubeRay
            # still shows Suspended for a moment after Kueue's admission.
            and not (queue_name and current.deployment != "Retrying")
        ):
            gha.warning(
                f"RayJob {state.namespace}/{state.job_name} is {current.deployment}: {current.meaning()}", title="aks-ray: job state"
            )
        if current.deployment == "Running" and (seen["last"] is None or seen["last"].deployment != "Running"):
            log.info("Ray dashboard while the job runs (localhost only): %s", dashboard.command_line(cfg, run))
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
                run_dir.save_job(state)
                report_findings(gather_diagnostics(api, state, run_dir.read_job_log()[-500:]))
                raise
    finally:
        follower.stop()
    return conclude(api, cfg, state, final, deadline)


def conclude(api: kube.Kube, cfg: Config, state: RunState, final: JobState, deadline: retry.Deadline) -> JobState:
    """The verdict of a terminal RayJob, saved; Ray asked when KubeRay's is not the training's; raise unless it succeeded."""
    run_dir = cfg.run_dir
    if final.not_the_applications:
        final = ask_ray(api, state, final, deadline)
    state.verdict = final.verdict()
    run_dir.save_job(state)
    if final.succeeded:
        log.info("RayJob %s/%s succeeded in %.0f s", state.namespace, state.job_name, deadline.elapsed)
        return final
    report_findings(gather_diagnostics(api, state, run_dir.read_job_log()[-500:]))
    raise failure_error(state, final)


# Asks the Ray Jobs API on the head for a job's status; the head's Ray containers carry the
# cluster's token in their environment (KubeRay's authOptions), which the client sends.
RAY_STATUS_SCRIPT = (
    "import sys\n"
    "from ray.job_submission import JobSubmissionClient\n"
    "status = JobSubmissionClient('http://127.0.0.1:8265').get_job_status(sys.argv[1])\n"
    "print('AKS_RAY_JOB_STATUS', getattr(status, 'value', status))\n"
)
RAY_STATUS_POLL_SECONDS = 15.0


def ray_job_status(api: kube.Kube, namespace: str, head: str, job_id: str) -> str | None:
    """Ray's own status of the job (SUCCEEDED, RUNNING, ...), asked on the head pod; None if it cannot be had."""
    from kubernetes.stream import stream

    try:
        output = stream(
            api.core.connect_get_namespaced_pod_exec, head, namespace, container="ray-head",
            command=["python", "-c", RAY_STATUS_SCRIPT, job_id], stderr=True, stdin=False, stdout=True, tty=False,
            _request_timeout=60,
        )  # fmt: skip
    except Exception as exc:
        log.warning("could not ask the Ray head %s/%s for the job's status: %s", namespace, head, kube.api_message(exc))
        return None
    for line in str(output).splitlines():
        if line.startswith("AKS_RAY_JOB_STATUS "):
            return line.split()[1]
    log.warning("the Ray head %s/%s did not say the job's status: %s", namespace, head, str(output)[-300:])
    return None


def ask_ray(api: kube.Kube, state: RunState, final: JobState, deadline: retry.Deadline) -> JobState:
    """KubeRay failed the RayJob for its own bookkeeping (the submitter's stream ended early): ask Ray itself.

    While Ray's job still runs, wait for it (the head stays until KubeRay's deletion rule), within the deadline.
    """
    gha.warning(
        f"KubeRay marked RayJob {state.namespace}/{state.job_name} {final.deployment} ({final.reason}), which is not the "
        "training's verdict: asking the Ray head for the job's own status.",
        title="aks-ray: KubeRay's bookkeeping",
    )
    job = kube.get_rayjob(api, state.namespace, state.job_name) or {}
    job_id = (job.get("status") or {}).get("jobId", "")
    heads = kube.list_pods(
        api, state.namespace, f"ray.io/cluster={(job.get('status') or {}).get('rayClusterName', '')},ray.io/node-type=head"
    )
    head = next((p["metadata"]["name"] for p in heads if (p.get("status") or {}).get("phase") == "Running"), None)
    if not (job_id and head):
        log.warning("no running Ray head to ask: KubeRay's verdict stands")
        return final
    while True:
        status = ray_job_status(api, state.namespace, head, job_id)
        if status is None or status in TERMINAL_JOB:
            break
        if deadline.expired:
            log.warning("Ray's job %s is still %s at the deadline: KubeRay's verdict stands", job_id, status)
            break
        log.info("Ray's job %s is still %s (KubeRay stopped following it): waiting for it", job_id, status)
        time.sleep(min(RAY_STATUS_POLL_SECONDS, deadline.remaining))
    corrected = with_rays_own_status(final, status)
    if corrected is not final:
        log.info("Ray says the job %s ended %s: that is the run's verdict", job_id, status)
    return corrected


def failure_error(state: RunState, final: JobState) -> OperationalError:
    """The error a terminal, unsuccessful RayJob ends `job wait` with: KubeRay's own words, and where to look."""
    where = f"RayJob {state.namespace}/{state.job_name}"
    if final.refused:
        return OperationalError(
            f"KubeRay refused {where} (ValidationFailed): {final.message[:500]}",
            "fix the option the message names (a --job-name KubeRay refuses is checked up front, so this is likely "
            "--ray-image's Ray version or a spec this KubeRay version does not support) and run again.",
        )
    return OperationalError(
        f"{where} ended {final.deployment} (job {final.job_status or 'not started'}"
        f"{', reason ' + final.reason if final.reason else ''}): {jobstatus.brief(final.message)}",
        "see the errors above, and job.log and k8s/ in the outputs.",
    )


def submit_step(cfg: Config) -> int:
    submit(cfg)
    return 0


def wait_step(cfg: Config) -> int:
    wait(cfg, cfg.run_dir.require_job(cfg.kube.job_name, cfg.kube.namespace, cfg.target))
    return 0
