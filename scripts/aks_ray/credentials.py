"""`aks-ray credentials`: a kubeconfig for the AKS cluster, with no stored secret.

Sign-in is azure_auth's (GitHub OIDC in Actions, DefaultAzureCredential
elsewhere). The kubeconfig comes from the cluster's
listClusterUserCredential. For a cluster with Azure AD integration (this
project's Terraform disables local accounts) that kubeconfig would need the
kubelogin binary; instead its user is replaced by the exec credential plugin
beside this module (exec_plugin.py), which runs this package's own Python:

    python -m aks_ray.exec_plugin --azure-tenant-id T --azure-client-id C

Why a plugin and not the token itself: the token lasts about an hour, a run
can last longer, and every Kubernetes client used here (the Python client,
helm, kubectl) calls the plugin again when the expirationTimestamp passes, so
renewal needs no code in the callers; and no bearer token ever rests on disk.

The file goes to $RUNNER_TEMP (or a private temporary folder) with mode 0600;
every secret is masked (::add-mask::) the moment it exists and is never
printed or put into an output. KUBECONFIG is exported to later steps.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from . import azure_errors, exec_plugin, gha
from .azure_auth import build_credential, get_aks_token, transport_kwargs
from .config import Config, GitHubContext
from .errors import EXIT_OK, AksRayError, OperationalError, UserError
from .retry import Deadline, wait_until

log = logging.getLogger(__name__)

# Azure RBAC role assignments on a new cluster take a few minutes to reach it.
ACCESS_DEADLINE_SECONDS = 600
KUBECONFIG_SECRET_FIELDS = ("token", "client-key-data", "client-certificate-data", "password")


# ----------------------------------------------------------- kubeconfig


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
    namespace: str,
    transport: Any = None,
    sleep: Callable[[float], None] | None = None,
) -> None:
    """Wait until the API server lets this identity list the pods of the run's namespace.

    A role assignment made by Terraform moments ago takes minutes to reach a
    new cluster; a 403 until then is expected, a 403 after the deadline is not.
    The run's namespace, not the cluster: the pull-request identity may use only
    that namespace (a namespace that does not exist yet lists empty, with 200).
    """
    from azure.core import PipelineClient
    from azure.core.exceptions import ServiceRequestError
    from azure.core.rest import HttpRequest

    server = doc["clusters"][0]["cluster"]["server"].rstrip("/")
    url = f"{server}/api/v1/namespaces/{namespace}/pods?limit=1"
    client = PipelineClient(base_url=server, **transport_kwargs(transport))
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
            f"give the cluster identity the role '{azure_errors.AKS_CLUSTER_ADMIN_ROLE}' on the cluster "
            "(Terraform's grant_deployer_cluster_admin or cluster_admin_object_ids), or the pull-request identity "
            f"'{azure_errors.AKS_RBAC_WRITER_ROLE}' on namespace {namespace} and manifests/pull-request-rbac.yaml "
            "(README, 'Two identities'), then re-run.",
        ) from None


# ----------------------------------------------------------------- main


def cluster_coordinates(cfg: Config) -> tuple[str, str]:
    """(resource group, cluster name): from the infra step's state file if there is one, else from the options."""
    state = cfg.run_dir.load_infra()
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
    client = ContainerServiceClient(credential, azure.azure_subscription_id, **transport_kwargs(transport))
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
    doc = render_kubeconfig(
        user_doc, aad=aad, plugin=exec_plugin.kubeconfig_user(sys.executable, azure.azure_tenant_id, azure.azure_client_id)
    )
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
        wait_for_kubernetes_access(
            doc, token.token, ca_file, Deadline(ACCESS_DEADLINE_SECONDS, "Kubernetes API access"), cfg.kube.namespace, transport, sleep
        )
        log.info("the Kubernetes API accepts this identity")
    return path


def main(cfg: Config, *, transport: Any = None) -> int:
    if cfg.azure.infra_mode == "skip":
        # skip makes no Azure call at all: the cluster is reached through the kubeconfig given.
        if cfg.kube.kubeconfig is None:
            raise UserError(
                "--infra-mode skip makes no Azure calls, so it needs a kubeconfig for the cluster.",
                "set --kubeconfig (or KUBECONFIG), or use --infra-mode reuse to fetch one.",
            )
        log.info("infra-mode is skip: using the kubeconfig %s, no Azure call", cfg.kube.kubeconfig)
        return EXIT_OK
    with gha.group("credentials: kubeconfig for the AKS cluster"):
        path = obtain_kubeconfig(cfg, transport=transport)
    resource_group, cluster_name = cluster_coordinates(cfg)
    gha.export_env(cfg.github.env_file, "KUBECONFIG", str(path))
    gha.set_outputs(cfg.github.output, {"kubeconfig": str(path), "cluster-name": cluster_name, "resource-group": resource_group})
    return EXIT_OK
