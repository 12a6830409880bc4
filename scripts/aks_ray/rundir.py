"""The run folder (--output-dir): every file name in it, and the state the steps hand each other.

The action runs each step as its own process, so steps never pass objects to
one another: what a later step needs, an earlier one saves here, and only here.
No step reads or writes a file of the output folder by name; they call this
module, which knows the layout:

    state.json          the RayJob's name and namespace, saved by `job submit` before it creates anything
    infra.json          the Azure resources `infra apply` manages (names and public outputs only)
    steps.json          each step that ran: its outcome, seconds and, when it failed, why
    job.log             the driver's log
    model.pt            the trained model, when training got that far
    metrics.json        status, dataset, per-epoch and final metrics (report.write_outputs)
    timings.json        seconds per step, every step that ran, and the total; on Kubernetes also
                        `job_phases`: when each phase of the run happened, from the cluster's and
                        the job's own timestamps (phases.py), in seconds since the RayJob was created
                        (local target: since `aks-ray` began starting its Ray head)
    summary.md          the Markdown summary, also the job's step summary
    training-curves.png loss and accuracy per epoch
    k8s/                what `collect` gathered from the cluster
    artifacts/, ray/, ray-logs/, ray-start.log   the local target's working files

Nothing here is a secret: names, figures and logs the steps have already redacted.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import UserError

log = logging.getLogger(__name__)

STATE = "state.json"
INFRA = "infra.json"
STEPS = "steps.json"
JOB_LOG = "job.log"
MODEL = "model.pt"
METRICS = "metrics.json"
TIMINGS = "timings.json"
SUMMARY = "summary.md"
CURVES = "training-curves.png"
K8S = "k8s"
LOCAL_ARTIFACTS = "artifacts"
RAY_START_LOG = "ray-start.log"
RAY_LOGS = "ray-logs"

# Step outcomes, in GitHub's words for a step's `outcome`.
SUCCESS, FAILURE, CANCELLED = "success", "failure", "cancelled"

# Labels: who manages an object, and which run it belongs to. Cleanup deletes by
# the run label only, so concurrent runs in one namespace never touch each other.
MANAGED_BY = ("app.kubernetes.io/managed-by", "aks-ray")
RUN_LABEL = "aks-ray.io/run"

JOB_PHASES = "job_phases"  # timings.json's key for the run's phases (a list, not a step's seconds)


@dataclass(frozen=True)
class RunIdentity:
    """The names and labels of one run's objects on the cluster."""

    job_name: str
    namespace: str
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def configmap_name(self) -> str:
        return f"{self.job_name}-training"

    @property
    def head_service(self) -> str:
        # KubeRay names the RayJob's head Service after the RayJob.
        return f"{self.job_name}-head-svc"

    @property
    def selector(self) -> str:
        """The label selector that finds this run's objects and nothing else."""
        return f"{MANAGED_BY[0]}={MANAGED_BY[1]},{RUN_LABEL}={self.job_name}"


@dataclass
class RunState:
    """What later steps need to find this run's objects on the cluster. Never a secret."""

    job_name: str
    namespace: str
    target: str = ""
    created_at: float = 0.0
    verdict: str = ""

    def identity(self) -> RunIdentity:
        return RunIdentity(self.job_name, self.namespace)


@dataclass(frozen=True)
class StepRecord:
    """One step that ran: `step` is its id in the pipeline (pipeline.STEPS)."""

    step: str
    outcome: str
    seconds: float = 0.0
    error: str = ""


@dataclass
class Timings:
    """Seconds per phase, in the order the phases ran; persisted in timings.json by RunDir.record_phase.

    `job_phases` is phases.job_phases' (local: phases.local_job_phases') list as JSON: [{phase, seconds, at}, ...].
    """

    phases: dict[str, float] = field(default_factory=dict)
    job_phases: list[dict[str, Any]] = field(default_factory=list)

    @property
    def total(self) -> float:
        return round(sum(self.phases.values()), 3)

    def add(self, name: str, seconds: float) -> None:
        self.phases[name] = round(self.phases.get(name, 0.0) + seconds, 3)

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {**self.phases, "total": self.total}
        if self.job_phases:
            doc[JOB_PHASES] = self.job_phases
        return doc


class Phase:
    """`with run_dir.phase("collect"):` times a block and adds it to timings.json, even when it fails."""

    def __init__(self, run_dir: RunDir, name: str) -> None:
        self.run_dir, self.name = run_dir, name

    def __enter__(self) -> None:
        self.started = time.monotonic()

    def __exit__(self, *exc: object) -> None:
        self.run_dir.record_phase(self.name, time.monotonic() - self.started)


class RunDir:
    """The output folder of one run. Creates nothing until something is saved."""

    def __init__(self, root: Path) -> None:
        self.root = root

    # ------------------------------------------------------------ paths

    def path(self, name: str) -> Path:
        return self.root / name

    @property
    def job_log(self) -> Path:
        return self.root / JOB_LOG

    @property
    def model(self) -> Path:
        return self.root / MODEL

    @property
    def k8s(self) -> Path:
        return self.root / K8S

    def ensure(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        return self.root

    # ------------------------------------------------------- job state

    def save_job(self, state: RunState) -> None:
        self._write_json(STATE, asdict(state))

    def load_job(self) -> RunState | None:
        data = self._read_json(STATE)
        if not data or not data.get("job_name"):
            return None
        return RunState(**{k: v for k, v in data.items() if k in RunState.__dataclass_fields__})

    def find_job(self, job_name: str | None, namespace: str, target: str) -> RunState | None:
        """The run to work on: state.json, else the RayJob named by --job-name; None when neither exists."""
        state = self.load_job()
        if state is None and job_name:
            state = RunState(job_name=job_name, namespace=namespace, target=target)
        return state

    def require_job(self, job_name: str | None, namespace: str, target: str) -> RunState:
        state = self.find_job(job_name, namespace, target)
        if state is None:
            raise UserError(
                f"no run to work on: {self.root / STATE} does not exist and --job-name is empty.",
                "run `aks-ray job submit` with the same --output-dir first, or pass the RayJob's name as --job-name.",
            )
        return state

    # ----------------------------------------------------- infra state

    def save_infra(self, doc: Mapping[str, Any]) -> None:
        self._write_json(INFRA, dict(doc))

    def load_infra(self) -> dict[str, Any] | None:
        return self._read_json(INFRA)

    def update_infra(self, **values: Any) -> None:
        self.save_infra({**(self.load_infra() or {}), **values})

    # ------------------------------------------------------ what ran

    def record_step(self, record: StepRecord) -> None:
        doc = self._read_json(STEPS) or {"steps": []}
        doc["steps"] = [*doc.get("steps", []), asdict(record)]
        self._write_json(STEPS, doc)

    def steps(self) -> list[StepRecord]:
        doc = self._read_json(STEPS) or {}
        fields = StepRecord.__dataclass_fields__
        return [StepRecord(**{k: v for k, v in item.items() if k in fields}) for item in doc.get("steps", []) if isinstance(item, dict)]

    def failed_step(self) -> StepRecord | None:
        """The first step that failed or was cancelled, if any."""
        return next((record for record in self.steps() if record.outcome != SUCCESS), None)

    # --------------------------------------------------------- timings

    def timings(self) -> Timings:
        doc = self._read_json(TIMINGS) or {}
        job_phases = doc.get(JOB_PHASES)
        return Timings(
            {name: float(value) for name, value in doc.items() if name != "total" and isinstance(value, (int, float))},
            [p for p in job_phases if isinstance(p, dict)] if isinstance(job_phases, list) else [],
        )

    def save_timings(self, timings: Timings) -> None:
        self._write_json(TIMINGS, timings.to_json(), sort_keys=False)

    def record_phase(self, name: str, seconds: float) -> Timings:
        """Add a phase to timings.json: each step is its own process, so the file is the timer."""
        timings = self.timings()
        timings.add(name, seconds)
        self.save_timings(timings)
        return timings

    def save_job_phases(self, job_phases: list[dict[str, Any]]) -> Timings:
        """Put the run's phases (phases.job_phases, as JSON) into timings.json, beside the steps' seconds."""
        timings = self.timings()
        timings.job_phases = list(job_phases)
        self.save_timings(timings)
        return timings

    def phase(self, name: str) -> Phase:
        return Phase(self, name)

    # ------------------------------------------------------ the job log

    def read_job_log(self) -> list[str]:
        path = self.job_log
        return path.read_text(encoding="utf-8", errors="replace").splitlines() if path.exists() else []

    def write_job_log(self, text: str) -> None:
        self.ensure()
        self.job_log.write_text(text if not text or text.endswith("\n") else text + "\n", encoding="utf-8")

    def append_job_log(self, line: str) -> None:
        self.ensure()
        with self.job_log.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")

    # -------------------------------------------------------- metrics

    def load_metrics(self) -> dict[str, Any] | None:
        return self._read_json(METRICS)

    def save_metrics(self, doc: Mapping[str, Any]) -> None:
        self._write_json(METRICS, dict(doc), sort_keys=False)

    def run_succeeded(self) -> bool | None:
        """The run's verdict from metrics.json (written by every target), or None if there is none."""
        status = (self.load_metrics() or {}).get("status")
        return None if not status else status == "SUCCEEDED"

    # ---------------------------------------------------------- files

    def write_text(self, name: str, text: str) -> Path:
        self.ensure()
        path = self.root / name
        path.write_text(text, encoding="utf-8")
        return path

    def _write_json(self, name: str, doc: Any, sort_keys: bool = True) -> None:
        self.write_text(name, json.dumps(doc, indent=2, sort_keys=sort_keys) + "\n")

    def _read_json(self, name: str) -> dict[str, Any] | None:
        path = self.root / name
        if not path.is_file():
            return None
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            log.warning("%s is not valid JSON; ignoring it", path)
            return None
        return doc if isinstance(doc, dict) else None
