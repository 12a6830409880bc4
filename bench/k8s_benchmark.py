"""Benchmark: the Kubernetes path, phase by phase, on the cluster a kubeconfig points at.

    .venv/bin/python bench/k8s_benchmark.py --kubeconfig PATH --runs 3 --image IMAGE

Runs the whole pipeline N times, one after the other (operator, submit, wait,
collect, cleanup), each into a fresh output folder under a RayJob name and a
namespace of its own (which the run creates and its cleanup deletes, as on a
user's first run), and each only once the cluster holds no aks-ray pod of an
earlier run, so that no run starts beside another's terminating pods:

    aks-ray run --target kubeconfig --kubeconfig PATH --dataset sample --epochs 1
        --workers 1 --head-cpus 500m --memory-per-worker 2Gi --ray-image IMAGE
        --namespace <unique> --job-name <unique> --output-dir <fresh>

then reads each run's timings.json: `job_phases` (aks_ray/phases.py: when each
phase happened, from the RayJob's, the pods' and the training's own timestamps,
in seconds since the RayJob was created) and the CLI's step seconds. Prints the
medians per phase, "RayJob created to SUCCEEDED" (the issue's figure: the job's
status.endTime on the runs that succeeded), the command's wall time, and a line
per run that failed, with why. Writes the raw runs as JSON.

Every run creates pods: on a shared cluster, run it under that cluster's lock.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from aks_ray import phases  # noqa: E402 (the package of this checkout, not an installed one)

SUCCEEDED_KEY = "RayJob created to SUCCEEDED"


def find_helm(given: str) -> str:
    """helm for the operator step: --helm, else on PATH, else this checkout's (or the main checkout's) .tools/bin."""
    for candidate in (given, shutil.which("helm") or "", str(ROOT / ".tools/bin/helm")):
        if candidate and Path(candidate).is_file():
            return candidate
    result = subprocess.run(["bash", str(ROOT / "scripts/tools/get-helm.sh")], capture_output=True, text=True, timeout=600, check=False)
    if result.returncode != 0:
        raise SystemExit(f"helm is needed to install KubeRay: pass --helm PATH ({result.stderr.strip()[-300:]})")
    return result.stdout.strip().splitlines()[-1]


def default_chart() -> str:
    """The KubeRay chart beside the checkout (a machine without the chart repository has one there), else the project's default."""
    shared = ROOT.parent / "shared" / "fixtures" / "kuberay-operator-1.7.0"
    return str(shared) if (shared / "Chart.yaml").is_file() else ""


def command(args: argparse.Namespace, job_name: str, output_dir: Path) -> list[str]:
    cmd = [
        sys.executable, "-m", "aks_ray.cli", "run", "--target", "kubeconfig", "--kubeconfig", str(args.kubeconfig),
        "--dataset", "sample", "--epochs", "1", "--workers", "1", "--head-cpus", args.head_cpus,
        "--memory-per-worker", args.memory_per_worker, "--namespace", args.namespace,
        "--job-name", job_name, "--output-dir", str(output_dir), "--timeout", args.timeout,
    ]  # fmt: skip
    if args.image:
        cmd += ["--ray-image", args.image]
    if args.chart:
        cmd += ["--kuberay-chart", args.chart]
    return cmd + list(args.extra)


def read_json(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def wait_for_a_quiet_cluster(kubeconfig: Path, deadline_seconds: float) -> float:
    """Wait until no pod of any aks-ray run is left on the cluster (an earlier run's pods terminate after its cleanup).

    Returns the seconds waited; at the deadline it goes on, saying so.
    """
    from kubernetes import client, config

    api = client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig)))
    started = time.monotonic()
    while True:
        left = api.list_pod_for_all_namespaces(label_selector="app.kubernetes.io/managed-by=aks-ray", _request_timeout=30).items
        waited = time.monotonic() - started
        if not left:
            return waited
        if waited > deadline_seconds:
            names = ", ".join(f"{p.metadata.namespace}/{p.metadata.name}" for p in left[:5])
            print(f"still on the cluster after {waited:.0f} s, going on: {names}", file=sys.stderr, flush=True)
            return waited
        time.sleep(3)


def one_run(args: argparse.Namespace, index: int, env: dict[str, str], keep: Path | None) -> dict:
    suffix = uuid.uuid4().hex[:6]
    job_name = f"aks-ray-bench-{index}-{suffix}"
    args.namespace = f"{args.namespace_prefix}-{index}-{suffix}"
    with tempfile.TemporaryDirectory(prefix="k8s-bench-", dir="/tmp") as tmp:
        out = Path(tmp) / "out"
        started = time.time()
        try:
            result = subprocess.run(
                command(args, job_name, out), env=env, cwd=ROOT, capture_output=True, text=True, timeout=args.run_deadline, check=False
            )
            returncode, stderr = result.returncode, result.stderr
        except subprocess.TimeoutExpired as exc:
            returncode, stderr = None, f"no exit within {args.run_deadline} s\n" + str(exc.stderr or "")
        run = summarise(job_name, returncode, stderr, time.time() - started, out)
        if keep is not None and out.exists():
            shutil.copytree(out, keep / job_name, dirs_exist_ok=True)
    return run


def summarise(job_name: str, returncode: int | None, stderr: str, wall: float, out: Path) -> dict:
    """One run's figures from its output folder: the phases, the CLI's steps, the epochs, and why it failed."""
    timings, metrics = read_json(out / "timings.json"), read_json(out / "metrics.json")
    seen = phases.seconds_of(timings.get("job_phases") or [])
    run = {
        "job_name": job_name,
        "exit_code": returncode,
        "status": metrics.get("status", ""),
        "wall_seconds": round(wall, 1),
        "phases": seen,
        "steps": {k: v for k, v in timings.items() if isinstance(v, (int, float))},
        "epoch_seconds": sum(e.get("seconds") or 0.0 for e in metrics.get("epochs") or []) or None,
    }
    if run["status"] == "SUCCEEDED" and phases.JOB_ENDED in seen:
        run[SUCCEEDED_KEY] = seen[phases.JOB_ENDED]
    if returncode != 0:
        run["why"] = "\n".join(stderr.strip().splitlines()[-15:]) if stderr.strip() else "no output"
    return run


def median(values: list[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None


def table(runs: list[dict]) -> list[str]:
    names = [name for name in phases.ORDER if any(name in r["phases"] for r in runs)]
    extra = sorted({name for r in runs for name in r["phases"]} - set(phases.ORDER))
    lines = ["| phase (s since the RayJob was created) | median | runs |", "| --- | ---: | --- |"]
    for name in names + extra:
        values = [r["phases"][name] for r in runs if name in r["phases"]]
        lines.append(f"| {name} | {median(values)} | {', '.join(f'{v:.1f}' for v in values)} |")
    totals = (
        (SUCCEEDED_KEY, SUCCEEDED_KEY),
        ("epochs (sum of epoch seconds)", "epoch_seconds"),
        ("wall time of `aks-ray run`", "wall_seconds"),
    )
    for name, key in totals:
        values = [r[key] for r in runs if r.get(key) is not None]
        lines.append(f"| **{name}** | **{median(values)}** | {', '.join(f'{v:.1f}' for v in values)} |")
    steps = list(dict.fromkeys(s for r in runs for s in r["steps"] if s != "total"))  # in the order the steps ran
    lines += ["", "| CLI step (seconds) | median |", "| --- | ---: |"]
    lines += [f"| {s} | {median([r['steps'][s] for r in runs if s in r['steps']])} |" for s in steps]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kubeconfig", type=Path, required=True, help="the cluster to run on")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--image", default="", help="--ray-image for the RayJob (default: the project's pinned Ray image)")
    parser.add_argument("--chart", default=default_chart(), help="--kuberay-chart (default: the shared fixture beside the checkout)")
    parser.add_argument("--helm", default="", help="helm binary (default: on PATH, else .tools/bin/helm, else scripts/tools/get-helm.sh)")
    parser.add_argument("--namespace-prefix", default="aks-ray-bench", help="each run's namespace is PREFIX-<n>-<random>")
    parser.add_argument("--head-cpus", default="500m", help="the head's CPU (500m fits head, worker and submitter on 2 cores)")
    parser.add_argument("--memory-per-worker", default="2Gi")
    parser.add_argument("--timeout", default="15m", help="each run's --timeout")
    parser.add_argument("--json", type=Path, default=Path("bench/k8s-results.json"), help="where the raw runs go")
    parser.add_argument("--keep-outputs", type=Path, help="copy each run's output folder here")
    parser.add_argument("extra", nargs="*", help="after --: more `aks-ray run` flags")
    args = parser.parse_args(argv)
    if not args.kubeconfig.is_file():
        parser.error(f"--kubeconfig {args.kubeconfig} does not exist")
    args.run_deadline = 3600
    helm = find_helm(args.helm)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AKS_RAY_", "GITHUB_"))}
    env["PATH"] = f"{Path(helm).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "scripts"), env.get("PYTHONPATH", "")) if p)
    if args.keep_outputs:
        args.keep_outputs.mkdir(parents=True, exist_ok=True)

    load_before = os.getloadavg()
    runs = []
    for index in range(1, args.runs + 1):
        quiet_after = wait_for_a_quiet_cluster(args.kubeconfig, deadline_seconds=300)
        run = one_run(args, index, env, args.keep_outputs)
        run["waited_for_a_quiet_cluster_seconds"] = round(quiet_after, 1)
        runs.append(run)
        print(f"[{index}/{args.runs}] {json.dumps(run)}", file=sys.stderr, flush=True)
    load_after = os.getloadavg()

    doc = {
        "command": command(args, "<job-name>", Path("<output-dir>"))[3:],  # the last run's namespace
        "runs": runs,
        "cores": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": load_after,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    succeeded = [r for r in runs if r["status"] == "SUCCEEDED"]
    print(
        f"medians of {len(runs)} runs ({len(succeeded)} SUCCEEDED), 1 epoch of the bundled sample, {args.image or 'the pinned image'}, "
        f"{os.cpu_count()} cores, load average {load_before[0]:.1f} before, {load_after[0]:.1f} after\n"
    )
    print("\n".join(table(runs)))
    for run in runs:
        if run["exit_code"] != 0:
            print(f"\n{run['job_name']}: exit {run['exit_code']}, status {run['status'] or 'none'}:\n{run.get('why', '')}")
    return 0 if len(succeeded) == len(runs) else 1


if __name__ == "__main__":
    sys.exit(main())
