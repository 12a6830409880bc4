"""The metric all-reduce runs on the model's device: NCCL (GPUs) refuses CPU tensors, and no GPU is needed to check it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
import torch.distributed as dist  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def train_mnist():
    spec = importlib.util.spec_from_file_location("train_mnist_reduce", ROOT / "training" / "train_mnist.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Reduced(Exception):
    """The fake process group accepted the tensor (a meta tensor has no values to go on with)."""


def process_group_on(device, monkeypatch, workers=2):
    """A stand-in for the process group Ray Train sets up: like NCCL, it refuses a tensor on another device."""

    def all_reduce(tensor, op=None, group=None, async_op=False):
        if tensor.device != torch.device(device):
            raise RuntimeError(f"Tensors must be on {device} for this process group, got one on {tensor.device}")
        if tensor.device.type == "meta":
            raise Reduced(tensor.device)
        tensor.mul_(workers)  # every worker contributed the same values

    monkeypatch.setattr(dist, "all_reduce", all_reduce)


def test_the_reduction_happens_on_the_models_device(monkeypatch):
    """A GPU run: the metrics tensor must be on the model's device, here the device-less 'meta' one."""
    module = train_mnist()
    process_group_on("meta", monkeypatch)
    with pytest.raises(Reduced):
        module._all_reduce_sum([1.0, 2.0, 3.0], 2, torch.device("meta"))


def test_the_cpu_reduction_returns_the_sums(monkeypatch):
    module = train_mnist()
    process_group_on("cpu", monkeypatch)
    assert module._all_reduce_sum([1.5, 2.0, 10.0], 2, torch.device("cpu")) == [3.0, 4.0, 20.0]


def test_one_worker_needs_no_process_group(monkeypatch):
    module = train_mnist()
    monkeypatch.setattr(dist, "all_reduce", lambda *a, **k: pytest.fail("no process group with one worker"))
    assert module._all_reduce_sum([1.0], 1, torch.device("meta")) == [1.0]
