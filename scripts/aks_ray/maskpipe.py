"""Masks for the tokens the exec credential plugin mints, delivered to the runner.

The problem: the plugin (`python -m aks_ray.exec_plugin`) runs as a child
of whatever Kubernetes client needs a token: the kubernetes Python client
inside an aks-ray step, or helm and kubectl run by one. Each of those captures
the plugin's stderr, so an `::add-mask::` the plugin writes there never reaches
the runner; worse, the captured text is logged or put into an exception on
failure, which prints the token it was meant to hide.

The way out: the aks-ray step that may start such clients owns a named pipe
(a FIFO in its private folder) and a thread that reads it and prints each
line it receives as `::add-mask::` on the step's own stderr, which is the
runner's. The pipe's path travels in the environment (MASK_PIPE_ENV), which
every client passes on to the plugin (the Python client, helm and kubectl all
run it with the parent's environment). The plugin writes its masks to the pipe
and nothing to stderr. Nothing rests on disk: a FIFO holds no data.

Where no step reads the pipe (the variable is unset, or nobody has it open,
for example kubectl run by a later workflow step with the exported
KUBECONFIG), the plugin falls back to `::add-mask::` on its stderr, which in
that case goes straight to the runner.

The order: the plugin sends the mask before it prints the credential, and the
relay prints it as soon as it reads it; the token reaches no output before
that. The redaction filter (redact.py) stands behind it for anything
JWT-shaped in any captured text.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import tempfile
import threading
from pathlib import Path

from . import config, gha, redact
from .config import MASK_PIPE_ENV

log = logging.getLogger(__name__)


_relay: threading.Thread | None = None


def send(path: str | None, value: str) -> bool:
    """The plugin's side: write one mask to the pipe; False if no relay reads it (then use stderr)."""
    if not path:
        return False
    try:
        if not stat.S_ISFIFO(os.stat(path).st_mode):
            return False
        # Non-blocking: with no reader, open fails at once (ENXIO) instead of hanging the client.
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        os.set_blocking(fd, True)
        data = (value.replace("\n", " ") + "\n").encode("utf-8")
        # Writes up to PIPE_BUF (4 KiB on Linux) are atomic: concurrent plugins never interleave a line.
        os.write(fd, data)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def _read_forever(fd: int) -> None:
    try:
        with os.fdopen(fd, encoding="utf-8", errors="replace") as pipe:
            for line in pipe:
                if line.strip():
                    gha.add_mask(line.rstrip("\n"))
    except OSError as exc:
        log.debug("mask pipe: %s", exc)


def start_relay(folder: Path | None, environ: dict[str, str] | os._Environ[str]) -> str:
    """The step's side: create the pipe, read it in a daemon thread, and tell children where it is.

    `environ` is the environment the children inherit (os.environ in the CLI).
    Returns the pipe's path. Once per process.
    """
    global _relay
    if _relay is not None and environ.get(MASK_PIPE_ENV):
        return environ[MASK_PIPE_ENV]
    base = Path(tempfile.mkdtemp(prefix="aks-ray-masks-", dir=str(folder) if folder else None))
    base.chmod(0o700)
    path = str(base / "masks.fifo")
    os.mkfifo(path, 0o600)
    # Opened for reading and writing: the relay then never sees end-of-file between
    # two plugins, and a plugin's non-blocking open always finds a reader (Linux, macOS).
    fd = os.open(path, os.O_RDWR)
    _relay = threading.Thread(target=_read_forever, args=(fd,), daemon=True, name="aks-ray-mask-relay")
    _relay.start()
    environ[MASK_PIPE_ENV] = path
    import atexit

    def remove() -> None:
        with contextlib.suppress(OSError):
            os.unlink(path)
        with contextlib.suppress(OSError):
            base.rmdir()

    atexit.register(remove)
    return path


def install(environ: os._Environ[str] | dict[str, str] | None = None) -> None:
    """Once per aks-ray step: redact the environment's secrets, and under Actions relay the plugin's masks."""
    environ = os.environ if environ is None else environ
    redact.remember(config.secret_values(environ))
    if not config.running_in_actions(environ):
        return
    folder = config._github_context(environ).runner_temp
    try:
        start_relay(folder if folder is not None and folder.is_dir() else None, environ)
    except OSError as exc:  # no FIFOs here: the plugin then masks on its stderr, as before, and redaction stays
        log.warning("cannot relay the exec plugin's masks (%s); tokens stay redacted from this step's output", exc)
