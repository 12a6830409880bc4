"""A fake Azure (and GitHub OIDC, and AKS API server) at the HTTP boundary.

FakeAzure is azure-core's own RequestsTransport with a requests adapter that
answers from recorded-shape responses instead of the network, so the real
azure-identity and azure-mgmt code runs end to end: token requests, ARM
URLs and api-versions, response deserialisation and error mapping. Each test
states what the cloud holds (a cluster with or without Azure AD, usages,
SKUs, a missing role) and reads back what was asked of it.
"""

from __future__ import annotations

import base64
import io
import json
import re
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests
import urllib3
import yaml
from azure.core.pipeline.transport import RequestsTransport

TENANT = "11111111-1111-1111-1111-111111111111"
CLIENT = "22222222-2222-2222-2222-222222222222"
SUBSCRIPTION = "33333333-3333-3333-3333-333333333333"
OIDC_REQUEST_URL = "https://pipelines.actions.example/oidc/token?api-version=2.0"
OIDC_REQUEST_TOKEN = "github-request-token-abc123"
GITHUB_JWT = "eyJhbGciOiJSUzI1NiJ9.github-oidc-jwt.signature"
ARM_TOKEN = "arm-access-token-xyz"
AKS_TOKEN = "aks-aad-access-token-456"
API_SERVER = "https://aksray-abc123.hcp.eastus.azmk8s.io:443"
CA_PEM = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"
CLIENT_KEY = "bG9jYWwtYWNjb3VudC1wcml2YXRlLWtleQ=="

Handler = Callable[["Call"], tuple[int, Any]]


@dataclass
class Call:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    verify: Any

    @property
    def path(self) -> str:
        return urllib.parse.urlsplit(self.url).path

    @property
    def query(self) -> dict[str, str]:
        return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.url).query))

    @property
    def form(self) -> dict[str, str]:
        return dict(urllib.parse.parse_qsl(self.body.decode()))


def user_kubeconfig(aad: bool) -> str:
    """The kubeconfig listClusterUserCredential returns: kubelogin exec for Azure AD, a client certificate otherwise."""
    if aad:
        user = {
            "exec": {
                "apiVersion": "client.authentication.k8s.io/v1beta1",
                "command": "kubelogin",
                "args": ["get-token", "--server-id", "6dae42f8-4368-4678-94ff-3960e28e3630", "--login", "devicecode"],
                "env": None,
            }
        }
    else:
        user = {"client-certificate-data": "Y2VydGlmaWNhdGU=", "client-key-data": CLIENT_KEY, "token": "local-account-token-789"}
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "aksray-aks",
                "cluster": {"server": API_SERVER, "certificate-authority-data": base64.b64encode(CA_PEM.encode()).decode()},
            }
        ],
        "contexts": [{"name": "aksray-aks", "context": {"cluster": "aksray-aks", "user": "clusterUser_aksray-rg_aksray-aks"}}],
        "current-context": "aksray-aks",
        "users": [{"name": "clusterUser_aksray-rg_aksray-aks", "user": user}],
    }
    return yaml.safe_dump(doc)


def managed_cluster(aad: bool, power: str = "Running", pools: list[tuple[str, str, int]] | None = None) -> dict[str, Any]:
    pools = pools if pools is not None else [("system", "Standard_D2s_v5", 1), ("ray", "Standard_D4s_v5", 3)]
    props: dict[str, Any] = {
        "provisioningState": "Succeeded",
        "powerState": {"code": power},
        "kubernetesVersion": "1.33.2",
        "fqdn": urllib.parse.urlsplit(API_SERVER).hostname,
        "agentPoolProfiles": [{"name": n, "vmSize": s, "count": c, "mode": "System" if n == "system" else "User"} for n, s, c in pools],
        "disableLocalAccounts": aad,
    }
    if aad:
        props["aadProfile"] = {"managed": True, "enableAzureRBAC": True, "tenantID": TENANT}
    return {
        "id": f"/subscriptions/{SUBSCRIPTION}/resourceGroups/aksray-rg/providers/Microsoft.ContainerService/managedClusters/aksray-aks",
        "name": "aksray-aks",
        "type": "Microsoft.ContainerService/ManagedClusters",
        "location": "eastus",
        "properties": props,
    }


def vm_sku(name: str, family: str, vcpus: int, location: str = "eastus", restricted: bool = False) -> dict[str, Any]:
    sku: dict[str, Any] = {
        "resourceType": "virtualMachines",
        "name": name,
        "tier": "Standard",
        "size": name.removeprefix("Standard_"),
        "family": family,
        "locations": [location],
        "locationInfo": [{"location": location, "zones": ["1", "2", "3"]}],
        "capabilities": [{"name": "vCPUs", "value": str(vcpus)}, {"name": "MemoryGB", "value": str(vcpus * 4)}],
        "restrictions": [],
    }
    if restricted:
        sku["restrictions"] = [
            {
                "type": "Location",
                "values": [location],
                "restrictionInfo": {"locations": [location]},
                "reasonCode": "NotAvailableForSubscription",
            }
        ]
    return sku


def kubernetes_version(
    version: str, patches: tuple[str, ...], *, default: bool = False, preview: bool = False, lts_only: bool = False
) -> dict[str, Any]:
    """One entry of listKubernetesVersions (api-version 2024-02-01 and later): a minor version and its patches."""
    plans = ["AKSLongTermSupport"] if lts_only else ["KubernetesOfficial", "AKSLongTermSupport"]
    entry: dict[str, Any] = {
        "version": version,
        "capabilities": {"supportPlan": plans},
        "patchVersions": {patch: {"upgrades": [p for p in patches if p > patch]} for patch in patches},
    }
    if default:
        entry["isDefault"] = True
    if preview:
        entry["isPreview"] = True
    return entry


# What a region offers in December 2026: 1.33 and 1.34 only with long-term support.
KUBERNETES_VERSIONS = [
    kubernetes_version("1.33", ("1.33.9",), lts_only=True),
    kubernetes_version("1.34", ("1.34.5", "1.34.6"), lts_only=True),
    kubernetes_version("1.35", ("1.35.2", "1.35.3")),
    kubernetes_version("1.36", ("1.36.0", "1.36.1"), default=True),
    kubernetes_version("1.37", ("1.37.0",), preview=True),
]


def resource_group(name: str, tags: dict[str, str] | None = None, managed_by: str = "", state: str = "Succeeded") -> dict[str, Any]:
    """A resource group as ARM returns it (GET, or an item of the list)."""
    group: dict[str, Any] = {
        "id": f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{name}",
        "name": name,
        "type": "Microsoft.Resources/resourceGroups",
        "location": "eastus",
        "tags": tags or {},
        "properties": {"provisioningState": state},
    }
    if managed_by:
        group["managedBy"] = managed_by
    return group


def usage(name: str, label: str, current: int, limit: int) -> dict[str, Any]:
    return {"unit": "Count", "currentValue": current, "limit": limit, "name": {"value": name, "localizedValue": label}}


def authorization_failed(action: str, scope: str) -> tuple[int, Any]:
    return 403, {
        "error": {
            "code": "AuthorizationFailed",
            "message": f"The client '{CLIENT}' with object id '44444444-4444-4444-4444-444444444444' does not have authorization "
            f"to perform action '{action}' over scope '{scope}' or the scope is invalid. "
            "If access was recently granted, please refresh your credentials.",
        }
    }


@dataclass
class FakeAzure:
    """What the cloud holds; `transport()` gives an azure-core transport that serves it."""

    aad: bool = True
    power: str = "Running"
    cluster_exists: bool = True
    pools: list[tuple[str, str, int]] | None = None
    skus: list[dict[str, Any]] = field(default_factory=list)
    usages: list[dict[str, Any]] = field(default_factory=list)
    # Kubernetes API answers 403 this many times before 200 (a role assignment on its way).
    k8s_forbidden_times: int = 0
    # The namespaces the identity may use, as a namespace-scoped role grants them; None: all (a cluster-wide role).
    k8s_namespaces_allowed: tuple[str, ...] | None = None
    # Overrides, by route name: a (status, body) to answer instead of the normal one.
    failures: dict[str, tuple[int, Any]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    aks_token_lifetime: int = 3600
    kubernetes_versions: list[dict[str, Any]] = field(default_factory=lambda: list(KUBERNETES_VERSIONS))
    # Resource groups by name (resource_group() shapes); a DELETE answers 202 and the group
    # is gone after `delete_polls` polls of the operation (or never, with -1).
    resource_groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    delete_polls: int = 1
    deleted: list[str] = field(default_factory=list)
    _deleting: dict[str, int] = field(default_factory=dict)

    def transport(self) -> RequestsTransport:
        session = requests.Session()
        adapter = _Adapter(self)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        return RequestsTransport(session=session, session_owner=False)

    def called(self, route: str) -> list[Call]:
        return [c for c in self.calls if _route(c) == route]

    # -------------------------------------------------------------- routing

    def answer(self, call: Call) -> tuple[int, Any]:
        route = _route(call)
        self.calls.append(call)
        if route in self.failures:
            return self.failures[route]
        return getattr(self, f"_{route}")(call)

    def _github_oidc(self, call: Call) -> tuple[int, Any]:
        if call.headers.get("Authorization") != f"Bearer {OIDC_REQUEST_TOKEN}":
            return 401, {"message": "bad request token"}
        if call.query.get("audience") != "api://AzureADTokenExchange":
            return 400, {"message": "wrong audience"}
        return 200, {"count": 1, "value": GITHUB_JWT}

    def _aad_token(self, call: Call) -> tuple[int, Any]:
        form = call.form
        if (
            form.get("client_assertion") != GITHUB_JWT
            or form.get("client_id") != CLIENT
            or form.get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        ):
            return 400, {
                "error": "invalid_client",
                "error_description": "AADSTS70021: No matching federated identity record found for presented assertion.",
            }
        scope = form.get("scope", "")
        token = AKS_TOKEN if scope.startswith("6dae42f8-4368-4678-94ff-3960e28e3630") else ARM_TOKEN
        lifetime = self.aks_token_lifetime if token == AKS_TOKEN else 3600
        return 200, {"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime, "access_token": token}

    def _arm_check(self, call: Call) -> tuple[int, Any] | None:
        if call.headers.get("Authorization") != f"Bearer {ARM_TOKEN}":
            return 401, {"error": {"code": "InvalidAuthenticationToken", "message": "The access token is invalid."}}
        return None

    def _managed_cluster(self, call: Call) -> tuple[int, Any]:
        if (refused := self._arm_check(call)) is not None:
            return refused
        if not self.cluster_exists:
            return 404, {
                "error": {
                    "code": "ResourceNotFound",
                    "message": "The Resource 'Microsoft.ContainerService/managedClusters/aksray-aks' was not found.",
                }
            }
        return 200, managed_cluster(self.aad, self.power, self.pools)

    def _list_user_credential(self, call: Call) -> tuple[int, Any]:
        if (refused := self._arm_check(call)) is not None:
            return refused
        value = base64.b64encode(user_kubeconfig(self.aad).encode()).decode()
        return 200, {"kubeconfigs": [{"name": "clusterUser", "value": value}]}

    def _skus(self, call: Call) -> tuple[int, Any]:
        if (refused := self._arm_check(call)) is not None:
            return refused
        location = re.search(r"location eq '([^']+)'", call.query.get("$filter", ""))
        wanted = location.group(1) if location else None
        return 200, {"value": [s for s in self.skus if wanted is None or wanted in s["locations"]]}

    def _usages(self, call: Call) -> tuple[int, Any]:
        if (refused := self._arm_check(call)) is not None:
            return refused
        return 200, {"value": self.usages}

    def _kubernetes_versions(self, call: Call) -> tuple[int, Any]:
        if (refused := self._arm_check(call)) is not None:
            return refused
        return 200, {"values": self.kubernetes_versions}

    def _resource_groups(self, call: Call) -> tuple[int, Any]:
        if (refused := self._arm_check(call)) is not None:
            return refused
        wanted = re.search(r"tagName eq '([^']+)'", call.query.get("$filter", ""))
        groups = [g for g in self.resource_groups.values() if wanted is None or wanted.group(1) in (g.get("tags") or {})]
        return 200, {"value": groups}

    def _resource_group(self, call: Call) -> tuple[int, Any, dict[str, str]] | tuple[int, Any]:
        if (refused := self._arm_check(call)) is not None:
            return refused
        name = urllib.parse.unquote(call.path.rsplit("/", 1)[1])
        group = self.resource_groups.get(name)
        if group is None:
            return 404, {"error": {"code": "ResourceGroupNotFound", "message": f"Resource group '{name}' could not be found."}}
        if call.method == "GET":
            return 200, group
        if call.method == "DELETE":
            group["properties"]["provisioningState"] = "Deleting"
            self._deleting[name] = self.delete_polls
            location = f"https://management.azure.com/subscriptions/{SUBSCRIPTION}/operationresults/delete-{name}?api-version=2025-04-01"
            # ARM says Retry-After: 15; 1 keeps tests quick (0 would make azure-core fall back to its own interval).
            return 202, None, {"Location": location, "Retry-After": "1"}
        raise AssertionError(f"the fake has no {call.method} for resource groups")

    def _operation_result(self, call: Call) -> tuple[int, Any, dict[str, str]] | tuple[int, Any]:
        if (refused := self._arm_check(call)) is not None:
            return refused
        name = call.path.rsplit("/", 1)[1].removeprefix("delete-")
        left = self._deleting.get(name, 0)
        if left != 0:
            self._deleting[name] = left - 1
            return 202, None, {"Location": call.url, "Retry-After": "1"}
        self.resource_groups.pop(name, None)
        self.deleted.append(name)
        return 200, None, {}

    def _k8s_namespaces(self, call: Call) -> tuple[int, Any]:
        if call.headers.get("Authorization") != f"Bearer {AKS_TOKEN}":
            return 401, {"kind": "Status", "code": 401, "reason": "Unauthorized"}
        if self.k8s_forbidden_times > 0:
            self.k8s_forbidden_times -= 1
            return 403, {
                "kind": "Status",
                "code": 403,
                "reason": "Forbidden",
                "message": 'namespaces is forbidden: User "x" cannot list resource',
            }
        namespace = re.fullmatch(r"/api/v1/namespaces/([^/]+)/pods", call.path)
        allowed = self.k8s_namespaces_allowed
        if allowed is not None and (namespace is None or namespace.group(1) not in allowed):
            what = f'in the namespace "{namespace.group(1)}"' if namespace else "at the cluster scope"
            return 403, {"kind": "Status", "code": 403, "reason": "Forbidden", "message": f'pods is forbidden: User "x" cannot list {what}'}
        if namespace:
            return 200, {"kind": "PodList", "items": []}
        return 200, {"kind": "NamespaceList", "items": [{"metadata": {"name": "default"}}]}


def _route(call: Call) -> str:
    path = call.path
    if "/oidc/token" in path:
        return "github_oidc"
    if path.endswith("/oauth2/v2.0/token"):
        return "aad_token"
    if path.endswith("/listClusterUserCredential"):
        return "list_user_credential"
    if re.search(r"/providers/Microsoft\.ContainerService/managedClusters/[^/]+$", path):
        return "managed_cluster"
    if re.search(r"/providers/Microsoft\.ContainerService/locations/[^/]+/kubernetesVersions$", path):
        return "kubernetes_versions"
    if re.search(r"^/subscriptions/[^/]+/resourcegroups$", path, re.IGNORECASE):
        return "resource_groups"
    if re.search(r"^/subscriptions/[^/]+/resourcegroups/[^/]+$", path, re.IGNORECASE):
        return "resource_group"
    if re.search(r"^/subscriptions/[^/]+/operationresults/[^/]+$", path, re.IGNORECASE):
        return "operation_result"
    if path.endswith("/providers/Microsoft.Compute/skus"):
        return "skus"
    if re.search(r"/providers/Microsoft\.Compute/locations/[^/]+/usages$", path):
        return "usages"
    if path == "/api/v1/namespaces" or re.fullmatch(r"/api/v1/namespaces/[^/]+/pods", path):
        return "k8s_namespaces"
    raise AssertionError(f"the fake cloud has no route for {call.method} {call.url}")


class _Adapter(requests.adapters.BaseAdapter):
    def __init__(self, cloud: FakeAzure) -> None:
        super().__init__()
        self.cloud = cloud

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        body = request.body or b""
        call = Call(request.method, request.url, dict(request.headers), body.encode() if isinstance(body, str) else bytes(body), verify)
        status, payload, *extra = self.cloud.answer(call)
        content = b"" if payload is None else json.dumps(payload).encode()
        response = requests.Response()
        response.status_code = status
        response.reason = {200: "OK", 202: "Accepted", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found"}.get(
            status, "Error"
        )
        response.headers = requests.structures.CaseInsensitiveDict(
            {
                "Content-Type": "application/json; charset=utf-8",
                "Content-Length": str(len(content)),
                "x-ms-request-id": f"fake-{time.monotonic_ns()}",
                **(extra[0] if extra else {}),
            }
        )
        response.raw = urllib3.HTTPResponse(body=io.BytesIO(content), headers=dict(response.headers), status=status, preload_content=False)
        response._content = content
        response.encoding = "utf-8"
        response.url = request.url
        response.request = request
        return response

    def close(self) -> None:
        pass


def actions_environ(tmp_path, **overrides: str | None) -> dict[str, str]:
    """The environment of a GitHub Actions step of the aks target; an override of None removes a variable."""
    (tmp_path / "gh").mkdir(exist_ok=True)
    environ = {
        "AKS_RAY_TARGET": "aks",
        "AKS_RAY_OUTPUT_DIR": str(tmp_path / "out"),
        "ARM_SUBSCRIPTION_ID": SUBSCRIPTION,
        "ARM_TENANT_ID": TENANT,
        "ARM_CLIENT_ID": CLIENT,
        "GITHUB_ACTIONS": "true",
        "GITHUB_OUTPUT": str(tmp_path / "gh" / "output"),
        "GITHUB_ENV": str(tmp_path / "gh" / "env"),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "gh" / "summary.md"),
        "GITHUB_RUN_ID": "9876543210",
        "RUNNER_TEMP": str(tmp_path / "runner-temp"),
        "ACTIONS_ID_TOKEN_REQUEST_URL": OIDC_REQUEST_URL,
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN": OIDC_REQUEST_TOKEN,
    }
    for key, value in overrides.items():
        if value is None:
            environ.pop(key, None)
        else:
            environ[key] = value
    return environ
