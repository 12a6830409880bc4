"""What every command line of the package shares: the parser, logging, and the exit-code contract.

Standard library and the package's stdlib-only modules (config, gha, errors,
versions) only: `python -m aks_ray.validate` runs through here from the
action's source, before anything is installed.

Exit codes: 0 done; 2 bad input, before anything was created (every problem
named, with its fix); 1 an operational failure, after collecting what a person
needs; 130 interrupted. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from . import __version__, config, gha, maskpipe, redact, signals, versions
from .config import Config
from .errors import EXIT_INTERRUPTED, AksRayError, ConfigError

log = logging.getLogger("aks_ray")


@dataclass(frozen=True)
class Command:
    """One subcommand: its words (`job wait`), the function it runs, the option sections it reads, its help."""

    words: tuple[str, ...]
    function: Callable[[Config], int]
    sections: tuple[str, ...]
    help: str


def build_parser(commands: Sequence[Command]) -> argparse.ArgumentParser:
    versions_text = "\n".join(f"  {name}: {version}" for name, version in versions.versions_table())
    parser = argparse.ArgumentParser(
        prog="aks-ray",
        description="Train a model on a Ray cluster: on AKS, on any Kubernetes cluster, or locally.",
        epilog=(
            "Every option can also be set as an environment variable (shown in each subcommand's --help).\n\n"
            f"Pinned versions:\n{versions_text}"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"aks-ray {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    groups: dict[str, argparse._SubParsersAction] = {}
    for command in commands:
        first, *rest = command.words
        if not rest:
            sub = subparsers.add_parser(first, help=command.help, description=command.help)
        else:
            if first not in groups:
                actions = ", ".join(c.words[1] for c in commands if c.words[0] == first and len(c.words) > 1)
                parent = subparsers.add_parser(first, help=f"{first} steps: {actions}")
                groups[first] = parent.add_subparsers(dest="action", metavar="ACTION", required=True)
            sub = groups[first].add_parser(rest[0], help=command.help, description=command.help)
        sub.set_defaults(command_object=command)
        config.add_arguments(sub, command.sections)
    return parser


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S", stream=sys.stderr, force=True)
    redact.install_logging()  # no token-shaped string reaches a log line


def report_error(exc: AksRayError, words: Sequence[str]) -> None:
    """An error as the user sees it: one annotation per bad input, or the failure with its fix."""
    if isinstance(exc, ConfigError):
        for problem in exc.problems:
            gha.error(problem, title="aks-ray: invalid input")
        log.error("nothing was started or created; fix the input(s) above and run again")
    else:
        gha.error(str(exc), title=f"aks-ray {' '.join(words)} failed")


def main(commands: Sequence[Command], argv: Sequence[str] | None = None) -> int:
    setup_logging()
    gha.use_workflow_commands(config.running_in_actions())
    maskpipe.install()  # masks the exec plugin mints reach the runner through this process
    args = build_parser(commands).parse_args(argv)
    command: Command = args.command_object
    flags = {name: value for name, value in vars(args).items() if name not in ("command", "action", "command_object")}
    try:
        cfg = config.load(flags)
        setup_logging(cfg.common.log_level)
        # SIGTERM (a cancelled workflow, `kill`) stops every command the way Ctrl-C does.
        with signals.sigterm_as_interrupt():
            return command.function(cfg)
    except AksRayError as exc:
        report_error(exc, command.words)
        return exc.exit_code
    except KeyboardInterrupt:
        log.error("interrupted")
        return EXIT_INTERRUPTED
