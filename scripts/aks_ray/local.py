"""The local target: a Ray head on this machine, the job submitted as a remote cluster receives it.

`ray start --head --block` runs as our child in its own process group, bound to
loopback, with token authentication on and a token that lives in a private
file, never in the outputs. The training folder goes up through the Ray Jobs
API as the job's working_dir, its log streams to the terminal, and whatever
happens (success, failure, deadline, Ctrl-C) the outputs are written and the
head we started is stopped, unless --keep-cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from . import gha, jobspec, metrics, phases, signals
from .config import Config
from .errors import EXIT_INTERRUPTED, DeadlineExceeded, OperationalError
from .metrics import ProgressAnnouncer
from .proc import terminate_group
from .report import FAILED, STOPPED, SUCCEEDED, TIMED_OUT, RunOutcome, write_outputs
from .retry import Deadline, retry, wait_until
from .rundir import LOCAL_ARTIFACTS, MODEL, RAY_LOGS, RAY_START_LOG, RunDir

log = logging.getLogger(__name__)

TERMINAL_JOB_STATES = {"SUCCEEDED": SUCCEEDED, "FAILED": FAILED, "STOPPED": STOPPED}
# Unix socket paths are limited to 107 bytes and Ray nests about 70 below its
# temp dir, so a deep output folder gets a short temp dir and a copy of the logs.
MAX_RAY_TEMP_DIR_LENGTH = 36


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ray_executable() -> str:
    """The `ray` next to this interpreter (the venv's), else the one on PATH."""
    beside = Path(sys.executable).parent / "ray"
    found = str(beside) if beside.exists() else shutil.which("ray")
    if found is None:
        raise OperationalError(
            "Ray is not installed in this environment.", "install the training extra: pip install 'aks-ray-action[train]'"
        )
    return found


# What the training process inherits from the runner: enough to run Python and
# reach the network, and nothing that is the runner's (ACTIONS_ID_TOKEN_REQUEST_*,
# GITHUB_TOKEN, GITHUB_ENV, GITHUB_OUTPUT, cloud credentials): the training code
# is the pull request's, not the workflow's.
_TRAINING_ENV_NAMES = frozenset(
    {"PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TERM", "VIRTUAL_ENV", "LD_LIBRARY_PATH"}
    | {"SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE"}
    | {"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy", "CUDA_VISIBLE_DEVICES"}
)


def training_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The minimal environment of the local Ray head, and so of the training code it runs."""
    return {
        name: value
        for name, value in environ.items()
        if name in _TRAINING_ENV_NAMES or name.startswith("LC_") or (name.startswith("RAY_") and name != "RAY_AUTH_TOKEN")
    }


@dataclass
class LocalRayHead:
    """A Ray head we started, and everything needed to reach and stop it."""

    temp_dir: Path
    cpus: int
    log_path: Path
    process: subprocess.Popen | None = None
    dashboard_port: int = 0
    auth_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="aks-ray-auth-")))
    token: str = field(default_factory=lambda: secrets.token_hex(32), repr=False)

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    @property
    def token_path(self) -> Path:
        return self.auth_dir / "auth_token"

    @property
    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def start(self, deadline: Deadline) -> None:
        # The token file is created 0600 inside a 0700 folder before Ray reads it.
        descriptor = os.open(self.token_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(self.token)
        retry(lambda: self._start_once(deadline), what="starting the local Ray head", attempts=3, retry_on=(OperationalError,))

    def _start_once(self, deadline: Deadline) -> None:
        self.dashboard_port = free_port()
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        args = [
            ray_executable(), "start", "--head", "--block",
            "--node-ip-address=127.0.0.1",
            f"--port={free_port()}",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={self.dashboard_port}",
            f"--ray-client-server-port={free_port()}",
            f"--dashboard-agent-listen-port={free_port()}",
            f"--num-cpus={self.cpus}",
            f"--temp-dir={self.temp_dir}",
            "--include-dashboard=true",
            "--disable-usage-stats",
        ]  # fmt: skip
        # The job's entrypoint says `python`: make that this interpreter, with Ray and torch, not whatever PATH finds first.
        path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
        env = {
            **training_environment(os.environ),
            "PATH": path,
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN_PATH": str(self.token_path),
            # On Linux Ray swaps a loopback --node-ip-address for the machine's
            # routable address; this is its switch for a single-machine cluster.
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        }
        env.pop("RAY_AUTH_TOKEN", None)
        log.info(
            "starting a Ray head on 127.0.0.1 (dashboard port %d, %d CPUs, temp dir %s)", self.dashboard_port, self.cpus, self.temp_dir
        )
        with open(self.log_path, "ab") as stdout:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen(
                args, env=env, stdout=stdout, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        try:
            wait_until(self._ready, Deadline(min(120.0, deadline.remaining), "the local Ray head to start"), interval=0.5)
        except DeadlineExceeded as exc:
            self.stop()
            raise OperationalError(
                f"{exc.message} See {self.log_path}.", "check that no firewall blocks loopback and that the machine has free memory"
            ) from exc

    def _ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise OperationalError(f"`ray start` exited with code {self.process.returncode} before the head was up.")
        request = urllib.request.Request(f"{self.dashboard_url}/api/version", headers=self.auth_headers)  # noqa: S310 (loopback, built here)
        try:
            with urllib.request.urlopen(request, timeout=2) as response:  # noqa: S310
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        """Stop exactly the processes we started (not `ray stop`, which stops every Ray on the machine)."""
        if self.process is not None:
            log.info("stopping the local Ray head (pid %d)", self.process.pid)
            # The job is over and the session is throwaway. The dashboard and its
            # agents exit on SIGTERM within a fraction of a second; the `ray start
            # --block` parent, gcs_server, raylet, the autoscaler's monitor and the
            # runtime-env agent ignore it (`ray stop` waits 16 s and then kills them
            # too), so they are killed as soon as the others are gone (settle), and
            # this returns once no process of the head runs.
            terminate_group(self.process, grace=3, settle=0.5)
            self.process = None
        shutil.rmtree(self.auth_dir, ignore_errors=True)


class LogStreamer:
    """Streams a job's log live: raw lines to the terminal, a progress line per epoch."""

    def __init__(self, client, job_id: str) -> None:
        self.client, self.job_id = client, job_id
        self.lines: list[str] = []
        self._partial = ""
        self._progress = ProgressAnnouncer()
        self._thread = threading.Thread(target=self._run, name="job-log", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        async def pump() -> None:
            async for chunk in self.client.tail_job_logs(self.job_id):
                self.feed(chunk)

        try:
            asyncio.run(pump())
        except Exception as exc:  # the final log is fetched whole afterwards; a broken stream only costs liveness
            log.debug("log stream ended: %s", exc)

    def feed(self, chunk: str) -> None:
        text = self._partial + chunk
        *complete, self._partial = text.split("\n")
        for line in complete:
            self.lines.append(line)
            sys.stderr.write(f"  | {line}\n")
            message = self._progress.announce(line)
            if message:
                log.info("%s", message)
        sys.stderr.flush()


def ray_temp_dir(output_dir: Path) -> Path:
    inside = output_dir / "ray"
    if len(str(inside)) <= MAX_RAY_TEMP_DIR_LENGTH:
        return inside
    return Path(tempfile.mkdtemp(prefix="aks-ray-"))


def wait_for_job(client, job_id: str, deadline: Deadline) -> str:
    def terminal() -> str | None:
        status = str(retry(lambda: client.get_job_status(job_id), what="reading the job status", attempts=5))
        status = status.split(".")[-1]
        return TERMINAL_JOB_STATES.get(status)

    return wait_until(terminal, deadline, interval=1.0, fix="raise --timeout, or train fewer epochs")


def artifacts_dir(cfg: Config) -> Path:
    """Where the driver writes model.pt and result.json on this machine."""
    return cfg.output_dir.resolve() / LOCAL_ARTIFACTS


def entrypoint(cfg: Config) -> str:
    """The driver's command line, as the job will run it."""
    data_dir = str(cfg.training.data_dir.resolve()) if cfg.training.data_dir else None
    return jobspec.entrypoint_command(cfg, str(artifacts_dir(cfg)), data_dir)


def run(cfg: Config) -> int:
    """The local target's one step; its outcome is in the outputs and the exit code (0, 1, or 130 if interrupted)."""
    if cfg.common.dry_run:  # nothing is created: no output folder, no token folder, no Ray
        print(f"would start a local Ray head and submit: {entrypoint(cfg)}")
        return 0
    from ray.job_submission import JobSubmissionClient

    run_dir = cfg.run_dir
    output_dir = run_dir.ensure().resolve()
    outcome = RunOutcome(target="local", status=FAILED)
    deadline = Deadline(cfg.common.timeout, "the training job")
    head = LocalRayHead(
        temp_dir=ray_temp_dir(output_dir),
        cpus=max(os.cpu_count() or 1, cfg.training.workers * cfg.training.cpus_per_worker),
        log_path=output_dir / RAY_START_LOG,
    )
    streamer: LogStreamer | None = None
    client = None
    interrupted = False
    moments: dict[str, float] = {}  # the phases aks-ray sees itself (phases.local_job_phases)
    job_info = None

    with signals.sigterm_as_interrupt():
        try:
            with gha.group("Start a local Ray head"), run_dir.phase("ray start"):
                moments[phases.HEAD_STARTING] = time.time()
                head.start(deadline)
                moments[phases.HEAD_READY] = time.time()
            with gha.group("Submit the training job"), run_dir.phase("submit"):
                client = retry(
                    lambda: JobSubmissionClient(head.dashboard_url, headers=head.auth_headers),
                    what="connecting to the Ray Jobs API",
                    attempts=5,
                )
                command = entrypoint(cfg)
                outcome.job_id = retry(
                    lambda: client.submit_job(
                        entrypoint=command,
                        runtime_env={"working_dir": str(cfg.training.training_dir.resolve()), "excludes": ["__pycache__", "*.pyc"]},
                        metadata={"submitted-by": "aks-ray"},
                    ),
                    what="submitting the job",
                    attempts=12,
                    retry_on=(RuntimeError,),
                    # The dashboard answers before the node's job agent is up.
                    is_transient=lambda exc: "No available agent" in str(exc) or "status code 5" in str(exc),
                )
                log.info("submitted %s: %s", outcome.job_id, command)
            with gha.group("Training (live log)"), run_dir.phase("train"):
                streamer = LogStreamer(client, outcome.job_id)
                streamer.start()
                outcome.status = wait_for_job(client, outcome.job_id, deadline)
        except KeyboardInterrupt:
            interrupted = True
            outcome.status = STOPPED
            log.error("interrupted: stopping the job and the Ray head; partial outputs are kept")
        except DeadlineExceeded as exc:
            outcome.status = TIMED_OUT
            outcome.error = str(exc)
            gha.error(str(exc), title="aks-ray: deadline")
        except OperationalError as exc:
            outcome.error = str(exc)
            gha.error(str(exc), title="aks-ray: local run failed")
        finally:
            with gha.group("Collect outputs"), run_dir.phase("collect"):
                job_info = collect(client, outcome, streamer, artifacts_dir(cfg), run_dir)
            moments[phases.OUTPUTS_COLLECTED] = time.time()
            if cfg.common.keep_cluster and head.process is not None:
                announce_kept_cluster(head, outcome)
            else:
                outcome.dashboard = (
                    "The local Ray cluster was stopped after the job; run again with `--keep-cluster` to keep its dashboard open."
                )
                with run_dir.phase("ray stop"):
                    head.stop()
                moments[phases.HEAD_STOPPED] = time.time()
                copy_ray_logs(head.temp_dir, output_dir)
            record_job_phases(run_dir, moments, job_info)
            write_outputs(cfg, outcome)

    log.info("status %s; outputs in %s", outcome.status, output_dir)
    if interrupted:
        return EXIT_INTERRUPTED
    return 0 if outcome.status == SUCCEEDED else 1


def collect(client, outcome: RunOutcome, streamer: LogStreamer | None, artifacts: Path, run_dir: RunDir):
    """job.log (whole, from Ray, or what was streamed) and model.pt, whatever state the job is in.

    Returns the Jobs API's record of the job (JobDetails, for its start and end times), or None.
    """
    if client is not None and outcome.job_id and outcome.status in (STOPPED, TIMED_OUT):
        with contextlib.suppress(Exception):
            client.stop_job(outcome.job_id)
            wait_for_job(client, outcome.job_id, Deadline(30, "the job to stop"))
    if streamer is not None:
        streamer.join(timeout=10)
    text = None
    if client is not None and outcome.job_id:
        try:
            text = retry(lambda: client.get_job_logs(outcome.job_id), what="fetching the job log", attempts=3)
        except Exception as exc:
            log.warning("could not fetch the whole job log (%s); keeping what was streamed", exc)
    if text is None and streamer is not None:
        text = "\n".join(streamer.lines)
    run_dir.write_job_log(text or "")
    model = artifacts / MODEL
    if model.exists():
        shutil.copy2(model, run_dir.model)
    if outcome.status != SUCCEEDED and not outcome.error:
        outcome.error = "\n".join((text or "").splitlines()[-25:])
    if client is None or not outcome.job_id:
        return None
    try:
        return retry(lambda: client.get_job_info(outcome.job_id), what="reading the job's record", attempts=3)
    except Exception as exc:  # the times are a figure; without them the phases list is shorter
        log.warning("could not read the job's record (%s); its submission and end are left out of the phases", exc)
        return None


def record_job_phases(run_dir: RunDir, moments: dict[str, float], job_info) -> None:
    """timings.json's `job_phases` for the local run: aks-ray's own moments, the Jobs API's and the training's."""
    training = metrics.parse_log(run_dir.read_job_log())
    try:
        found = phases.local_job_phases(moments, job_info, training.epochs, training.driver)
    except Exception as exc:  # a record of a shape never seen: the phases are a figure, never worth the outputs
        log.warning("could not work out the run's phases: %r", exc)
        return
    run_dir.save_job_phases([p.to_json() for p in found])
    if found:
        log.info("phases (seconds since `ray start`): %s", ", ".join(f"{p.phase} {p.seconds:.1f}" for p in found))


def copy_ray_logs(temp_dir: Path, output_dir: Path) -> None:
    """The Ray session logs belong in the outputs; copy them when Ray's temp dir had to live elsewhere."""
    if temp_dir.is_relative_to(output_dir):
        return
    logs = temp_dir / "session_latest" / "logs"
    if logs.is_dir():
        shutil.copytree(logs, output_dir / RAY_LOGS, dirs_exist_ok=True)
    shutil.rmtree(temp_dir, ignore_errors=True)


def announce_kept_cluster(head: LocalRayHead, outcome: RunOutcome) -> None:
    assert head.process is not None
    command = f"kill -TERM -{head.process.pid}"
    outcome.dashboard = (
        f"The local Ray cluster is still running (--keep-cluster). Dashboard: {head.dashboard_url} "
        f"(token authentication is on; the token is in `{head.token_path}`). Stop it with `{command}`."
    )
    outcome.dashboard_command = command
    log.info("Ray dashboard: %s (token in %s); stop the cluster with: %s", head.dashboard_url, head.token_path, command)
