"""`aks-ray job sweep`: find, and with --yes delete, what runs that never reached cleanup left in a namespace.

KubeRay's deletion rules remove most of a run whose runner was lost
(rayjob.deletion_ttls), not all of it: a job someone stopped (`ray job stop`:
Complete, STOPPED, which no KubeRay 1.7 rule can name), a queued run (no
DeleteSelf rule beside shutdownAfterJobFinishes), a RayJob that never reached a
final state, a ConfigMap or NetworkPolicy whose runner was lost before the RayJob
owning it existed. Each run's RayJob, ConfigMap and NetworkPolicy carry
aks-ray.io/expires-at (rayjob.expires_at): past it, every deadline of the run and
every rule of its RayJob have passed, and nothing of it is wanted any more.

Only objects with aks-ray's labels and a past expiry are deleted; nothing of a
run still within its time, nothing without the annotation (an older aks-ray's:
`aks-ray cleanup --job-name` removes those). A namespace a run created goes
too once nothing of anyone's is left in it. Every `aks-ray cleanup` sweeps its
namespace this way after deleting its own run, so lost runs do not pile up
between scheduled sweeps.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from . import gha, kube, retry
from .config import Config
from .errors import EXIT_OK, UserError
from .rayjob import CREATED_BY_RUN_ANNOTATION, EXPIRES_AT_ANNOTATION
from .rundir import MANAGED_BY, RUN_LABEL
from .sweep import parse_expiry, span

log = logging.getLogger(__name__)

# Every run's objects, whichever run: aks-ray's label and a run label, of any value.
SELECTOR = f"{MANAGED_BY[0]}={MANAGED_BY[1]},{RUN_LABEL}"
DELETE_DEADLINE_SECONDS = 300
NAMESPACE_MIN_AGE_SECONDS = 15 * 60


@dataclass(frozen=True)
class Leftover:
    kind: str
    name: str
    run: str
    expires: dt.datetime | None
    action: str  # delete | keep | skip
    why: str


def judge(kind: str, objects: Iterable[dict[str, Any]], now: dt.datetime) -> list[Leftover]:
    """Each object's fate: delete (its run expired), keep (not yet) or skip (no expiry to go by, or going already)."""
    verdicts = []
    for obj in objects:
        meta = obj["metadata"]
        run = (meta.get("labels") or {}).get(RUN_LABEL, "")
        raw = (meta.get("annotations") or {}).get(EXPIRES_AT_ANNOTATION)
        expires = parse_expiry(raw) if raw is not None else None
        if meta.get("deletionTimestamp"):
            verdict = ("skip", "already being deleted")
        elif raw is None:
            verdict = ("skip", f"no {EXPIRES_AT_ANNOTATION} annotation (an older aks-ray's): `aks-ray cleanup --job-name {run}` deletes it")
        elif expires is None:
            verdict = ("skip", f"{EXPIRES_AT_ANNOTATION}={raw!r} is not an RFC 3339 time")
        elif expires > now:
            verdict = ("keep", f"expires in {span(expires - now)}")
        else:
            verdict = ("delete", f"expired {span(now - expires)} ago")
        verdicts.append(Leftover(kind, meta["name"], run, expires, *verdict))
    return verdicts


def survey(api: kube.Kube, namespace: str, now: dt.datetime) -> list[Leftover]:
    """Every run object in `namespace`, judged; RayJobs first, as they are deleted first."""
    found = [(kind, kube.list_run_objects(api, namespace, kind, SELECTOR)) for kind in kube.RUN_OBJECT_KINDS]
    return [verdict for kind, objects in found for verdict in judge(kind, objects, now)]


def delete_expired(api: kube.Kube, namespace: str, verdicts: list[Leftover], now: dt.datetime) -> int:
    """Delete what `verdicts` marks for deletion; wait until those RayJobs are gone. Returns how many were deleted."""
    expired = [v for v in verdicts if v.action == "delete"]
    deleted = sum(kube.delete_run_object(api, v.kind, namespace, v.name) for v in expired)
    rayjobs = {v.name for v in expired if v.kind == "RayJob"}
    if rayjobs:
        retry.wait_until(
            lambda: not rayjobs & {job["metadata"]["name"] for job in kube.list_custom(api, namespace, "rayjobs", SELECTOR)},
            retry.Deadline(DELETE_DEADLINE_SECONDS, what=f"deletion of the expired RayJobs in {namespace}"),
            interval=3.0,
            fix=f"look for finalizers on them: kubectl get rayjobs -n {namespace} -l {SELECTOR} -o yaml",
        )
    delete_namespace_if_abandoned(api, namespace, verdicts, now)
    return deleted


def delete_namespace_if_abandoned(api: kube.Kube, namespace: str, verdicts: list[Leftover], now: dt.datetime) -> None:
    """Delete `namespace` if a run created it, nothing of that run is kept, nothing of anyone is left, and it is
    older than NAMESPACE_MIN_AGE_SECONDS (a run creates its objects seconds after its namespace: not in between)."""
    found = kube.get_or_none(f"read namespace {namespace}", lambda: api.core.read_namespace(namespace))
    if found is None:
        return
    creator = (found.metadata.annotations or {}).get(CREATED_BY_RUN_ANNOTATION, "")
    created = found.metadata.creation_timestamp
    if not creator or any(v.run == creator and v.action != "delete" for v in verdicts):
        return
    if created is None or (now - created).total_seconds() < NAMESPACE_MIN_AGE_SECONDS:
        return
    if kube.delete_namespace_if_empty(api, namespace, creator):
        log.info("deleted namespace %s: run %s created it, and nothing is left in it", namespace, creator)


def markdown(namespace: str, verdicts: list[Leftover], deleting: bool) -> str:
    title = f"### aks-ray job sweep: namespace `{namespace}`"
    if not verdicts:
        return f"{title}\n\nNo object of an aks-ray run is in this namespace.\n"
    lines = [title, "", "| object | run | expires at | verdict |", "| --- | --- | --- | --- |"]
    for v in verdicts:
        when = v.expires.strftime("%Y-%m-%dT%H:%M:%SZ") if v.expires else ""
        action = {"delete": "🗑️ deleted" if deleting else "expired: would delete", "keep": "kept", "skip": "skipped"}[v.action]
        lines.append(f"| {v.kind} `{v.name}` | `{v.run}` | {when} | {action}: {v.why} |")
    expired = sum(v.action == "delete" for v in verdicts)
    if expired and not deleting:
        lines += ["", f"{expired} expired; run `aks-ray job sweep --yes` to delete them."]
    return "\n".join(lines) + "\n"


def sweep(cfg: Config, now: dt.datetime | None = None) -> list[Leftover]:
    if cfg.target == "local":
        raise UserError(
            "`aks-ray job sweep` sweeps a Kubernetes namespace; --target local leaves nothing behind.",
            "run it with --target kubeconfig (or aks) and --namespace.",
        )
    namespace = cfg.kube.namespace
    api = kube.connect(cfg)
    now = now or dt.datetime.now(dt.timezone.utc)
    verdicts = survey(api, namespace, now)
    for v in verdicts:
        log.info("%s %s/%s of run %s: %s (%s)", v.kind, namespace, v.name, v.run, v.action, v.why)
    expired = sum(v.action == "delete" for v in verdicts)
    if not expired:
        log.info("nothing has expired in namespace %s", namespace)
    elif not cfg.sweep.yes:
        log.info("%d expired object(s); nothing deleted without --yes", expired)
    if cfg.sweep.yes:  # the namespace too, when a lost run created it and nothing is left in it
        with gha.group(f"deleting what expired in namespace {namespace} ({expired} object(s))"):
            delete_expired(api, namespace, verdicts, now)
    gha.append_summary(cfg.github.step_summary, markdown(namespace, verdicts, deleting=cfg.sweep.yes))
    return verdicts


def sweep_after_cleanup(api: kube.Kube, namespace: str) -> None:
    """What cleanup adds after its own run: the expired leftovers of lost runs. Never raises: the run's own cleanup is done."""
    try:
        now = dt.datetime.now(dt.timezone.utc)
        verdicts = survey(api, namespace, now)
        lost = sorted({v.run for v in verdicts if v.action == "delete"})
        if lost:
            log.info("namespace %s holds expired objects of runs whose cleanup never ran (%s): deleting them", namespace, ", ".join(lost))
        delete_expired(api, namespace, verdicts, now)
    except Exception as exc:  # a sweep that fails leaves it to the next one
        log.warning("could not sweep namespace %s for expired runs (%s); `aks-ray job sweep --yes` does it", namespace, exc)


def main(cfg: Config) -> int:
    verdicts = sweep(cfg)
    print(markdown(cfg.kube.namespace, verdicts, deleting=cfg.sweep.yes), end="")
    return EXIT_OK
