"""`aks-ray collect`: everything needed to understand the run, before anything is deleted.

It works after any failure: each piece is collected on its own, and a piece
that cannot be had is noted in k8s/collect-notes.txt rather than failing the
rest. Layout of --output-dir:

    job.log                      the driver's log: the head's job-driver-<id>.log, else the most
                                 complete submitter log (`ray job logs --follow`), else what
                                 `job wait` streamed
    model.pt                     copied from the head pod (when training got that far)
    k8s/rayjob.yaml              the RayJob, status included
    k8s/raycluster.yaml          its RayCluster
    k8s/events.yaml              the events about this run's objects
    k8s/pods/<pod>.yaml          each pod of the run (spec and status)
    k8s/pods/<pod>.<container>.log (and .previous.log after a restart)
    k8s/head/session-logs/       the head's /tmp/ray/session_latest/logs
    k8s/head/artifacts/          result.json (and model.pt) from the head
    metrics.json, summary.md, training-curves.png, timings.json   (report.write_outputs; timings.json's
                                 `job_phases` from the objects above and job.log's records: phases.py)

No kubeconfig, token or Secret is ever read into the outputs: Secrets are not
collected, and any literal environment value whose name suggests a credential
is replaced by "<redacted>" in the YAML files.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import logging
import shutil
import tarfile
import time
from pathlib import Path
from typing import Any

import yaml

from . import cost, dashboard, diagnose, gha, jobspec, kube, metrics, phases, report
from . import redact as redaction
from .config import Config
from .errors import AksRayError
from .jobstatus import JobState
from .rundir import MODEL, SUMMARY, RunState

log = logging.getLogger(__name__)

HEAD_SESSION_LOGS = "/tmp/ray/session_latest/logs"  # noqa: S108 (a path inside the head pod)
_TEXT_SUFFIXES = (".log", ".out", ".err", ".txt")
EXEC_TIMEOUT_SECONDS = 120
LOG_TAIL_LINES = 30  # of job.log, in the summary of a run that did not succeed


# --------------------------------------------------------------- pure parts


def redact(obj: Any) -> Any:
    """A copy of an API object fit for the outputs (redact.py: credential env values, tokens, managedFields)."""
    return redaction.object(obj)


def dump_yaml(obj: Any) -> str:
    return yaml.safe_dump(redact(obj), sort_keys=False, width=120)


def pick_driver_log(pods: list[dict[str, Any]], logs: dict[str, str]) -> str:
    """The most complete submitter log: the one with the most lines of the driver's output.

    Not the newest: a retried submitter that only printed "waiting for the dashboard"
    before the run ended must not replace the first one's whole log. On a tie, the
    newer pod's (it followed the same job to a later point).
    """
    ordered = sorted(pods, key=lambda p: p["metadata"].get("creationTimestamp") or "")
    best = ""
    for pod in ordered:
        text = logs.get(pod["metadata"]["name"], "")
        if text.strip() and len(text.splitlines()) >= len(best.splitlines()):
            best = text
    return best


def head_driver_log(session_logs: Path, job_id: str) -> str:
    """The driver's own log on the head (job-driver-<submission id>.log, Ray's job manager writes it), or ''.

    It is the whole output of the entrypoint, unlike the submitter's `ray job logs
    --follow`, whose stream can end early and lose the last lines (the final metrics).
    """
    if not job_id:
        return ""
    path = session_logs / f"job-driver-{job_id}.log"
    return path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""


def head_result(artifacts: Path) -> dict[str, Any] | None:
    """result.json the training wrote on the head (train_mnist.py): its final metrics, when it got that far."""
    path = artifacts / "result.json"
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None
    return doc if isinstance(doc, dict) and isinstance(doc.get("final"), dict) else None


def outcome_status(job: dict[str, Any] | None, state: RunState) -> str:
    if state.verdict:
        return state.verdict
    current = JobState.of(job)
    return current.verdict() if current.terminal else report.FAILED


def safe_extract(archive: bytes, destination: Path) -> list[str]:
    """Unpack a tar.gz from a pod, refusing links and paths that leave `destination`."""
    destination.mkdir(parents=True, exist_ok=True)
    root = destination.resolve()
    names = []
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        for member in tar.getmembers():
            target = (destination / member.name).resolve()
            if not (member.isfile() or member.isdir()) or (target != root and root not in target.parents):
                continue
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            source = tar.extractfile(member)
            if source is not None:
                data = source.read()
                if member.name.endswith(_TEXT_SUFFIXES):  # Ray's session logs: redacted like every other log
                    data = redaction.text(data.decode("utf-8", errors="replace")).encode("utf-8")
                target.write_bytes(data)
                names.append(member.name)
    return names


# ----------------------------------------------------------------- I/O parts


def exec_tar(api: kube.Kube, namespace: str, pod: str, container: str, directory: str) -> bytes:
    """tar.gz of a folder in a pod, through exec (base64 on the wire: the exec channel is text)."""
    from kubernetes.stream import stream

    # The folder's contents, not the folder: k8s/head/session-logs/ holds the logs themselves.
    command = ["sh", "-c", f"tar -czf - -C '{directory}' . | base64"]
    output = stream(
        api.core.connect_get_namespaced_pod_exec,
        pod,
        namespace,
        container=container,
        command=command,
        stderr=False,
        stdin=False,
        stdout=True,
        tty=False,
        _request_timeout=EXEC_TIMEOUT_SECONDS,
    )
    return base64.b64decode("".join(output.split()))


class Collector:
    def __init__(self, cfg: Config, api: kube.Kube, state: RunState) -> None:
        self.cfg, self.api, self.state = cfg, api, state
        self.run_dir = cfg.run_dir
        self.k8s = self.run_dir.k8s
        self.notes: list[str] = []

    def note(self, what: str, exc: BaseException | str) -> None:
        message = kube.api_message(exc) if isinstance(exc, BaseException) else exc
        self.notes.append(f"{what}: {message}")
        log.warning("%s: %s", what, message)

    def write(self, relative: str, text: str) -> None:
        path = self.k8s / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(redaction.text(text), encoding="utf-8")

    def run(self) -> tuple[dict[str, Any] | None, list[dict[str, Any]], list[dict[str, Any]]]:
        ns, name = self.state.namespace, self.state.job_name
        if self.k8s.exists():
            shutil.rmtree(self.k8s)
        self.k8s.mkdir(parents=True)

        job = None
        try:
            job = kube.get_rayjob(self.api, ns, name)
            self.write("rayjob.yaml", dump_yaml(job) if job else "# the RayJob no longer exists\n")
        except Exception as exc:
            self.note(f"RayJob {ns}/{name}", exc)
        cluster_name = ((job or {}).get("status") or {}).get("rayClusterName", "")
        if cluster_name:
            try:
                cluster = kube.get_raycluster(self.api, ns, cluster_name)
                self.write("raycluster.yaml", dump_yaml(cluster) if cluster else "# the RayCluster no longer exists\n")
            except Exception as exc:
                self.note(f"RayCluster {ns}/{cluster_name}", exc)

        pods: list[dict[str, Any]] = []
        try:
            pods = kube.run_pods(self.api, self.state.identity(), job)
        except Exception as exc:
            self.note("pods", exc)

        events: list[dict[str, Any]] = []
        try:
            events = diagnose.events_of_run(kube.list_events(self.api, ns), name)
            self.write("events.yaml", dump_yaml(events))
        except Exception as exc:
            self.note("events", exc)

        submitter_logs: dict[str, str] = {}
        for pod in pods:
            pod_name = pod["metadata"]["name"]
            self.write(f"pods/{pod_name}.yaml", dump_yaml(pod))
            statuses = {
                s["name"]: s
                for s in ((pod.get("status") or {}).get("containerStatuses") or [])
                + ((pod.get("status") or {}).get("initContainerStatuses") or [])
            }
            for container in [c["name"] for c in pod["spec"].get("initContainers", []) + pod["spec"]["containers"]]:
                try:
                    text = kube.pod_log(self.api, ns, pod_name, container)
                    self.write(f"pods/{pod_name}.{container}.log", text)
                    if container == "ray-job-submitter":
                        submitter_logs[pod_name] = text
                except Exception as exc:
                    self.note(f"log of {ns}/{pod_name} {container}", exc)
                if (statuses.get(container) or {}).get("restartCount"):
                    try:
                        self.write(
                            f"pods/{pod_name}.{container}.previous.log", kube.pod_log(self.api, ns, pod_name, container, previous=True)
                        )
                    except Exception as exc:
                        self.note(f"previous log of {ns}/{pod_name} {container}", exc)

        # The head's files first: its driver log is the most complete job.log there is.
        self._head_files(pods)
        self._driver_log(pods, submitter_logs, job)
        if self.notes:
            self.write("collect-notes.txt", "What could not be collected:\n" + "\n".join(f"- {n}" for n in self.notes) + "\n")
        return job, pods, events

    def _driver_log(self, pods: list[dict[str, Any]], submitter_logs: dict[str, str], job: dict[str, Any] | None) -> None:
        submitters = [p for p in pods if p["metadata"]["name"] in submitter_logs]
        job_id = ((job or {}).get("status") or {}).get("jobId", "")
        text = head_driver_log(self.k8s / "head/session-logs", job_id)
        if text:
            log.info("job.log is the driver's log from the head (job-driver-%s.log)", job_id)
        else:
            text = pick_driver_log(submitters, submitter_logs)
        if not text:
            head = self._running_head(pods)
            job_id = ((job or {}).get("status") or {}).get("jobId")
            if head and job_id:
                try:
                    from kubernetes.stream import stream

                    text = stream(
                        self.api.core.connect_get_namespaced_pod_exec, head, self.state.namespace, container="ray-head",
                        command=["ray", "job", "logs", job_id], stderr=True, stdin=False, stdout=True, tty=False,
                        _request_timeout=EXEC_TIMEOUT_SECONDS,
                    )  # fmt: skip
                except Exception as exc:
                    self.note("the driver log from the head (ray job logs)", exc)
        if text:
            self.run_dir.write_job_log(redaction.text(text))
        elif self.run_dir.job_log.exists():
            self.note("the driver log", "no submitter log is left; job.log keeps what `aks-ray job wait` streamed")
        else:
            self.note("the driver log", "no submitter pod and no head pod: there is no driver log")

    @staticmethod
    def _running_head(pods: list[dict[str, Any]]) -> str | None:
        for pod in pods:
            labels = pod["metadata"].get("labels") or {}
            if labels.get("ray.io/node-type") == "head" and (pod.get("status") or {}).get("phase") == "Running":
                return pod["metadata"]["name"]
        return None

    def _head_files(self, pods: list[dict[str, Any]]) -> None:
        head = self._running_head(pods)
        if head is None:
            self.note("head pod files", "the head pod is gone or not running; metrics come from job.log, there is no model.pt")
            return
        for directory, relative in ((HEAD_SESSION_LOGS, "head/session-logs"), (jobspec.HEAD_ARTIFACTS_DIR, "head/artifacts")):
            try:
                safe_extract(exec_tar(self.api, self.state.namespace, head, "ray-head", directory), self.k8s / relative)
            except Exception as exc:
                self.note(f"{directory} from {self.state.namespace}/{head}", exc)
        artifacts = self.k8s / "head/artifacts"
        # The driver writes model.pt at the top of its artifacts folder (and a copy under checkpoint/).
        candidates = [artifacts / MODEL, *sorted(artifacts.rglob(MODEL))] if artifacts.exists() else []
        model = next((path for path in candidates if path.is_file()), None)
        if model is not None:
            shutil.copyfile(model, self.run_dir.model)
            log.info("copied %s from %s/%s", MODEL, self.state.namespace, head)


def cost_estimate(cfg: Config, api: kube.Kube, state: RunState) -> dict[str, Any] | None:
    """The aks run's estimated cost (metrics.json's `cost` block): its nodes' seconds since submission, at list price.

    Never a failure: nodes that cannot be listed, or a price list out of reach, are a notice.
    """
    ended = dt.datetime.now(dt.timezone.utc)
    started = dt.datetime.fromtimestamp(state.created_at, dt.timezone.utc) if state.created_at else ended
    try:
        nodes = kube.list_nodes(api)
    except AksRayError as exc:
        gha.notice(f"no cost estimate: the cluster's nodes could not be listed ({exc}).", title="aks-ray: cost")
        return None
    # cost.PRICES_URL read here, not bound as a default, so a test can point it at a stand-in.
    return cost.cost_block(cost.node_seconds(nodes, started, ended), cfg.azure.location, prices_url=cost.PRICES_URL)


def record_job_phases(cfg: Config, job: dict[str, Any] | None, pods: list[dict[str, Any]], collected_at: float) -> None:
    """timings.json's `job_phases`: read now, while the RayJob and its pods still exist (cleanup deletes them)."""
    training = metrics.parse_log(cfg.run_dir.read_job_log())
    try:
        found = phases.job_phases(job, pods, training.epochs, training.driver, collected_at=collected_at)
    except Exception as exc:  # an object of a shape never seen: the phases are a figure, never worth the collection
        log.warning("could not work out the run's phases: %r", exc)
        return
    cfg.run_dir.save_job_phases([p.to_json() for p in found])
    if found:
        log.info("phases (seconds since the RayJob was created): %s", ", ".join(f"{p.phase} {p.seconds:.0f}" for p in found))


def collect(cfg: Config, state: RunState) -> dict[str, Any]:
    """Collect into --output-dir/k8s/, then write the same outputs as every target.

    When the cluster cannot be reached at all, the outputs are still written
    (from what `job wait` streamed into job.log) before the error is raised.
    """
    run_dir = cfg.run_dir
    unreachable: AksRayError | None = None
    job, pods, events = None, [], []
    try:
        api = kube.connect(cfg)
        with gha.group(f"collect RayJob {state.namespace}/{state.job_name} into {cfg.output_dir}"), run_dir.phase("collect"):
            job, pods, events = Collector(cfg, api, state).run()
        record_job_phases(cfg, job, pods, collected_at=time.time())
    except AksRayError as exc:
        unreachable = exc
    estimate = cost_estimate(cfg, api, state) if cfg.target == "aks" and unreachable is None else None
    status = outcome_status(job, state)
    error = str(unreachable) if unreachable else ""
    if status != report.SUCCEEDED and not unreachable:
        log_lines = run_dir.read_job_log()
        findings = diagnose.diagnose(job, pods, events, log_lines[-500:])
        error = "\n".join(f"{f.title}: {f.annotation()}" for f in findings)
        # The findings say what kind of failure it was; the log's last lines say what the training said
        # (a traceback's last line is its error), which the summary must show whatever the finding.
        if log_lines:
            tail = "\n".join(log_lines[-LOG_TAIL_LINES:])
            error = f"{error}\n\nThe last lines of job.log:\n{tail}" if error else tail
    run = state.identity()
    result = head_result(run_dir.k8s / "head/artifacts")
    outcome = report.RunOutcome(
        target=cfg.target,
        status=status,
        job_id=((job or {}).get("status") or {}).get("jobId", ""),
        job_name=state.job_name,
        error=error,
        dashboard=dashboard.summary_paragraph(cfg, run, kept=cfg.common.keep_cluster),
        # The step output is for a later workflow step, which can only use a cluster that was kept.
        dashboard_command=dashboard.command_line(cfg, run) if cfg.common.keep_cluster else "",
        result=result,
    )
    doc = report.write_outputs(cfg, outcome)
    if estimate is not None:
        doc["cost"] = estimate
        run_dir.save_metrics(doc)
        text = "\n### Cost\n\n" + cost.markdown(estimate)
        run_dir.write_text(SUMMARY, run_dir.path(SUMMARY).read_text(encoding="utf-8") + text)
        gha.append_summary(cfg.github.step_summary, text)
    if unreachable is not None:
        raise unreachable
    return doc


def main(cfg: Config) -> int:
    state = cfg.run_dir.require_job(cfg.kube.job_name, cfg.kube.namespace, cfg.target)
    doc = collect(cfg, state)
    log.info("outputs in %s: status %s", cfg.output_dir, doc["status"])
    return 0
