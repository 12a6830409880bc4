"""Signing in to Azure with no stored secret, for every step that talks to Azure (preflight, infra, credentials, the exec plugin).

In GitHub Actions the job's OIDC token (audience api://AzureADTokenExchange)
is exchanged for an Azure AD token through azure-identity's
ClientAssertionCredential; elsewhere DefaultAzureCredential (`az login`,
environment, managed identity). Every token that passes through code of ours
is masked (::add-mask::) the moment it exists.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from . import azure_errors, gha
from .config import GitHubContext
from .errors import AksRayError, OperationalError, UserError

# The AKS Azure AD server application, the same in every tenant.
AKS_SERVER_APP_ID = "6dae42f8-4368-4678-94ff-3960e28e3630"
AKS_SCOPE = f"{AKS_SERVER_APP_ID}/.default"
GITHUB_OIDC_AUDIENCE = "api://AzureADTokenExchange"

OIDC_PERMISSION_FIX = (
    "give the job `permissions: id-token: write` (and `contents: read`) in the workflow, "
    "so GitHub can issue the OIDC token that Azure trusts; pull requests from forks never get one."
)


def transport_kwargs(transport: Any) -> dict[str, Any]:
    """The keyword that hands an azure-core transport to a client (the tests' fake Azure), or nothing."""
    return {} if transport is None else {"transport": transport}


def require_oidc(github: GitHubContext, who: str) -> None:
    """In GitHub Actions (not act), refuse to go on without an OIDC token request: there is no other way in."""
    if github.actions and not github.act and not (github.oidc_request_url and github.oidc_request_token):
        raise UserError(f"this GitHub Actions job cannot request an OIDC token, so {who} cannot sign in to Azure.", OIDC_PERMISSION_FIX)


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
    client = PipelineClient(base_url=url, policies=[RetryPolicy(retry_total=3, retry_backoff_factor=1.0)], **transport_kwargs(transport))
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

        require_oidc(github, "aks-ray")
        if not tenant_id or not client_id:
            raise UserError(
                "OIDC sign-in needs the tenant and client IDs.",
                "set the action's azure-tenant-id and azure-client-id inputs (or ARM_TENANT_ID/ARM_CLIENT_ID).",
            )
        return MaskingCredential(
            ClientAssertionCredential(tenant_id, client_id, lambda: github_oidc_token(github, transport), **transport_kwargs(transport))
        )
    from azure.identity import DefaultAzureCredential

    kwargs: dict[str, Any] = transport_kwargs(transport)
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
