"""The Ray dashboard of a run's cluster, on localhost and never in public: how to reach it, and `aks-ray dashboard`.

The dashboard is reached only through `kubectl port-forward` to the head
Service, bound to 127.0.0.1: whoever can reach a Ray dashboard can run code on
the cluster, so aks-ray never creates a LoadBalancer or an Ingress for it. Ray's
token authentication stays on; the token lives in a Secret named after the
RayCluster, and the command to read it is printed, never the token itself.

`job wait` and `collect` print these commands; this module reads the run
folder and the Config only, never another step's module.
"""

from __future__ import annotations

import logging
import shlex

from . import proc
from .config import Config
from .errors import DeadlineExceeded
from .rundir import RunIdentity

log = logging.getLogger(__name__)

DASHBOARD_PORT = 8265


def port_forward_args(cfg: Config, run: RunIdentity, local_port: int = DASHBOARD_PORT) -> list[str]:
    args = ["kubectl"]
    if cfg.kube.kubeconfig:
        args += ["--kubeconfig", str(cfg.kube.kubeconfig)]
    if cfg.kube.kube_context:
        args += ["--context", cfg.kube.kube_context]
    return [
        *args,
        "port-forward",
        "--address",
        "127.0.0.1",
        "-n",
        run.namespace,
        f"service/{run.head_service}",
        f"{local_port}:{DASHBOARD_PORT}",
    ]


def command_line(cfg: Config, run: RunIdentity) -> str:
    return shlex.join(port_forward_args(cfg, run))


def token_command(run: RunIdentity) -> str:
    # KubeRay names the Secret after the RayCluster, which is named after the RayJob.
    return (
        f"kubectl get secret -n {run.namespace} "
        f"$(kubectl get rayjob -n {run.namespace} {run.job_name} -o jsonpath='{{.status.rayClusterName}}') "
        "-o jsonpath='{.data.auth_token}' | base64 -d"
    )


def summary_paragraph(cfg: Config, run: RunIdentity, kept: bool) -> str:
    when = "The cluster was kept (--keep-cluster); open its dashboard" if kept else "While the cluster runs, open its dashboard"
    return (
        f"{when} on http://127.0.0.1:{DASHBOARD_PORT} with:\n\n"
        f"```bash\n{command_line(cfg, run)}\n```\n\n"
        f"It asks for Ray's token, which this prints (keep it secret):\n\n```bash\n{token_command(run)}\n```\n\n"
        "The dashboard is never exposed publicly: anyone who reaches it can run code on the cluster."
    )


def main(cfg: Config) -> int:
    run = cfg.run_dir.require_job(cfg.kube.job_name, cfg.kube.namespace, cfg.target).identity()
    args = port_forward_args(cfg, run)
    proc.require_executable(
        "kubectl", "install kubectl (https://kubernetes.io/docs/tasks/tools/), or run scripts/tools/get-helm.sh, which brings one."
    )
    log.info("Ray dashboard on http://127.0.0.1:%d until Ctrl-C or --timeout (%d s)", DASHBOARD_PORT, cfg.common.timeout)
    log.info("the dashboard asks for Ray's token: %s", token_command(run))
    try:
        result = proc.run(args, timeout=cfg.common.timeout)
    except DeadlineExceeded:
        log.info("closed the port-forward after --timeout (%d s)", cfg.common.timeout)
        return 0
    return 0 if result.returncode == 0 else 1
