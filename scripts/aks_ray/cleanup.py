"""`aks-ray cleanup`: delete what this run created, found by its labels; then what lost runs left that has expired.

The label selector always carries the run's own label (aks-ray.io/run=<job
name>), so a concurrent run in the same namespace, or anything not made by
aks-ray, is never touched by that part. Deleting the RayJob lets Kubernetes remove what
KubeRay made for it (RayCluster, pods, submitter Job, head Service, the token
Secret); the ConfigMap is aks-ray's own and is deleted by label too. A namespace
this run created (its aks-ray.io/created-by-run annotation) is deleted once it
is empty; one that existed before, or holds another run's objects, stays.

Then it sweeps the namespace (kube_sweep.sweep_after_cleanup): objects of other
runs are deleted only once their own aks-ray.io/expires-at has passed, when every
deadline and deletion rule of those runs is over (a runner lost, a job stopped).
"""

from __future__ import annotations

import logging

from . import gha, kube, kube_sweep, retry
from .config import Config
from .rundir import RunState

log = logging.getLogger(__name__)

DELETE_DEADLINE_SECONDS = 300


def delete_run(cfg: Config, state: RunState) -> int:
    """Delete the run's RayJob, ConfigMap and NetworkPolicy; wait until the RayJob is gone. Returns how many objects were deleted."""
    api = kube.connect(cfg)
    run = state.identity()
    deleted = 0
    with gha.group(f"clean up run {state.job_name} in namespace {state.namespace}"):
        for kind in kube.RUN_OBJECT_KINDS:
            for obj in kube.list_run_objects(api, state.namespace, kind, run.selector):
                deleted += kube.delete_run_object(api, kind, state.namespace, obj["metadata"]["name"])
        deadline = retry.Deadline(DELETE_DEADLINE_SECONDS, what=f"deletion of run {state.job_name}")
        retry.wait_until(
            lambda: not kube.list_custom(api, state.namespace, "rayjobs", run.selector),
            deadline,
            interval=3.0,
            fix=f"look for finalizers on the RayJob: kubectl get rayjob -n {state.namespace} -l {run.selector} -o yaml",
        )
    if deleted == 0:
        log.info("nothing to delete: no object carries %s in namespace %s", run.selector, state.namespace)
    if kube.delete_namespace_if_empty(api, state.namespace, state.job_name):
        log.info("deleted namespace %s: this run created it, and nothing is left in it", state.namespace)
        return deleted
    kube_sweep.sweep_after_cleanup(api, state.namespace)
    return deleted


def main(cfg: Config) -> int:
    if cfg.target == "local":
        log.info("the local target leaves nothing to clean up")
        return 0
    state = cfg.run_dir.find_job(cfg.kube.job_name, cfg.kube.namespace, cfg.target)
    if state is None:
        log.info("no run to clean up: no state.json in %s and no --job-name", cfg.output_dir)
        return 0
    if cfg.common.keep_cluster:
        gha.notice(
            f"--keep-cluster: RayJob {state.namespace}/{state.job_name} and its Ray cluster are left running; "
            f"KubeRay deletes the cluster {cfg.common.keep_cluster_ttl / 3600:g} h after the job ended (--keep-cluster-ttl), "
            "`aks-ray cleanup` without the flag deletes them now."
        )
        return 0
    delete_run(cfg, state)
    return 0
