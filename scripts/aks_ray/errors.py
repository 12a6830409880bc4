"""The two kinds of failure the user sees, and their exit codes.

A UserError is bad input: nothing has been created yet, exit 2.
An OperationalError is something that went wrong while working (a job failed,
a deadline passed): diagnostics have been collected, exit 1.
Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_OPERATIONAL = 1
EXIT_USER = 2
EXIT_INTERRUPTED = 130


class AksRayError(Exception):
    """Base class: a failure with a message for people and a suggested fix."""

    exit_code = EXIT_OPERATIONAL

    def __init__(self, message: str, fix: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.message} Fix: {self.fix}" if self.fix else self.message


class UserError(AksRayError):
    """Bad input, detected before anything was started or created."""

    exit_code = EXIT_USER


class ConfigError(UserError):
    """Every bad configuration value at once, one line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems))
        self.problems = problems


class OperationalError(AksRayError):
    """Something failed while working; outputs and diagnostics were kept."""

    exit_code = EXIT_OPERATIONAL


class DeadlineExceeded(OperationalError):
    """A wait ran past its deadline."""
