"""Deadlines and bounded retries: every wait in the project goes through here."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from .errors import DeadlineExceeded

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class Deadline:
    """A point in monotonic time after which a wait gives up."""

    seconds: float
    what: str = "operation"
    started: float = field(default_factory=time.monotonic)

    @property
    def remaining(self) -> float:
        return max(0.0, self.started + self.seconds - time.monotonic())

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def expired(self) -> bool:
        return self.remaining <= 0

    def check(self, fix: str = "") -> None:
        if self.expired:
            raise DeadlineExceeded(f"{self.what} did not finish within {self.seconds:.0f} s.", fix)


def wait_until(
    condition: Callable[[], T | None],
    deadline: Deadline,
    interval: float = 2.0,
    fix: str = "",
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call `condition` until it returns something truthy or the deadline passes."""
    while True:
        result = condition()
        if result:
            return result
        deadline.check(fix)
        sleep(min(interval, max(deadline.remaining, 0.01)))


def retry(
    call: Callable[[], T],
    *,
    what: str,
    attempts: int = 5,
    first_delay: float = 1.0,
    max_delay: float = 30.0,
    retry_on: tuple[type[BaseException], ...] = (Exception,),
    is_transient: Callable[[BaseException], bool] = lambda exc: True,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run `call`, retrying transient failures with exponential backoff and jitter.

    At most `attempts` calls are made; the last failure is re-raised unchanged.
    """
    delay = first_delay
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except retry_on as exc:
            if attempt == attempts or not is_transient(exc):
                raise
            # Jitter spreads retries of concurrent runs; it needs no cryptographic randomness.
            wait = min(max_delay, delay) * (0.5 + random.random() / 2)  # noqa: S311
            log.warning("%s failed (attempt %d of %d): %s; retrying in %.1f s", what, attempt, attempts, exc, wait)
            sleep(wait)
            delay *= 2
    raise AssertionError("unreachable")  # pragma: no cover
