"""What Azure's refusals mean for the person reading the log, and how to fix them.

The Azure SDK raises HttpResponseError / ClientAuthenticationError with the
service's own message; Terraform prints the same messages in its output. Both
go through explain(), which recognises the errors users actually meet and
turns them into an AksRayError naming the role and scope to grant, the
workflow permission to add, or the federated credential to fix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import AksRayError, OperationalError, UserError

AKS_CLUSTER_ADMIN_ROLE = "Azure Kubernetes Service RBAC Cluster Admin"
# What the pull-request identity holds on the runs' namespaces (with manifests/pull-request-rbac.yaml for the RayJobs).
AKS_RBAC_WRITER_ROLE = "Azure Kubernetes Service RBAC Writer"

# Which built-in role grants an action this project needs. Longest prefix wins.
_RBAC_ADMIN = "Role Based Access Control Administrator (limited to assigning 'Azure Kubernetes Service RBAC Cluster Admin')"
ROLE_FOR_ACTION: dict[str, str] = {
    "microsoft.containerservice/managedclusters/listclusterusercredential/action": "Azure Kubernetes Service Cluster User Role",
    "microsoft.containerservice/managedclusters/read": "Azure Kubernetes Service Cluster User Role",
    "microsoft.compute/locations/usages/read": "Reader",
    "microsoft.compute/skus/read": "Reader",
    "microsoft.authorization/roleassignments/write": _RBAC_ADMIN,
    "microsoft.authorization/roleassignments/delete": _RBAC_ADMIN,
    "microsoft.resources/subscriptions/resourcegroups/write": "Contributor",
    "microsoft.resources/subscriptions/resourcegroups/delete": "Contributor",
    "microsoft.containerservice/locations/": "Reader",
    "microsoft.containerservice/": "Contributor",
    "microsoft.resources/subscriptions/resourcegroups/read": "Reader",
}

# The state backend asked for the storage account's access keys: it does that unless
# use_azuread_auth is true, and an account with shared keys disabled refuses keys anyway.
# The fix is Azure AD auth and a data role, never a role that may read keys.
_STATE_BY_AZURE_AD = (
    "sign in to the state with Azure AD: use_azuread_auth=true in --tf-backend-config (aks-ray adds it when "
    "storage_account_name is given), and grant the pipeline's identity 'Storage Blob Data Contributor' on the state "
    "container (README, 'Terraform state'); no role that can read the account's keys is needed"
)
_LIST_KEYS = "microsoft.storage/storageaccounts/listkeys/action"

_AUTHORIZATION_FAILED = re.compile(
    r"does not have (?:authorization|permission) to perform action '(?P<action>[^']+)' over scope '(?P<scope>[^']+)'",
    re.IGNORECASE,
)
# AADSTS codes a federated (OIDC) login meets, with what they mean and the fix.
_AADSTS: dict[str, tuple[str, str]] = {
    "AADSTS70021": (
        "Azure AD found no federated credential matching this workflow's OIDC token.",
        "add a federated credential to the app registration whose subject matches this run "
        "(repo:OWNER/REPO:ref:refs/heads/BRANCH, repo:OWNER/REPO:pull_request or repo:OWNER/REPO:environment:NAME); see README, 'Azure'.",
    ),
    "AADSTS700213": (
        "Azure AD found no federated credential matching the subject of this workflow's OIDC token.",
        "add a federated credential whose subject matches this run (branch, pull_request or environment); see README, 'Azure'.",
    ),
    "AADSTS700024": (
        "The GitHub OIDC token was outside its valid time range (expired) when Azure AD received it.",
        "re-run the job; if it recurs, check the runner's clock.",
    ),
    "AADSTS700016": (
        "Azure AD has no application with this client ID in this tenant.",
        "check --azure-client-id and --azure-tenant-id (the app registration's Application and Directory IDs).",
    ),
    "AADSTS90002": ("Azure AD does not know this tenant.", "check --azure-tenant-id (the Directory ID)."),
    "AADSTS7000215": ("Azure AD refused the client secret.", "use OIDC (no secret): unset AZURE_CLIENT_SECRET and ARM_CLIENT_SECRET."),
}


@dataclass(frozen=True)
class MissingRole:
    action: str
    scope: str

    @property
    def role(self) -> str:
        action = self.action.lower()
        best = max((prefix for prefix in ROLE_FOR_ACTION if action.startswith(prefix)), key=len, default="")
        return ROLE_FOR_ACTION.get(best, "a role that allows this action (Contributor, for most)")

    def fix(self, assignee: str | None) -> str:
        who = assignee or "<client-id>"
        return (
            f"grant the role '{self.role}' on the scope {self.scope} to the pipeline's identity: "
            f'az role assignment create --assignee {who} --role "{self.role.split(" (")[0]}" --scope {self.scope}'
        )


def missing_role(text: str) -> MissingRole | None:
    match = _AUTHORIZATION_FAILED.search(text)
    return MissingRole(match.group("action"), match.group("scope")) if match else None


def aadsts_code(text: str) -> str | None:
    match = re.search(r"\bAADSTS\d+\b", text)
    return match.group(0) if match else None


def explain_text(text: str, *, doing: str, assignee: str | None = None) -> AksRayError | None:
    """An error with its fix if `text` (an SDK message or Terraform output) holds a failure we recognise."""
    role = missing_role(text)
    if (role is not None and role.action.lower() == _LIST_KEYS) or "KeyBasedAuthenticationNotPermitted" in text:
        return UserError(
            f"{doing}: Terraform's state backend tried to use the storage account's access keys, which it was refused.",
            _STATE_BY_AZURE_AD,
        )
    if "AuthorizationPermissionMismatch" in text:
        return UserError(
            f"{doing}: the state container refused the pipeline's identity (403 AuthorizationPermissionMismatch): "
            "it has no data role on the container.",
            "grant it 'Storage Blob Data Contributor' on the state container (a run that only reuses the cluster needs "
            "'Storage Blob Data Reader'): az role assignment create --assignee <client-id> --role \"Storage Blob Data Contributor\" "
            "--scope <storage account ID>/blobServices/default/containers/<container>",
        )
    if role is not None:
        return UserError(
            f"{doing}: Azure refused the action {role.action} on {role.scope} (403): the pipeline's identity lacks a role.",
            role.fix(assignee),
        )
    code = aadsts_code(text)
    if code in _AADSTS:
        problem, fix = _AADSTS[code]
        return UserError(f"{doing}: Azure AD sign-in failed ({code}). {problem}", fix)
    if "ExpiredAuthenticationToken" in text or "InvalidAuthenticationTokenTenant" in text:
        return OperationalError(
            f"{doing}: Azure Resource Manager refused an expired or foreign-tenant access token.",
            "re-run the job; if it recurs, check that --azure-tenant-id is the subscription's tenant.",
        )
    if "SubscriptionNotFound" in text or "InvalidSubscriptionId" in text:
        return UserError(
            f"{doing}: the subscription was not found or the identity cannot see it.",
            "check --azure-subscription-id and that the identity has a role in it.",
        )
    if "MissingSubscriptionRegistration" in text or "NoRegisteredProviderFound" in text:
        namespace = re.search(r"namespace '([^']+)'", text)
        ns = namespace.group(1) if namespace else "Microsoft.ContainerService"
        return UserError(
            f"{doing}: the subscription is not registered for the resource provider {ns}.",
            f"register it once (an Owner or Contributor on the subscription): az provider register --namespace {ns}",
        )
    return None


def explain(exc: BaseException, *, doing: str, assignee: str | None = None) -> AksRayError:
    """Turn an Azure SDK exception into an AksRayError with a fix; unknown errors keep their message."""
    if isinstance(exc, AksRayError):
        return exc
    text = _exception_text(exc)
    known = explain_text(text, doing=doing, assignee=assignee)
    if known is not None:
        return known
    status = getattr(exc, "status_code", None)
    if status == 403:
        return UserError(
            f"{doing}: Azure refused the request (403 Forbidden): {_first_line(text)}",
            "grant the pipeline's identity the role the README's 'Azure' section lists for this step.",
        )
    if status == 401 or type(exc).__name__ == "ClientAuthenticationError":
        return OperationalError(
            f"{doing}: Azure could not authenticate the pipeline: {_first_line(text)}",
            "check the client, tenant and subscription IDs and the federated credential (README, 'Azure'); "
            "outside GitHub Actions, sign in first with `az login`.",
        )
    return OperationalError(f"{doing}: {_first_line(text)}")


def _exception_text(exc: BaseException) -> str:
    parts = [str(exc)]
    error = getattr(exc, "error", None)
    if error is not None:
        parts.append(f"{getattr(error, 'code', '')} {getattr(error, 'message', '')}")
    return "\n".join(parts)


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "no message")
