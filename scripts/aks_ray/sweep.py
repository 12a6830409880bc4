"""`aks-ray infra sweep`: find, and with --yes delete, resource groups whose expiry has passed.

terraform/ tags what it creates with aks-ray-expires-on (an RFC 3339 time, for a
cluster meant to be destroyed) and aks-ray-managed-by=terraform. A run that was
cancelled, or whose destroy failed, leaves its resource group behind with those
tags; this command lists every resource group in the subscription whose expiry
has passed, and deletes them only when asked with --yes. A cluster kept on
purpose (destroy-policy never) carries no expiry tag and is never listed.

Never deleted, even with --yes: a group without aks-ray-managed-by=terraform
(someone else's, that happens to carry the tag) and a group managed by another
resource (the node resource group AKS owns, which goes with its cluster).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from . import azure_errors, gha
from .config import Config
from .errors import EXIT_OK, OperationalError, UserError

log = logging.getLogger(__name__)

EXPIRES_TAG = "aks-ray-expires-on"
MANAGED_BY_TAG = ("aks-ray-managed-by", "terraform")
DELETE_TIMEOUT = 3600  # seconds for all deletions together; an AKS cluster takes 5 to 15 minutes
POLL_INTERVAL = 15


@dataclass(frozen=True)
class Group:
    name: str
    tags: Mapping[str, str]
    managed_by: str = ""
    provisioning_state: str = ""


@dataclass(frozen=True)
class Verdict:
    group: Group
    expires: dt.datetime | None
    action: str  # delete | keep | skip
    why: str


def parse_expiry(value: str) -> dt.datetime | None:
    """The tag's RFC 3339 time, or None if it is not one."""
    try:
        when = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)


def judge(groups: Iterable[Group], now: dt.datetime) -> list[Verdict]:
    """Each tagged group's fate: delete (expired and ours), keep (not expired yet) or skip (not ours to delete)."""
    verdicts = []
    key, value = MANAGED_BY_TAG
    for group in sorted(groups, key=lambda g: g.name.lower()):
        raw = group.tags.get(EXPIRES_TAG)
        if raw is None:
            continue
        expires = parse_expiry(raw)
        if expires is None:
            verdicts.append(Verdict(group, None, "skip", f"{EXPIRES_TAG}={raw!r} is not an RFC 3339 time"))
        elif expires > now:
            verdicts.append(Verdict(group, expires, "keep", f"expires in {span(expires - now)}"))
        elif group.managed_by:
            verdicts.append(Verdict(group, expires, "skip", f"managed by {group.managed_by}; it goes with that resource"))
        elif group.tags.get(key) != value:
            verdicts.append(Verdict(group, expires, "skip", f"expired, but not tagged {key}={value}: not created by aks-ray"))
        elif group.provisioning_state.lower() == "deleting":
            verdicts.append(Verdict(group, expires, "skip", "already being deleted"))
        else:
            verdicts.append(Verdict(group, expires, "delete", f"expired {span(now - expires)} ago"))
    return verdicts


def span(delta: dt.timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"


def markdown(verdicts: list[Verdict], deleting: bool) -> str:
    expired = [v for v in verdicts if v.action == "delete"]
    title = "### aks-ray infra sweep"
    if not verdicts:
        return f"{title}\n\nNo resource group carries the `{EXPIRES_TAG}` tag.\n"
    lines = [title, "", "| resource group | expires on | verdict |", "| --- | --- | --- |"]
    for v in verdicts:
        when = v.expires.strftime("%Y-%m-%dT%H:%M:%SZ") if v.expires else v.group.tags.get(EXPIRES_TAG, "")
        action = {"delete": "🗑️ deleted" if deleting else "expired: would delete", "keep": "kept", "skip": "skipped"}[v.action]
        lines.append(f"| `{v.group.name}` | {when} | {action}: {v.why} |")
    if expired and not deleting:
        lines += ["", f"{len(expired)} expired; run `aks-ray infra sweep --yes` to delete them."]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ I/O


def resource_client(cfg: Config, *, transport: Any = None, credential: Any = None) -> Any:
    from azure.mgmt.resource.resources import ResourceManagementClient

    from .credentials import build_credential

    azure = cfg.azure
    if not azure.azure_subscription_id:
        raise UserError("the subscription ID is not set.", "set --azure-subscription-id (or ARM_SUBSCRIPTION_ID).")
    credential = credential or build_credential(cfg.github, azure.azure_tenant_id, azure.azure_client_id, transport)
    kwargs = {} if transport is None else {"transport": transport}
    return ResourceManagementClient(credential, azure.azure_subscription_id, **kwargs)


def tagged_groups(client: Any) -> list[Group]:
    """Every resource group carrying the expiry tag (ARM filters by tag name on the server)."""
    groups = []
    for item in client.resource_groups.list(filter=f"tagName eq '{EXPIRES_TAG}'"):
        props = getattr(item, "properties", None)
        groups.append(
            Group(
                name=str(item.name),
                tags=dict(item.tags or {}),
                managed_by=str(getattr(item, "managed_by", None) or ""),
                provisioning_state=str(getattr(props, "provisioning_state", None) or ""),
            )
        )
    return groups


def delete_groups(client: Any, names: list[str], *, timeout: float = DELETE_TIMEOUT, poll_interval: float = POLL_INTERVAL) -> None:
    """Start every deletion, then wait for all of them until one deadline; raise if any is left."""
    from azure.core.exceptions import ResourceNotFoundError

    pollers = {}
    for name in names:
        log.info("deleting resource group %s", name)
        try:
            pollers[name] = client.resource_groups.begin_delete(name, polling_interval=poll_interval)
        except ResourceNotFoundError:
            log.info("resource group %s is already gone", name)
    deadline = time.monotonic() + timeout
    for name, poller in pollers.items():
        poller.wait(timeout=max(0.0, deadline - time.monotonic()))
        if not poller.done():
            raise OperationalError(
                f"resource group {name} was still being deleted after {timeout:.0f} s.",
                f"check it with `az group show -n {name}`; Azure goes on deleting it, or delete it with `az group delete -n {name}`.",
            )
        poller.result()
        log.info("resource group %s deleted", name)


def sweep(cfg: Config, *, transport: Any = None, credential: Any = None, now: dt.datetime | None = None) -> list[Verdict]:
    from azure.core.exceptions import AzureError

    now = now or dt.datetime.now(dt.timezone.utc)
    client = resource_client(cfg, transport=transport, credential=credential)
    doing = "listing resource groups by their aks-ray-expires-on tag"
    try:
        verdicts = judge(tagged_groups(client), now)
        for v in verdicts:
            log.info("%s: %s (%s)", v.group.name, v.action, v.why)
        expired = [v.group.name for v in verdicts if v.action == "delete"]
        if cfg.sweep.yes and expired:
            doing = f"deleting the expired resource groups {', '.join(expired)}"
            with gha.group(f"deleting {len(expired)} expired resource group(s)"):
                delete_groups(client, expired)
        elif expired:
            log.info("%d expired resource group(s); nothing deleted without --yes", len(expired))
        else:
            log.info("no expired resource group")
    except AzureError as exc:
        raise azure_errors.explain(exc, doing=doing, assignee=cfg.azure.azure_client_id) from None
    gha.append_summary(cfg.github.step_summary, markdown(verdicts, deleting=cfg.sweep.yes))
    return verdicts


def main(cfg: Config) -> int:
    verdicts = sweep(cfg)
    print(markdown(verdicts, deleting=cfg.sweep.yes), end="")
    return EXIT_OK
