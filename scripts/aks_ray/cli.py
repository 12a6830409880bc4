"""The `aks-ray` command: one subcommand per pipeline step, `run` for all of them, `dashboard`, `job sweep` and `infra sweep`.

The steps' subcommands, their functions and their options are declared once,
in pipeline.STEPS; `aks-ray job wait` runs pipeline.run_step on the `wait`
step, which calls job.wait_step. commandline.py holds the parser and the exit
codes shared with the other entry points.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Sequence

from . import commandline, dashboard, kube_sweep, pipeline, sweep
from .commandline import Command

COMMANDS: tuple[Command, ...] = (
    Command(("run",), pipeline.run, pipeline.ALL_SECTIONS, "the whole pipeline for --target (local, kubeconfig or aks)"),
    *(
        Command(step.command, functools.partial(pipeline.run_step, step), step.sections, step.help)
        for step in pipeline.STEPS
        if step.function is not None
    ),
    Command(("dashboard",), dashboard.main, ("common", "kube"), "port-forward the Ray dashboard of the run's cluster to localhost"),
    # Not pipeline steps: clean-ups of what runs whose workflow never reached cleanup left behind, by hand or on a schedule.
    Command(
        ("job", "sweep"),
        kube_sweep.main,
        ("common", "kube", "sweep"),
        "list the objects of runs in --namespace whose aks-ray.io/expires-at has passed; delete them with --yes",
    ),
    Command(
        ("infra", "sweep"),
        sweep.main,
        ("common", "azure", "sweep"),
        "list resource groups whose aks-ray-expires-on tag has passed; delete them with --yes",
    ),
)


def build_parser() -> argparse.ArgumentParser:
    return commandline.build_parser(COMMANDS)


def main(argv: Sequence[str] | None = None) -> int:
    return commandline.main(COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
