"""Metrics recovered from log lines, as Ray really prints them."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from aks_ray import metrics

ROOT = Path(__file__).resolve().parents[2]

EPOCH_1 = {
    "kind": "epoch",
    "epoch": 1,
    "epochs": 2,
    "train_loss": 0.3,
    "test_loss": 0.1,
    "test_accuracy": 0.97,
    "seconds": 10.0,
    "samples_per_second": 6000.0,
}
EPOCH_2 = {
    **EPOCH_1,
    "epoch": 2,
    "train_loss": 0.1,
    "test_loss": 0.05,
    "test_accuracy": 0.985,
    "seconds": 8.0,
    "samples_per_second": 7500.0,
}
DATASET = {"kind": "dataset", "name": "mnist", "source": "data-dir", "train_size": 60000, "test_size": 10000}


def line(record: dict, prefix: str = "") -> str:
    return prefix + metrics.METRICS_PREFIX + json.dumps(record)


def test_prefix_matches_the_training_script():
    spec = importlib.util.spec_from_file_location("train_mnist", ROOT / "training" / "train_mnist.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.METRICS_PREFIX == metrics.METRICS_PREFIX


def test_records_are_found_behind_rays_worker_prefix():
    log = [
        "2026-11-25 20:04:01,904 INFO job_manager.py:581 -- Runtime env is setting up.",
        line(DATASET),
        line(EPOCH_1, "\x1b[36m(RayTrainWorker pid=21994)\x1b[0m "),
        "some unrelated line with AKS_RAY_METRICS {broken json",
        line(EPOCH_2, "(RayTrainWorker pid=21994, ip=10.0.0.3) "),
    ]
    parsed = metrics.parse_log(log)
    assert parsed.dataset == DATASET
    assert [e["epoch"] for e in parsed.epochs] == [1, 2]
    assert parsed.final_block() == {"test_accuracy": 0.985, "train_seconds": 18.0, "samples_per_second": 6666.7}


def test_duplicated_lines_and_retried_attempts_keep_one_record_per_epoch():
    log = [line(DATASET), line(EPOCH_1), line(EPOCH_1), line({**EPOCH_1, "test_accuracy": 0.5})]
    assert [e["test_accuracy"] for e in metrics.parse_log(log).epochs] == [0.5]
    # A submitter retry starts the job again: the earlier attempt's epochs go.
    log = [line(DATASET), line(EPOCH_1), line(EPOCH_2), line(DATASET), line(EPOCH_1)]
    assert [e["epoch"] for e in metrics.parse_log(log).epochs] == [1]


def test_the_final_record_wins_over_the_epochs():
    final = {"kind": "final", "test_accuracy": 0.99, "train_seconds": 30.0, "samples_per_second": 4000.0}
    assert metrics.parse_log([line(EPOCH_1), line(final)]).final_block() == {
        "test_accuracy": 0.99,
        "train_seconds": 30.0,
        "samples_per_second": 4000.0,
    }


def test_no_records_give_an_empty_final_block():
    assert metrics.parse_log(["nothing here"]).final_block() == {"test_accuracy": None, "train_seconds": None, "samples_per_second": None}


def test_progress_lines():
    assert metrics.progress_line(EPOCH_2) == "epoch 2/2: train loss 0.1000, test loss 0.0500, test accuracy 98.50%, 8.0 s, 7500 samples/s"
    assert "60000 train" in metrics.progress_line(DATASET)
    assert metrics.progress_line({"kind": "final"}) is None


def test_an_echoed_record_is_announced_once_and_a_retried_one_again():
    announcer = metrics.ProgressAnnouncer()
    worker = "(RayTrainWorker pid=14714) "
    first = {**EPOCH_1, "finished_at": 100.0}
    retried = {**EPOCH_1, "finished_at": 250.0}

    said = [announcer.announce(text) for text in (line(first, worker), line(first, worker), "no record", line(retried, worker))]

    assert said[0] and said[0].startswith("epoch 1/2")
    assert said[1] is None, "Ray's echo of the same line"
    assert said[2] is None
    assert said[3] == said[0], "a retried attempt's epoch is news"
