"""The driver's entrypoint on Kubernetes: runs the training command exactly as given, with no shell.

On the Kubernetes targets this file and `_aks_ray_argv.json` travel in the
ConfigMap with the training directory, and the RayJob's entrypoint is only
`python _aks_ray_entrypoint.py`: no character in it means anything to a shell.
The command itself (the entrypoint and the training flags, one JSON list) is
read here and executed directly, so it reaches the driver unchanged however many
shells parse the entrypoint on the way (KubeRay's `bash -c` in the submitter, then
Ray's `shell=True` for the driver) and however `ray job submit` re-quotes it
(`shlex.join` in Ray 2.60, Windows-style `list2cmdline` in older releases).

Standard library only: it runs in the job's runtime environment, before anything else.
"""

import json
import os
import sys
from pathlib import Path

ARGV_FILE = "_aks_ray_argv.json"


def main() -> None:
    argv = json.loads((Path(__file__).resolve().parent / ARGV_FILE).read_text(encoding="utf-8"))
    sys.stdout.flush()
    os.execvp(argv[0], argv)  # noqa: S606 (without a shell is the point: the argv arrives unchanged)


if __name__ == "__main__":
    main()
