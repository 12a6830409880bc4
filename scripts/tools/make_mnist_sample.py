"""Build training/data/mnist-sample from the full MNIST set: the first N train and M test images.

    python scripts/tools/make_mnist_sample.py ../shared/data/mnist training/data/mnist-sample

Reproducible: the same input gives byte-identical files (gzip mtime fixed at 0).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
from pathlib import Path

TRAIN, TEST = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"), ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def head(raw: bytes, count: int) -> bytes:
    """The first `count` items of an IDX file, with its header's count rewritten."""
    dims = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    item = 1
    for size in shape[1:]:
        item *= size
    offset = 4 + 4 * dims
    return raw[:4] + count.to_bytes(4, "big") + raw[8:offset] + raw[offset : offset + count * item]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    parser.add_argument("--train", type=int, default=1000)
    parser.add_argument("--test", type=int, default=500)
    args = parser.parse_args()
    args.target.mkdir(parents=True, exist_ok=True)
    sums = []
    for names, count in ((TRAIN, args.train), (TEST, args.test)):
        for name in names:
            source = args.source / f"{name}.gz"
            raw = gzip.decompress(source.read_bytes()) if source.exists() else (args.source / name).read_bytes()
            sample = head(raw, count)
            (args.target / f"{name}.gz").write_bytes(gzip.compress(sample, compresslevel=9, mtime=0))
            sums.append(f"{hashlib.sha256(sample).hexdigest()}  {name}\n")
    (args.target / "SHA256SUMS.uncompressed").write_text("".join(sums))


if __name__ == "__main__":
    main()
