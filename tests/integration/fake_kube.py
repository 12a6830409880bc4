"""A small stand-in for the Kubernetes API server, on 127.0.0.1, for the I/O layer's tests.

It speaks the real REST paths and JSON shapes the kubernetes client uses, keeps
objects in memory, filters lists by equality label selectors as the API server
does, and plays a RayJob's status forward one step per read, as KubeRay would
write it. Exec (a websocket upgrade) is not offered: code under test must
survive without it, as it must when a head pod is gone.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

SANDBOX_COLLECTIONS = r"/(?:api/v1|apis/networking.k8s.io/v1)/namespaces/([^/]+)/(networkpolicies|resourcequotas|limitranges)"


def matches(labels: dict[str, str], selector: str) -> bool:
    for term in filter(None, selector.split(",")):
        key, equals, value = term.partition("=")
        if (key not in labels) if not equals else (labels.get(key) != value):  # `key` alone: the label exists
            return False
    return True


class FakeCluster:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.rayjobs: dict[tuple[str, str], dict[str, Any]] = {}
        self.rayclusters: dict[tuple[str, str], dict[str, Any]] = {}
        self.configmaps: dict[tuple[str, str], dict[str, Any]] = {}
        # The sandbox's objects (NetworkPolicy, ResourceQuota, LimitRange), by (plural, namespace, name).
        self.sandbox: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.namespace_labels: dict[str, dict[str, str]] = {}
        self.namespace_annotations: dict[str, dict[str, str]] = {}
        self.leases: dict[tuple[str, str], dict[str, Any]] = {}
        self.lease_versions = 0
        # (plural, name, content type, body) of every PATCH.
        self.patches: list[tuple[str, str, str, Any]] = []
        self.namespaces: set[str] = set()
        self.pods: dict[tuple[str, str], dict[str, Any]] = {}
        self.logs: dict[tuple[str, str, str], str] = {}
        self.events: list[dict[str, Any]] = []
        self.nodes: list[dict[str, Any]] = []
        # Statuses the RayJob goes through, one per read; the last one stays.
        self.status_script: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str]] = []
        # Kueue: "absent" (its API is not served: 404), "forbidden" (the identity may not list Workloads: 403)
        # or "served"; the run's Workload goes through workload_statuses, one per list, the last one staying,
        # and the RayJob's spec.suspend through suspend_script, one per read, as Kueue would set it.
        self.kueue = "absent"
        self.workload_statuses: list[dict[str, Any]] = []
        self.suspend_script: list[bool] = []
        # kind -> the message a server-side dry run answers with (an admission or CRD rule refusing it).
        self.refuse_dry_run: dict[str, str] = {}
        # CustomResourceDefinitions by name, as a server-side apply left them (Established at once).
        self.crds: dict[str, dict[str, Any]] = {}

    # -- the handler's view
    def handle(self, method: str, path: str, query: dict[str, list[str]], body: Any, content_type: str = "") -> tuple[int, Any]:
        self.requests.append((method, path))
        selector = query.get("labelSelector", [""])[0]
        if method == "POST" and query.get("dryRun") == ["All"]:
            # Validation only: this stand-in refuses what the tests tell it to, and stores nothing.
            refusal = self.refuse_dry_run.get(body.get("kind", ""))
            return (422, {"kind": "Status", "code": 422, "message": refusal}) if refusal else (201, body)
        with self.lock:
            if m := re.fullmatch(r"/api/v1/namespaces/([^/]+)", path):
                if m[1] not in self.namespaces:
                    return self.not_found()
                meta = {
                    "name": m[1],
                    "labels": self.namespace_labels.get(m[1], {}),
                    "annotations": self.namespace_annotations.get(m[1], {}),
                }
                if method == "DELETE":
                    self.namespaces.discard(m[1])
                return 200, {"kind": "Namespace", "apiVersion": "v1", "metadata": meta}
            if path == "/api/v1/namespaces" and method == "POST":
                self.namespaces.add(body["metadata"]["name"])
                self.namespace_labels[body["metadata"]["name"]] = body["metadata"].get("labels", {})
                self.namespace_annotations[body["metadata"]["name"]] = body["metadata"].get("annotations", {})
                return 201, body
            if method == "PATCH" and (
                m := re.fullmatch(r"/(?:api/v1|apis/networking.k8s.io/v1)/namespaces/([^/]+)/(configmaps|networkpolicies)/([^/]+)", path)
            ):
                # A JSON merge patch of metadata (ownerReferences), as kube.set_owner sends it.
                store, key = (self.configmaps, (m[1], m[3])) if m[2] == "configmaps" else (self.sandbox, ("networkpolicies", m[1], m[3]))
                if key not in store:
                    return self.not_found()
                self.patches.append((m[2], m[3], content_type, body))
                store[key].setdefault("metadata", {}).update(body.get("metadata", {}))
                return 200, store[key]
            if m := re.fullmatch(r"/apis/kueue.x-k8s.io/(v1beta2|v1beta1)/namespaces/([^/]+)/workloads", path):
                return self.workloads(m[1], m[2], selector)
            if m := re.fullmatch(r"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/([^/]+)", path):
                if method == "PATCH":
                    self.patches.append(("customresourcedefinitions", m[1], content_type, body))
                    self.crds[m[1]] = {**body, "status": {"conditions": [{"type": "Established", "status": "True"}]}}
                return (200, self.crds[m[1]]) if m[1] in self.crds else self.not_found()
            if m := re.fullmatch(r"/apis/coordination.k8s.io/v1/namespaces/([^/]+)/leases(?:/([^/]+))?", path):
                return self.lease(method, m[1], m[2], body)
            if m := re.fullmatch(SANDBOX_COLLECTIONS, path):
                if method == "POST":
                    key = (m[2], m[1], body["metadata"]["name"])
                    if key in self.sandbox:
                        return 409, {"kind": "Status", "code": 409, "reason": "AlreadyExists", "message": "already exists"}
                    self.sandbox[key] = body
                    return 201, body
                items = [o for (kind, ns, _), o in self.sandbox.items() if (kind, ns) == (m[2], m[1])]
                items = [o for o in items if matches(o["metadata"].get("labels", {}), selector)]
                return 200, {"kind": "List", "apiVersion": "v1", "metadata": {}, "items": items}
            if (m := re.fullmatch(r"/apis/networking.k8s.io/v1/namespaces/([^/]+)/networkpolicies/([^/]+)", path)) and method == "DELETE":
                key = ("networkpolicies", m[1], m[2])
                return (200, self.sandbox.pop(key)) if key in self.sandbox else self.not_found()
            if m := re.fullmatch(r"/api/v1/namespaces/([^/]+)/configmaps", path):
                if method == "POST":
                    key = (m[1], body["metadata"]["name"])
                    if key in self.configmaps:
                        return 409, {"kind": "Status", "code": 409, "message": "already exists"}
                    self.configmaps[key] = body
                    return 201, body
                items = [o for (ns, _), o in self.configmaps.items() if ns == m[1] and matches(o["metadata"].get("labels", {}), selector)]
                return 200, {"kind": "ConfigMapList", "apiVersion": "v1", "metadata": {}, "items": items}
            if (m := re.fullmatch(r"/api/v1/namespaces/([^/]+)/configmaps/([^/]+)", path)) and method == "DELETE":
                return (200, self.configmaps.pop((m[1], m[2]))) if (m[1], m[2]) in self.configmaps else self.not_found()
            if m := re.fullmatch(r"/apis/ray.io/v1/namespaces/([^/]+)/(rayjobs|rayclusters)", path):
                store = self.rayjobs if m[2] == "rayjobs" else self.rayclusters
                if method == "POST":
                    body.setdefault("metadata", {})["uid"] = "uid-1"
                    store[(m[1], body["metadata"]["name"])] = body
                    return 201, body
                items = [o for (ns, _), o in store.items() if ns == m[1] and matches(o["metadata"].get("labels", {}), selector)]
                return 200, {"kind": "List", "apiVersion": "ray.io/v1", "metadata": {}, "items": items}
            if m := re.fullmatch(r"/apis/ray.io/v1/namespaces/([^/]+)/(rayjobs|rayclusters)/([^/]+)", path):
                store = self.rayjobs if m[2] == "rayjobs" else self.rayclusters
                key = (m[1], m[3])
                if key not in store:
                    return self.not_found()
                if method == "DELETE":
                    return 200, store.pop(key)
                obj = store[key]
                if m[2] == "rayjobs" and self.status_script:
                    obj["status"] = self.status_script.pop(0) if len(self.status_script) > 1 else self.status_script[0]
                if m[2] == "rayjobs" and self.suspend_script:
                    obj["spec"]["suspend"] = self.suspend_script.pop(0) if len(self.suspend_script) > 1 else self.suspend_script[0]
                return 200, obj
            if m := re.fullmatch(r"/api/v1/namespaces/([^/]+)/pods", path):
                items = [o for (ns, _), o in self.pods.items() if ns == m[1] and matches(o["metadata"].get("labels", {}), selector)]
                return 200, {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items}
            if m := re.fullmatch(r"/api/v1/namespaces/([^/]+)/pods/([^/]+)/log", path):
                container = query.get("container", [""])[0]
                if query.get("previous", ["false"])[0] == "true":
                    return 400, {"kind": "Status", "code": 400, "message": "previous terminated container not found"}
                text = self.logs.get((m[1], m[2], container))
                return (200, text) if text is not None else self.not_found()
            if path == "/api/v1/nodes" and method == "GET":
                return 200, {"kind": "NodeList", "apiVersion": "v1", "metadata": {}, "items": self.nodes}
            if m := re.fullmatch(r"/api/v1/namespaces/([^/]+)/events", path):
                return 200, {
                    "kind": "EventList",
                    "apiVersion": "v1",
                    "metadata": {},
                    "items": [e for e in self.events if e["metadata"]["namespace"] == m[1]],
                }
        return self.not_found()

    def lease(self, method: str, namespace: str, name: str | None, body: Any) -> tuple[int, Any]:
        """Leases as the API server keeps them: create refuses an existing name, replace needs the current resourceVersion."""
        conflict = 409, {"kind": "Status", "apiVersion": "v1", "code": 409, "reason": "Conflict", "message": "conflict"}
        if method == "POST":
            key = (namespace, body["metadata"]["name"])
            if key in self.leases:
                return conflict
            self.lease_versions += 1
            body["metadata"]["resourceVersion"] = str(self.lease_versions)
            self.leases[key] = body
            return 201, body
        key = (namespace, name or "")
        if key not in self.leases:
            return self.not_found()
        if method == "PUT":
            if body["metadata"].get("resourceVersion") != self.leases[key]["metadata"]["resourceVersion"]:
                return conflict
            self.lease_versions += 1
            body["metadata"]["resourceVersion"] = str(self.lease_versions)
            self.leases[key] = body
            return 200, body
        if method == "DELETE":
            self.leases.pop(key)
            return 200, {"kind": "Status", "apiVersion": "v1", "status": "Success"}
        return 200, self.leases[key]

    def workloads(self, version: str, namespace: str, selector: str) -> tuple[int, Any]:
        """Kueue's Workload list: one Workload per RayJob, labelled with its UID as Kueue labels it."""
        if self.kueue == "absent":
            return self.not_found()
        if self.kueue == "forbidden":
            return 403, {
                "kind": "Status",
                "apiVersion": "v1",
                "status": "Failure",
                "reason": "Forbidden",
                "code": 403,
                "message": f'workloads.kueue.x-k8s.io is forbidden: User "pr" cannot list resource "workloads" in API group '
                f'"kueue.x-k8s.io" in the namespace "{namespace}"',
            }
        items = []
        for (ns, name), job in self.rayjobs.items():
            labels = {"kueue.x-k8s.io/job-uid": job["metadata"].get("uid", "")}
            if ns != namespace or not matches(labels, selector) or not self.workload_statuses:
                continue
            status = self.workload_statuses.pop(0) if len(self.workload_statuses) > 1 else self.workload_statuses[0]
            meta = {"name": f"rayjob-{name}-3f2a1", "namespace": ns, "labels": labels, "creationTimestamp": "2026-11-25T20:00:01Z"}
            items.append({"apiVersion": f"kueue.x-k8s.io/{version}", "kind": "Workload", "metadata": meta, "status": status})
        return 200, {"kind": "WorkloadList", "apiVersion": f"kueue.x-k8s.io/{version}", "metadata": {}, "items": items}

    @staticmethod
    def not_found() -> tuple[int, Any]:
        return 404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"}


def serve(cluster: FakeCluster, tls: tuple[Path, Path] | None = None) -> tuple[ThreadingHTTPServer, str]:
    """Serve `cluster` on 127.0.0.1; with tls=(certificate, key), over HTTPS.

    HTTPS matters to Go clients: client-go (helm, kubectl) sends no user
    credentials, and runs no exec plugin, for a plain-http server.
    """

    class Handler(BaseHTTPRequestHandler):
        def _reply(self) -> None:
            url = urlparse(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            code, payload = cluster.handle(self.command, url.path, parse_qs(url.query), body, self.headers.get("Content-Type", ""))
            data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "text/plain" if isinstance(payload, str) else "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = do_PATCH = do_PUT = _reply

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    scheme = "http"
    if tls is not None:
        import ssl

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(tls[0]), str(tls[1]))
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"{scheme}://127.0.0.1:{server.server_address[1]}"


def write_kubeconfig(path: Path, server_url: str, token: str) -> Path:
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "fake", "cluster": {"server": server_url}}],
                "users": [{"name": "fake", "user": {"token": token}}],
                "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
                "current-context": "fake",
            }
        )
    )
    return path
