"""Pack a root filesystem folder into a one-layer image archive.

The archive is in the docker-archive layout (manifest.json with RepoTags),
which `ctr images import` reads, so images reach containerd without a
registry. Usage:

    python3 mkimage.py ROOTFS REF OUT.tar [--entrypoint JSON] [--cmd JSON]
        [--env K=V ...] [--workdir DIR] [--user USER]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def image_config(diff_id: str, args: argparse.Namespace) -> dict:
    config: dict = {"Env": args.env or ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]}
    if args.entrypoint:
        config["Entrypoint"] = json.loads(args.entrypoint)
    if args.cmd:
        config["Cmd"] = json.loads(args.cmd)
    if args.workdir:
        config["WorkingDir"] = args.workdir
    if args.user:
        config["User"] = args.user
    return {
        "architecture": "amd64",
        "os": "linux",
        "created": "2026-01-01T00:00:00Z",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{diff_id}"]},
        "history": [{"created": "2026-01-01T00:00:00Z", "created_by": "tests/cluster/mkimage.py"}],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rootfs")
    parser.add_argument("ref")
    parser.add_argument("out")
    parser.add_argument("--entrypoint")
    parser.add_argument("--cmd")
    parser.add_argument("--env", action="append")
    parser.add_argument("--workdir")
    parser.add_argument("--user")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(args.out))) as tmp:
        layer = os.path.join(tmp, "layer.tar")
        # GNU tar keeps hard links, special files and numeric owners, and is far
        # faster than tarfile on a multi-gigabyte Python environment.
        subprocess.run(
            ["tar", "--numeric-owner", "--xattrs", "--sort=name", "-C", args.rootfs, "-cf", layer, "."],
            check=True,
        )
        diff_id = sha256_file(layer)
        config = json.dumps(image_config(diff_id, args), sort_keys=True).encode()
        config_name = hashlib.sha256(config).hexdigest() + ".json"
        manifest = [{"Config": config_name, "RepoTags": [args.ref], "Layers": [f"{diff_id}/layer.tar"]}]
        partial = args.out + ".partial"
        with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as out:
            out.add(layer, arcname=f"{diff_id}/layer.tar")
            for name, data in ((config_name, config), ("manifest.json", json.dumps(manifest).encode())):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                out.addfile(info, fileobj=io.BytesIO(data))
        os.replace(partial, args.out)
    print(f"{args.ref} -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
