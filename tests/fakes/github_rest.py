"""A stand-in for GitHub's REST API on 127.0.0.1, answering with the real API's shapes.

What it serves (version 2022-11-28, the fields the real API returns that matter
here and a few around them, so that a client reading the wrong field fails):

    GET   /repos/{owner}/{repo}/actions/workflows/{workflow}/runs   ?branch&status&event&per_page&page, Link paging
    GET   /repos/{owner}/{repo}/actions/runs/{run_id}/artifacts     ?name&per_page&page
    GET   /repos/{owner}/{repo}/actions/artifacts/{id}/zip          302 to a second server (another origin), like blob storage
    GET   /repos/{owner}/{repo}/issues/{number}/comments            ?per_page&page, Link paging
    POST  /repos/{owner}/{repo}/issues/{number}/comments            201
    PATCH /repos/{owner}/{repo}/issues/comments/{comment_id}        200

Tokens carry permissions like a job's GITHUB_TOKEN: {"actions": "read",
"pull_requests": "write"}. A token without the permission gets the real 403
("Resource not accessible by integration"), an unknown one a 401. `fail_next`
makes the next answers to a path a 5xx, to exercise retries. Every request is
recorded, headers included, and the blob server records whether it was sent
the token (it must not be).
"""

from __future__ import annotations

import io
import itertools
import json
import re
import threading
import urllib.parse
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

REPOSITORY = "octo-org/mnist-on-ray"
WORKFLOW = "train.yml"
BOT = {"login": "github-actions[bot]", "id": 41898282, "type": "Bot"}
NOT_ACCESSIBLE = {
    "message": "Resource not accessible by integration",
    "documentation_url": "https://docs.github.com/rest",
    "status": "403",
}


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


def artifact_zip(files: dict[str, bytes | str]) -> bytes:
    """An artifact as upload-artifact stores it: the uploaded folder's files at the zip's root."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


@dataclass
class FakeGitHub:
    repository: str = REPOSITORY
    tokens: dict[str, dict[str, str]] = field(default_factory=dict)
    runs: list[dict[str, Any]] = field(default_factory=list)
    artifacts: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    zips: dict[int, bytes] = field(default_factory=dict)
    comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    blob_requests: list[Request] = field(default_factory=list)
    # path regex -> how many of the next answers are 502s
    fail_next: dict[str, int] = field(default_factory=dict)
    page_size_cap: int = 100
    # Workflow files the repository has, whether or not they have runs.
    workflows: set[str] = field(default_factory=lambda: {WORKFLOW})
    url: str = ""
    blob_url: str = ""
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(900_001))

    # ------------------------------------------------------------ state

    def add_run(
        self,
        *,
        branch: str = "main",
        event: str = "push",
        conclusion: str | None = "success",
        workflow: str = WORKFLOW,
        head_repository: str | None = None,
        artifacts: dict[str, dict[str, bytes | str]] | None = None,
        expired: bool = False,
    ) -> dict[str, Any]:
        """A run, newest first as the API lists them; artifacts maps a name to its files."""
        run_id = next(self._ids)
        self.workflows.add(workflow)
        number = len(self.runs) + 1
        sha = f"{run_id:040x}"[-40:]
        owner, name = self.repository.split("/")
        repo = {"id": 1296269, "name": name, "full_name": self.repository, "owner": {"login": owner}}
        head_repo = repo if head_repository is None else {"id": 7, "name": head_repository.split("/")[1], "full_name": head_repository}
        run = {
            "id": run_id,
            "name": "train",
            "node_id": f"WFR_{run_id}",
            "head_branch": branch,
            "head_sha": sha,
            "path": f".github/workflows/{workflow}",
            "display_title": f"commit {number}",
            "run_number": number,
            "event": event,
            "status": "completed" if conclusion else "in_progress",
            "conclusion": conclusion,
            "workflow_id": 161335 if workflow == WORKFLOW else 9,
            "check_suite_id": run_id + 1,
            "url": f"{self.url}/repos/{self.repository}/actions/runs/{run_id}",
            "html_url": f"https://github.example/{self.repository}/actions/runs/{run_id}",
            "pull_requests": [],
            "created_at": f"2026-11-{10 + number:02d}T10:00:00Z",
            "updated_at": f"2026-11-{10 + number:02d}T10:20:00Z",
            "run_attempt": 1,
            "run_started_at": f"2026-11-{10 + number:02d}T10:00:00Z",
            "artifacts_url": f"{self.url}/repos/{self.repository}/actions/runs/{run_id}/artifacts",
            "head_commit": {"id": sha, "message": f"commit {number}"},
            "repository": repo,
            "head_repository": head_repo,
        }
        self.runs.insert(0, run)
        self.artifacts[run_id] = []
        for artifact_name, files in (artifacts or {}).items():
            artifact_id = next(self._ids)
            data = artifact_zip(files)
            self.zips[artifact_id] = data
            self.artifacts[run_id].append(
                {
                    "id": artifact_id,
                    "node_id": f"MDg6QXJ0aWZhY3Q{artifact_id}",
                    "name": artifact_name,
                    "size_in_bytes": len(data),
                    "url": f"{self.url}/repos/{self.repository}/actions/artifacts/{artifact_id}",
                    "archive_download_url": f"{self.url}/repos/{self.repository}/actions/artifacts/{artifact_id}/zip",
                    "expired": expired,
                    "digest": "sha256:" + "0" * 64,
                    "created_at": run["created_at"],
                    "updated_at": run["updated_at"],
                    "expires_at": "2027-02-10T10:00:00Z",
                    "workflow_run": {
                        "id": run_id,
                        "repository_id": repo["id"],
                        "head_repository_id": head_repo["id"],
                        "head_branch": branch,
                        "head_sha": sha,
                    },
                }
            )
        return run

    def add_comment(self, number: int, body: str, user: dict[str, Any] | None = None) -> dict[str, Any]:
        comment_id = next(self._ids)
        comment = {
            "id": comment_id,
            "node_id": f"IC_{comment_id}",
            "url": f"{self.url}/repos/{self.repository}/issues/comments/{comment_id}",
            "html_url": f"https://github.example/{self.repository}/pull/{number}#issuecomment-{comment_id}",
            "body": body,
            "user": user or {"login": "a-reviewer", "id": 583231, "type": "User"},
            "created_at": "2026-11-30T09:00:00Z",
            "updated_at": "2026-11-30T09:00:00Z",
            "issue_url": f"{self.url}/repos/{self.repository}/issues/{number}",
            "author_association": "MEMBER",
            "performed_via_github_app": None,
        }
        self.comments.setdefault(number, []).append(comment)
        return comment

    # ------------------------------------------------------------ answers

    def _page(self, items: list[Any], query: dict[str, str], base: str) -> tuple[list[Any], dict[str, str]]:
        per_page = min(int(query.get("per_page", 30)), self.page_size_cap)
        page = int(query.get("page", 1))
        chunk = items[(page - 1) * per_page : page * per_page]
        headers = {}
        if page * per_page < len(items):
            following = {**query, "page": str(page + 1)}
            headers["Link"] = f'<{self.url}{base}?{urllib.parse.urlencode(following)}>; rel="next"'
        return chunk, headers

    def handle(self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: Any) -> tuple[int, Any, dict[str, str]]:
        for pattern, count in list(self.fail_next.items()):
            if count and re.search(pattern, path):
                self.fail_next[pattern] = count - 1
                return 502, {"message": "Server Error"}, {}
        token = headers.get("authorization", "").removeprefix("Bearer ").strip()
        if token not in self.tokens:
            return 401, {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest", "status": "401"}, {}
        permissions = self.tokens[token]
        prefix = f"/repos/{self.repository}"
        if not path.startswith(prefix + "/"):
            return 404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest", "status": "404"}, {}
        rest = path[len(prefix) :]

        if match := re.fullmatch(r"/actions/workflows/([^/]+)/runs", rest):
            if method != "GET" or permissions.get("actions") not in ("read", "write"):
                return 403, NOT_ACCESSIBLE, {}
            if match.group(1) not in self.workflows:
                # The real API's answer for a workflow file the repository does not have (yet).
                return 404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest", "status": "404"}, {}
            runs = [r for r in self.runs if r["path"].endswith("/" + match.group(1))]
            if "branch" in query:
                runs = [r for r in runs if r["head_branch"] == query["branch"]]
            if "event" in query:
                runs = [r for r in runs if r["event"] == query["event"]]
            if status := query.get("status"):
                runs = [r for r in runs if status in (r["status"], r["conclusion"])]
            chunk, link = self._page(runs, query, path)
            return 200, {"total_count": len(runs), "workflow_runs": chunk}, link

        if match := re.fullmatch(r"/actions/runs/(\d+)/artifacts", rest):
            if permissions.get("actions") not in ("read", "write"):
                return 403, NOT_ACCESSIBLE, {}
            found = self.artifacts.get(int(match.group(1)))
            if found is None:
                return 404, {"message": "Not Found", "status": "404"}, {}
            if "name" in query:
                found = [a for a in found if a["name"] == query["name"]]
            chunk, link = self._page(found, query, path)
            return 200, {"total_count": len(found), "artifacts": chunk}, link

        if match := re.fullmatch(r"/actions/artifacts/(\d+)/zip", rest):
            if permissions.get("actions") not in ("read", "write"):
                return 403, NOT_ACCESSIBLE, {}
            artifact_id = int(match.group(1))
            if artifact_id not in self.zips:
                return 404, {"message": "Not Found", "status": "404"}, {}
            return 302, b"", {"Location": f"{self.blob_url}/artifacts/{artifact_id}.zip?sig=short-lived"}

        if match := re.fullmatch(r"/issues/(\d+)/comments", rest):
            number = int(match.group(1))
            if method == "GET":
                chunk, link = self._page(self.comments.get(number, []), query, path)
                return 200, chunk, link
            if method == "POST":
                if permissions.get("pull_requests") != "write":
                    return 403, NOT_ACCESSIBLE, {}
                comment = self.add_comment(number, body["body"], BOT)
                return 201, comment, {"Location": comment["url"]}

        if (match := re.fullmatch(r"/issues/comments/(\d+)", rest)) and method == "PATCH":
            if permissions.get("pull_requests") != "write":
                return 403, NOT_ACCESSIBLE, {}
            for comments in self.comments.values():
                for comment in comments:
                    if comment["id"] == int(match.group(1)):
                        comment["body"] = body["body"]
                        comment["updated_at"] = "2026-12-01T10:00:00Z"
                        return 200, comment, {}
            return 404, {"message": "Not Found", "status": "404"}, {}

        return 404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest", "status": "404"}, {}

    def comments_on(self, number: int) -> list[dict[str, Any]]:
        return self.comments.get(number, [])


def _handler(fake: FakeGitHub, blob: bool) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep pytest's output clean
            pass

        def _serve(self) -> None:
            parts = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(parts.query))
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            headers = {k.lower(): v for k, v in self.headers.items()}
            request = Request(self.command, parts.path, query, headers, body)
            if blob:
                fake.blob_requests.append(request)
                match = re.fullmatch(r"/artifacts/(\d+)\.zip", parts.path)
                data = fake.zips.get(int(match.group(1))) if match else None
                status, payload, extra = (200, data, {"Content-Type": "application/zip"}) if data else (404, b"", {})
            else:
                fake.requests.append(request)
                status, payload, extra = fake.handle(self.command, parts.path, query, headers, body)
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            if not isinstance(payload, bytes):
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("X-GitHub-Api-Version-Selected", "2022-11-28")
                self.send_header("x-ratelimit-remaining", "4999")
            for key, value in extra.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = _serve

    return Handler


@contextmanager
def serve(fake: FakeGitHub) -> Iterator[FakeGitHub]:
    """The API on one loopback port and the artifact blob store on another (a different origin)."""
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake, blob)) for blob in (False, True)]
    api, blob_store = servers
    fake.url = f"http://127.0.0.1:{api.server_address[1]}"
    fake.blob_url = f"http://127.0.0.1:{blob_store.server_address[1]}"
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    for thread in threads:
        thread.start()
    try:
        yield fake
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
