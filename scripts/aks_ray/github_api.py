"""GitHub's REST API, the two things the verdict needs from it.

1. The baseline: the newest artifact of a given name from a successful run of
   this workflow on the pull request's base branch (list the workflow's runs,
   list each run's artifacts, download the artifact's zip, read metrics.json
   out of it in memory).
2. One comment on the pull request, found again by a hidden marker and updated
   in place, so that a pull request carries one report however often it runs.

httpx with a timeout on every call and a bounded number of retries with
backoff for what is worth retrying (connection errors, 5xx, 429, a spent rate
limit). A 401 or 403 is the token's permissions speaking (a fork's read-only
token, no `actions: read`): it raises Forbidden, a 404 NotFound; callers turn
both into notices. The token goes in the Authorization header and nowhere else; httpx
drops that header when the artifact download is redirected to blob storage.
"""

from __future__ import annotations

import io
import json
import logging
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from .retry import retry

log = logging.getLogger(__name__)

API_VERSION = "2022-11-28"
TIMEOUT = httpx.Timeout(20.0, connect=10.0)
ATTEMPTS = 4
# Enough history to skip a few failed or artifact-less runs; the baseline is the newest one that has it.
MAX_RUNS = 30
MAX_ZIP_BYTES = 200 * 1024 * 1024
MAX_JSON_BYTES = 5 * 1024 * 1024
# GitHub refuses comment bodies longer than this.
MAX_COMMENT_CHARS = 65536


class GitHubError(Exception):
    """A REST call that failed for good: what was asked, the status, GitHub's message."""

    def __init__(self, what: str, status: int = 0, message: str = "") -> None:
        detail = f"HTTP {status}" if status else "no response"
        super().__init__(f"{what}: {detail}{': ' + message if message else ''}")
        self.what, self.status, self.message = what, status, message


class Forbidden(GitHubError):
    """The token may not do this (401, 403): a fork's read-only token, a missing permission."""


class NotFound(GitHubError):
    """404: no such workflow (one added by this very pull request), run, artifact or issue, or none the token may see."""


class _Transient(GitHubError):
    """Worth another try: a 5xx, a 429, a spent rate limit."""


@dataclass(frozen=True)
class WorkflowRun:
    id: int
    run_number: int
    head_sha: str
    head_branch: str
    event: str
    html_url: str


@dataclass(frozen=True)
class Artifact:
    id: int
    name: str
    size_in_bytes: int
    run: WorkflowRun


@dataclass(frozen=True)
class BaselineArtifact:
    """metrics.json (and timings.json, when the artifact has it) of the base branch's newest run."""

    metrics: dict[str, Any]
    timings: dict[str, Any] | None
    artifact: Artifact

    @property
    def source(self) -> str:
        run = self.artifact.run
        return f"artifact `{self.artifact.name}` of run #{run.run_number} ({run.head_sha[:7]}) on `{run.head_branch}`"


@dataclass(frozen=True)
class CommentResult:
    action: str  # "created" or "updated"
    id: int
    html_url: str


def read_artifact_zip(data: bytes) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """metrics.json and timings.json from an artifact's zip, read in memory: nothing is extracted to disk.

    upload-artifact stores the output folder's files at the zip's root; the
    shallowest metrics.json wins should a folder have been uploaded instead.
    Sizes are checked before reading, so a zip bomb costs nothing.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise ValueError(f"the artifact is not a zip file ({exc})") from None
    with archive:

        def member(name: str) -> zipfile.ZipInfo | None:
            found = [i for i in archive.infolist() if not i.is_dir() and i.filename.replace("\\", "/").rsplit("/", 1)[-1] == name]
            return min(found, key=lambda i: (i.filename.count("/"), i.filename), default=None)

        def load(info: zipfile.ZipInfo) -> Any:
            if info.file_size > MAX_JSON_BYTES:
                raise ValueError(f"{info.filename} is {info.file_size} bytes, more than a metrics file can be")
            with archive.open(info) as handle:
                raw = handle.read(MAX_JSON_BYTES + 1)
            if len(raw) > MAX_JSON_BYTES:
                raise ValueError(f"{info.filename} unpacks to more than {MAX_JSON_BYTES} bytes")
            return json.loads(raw.decode("utf-8"))

        metrics_info = member("metrics.json")
        if metrics_info is None:
            raise ValueError("the artifact has no metrics.json")
        metrics = load(metrics_info)
        if not isinstance(metrics, dict):
            raise ValueError("the artifact's metrics.json is not a JSON object")
        timings_info = member("timings.json")
        timings = None
        if timings_info is not None:
            try:
                loaded = load(timings_info)
                timings = loaded if isinstance(loaded, dict) else None
            except (ValueError, UnicodeDecodeError):
                timings = None  # the timings are a nicety; a bad file only loses the total-time row
        return metrics, timings


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    return str(body.get("message", ""))[:300] if isinstance(body, dict) else ""


class GitHubClient:
    """The REST calls, against api_url (GITHUB_API_URL: github.com's API, a GHES host, or a test's loopback server)."""

    def __init__(
        self,
        api_url: str,
        token: str,
        repository: str,
        *,
        timeout: httpx.Timeout = TIMEOUT,
        attempts: int = ATTEMPTS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.repository = repository
        self.attempts, self.sleep = attempts, sleep
        self._http = httpx.Client(
            base_url=api_url.rstrip("/"),
            timeout=timeout,
            headers={
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": API_VERSION,
                "Authorization": f"Bearer {token}",
                "User-Agent": "aks-ray-action",
            },
        )

    def __enter__(self) -> GitHubClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # ------------------------------------------------------------ plumbing

    def _request(self, what: str, method: str, url: str, **kwargs: Any) -> httpx.Response:
        # A POST whose answer was lost may have been done: retry it only when it surely was not.
        idempotent = method != "POST"

        def once() -> httpx.Response:
            try:
                response = self._http.request(method, url, **kwargs)
            except httpx.TransportError as exc:
                if idempotent or isinstance(exc, httpx.ConnectError):
                    raise _Transient(what, 0, f"{exc.__class__.__name__}: {exc}") from exc
                raise GitHubError(what, 0, f"{exc.__class__.__name__}: {exc}") from exc
            status = response.status_code
            if status < 400:
                return response
            message = _message(response)
            rate_limited = status == 429 or (status == 403 and response.headers.get("x-ratelimit-remaining") == "0")
            if rate_limited or (status >= 500 and idempotent):
                raise _Transient(what, status, message)
            if status in (401, 403):
                raise Forbidden(what, status, message)
            if status == 404:
                raise NotFound(what, status, message)
            raise GitHubError(what, status, message)

        try:
            return retry(once, what=what, attempts=self.attempts, first_delay=1.0, max_delay=10.0, retry_on=(_Transient,), sleep=self.sleep)
        except _Transient as exc:
            raise GitHubError(exc.what, exc.status, exc.message) from None

    def _pages(self, what: str, path: str, params: dict[str, Any], key: str | None, max_items: int) -> Iterator[dict[str, Any]]:
        """Items of a listing, following the Link header's rel="next" until max_items."""
        url: str | None = path
        seen = 0
        while url:
            response = self._request(what, "GET", url, params=params if url == path else None)
            body = response.json()
            items = body.get(key, []) if key else body
            for item in items:
                yield item
                seen += 1
                if seen >= max_items:
                    return
            url = response.links.get("next", {}).get("url")

    # ------------------------------------------------------------ baseline

    def successful_runs(self, workflow_file: str, branch: str, max_runs: int = MAX_RUNS) -> Iterator[WorkflowRun]:
        """This workflow's successful runs on the branch, newest first.

        A pull request's runs are skipped even when their head branch has the
        base branch's name (a fork's `main`): the baseline must be the base
        branch's own code, run by a push, a schedule or by hand.
        """
        params = {"branch": branch, "status": "success", "per_page": 30}
        path = f"/repos/{self.repository}/actions/workflows/{workflow_file}/runs"
        for run in self._pages(f"listing the runs of {workflow_file} on {branch}", path, params, "workflow_runs", max_runs):
            head_repo = (run.get("head_repository") or {}).get("full_name", self.repository)
            if run.get("event", "").startswith("pull_request") or head_repo != self.repository or run.get("head_branch") != branch:
                continue
            yield WorkflowRun(
                id=run["id"],
                run_number=run.get("run_number", 0),
                head_sha=run.get("head_sha", ""),
                head_branch=run.get("head_branch", ""),
                event=run.get("event", ""),
                html_url=run.get("html_url", ""),
            )

    def run_artifact(self, run: WorkflowRun, name: str) -> Artifact | None:
        path = f"/repos/{self.repository}/actions/runs/{run.id}/artifacts"
        for item in self._pages(f"listing the artifacts of run {run.id}", path, {"name": name, "per_page": 100}, "artifacts", 100):
            if item.get("name") == name and not item.get("expired", False):
                return Artifact(id=item["id"], name=name, size_in_bytes=item.get("size_in_bytes", 0), run=run)
        return None

    def download(self, artifact: Artifact) -> bytes:
        if artifact.size_in_bytes > MAX_ZIP_BYTES:
            raise GitHubError(
                f"artifact {artifact.name} is {artifact.size_in_bytes} bytes, more than the {MAX_ZIP_BYTES} read for a baseline"
            )
        path = f"/repos/{self.repository}/actions/artifacts/{artifact.id}/zip"
        # 302 to a short-lived blob URL; httpx keeps the token off the other host.
        return self._request(f"downloading artifact {artifact.name} ({artifact.id})", "GET", path, follow_redirects=True).content

    def baseline(self, workflow_file: str, branch: str, artifact_name: str) -> BaselineArtifact | None:
        """The newest successful run's artifact of that name, read; None when no run has one."""
        for run in self.successful_runs(workflow_file, branch):
            artifact = self.run_artifact(run, artifact_name)
            if artifact is None:
                log.info(
                    "run #%d (%s) on %s has no artifact %s; looking further back", run.run_number, run.head_sha[:7], branch, artifact_name
                )
                continue
            metrics, timings = read_artifact_zip(self.download(artifact))
            return BaselineArtifact(metrics=metrics, timings=timings, artifact=artifact)
        return None

    # ------------------------------------------------------------ comment

    def upsert_comment(self, issue_number: int, marker: str, body: str) -> CommentResult:
        """Update the comment that carries `marker`, or create it: one comment per pull request and marker."""
        if not body.startswith(marker):
            raise ValueError("the body must open with the marker, or the next run cannot find it")
        if len(body) > MAX_COMMENT_CHARS:
            cut = "\n\n… (cut to GitHub's comment limit; the job summary and the artifact have everything)\n"
            body = body[: MAX_COMMENT_CHARS - len(cut)] + cut
        listing = f"/repos/{self.repository}/issues/{issue_number}/comments"
        ours = [
            c
            for c in self._pages(f"listing the comments of #{issue_number}", listing, {"per_page": 100}, None, 3000)
            if (c.get("body") or "").startswith(marker)
        ]
        # Ours open with the marker; someone quoting it further down is not rewritten. A bot's first
        # (the job token's), then the oldest, should a personal token have posted one too.
        ours.sort(key=lambda c: ((c.get("user") or {}).get("type") != "Bot", c.get("id", 0)))
        if ours:
            comment_id = ours[0]["id"]
            path = f"/repos/{self.repository}/issues/comments/{comment_id}"
            response = self._request(f"updating comment {comment_id} on #{issue_number}", "PATCH", path, json={"body": body})
            return CommentResult("updated", comment_id, response.json().get("html_url", ""))
        response = self._request(f"commenting on #{issue_number}", "POST", listing, json={"body": body})
        created = response.json()
        return CommentResult("created", created["id"], created.get("html_url", ""))
