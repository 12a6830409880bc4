"""MNIST loading: IDX parsing, checksums, the mirror, and the bundled sample."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "training"))
import mnist_data  # noqa: E402

SAMPLE = mnist_data.SAMPLE_DIR
SAMPLE_SUMS = mnist_data.read_checksums(SAMPLE / "SHA256SUMS.uncompressed")


def test_the_bundled_sample_is_real_mnist_of_the_promised_size():
    data = mnist_data.load_folder(SAMPLE, "mnist-sample", "bundled sample", SAMPLE_SUMS)
    assert data.train_images.shape == (1000, 28, 28) and data.test_images.shape == (500, 28, 28)
    assert data.train_images.dtype == np.uint8
    # Real digits: every class present, and ink on about a fifth of the pixels.
    assert set(np.unique(data.train_labels)) == set(range(10))
    assert 0.1 < (data.train_images > 0).mean() < 0.3
    # MNIST's first training label is a 5, and its first test label a 7.
    assert (data.train_labels[0], data.test_labels[0]) == (5, 7)
    assert sum(f.stat().st_size for f in SAMPLE.glob("*.gz")) < 400_000


def test_published_checksums_reject_the_sample(tmp_path):
    with pytest.raises(mnist_data.DataError, match="SHA-256"):
        mnist_data.load_folder(SAMPLE, "mnist", "x")


def test_plain_and_gzipped_files_both_load(tmp_path):
    for path in SAMPLE.glob("*.gz"):
        (tmp_path / path.stem).write_bytes(gzip.decompress(path.read_bytes()))
    data = mnist_data.load_folder(tmp_path, "mnist-sample", "plain", SAMPLE_SUMS)
    assert len(data.train_labels) == 1000


def test_a_missing_file_names_itself_and_the_fix(tmp_path):
    with pytest.raises(mnist_data.DataError, match=r"train-images-idx3-ubyte\(.gz\) is missing.*Fix"):
        mnist_data.load_folder(tmp_path, "mnist", "x")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\x00\x00", "too short"),
        (b"\x00\x00\x09\x99" + b"\x00" * 8, "not an MNIST IDX"),
        (b"\x00\x00\x08\x01" + (5).to_bytes(4, "big") + b"\x01\x02", "truncated"),
    ],
    ids=["short", "bad-magic", "truncated"],
)
def test_corrupt_idx_is_refused(raw, message):
    with pytest.raises(mnist_data.DataError, match=message):
        mnist_data.parse_idx(raw, "f")


class _Mirror(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output quiet
        pass


@pytest.fixture
def mirror(tmp_path):
    """A real HTTP mirror on loopback serving whatever the test puts in its folder."""
    root = tmp_path / "mirror"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: _Mirror(*a, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_download_verifies_and_caches(mirror, tmp_path, monkeypatch):
    root, url = mirror
    for path in SAMPLE.glob("*.gz"):
        (root / path.name).write_bytes(path.read_bytes())
    monkeypatch.setattr(mnist_data, "FILES", tuple((role, name, SAMPLE_SUMS[name]) for role, name, _ in mnist_data.FILES))
    cache = tmp_path / "cache"
    assert mnist_data.download(url, cache) == cache
    assert sorted(p.name for p in cache.iterdir()) == sorted(p.name for p in SAMPLE.glob("*.gz"))
    # The second time nothing is fetched: the mirror is gone and it still works.
    for path in root.iterdir():
        path.unlink()
    mnist_data.download(url, cache)


def test_download_refuses_a_file_with_the_wrong_checksum(mirror, tmp_path):
    root, url = mirror
    for path in SAMPLE.glob("*.gz"):
        (root / path.name).write_bytes(path.read_bytes())
    with pytest.raises(mnist_data.DataError, match="does not match the published checksum"):
        mnist_data.download(url, tmp_path / "cache")
    assert not any((tmp_path / "cache").glob("*.gz")), "a bad file must never land in the cache"


def test_unreachable_mirror_falls_back_to_the_sample_loudly(mirror, tmp_path):
    _, url = mirror  # serves nothing: every file is a 404
    data = mnist_data.load_mnist(None, url, tmp_path / "cache")
    assert data.name == "mnist-sample"
    assert "SAMPLE" in data.warning and "not the full set" in data.warning
    assert data.describe()["warning"] == data.warning


def test_unreachable_mirror_without_fallback_fails_with_the_fix(mirror, tmp_path):
    _, url = mirror
    with pytest.raises(mnist_data.DataError, match=r"cannot download MNIST.*Fix"):
        mnist_data.load_mnist(None, url, tmp_path / "cache", dataset="full")


def test_the_sample_on_request_still_carries_the_warning(tmp_path):
    data = mnist_data.load_mnist(None, "http://127.0.0.1:9/", tmp_path / "cache", dataset="sample")
    assert data.name == "mnist-sample" and "--dataset sample" in data.warning


FULL = ROOT.parent / "shared" / "data" / "mnist"


@pytest.mark.skipif(
    not FULL.is_dir(),
    reason="the full MNIST set is not beside the project (../shared/data/mnist); only CI machines of this project have it",
)
def test_the_full_set_loads_with_the_published_checksums():
    data = mnist_data.load_folder(FULL, "mnist", str(FULL))
    assert data.train_images.shape == (60000, 28, 28) and data.test_images.shape == (10000, 28, 28)
    assert hashlib.sha256(data.train_labels.tobytes()).hexdigest()  # parsed, not just read
    # The sample is the head of the full set.
    sample = mnist_data.load_folder(SAMPLE, "s", "s", SAMPLE_SUMS)
    assert np.array_equal(sample.train_images, data.train_images[:1000])
    assert np.array_equal(sample.test_labels, data.test_labels[:500])
