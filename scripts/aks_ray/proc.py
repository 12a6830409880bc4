"""Running external programs with a deadline, streaming their output live."""

from __future__ import annotations

import codecs
import contextlib
import logging
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from . import gha, redact, signals
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


# How long a program may take to stop on its own once the interrupt is passed on,
# unless the caller knows better (Terraform asks for much longer: infra.py).
INTERRUPT_GRACE = 30.0
# From an escalation (the same signal twice) to SIGKILL, and the wait for the
# rest of a process group once its leader has exited.
ESCALATED_GRACE = 10.0
POLL_INTERVAL = 0.1


def run(
    args: Sequence[str],
    *,
    timeout: float,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    on_line: Callable[[str], None] | None = None,
    echo: bool = True,
    interrupt_grace: float = INTERRUPT_GRACE,
) -> Result:
    """Run a program to completion within `timeout` seconds.

    Output (stdout and stderr merged) is echoed line by line as it arrives, so
    long commands show live progress, and is also returned whole; both
    redacted (redact.py), as the output often ends up in an error message. A
    line that is a whole `::add-mask::` command is the child's mask for the
    runner: it is passed on as a mask, and its value redacted from then on.
    On timeout
    the whole process group is terminated, then killed.

    Interrupted while the program runs (SIGINT or SIGTERM, see signals.py),
    this passes SIGINT on to the program's process group, as Ctrl-C in a
    terminal would, waits up to `interrupt_grace` s for the program to stop on
    its own (Terraform finishes what is in flight and saves its state), and
    then raises signals.Interrupted. The same signal a second time escalates:
    SIGINT once more (Terraform's "exit immediately"), SIGKILL after
    ESCALATED_GRACE s. A different one (the runner's SIGTERM after its SIGINT)
    is the same cancel, and the wait goes on.

    The program writes into an anonymous file that this process tails, not
    into a pipe: if this process is killed (the runner's SIGKILL 10 s into a
    cancel), a program writing into a pipe nobody reads dies of SIGPIPE, and a
    Terraform that dies mid-apply forgets what it was creating and keeps its
    state lock. Reading a file, it finishes its orderly stop unattended.
    """
    log.info("$ %s", shlex.join(args))
    output = _Output(echo=echo, on_line=on_line)
    with signals.held() as received:
        try:
            process = subprocess.Popen(
                list(args),
                cwd=cwd,
                env=None if env is None else {**os.environ, **env},
                stdout=output.writer,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        except BaseException:
            output.close()
            raise
        output.follow()
        try:
            interrupt = _wait(process, Path(args[0]).name, timeout, interrupt_grace, received)
        except BaseException:
            terminate_group(process)
            raise
        finally:
            output.close()
    # A signal that came as the program was finishing on its own still means stop.
    interrupt = interrupt if interrupt is not None else next(iter(received), None)
    if interrupt is not None:
        log.error("`%s` stopped after the interrupt (exit code %s)", Path(args[0]).name, process.returncode)
        raise signals.Interrupted(interrupt)
    return Result(tuple(args), process.returncode, output.text())


def _wait(process: subprocess.Popen, program: str, timeout: float, grace: float, received: list[int]) -> int | None:
    """Wait for the program, passing interrupts on; return the signal that interrupted it, if one did."""
    deadline = time.monotonic() + timeout
    first: int | None = None
    stop_by = 0.0
    seen: set[int] = set()
    handled = 0
    while process.poll() is None:
        now = time.monotonic()
        for signum in received[handled:]:
            if first is None:
                first, stop_by = signum, now + grace
                log.warning(
                    "%s: passing the interrupt on to `%s` (pid %d) and waiting up to %.0f s for it to stop cleanly",
                    signals.name(signum),
                    program,
                    process.pid,
                    grace,
                )
                _signal_group(process, signal.SIGINT)
            elif signum in seen:
                stop_by = min(stop_by, now + ESCALATED_GRACE)
                log.error("%s again: telling `%s` to stop at once; killed in %.0f s", signals.name(signum), program, stop_by - now)
                _signal_group(process, signal.SIGINT)
            else:
                log.warning(
                    "%s: still waiting for `%s` to stop cleanly (%.0f s left); the same signal again stops it at once",
                    signals.name(signum),
                    program,
                    stop_by - now,
                )
            seen.add(signum)
        handled = len(received)
        if first is None and now > deadline:
            raise DeadlineExceeded(
                f"`{program}` did not finish within {timeout:.0f} s.",
                "raise the timeout, or look at the output above for where it stalled.",
            )
        if first is not None and now > stop_by:
            log.error("`%s` did not stop in time after the interrupt: killing it", program)
            _signal_group(process, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=ESCALATED_GRACE)
            break
        time.sleep(POLL_INTERVAL)
    if first is not None:
        # Interrupted, this process is about to exit: nothing the program started may outlive it.
        _kill_group_after(process, ESCALATED_GRACE)
    return first


class _Output:
    """Where the program writes (an anonymous file), and the thread that tails it."""

    def __init__(self, *, echo: bool, on_line: Callable[[str], None] | None) -> None:
        self.echo = echo
        self.on_line = on_line
        self.lines: list[str] = []
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        # The program gets `writer`; this process reads through its own descriptor,
        # with its own file offset. Nothing of it has a name on disk, so secrets
        # in the output (terraform output -json) stay in memory or unlinked.
        self.writer = -1
        try:
            self.writer = os.memfd_create("aks-ray-output", os.MFD_CLOEXEC)
            self._reader = os.open(f"/proc/self/fd/{self.writer}", os.O_RDONLY | os.O_CLOEXEC)
        except (AttributeError, OSError):  # not Linux: a private temporary file, unlinked at once
            if self.writer >= 0:
                os.close(self.writer)
            self.writer, path = tempfile.mkstemp(prefix="aks-ray-output-")
            self._reader = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            os.unlink(path)

    def follow(self) -> None:
        os.close(self.writer)  # the program has its copy
        self.writer = -1
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        partial = ""
        while True:
            finished = self._done.is_set()  # read before reading: what was written before the exit is all there
            chunk = os.read(self._reader, 65536)
            if chunk:
                partial = self._emit(partial + decoder.decode(chunk))
            elif finished:
                break
            else:
                self._done.wait(POLL_INTERVAL / 2)
        tail = partial + decoder.decode(b"", final=True)
        if tail:
            self._emit(tail + "\n")
            self.lines[-1] = self.lines[-1][:-1]  # the program did not end its last line; neither do we

    def _emit(self, text: str) -> str:
        *complete, rest = text.split("\n")
        for raw in complete:
            if raw.startswith("::add-mask::"):  # the program's mask for the runner: pass it on as ours
                gha.add_mask(raw[len("::add-mask::") :].strip())
            line = redact.text(raw)
            self.lines.append(line + "\n")
            if self.echo:
                sys.stderr.write(line + "\n")
                sys.stderr.flush()
            if self.on_line is not None:
                self.on_line(line)
        return rest

    def close(self) -> None:
        """The program has exited (or never started): read what is left, then let go of the file."""
        self._done.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self.writer >= 0:
            os.close(self.writer)
            self.writer = -1
        if self._reader >= 0 and (self._thread is None or not self._thread.is_alive()):
            os.close(self._reader)
            self._reader = -1

    def text(self) -> str:
        return "".join(self.lines)


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


def terminate_group(process: subprocess.Popen, grace: float = 10.0, settle: float | None = None) -> None:
    """SIGTERM the whole process group, then SIGKILL whatever is left after `grace` s.

    The group, not just the leader: a leader may exit before its children do,
    and those children are exactly what must not be left running.

    With `settle`, SIGKILL comes as soon as the group's living processes have not
    changed for that long: a group some of whose members ignore SIGTERM (a Ray head)
    then costs the time its other members take to exit, not the whole grace.
    Either way this returns once none of the group's processes is running.
    """
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        process.poll()
        return
    _kill_group_after(process, grace, settle)


def _kill_group_after(process: subprocess.Popen, grace: float, settle: float | None = None) -> None:
    """Give the process group `grace` s to be gone (or to settle), then SIGKILL what is left, and wait for it to exit."""
    now = time.monotonic()
    deadline, last, unchanged_since = now + grace, None, now
    while now < deadline and group_alive(process):
        living = living_members(process.pid) if settle is not None else None
        if living is not None:
            if living != last:
                last, unchanged_since = living, now
            elif now - unchanged_since >= settle:
                break  # what is still running ignores SIGTERM: waiting longer changes nothing
        time.sleep(POLL_INTERVAL)
        now = time.monotonic()
    if group_alive(process):
        _signal_group(process, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace)
    # SIGKILL is delivered at once but a process exits a moment later: return only once none runs.
    gone_by = time.monotonic() + grace
    while time.monotonic() < gone_by and living_members(process.pid):
        time.sleep(POLL_INTERVAL / 2)


def living_members(pgid: int) -> frozenset[int] | None:
    """The PIDs of process group `pgid` that have not exited (zombies left out); None where /proc cannot tell."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return None
    living = set()
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as handle:
                # pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses, so split after the last ')'.
                state, _ppid, pgrp = handle.read().rsplit(")", 1)[1].split()[:3]
        except (OSError, ValueError, IndexError):
            continue
        if int(pgrp) == pgid and state not in ("Z", "X"):
            living.add(int(entry))
    return frozenset(living)


def group_alive(process: subprocess.Popen) -> bool:
    process.poll()  # reap the leader if it exited, so it does not count as alive
    try:
        os.killpg(process.pid, 0)
    except ProcessLookupError:
        return False
    return True
