"""Write the action's hash-locked requirements from pyproject.toml, with the pinned uv.

    python scripts/tools/lock_requirements.py          # rewrite requirements/*.txt
    python scripts/tools/lock_requirements.py --check  # exit 1 if they would change

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a lock file is out of date")
    args = parser.parse_args(argv)
    uv = uv_executable()
    stale = []
    REQUIREMENTS_DIR.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        for name, extras in LOCKS.items():
            text = compile_lock(uv, extras, Path(scratch) / name)
            target = REQUIREMENTS_DIR / name
            if target.is_file() and target.read_text(encoding="utf-8") == text:
                continue
            stale.append(name)
            if not args.check:
                target.write_text(text, encoding="utf-8")
    if args.check and stale:
        print(f"out of date: {', '.join(stale)}; run scripts/tools/lock_requirements.py", file=sys.stderr)
        return 1
    print(f"{'rewrote' if stale else 'up to date'}: {', '.join(stale) or ', '.join(LOCKS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
