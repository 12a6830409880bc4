"""The live log follower and the request timeouts, with the real kubernetes client against a server on 127.0.0.1.

The server answers pod-log requests from a script (each request gets the next
answer: lines with the kubelet's timestamps, then the connection ends), and pod
reads with the submitter container running or terminated, as the API server does.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from fake_kube import write_kubeconfig

from aks_ray import config, job, kube
from aks_ray.rundir import RunDir

NS, POD = "aks-ray", "aks-ray-1-ab12cd-8hj4k"


def submitter_pod(name: str, terminated: bool) -> dict[str, Any]:
    state = {"terminated": {"exitCode": 0, "reason": "Completed"}} if terminated else {"running": {"startedAt": "2026-11-25T20:00:00Z"}}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "creationTimestamp": "2026-11-25T20:00:00Z"},
        "spec": {"containers": [{"name": job.SUBMITTER_CONTAINER, "image": "rayproject/ray:2.60.0-py311-cpu"}]},
        "status": {
            "phase": "Running",
            "containerStatuses": [
                {
                    "name": job.SUBMITTER_CONTAINER,
                    "image": "rayproject/ray:2.60.0-py311-cpu",
                    "imageID": "",
                    "restartCount": 0,
                    "ready": not terminated,
                    "state": state,
                }
            ],
        },
    }


class LogServer:
    """Answers /log requests from `streams[pod]` (one per request) and pod reads from `running[pod]`."""

    def __init__(self) -> None:
        self.streams: dict[str, list[list[str]]] = {}
        self.running: dict[str, bool] = {}
        self.log_queries: list[tuple[str, dict[str, list[str]]]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlparse(self.path)
                parts = url.path.split("/")
                pod = parts[6] if len(parts) > 6 else ""
                if url.path.endswith("/log"):
                    server.log_queries.append((pod, parse_qs(url.query)))
                    script = server.streams.get(pod) or [[]]
                    if len(script) <= 1:  # the last answer: the container has ended when it is read
                        server.running[pod] = False
                    lines = script.pop(0) if len(script) > 1 else script[0]
                    data = "".join(line + "\n" for line in lines).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                body = json.dumps(submitter_pod(pod, terminated=not server.running.get(pod, False))).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.http.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"


@pytest.fixture
def api(tmp_path):
    server = LogServer()
    path = write_kubeconfig(tmp_path / "kubeconfig", server.url, "not-a-real-token")
    cfg = config.load({}, {"AKS_RAY_TARGET": "kubeconfig", "AKS_RAY_KUBECONFIG": str(path), "AKS_RAY_OUTPUT_DIR": str(tmp_path / "out")})
    api_ = kube.connect(cfg)
    yield api_, server
    api_.api_client.close()
    server.http.shutdown()
    server.http.server_close()


def follow(api_, pods: list[str], tmp_path, wait: float = 20.0) -> list[str]:
    follower = job.LogFollower(api_, NS, RunDir(tmp_path / "out"))
    for name in pods:
        follower.follow_new([submitter_pod(name, terminated=False)])
        deadline = time.monotonic() + wait
        while any(t.is_alive() for t in follower.threads) and time.monotonic() < deadline:
            time.sleep(0.05)
    follower.stop()
    return (tmp_path / "out" / "job.log").read_text().splitlines()


def stamped(second: int, text: str) -> str:
    return f"2026-11-25T20:00:{second:02d}.{second}00Z {text}"


def test_a_dropped_stream_is_resumed_from_where_it_was_and_nothing_is_printed_twice(api, tmp_path, monkeypatch):
    monkeypatch.setattr(job.logstream, "RESUME_MARGIN_SECONDS", 5)
    api_, server = api
    server.running[POD] = True
    server.streams[POD] = [
        [stamped(1, "epoch 1"), stamped(2, "epoch 2")],  # the connection ends mid-run
        [stamped(2, "epoch 2"), stamped(3, "epoch 3"), stamped(4, "final")],  # resumed a little earlier
        [stamped(4, "final")],  # the pod has ended: nothing new
    ]
    lines = follow(api_, [POD], tmp_path)
    assert lines == ["epoch 1", "epoch 2", "epoch 3", "final"]
    queries = [q for pod, q in server.log_queries if pod == POD]
    assert len(queries) >= 2
    assert queries[0].get("timestamps") == ["true"] and "sinceSeconds" not in queries[0], "the first stream reads it all"
    assert "sinceSeconds" in queries[1], "the resumed stream starts from the last line's time"


def test_a_retried_submitter_continues_the_log_without_a_line_twice(api, tmp_path):
    api_, server = api
    retry = "aks-ray-1-ab12cd-q2w3e"
    server.streams[POD] = [["2026-11-25T20:00:01Z waiting", "2026-11-25T20:00:02Z epoch 1", "2026-11-25T20:00:03Z epoch 2"]]
    server.streams[retry] = [
        ["2026-11-25T20:05:01Z waiting", "2026-11-25T20:05:02Z epoch 1", "2026-11-25T20:05:02Z epoch 2", "2026-11-25T20:05:03Z epoch 3"]
    ]
    assert follow(api_, [POD, retry], tmp_path) == ["waiting", "epoch 1", "epoch 2", "epoch 3"]


def test_every_api_call_has_a_request_timeout(tmp_path, monkeypatch):
    """A server that accepts and never answers: the call ends at the timeout, not never."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted = []
    threading.Thread(target=lambda: accepted.append(listener.accept()), daemon=True).start()
    path = write_kubeconfig(tmp_path / "kubeconfig", f"http://127.0.0.1:{listener.getsockname()[1]}", "t")
    cfg = config.load({}, {"AKS_RAY_TARGET": "kubeconfig", "AKS_RAY_KUBECONFIG": str(path), "AKS_RAY_OUTPUT_DIR": str(tmp_path / "o")})
    monkeypatch.setattr(kube, "REQUEST_TIMEOUT", (1.0, 1.0))
    api_ = kube.connect(cfg)
    started = time.monotonic()
    with pytest.raises(Exception) as info:
        api_.custom.get_namespaced_custom_object("ray.io", "v1", NS, "rayjobs", "x")
    assert time.monotonic() - started < 10
    assert kube.is_transient(info.value), "a timeout is retried like any dropped connection"
    api_.api_client.close()
    for connection, _ in accepted:
        connection.close()
    listener.close()
