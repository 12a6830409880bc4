"""GitHub Actions workflow commands, files and annotations.

Outside Actions (no GITHUB_* files set) every function still works: groups and
annotations are plain lines on stderr, outputs and summaries go nowhere.
The paths come in as arguments (from the Config), so this module never reads
the environment itself (export_env writes to it, as GitHub does between steps).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from . import redact

log = logging.getLogger(__name__)

# In a terminal, annotations read better as plain "error: ..." lines; under
# GitHub Actions (or act) they must be workflow commands. The CLI sets this once.
_workflow_commands = True
# Where add_mask sends a mask instead of stderr (the exec plugin's mask pipe, see maskpipe.py).
_mask_sink: Callable[[str], bool] | None = None


def use_workflow_commands(enabled: bool) -> None:
    global _workflow_commands
    _workflow_commands = enabled


def _escape_data(value: str) -> str:
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(value: str) -> str:
    return _escape_data(value).replace(":", "%3A").replace(",", "%2C")


def command(name: str, message: str = "", **properties: str) -> str:
    """Format one `::name prop=value::message` workflow command."""
    props = ",".join(f"{k}={_escape_property(v)}" for k, v in properties.items() if v)
    return f"::{name}{' ' + props if props else ''}::{_escape_data(message)}"


def use_mask_sink(sink: Callable[[str], bool] | None) -> None:
    """Send masks to `sink` (which returns False when it cannot take them) rather than to stderr."""
    global _mask_sink
    _mask_sink = sink


def _emit_raw(line: str) -> None:
    # Workflow commands must reach the runner on stdout or stderr unbuffered and whole.
    print(line, file=sys.stderr, flush=True)


def emit(line: str) -> None:
    """Print one line for the runner, redacted: annotations often carry a child process's stderr."""
    _emit_raw(redact.text(line))


def annotate(level: str, message: str, title: str = "") -> None:
    if _workflow_commands:
        emit(command(level, message, title=title))
    else:
        emit(f"{level}: {title + ': ' if title else ''}{message}")


def error(message: str, title: str = "") -> None:
    annotate("error", message, title)


def warning(message: str, title: str = "") -> None:
    annotate("warning", message, title)


def notice(message: str, title: str = "") -> None:
    annotate("notice", message, title)


def add_mask(secret: str) -> None:
    """Tell the runner to hide this value in every later log line.

    Called the moment a secret exists, before it could be logged. Outside
    Actions there is no runner to tell, and printing it would leak it.
    """
    if not secret:
        return
    # Redacted from every later line this process prints, raises or writes, runner or not.
    redact.remember([secret])
    if _workflow_commands:
        for line in secret.splitlines():
            if line.strip() and not (_mask_sink is not None and _mask_sink(line)):
                _emit_raw(f"::add-mask::{line}")


@contextlib.contextmanager
def group(title: str) -> Iterator[None]:
    emit(f"::group::{title}" if _workflow_commands else f"==> {title}")
    try:
        yield
    finally:
        if _workflow_commands:
            emit("::endgroup::")


def set_outputs(github_output: Path | None, values: dict[str, str]) -> None:
    """Append step outputs to $GITHUB_OUTPUT (heredoc form, safe for any value)."""
    if github_output is None:
        return
    with open(github_output, "a", encoding="utf-8") as handle:
        for key, value in values.items():
            value = str(value)
            if "\n" in value:
                marker = f"EOF_{uuid.uuid4().hex}"
                handle.write(f"{key}<<{marker}\n{value}\n{marker}\n")
            else:
                handle.write(f"{key}={value}\n")


def export_env(github_env: Path | None, name: str, value: str) -> None:
    """Hand an environment variable to the later steps of the job.

    Also set here: `aks-ray run` runs the later steps in this process, and each
    reads its Config anew from the environment, as each step of the action does.
    """
    os.environ[name] = value
    if github_env is None:
        return
    with open(github_env, "a", encoding="utf-8") as handle:
        handle.write(f"{name}={value}\n")


def append_summary(step_summary: Path | None, markdown: str) -> None:
    if step_summary is None:
        return
    with open(step_summary, "a", encoding="utf-8") as handle:
        handle.write(markdown.rstrip("\n") + "\n\n")
