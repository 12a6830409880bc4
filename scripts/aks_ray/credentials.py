"""`aks-ray credentials`: a kubeconfig for the AKS cluster, with no stored secret.

Sign-in: in GitHub Actions, the job's OIDC token (audience
api://AzureADTokenExchange) is exchanged for an Azure AD token through
azure-identity's ClientAssertionCredential; elsewhere DefaultAzureCredential
(`az login`, environment, managed identity).

The kubeconfig comes from the cluster's listClusterUserCredential. For a
cluster with Azure AD integration (this project's Terraform disables local
accounts) that kubeconfig would need the kubelogin binary; instead its user is
replaced by an exec credential plugin that runs this module again:

    python -m aks_ray.credentials token --tenant-id T --client-id C

which prints a client.authentication.k8s.io ExecCredential holding an Azure AD
token for the AKS server application. Why a plugin and not the token itself:
the token lasts about an hour, a run can last longer, and every Kubernetes
client used here (the Python client, helm, kubectl) calls the plugin again
when the expirationTimestamp passes, so renewal needs no code in the callers;
and no bearer token ever rests on disk. The plugin needs nothing but this
package's own Python, which the later steps already run.

The file goes to $RUNNER_TEMP (or a private temporary folder) with mode 0600;
every secret is masked (::add-mask::) the moment it exists and is never
printed or put into an output. KUBECONFIG is exported to later steps.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import datetime as dt
import json
import logging
import os
import sys
import tempfile
import urllib.parse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from . import azure_errors, gha, maskpipe, redact
from .config import Config, GitHubContext
from .errors import EXIT_OK, AksRayError, OperationalError, UserError
from .retry import Deadline, wait_until

log = logging.getLogger(__name__)

# The AKS Azure AD server application, the same in every tenant.
AKS_SERVER_APP_ID = "6dae42f8-4368-4678-94ff-3960e28e3630"
AKS_SCOPE = f"{AKS_SERVER_APP_ID}/.default"
GITHUB_OIDC_AUDIENCE = "api://AzureADTokenExchange"
EXEC_API_VERSION = "client.authentication.k8s.io/v1beta1"
# Clients call the plugin again this long before the token really expires.
RENEW_MARGIN_SECONDS = 300
# Azure RBAC role assignments on a new cluster take a few minutes to reach it.
ACCESS_DEADLINE_SECONDS = 600
KUBECONFIG_SECRET_FIELDS = ("token", "client-key-data", "client-certificate-data", "password")

OIDC_PERMISSION_FIX = (
    "give the job `permissions: id-token: write` (and `contents: read`) in the workflow, "
    "so GitHub can issue the OIDC token that Azure trusts; pull requests from forks never get one."
)


# ------------------------------------------------------------ sign-in


def _transport_kwargs(transport: Any) -> dict[str, Any]:
    return {} if transport is None else {"transport": transport}


def github_oidc_token(github: GitHubContext, transport: Any = None) -> str:
    """GitHub's OIDC token for Azure, fresh on every call (it lives for minutes)."""
    from azure.core import PipelineClient
    from azure.core.exceptions import ServiceRequestError
    from azure.core.pipeline.policies import RetryPolicy
    from azure.core.rest import HttpRequest

    if not github.oidc_request_url or not github.oidc_request_token:
        raise UserError("GitHub gave this job no OIDC token request URL (ACTIONS_ID_TOKEN_REQUEST_URL is not set).", OIDC_PERMISSION_FIX)
    separator = "&" if "?" in github.oidc_request_url else "?"
    url = f"{github.oidc_request_url}{separator}audience={urllib.parse.quote(GITHUB_OIDC_AUDIENCE, safe='')}"
    client = PipelineClient(base_url=url, policies=[RetryPolicy(retry_total=3, retry_backoff_factor=1.0)], **_transport_kwargs(transport))
    request = HttpRequest("GET", url, headers={"Authorization": f"Bearer {github.oidc_request_token}", "Accept": "application/json"})
    try:
        response = client.send_request(request)
    except ServiceRequestError as exc:
        raise OperationalError(
            f"could not reach GitHub's OIDC token endpoint: {exc}", "re-run the job; GitHub may be having trouble."
        ) from None
    if response.status_code in (401, 403):
        raise UserError(
            f"GitHub refused the OIDC token request ({response.status_code}): its request token expired or lacks id-token permission.",
            OIDC_PERMISSION_FIX + " If the job ran for many hours, split it: the request token lasts as long as the job.",
        )
    if response.status_code != 200:
        raise OperationalError(
            f"GitHub's OIDC token endpoint answered {response.status_code}.", "re-run the job; GitHub may be having trouble."
        )
    try:
        token = response.json()["value"]
    except (ValueError, KeyError, TypeError):
        raise OperationalError("GitHub's OIDC token endpoint answered without a token.", "re-run the job.") from None
    gha.add_mask(token)
    return token


def build_credential(github: GitHubContext, tenant_id: str | None, client_id: str | None, transport: Any = None) -> Any:
    """The azure-identity credential for this environment."""
    if github.actions and not github.act:
        from azure.identity import ClientAssertionCredential

        if not github.oidc_request_url or not github.oidc_request_token:
            raise UserError(
                "this GitHub Actions job cannot request an OIDC token, so it cannot sign in to Azure without a secret.", OIDC_PERMISSION_FIX
            )
        if not tenant_id or not client_id:
            raise UserError(
                "OIDC sign-in needs the tenant and client IDs.",
                "set the action's azure-tenant-id and azure-client-id inputs (or ARM_TENANT_ID/ARM_CLIENT_ID).",
            )
        return MaskingCredential(
            ClientAssertionCredential(tenant_id, client_id, lambda: github_oidc_token(github, transport), **_transport_kwargs(transport))
        )
    from azure.identity import DefaultAzureCredential

    kwargs: dict[str, Any] = _transport_kwargs(transport)
    if client_id:
        kwargs["managed_identity_client_id"] = client_id
    return MaskingCredential(DefaultAzureCredential(**kwargs))


class MaskingCredential:
    """Wraps an azure-identity credential so every access token it hands out is masked first.

    The Azure SDK clients ask the credential for their ARM tokens themselves;
    this is the one place those tokens pass through code of ours.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        token = self.inner.get_token(*scopes, **kwargs)
        gha.add_mask(token.token)
        return token

    def get_token_info(self, *scopes: str, options: Any = None) -> Any:
        info = self.inner.get_token_info(*scopes, options=options)
        gha.add_mask(info.token)
        return info

    def close(self) -> None:
        self.inner.close()


def get_aks_token(credential: Any, *, doing: str, assignee: str | None = None) -> Any:
    """An Azure AD access token for the AKS server application, masked at once."""
    from azure.core.exceptions import AzureError

    try:
        token = credential.get_token(AKS_SCOPE)  # masked by MaskingCredential, and again below for any other credential
    except AksRayError:
        raise
    except AzureError as exc:
        raise azure_errors.explain(exc, doing=doing, assignee=assignee) from None
    gha.add_mask(token.token)
    return token


# ----------------------------------------------------------- kubeconfig


def exec_plugin(python: str, tenant_id: str | None, client_id: str | None) -> dict[str, Any]:
    """The kubeconfig `user.exec` that calls `python -m aks_ray.credentials token`."""
    args = ["-m", "aks_ray.credentials", "token"]
    if tenant_id:
        args += ["--tenant-id", tenant_id]
    if client_id:
        args += ["--client-id", client_id]
    return {
        "apiVersion": EXEC_API_VERSION,
        "command": python,
        "args": args,
        "env": None,
        "interactiveMode": "Never",
        "provideClusterInfo": False,
    }


def render_kubeconfig(user_kubeconfig: dict[str, Any], *, aad: bool, plugin: dict[str, Any]) -> dict[str, Any]:
    """The kubeconfig to write: the cluster's own, with Azure AD users signing in through the plugin."""
    doc = json.loads(json.dumps(user_kubeconfig))  # a deep copy of plain data
    if not doc.get("clusters") or not doc.get("users") or not doc.get("contexts"):
        raise OperationalError(
            "the kubeconfig AKS returned has no cluster, user or context.",
            "re-run the job; if it recurs, check the cluster in the Azure portal.",
        )
    if aad:
        for user in doc["users"]:
            user["user"] = {"exec": plugin}
    if not doc.get("current-context"):
        doc["current-context"] = doc["contexts"][0]["name"]
    return doc


def secrets_in(doc: dict[str, Any]) -> list[str]:
    """Every secret value a kubeconfig carries (tokens, keys), to mask before anything else happens."""
    found = []
    for user in doc.get("users") or []:
        fields = user.get("user") or {}
        found += [str(fields[name]) for name in KUBECONFIG_SECRET_FIELDS if fields.get(name)]
    return found


def is_aad_kubeconfig(doc: dict[str, Any]) -> bool:
    """True when the user signs in with Azure AD (kubelogin exec or the old azure auth-provider)."""
    for user in doc.get("users") or []:
        fields = user.get("user") or {}
        if "kubelogin" in str((fields.get("exec") or {}).get("command", "")) or (fields.get("auth-provider") or {}).get("name") == "azure":
            return True
    return False


def private_dir(github: GitHubContext) -> Path:
    """A folder only this user can read: under RUNNER_TEMP in Actions (wiped after the job), else a fresh temp dir."""
    if github.runner_temp is not None:
        folder = github.runner_temp / "aks-ray"
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        folder.chmod(0o700)
        return folder
    return Path(tempfile.mkdtemp(prefix="aks-ray-"))


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path` with mode 0600 from the first byte (no window where others could read it)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(path, 0o600)


# ----------------------------------------------------------- access check


def wait_for_kubernetes_access(
    doc: dict[str, Any],
    token: str,
    ca_file: Path | None,
    deadline: Deadline,
    transport: Any = None,
    sleep: Callable[[float], None] | None = None,
) -> None:
    """Wait until the API server lets this identity list namespaces.

    A role assignment made by Terraform moments ago takes minutes to reach a
    new cluster; a 403 until then is expected, a 403 after the deadline is not.
    """
    from azure.core import PipelineClient
    from azure.core.exceptions import ServiceRequestError
    from azure.core.rest import HttpRequest

    server = doc["clusters"][0]["cluster"]["server"].rstrip("/")
    url = f"{server}/api/v1/namespaces?limit=1"
    client = PipelineClient(base_url=server, **_transport_kwargs(transport))
    last: list[str] = []

    def allowed() -> bool:
        request = HttpRequest("GET", url, headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})
        try:
            response = client.send_request(request, connection_verify=str(ca_file) if ca_file else True)
        except ServiceRequestError as exc:
            last[:] = [f"could not connect: {exc}"]
            return False
        if response.status_code == 200:
            return True
        last[:] = [f"{response.status_code} {response.reason}"]
        if response.status_code == 401:
            raise OperationalError(
                "the AKS API server rejected the Azure AD token (401).", "check that the cluster trusts this tenant (--azure-tenant-id)."
            )
        log.info("the API server answered %s; waiting for the role assignment to reach the cluster", last[0])
        return False

    kwargs = {} if sleep is None else {"sleep": sleep}
    try:
        wait_until(allowed, deadline, interval=10.0, **kwargs)
    except AksRayError as exc:
        if "did not finish" not in exc.message:
            raise
        raise OperationalError(
            f"the identity still cannot use the Kubernetes API after {deadline.seconds:.0f} s (last: {last[0] if last else 'none'}).",
            f"give the pipeline's identity the role '{azure_errors.AKS_CLUSTER_ADMIN_ROLE}' on the cluster "
            "(Terraform does it when grant_deployer_cluster_admin is true), then re-run.",
        ) from None


# ----------------------------------------------------------------- main


def cluster_coordinates(cfg: Config) -> tuple[str, str]:
    """(resource group, cluster name): from the infra step's state file if there is one, else from the options."""
    from .infra import read_state

    state = read_state(cfg.output_dir)
    if state and state.get("resource_group_name") and state.get("cluster_name"):
        return state["resource_group_name"], state["cluster_name"]
    return cfg.resource_group, cfg.cluster_name


def obtain_kubeconfig(cfg: Config, *, transport: Any = None, sleep: Callable[[float], None] | None = None) -> Path:
    """Sign in, fetch the cluster's kubeconfig, write it privately, check it works; return its path."""
    from azure.core.exceptions import AzureError
    from azure.mgmt.containerservice import ContainerServiceClient

    azure = cfg.azure
    if not azure.azure_subscription_id:
        raise UserError("the subscription ID is not set.", "set --azure-subscription-id (or ARM_SUBSCRIPTION_ID).")
    resource_group, cluster_name = cluster_coordinates(cfg)
    assignee = azure.azure_client_id
    credential = build_credential(cfg.github, azure.azure_tenant_id, azure.azure_client_id, transport)
    client = ContainerServiceClient(credential, azure.azure_subscription_id, **_transport_kwargs(transport))
    doing = f"reading AKS cluster {resource_group}/{cluster_name}"
    try:
        cluster = client.managed_clusters.get(resource_group, cluster_name)
        power = getattr(getattr(cluster, "power_state", None), "code", None)
        if power == "Stopped":
            raise UserError(
                f"AKS cluster {resource_group}/{cluster_name} is stopped.", f"start it: az aks start -g {resource_group} -n {cluster_name}"
            )
        doing = f"fetching the user kubeconfig of {resource_group}/{cluster_name}"
        result = client.managed_clusters.list_cluster_user_credentials(resource_group, cluster_name, format="exec")
    except AksRayError:
        raise
    except AzureError as exc:
        if getattr(exc, "status_code", None) == 404:
            raise UserError(
                f"AKS cluster {resource_group}/{cluster_name} was not found in subscription {azure.azure_subscription_id}.",
                "run `aks-ray infra apply` first, or check --resource-group, --cluster-name and --azure-subscription-id.",
            ) from None
        raise azure_errors.explain(exc, doing=doing, assignee=assignee) from None

    raw = (result.kubeconfigs or [None])[0]
    if raw is None or not raw.value:
        raise OperationalError(f"AKS returned no kubeconfig for {resource_group}/{cluster_name}.", "re-run the job.")
    try:
        text = raw.value.decode("utf-8") if isinstance(raw.value, bytes) else base64.b64decode(raw.value).decode("utf-8")
        user_doc = yaml.safe_load(text)
    except (UnicodeDecodeError, binascii.Error, yaml.YAMLError):
        raise OperationalError("the kubeconfig AKS returned could not be read.", "re-run the job.") from None
    for secret in secrets_in(user_doc):
        gha.add_mask(secret)

    aad = getattr(cluster, "aad_profile", None) is not None or is_aad_kubeconfig(user_doc)
    doc = render_kubeconfig(user_doc, aad=aad, plugin=exec_plugin(sys.executable, azure.azure_tenant_id, azure.azure_client_id))
    folder = private_dir(cfg.github)
    path = folder / f"kubeconfig-{cluster_name}"
    write_private(path, yaml.safe_dump(doc, sort_keys=False))
    log.info(
        "wrote the kubeconfig for %s/%s to %s (mode 0600; %s)",
        resource_group,
        cluster_name,
        path,
        "Azure AD token through the exec plugin" if aad else "the cluster's local account",
    )

    if aad:
        token = get_aks_token(credential, doing="getting an Azure AD token for the AKS API", assignee=assignee)
        ca_file = None
        ca_data = doc["clusters"][0]["cluster"].get("certificate-authority-data")
        if ca_data:
            ca_file = folder / f"ca-{cluster_name}.crt"
            write_private(ca_file, base64.b64decode(ca_data).decode("ascii"))
        wait_for_kubernetes_access(doc, token.token, ca_file, Deadline(ACCESS_DEADLINE_SECONDS, "Kubernetes API access"), transport, sleep)
        log.info("the Kubernetes API accepts this identity")
    return path


def main(cfg: Config, words: tuple[str, ...], *, transport: Any = None) -> int:
    with gha.group("credentials: kubeconfig for the AKS cluster"):
        path = obtain_kubeconfig(cfg, transport=transport)
    resource_group, cluster_name = cluster_coordinates(cfg)
    gha.export_env(cfg.github.env_file, "KUBECONFIG", str(path))
    gha.set_outputs(cfg.github.output, {"kubeconfig": str(path), "cluster-name": cluster_name, "resource-group": resource_group})
    return EXIT_OK


# ------------------------------------------------- the exec credential plugin


def exec_credential(token: str, expires_on: int, now: float | None = None) -> dict[str, Any]:
    """The ExecCredential a Kubernetes client reads from the plugin's stdout."""
    now = dt.datetime.now(dt.timezone.utc).timestamp() if now is None else now
    renew_at = max(now, expires_on - RENEW_MARGIN_SECONDS)
    stamp = dt.datetime.fromtimestamp(renew_at, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"apiVersion": EXEC_API_VERSION, "kind": "ExecCredential", "status": {"token": token, "expirationTimestamp": stamp}}


def token_main(argv: Sequence[str] | None = None, *, github: GitHubContext | None = None, transport: Any = None, stdout: Any = None) -> int:
    """`python -m aks_ray.credentials token`: print an ExecCredential for the AKS API, nothing else on stdout."""
    from . import config

    parser = argparse.ArgumentParser(
        prog="python -m aks_ray.credentials", description="Kubernetes exec credential plugin for AKS clusters with Azure AD."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    token_parser = sub.add_parser("token", help="print an ExecCredential with an Azure AD token for the AKS server application")
    token_parser.add_argument("--tenant-id", default=None)
    token_parser.add_argument("--client-id", default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level="WARNING", stream=sys.stderr, format="aks-ray credentials: %(message)s")
    redact.install_logging()
    github = config._github_context(os.environ) if github is None else github
    gha.use_workflow_commands(github.actions or github.act)
    # Our stderr is captured by the calling client: masks go to the step's relay when there is one (maskpipe.py).
    pipe = config.mask_pipe_path()
    gha.use_mask_sink(lambda value: maskpipe.send(pipe, value))
    stdout = sys.stdout if stdout is None else stdout
    try:
        credential = build_credential(github, args.tenant_id, args.client_id, transport)
        token = get_aks_token(credential, doing="getting an Azure AD token for the AKS API", assignee=args.client_id)
    except AksRayError as exc:
        print(redact.text(f"aks-ray credentials: {exc}"), file=sys.stderr)
        return exc.exit_code
    stdout.write(json.dumps(exec_credential(token.token, token.expires_on)) + "\n")
    stdout.flush()
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(token_main())
