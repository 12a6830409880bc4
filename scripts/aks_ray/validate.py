"""`aks-ray validate`: every input checked, nothing touched.

By the time main() runs, config.load() has already refused bad values (exit 2).
What is left is to say what was accepted, so a person can see the run's shape.
"""

from __future__ import annotations

import logging

from . import gha
from .config import Config, token_problems
from .errors import ConfigError

log = logging.getLogger(__name__)


def main(cfg: Config, words: tuple[str, ...]) -> int:
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
    # The upload step names the artifact from here: its name is declared once, in config.py (baseline auto finds it by name).
    gha.set_outputs(cfg.github.output, {"target": cfg.target, "artifact-name": cfg.verdict.artifact_name})
    return 0
