"""Train a CNN on MNIST with Ray Train's TorchTrainer: the job's driver.

    python train_mnist.py --epochs 3 --workers 2 --cpus-per-worker 1 --artifacts-dir /tmp/out

Runs wherever Ray runs it: submitted through the Ray Jobs API by `aks-ray` (this
folder is the job's working_dir), or by hand on a machine with Ray. The driver
reads the dataset once and puts it in Ray's object store, where every worker on
a node shares one copy. Each epoch's metrics go to `ray.train.report` and are
also printed as one JSON line after METRICS_PREFIX, so they can be recovered
from the log alone. The final model lands in --artifacts-dir as model.pt.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

# Keep equal to aks_ray.metrics.METRICS_PREFIX (a test checks).
METRICS_PREFIX = "AKS_RAY_METRICS "
DEFAULT_MIRROR = "https://ossci-datasets.s3.amazonaws.com/mnist/"

log = logging.getLogger("train_mnist")


def emit(record: dict) -> None:
    # Not print(): in a Ray Train worker, print is patched to go both to stdout
    # and, through the root logger, to stderr, and Ray forwards both, so each
    # record reached the job log twice (Ray 2.60, RAY_TRAIN_ENABLE_PRINT_PATCH).
    sys.stdout.write(METRICS_PREFIX + json.dumps(record, sort_keys=True) + "\n")
    sys.stdout.flush()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128, help="global batch size, split across workers")
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cpus-per-worker", type=int, default=1)
    parser.add_argument("--use-gpu", action="store_true")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--data-dir", default="", help="folder with the four MNIST IDX files")
    parser.add_argument("--mnist-mirror", default=DEFAULT_MIRROR)
    parser.add_argument(
        "--dataset",
        choices=("auto", "full", "sample"),
        default="auto",
        help="auto: --data-dir, else download, else the bundled sample (with a warning); full: never the sample; sample: only the sample",
    )
    parser.add_argument("--cache-dir", default=os.environ.get("AKS_RAY_DATA_CACHE", str(Path.home() / ".cache" / "aks-ray" / "mnist")))
    parser.add_argument(
        "--artifacts-dir",
        default="/tmp/aks-ray/artifacts",  # noqa: S108 (the head pod's, ours alone) help="where model.pt and result.json are written, on the driver's node"
    )
    return parser.parse_args(argv)


# ------------------------------------------------------------------ workers


def _all_reduce_sum(values: list[float], world_size: int, device) -> list[float]:
    """Sum the workers' values. The tensor lives on the model's device: the NCCL process group
    Ray Train makes for GPUs refuses CPU tensors (gloo, for CPUs, takes CPU ones)."""
    if world_size == 1:
        return values
    import torch
    import torch.distributed as dist

    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def train_loop_per_worker(config: dict) -> None:
    """One Ray Train worker: its shard of every epoch, then the shared evaluation."""
    import ray
    import ray.train
    import ray.train.torch
    import torch

    from model import MnistCNN, evaluate, to_labels, to_tensor, train_epoch

    context = ray.train.get_context()
    rank, world_size = context.get_world_rank(), context.get_world_size()
    torch.set_num_threads(config["threads"])
    torch.manual_seed(config["seed"])  # the same initial weights everywhere
    device = ray.train.torch.get_device()
    model = ray.train.torch.prepare_model(MnistCNN())
    torch.manual_seed(config["seed"] + 1000 * (rank + 1))  # dropout differs per worker, reproducibly
    optimizer = torch.optim.Adam(model.parameters(), lr=config["learning_rate"])

    data = ray.get(config["data"])
    train_x, train_y = to_tensor(data["train_images"]).to(device), to_labels(data["train_labels"]).to(device)
    # Every worker gets the same number of samples, so DDP's collective calls line up.
    test_idx = np.arange(len(data["test_labels"]))[rank::world_size]
    test_x, test_y = to_tensor(data["test_images"][test_idx]).to(device), to_labels(data["test_labels"][test_idx]).to(device)
    per_worker = len(train_y) // world_size
    batch = max(1, config["batch_size"] // world_size)

    for epoch in range(1, config["epochs"] + 1):
        started = time.perf_counter()
        order = np.random.default_rng(config["seed"] + epoch).permutation(len(train_y))
        mine = torch.as_tensor(order[rank * per_worker : (rank + 1) * per_worker], device=device)
        loss_sum = train_epoch(model, optimizer, train_x, train_y, mine, batch)
        train_seconds = time.perf_counter() - started
        test_loss_sum, correct = evaluate(model, test_x, test_y)
        loss_sum, test_loss_sum, correct, seen, tested = _all_reduce_sum(
            [loss_sum, test_loss_sum, correct, per_worker, len(test_y)], world_size, device
        )
        metrics = {
            "epoch": epoch,
            "epochs": config["epochs"],
            "train_loss": loss_sum / seen,
            "test_loss": test_loss_sum / tested,
            "test_accuracy": correct / tested,
            "seconds": time.perf_counter() - started,
            "train_seconds": train_seconds,
            "samples_per_second": seen / train_seconds,
            "finished_at": time.time(),  # wall clock, so a benchmark can tell when an accuracy was first reached
        }
        if rank == 0:
            emit({"kind": "epoch", **{k: round(v, 6) if isinstance(v, float) else v for k, v in metrics.items()}})
        ray.train.report(metrics)

    if rank == 0:
        # The model goes to the driver's node through the object store: worker
        # nodes share no filesystem with the head, on Kubernetes least of all.
        state = model.module.state_dict() if hasattr(model, "module") else model.state_dict()
        buffer = io.BytesIO()
        torch.save({k: v.cpu() for k, v in state.items()}, buffer)
        ray.get(config["sink"].save.remote(buffer.getvalue(), metrics))


# ------------------------------------------------------------------- driver


def make_sink(artifacts_dir: Path):
    """An actor on the driver's node that writes the final model into the artifacts folder."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    @ray.remote(num_cpus=0)
    class ModelSink:
        def __init__(self, directory: str) -> None:
            self.directory = Path(directory)
            self.metrics: dict = {}

        def final_metrics(self) -> dict:
            return self.metrics

        def save(self, payload: bytes, metrics: dict) -> str:
            self.metrics = metrics
            checkpoint_dir = self.directory / "checkpoint"
            checkpoint_dir.mkdir(parents=True, exist_ok=True)
            for path in (self.directory / "model.pt", checkpoint_dir / "model.pt"):
                tmp = path.with_suffix(".tmp")
                tmp.write_bytes(payload)
                os.replace(tmp, path)
            return str(self.directory / "model.pt")

    node = ray.get_runtime_context().get_node_id()
    return ModelSink.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=node, soft=False)).remote(str(artifacts_dir))


def main(argv: list[str] | None = None) -> int:
    # The driver's first act: on a cluster, Ray starts it once the job's runtime env is set up,
    # so this is when that set-up ended (aks_ray.phases' "runtime env ready").
    emit({"kind": "driver", "started_at": time.time()})
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stdout)
    args = parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from mnist_data import DataError, load_mnist

    artifacts = Path(args.artifacts_dir).resolve()
    artifacts.mkdir(parents=True, exist_ok=True)
    try:
        data = load_mnist(args.data_dir or None, args.mnist_mirror, Path(args.cache_dir), args.dataset)
    except DataError as exc:
        log.error("no training data: %s", exc)
        return 1
    emit(data.describe())
    if data.warning:
        banner = "!" * 78
        print(f"{banner}\nWARNING: {data.warning}\n{banner}", flush=True)

    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    ray.init()
    if args.use_gpu:
        available = ray.cluster_resources().get("GPU", 0)
        if available < args.workers:
            log.error("--use-gpu asks for %d GPU(s), the cluster has %s. Fix: drop --use-gpu or add GPU nodes.", args.workers, available)
            return 1

    started = time.perf_counter()
    sink = make_sink(artifacts)
    config = {
        "data": ray.put({k: getattr(data, k) for k in ("train_images", "train_labels", "test_images", "test_labels")}),
        "sink": sink,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "seed": args.seed,
        "threads": args.cpus_per_worker,
    }
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config=config,
        scaling_config=ScalingConfig(num_workers=args.workers, use_gpu=args.use_gpu, resources_per_worker={"CPU": args.cpus_per_worker}),
        run_config=RunConfig(name="mnist-cnn", storage_path=str(artifacts / "ray-train")),
    )
    trainer.fit()
    # Rank 0's last epoch, as it handed over the model (Ray Train's Result
    # carries metrics only alongside a checkpoint in shared storage).
    metrics = ray.get(sink.final_metrics.remote())
    train_seconds = time.perf_counter() - started
    final = {
        "kind": "final",
        "test_accuracy": metrics.get("test_accuracy"),
        "test_loss": metrics.get("test_loss"),
        "train_seconds": round(train_seconds, 3),
        "samples_per_second": round(args.epochs * len(data.train_labels) / train_seconds, 1),
        "model": str(artifacts / "model.pt"),
    }
    (artifacts / "result.json").write_text(json.dumps({"dataset": data.describe(), "final": final}, indent=2) + "\n")
    emit(final)
    return 0


if __name__ == "__main__":
    sys.exit(main())
