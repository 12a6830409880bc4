"""`aks-ray run --target kubeconfig`: the whole Kubernetes half against the current kubeconfig.

operator install -> job submit -> job wait -> collect -> cleanup. Collect runs
whatever happened before it, and cleanup after it (unless --keep-cluster), so a
failed run still leaves its logs and diagnostics and no Ray cluster behind.

--dry-run prints every object the run would create or apply (the operator
chart's, when helm can render it, then the Namespace, the ConfigMap and the
RayJob) as multi-document YAML on stdout, and touches nothing.
"""

from __future__ import annotations

import logging
import sys

from . import cleanup, collect, dashboard, gha, job, operator, rayjob, report
from .config import Config
from .errors import AksRayError, OperationalError

log = logging.getLogger(__name__)


def dry_run(cfg: Config) -> int:
    run = rayjob.identity(cfg, rayjob.new_job_name(cfg))
    objects = rayjob.render_run(cfg, run)
    source = operator.chart_source(cfg)  # a chart path that does not exist is bad input here too
    header = f"# aks-ray --dry-run: the objects of RayJob {run.namespace}/{run.job_name}; nothing was created.\n"
    try:
        operator_objects = operator.render_operator(cfg)
        header += f"# KubeRay operator: {source.describe()}, release {cfg.kube.operator_namespace}/{operator.RELEASE_NAME}\n"
    except Exception as exc:  # no helm, or helm could not fetch or render the chart: say so, and still print the run's objects
        operator_objects = []
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        header += f"# KubeRay operator objects not rendered ({reason}); `aks-ray operator install` would install {source.describe()}\n"
    sys.stdout.write(header + rayjob.to_yaml(operator_objects + objects))
    sys.stdout.flush()
    return 0


def run(cfg: Config) -> int:
    if cfg.common.dry_run:
        return dry_run(cfg)
    timings = report.Timings()
    # Render first: bad input (training dir too big, bad chart path) fails before anything is created.
    rayjob.render_run(cfg, rayjob.identity(cfg, "aks-ray-check"))
    operator.chart_source(cfg)
    with timings.phase("operator"):
        operator.main(cfg, ("operator", "install"))
    with timings.phase("submit"):
        state = job.submit(cfg)
    failure: AksRayError | None = None
    try:
        with timings.phase("wait"):
            job.wait(cfg, state)
    except OperationalError as exc:
        failure = exc
    finally:
        # Collection runs before any deletion, whatever happened above.
        state = job.load_state(cfg) or state
        try:
            doc = collect.collect(cfg, state, timings)
            log.info("outputs in %s: status %s", cfg.output_dir, doc["status"])
        except Exception as exc:
            gha.error(f"collecting the outputs failed: {exc}", title="aks-ray collect")
            failure = failure or OperationalError(f"collecting the outputs failed: {exc}")
        if cfg.common.keep_cluster:
            gha.notice(
                f"--keep-cluster: the Ray cluster keeps running, for {cfg.common.keep_cluster_ttl / 3600:g} h after the job "
                "ended (--keep-cluster-ttl). Dashboard: "
                f"{dashboard.command_line(cfg, rayjob.RunIdentity(state.job_name, state.namespace, {}))}"
            )
        else:
            try:
                with timings.phase("cleanup"):
                    cleanup.delete_run(cfg, state)
            except Exception as exc:
                gha.error(
                    f"cleanup failed: {exc}; delete the run by hand: kubectl delete rayjob,configmap -n "
                    f"{state.namespace} -l {rayjob.RunIdentity(state.job_name, state.namespace, {}).selector}",
                    title="aks-ray cleanup",
                )
                failure = failure or OperationalError(f"cleanup failed: {exc}")
    if failure is not None:
        raise failure
    return 0
