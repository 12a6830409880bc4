"""A Kubernetes Lease as a lock between runs: one operator install (or upgrade) at a time per cluster.

Helm has no lock of its own: two runs upgrading one release at once fail with
"another operation is in progress", and a run that finds a release pending
would have to guess whether its installer is still at work. The runs of this
project take a Lease (coordination.k8s.io/v1) in the operator's namespace first.
A Lease whose holder stopped renewing it (a runner lost mid-install) expires
after its duration and is taken over; the wait for it has a deadline.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from typing import Any

from . import kube, retry
from .errors import DeadlineExceeded

log = logging.getLogger(__name__)


def now_micro(clock: Callable[[], float] = time.time) -> str:
    """The time as a Lease's MicroTime (RFC3339 with microseconds)."""
    return dt.datetime.fromtimestamp(clock(), dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: Any) -> float | None:
    if not value:
        return None
    if isinstance(value, dt.datetime):
        return value.timestamp()
    return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def expired(lease: dict[str, Any], now: float) -> bool:
    """True when the holder stopped renewing it: its renewTime (or acquireTime) plus its duration has passed."""
    spec = lease.get("spec") or {}
    if not spec.get("holderIdentity"):
        return True
    since = parse_time(spec.get("renewTime")) or parse_time(spec.get("acquireTime"))
    duration = spec.get("leaseDurationSeconds") or 0
    return since is None or since + duration < now


def holder_identity(run_id: str = "") -> str:
    """Who holds the lock, for the person who finds it held: host, process, the workflow run."""
    parts = [socket.gethostname(), f"pid {os.getpid()}"]
    if run_id:
        parts.append(f"run {run_id}")
    return " ".join(parts) + f" {secrets.token_hex(3)}"


class LeaseLock:
    def __init__(self, api: kube.Kube, namespace: str, name: str, holder: str, duration: int, deadline: float, poll: float = 3.0):
        from kubernetes import client

        self.coordination = client.CoordinationV1Api(api.api_client)
        self.api, self.namespace, self.name, self.holder = api, namespace, name, holder
        self.duration, self.deadline, self.poll = duration, deadline, poll

    def _body(self, resource_version: str | None = None) -> dict[str, Any]:
        stamp = now_micro()
        metadata: dict[str, Any] = {"name": self.name, "namespace": self.namespace, "labels": {"app.kubernetes.io/managed-by": "aks-ray"}}
        if resource_version:
            metadata["resourceVersion"] = resource_version
        spec = {"holderIdentity": self.holder, "leaseDurationSeconds": self.duration, "acquireTime": stamp, "renewTime": stamp}
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": metadata, "spec": spec}

    def _try(self) -> str | None:
        """Take the Lease if it is free; None when taken, else who holds it."""
        where = f"Lease {self.namespace}/{self.name}"
        try:
            kube.call(f"create {where}", lambda: self.coordination.create_namespaced_lease(self.namespace, self._body()))
            return None
        except Exception as exc:
            if not kube.is_conflict(exc):
                raise
        current = kube.get_or_none(f"read {where}", lambda: self.coordination.read_namespaced_lease(self.name, self.namespace))
        if current is None:
            return "nobody (it was just released)"
        lease = self.api.to_dict(current)
        holder = (lease.get("spec") or {}).get("holderIdentity") or ""
        if not expired(lease, time.time()):
            return holder
        log.info("Lease %s was held by %s, who stopped renewing it: taking it over", where, holder or "nobody")
        body = self._body(lease["metadata"].get("resourceVersion"))
        try:
            # The resourceVersion makes this a compare-and-swap: of two runs taking over, one wins.
            kube.call(f"take over {where}", lambda: self.coordination.replace_namespaced_lease(self.name, self.namespace, body))
        except Exception as exc:
            if kube.is_conflict(exc):
                return "another run (it took the expired lease first)"
            raise
        return None

    def acquire(self) -> None:
        deadline = retry.Deadline(self.deadline, what=f"the lock Lease {self.namespace}/{self.name}")
        announced = ""
        while True:
            holder = self._try()
            if holder is None:
                log.info("took the lock Lease %s/%s (%s)", self.namespace, self.name, self.holder)
                return
            if holder != announced:
                log.info("waiting for the lock Lease %s/%s, held by %s", self.namespace, self.name, holder)
                announced = holder
            if deadline.remaining <= 0:
                raise DeadlineExceeded(
                    f"the lock Lease {self.namespace}/{self.name} stayed held by {holder} for {self.deadline:.0f} s.",
                    f"another run is installing the operator; run again later, or, if that run is gone, delete the Lease "
                    f"(kubectl -n {self.namespace} delete lease {self.name}); it also expires {self.duration} s after its last renewal.",
                )
            time.sleep(min(self.poll, max(0.0, deadline.remaining)))

    def release(self) -> None:
        """Delete the Lease if this lock still holds it (never another holder's)."""
        where = f"Lease {self.namespace}/{self.name}"
        try:
            current = kube.get_or_none(f"read {where}", lambda: self.coordination.read_namespaced_lease(self.name, self.namespace))
            if current is None or (self.api.to_dict(current).get("spec") or {}).get("holderIdentity") != self.holder:
                return
            kube.call(f"delete {where}", lambda: self.coordination.delete_namespaced_lease(self.name, self.namespace))
            log.info("released the lock Lease %s", where)
        except Exception as exc:  # it expires on its own
            log.warning("could not release the lock %s (%s); it expires after %d s", where, kube.api_message(exc), self.duration)

    def __enter__(self) -> LeaseLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
