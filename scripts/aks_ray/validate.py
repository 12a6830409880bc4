"""`aks-ray validate`: every input checked, nothing touched.

By the time main() runs, config.load() has already refused bad values (exit 2).
What is left is to say what was accepted, so a person can see the run's shape.
The action runs it as `python -m aks_ray.validate` from its own source, before
anything is installed, so this module needs only the standard library.
"""

from __future__ import annotations

import logging
import sys

from . import commandline, gha
from .config import Config, token_problems
from .errors import ConfigError

log = logging.getLogger(__name__)

HELP = "check every input and exit 2 listing the bad ones; touches nothing"
SECTIONS = ("common", "training", "kube", "azure", "verdict")


def main(cfg: Config) -> int:
    # Only validate and verdict are given the job's token: the checks that need it are theirs (config.token_problems).
    problems = token_problems(cfg)
    if problems:
        raise ConfigError(problems)
    t = cfg.training
    log.info(
        "inputs are valid: target=%s, %d worker(s) x %d CPU, %d epoch(s), batch size %d, timeout %d s",
        cfg.target,
        t.workers,
        t.cpus_per_worker,
        t.epochs,
        t.batch_size,
        cfg.common.timeout,
    )
    # The output folder as later steps resolve it, for the upload step when no later step reports it.
    # The artifact's name too: declared once, in config.py, because baseline auto looks the base branch's artifact up by it.
    outputs = {"target": cfg.target, "output-dir": str(cfg.output_dir.resolve()), "artifact-name": cfg.verdict.artifact_name}
    gha.set_outputs(cfg.github.output, outputs)
    return 0


if __name__ == "__main__":
    sys.exit(commandline.main([commandline.Command(("validate",), main, SECTIONS, HELP)], ["validate", *sys.argv[1:]]))
