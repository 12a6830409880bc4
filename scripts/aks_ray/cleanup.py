"""`aks-ray cleanup`: delete what this run created, found by its labels, and nothing else.

The label selector always carries the run's own label (aks-ray.io/run=<job
name>), so a concurrent run in the same namespace, or anything not made by
aks-ray, is never touched. Deleting the RayJob lets Kubernetes remove what
KubeRay made for it (RayCluster, pods, submitter Job, head Service, the token
Secret); the ConfigMap is aks-ray's own and is deleted by label too. A namespace
this run created (its aks-ray.io/created-by-run annotation) is deleted once it
is empty; one that existed before, or holds another run's objects, stays.
"""

from __future__ import annotations

import logging

from . import gha, kube, rayjob, retry
from .config import Config
from .rundir import RunState

log = logging.getLogger(__name__)

DELETE_DEADLINE_SECONDS = 300


def delete_run(cfg: Config, state: RunState) -> int:
    """Delete the run's RayJobs and ConfigMaps; wait until the RayJobs are gone. Returns how many objects were deleted."""
    api = kube.connect(cfg)
    run = state.identity()
    deleted = 0
    with gha.group(f"clean up run {state.job_name} in namespace {state.namespace}"):
        for job in kube.list_custom(api, state.namespace, "rayjobs", run.selector):
            name = job["metadata"]["name"]
            try:
                kube.call(
                    f"delete RayJob {state.namespace}/{name}",
                    lambda name=name: api.custom.delete_namespaced_custom_object(
                        rayjob.RAY_GROUP, rayjob.RAY_VERSION_API, state.namespace, "rayjobs", name, propagation_policy="Background"
                    ),
                )
                deleted += 1
                log.info("deleted RayJob %s/%s", state.namespace, name)
            except Exception as exc:
                if not kube.is_not_found(exc):
                    raise
        configmaps = kube.call(
            f"list ConfigMaps in {state.namespace}",
            lambda: api.core.list_namespaced_config_map(state.namespace, label_selector=run.selector),
        )
        for configmap in configmaps.items:
            name = configmap.metadata.name
            try:
                kube.call(
                    f"delete ConfigMap {state.namespace}/{name}",
                    lambda name=name: api.core.delete_namespaced_config_map(name, state.namespace),
                )
                deleted += 1
                log.info("deleted ConfigMap %s/%s", state.namespace, name)
            except Exception as exc:
                if not kube.is_not_found(exc):
                    raise
        deleted += delete_network_policies(api, state.namespace, run.selector)
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


def delete_network_policies(api: kube.Kube, namespace: str, selector: str) -> int:
    """The run's sandbox NetworkPolicy (sandbox.py), found by the run's label; deleted after the RayJob."""
    from kubernetes import client

    networking = client.NetworkingV1Api(api.api_client)
    deleted = 0
    policies = kube.call(
        f"list NetworkPolicies in {namespace}", lambda: networking.list_namespaced_network_policy(namespace, label_selector=selector)
    )
    for policy in policies.items:
        name = policy.metadata.name
        try:
            kube.call(
                f"delete NetworkPolicy {namespace}/{name}", lambda name=name: networking.delete_namespaced_network_policy(name, namespace)
            )
            deleted += 1
            log.info("deleted NetworkPolicy %s/%s", namespace, name)
        except Exception as exc:
            if not kube.is_not_found(exc):
                raise
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
