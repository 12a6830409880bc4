"""The Kubernetes client, loaded from --kubeconfig/--kube-context, and small retried API helpers.

Every object crosses this module as a plain dict in the API's JSON shape
(camelCase, as `kubectl get -o json` shows it), so the pure functions of the
other modules (diagnose, job states) take exactly what the API server returns.
Transient API failures (throttling, 5xx, dropped connections) are retried a
bounded number of times; anything else is raised at once.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from . import retry
from .config import Config
from .errors import OperationalError, UserError
from .rayjob import CREATED_BY_RUN_ANNOTATION, RAY_GROUP, RAY_VERSION_API
from .rundir import RUN_LABEL, RunIdentity

log = logging.getLogger(__name__)
T = TypeVar("T")

TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}
# Every API call's timeout (connect, read), so a hung call ends long before the shortest deadline it
# serves (cleanup's 300 s, the operator's 300 s, job wait's poll): with call()'s 5 attempts and their
# back-off, a call that hangs every time gives up within about 3 minutes.
REQUEST_TIMEOUT = (10.0, 30.0)
# A followed log stream reads nothing while the training is quiet; after this long without a byte it
# is opened again from where it was (job.LogFollower), which also revives a connection cut silently.
STREAM_TIMEOUT = (10.0, 120.0)
# Who changes what aks-ray applies server-side (metadata.managedFields names it).
FIELD_MANAGER = "aks-ray"
# A KubeRay CRD is over a megabyte of JSON: more time to send, store and answer than an ordinary call.
APPLY_TIMEOUT = (10.0, 120.0)


@dataclass
class Kube:
    """The API groups this project uses, sharing one ApiClient."""

    api_client: Any
    core: Any
    apps: Any
    batch: Any
    custom: Any
    extensions: Any

    def to_dict(self, obj: Any) -> dict[str, Any]:
        """A client model as the API's JSON (camelCase keys), the shape every pure function takes."""
        return self.api_client.sanitize_for_serialization(obj)


def kubeconfig_path(cfg: Config) -> Path | None:
    """--kubeconfig (or $KUBECONFIG through the config's fallback), else the client's default."""
    return cfg.kube.kubeconfig


def connect(cfg: Config) -> Kube:
    """Load the kubeconfig and build the clients. A missing or broken kubeconfig is bad input."""
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    path = kubeconfig_path(cfg)
    if path is not None and not path.is_file():
        raise UserError(f"--kubeconfig {path} does not exist.", "point --kubeconfig (or KUBECONFIG) at your cluster's kubeconfig file.")
    try:
        api_client = config.new_client_from_config(config_file=str(path) if path else None, context=cfg.kube.kube_context)
    except ConfigException as exc:
        where = str(path) if path else os.environ.get("KUBECONFIG") or "~/.kube/config"
        raise UserError(
            f"could not load a Kubernetes configuration from {where}: {exc}",
            "set --kubeconfig to a valid kubeconfig and --kube-context to one of its contexts (kubectl config get-contexts lists them).",
        ) from None
    with_request_timeout(api_client)
    return Kube(
        api_client=api_client,
        core=client.CoreV1Api(api_client),
        apps=client.AppsV1Api(api_client),
        batch=client.BatchV1Api(api_client),
        custom=client.CustomObjectsApi(api_client),
        extensions=client.ApiextensionsV1Api(api_client),
    )


def with_request_timeout(api_client: Any, timeout: tuple[float, float] | None = None) -> None:
    """Give every request of this client a timeout unless its caller chose one (kubernetes' default is none at all).

    The client's REST layer is where every API group's calls meet (api_client.call_api
    -> rest_client.request), so one wrapper there covers the calls of every module.
    """
    rest = api_client.rest_client
    send = rest.request

    def request(*args: Any, _request_timeout: Any = None, **kwargs: Any) -> Any:
        return send(*args, _request_timeout=_request_timeout or timeout or REQUEST_TIMEOUT, **kwargs)

    rest.request = request


def status_of(exc: BaseException) -> int | None:
    """The HTTP status of an API error (kubernetes raises subclasses such as NotFoundException), else None."""
    from kubernetes.client.exceptions import ApiException

    return exc.status if isinstance(exc, ApiException) else None


def is_transient(exc: BaseException) -> bool:
    status = status_of(exc)
    if status is not None:
        return status in TRANSIENT_STATUS
    # urllib3 connection errors, timeouts and resets: the API server may be restarting.
    return isinstance(exc, (ConnectionError, TimeoutError, OSError)) or type(exc).__module__.startswith("urllib3")


def is_not_found(exc: BaseException) -> bool:
    return status_of(exc) == 404


def is_conflict(exc: BaseException) -> bool:
    return status_of(exc) == 409


def api_message(exc: BaseException) -> str:
    """The API server's own words (the Status object's message), else the exception text."""
    import json

    body = getattr(exc, "body", None)
    if body:
        try:
            return json.loads(body).get("message") or str(body)
        except (ValueError, AttributeError):
            return str(body)
    return str(exc)


def call(what: str, fn: Callable[[], T], attempts: int = 5, sleep: Callable[[float], None] | None = None) -> T:
    """One API call, retried on transient failures only."""
    kwargs: dict[str, Any] = {"sleep": sleep} if sleep is not None else {}
    try:
        return retry.retry(fn, what=what, attempts=attempts, first_delay=1.0, max_delay=10.0, is_transient=is_transient, **kwargs)
    except Exception as exc:
        if status_of(exc) is None and is_transient(exc):
            # The API server stayed unreachable through every retry: the cluster, not aks-ray.
            raise OperationalError(
                f"the Kubernetes API server did not answer ({what}): {str(exc).splitlines()[0][:300]}",
                "check that the cluster is up and that the kubeconfig is current (kubectl get nodes); "
                "a cluster that was re-created has new certificates, so fetch its kubeconfig again.",
            ) from exc
        raise


def get_or_none(what: str, fn: Callable[[], T]) -> T | None:
    try:
        return call(what, fn)
    except Exception as exc:
        if is_not_found(exc):
            return None
        raise


# ------------------------------------------------------------------ RayJob


def get_rayjob(kube: Kube, namespace: str, name: str) -> dict[str, Any] | None:
    return get_or_none(
        f"read RayJob {namespace}/{name}",
        lambda: kube.custom.get_namespaced_custom_object(RAY_GROUP, RAY_VERSION_API, namespace, "rayjobs", name),
    )


def get_raycluster(kube: Kube, namespace: str, name: str) -> dict[str, Any] | None:
    return get_or_none(
        f"read RayCluster {namespace}/{name}",
        lambda: kube.custom.get_namespaced_custom_object(RAY_GROUP, RAY_VERSION_API, namespace, "rayclusters", name),
    )


def list_custom(kube: Kube, namespace: str, plural: str, selector: str) -> list[dict[str, Any]]:
    result = call(
        f"list {plural} in {namespace}",
        lambda: kube.custom.list_namespaced_custom_object(RAY_GROUP, RAY_VERSION_API, namespace, plural, label_selector=selector),
    )
    return list(result.get("items", []))


# What a run creates with its run label, in the order cleanup and `job sweep` delete it: the RayJob first
# (Kubernetes then deletes what KubeRay made for it), the NetworkPolicy last (no pod outside its sandbox).
RUN_OBJECT_KINDS = ("RayJob", "ConfigMap", "NetworkPolicy")


def _networking(kube: Kube) -> Any:
    from kubernetes import client

    return client.NetworkingV1Api(kube.api_client)


def list_run_objects(kube: Kube, namespace: str, kind: str, selector: str) -> list[dict[str, Any]]:
    """The objects of one of RUN_OBJECT_KINDS in `namespace` matching `selector`, as API JSON."""
    if kind == "RayJob":
        return list_custom(kube, namespace, "rayjobs", selector)
    method = kube.core.list_namespaced_config_map if kind == "ConfigMap" else _networking(kube).list_namespaced_network_policy
    result = call(f"list {kind}s in {namespace}", lambda: method(namespace, label_selector=selector))
    return [kube.to_dict(item) for item in result.items]


def delete_run_object(kube: Kube, kind: str, namespace: str, name: str) -> bool:
    """Delete one of RUN_OBJECT_KINDS; False if it was already gone. A RayJob's dependents go in the background."""
    if kind == "RayJob":

        def method() -> Any:
            return kube.custom.delete_namespaced_custom_object(
                RAY_GROUP, RAY_VERSION_API, namespace, "rayjobs", name, propagation_policy="Background"
            )
    elif kind == "ConfigMap":

        def method() -> Any:
            return kube.core.delete_namespaced_config_map(name, namespace)
    else:

        def method() -> Any:
            return _networking(kube).delete_namespaced_network_policy(name, namespace)

    try:
        call(f"delete {kind} {namespace}/{name}", method)
    except Exception as exc:
        if is_not_found(exc):
            return False
        raise
    log.info("deleted %s %s/%s", kind, namespace, name)
    return True


# Kueue's API (v0.17 serves v1beta2, and v1beta1 as deprecated; older releases only v1beta1).
KUEUE_GROUP, KUEUE_VERSIONS = "kueue.x-k8s.io", ("v1beta2", "v1beta1")
# The label Kueue puts on a job's Workload: the job's UID (pkg/controller/constants).
KUEUE_JOB_UID_LABEL = "kueue.x-k8s.io/job-uid"


def list_workloads(kube: Kube, namespace: str, selector: str) -> list[dict[str, Any]]:
    """Kueue's Workloads in `namespace` matching `selector`, in the newest API version the cluster serves.

    Raises the API error as it is: 404 when no version is served (no Kueue on the cluster), 403
    when the identity may not read them (reading them is optional: see job.KueueView).
    """
    for version in KUEUE_VERSIONS:
        try:
            result = call(
                f"list Kueue workloads in {namespace}",
                lambda version=version: kube.custom.list_namespaced_custom_object(
                    KUEUE_GROUP, version, namespace, "workloads", label_selector=selector
                ),
            )
        except Exception as exc:
            if is_not_found(exc) and version != KUEUE_VERSIONS[-1]:
                continue
            raise
        return list(result.get("items", []))
    raise AssertionError("unreachable")  # pragma: no cover


def list_pods(kube: Kube, namespace: str, selector: str) -> list[dict[str, Any]]:
    pods = call(f"list pods in {namespace}", lambda: kube.core.list_namespaced_pod(namespace, label_selector=selector))
    return [kube.to_dict(pod) for pod in pods.items]


def run_pods(kube: Kube, run: RunIdentity, rayjob: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Every pod of one run: those carrying its labels (the submitter), and its RayCluster's (head, workers)."""
    pods = list_pods(kube, run.namespace, run.selector)
    cluster = ((rayjob or {}).get("status") or {}).get("rayClusterName")
    if cluster:
        known = {p["metadata"]["name"] for p in pods}
        pods += [p for p in list_pods(kube, run.namespace, f"ray.io/cluster={cluster}") if p["metadata"]["name"] not in known]
    return pods


def list_nodes(kube: Kube) -> list[dict[str, Any]]:
    nodes = call("list nodes", lambda: kube.core.list_node())
    return [kube.to_dict(node) for node in nodes.items]


def list_events(kube: Kube, namespace: str) -> list[dict[str, Any]]:
    events = call(f"list events in {namespace}", lambda: kube.core.list_namespaced_event(namespace))
    return [kube.to_dict(event) for event in events.items]


def pod_log(
    kube: Kube, namespace: str, pod: str, container: str | None = None, previous: bool = False, tail_lines: int | None = None
) -> str:
    kwargs: dict[str, Any] = {"container": container, "previous": previous}
    if tail_lines is not None:
        kwargs["tail_lines"] = tail_lines
    return call(f"read the log of pod {namespace}/{pod}", lambda: kube.core.read_namespaced_pod_log(pod, namespace, **kwargs))


def ensure_namespace(kube: Kube, namespace_object: dict[str, Any]) -> bool:
    """Create the namespace if it is missing; True if it was created."""
    name = namespace_object["metadata"]["name"]
    if get_or_none(f"read namespace {name}", lambda: kube.core.read_namespace(name)) is not None:
        return False
    try:
        call(f"create namespace {name}", lambda: kube.core.create_namespace(namespace_object))
    except Exception as exc:
        if is_conflict(exc):  # created by a concurrent run in the meantime
            return False
        raise
    return True


_CORE_CREATE = {"ResourceQuota": "create_namespaced_resource_quota", "LimitRange": "create_namespaced_limit_range"}


def ensure(kube: Kube, obj: dict[str, Any]) -> bool:
    """Create a namespace-wide object (quota, limit range) unless one of that name exists; True if created.

    Not being allowed to create it is not fatal: such objects are the namespace
    owner's, and an identity limited to running jobs should not be able to.
    """
    try:
        create(kube, obj)
    except UserError as exc:
        if "already exists" in exc.message:
            return False
        if "not allowed" in exc.message:
            meta = obj["metadata"]
            log.warning(
                "%s %s/%s is missing and this identity may not create it; the cluster owner should (aks-ray run --dry-run prints it)",
                obj["kind"],
                meta["namespace"],
                meta["name"],
            )
            return False
        raise
    return True


def namespace_labels(kube: Kube, name: str) -> dict[str, str]:
    namespace = get_or_none(f"read namespace {name}", lambda: kube.core.read_namespace(name))
    return dict((namespace.metadata.labels or {}) if namespace is not None else {})


def api_server_url(kube: Kube) -> str:
    """The API server's URL, as the kubeconfig gives it."""
    return str(kube.api_client.configuration.host)


def create(kube: Kube, obj: dict[str, Any], dry_run: bool = False) -> dict[str, Any]:
    """Create one object (or only ask the API server whether it would: dry_run); its refusal is shown plainly."""
    kind, meta = obj["kind"], obj["metadata"]
    where = f"{kind} {meta['namespace']}/{meta['name']}"
    extra: dict[str, Any] = {"dry_run": "All"} if dry_run else {}
    try:
        if kind in _CORE_CREATE:
            method = getattr(kube.core, _CORE_CREATE[kind])
            return kube.to_dict(call(f"create {where}", lambda: method(meta["namespace"], obj, **extra)))
        if kind == "NetworkPolicy":
            networking = _networking(kube)
            created = call(f"create {where}", lambda: networking.create_namespaced_network_policy(meta["namespace"], obj, **extra))
            return kube.to_dict(created)
        if kind == "ConfigMap":
            created = call(f"create {where}", lambda: kube.core.create_namespaced_config_map(meta["namespace"], obj, **extra))
            return kube.to_dict(created)
        if kind == "RayJob":
            return call(
                f"create {where}",
                lambda: kube.custom.create_namespaced_custom_object(RAY_GROUP, RAY_VERSION_API, meta["namespace"], "rayjobs", obj, **extra),
            )
    except Exception as exc:
        status = status_of(exc)
        if status in (400, 422):
            raise UserError(
                f"the API server refused {where}: {api_message(exc)}", "fix the option named in the message and run again."
            ) from None
        if status == 404 and kind == "RayJob":
            raise OperationalError(
                f"the cluster does not know the RayJob kind: {api_message(exc)}",
                "install the KubeRay operator first: aks-ray operator install.",
            ) from None
        if status == 409:
            raise UserError(f"{where} already exists.", "choose another --job-name, or leave it empty for a unique name per run.") from None
        if status in (401, 403):
            raise UserError(
                f"not allowed to create {where}: {api_message(exc)}",
                "use credentials that may create RayJobs, ConfigMaps and NetworkPolicies (and read ResourceQuotas "
                "and LimitRanges) in --namespace.",
            ) from None
        raise
    raise ValueError(f"aks-ray does not create {kind} objects")  # pragma: no cover


def owner_reference(owner: dict[str, Any]) -> dict[str, Any]:
    """An ownerReference to an object as the API server returned it (its uid included)."""
    meta = owner["metadata"]
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": meta["name"], "uid": meta["uid"]}


def set_owner(kube: Kube, obj: dict[str, Any], owner: dict[str, Any]) -> None:
    """Make `owner` the owner of `obj` (a ConfigMap or NetworkPolicy): deleting the owner deletes it too.

    A JSON merge patch of metadata.ownerReferences: it can only be set once the owner
    exists, as its uid comes from the API server.
    """
    kind, meta = obj["kind"], obj["metadata"]
    patch = {"metadata": {"ownerReferences": [owner_reference(owner)]}}
    where = f"{kind} {meta['namespace']}/{meta['name']}"
    if kind == "ConfigMap":
        method = kube.core.patch_namespaced_config_map
    elif kind == "NetworkPolicy":
        method = _networking(kube).patch_namespaced_network_policy
    else:  # pragma: no cover
        raise ValueError(f"aks-ray does not set owners on {kind} objects")
    call(f"set the owner of {where}", lambda: method(meta["name"], meta["namespace"], patch, _content_type="application/merge-patch+json"))


def delete_namespace_if_empty(kube: Kube, name: str, created_by: str) -> bool:
    """Delete namespace `name` if this run created it and nothing of any run is left in it; True if deleted.

    Empty means: no RayJob, pod or ConfigMap but this run's own (still going away: the
    namespace's deletion takes them along) and the ConfigMap Kubernetes puts in every
    namespace. The namespace's quota and limit range (aks-ray's, made with it) do not count.
    """
    namespace = get_or_none(f"read namespace {name}", lambda: kube.core.read_namespace(name))
    if namespace is None:
        return False
    annotations = namespace.metadata.annotations or {}
    if annotations.get(CREATED_BY_RUN_ANNOTATION) != created_by:
        return False

    def others(objects: list[dict[str, Any]]) -> list[str]:
        return [o["metadata"]["name"] for o in objects if (o["metadata"].get("labels") or {}).get(RUN_LABEL) != created_by]

    configmaps = call(f"list ConfigMaps in {name}", lambda: kube.core.list_namespaced_config_map(name))
    configmap_dicts = [kube.to_dict(c) for c in configmaps.items if c.metadata.name != "kube-root-ca.crt"]
    left = [f"RayJob {n}" for n in others(list_custom(kube, name, "rayjobs", ""))]
    left += [f"pod {n}" for n in others(list_pods(kube, name, ""))]
    left += [f"ConfigMap {n}" for n in others(configmap_dicts)]
    if left:
        log.info("namespace %s stays: it still holds %s", name, ", ".join(left[:5]))
        return False
    try:
        call(f"delete namespace {name}", lambda: kube.core.delete_namespace(name))
    except Exception as exc:
        if is_not_found(exc):
            return False
        raise
    return True


# ------------------------------------------------------------------ server-side apply


def apply_crd(kube: Kube, crd: dict[str, Any], force: bool = False) -> dict[str, Any]:
    """Server-side apply of one CustomResourceDefinition as FIELD_MANAGER; the object as the API server stored it.

    A PATCH of content type application/apply-patch+yaml (JSON is YAML). Unlike a client-side
    apply it keeps no last-applied annotation, which a KubeRay CRD (over the 256 KiB an
    annotation may hold) would not fit. The answer is read as JSON, not as the client's
    models: building those for a megabyte of schema takes seconds.
    """
    name = crd["metadata"]["name"]
    response = call(
        f"apply CRD {name} (server-side{', taking over conflicting fields' if force else ''})",
        lambda: kube.extensions.patch_custom_resource_definition(
            name,
            crd,
            field_manager=FIELD_MANAGER,
            force=force,
            _content_type="application/apply-patch+yaml",
            _preload_content=False,
            _request_timeout=APPLY_TIMEOUT,
        ),
    )
    return json.loads(response.data)


def read_crd(kube: Kube, name: str) -> dict[str, Any] | None:
    """A CRD as JSON (None if missing), without building the client's models for it (see apply_crd)."""
    response = get_or_none(f"read CRD {name}", lambda: kube.extensions.read_custom_resource_definition(name, _preload_content=False))
    return json.loads(response.data) if response is not None else None


def apply_conflicts(exc: BaseException) -> dict[str, list[str]]:
    """The field managers a server-side apply conflicted with, each with its fields (from the 409's causes)."""
    try:
        causes = ((json.loads(getattr(exc, "body", None) or "{}").get("details") or {}).get("causes")) or []
    except ValueError:
        return {}
    found: dict[str, list[str]] = {}
    for cause in causes:
        manager = re.search(r'conflict with "([^"]*)"', cause.get("message") or "")
        if manager:
            found.setdefault(manager.group(1), []).append(cause.get("field") or "?")
    return found
