"""Metrics recovered from the job's log alone.

The training script prints one JSON object per line after a fixed prefix
(training/train_mnist.py, METRICS_PREFIX there; a test keeps the two equal).
Ray may put its own prefix before it, "(RayTrainWorker pid=..)" for example,
so the marker is looked for anywhere in the line.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

METRICS_PREFIX = "AKS_RAY_METRICS "


@dataclass
class TrainingMetrics:
    dataset: dict[str, Any] | None = None
    epochs: list[dict[str, Any]] = field(default_factory=list)
    final: dict[str, Any] | None = None
    driver: dict[str, Any] | None = None  # the driver's start (its `started_at`), when the training says it

    def feed(self, record: dict[str, Any]) -> None:
        kind = record.get("kind")
        if kind == "dataset":
            # A new attempt of the same job (a submitter retry) starts over.
            self.dataset, self.epochs, self.final = record, [], None
        elif kind == "epoch":
            # Keep one record per epoch: the latest attempt wins.
            self.epochs = [e for e in self.epochs if e.get("epoch") != record.get("epoch")]
            self.epochs.append(record)
            self.epochs.sort(key=lambda e: e.get("epoch", 0))
        elif kind == "final":
            self.final = record
        elif kind == "driver":
            self.driver = record

    def final_block(self) -> dict[str, Any]:
        """test_accuracy, train_seconds and samples_per_second, from the final record or the epochs."""
        if self.final is not None:
            return {k: self.final.get(k) for k in ("test_accuracy", "train_seconds", "samples_per_second")}
        if not self.epochs:
            return {"test_accuracy": None, "train_seconds": None, "samples_per_second": None}
        seconds = sum(e.get("seconds", 0.0) for e in self.epochs)
        samples = sum(e.get("samples_per_second", 0.0) * e.get("seconds", 0.0) for e in self.epochs)
        return {
            "test_accuracy": self.epochs[-1].get("test_accuracy"),
            "train_seconds": round(seconds, 3),
            "samples_per_second": round(samples / seconds, 1) if seconds else None,
        }


def epoch_figures(epochs: list[dict[str, Any]]) -> dict[str, float | None]:
    """Seconds in the epochs and samples/s while training, over the epochs alone (no start-up, no model hand-back).

    The summary's "training time" and "throughput": the final record's figures
    (train_mnist.py) run from before Ray Train starts its workers to after the model is back.
    """
    if not epochs:
        return {"seconds": None, "samples_per_second": None}
    seconds = sum(e.get("seconds") or 0.0 for e in epochs)
    trained = [e.get("train_seconds") or e.get("seconds") or 0.0 for e in epochs]
    samples = sum((e.get("samples_per_second") or 0.0) * t for e, t in zip(epochs, trained, strict=True))
    return {"seconds": round(seconds, 3), "samples_per_second": round(samples / sum(trained), 1) if sum(trained) else None}


def parse_line(line: str) -> dict[str, Any] | None:
    """The metrics record carried by one log line, or None."""
    start = line.find(METRICS_PREFIX)
    if start < 0:
        return None
    try:
        record = json.loads(line[start + len(METRICS_PREFIX) :])
    except json.JSONDecodeError:
        return None
    return record if isinstance(record, dict) else None


def parse_log(lines: Iterable[str]) -> TrainingMetrics:
    metrics = TrainingMetrics()
    for line in lines:
        record = parse_line(line)
        if record is not None:
            metrics.feed(record)
    return metrics


def progress_line(record: dict[str, Any]) -> str | None:
    """A one-line progress message for the terminal, for the records worth one."""
    kind = record.get("kind")
    if kind == "epoch":
        return (
            f"epoch {record.get('epoch')}/{record.get('epochs', '?')}: "
            f"train loss {record.get('train_loss', float('nan')):.4f}, "
            f"test loss {record.get('test_loss', float('nan')):.4f}, "
            f"test accuracy {100 * record.get('test_accuracy', float('nan')):.2f}%, "
            f"{record.get('seconds', float('nan')):.1f} s, "
            f"{record.get('samples_per_second', float('nan')):.0f} samples/s"
        )
    if kind == "dataset":
        sizes = f"{record.get('train_size')} train / {record.get('test_size')} test images"
        return f"dataset: {record.get('name')} ({sizes}, from {record.get('source')})"
    return None


class ProgressAnnouncer:
    """Progress lines for a live log, each record announced once.

    Ray forwards a Ray Train worker's print() twice into the driver's log (Ray
    2.60 patches print to write stdout and log to stderr); training/train_mnist.py
    writes its records without print, but a user's training script may not. The
    second copy is the same record, to the letter; a retried attempt's records
    differ (their finish times do), so they are announced.
    """

    def __init__(self) -> None:
        self._seen: set[str] = set()

    def announce(self, line: str) -> str | None:
        record = parse_line(line)
        if record is None:
            return None
        key = json.dumps(record, sort_keys=True)
        if key in self._seen:
            return None
        self._seen.add(key)
        return progress_line(record)
