"""Write the action's hash-locked requirements from pyproject.toml, with the pinned uv.

    python scripts/tools/lock_requirements.py          # rewrite requirements/*.txt
    python scripts/tools/lock_requirements.py --check  # exit 1 if they would change
    python scripts/tools/lock_requirements.py --torch-index-url URL  # requirements/ray-image.txt too

requirements/ray-image.txt is what manifests/Dockerfile installs into the Ray
image: the CPU build of the pinned torch (`torch==X+cpu`) and its dependencies,
for the image's Python and platform only (CPython 3.11, x86_64 manylinux). The
CPU build is on PyTorch's own wheel index, not on the default one; the project
names no index host, so the index comes from --torch-index-url (TORCH_INDEX_URL
for `make lock`), else from pip's configuration (`extra-index-url`, as `pip
config list` shows it), and without either that lock is left as it is, saying
so. The same URL is the Dockerfile's TORCH_INDEX_URL build argument.

The action installs its private venv with `pip install --require-hashes
--no-deps -r requirements/action.txt` (action-train.txt for the local target,
which trains on the runner), then the action itself with `pip install --no-deps
--no-index --no-build-isolation --editable .`: every package of the whole dependency tree at one version, and
only a file with one of the recorded SHA-256 hashes, so a re-published or
swapped file on the index is refused instead of installed. setuptools (the
build backend) is locked too, so the editable install fetches nothing. The lock is
universal (every platform and Python >= 3.11 the dependencies allow), so one
file serves every runner.

uv comes at the version in scripts/aks_ray/versions.py (UV_VERSION), installed
with pip into .tools/uv-<version>/ on first use; it needs the package index,
as pip does. tests/unit/test_requirements_lock.py checks, offline, that the
files pin exactly pyproject.toml's dependencies, every one with hashes.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

from aks_ray import versions  # noqa: E402 (needs the path above)

REQUIREMENTS_DIR = ROOT / "requirements"
# file -> the pyproject extras it adds to the base dependencies
LOCKS = {"action.txt": (), "action-train.txt": ("train",)}
# The lowest Python the locked versions support (matplotlib 3.11 needs 3.11).
PYTHON_FLOOR = "3.11"
# The Ray image's lock (manifests/Dockerfile): the CPU build of the pinned torch, for the
# image's Python (the py311 tag of versions.RAY_IMAGE) on the nodes' platform (x86_64).
IMAGE_LOCK = "ray-image.txt"
IMAGE_REQUIREMENT = f"torch=={versions.TORCH_VERSION}+cpu"
IMAGE_PYTHON = versions.PYTHON_VERSION
IMAGE_PLATFORM = "x86_64-manylinux_2_28"


def header(extras: tuple[str, ...]) -> str:
    extra_args = "".join(f" --extra {extra}" for extra in extras)
    return (
        f"# The action's virtual environment{' with the ' + ', '.join(extras) + ' extra' if extras else ''}, hash-locked.\n"
        f"# Written by scripts/tools/lock_requirements.py (uv {versions.UV_VERSION}): do not edit by hand.\n"
        f"#   uv pip compile pyproject.toml <build-system requires>{extra_args} --universal --python-version {PYTHON_FLOOR} "
        "--generate-hashes --no-annotate\n"
    )


def uv_executable() -> Path:
    home = ROOT / ".tools" / f"uv-{versions.UV_VERSION}"
    uv = home / "bin" / "uv"
    if not uv.is_file():
        venv.create(home, with_pip=True, clear=True)
        subprocess.run([str(home / "bin" / "python"), "-m", "pip", "install", "--quiet", f"uv=={versions.UV_VERSION}"], check=True)
    return uv


def build_requirements() -> list[str]:
    """pyproject.toml's build-system requirements (setuptools): locked too, so the editable install needs no index."""
    import tomllib

    with (ROOT / "pyproject.toml").open("rb") as handle:
        return list(tomllib.load(handle)["build-system"]["requires"])


def compile_lock(uv: Path, extras: tuple[str, ...], out: Path) -> str:
    build_in = out.with_suffix(".build.in")
    build_in.write_text("\n".join(build_requirements()) + "\n", encoding="utf-8")
    args = [str(uv), "pip", "compile", "pyproject.toml", str(build_in), "--universal", "--python-version", PYTHON_FLOOR]
    args += ["--generate-hashes", "--no-annotate"]
    args += ["--no-header", "--native-tls", "--quiet", "-o", str(out)]
    for extra in extras:
        args += ["--extra", extra]
    subprocess.run(args, check=True, cwd=ROOT, timeout=900)
    return header(extras) + out.read_text(encoding="utf-8")


def image_header() -> str:
    return (
        f"# The Ray image's torch (manifests/Dockerfile), hash-locked: the CPU build, for CPython {IMAGE_PYTHON} on {IMAGE_PLATFORM}.\n"
        f"# Written by scripts/tools/lock_requirements.py (uv {versions.UV_VERSION}) with PyTorch's CPU index: do not edit by hand.\n"
        f"#   uv pip compile <{IMAGE_REQUIREMENT}> --python-version {IMAGE_PYTHON} --python-platform {IMAGE_PLATFORM} "
        "--extra-index-url <TORCH_INDEX_URL> --generate-hashes --no-annotate\n"
    )


def configured_torch_index() -> str | None:
    """pip's configured extra-index-url (`pip config list`), if it has exactly one: the CPU index, by this project's convention."""
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, timeout=60, check=False
    ).stdout.splitlines()
    urls = [line.split("=", 1)[1].strip().strip("'\"") for line in listed if line.split("=", 1)[0].endswith(".extra-index-url")]
    found = {url for value in urls for url in value.split()}
    return found.pop() if len(found) == 1 else None


def compile_image_lock(uv: Path, index_url: str, out: Path) -> str:
    requirement_in = out.with_suffix(".in")
    requirement_in.write_text(IMAGE_REQUIREMENT + "\n", encoding="utf-8")
    args = [str(uv), "pip", "compile", str(requirement_in), "--python-version", IMAGE_PYTHON, "--python-platform", IMAGE_PLATFORM]
    # The index is read, never written: uv leaves it out of the file unless --emit-index-url.
    args += ["--extra-index-url", index_url, "--generate-hashes", "--no-annotate"]
    args += ["--no-header", "--native-tls", "--quiet", "-o", str(out)]
    subprocess.run(args, check=True, cwd=ROOT, timeout=900)
    return image_header() + out.read_text(encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a lock file is out of date")
    parser.add_argument(
        "--torch-index-url",
        default=os.environ.get("TORCH_INDEX_URL") or None,
        help="PyTorch's CPU wheel index, for requirements/ray-image.txt (default: TORCH_INDEX_URL, else pip's extra-index-url)",
    )
    args = parser.parse_args(argv)
    uv = uv_executable()
    stale = []
    checked = list(LOCKS)
    REQUIREMENTS_DIR.mkdir(exist_ok=True)
    torch_index = args.torch_index_url or configured_torch_index()
    with tempfile.TemporaryDirectory() as scratch:
        locks = [(name, lambda out, extras=extras: compile_lock(uv, extras, out)) for name, extras in LOCKS.items()]
        if torch_index:
            locks.append((IMAGE_LOCK, lambda out: compile_image_lock(uv, torch_index, out)))
            checked.append(IMAGE_LOCK)
        else:
            print(
                f"skipped: {IMAGE_LOCK} (no PyTorch CPU index: pass --torch-index-url, set TORCH_INDEX_URL, "
                "or configure pip's extra-index-url)",
                file=sys.stderr,
            )
        for name, compile_one in locks:
            text = compile_one(Path(scratch) / name)
            target = REQUIREMENTS_DIR / name
            if target.is_file() and target.read_text(encoding="utf-8") == text:
                continue
            stale.append(name)
            if not args.check:
                target.write_text(text, encoding="utf-8")
    if args.check and stale:
        print(f"out of date: {', '.join(stale)}; run scripts/tools/lock_requirements.py", file=sys.stderr)
        return 1
    print(f"{'rewrote' if stale else 'up to date'}: {', '.join(stale) or ', '.join(checked)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
