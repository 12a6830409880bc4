"""MNIST for the training job: from a folder, from a mirror (checksummed, cached), or the bundled sample.

This file travels to the cluster inside the job's working_dir, so it depends on
nothing but the standard library and numpy.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

# (role, file name, SHA-256 of the uncompressed file): the published MNIST files.
FILES = (
    ("train_images", "train-images-idx3-ubyte", "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
    ("train_labels", "train-labels-idx1-ubyte", "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
    ("test_images", "t10k-images-idx3-ubyte", "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
    ("test_labels", "t10k-labels-idx1-ubyte", "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
)
SAMPLE_DIR = Path(__file__).resolve().parent / "data" / "mnist-sample"
SAMPLE_WARNING = (
    "Trained on the bundled MNIST SAMPLE ({train} train / {test} test images), not the full set ({cause}). "
    "Accuracy here says little about the model; pass --data-dir or allow the download for real figures."
)
IDX_MAGIC = {2049: 1, 2051: 3}  # labels: 1 dimension, images: 3


class DataError(Exception):
    """The data cannot be had; the message says why and how to fix it."""


@dataclass
class Mnist:
    train_images: np.ndarray  # uint8, (N, 28, 28)
    train_labels: np.ndarray  # uint8, (N,)
    test_images: np.ndarray
    test_labels: np.ndarray
    name: str
    source: str
    warning: str = ""

    def describe(self) -> dict:
        record = {
            "kind": "dataset",
            "name": self.name,
            "source": self.source,
            "train_size": len(self.train_labels),
            "test_size": len(self.test_labels),
        }
        if self.warning:
            record["warning"] = self.warning
        return record


def parse_idx(raw: bytes, what: str) -> np.ndarray:
    """An IDX file's bytes as an array, with its header checked against its size."""
    if len(raw) < 8:
        raise DataError(f"{what} is too short to be an IDX file")
    magic = int.from_bytes(raw[0:4], "big")
    if magic not in IDX_MAGIC:
        raise DataError(f"{what} is not an MNIST IDX file (magic number {magic})")
    dims = IDX_MAGIC[magic]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    offset = 4 + 4 * dims
    expected = int(np.prod(shape))
    if len(raw) - offset != expected:
        raise DataError(f"{what} is truncated or padded: header says {expected} bytes of data, file has {len(raw) - offset}")
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(shape)


def read_idx_file(path: Path) -> bytes:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            return handle.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc


def find_file(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


PUBLISHED_SHA256 = {file_name: sha256 for _, file_name, sha256 in FILES}


def read_checksums(path: Path) -> dict[str, str]:
    """A `sha256sum` listing as {file name: digest}."""
    pairs = (line.split() for line in path.read_text().splitlines() if line.strip())
    return {name: digest for digest, name in pairs}


def load_folder(folder: Path, name: str, source: str, checksums: dict[str, str] | None = None) -> Mnist:
    """The four IDX files from `folder`, gzipped or not, checked against the checksums (default: the published ones)."""
    checksums = PUBLISHED_SHA256 if checksums is None else checksums
    arrays = {}
    for role, file_name, _ in FILES:
        sha256 = checksums[file_name]
        path = find_file(folder, file_name)
        if path is None:
            raise DataError(
                f"{file_name}(.gz) is missing from {folder}. "
                "Fix: put the four MNIST IDX files there, or leave --data-dir empty to download them."
            )
        raw = read_idx_file(path)
        digest = hashlib.sha256(raw).hexdigest()
        if digest != sha256:
            raise DataError(f"{path} has SHA-256 {digest}, not the published {sha256}. Fix: replace the file with an intact copy of MNIST.")
        arrays[role] = parse_idx(raw, str(path))
    if len(arrays["train_images"]) != len(arrays["train_labels"]) or len(arrays["test_images"]) != len(arrays["test_labels"]):
        raise DataError(f"images and labels in {folder} differ in count")
    return Mnist(**arrays, name=name, source=source)


def download(mirror: str, cache: Path, attempts: int = 3, timeout: float = 30.0) -> Path:
    """Fetch the four gzipped files into `cache`, verified, each written atomically. Returns `cache`.

    Runs once per node, on the driver; the workers get the arrays through Ray's
    object store, so a dataset is never downloaded by every worker.
    """
    cache.mkdir(parents=True, exist_ok=True)
    for _, file_name, sha256 in FILES:
        target = cache / f"{file_name}.gz"
        if target.is_file() and hashlib.sha256(read_idx_file(target)).hexdigest() == sha256:
            continue
        url = f"{mirror.rstrip('/')}/{file_name}.gz"
        for attempt in range(1, attempts + 1):
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (the CLI accepts only http(s) and file URLs)
                    payload = response.read()
                break
            except (urllib.error.URLError, OSError) as exc:
                if attempt == attempts:
                    raise ConnectionError(f"{url}: {getattr(exc, 'reason', exc)}") from exc
                time.sleep(2**attempt)
        try:
            digest = hashlib.sha256(gzip.decompress(payload)).hexdigest()
        except (OSError, EOFError) as exc:
            raise DataError(f"{url} is not a gzip file ({exc}). Fix: use another --mnist-mirror or pass --data-dir.") from exc
        if digest != sha256:
            raise DataError(
                f"{url} does not match the published checksum (got {digest}). Fix: use another --mnist-mirror or pass --data-dir."
            )
        with tempfile.NamedTemporaryFile(dir=cache, delete=False) as tmp:
            tmp.write(payload)
        os.replace(tmp.name, target)
    return cache


def load_sample(cause: str) -> Mnist:
    sample = load_folder(SAMPLE_DIR, "mnist-sample", "bundled sample", read_checksums(SAMPLE_DIR / "SHA256SUMS.uncompressed"))
    sample.warning = SAMPLE_WARNING.format(train=len(sample.train_labels), test=len(sample.test_labels), cause=cause)
    return sample


def load_mnist(data_dir: str | None, mirror: str, cache: Path, dataset: str = "auto") -> Mnist:
    """The dataset, in order of preference: --data-dir, the cache or the mirror, the bundled sample.

    dataset="full" never falls back to the sample; dataset="sample" asks for it.
    """
    if dataset == "sample":
        return load_sample("--dataset sample was asked for")
    if data_dir:
        return load_folder(Path(data_dir), "mnist", f"data-dir {data_dir}")
    try:
        folder = download(mirror, cache)
        return load_folder(folder, "mnist", mirror)
    except ConnectionError as exc:
        if dataset == "full":
            raise DataError(f"cannot download MNIST: {exc}. Fix: check --mnist-mirror and the network, or pass --data-dir.") from exc
        return load_sample(f"the mirror could not be reached: {exc}")
