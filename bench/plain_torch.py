"""Baseline (a): the same CNN, data, batch size and optimiser as the Ray job, in one plain PyTorch process.

    python bench/plain_torch.py --data-dir ../shared/data/mnist --epochs 3

Prints one JSON object: per-epoch test accuracy and seconds, wall time, and
the time at which test accuracy first reached 98%.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
from mnist_data import load_folder
from model import MnistCNN, evaluate, to_labels, to_tensor, train_epoch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", required=True, type=Path)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()

    started = time.perf_counter()
    torch.set_num_threads(args.threads)
    data = load_folder(args.data_dir, "mnist", str(args.data_dir))
    torch.manual_seed(args.seed)
    model = MnistCNN()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.learning_rate)
    train_x, train_y = to_tensor(data.train_images), to_labels(data.train_labels)
    test_x, test_y = to_tensor(data.test_images), to_labels(data.test_labels)
    epochs, reached_98 = [], None
    for epoch in range(1, args.epochs + 1):
        epoch_started = time.perf_counter()
        order = torch.as_tensor(np.random.default_rng(args.seed + epoch).permutation(len(train_y)))
        train_epoch(model, optimizer, train_x, train_y, order, args.batch_size)
        train_seconds = time.perf_counter() - epoch_started
        _, correct = evaluate(model, test_x, test_y)
        accuracy = correct / len(test_y)
        epochs.append(
            {
                "epoch": epoch,
                "test_accuracy": accuracy,
                "train_seconds": round(train_seconds, 2),
                "samples_per_second": round(len(train_y) / train_seconds),
                "finished_at": time.time(),
            }
        )
        if reached_98 is None and accuracy >= 0.98:
            reached_98 = round(time.perf_counter() - started, 2)
        print(f"epoch {epoch}: test accuracy {100 * accuracy:.2f}% in {train_seconds:.1f} s", file=sys.stderr)
    print(json.dumps({"wall_seconds": round(time.perf_counter() - started, 2), "seconds_to_98": reached_98, "epochs": epochs}))


if __name__ == "__main__":
    main()
