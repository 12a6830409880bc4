"""Cancellation: how the CLI hears "stop", and how a running program hears it from us.

GitHub cancels a step by signalling the step's process (and only that process,
not its group): SIGINT, then SIGTERM 7.5 s later if it is still running, then
SIGKILL 2.5 s after that (actions/runner, ProcessInvoker). Ctrl-C in a terminal
sends SIGINT; `kill`, systemd and container runtimes send SIGTERM. All of them
mean the same here: stop, and clean up on the way out. So both raise
`Interrupted`, a KeyboardInterrupt, which every step already handles.

While proc.run waits for a program (terraform, kubectl), the signals are held
instead (`held`): recorded, not raised, so that the wait for the program's own
orderly stop cannot be cut short by an exception in the middle of it.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

INTERRUPTS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived; `signum` says which."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def signal_of(exc: BaseException) -> int:
    """The signal behind a KeyboardInterrupt: Python's own (Ctrl-C) is SIGINT."""
    return exc.signum if isinstance(exc, Interrupted) else signal.SIGINT


def name(signum: int) -> str:
    return signal.Signals(signum).name


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM and SIGINT raise Interrupted, so that every step's clean-up runs on a cancel.

    Only the main thread can set signal handlers; elsewhere this does nothing
    (signals are delivered to the main thread anyway).
    """

    def raise_interrupted(signum: int, frame: object) -> None:
        raise Interrupted(signum)

    with _handlers(raise_interrupted):
        yield


@contextlib.contextmanager
def held() -> Iterator[list[int]]:
    """While the block runs, SIGINT and SIGTERM are appended to the yielded list instead of raising.

    A signal the process ignores (a shell starts background jobs with SIGINT
    ignored) stays ignored. Outside the main thread the list stays empty.
    """
    received: list[int] = []

    def record(signum: int, frame: object) -> None:
        received.append(signum)

    with _handlers(record):
        yield received


@contextlib.contextmanager
def _handlers(handler) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}
    try:
        for signum in INTERRUPTS:
            if signal.getsignal(signum) is not signal.SIG_IGN:
                previous[signum] = signal.signal(signum, handler)
        yield
    finally:
        for signum, old in previous.items():
            # None: a handler set outside Python, which cannot be put back; the default is the nearest.
            signal.signal(signum, signal.SIG_DFL if old is None else old)
