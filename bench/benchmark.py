"""Benchmark: the local pipeline against plain PyTorch, same CNN, same data, same epochs.

    .venv/bin/python bench/benchmark.py --data-dir ../shared/data/mnist --epochs 3 --repeats 3

(a) bench/plain_torch.py: one process, all cores, no Ray.
(b) `aks-ray run --target local`: Ray start, job submission, Ray Train, outputs, Ray stop.

Runs alternate a, b, a, b, ... so that a noisy machine slows both alike. Prints,
as medians over the repeats: wall time, the ratio b/a, time to 98% test
accuracy, samples/s, final test accuracy and peak memory (the summed RSS of the
whole process tree, sampled every 0.2 s). Writes the raw runs as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def tree_rss_bytes(root: int) -> int:
    """Summed resident memory of `root` and all its descendants, from /proc."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    parents[int(entry)] = int(handle.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    members, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        children = [child for child, parent in parents.items() if parent == pid and child not in members]
        members.update(children)
        frontier.extend(children)
    total = 0
    for pid in members:
        try:
            with open(f"/proc/{pid}/status") as handle:
                total += next(int(line.split()[1]) * 1024 for line in handle if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            continue
    return total


def measure(args: list[str]) -> tuple[float, int, str]:
    """Run a command; return (wall seconds, peak tree RSS, stdout)."""
    started = time.time()
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, tree_rss_bytes(process.pid))
            stop.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, _ = process.communicate(timeout=3600)
    stop.set()
    sampler.join()
    if process.returncode != 0:
        raise SystemExit(f"{args[:3]} failed with exit code {process.returncode}")
    return time.time() - started, peak, stdout


def first_time_to(epochs: list[dict], started: float, accuracy: float) -> float | None:
    return next((round(e["finished_at"] - started, 1) for e in epochs if e["test_accuracy"] >= accuracy), None)


def run_plain(data_dir: Path, epochs: int) -> dict:
    started = time.time()
    wall, peak, stdout = measure([sys.executable, "bench/plain_torch.py", "--data-dir", str(data_dir), "--epochs", str(epochs)])
    result = json.loads(stdout.strip().splitlines()[-1])
    samples = sum(e["samples_per_second"] * e["train_seconds"] for e in result["epochs"])
    return {
        "wall_seconds": round(wall, 1),
        "seconds_to_98": first_time_to(result["epochs"], started, 0.98),
        "samples_per_second": round(samples / sum(e["train_seconds"] for e in result["epochs"])),
        "test_accuracy": result["epochs"][-1]["test_accuracy"],
        "peak_rss_mib": round(peak / 2**20),
    }


def run_pipeline(data_dir: Path, epochs: int, workers: int, cpus: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-", dir="/tmp") as out:
        started = time.time()
        wall, peak, _ = measure(
            [str(BIN / "aks-ray"), "run", "--target", "local", "--data-dir", str(data_dir.resolve()), "--epochs", str(epochs),
             "--workers", str(workers), "--cpus-per-worker", str(cpus), "--output-dir", out]
        )  # fmt: skip
        doc = json.loads((Path(out) / "metrics.json").read_text())
        samples = sum(e["samples_per_second"] * e["train_seconds"] for e in doc["epochs"])
        return {
            "wall_seconds": round(wall, 1),
            "seconds_to_98": first_time_to(doc["epochs"], started, 0.98),
            "samples_per_second": round(samples / sum(e["train_seconds"] for e in doc["epochs"])),
            "test_accuracy": doc["final"]["test_accuracy"],
            "peak_rss_mib": round(peak / 2**20),
            "timings": json.loads((Path(out) / "timings.json").read_text()),
        }


def median(runs: list[dict], key: str) -> float | None:
    values = [r[key] for r in runs if r[key] is not None]
    return statistics.median(values) if values else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, required=True, help="the full MNIST set (four IDX files)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--layouts", default="1x2,2x1", help="Ray Train layouts to measure, WORKERSxCPUS, comma-separated")
    parser.add_argument("--json", type=Path, default=Path("bench/results.json"))
    args = parser.parse_args()

    layouts = [tuple(int(n) for n in layout.split("x")) for layout in args.layouts.split(",")]
    runs: dict[str, list[dict]] = {"plain": [], **{f"ray {w}x{c}": [] for w, c in layouts}}
    for repeat in range(1, args.repeats + 1):
        runs["plain"].append(run_plain(args.data_dir, args.epochs))
        print(f"[{repeat}] plain: {runs['plain'][-1]}", file=sys.stderr, flush=True)
        for workers, cpus in layouts:
            name = f"ray {workers}x{cpus}"
            runs[name].append(run_pipeline(args.data_dir, args.epochs, workers, cpus))
            print(f"[{repeat}] {name}: {runs[name][-1]}", file=sys.stderr, flush=True)

    args.json.write_text(
        json.dumps({"epochs": args.epochs, "repeats": args.repeats, "cores": os.cpu_count(), "runs": runs}, indent=2) + "\n"
    )
    base = median(runs["plain"], "wall_seconds")
    print(f"medians of {args.repeats} runs, {args.epochs} epochs of full MNIST, {os.cpu_count()} cores\n")
    print("| run | wall s | ratio to plain | s to 98% | samples/s | test accuracy | peak RSS MiB |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, results in runs.items():
        wall = median(results, "wall_seconds")
        print(
            f"| {name} | {wall:.1f} | {wall / base:.2f}x | {median(results, 'seconds_to_98')} "
            f"| {median(results, 'samples_per_second'):.0f} "
            f"| {100 * median(results, 'test_accuracy'):.2f}% | {median(results, 'peak_rss_mib'):.0f} |"
        )


if __name__ == "__main__":
    main()
