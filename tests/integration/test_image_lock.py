"""scripts/tools/lock_requirements.py's lock of the Ray image's torch, against a real uv and a real index.

The index is a PEP 503 page served on 127.0.0.1 with one wheel in it, a stand-in
for PyTorch's CPU index (which carries `torch==X+cpu`) that this machine need not
reach: the lock must pin the CPU build at versions.TORCH_VERSION with the SHA-256 of
the very file served, for the image's Python and platform, and leave the index's
address out of the file (the project names no index host). Needs the pinned uv,
which `make lock` installs into .tools/; skipped, saying so, without it.
"""

from __future__ import annotations

import hashlib
import http.server
import sys
import threading
import zipfile
from pathlib import Path

import pytest

from aks_ray import versions

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts" / "tools"))
import lock_requirements  # noqa: E402 (a script, found by the path above)


def pinned_uv() -> Path:
    uv = ROOT / ".tools" / f"uv-{versions.UV_VERSION}" / "bin" / "uv"
    if uv.is_file():
        return uv
    pytest.skip(f"uv {versions.UV_VERSION} is not installed: `make lock` installs it into .tools/uv-{versions.UV_VERSION}")


def cpu_wheel(folder: Path) -> Path:
    """A minimal wheel named and tagged as PyTorch's CPU build for CPython 3.11 on x86_64."""
    version = f"{versions.TORCH_VERSION}+cpu"
    wheel = folder / f"torch-{version}-cp311-cp311-manylinux_2_28_x86_64.whl"
    info = f"torch-{version}.dist-info"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("torch/__init__.py", "")
        archive.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: torch\nVersion: {version}\n")
        archive.writestr(
            f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: false\nTag: cp311-cp311-manylinux_2_28_x86_64\n"
        )
        archive.writestr(f"{info}/RECORD", "")
    return wheel


@pytest.fixture
def index(tmp_path):
    """(URL, sha256 of the wheel) of a one-package simple index on a local port."""
    project = tmp_path / "simple" / "torch"
    project.mkdir(parents=True)
    wheel = cpu_wheel(project)
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    (project / "index.html").write_text(f'<a href="{wheel.name}#sha256={digest}">{wheel.name}</a>\n', encoding="utf-8")
    (tmp_path / "simple" / "index.html").write_text('<a href="torch/">torch</a>\n', encoding="utf-8")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(tmp_path / "simple"), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", digest
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_the_image_lock_pins_the_cpu_build_with_the_served_files_hash_and_no_index(index, tmp_path):
    url, digest = index
    text = lock_requirements.compile_image_lock(pinned_uv(), url, tmp_path / "ray-image.txt")
    body = [line.strip() for line in text.splitlines() if not line.startswith("#")]
    assert body == [f"torch=={versions.TORCH_VERSION}+cpu \\", f"--hash=sha256:{digest}"]
    assert "127.0.0.1" not in text, "the index's address stays out of the lock"
    assert f"(uv {versions.UV_VERSION})" in text.splitlines()[1]
    assert f"--python-platform {lock_requirements.IMAGE_PLATFORM}" in text
