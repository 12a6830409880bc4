"""The sandbox a run's training code cannot leave, rendered as Kubernetes objects.

The code a run trains is untrusted by construction (every pull request writes
it), and it runs in pods beside other runs on one long-lived cluster. So:

- Pods: no service-account token (automountServiceAccountToken: false), a
  numeric non-root user (uid 1000, gid 100: the rayproject/ray image's `ray`
  user), no privilege escalation, every capability dropped, the runtime's
  default seccomp profile. These sit in manifests/rayjob.yaml for the head,
  worker and submitter pods; KubeRay copies the Ray container's securityContext
  to the init containers it adds (wait-gcs-ready).
- The namespace is labelled to enforce the `restricted` Pod Security Standard,
  so the API server itself refuses any pod of the run that breaks the rules
  above, whatever creates it. A namespace that already exists without the
  label is reported, not changed: relabelling a shared namespace is the
  cluster owner's decision (and needs rights a pull request's identity lacks).
- A ResourceQuota and a LimitRange for the namespace (created when it has none):
  a run cannot take the whole cluster, and every container gets requests and
  limits even where KubeRay adds one.
- A NetworkPolicy per run: ingress only from the run's own pods and the
  KubeRay operator's namespace (the operator polls the head's dashboard);
  egress only to the run's own pods, the cluster DNS, and addresses outside
  --egress-blocked-cidrs (instance metadata, private ranges, and the API
  server's own address, added at submit time). Other runs' Ray clusters, the
  API server, the nodes and the metadata endpoint are out of reach; the
  internet is not (pip, the MNIST mirror). Kubernetes ANDs nothing here: rules
  are a union, so the run's own pods are allowed although they sit in a
  blocked private range. A cluster without a policy engine accepts the object
  and enforces nothing (AKS with Cilium, as terraform/ creates it, enforces it).

The quota and limit range belong to the namespace, not to the run: cleanup
leaves them, as it leaves the namespace. The NetworkPolicy belongs to the run
(its labels): it is created before the RayJob, so no pod of the run ever runs
without it, and cleanup deletes it by the run's label.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import urllib.parse
from typing import Any

from .config import Config

log = logging.getLogger(__name__)

POD_SECURITY_LABEL = "pod-security.kubernetes.io/enforce"
POD_SECURITY_LEVEL = "restricted"
# The Pod Security Standard version the label pins: "latest" follows the API server's own.
POD_SECURITY_VERSION_LABEL = "pod-security.kubernetes.io/enforce-version"

QUOTA_NAME = "aks-ray"
LIMIT_RANGE_NAME = "aks-ray"
# Given to a container that states no resources of its own (KubeRay states them for its own).
DEFAULT_CONTAINER_REQUEST = {"cpu": "100m", "memory": "128Mi"}
DEFAULT_CONTAINER_LIMIT = {"cpu": "1", "memory": "1Gi"}

DNS_NAMESPACE = "kube-system"
DNS_POD_LABELS = {"k8s-app": "kube-dns"}  # CoreDNS on AKS, kind and the project's local cluster
# CoreDNS's container port names (its own manifests, AKS's and kind's): name -> protocol.
DNS_PORT_NAMES = {"dns": "UDP", "dns-tcp": "TCP"}
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"  # set by the API server on every namespace


def network_policy_name(job_name: str) -> str:
    return f"{job_name}-sandbox"


def namespace_labels() -> dict[str, str]:
    return {POD_SECURITY_LABEL: POD_SECURITY_LEVEL, POD_SECURITY_VERSION_LABEL: "latest"}


def render_quota(cfg: Config, namespace: str, labels: dict[str, str]) -> dict[str, Any] | None:
    if not cfg.kube.namespace_quota:
        return None
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": QUOTA_NAME, "namespace": namespace, "labels": labels},
        "spec": {"hard": dict(cfg.kube.namespace_quota)},
    }


def render_limit_range(namespace: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": {"name": LIMIT_RANGE_NAME, "namespace": namespace, "labels": labels},
        "spec": {
            "limits": [{"type": "Container", "defaultRequest": dict(DEFAULT_CONTAINER_REQUEST), "default": dict(DEFAULT_CONTAINER_LIMIT)}]
        },
    }


def _peer_ip_block(blocked: tuple[str, ...], family: int) -> dict[str, Any] | None:
    everything = "0.0.0.0/0" if family == 4 else "::/0"
    # Kubernetes requires every `except` to lie inside the block's own range.
    inside = [cidr for cidr in blocked if ipaddress.ip_network(cidr).version == family]
    block: dict[str, Any] = {"cidr": everything}
    if inside:
        if everything in inside:
            return None
        block["except"] = inside
    return {"ipBlock": block}


def render_network_policy(cfg: Config, job_name: str, namespace: str, labels: dict[str, str], run_label: tuple[str, str]) -> dict[str, Any]:
    """The run's NetworkPolicy: see the module's docstring for what it allows."""

    def own_pods() -> dict[str, Any]:  # a fresh dict per use: a shared one would print as a YAML alias
        return {"podSelector": {"matchLabels": {run_label[0]: run_label[1]}}}

    operator = {"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: cfg.kube.operator_namespace}}}
    dns = {
        "namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: DNS_NAMESPACE}},
        "podSelector": {"matchLabels": dict(DNS_POD_LABELS)},
    }
    # A policy's port is the DNS pod's own port (after the Service's translation): 53 on AKS and kind, but
    # CoreDNS may listen elsewhere (the project's local cluster: 1053, as non-root). Its container ports'
    # standard names cover that; the numbers cover a DNS pod that names none.
    dns_ports = [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
    dns_ports += [{"protocol": protocol, "port": name} for name, protocol in DNS_PORT_NAMES.items()]
    internet = [
        block for block in (_peer_ip_block(cfg.kube.egress_blocked_cidrs, 4), _peer_ip_block(cfg.kube.egress_blocked_cidrs, 6)) if block
    ]
    egress: list[dict[str, Any]] = [{"to": [own_pods()]}, {"to": [dns], "ports": dns_ports}]
    if internet:
        egress.append({"to": internet})
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": network_policy_name(job_name), "namespace": namespace, "labels": labels},
        "spec": {
            "podSelector": {"matchLabels": {run_label[0]: run_label[1]}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [own_pods(), operator]}],
            "egress": egress,
        },
    }


def block_addresses(policy: dict[str, Any], addresses: list[str]) -> list[str]:
    """Add these addresses (the API server's) to the policy's blocked ranges; returns the CIDRs added."""
    added = []
    for rule in policy["spec"]["egress"]:
        for peer in rule.get("to", []):
            block = peer.get("ipBlock")
            if not block:
                continue
            version = ipaddress.ip_network(block["cidr"]).version
            for address in addresses:
                ip = ipaddress.ip_address(address)
                if ip.version != version:
                    continue
                cidr = f"{ip}/{32 if version == 4 else 128}"
                ranges = [ipaddress.ip_network(c) for c in block.get("except", [])]
                if not any(ip in network for network in ranges):
                    block.setdefault("except", []).append(cidr)
                    added.append(cidr)
    return added


def api_server_addresses(server_url: str, resolve: Any = socket.getaddrinfo) -> list[str]:
    """The IP addresses the API server's URL (from the kubeconfig) resolves to; none if it does not resolve."""
    host = urllib.parse.urlsplit(server_url).hostname or ""
    if not host:
        return []
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    try:
        infos = resolve(host, None, type=socket.SOCK_STREAM)
    except OSError as exc:
        log.warning("could not resolve the API server %s to block it from the training pods: %s", host, exc)
        return []
    return sorted({info[4][0] for info in infos})


def namespace_is_enforced(namespace: dict[str, Any] | None) -> bool:
    labels = ((namespace or {}).get("metadata") or {}).get("labels") or {}
    return labels.get(POD_SECURITY_LABEL) == POD_SECURITY_LEVEL


# ----------------------------------------------------------------- I/O part
