"""The training job's command line, the same for every target.

The entrypoint runs inside the uploaded working_dir; the training options are
appended as flags, so a custom entrypoint receives them too (it may ignore them).
"""

from __future__ import annotations

import shlex

from .config import Config

# Where the driver writes model.pt and result.json on the Ray head, for the
# Kubernetes targets; the local target passes a folder under --output-dir.
HEAD_ARTIFACTS_DIR = "/tmp/aks-ray/artifacts"  # noqa: S108 (inside the head pod, which is ours alone)


def training_flags(cfg: Config, artifacts_dir: str, data_dir: str | None = None) -> list[str]:
    t = cfg.training
    flags = [
        "--epochs", str(t.epochs),
        "--batch-size", str(t.batch_size),
        "--learning-rate", str(t.learning_rate),
        "--workers", str(t.workers),
        "--cpus-per-worker", str(t.cpus_per_worker),
        "--seed", str(t.seed),
        "--dataset", t.dataset,
        "--mnist-mirror", t.mnist_mirror,
        "--artifacts-dir", artifacts_dir,
    ]  # fmt: skip
    if t.use_gpu:
        flags.append("--use-gpu")
    if data_dir:
        flags += ["--data-dir", data_dir]
    return flags


def entrypoint_command(cfg: Config, artifacts_dir: str, data_dir: str | None = None) -> str:
    """The shell command Ray runs as the job's driver, quoted safely."""
    base = shlex.split(cfg.training.entrypoint)
    return shlex.join(base + training_flags(cfg, artifacts_dir, data_dir))


def entrypoint_argv(cfg: Config, artifacts_dir: str, data_dir: str | None = None) -> list[str]:
    """The driver's command as a list of arguments: --entrypoint's words, then the training flags."""
    return shlex.split(cfg.training.entrypoint) + training_flags(cfg, artifacts_dir, data_dir)
