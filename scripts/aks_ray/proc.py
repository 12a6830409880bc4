"""Running external programs with a deadline, streaming their output live."""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from . import gha, redact
from .errors import DeadlineExceeded, UserError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Result:
    args: tuple[str, ...]
    returncode: int
    output: str

    def tail(self, lines: int = 20) -> str:
        return "\n".join(self.output.splitlines()[-lines:])


def require_executable(name: str, fix: str) -> str:
    """Return the path of `name` on PATH, or fail as bad input before anything starts."""
    from shutil import which

    path = which(name)
    if path is None:
        raise UserError(f"`{name}` was not found on PATH.", fix)
    return path


def run(
    args: Sequence[str],
    *,
    timeout: float,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    on_line: Callable[[str], None] | None = None,
    echo: bool = True,
) -> Result:
    """Run a program to completion within `timeout` seconds.

    Output (stdout and stderr merged) is echoed line by line as it arrives, so
    long commands show live progress, and is also returned whole; both
    redacted (redact.py), as the output often ends up in an error message. A
    line that is a whole `::add-mask::` command is the child's mask for the
    runner: it is passed on as a mask, and its value redacted from then on.
    On timeout the whole process group is terminated, then killed.
    """
    log.info("$ %s", shlex.join(args))
    process = subprocess.Popen(
        list(args),
        cwd=cwd,
        env=None if env is None else {**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        bufsize=1,
        start_new_session=True,
    )
    collected: list[str] = []

    def pump() -> None:
        assert process.stdout is not None
        for raw in process.stdout:
            if raw.startswith("::add-mask::"):
                gha.add_mask(raw[len("::add-mask::") :].strip())
            line = redact.text(raw)
            collected.append(line)
            if echo:
                sys.stderr.write(line)
                sys.stderr.flush()
            if on_line is not None:
                on_line(line.rstrip("\n"))

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        terminate_group(process)
        reader.join(timeout=5)
        raise DeadlineExceeded(
            f"`{args[0]}` did not finish within {timeout:.0f} s.",
            "raise the timeout, or look at the output above for where it stalled.",
        ) from None
    except BaseException:
        terminate_group(process)
        raise
    reader.join(timeout=10)
    # The pipe is ours to close: left open, it leaks a descriptor per call and
    # warns (ResourceWarning) when collected.
    if process.stdout is not None and not reader.is_alive():
        process.stdout.close()
    return Result(tuple(args), process.returncode, "".join(collected))


def terminate_group(process: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM the whole process group, then SIGKILL whatever is left after `grace` s.

    The group, not just the leader: a leader may exit before its children do,
    and those children are exactly what must not be left running.
    """
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        process.poll()
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and group_alive(process):
        time.sleep(0.2)
    if group_alive(process):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace)


def group_alive(process: subprocess.Popen) -> bool:
    process.poll()  # reap the leader if it exited, so it does not count as alive
    try:
        os.killpg(process.pid, 0)
    except ProcessLookupError:
        return False
    return True
