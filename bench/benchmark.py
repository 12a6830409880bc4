"""Benchmark: the local pipeline against plain PyTorch, same CNN, same data, same epochs.

    .venv/bin/python bench/benchmark.py --data-dir ../shared/data/mnist --epochs 3 --repeats 3

(a) bench/plain_torch.py: one process, all cores, no Ray.
(b) `aks-ray run --target local`: Ray start, job submission, Ray Train, outputs, Ray stop.

(c) with --variant NAME:VAR=VALUE,...: (b) in the first layout with those environment
    variables set (they reach the Ray head, and so the job: RAY_* settings of Ray's own),
    to measure a candidate change beside the unchanged pipeline.

Runs alternate a, b, c, a, b, c, ... so that a noisy machine slows all alike. Prints,
as medians over the repeats: wall time, the ratio b/a, time to 98% test
accuracy, samples/s, final test accuracy and peak memory (the summed RSS of the
whole process tree, sampled every 0.2 s); then, for the Ray runs, the medians of
the phases their timings.json records (the start-up, the epochs, the end). Writes
the raw runs as JSON.
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
sys.path.insert(0, str(ROOT / "scripts"))

from aks_ray import phases  # noqa: E402 (the package of this checkout, as bench/k8s_benchmark.py reads it)


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


def measure(args: list[str], env: dict[str, str] | None = None) -> tuple[float, int, str]:
    """Run a command (with `env` added to this environment); return (wall seconds, peak tree RSS, stdout)."""
    started = time.time()
    process = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT, env={**os.environ, **(env or {})}
    )
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


def run_pipeline(data_dir: Path, epochs: int, workers: int, cpus: int, env: dict[str, str] | None = None) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-", dir="/tmp") as out:
        started = time.time()
        wall, peak, _ = measure(
            [str(BIN / "aks-ray"), "run", "--target", "local", "--data-dir", str(data_dir.resolve()), "--epochs", str(epochs),
             "--workers", str(workers), "--cpus-per-worker", str(cpus), "--output-dir", out],
            env,
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


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def median(runs: list[dict], key: str) -> float | None:
    values = [r[key] for r in runs if r[key] is not None]
    return statistics.median(values) if values else None


# The spans of a local run, from its timings.json's job_phases (scripts/aks_ray/phases.py): (label, from, to).
SPANS = [
    ("`ray start` until the head answers", phases.HEAD_STARTING, phases.HEAD_READY),
    ("submission until the driver runs (runtime env)", phases.HEAD_READY, phases.RUNTIME_ENV_READY),
    ("the driver's start to the first epoch's (data, Ray Train's start)", phases.RUNTIME_ENV_READY, phases.WORKERS_UP),
    ("the epochs", phases.WORKERS_UP, phases.LAST_EPOCH_DONE),
    ("the last epoch to the job's end (the model's hand-back)", phases.LAST_EPOCH_DONE, phases.JOB_ENDED),
    ("the job's end to the head stopped (outputs, `ray stop`)", phases.JOB_ENDED, phases.HEAD_STOPPED),
]


def span_seconds(run: dict, start: str, end: str) -> float | None:
    seconds = phases.seconds_of(run.get("timings", {}).get("job_phases", []))
    return round(seconds[end] - seconds[start], 1) if start in seconds and end in seconds else None


def parse_variant(text: str) -> tuple[str, dict[str, str]]:
    """NAME:VAR=VALUE,VAR=VALUE -> (NAME, {VAR: VALUE})."""
    name, _, assignments = text.partition(":")
    env = dict(item.split("=", 1) for item in assignments.split(",") if "=" in item)
    if not name or not env:
        raise SystemExit(f"--variant {text!r}: write NAME:VAR=VALUE[,VAR=VALUE...], e.g. v1:RAY_TRAIN_V2_ENABLED=0")
    return name, env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, required=True, help="the full MNIST set (four IDX files)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--layouts", default="1x2,2x1", help="Ray Train layouts to measure, WORKERSxCPUS, comma-separated")
    parser.add_argument("--json", type=Path, default=Path("bench/results.json"))
    parser.add_argument(
        "--variant", action="append", default=[], type=parse_variant, metavar="NAME:VAR=VALUE,...",
        help="also run the first layout with these environment variables (repeatable)",
    )  # fmt: skip
    args = parser.parse_args()

    layouts = [tuple(int(n) for n in layout.split("x")) for layout in args.layouts.split(",")]
    # (name, workers, cpus, extra environment) of every Ray kind of run, in the order each repeat runs them.
    kinds = [(f"ray {w}x{c}", w, c, {}) for w, c in layouts]
    kinds += [(f"ray {layouts[0][0]}x{layouts[0][1]} {name}", *layouts[0], env) for name, env in args.variant]
    runs: dict[str, list[dict]] = {"plain": [], **{name: [] for name, *_ in kinds}}
    for repeat in range(1, args.repeats + 1):
        runs["plain"].append(run_plain(args.data_dir, args.epochs))
        print(f"[{repeat}] plain: {runs['plain'][-1]}", file=sys.stderr, flush=True)
        for name, workers, cpus, env in kinds:
            runs[name].append(run_pipeline(args.data_dir, args.epochs, workers, cpus, env))
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
            f"| {name} | {wall:.1f} | {wall / base:.2f}x | {_fmt(median(results, 'seconds_to_98'))} "
            f"| {median(results, 'samples_per_second'):.0f} "
            f"| {100 * median(results, 'test_accuracy'):.2f}% | {median(results, 'peak_rss_mib'):.0f} |"
        )
    ray_kinds = [name for name, *_ in kinds]
    print("\nmedian seconds per span of the Ray runs, from their timings.json's job_phases\n")
    print("| span | " + " | ".join(ray_kinds) + " |")
    print("| --- |" + " ---: |" * len(ray_kinds))
    for label, start, end in SPANS:
        cells = []
        for name in ray_kinds:
            values = [v for v in (span_seconds(r, start, end) for r in runs[name]) if v is not None]
            cells.append(_fmt(statistics.median(values) if values else None))
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
