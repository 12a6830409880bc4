"""A shell command in a running pod's container, through the API server's exec (the tests' one way in)."""

from __future__ import annotations

import gc
import warnings


def run_in_pod(kube_api, namespace: str, pod: str, container: str, script: str, timeout: int = 60) -> str:
    """`sh -c script` in the container; its standard output."""
    from kubernetes.stream import stream

    exec_stream = stream(
        kube_api.connect_get_namespaced_pod_exec, pod, namespace, container=container,
        command=["sh", "-c", script], stderr=True, stdin=False, stdout=True, tty=False, _preload_content=False,
    )  # fmt: skip
    try:
        exec_stream.run_forever(timeout=timeout)
        return exec_stream.read_stdout()
    finally:
        exec_stream.close()
        # The client's websocket leaves its TLS socket to the garbage collector even when closed; collect it
        # here, where its ResourceWarning says nothing about the code under test (filterwarnings=error).
        del exec_stream
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()
