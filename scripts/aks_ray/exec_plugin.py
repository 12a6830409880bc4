"""The kubeconfig's exec credential plugin for AKS clusters with Azure AD: `python -m aks_ray.exec_plugin`.

Every Kubernetes client (the Python client, helm, kubectl) runs it whenever it
needs a token, and reads one ExecCredential from its stdout, so nothing else
may ever be printed there. Its settings come through config like every other
entry point: the kubeconfig passes --azure-tenant-id and --azure-client-id,
and the environment the rest (the GitHub OIDC request in Actions).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from . import config, gha, maskpipe, redact
from .azure_auth import build_credential, get_aks_token
from .errors import EXIT_OK, AksRayError

EXEC_API_VERSION = "client.authentication.k8s.io/v1beta1"
MODULE = "aks_ray.exec_plugin"
# Clients call the plugin again this long before the token really expires.
RENEW_MARGIN_SECONDS = 300


def kubeconfig_user(python: str, tenant_id: str | None, client_id: str | None) -> dict[str, Any]:
    """The kubeconfig `user.exec` that runs this module with the given interpreter."""
    args = ["-m", MODULE]
    if tenant_id:
        args += ["--azure-tenant-id", tenant_id]
    if client_id:
        args += ["--azure-client-id", client_id]
    return {
        "apiVersion": EXEC_API_VERSION,
        "command": python,
        "args": args,
        "env": None,
        "interactiveMode": "Never",
        "provideClusterInfo": False,
    }


def exec_credential(token: str, expires_on: int, now: float | None = None) -> dict[str, Any]:
    """The ExecCredential a Kubernetes client reads from the plugin's stdout."""
    now = dt.datetime.now(dt.timezone.utc).timestamp() if now is None else now
    renew_at = max(now, expires_on - RENEW_MARGIN_SECONDS)
    stamp = dt.datetime.fromtimestamp(renew_at, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"apiVersion": EXEC_API_VERSION, "kind": "ExecCredential", "status": {"token": token, "expirationTimestamp": stamp}}


def main(argv: Sequence[str] | None = None, *, environ: Mapping[str, str] | None = None, transport: Any = None, stdout: Any = None) -> int:
    """Print an ExecCredential with an Azure AD token for the AKS server application, and nothing else on stdout."""
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__.splitlines()[0])
    config.add_arguments(parser, ("azure",))
    args = parser.parse_args(argv)
    logging.basicConfig(level="WARNING", stream=sys.stderr, format="aks-ray exec plugin: %(message)s")
    redact.install_logging()
    environ = os.environ if environ is None else environ
    gha.use_workflow_commands(config.running_in_actions(environ))
    # Our stderr is captured by the calling client, which never shows it to the runner: masks go to
    # the step's relay when there is one (maskpipe.py), and so reach the runner before any token is used.
    pipe = config.mask_pipe_path(environ)
    gha.use_mask_sink(lambda value: maskpipe.send(pipe, value))
    stdout = sys.stdout if stdout is None else stdout
    try:
        cfg = config.load(vars(args), environ)
        azure = cfg.azure
        credential = build_credential(cfg.github, azure.azure_tenant_id, azure.azure_client_id, transport)
        token = get_aks_token(credential, doing="getting an Azure AD token for the AKS API", assignee=azure.azure_client_id)
    except AksRayError as exc:  # bad settings (exit 2) or a refused sign-in: the client shows stderr
        print(redact.text(f"aks-ray exec plugin: {exc}"), file=sys.stderr)
        return exc.exit_code
    stdout.write(json.dumps(exec_credential(token.token, token.expires_on)) + "\n")
    stdout.flush()
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
