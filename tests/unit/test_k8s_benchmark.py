"""bench/k8s_benchmark.py: what it runs, and the medians it reads back from each run's output folder."""

from __future__ import annotations

import importlib.util
import json
from argparse import Namespace
from pathlib import Path

import pytest

from aks_ray import cli, config, phases

ROOT = Path(__file__).resolve().parents[2]
RUNS = Path(__file__).parent / "kuberay_runs"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("k8s_benchmark", ROOT / "bench/k8s_benchmark.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def output_folder(tmp_path: Path, name: str, status: str, shift: float = 0.0) -> Path:
    """A run folder as `aks-ray run` leaves it: timings.json with the run's phases, metrics.json with its status."""
    run = json.loads((RUNS / f"{name}.json").read_text())
    out = tmp_path / name / str(shift)
    run_dir = config.load({}, {"AKS_RAY_OUTPUT_DIR": str(out)}).run_dir
    for step, seconds in (("operator", 8.0), ("submit", 0.6), ("wait", 300.0 + shift)):
        run_dir.record_phase(step, seconds)
    found = [p.to_json() for p in phases.job_phases(run["rayjob"], run["pods"], run["epochs"])]
    run_dir.save_job_phases([{**p, "seconds": p["seconds"] + (shift if p["seconds"] else 0)} for p in found])
    run_dir.save_metrics({"status": status, "epochs": run["epochs"]})
    return out


def test_each_run_is_the_sample_job_on_the_kubeconfig_under_its_own_name(bench):
    args = Namespace(
        kubeconfig=Path("/k/config"), head_cpus="500m", memory_per_worker="2Gi", namespace="aks-ray-bench-1-abc123", timeout="15m",
        image="localhost/aks-ray/ray:2.60.0-py311-torch2.13.0", chart="", extra=["--log-level", "debug"],
    )  # fmt: skip
    cmd = bench.command(args, "aks-ray-bench-1-abc123", Path("/tmp/out1"))
    assert cmd[1:4] == ["-m", "aks_ray.cli", "run"]
    flags = dict(zip(cmd[4:-2:2], cmd[5:-2:2], strict=True))
    assert flags["--target"] == "kubeconfig" and flags["--kubeconfig"] == "/k/config"
    assert flags["--dataset"] == "sample" and flags["--epochs"] == "1" and flags["--job-name"] == "aks-ray-bench-1-abc123"
    assert flags["--output-dir"] == "/tmp/out1" and flags["--ray-image"] == args.image
    assert "--kuberay-chart" not in flags and cmd[-2:] == ["--log-level", "debug"]
    # `aks-ray run`'s own parser takes it, so a renamed option fails here, not on a cluster.
    parsed = cli.build_parser().parse_args(cmd[3:])
    assert parsed.job_name == "aks-ray-bench-1-abc123" and parsed.kubeconfig == "/k/config"


def test_the_medians_come_from_the_runs_phases_and_a_failed_run_says_why(bench, tmp_path):
    runs = [
        bench.summarise("a", 0, "", 330.0, output_folder(tmp_path, "succeeded", "SUCCEEDED")),
        bench.summarise("b", 0, "", 340.0, output_folder(tmp_path, "succeeded", "SUCCEEDED", shift=10.0)),
        bench.summarise("c", 1, "...\nimage pull failed: fix --ray-image", 200.0, output_folder(tmp_path, "image-pull-failed", "FAILED")),
    ]
    assert runs[0]["RayJob created to SUCCEEDED"] == 313.0 and "RayJob created to SUCCEEDED" not in runs[2]
    assert runs[2]["why"].endswith("image pull failed: fix --ray-image") and "why" not in runs[0]
    text = "\n".join(bench.table(runs))
    assert "| Ray head ready | 111.0 | 106.0, 116.0 |" in text  # the failed run never had a ready head
    assert "| Ray pods scheduled | 24.0 | 20.0, 30.0, 24.0 |" in text
    assert "| **RayJob created to SUCCEEDED** | **318.0** | 313.0, 323.0 |" in text  # the successful runs only
    assert "| wait | 300.0 |" in text


def test_a_run_that_left_no_outputs_still_counts_as_a_failure(bench, tmp_path):
    run = bench.summarise("d", None, "no exit within 3600 s\n", 3600.0, tmp_path / "nothing")
    assert run["phases"] == {} and run["status"] == "" and run["why"] == "no exit within 3600 s"
    assert "| **RayJob created to SUCCEEDED** | **None** |  |" in "\n".join(bench.table([run]))
