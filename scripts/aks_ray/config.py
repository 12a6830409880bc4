"""The one place that reads the environment: flags + environment -> a frozen Config.

Every option is declared once, as a dataclass field whose metadata carries its
flag, its help text and its parser. From that one declaration come the CLI
flag (`--epochs`), the environment variable (`AKS_RAY_EPOCHS`, which is how the
composite action passes its `epochs` input), the default shown in `--help`, and
the validation. A flag beats the environment, which beats the default.

Validation collects every problem before raising, so a user fixes all of them
in one go; nothing has been started or created at that point (exit 2).
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import os
import re
import urllib.parse
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import versions
from .errors import ConfigError
from .redact import SECRET_NAME
from .rundir import RunDir

ENV_PREFIX = "AKS_RAY_"
# The composite action hands every step its inputs as one JSON document
# (`AKS_RAY_INPUTS: ${{ toJSON(inputs) }}`), keyed by input name, which is the
# option's flag name. A non-empty input counts as AKS_RAY_<OPTION> would.
INPUTS_ENV = "AKS_RAY_INPUTS"
# Where the exec plugin, a child of a child of a step, sends the masks of the tokens it mints (maskpipe.py).
MASK_PIPE_ENV = "AKS_RAY_MASK_PIPE"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TRAINING_DIR = PROJECT_ROOT / "training"
DEFAULT_TERRAFORM_DIR = PROJECT_ROOT / "terraform"

TARGETS = ("local", "kubeconfig", "aks")
INFRA_MODES = ("apply", "reuse", "skip")
# The events whose runs may carry a pull request's code (pull_request_target checks out the base, but a workflow
# that checks out the head runs it with the base's secrets and identity).
PULL_REQUEST_EVENTS = ("pull_request", "pull_request_target")
DESTROY_POLICIES = ("never", "always", "on-success")
DATASETS = ("auto", "full", "sample")

# The Ray node pool's label and taint; terraform/ gives the pool exactly these
# and the RayJob selects and tolerates them on the aks target.
RAY_POOL_LABEL = ("aks-ray.io/pool", "ray")
RAY_POOL_TAINT = ("aks-ray.io/pool", "ray", "NoSchedule")

# What training code may not reach: link-local (the instance metadata endpoint
# 169.254.169.254), Azure's host address (168.63.129.16: DNS, DHCP, health
# probes, the WireServer), and every private and carrier-grade NAT range,
# which holds AKS's default pod (10.244.0.0/16), service (10.0.0.0/16) and
# node (10.224.0.0/12) ranges and other runs' pods. The internet stays open
# (pip, the MNIST mirror).
# IPv6: unique-local (AKS's dual-stack pod range) and link-local.
DEFAULT_EGRESS_BLOCKED = "169.254.0.0/16,168.63.129.16/32,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,100.64.0.0/10,fc00::/7,fe80::/10"
# Room for a few concurrent runs of the default size, and a stop for a runaway loop of submissions.
DEFAULT_NAMESPACE_QUOTA = "pods=60,requests.cpu=48,requests.memory=192Gi,limits.memory=192Gi,count/rayjobs.ray.io=10"
KEEP_CLUSTER_MAX_SECONDS = 7 * 24 * 3600

# Characters that mean something to a shell. No input has a use for them, and
# rejecting them up front closes the door on injection through workflow inputs.
SHELL_METACHARACTERS = set(";|&$`<>(){}[]!*?\\'\"\n\r")


class Invalid(ValueError):
    """A parser's complaint: what is wrong and how to fix it."""

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.fix = fix


# ---------------------------------------------------------------- parsers
# Each takes the raw string and returns the typed value or raises Invalid.


def parse_str(raw: str) -> str:
    return raw.strip()


def parse_optional_str(raw: str) -> str | None:
    return raw.strip() or None


def parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise Invalid(f"{raw!r} is not a boolean", "use true or false")


def int_in_range(low: int, high: int | None = None) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise Invalid(f"{raw!r} is not a whole number", f"use a whole number of at least {low}") from None
        if value < low or (high is not None and value > high):
            bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise Invalid(f"{value} is out of range", f"use a whole number {bounds}")
        return value

    return parse


def optional_int_in_range(low: int, high: int | None = None) -> Callable[[str], int | None]:
    inner = int_in_range(low, high)
    return lambda raw: inner(raw) if raw.strip() else None


def parse_positive_float(raw: str) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        raise Invalid(f"{raw!r} is not a number", "use a positive number such as 0.001") from None
    if not value > 0:
        raise Invalid(f"{value} is not positive", "use a positive number such as 0.001")
    return value


_DURATION = re.compile(r"^(\d+)\s*([smh]?)$")


def parse_duration(raw: str) -> int:
    """Seconds from '900', '900s', '15m' or '2h'."""
    match = _DURATION.match(raw.strip().lower())
    if not match or int(match.group(1)) == 0:
        raise Invalid(f"{raw!r} is not a duration", "use seconds (900) or a number with s, m or h (15m, 2h)")
    return int(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


def choice(*options: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in options:
            raise Invalid(f"{raw!r} is not one of {', '.join(options)}", f"use one of: {', '.join(options)}")
        return value

    return parse


def parse_path(raw: str) -> Path:
    return Path(raw.strip()).expanduser()


def parse_optional_path(raw: str) -> Path | None:
    return parse_path(raw) if raw.strip() else None


_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def parse_dns_label(raw: str) -> str:
    value = raw.strip()
    if len(value) > 63 or not _DNS_LABEL.match(value):
        raise Invalid(
            f"{raw!r} is not a valid Kubernetes name",
            "use at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit",
        )
    return value


def parse_namespaces(raw: str) -> tuple[str, ...]:
    """'aks-ray-pr,ml-pr' -> the namespaces, each a Kubernetes name; at least one."""
    names = tuple(parse_dns_label(part) for part in raw.split(",") if part.strip())
    if not names:
        raise Invalid("no namespace is given", "give at least one namespace, such as aks-ray-pr")
    return names


def parse_optional_dns_label(raw: str) -> str | None:
    return parse_dns_label(raw) if raw.strip() else None


# KubeRay 1.7 refuses a RayJob whose name is not a DNS-1035 label (a letter first) or is longer
# than 47 characters (MaxRayJobNameLength: 53 for a RayCluster's name, less the 6 of the
# "-xxxxx" it appends), writing jobDeploymentStatus ValidationFailed (utils/validation.go).
RAYJOB_NAME_MAX = 47
_DNS_1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def parse_optional_rayjob_name(raw: str) -> str | None:
    value = raw.strip()
    if not value:
        return None
    if len(value) > RAYJOB_NAME_MAX or not _DNS_1035_LABEL.match(value):
        raise Invalid(
            f"{raw!r} is not a name KubeRay accepts for a RayJob ({len(value)} characters)",
            f"use at most {RAYJOB_NAME_MAX} lowercase letters, digits and '-', starting with a letter and ending with a letter "
            "or digit (a DNS-1035 label, as KubeRay checks it), or leave it empty for a unique name per run",
        )
    return value


# Kueue v0.17 checks a RayJob's queue label as the name of a LocalQueue: a DNS-1123 subdomain
# (jobframework.ValidateQueueName, IsDNS1123Subdomain); being a label value, it has at most 63 characters.
QUEUE_NAME_MAX = 63
_DNS_1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def parse_optional_queue_name(raw: str) -> str | None:
    value = raw.strip()
    if not value:
        return None
    if len(value) > QUEUE_NAME_MAX or not _DNS_1123_SUBDOMAIN.match(value):
        raise Invalid(
            f"{raw!r} is not a name Kueue accepts for a LocalQueue ({len(value)} characters)",
            f"use the name of a LocalQueue in --namespace (kubectl get localqueues -n <namespace>): at most {QUEUE_NAME_MAX} "
            "lowercase letters, digits, '-' and '.', starting and ending with a letter or digit, or leave it empty for no queue",
        )
    return value


def parse_optional_duration(raw: str) -> int | None:
    return parse_duration(raw) if raw.strip() else None


_QUANTITY = re.compile(r"^\d+(\.\d+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$")


def parse_quantity(raw: str) -> str:
    value = raw.strip()
    if not _QUANTITY.match(value):
        raise Invalid(f"{raw!r} is not a Kubernetes memory quantity", "use a value such as 2Gi or 512Mi")
    return value


_CPU_QUANTITY = re.compile(r"^(\d+(\.\d{1,3})?|\d+m)$")


def millicpus(quantity: str) -> int:
    """A CPU quantity that cpu_quantity_in_range accepted ("2", "0.5", "500m"), in millicores."""
    if quantity.endswith("m"):
        return int(quantity[:-1])
    return round(float(quantity) * 1000)


def cpu_quantity_in_range(low_milli: int, high_milli: int) -> Callable[[str], str]:
    """A Kubernetes CPU quantity: whole CPUs, a decimal or millicores."""

    def parse(raw: str) -> str:
        value = raw.strip()
        if not _CPU_QUANTITY.match(value):
            raise Invalid(f"{raw!r} is not a Kubernetes CPU quantity", "use whole CPUs (1), a decimal (0.5) or millicores (500m)")
        milli = millicpus(value)
        if not low_milli <= milli <= high_milli:
            raise Invalid(f"{value} is out of range", f"use between {low_milli}m and {high_milli // 1000} CPUs")
        return value

    return parse


def parse_optional_uuid(raw: str) -> str | None:
    value = raw.strip()
    if not value:
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise Invalid(f"{raw!r} is not a GUID", "copy the ID from the Azure portal (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)") from None


_AZURE_LOCATION = re.compile(r"^[a-z][a-z0-9]{2,30}$")


def parse_azure_location(raw: str) -> str:
    value = raw.strip().lower().replace(" ", "")
    if not _AZURE_LOCATION.match(value):
        raise Invalid(f"{raw!r} is not an Azure region name", "use a region name such as eastus or westeurope")
    return value


_NAME_PREFIX = re.compile(r"^[a-z][a-z0-9]{1,11}$")


def parse_name_prefix(raw: str) -> str:
    value = raw.strip()
    if not _NAME_PREFIX.match(value):
        raise Invalid(
            f"{raw!r} is not a usable name prefix",
            "use 2 to 12 lowercase letters and digits, starting with a letter (Azure and Kubernetes both accept that)",
        )
    return value


# The validation patterns of terraform/variables.tf, so that a name Terraform would
# refuse at plan time is refused here, before anything runs (a test keeps them equal).
CLUSTER_NAME_PATTERN = r"^[A-Za-z0-9][-A-Za-z0-9_]{0,61}[A-Za-z0-9]$"
RESOURCE_GROUP_PATTERN = r"^[-\w.()]{1,89}[-\w()]$"


def parse_optional_cluster_name(raw: str) -> str | None:
    value = raw.strip()
    if not value:
        return None
    if not re.fullmatch(CLUSTER_NAME_PATTERN, value, re.ASCII):
        raise Invalid(
            f"{raw!r} is not a valid AKS cluster name",
            "use 2 to 63 letters, digits, '-' or '_', starting and ending with a letter or digit",
        )
    return value


# Azure's rule for registry names (and the azurerm provider's, ContainerRegistryName); terraform/ has it too.
CONTAINER_REGISTRY_NAME_PATTERN = r"^[a-zA-Z0-9]{5,50}$"


def parse_optional_container_registry_name(raw: str) -> str | None:
    value = raw.strip()
    if not value:
        return None
    if not re.fullmatch(CONTAINER_REGISTRY_NAME_PATTERN, value, re.ASCII):
        raise Invalid(
            f"{raw!r} is not a valid Azure Container Registry name",
            "use 5 to 50 letters and digits (no '-' or '.'), unique across Azure; <name>.azurecr.io is its login server",
        )
    return value


def parse_optional_resource_group(raw: str) -> str | None:
    value = raw.strip()
    if not value:
        return None
    if not re.fullmatch(RESOURCE_GROUP_PATTERN, value, re.ASCII):
        raise Invalid(
            f"{raw!r} is not a valid resource group name",
            "use 2 to 90 letters, digits, '-', '_', '.' or parentheses, not ending with '.'",
        )
    return value


_VM_SIZE = re.compile(r"^Standard_[A-Za-z0-9_]+$")


def parse_vm_size(raw: str) -> str:
    value = raw.strip()
    if not _VM_SIZE.match(value):
        raise Invalid(f"{raw!r} is not an Azure VM size", "use a size such as Standard_D4s_v5")
    return value


_K8S_VERSION = re.compile(r"^\d+\.\d+(\.\d+)?$")


def parse_kubernetes_version(raw: str) -> str:
    value = raw.strip()
    if not _K8S_VERSION.match(value):
        raise Invalid(f"{raw!r} is not a Kubernetes version", "use MAJOR.MINOR or MAJOR.MINOR.PATCH, such as 1.33")
    return value


_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")


def parse_key_values(raw: str) -> tuple[tuple[str, str], ...]:
    """'a=1,b=2' -> (('a', '1'), ('b', '2')); keys and values as Kubernetes labels allow."""
    pairs = []
    for item in filter(None, (part.strip() for part in raw.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not _LABEL_KEY.match(key) or len(value) > 63 or not _LABEL_VALUE.match(value):
            raise Invalid(f"{item!r} is not a key=value pair", "write pairs as key=value, separated by commas")
        pairs.append((key, value))
    return tuple(pairs)


# The settings of Terraform's azurerm state backend (internal/backend/remote-state/azure
# in Terraform 1.15), less those that carry a secret: a value passed with -backend-config
# lands on a command line and in .terraform/terraform.tfstate, and the pipeline signs in
# with OIDC, which needs none of them.
BACKEND_SETTINGS = (
    "storage_account_name",
    "container_name",
    "key",
    "resource_group_name",
    "subscription_id",
    "tenant_id",
    "client_id",
    "client_id_file_path",
    "client_certificate_path",
    "client_secret_file_path",
    "environment",
    "metadata_host",
    "lookup_blob_endpoint",
    "snapshot",
    "use_azuread_auth",
    "use_oidc",
    "oidc_request_url",
    "oidc_token_file_path",
    "ado_pipeline_service_connection_id",
    "use_msi",
    "msi_endpoint",
    "use_cli",
    "use_aks_workload_identity",
)
BACKEND_SECRET_SETTINGS = (
    "access_key",
    "sas_token",
    "client_secret",
    "client_certificate",
    "client_certificate_password",
    "oidc_token",
    "oidc_request_token",
)
BACKEND_REQUIRED_SETTINGS = ("storage_account_name", "container_name", "key")
# Blob names may hold '/' (a folder in the key) and run to 1,024 characters.
_BACKEND_VALUE = re.compile(r"^[A-Za-z0-9][-A-Za-z0-9_.:/@+=]{0,1023}$")


def parse_backend_config(raw: str) -> tuple[tuple[str, str], ...]:
    """'key=value,...' for the azurerm backend: its own setting names, values that may hold '/'."""
    pairs: list[tuple[str, str]] = []
    for item in filter(None, (part.strip() for part in raw.split(","))):
        key, sep, value = (part.strip() for part in item.partition("="))
        if not sep or not value:
            raise Invalid(f"{item!r} is not a setting=value pair", "write the backend settings as setting=value, separated by commas")
        if key in BACKEND_SECRET_SETTINGS:
            raise Invalid(
                f"{key} is a secret, and would be written to the command line and Terraform's folder",
                "drop it: the backend signs in with the pipeline's Azure AD identity (use_azuread_auth=true, set for you)",
            )
        if key not in BACKEND_SETTINGS:
            close = difflib.get_close_matches(key, BACKEND_SETTINGS, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise Invalid(
                f"{key!r} is not a setting of Terraform's azurerm backend{hint}",
                f"use its settings, such as {', '.join(BACKEND_REQUIRED_SETTINGS)} and resource_group_name",
            )
        if not _BACKEND_VALUE.match(value):
            raise Invalid(f"{key}={value!r} is not a usable value", "use letters, digits and - _ . : / (a blob key may hold '/')")
        if any(existing == key for existing, _ in pairs):
            raise Invalid(f"{key} is given twice", "give each backend setting once")
        pairs.append((key, value))
    missing = [name for name in BACKEND_REQUIRED_SETTINGS if pairs and name not in dict(pairs)]
    if missing:
        raise Invalid(f"the backend settings lack {', '.join(missing)}", f"add {', '.join(f'{m}=...' for m in missing)}")
    return tuple(pairs)


def parse_tolerations(raw: str) -> tuple[tuple[str, str, str], ...]:
    """'key=value:Effect,...' -> ((key, value, effect), ...)."""
    result = []
    for item in filter(None, (part.strip() for part in raw.split(","))):
        pair, _, effect = item.rpartition(":")
        key, sep, value = pair.partition("=")
        if not sep or effect not in ("NoSchedule", "PreferNoSchedule", "NoExecute") or not _LABEL_KEY.match(key):
            raise Invalid(f"{item!r} is not a toleration", "write key=value:NoSchedule (or PreferNoSchedule, NoExecute)")
        result.append((key, value, effect))
    return tuple(result)


# name[:port]/path:tag, optionally @sha256:digest. A tag is required: an untagged
# reference means :latest, which moves under a running project.
_IMAGE = re.compile(
    r"^(?:[a-z0-9][a-z0-9.-]*(?::\d+)?/)?[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*"
    r":(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})(?:@sha256:[a-f0-9]{64})?$"
)


def parse_image(raw: str) -> str:
    """An image by tag, optionally pinned by digest too: repository:tag[@sha256:<64 hex>]; never untagged or :latest."""
    value = raw.strip()
    match = _IMAGE.match(value)
    if not match or match.group("tag") == "latest":
        raise Invalid(
            f"{raw!r} is not a pinned image reference (with a tag)",
            "use repository:tag, or repository:tag@sha256:<digest> to pin the content too (not :latest, not untagged)",
        )
    return value


_RAY_VERSION = re.compile(r"^(\d+\.\d+\.\d+)$")
_TAG_RAY_VERSION = re.compile(r"^(\d+\.\d+\.\d+)(?![.\d])")
# KubeRay 1.7 refuses token authentication (manifests/rayjob.yaml's authOptions) below this Ray (validation.go).
MIN_RAY_VERSION_TOKEN_AUTH = (2, 52, 0)


def parse_optional_ray_version(raw: str) -> str | None:
    value = raw.strip()
    if not value:
        return None
    if not _RAY_VERSION.match(value):
        raise Invalid(f"{raw!r} is not a Ray version", "use MAJOR.MINOR.PATCH, such as 2.60.0")
    return value


def image_ray_version(image: str) -> str | None:
    """The Ray version a Ray image's tag states ('rayproject/ray:2.60.0-py311-cpu' -> '2.60.0'), else None."""
    tag = image.split("@", 1)[0].rsplit("/", 1)[-1].partition(":")[2]
    match = _TAG_RAY_VERSION.match(tag)
    return match.group(1) if match else None


def ray_version(kube: KubeOptions) -> str | None:
    """--ray-version, or the one --ray-image's tag states."""
    return kube.ray_version or image_ray_version(kube.ray_image)


def parse_url(raw: str) -> str:
    value = raw.strip()
    if not re.match(r"^(https?|file)://[^\s]+$", value):
        raise Invalid(f"{raw!r} is not a URL", "use an https:// or file:// URL")
    return value if value.endswith("/") else value + "/"


def parse_optional_index_url(raw: str) -> str:
    """A pip index for the Ray pods (https://, no credentials: it is written into the RayJob), or empty for none."""
    value = raw.strip()
    if not value:
        return ""
    parts = urllib.parse.urlsplit(value)
    if parts.scheme != "https" or not parts.hostname:
        raise Invalid(f"{value!r} is not an https:// URL", "give the index's whole https:// URL, or leave it empty for PyPI only")
    if parts.username or parts.password:
        raise Invalid(
            "the index URL carries credentials, which would be written into the RayJob for anyone who can read it",
            "use an index that needs none, or an image with torch inside (ray-image)",
        )
    return value


def parse_chart(raw: str) -> str:
    """A Helm repository (https://), an OCI chart (oci://), or a local chart folder or .tgz (no scheme)."""
    value = raw.strip()
    scheme = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", value)
    if scheme and scheme.group(1).lower() not in ("https", "oci"):
        raise Invalid(
            f"{scheme.group(1)}:// is not accepted for a chart",
            "use an https:// Helm repository or an oci:// chart (plain http lets anyone on the path swap the operator), "
            "or the path of a downloaded chart",
        )
    if scheme and not re.match(r"^[A-Za-z]+://[^\s/]+", value):
        raise Invalid(f"{raw!r} has no host", "write the whole URL, such as https://charts.example.org/kuberay/")
    if not value:
        raise Invalid("the chart is empty", "leave the input unset for KubeRay's repository, or give a URL or a path")
    return value


_SEMVER = re.compile(r"^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")


def parse_version(raw: str) -> str:
    """A chart version as Helm writes it: MAJOR.MINOR.PATCH with an optional pre-release (1.7.0, 1.7.0-rc.0)."""
    value = raw.strip()
    if not _SEMVER.match(value):
        raise Invalid(f"{raw!r} is not a version", "use an exact chart version such as 1.7.0 (no range, no 'latest', no leading v)")
    return value


def parse_cidrs(raw: str) -> tuple[str, ...]:
    """'169.254.0.0/16,10.0.0.0/8' -> the networks, normalised; 'none': no range."""
    import ipaddress

    if raw.strip().lower() == "none":
        return ()
    networks = []
    for item in filter(None, (part.strip() for part in raw.split(","))):
        try:
            networks.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise Invalid(f"{item!r} is not an IP range", "write ranges in CIDR form, such as 10.0.0.0/8, separated by commas") from None
    return tuple(networks)


_QUOTA_KEY = re.compile(r"^[a-z0-9]([-a-z0-9./]*[a-z0-9])?$")
_QUOTA_VALUE = re.compile(r"^\d+(\.\d+)?(m|k|M|G|T|Ki|Mi|Gi|Ti)?$")


def parse_quota(raw: str) -> tuple[tuple[str, str], ...]:
    """'pods=50,requests.cpu=64' -> the ResourceQuota's hard limits; 'none': no quota."""
    if raw.strip().lower() == "none":
        return ()
    pairs = []
    for item in filter(None, (part.strip() for part in raw.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not _QUOTA_KEY.match(key.strip()) or not _QUOTA_VALUE.match(value.strip()):
            raise Invalid(
                f"{item!r} is not a quota entry", "write resource=quantity pairs, such as pods=50,requests.cpu=64,requests.memory=256Gi"
            )
        pairs.append((key.strip(), value.strip()))
    return tuple(pairs)


def duration_at_most(limit_seconds: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        value = parse_duration(raw)
        if value > limit_seconds:
            raise Invalid(f"{raw!r} is longer than {limit_seconds // 3600} h", f"use at most {limit_seconds // 3600}h")
        return value

    return parse


def parse_optional_fraction(raw: str) -> float | None:
    """A share between 0 and 1 (0.98, 0.005); empty means none."""
    value = raw.strip()
    if not value:
        return None
    try:
        number = float(value)
    except ValueError:
        raise Invalid(f"{raw!r} is not a number", "use a number between 0 and 1, such as 0.98 (not 98%)") from None
    if not 0 <= number <= 1:
        raise Invalid(f"{number:g} is outside 0..1", "use a number between 0 and 1, such as 0.98 (not 98)")
    return number


def parse_baseline(raw: str) -> str:
    """'' (no baseline), 'auto' (the base branch's artifact) or a path to a metrics.json."""
    value = raw.strip()
    return "auto" if value.lower() == "auto" else value


def parse_artifact_name(raw: str) -> str:
    value = raw.strip()
    # upload-artifact refuses these characters in a name.
    if not value or any(c in value for c in '":<>|*?\\/\r\n'):
        raise Invalid(f"{raw!r} is not a usable artifact name", "use letters, digits, '-', '_' and '.', such as aks-ray-output")
    return value


def parse_log_level(raw: str) -> str:
    return choice("debug", "info", "warning", "error")(raw).upper()


# ------------------------------------------------------------ declarations


def option(
    default: str,
    help: str,
    parse: Callable[[str], Any] = parse_str,
    *,
    flag: str = "",
    env_fallbacks: tuple[str, ...] = (),
    metavar: str | None = None,
    is_flag: bool = False,
) -> Any:
    """Declare one option: its default as the user would type it, its help and its parser."""
    return field(
        default=parse(default),
        metadata={
            "raw_default": default,
            "help": help,
            "parse": parse,
            "flag": flag,
            "env_fallbacks": env_fallbacks,
            "metavar": metavar,
            "is_flag": is_flag,
        },
    )


def flag_name(f: dataclasses.Field) -> str:
    return f.metadata["flag"] or f.name.replace("_", "-")


def env_name(f: dataclasses.Field) -> str:
    return ENV_PREFIX + flag_name(f).replace("-", "_").upper()


@dataclass(frozen=True)
class CommonOptions:
    target: str = option(
        "local",
        "where to train: local (Ray on this machine), kubeconfig (the cluster your kubeconfig points at) "
        "or aks (create or reuse an AKS cluster)",
        choice(*TARGETS),
    )
    output_dir: Path = option("aks-ray-output", "folder for logs, metrics, model and summary", parse_path)
    timeout: int = option("60m", "deadline for the training job, from submission to a final state (seconds, or 15m, 2h)", parse_duration)
    start_timeout: int | None = option(
        "",
        "deadline for the Ray cluster to start and the job to be submitted, counted from submission (from Kueue's admission "
        "with --queue-name), within --timeout "
        "(a cluster that never becomes ready fails with its own finding); empty: 10m, or half of --timeout when that is shorter",
        parse_optional_duration,
    )
    dry_run: bool = option("false", "print what would be created and exit, touching nothing", parse_bool, is_flag=True)
    keep_cluster: bool = option(
        "false", "leave the Ray cluster running after the job (prints how to open the dashboard)", parse_bool, is_flag=True
    )
    keep_cluster_ttl: int = option(
        "4h",
        "with keep-cluster, how long after the job ends KubeRay keeps the Ray cluster before deleting it (at most 168h)",
        duration_at_most(KEEP_CLUSTER_MAX_SECONDS),
    )
    lost_run_ttl: int = option(
        "1h",
        "when the workflow never gets to cleanup (runner lost, cancelled), how long after the job ends KubeRay deletes "
        "the RayJob and all it owns; the Ray cluster goes at half of it, or with keep-cluster that long after "
        "keep-cluster-ttl (at most 168h)",
        duration_at_most(KEEP_CLUSTER_MAX_SECONDS),
    )
    log_level: str = option("info", "log verbosity: debug, info, warning or error", parse_log_level)


@dataclass(frozen=True)
class TrainingOptions:
    training_dir: Path = option(str(DEFAULT_TRAINING_DIR), "directory uploaded to Ray as the job's working_dir", parse_path)
    entrypoint: str = option("python train_mnist.py", "command run inside training-dir; the training flags below are appended")
    workers: int = option("2", "number of Ray Train workers", int_in_range(1, 256))
    cpus_per_worker: int = option("1", "CPUs each worker reserves (and torch threads it uses)", int_in_range(1, 256))
    memory_per_worker: str = option("2Gi", "memory each Ray worker pod requests on Kubernetes", parse_quantity)
    use_gpu: bool = option("false", "train on GPUs (one per worker); fails if none are present", parse_bool, is_flag=True)
    epochs: int = option("3", "training epochs", int_in_range(1, 1000))
    batch_size: int = option("128", "global batch size, split across the workers", int_in_range(1, 65536))
    learning_rate: float = option("0.001", "Adam learning rate", parse_positive_float)
    seed: int = option("42", "random seed; the same seed gives the same model", int_in_range(0, 2**31 - 1))
    dataset: str = option(
        "auto",
        "auto: --data-dir, else a download, else the bundled sample with a warning; full: the whole set or fail; "
        "sample: the bundled 1,000/500-image sample (smoke tests)",
        choice(*DATASETS),
    )
    data_dir: Path | None = option(
        "", "folder with the four MNIST IDX files (.gz or not); empty: download from --mnist-mirror", parse_optional_path
    )
    mnist_mirror: str = option(
        "https://ossci-datasets.s3.amazonaws.com/mnist/", "where to download MNIST from when no data-dir is given", parse_url
    )


@dataclass(frozen=True)
class KubeOptions:
    kubeconfig: Path | None = option(
        "", "kubeconfig file; empty: $KUBECONFIG or ~/.kube/config", parse_optional_path, env_fallbacks=("KUBECONFIG",)
    )
    kube_context: str | None = option("", "kubeconfig context; empty: the current one", parse_optional_str)
    namespace: str = option("aks-ray", "namespace for the RayJob and its pods", parse_dns_label)
    job_name: str | None = option(
        "",
        "RayJob name, at most 47 characters starting with a letter (as KubeRay requires); empty: a unique name per run",
        parse_optional_rayjob_name,
    )
    queue_name: str | None = option(
        "",
        "Kueue LocalQueue in --namespace to queue the run in: the RayJob is created suspended with Kueue's queue label and "
        "starts when Kueue admits it within the ClusterQueue's quota; empty: no queue (a run beyond the cluster's capacity "
        "waits Pending until --start-timeout)",
        parse_optional_queue_name,
    )
    queue_timeout: int = option(
        "30m",
        "with --queue-name, how long the run may wait in the queue for Kueue to admit it (seconds, or 30m, 2h); counted "
        "before --start-timeout and --timeout, which start at admission",
        parse_duration,
    )
    operator_namespace: str = option("kuberay-system", "namespace of the KubeRay operator", parse_dns_label)
    kuberay_version: str = option(versions.KUBERAY_CHART_VERSION, "KubeRay operator Helm chart version", parse_version)
    kuberay_chart: str = option(
        versions.KUBERAY_HELM_REPO, "Helm repository (https://) or OCI chart (oci://) URL, or a local chart folder or .tgz", parse_chart
    )
    ray_image: str = option(
        versions.RAY_IMAGE, "Ray container image for head and workers: repository:tag, optionally @sha256:<digest>", parse_image
    )
    install_torch: str = option(
        "auto",
        f"pip-install torch=={versions.TORCH_VERSION} in the Ray pods at run time: auto (unless the ray-image tag names "
        f"torch{versions.TORCH_VERSION}, as an image built with it does), always, or never (the image has it)",
        choice("auto", "always", "never"),
    )
    torch_index_url: str = option(
        "",
        "an extra pip index the Ray pods install torch from when they install it (install-torch), such as PyTorch's "
        "CPU-only wheel index (a wheel of about 200 MB instead of PyPI's CUDA build of several GB); empty: PyPI only",
        parse_optional_index_url,
    )
    ray_version: str | None = option(
        "",
        "the Ray version inside --ray-image, written into the RayCluster's rayVersion so KubeRay's version checks apply; "
        "empty: read from the image's tag (2.60.0-py311-cpu says 2.60.0)",
        parse_optional_ray_version,
    )
    head_cpus: str = option(
        "1",
        "CPUs requested by the Ray head pod, a Kubernetes quantity (1, 0.5, 500m); the head runs the driver, no training",
        cpu_quantity_in_range(100, 256_000),
    )
    head_memory: str = option("3Gi", "memory requested by the Ray head pod", parse_quantity)
    node_selector: tuple[tuple[str, str], ...] = option(
        "", "node labels Ray pods must land on (k=v,...); on the aks target defaults to the Ray pool's label", parse_key_values
    )
    tolerations: tuple[tuple[str, str, str], ...] = option(
        "", "taints Ray pods tolerate (key=value:Effect,...); on the aks target defaults to the Ray pool's taint", parse_tolerations
    )
    egress_blocked_cidrs: tuple[str, ...] = option(
        DEFAULT_EGRESS_BLOCKED,
        "address ranges the training pods may not reach (CIDRs, comma-separated): the node's metadata and Azure host "
        "addresses, and every private range (AKS's pod, service and node ranges); the API server's address is added at submit; "
        "none: no range",
        parse_cidrs,
    )
    namespace_quota: tuple[tuple[str, str], ...] = option(
        DEFAULT_NAMESPACE_QUOTA,
        "the ResourceQuota of --namespace, created when it has none (resource=quantity,...); none: no quota",
        parse_quota,
    )


@dataclass(frozen=True)
class AzureOptions:
    azure_client_id: str | None = option(
        "",
        "client ID of the app registration or managed identity with a federated credential",
        parse_optional_uuid,
        env_fallbacks=("ARM_CLIENT_ID", "AZURE_CLIENT_ID"),
    )
    azure_tenant_id: str | None = option("", "Azure AD tenant ID", parse_optional_uuid, env_fallbacks=("ARM_TENANT_ID", "AZURE_TENANT_ID"))
    azure_subscription_id: str | None = option(
        "", "Azure subscription ID", parse_optional_uuid, env_fallbacks=("ARM_SUBSCRIPTION_ID", "AZURE_SUBSCRIPTION_ID")
    )
    location: str = option("eastus", "Azure region", parse_azure_location)
    name_prefix: str = option("aksray", "prefix of every Azure resource name", parse_name_prefix)
    resource_group: str | None = option("", "resource group; empty: <name-prefix>-rg", parse_optional_resource_group)
    cluster_name: str | None = option("", "AKS cluster; empty: <name-prefix>-aks", parse_optional_cluster_name)
    kubernetes_version: str = option(versions.KUBERNETES_VERSION, "AKS Kubernetes version", parse_kubernetes_version)
    system_vm_size: str = option("Standard_D2s_v5", "VM size of the system node pool", parse_vm_size)
    system_node_count: int = option("1", "nodes in the system node pool", int_in_range(1, 100))
    ray_vm_size: str = option("Standard_D4s_v5", "VM size of the Ray node pool", parse_vm_size)
    ray_node_count: int = option("3", "nodes in the Ray node pool (when not autoscaling)", int_in_range(1, 100))
    ray_min_nodes: int | None = option(
        "", "enable autoscaling of the Ray pool with this minimum (0 allowed)", optional_int_in_range(0, 100)
    )
    ray_max_nodes: int | None = option("", "maximum of the autoscaling Ray pool", optional_int_in_range(1, 100))
    ray_scale_down_mode: str = option(
        "delete",
        "what becomes of a Ray pool node scaled down: delete (the VM goes; a new node pulls the Ray image again) or "
        'deallocate (stopped, its OS disk and the images on it kept, the disk still billed; README, "Start-up")',
        choice("delete", "deallocate"),
    )
    container_registry_name: str | None = option(
        "",
        "an Azure Container Registry (Basic) for the image of manifests/Dockerfile, created beside the cluster with AcrPull "
        "for its kubelet identity: 5 to 50 letters and digits, unique across Azure; empty: none",
        parse_optional_container_registry_name,
    )
    infra_mode: str = option(
        "apply", "apply (create or update), reuse (use the cluster as it is) or skip (no Azure calls)", choice(*INFRA_MODES)
    )
    destroy_policy: str = option("always", "when to destroy the Azure resources: never, always or on-success", choice(*DESTROY_POLICIES))
    allow_pull_request_infra: bool = option(
        "false",
        "let a run triggered by a pull request create or change the Azure infrastructure (--infra-mode apply) and install the "
        "KubeRay operator; without it such a run is refused: the pull request's code, workflow file included, would hold "
        "an identity that can rebuild the cluster",
        parse_bool,
        is_flag=True,
    )
    pull_request_principal_id: str | None = option(
        "",
        "object ID of the pull-request identity's service principal: infra apply gives it the AKS Cluster User Role on the "
        "cluster and the RBAC Writer role on --pull-request-namespaces, nothing else; empty: none",
        parse_optional_uuid,
    )
    pull_request_namespaces: tuple[str, ...] = option(
        "aks-ray-pr",
        "namespaces pull requests train in (comma-separated), where --pull-request-principal-id may run jobs",
        parse_namespaces,
    )
    terraform_dir: Path = option(str(DEFAULT_TERRAFORM_DIR), "Terraform configuration to plan and apply", parse_path)
    tf_backend_config: tuple[tuple[str, str], ...] = option(
        "",
        "Terraform state in Azure Storage: azurerm backend settings (storage_account_name=...,container_name=...,key=...,"
        "resource_group_name=...); use_azuread_auth=true is added. Empty: state on this machine, for a trial whose "
        "cluster is destroyed at the end",
        parse_backend_config,
    )
    lock_timeout: int = option(
        "15m",
        "how long terraform plan, apply and destroy wait for the state lock another run holds (seconds, or 15m, 2h)",
        parse_duration,
    )
    tags: tuple[tuple[str, str], ...] = option("", "extra tags on every Azure resource (k=v,...)", parse_key_values)
    expires_in_hours: int = option("24", "the expiry tag on created resources, so orphans can be found", int_in_range(1, 8760))


@dataclass(frozen=True)
class SweepOptions:
    yes: bool = option(
        "false",
        "delete what the sweep lists as expired: resource groups (`infra sweep`), a namespace's run objects (`job sweep`); "
        "without it, they are only listed",
        parse_bool,
        is_flag=True,
    )


@dataclass(frozen=True)
class VerdictOptions:
    """What makes a run pass or fail beyond its job state: a floor, a baseline, a comment (issue 14)."""

    min_accuracy: float | None = option(
        "", "fail the verdict when the final test accuracy is below this (0..1, such as 0.98); empty: no floor", parse_optional_fraction
    )
    baseline: str = option(
        "",
        "metrics.json of an earlier run to compare with, or auto: the newest artifact of artifact-name from this workflow "
        "on the pull request's base branch (needs GITHUB_TOKEN with actions: read); empty: no comparison",
        parse_baseline,
    )
    max_accuracy_drop: float | None = option(
        "",
        "fail the verdict when test accuracy fell by more than this below the baseline's (0..1, such as 0.005); empty: no limit",
        parse_optional_fraction,
    )
    comment: bool = option(
        "false",
        "post the report as one comment on the pull request, updated in place by later runs (needs pull-requests: write)",
        parse_bool,
        is_flag=True,
    )
    artifact_name: str = option(
        "aks-ray-output",
        "name the output folder is uploaded as; baseline auto looks for an artifact of this name on the base branch",
        parse_artifact_name,
    )


@dataclass(frozen=True)
class GitHubContext:
    """What GitHub Actions (or act) tells a step through the environment. Not flags."""

    actions: bool = False
    act: bool = False
    output: Path | None = None
    step_summary: Path | None = None
    env_file: Path | None = None
    run_id: str = ""
    run_attempt: str = ""
    sha: str = ""
    ref: str = ""
    repository: str = ""
    event_name: str = ""
    runner_temp: Path | None = None
    oidc_request_url: str = ""
    # A bearer token: never printed (repr=False) and never written anywhere.
    oidc_request_token: str = field(default="", repr=False)
    # For the verdict (issue 14): the REST API, the pull request's base branch, this workflow's file.
    api_url: str = "https://api.github.com"
    server_url: str = "https://github.com"
    base_ref: str = ""
    workflow_ref: str = ""
    event_path: Path | None = None
    # The job's GITHUB_TOKEN, when the step is given it: never printed (repr=False) and never written anywhere.
    token: str = field(default="", repr=False)

    @property
    def pull_request(self) -> str:
        match = re.match(r"^refs/pull/(\d+)/", self.ref)
        return match.group(1) if match else ""

    @property
    def triggered_by_pull_request(self) -> bool:
        """A run of a pull request's event, whatever its branch: the code and the workflow file may be the pull request's."""
        return self.event_name in PULL_REQUEST_EVENTS

    @property
    def is_pull_request(self) -> bool:
        return self.event_name in ("pull_request", "pull_request_target") and bool(self.base_ref)

    @property
    def workflow_file(self) -> str:
        """This workflow's file name ('ci.yml'), from 'owner/repo/.github/workflows/ci.yml@refs/...'."""
        path = self.workflow_ref.partition("@")[0]
        return path.rsplit("/", 1)[-1] if "/.github/workflows/" in path else ""


@dataclass(frozen=True)
class Config:
    common: CommonOptions = field(default_factory=CommonOptions)
    training: TrainingOptions = field(default_factory=TrainingOptions)
    kube: KubeOptions = field(default_factory=KubeOptions)
    azure: AzureOptions = field(default_factory=AzureOptions)
    sweep: SweepOptions = field(default_factory=SweepOptions)
    verdict: VerdictOptions = field(default_factory=VerdictOptions)
    github: GitHubContext = field(default_factory=GitHubContext)
    # The command-line flags this Config was loaded from, so reload() can read the environment again.
    flags: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def target(self) -> str:
        return self.common.target

    @property
    def output_dir(self) -> Path:
        return self.common.output_dir

    @property
    def run_dir(self) -> RunDir:
        """The output folder and the state the steps hand each other (rundir.py)."""
        return RunDir(self.common.output_dir)

    @property
    def resource_group(self) -> str:
        return self.azure.resource_group or f"{self.azure.name_prefix}-rg"

    @property
    def cluster_name(self) -> str:
        return self.azure.cluster_name or f"{self.azure.name_prefix}-aks"


SECTIONS: dict[str, type] = {
    "common": CommonOptions,
    "training": TrainingOptions,
    "kube": KubeOptions,
    "azure": AzureOptions,
    "sweep": SweepOptions,
    "verdict": VerdictOptions,
}


# ------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser, sections: tuple[str, ...]) -> None:
    """Add the flags of the given sections to a subcommand's parser.

    Flags default to None, so that "not given" falls through to the
    environment and then to the declared default.
    """
    for section in sections:
        cls = SECTIONS[section]
        group = parser.add_argument_group(f"{section} options")
        for f in dataclasses.fields(cls):
            meta = f.metadata
            help_text = f"{meta['help']} [env {env_name(f)}; default: {meta['raw_default'] or 'empty'}]"
            if meta["is_flag"]:
                group.add_argument(f"--{flag_name(f)}", dest=f.name, action="store_const", const="true", default=None, help=help_text)
            else:
                group.add_argument(f"--{flag_name(f)}", dest=f.name, default=None, metavar=meta["metavar"] or "VALUE", help=help_text)


def _github_context(environ: Mapping[str, str]) -> GitHubContext:
    def path(name: str) -> Path | None:
        return Path(environ[name]) if environ.get(name) else None

    return GitHubContext(
        actions=environ.get("GITHUB_ACTIONS") == "true",
        act=environ.get("ACT", "") not in ("", "false"),
        output=path("GITHUB_OUTPUT"),
        step_summary=path("GITHUB_STEP_SUMMARY"),
        env_file=path("GITHUB_ENV"),
        run_id=environ.get("GITHUB_RUN_ID", ""),
        run_attempt=environ.get("GITHUB_RUN_ATTEMPT", ""),
        sha=environ.get("GITHUB_SHA", ""),
        ref=environ.get("GITHUB_REF", ""),
        repository=environ.get("GITHUB_REPOSITORY", ""),
        event_name=environ.get("GITHUB_EVENT_NAME", ""),
        runner_temp=path("RUNNER_TEMP"),
        oidc_request_url=environ.get("ACTIONS_ID_TOKEN_REQUEST_URL", ""),
        oidc_request_token=environ.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN", ""),
        api_url=environ.get("GITHUB_API_URL", "").rstrip("/") or GitHubContext.api_url,
        server_url=environ.get("GITHUB_SERVER_URL", "").rstrip("/") or GitHubContext.server_url,
        base_ref=environ.get("GITHUB_BASE_REF", ""),
        workflow_ref=environ.get("GITHUB_WORKFLOW_REF", ""),
        event_path=path("GITHUB_EVENT_PATH"),
        token=environ.get("GITHUB_TOKEN", ""),
    )


def action_inputs(environ: Mapping[str, str], problems: list[str]) -> dict[str, str]:
    """The action's inputs from AKS_RAY_INPUTS (empty outside the action), as strings."""
    text = environ.get(INPUTS_ENV, "").strip()
    if not text:
        return {}
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        problems.append(
            f"{INPUTS_ENV}: is not a JSON object of inputs; the action sets it to ${{{{ toJSON(inputs) }}}}, leave it unset elsewhere"
        )
        return {}
    return {str(name): value if isinstance(value, str) else json.dumps(value) for name, value in doc.items() if value is not None}


def _build_section(cls: type, flags: Mapping[str, Any], environ: Mapping[str, str], inputs: Mapping[str, str], problems: list[str]) -> Any:
    values = {}
    for f in dataclasses.fields(cls):
        source, raw = "default", None
        if flags.get(f.name) is not None:
            source, raw = f"--{flag_name(f)}", flags[f.name]
        else:
            candidates = [(env_name(f), environ.get(env_name(f), ""))]
            candidates.append((f"the action's input {flag_name(f)}", inputs.get(flag_name(f), "")))
            candidates += [(name, environ.get(name, "")) for name in f.metadata["env_fallbacks"]]
            for name, value in candidates:
                if value.strip():
                    source, raw = name, value
                    break
        if raw is None:
            continue
        where = f"--{flag_name(f)}" if source == f"--{flag_name(f)}" else f"{source} (--{flag_name(f)})"
        bad = sorted(SHELL_METACHARACTERS.intersection(raw))
        if bad:
            problems.append(f"{where}: contains the shell character(s) {' '.join(repr(c) for c in bad)}; remove them")
            continue
        try:
            values[f.name] = f.metadata["parse"](raw)
        except Invalid as exc:
            problems.append(f"{where}: {exc.problem}; {exc.fix}")
    return cls(**values)


# Parts of the training directory that never go to the cluster (rayjob.training_files skips them too).
TRAINING_SKIP_DIRS = frozenset({"__pycache__", ".git", ".venv", ".pytest_cache", ".ruff_cache", ".ipynb_checkpoints"})


def links_leaving(directory: Path) -> list[str]:
    """The symlinks under `directory` (in the parts that are shipped) that point outside it, as 'link -> target'.

    A link to a file elsewhere would ship that file (a runner's secret, say) to
    the cluster; a link inside the folder is just another name for its file.
    """
    root = directory.resolve()
    found = []
    for current, dirs, files in os.walk(directory):
        dirs[:] = [d for d in dirs if d not in TRAINING_SKIP_DIRS and not d.startswith(".")]
        for name in sorted(dirs + files):
            path = Path(current) / name
            if name.startswith(".") or not path.is_symlink():
                continue
            target = path.resolve()
            if target != root and root not in target.parents:
                found.append(f"{path.relative_to(directory).as_posix()} -> {os.readlink(path)}")
    return found


METRICS_JSON_KEYS = ("status", "target", "dataset", "epochs", "final")


def baseline_file(raw: str) -> Path:
    """The metrics.json a --baseline path names: the file itself, or the one in a folder (an unpacked artifact)."""
    path = Path(raw).expanduser()
    return path / "metrics.json" if path.is_dir() else path


def metrics_json_problem(doc: object) -> str:
    """Why a parsed JSON document is not a metrics.json this project wrote ('' when it is one)."""
    if not isinstance(doc, dict):
        return "is not a JSON object"
    missing = [key for key in METRICS_JSON_KEYS if key not in doc]
    if missing:
        return f"lacks {', '.join(missing)}, so it is not an aks-ray metrics.json"
    if not isinstance(doc["epochs"], list) or not isinstance(doc["final"], dict):
        return "has epochs or final of the wrong type, so it is not an aks-ray metrics.json"
    return ""


def verdict_problems(config: Config) -> list[str]:
    """The bad-input rules of issue 14 that every step can check: before training, so a typo costs seconds, not a run."""
    verdict, github = config.verdict, config.github
    problems = []
    if verdict.baseline == "auto":
        if not github.is_pull_request:
            problems.append(
                f"--baseline: auto compares a pull request with its base branch, and this is a {github.event_name or 'local'} run; "
                "use it on pull_request events only, or pass a metrics.json path"
            )
        elif not (github.repository and github.workflow_file):
            problems.append("--baseline: auto needs GITHUB_REPOSITORY and GITHUB_WORKFLOW_REF, which GitHub sets; run it in a workflow")
    elif verdict.baseline:
        path = baseline_file(verdict.baseline)
        if not path.is_file():
            problems.append(f"--baseline: {path} does not exist; point it at the metrics.json of an earlier run, or use auto")
        else:
            try:
                problem = metrics_json_problem(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, UnicodeDecodeError, ValueError) as exc:
                problem = f"is not readable JSON ({exc.__class__.__name__})"
            if problem:
                problems.append(f"--baseline: {path} {problem}; point it at the metrics.json an aks-ray run wrote")
    if verdict.max_accuracy_drop is not None and not verdict.baseline:
        problems.append("--max-accuracy-drop: needs a baseline to drop from; set --baseline (a metrics.json or auto), or drop it")
    return problems


def token_problems(config: Config) -> list[str]:
    """What only the steps given the job's token can check: validate and verdict call this, no other step.

    Kept out of cross_check() on purpose: every step loads the same options, and
    asking each for GITHUB_TOKEN would hand the token to the training step too.
    """
    verdict, github = config.verdict, config.github
    problems = []
    if verdict.baseline == "auto" and not github.token:
        problems.append(
            "--baseline: auto needs the job's token; give the step GITHUB_TOKEN (env: GITHUB_TOKEN: ${{ github.token }}) "
            "with permissions actions: read, or pass a metrics.json path"
        )
    if verdict.comment and github.actions and not github.act and not github.token:
        problems.append("--comment: needs the job's token; give the step GITHUB_TOKEN with permissions pull-requests: write")
    return problems


DEFAULT_START_TIMEOUT_SECONDS = 600


def start_deadline(common: CommonOptions) -> int:
    """The pre-running deadline (KubeRay's preRunningDeadlineSeconds): --start-timeout, or its default.

    The default leaves at least half of --timeout for training, so that a cluster that never
    starts and a job that runs too long are told apart (KubeRay checks the active deadline first).
    """
    if common.start_timeout is not None:
        return common.start_timeout
    return max(1, min(DEFAULT_START_TIMEOUT_SECONDS, common.timeout // 2))


def cross_check(config: Config) -> list[str]:
    """Problems that involve more than one option, or the filesystem."""
    problems = verdict_problems(config)
    common = config.common
    if config.target in ("kubeconfig", "aks"):
        version = ray_version(config.kube)
        if version is None:
            problems.append(
                f"--ray-version: the tag of --ray-image {config.kube.ray_image} does not say which Ray it holds, and KubeRay "
                "needs it (rayVersion) for its checks; set --ray-version to the image's Ray version, such as 2.60.0"
            )
        elif tuple(int(part) for part in version.split(".")) < MIN_RAY_VERSION_TOKEN_AUTH:
            problems.append(
                f"--ray-image: Ray {version} has no token authentication, which every aks-ray cluster uses (KubeRay 1.7 "
                f"requires Ray {'.'.join(map(str, MIN_RAY_VERSION_TOKEN_AUTH))} or later for it); use a newer Ray image"
            )
    if common.start_timeout is not None and common.start_timeout >= common.timeout:
        problems.append(
            f"--start-timeout: {common.start_timeout} s is not shorter than --timeout ({common.timeout} s), which leaves no time to "
            "train and makes a cluster that never starts look like a job that ran too long; lower it or raise --timeout"
        )
    queue_problem = queue_conflict(config)
    if queue_problem:
        problems.append(queue_problem)
    training, azure = config.training, config.azure
    if not training.training_dir.is_dir():
        problems.append(f"--training-dir: {training.training_dir} is not a directory; point it at the folder holding your training code")
    else:
        for link in links_leaving(training.training_dir):
            problems.append(
                f"--training-dir: the symlink {link} points outside {training.training_dir}; "
                "copy the file into the folder or remove the link (a link would ship a file of this machine to the cluster)"
            )
        script = next((word for word in training.entrypoint.split() if word.endswith(".py")), None)
        if script and not (training.training_dir / script).is_file():
            problems.append(f"--entrypoint: {script} is not in {training.training_dir}; fix the entrypoint or --training-dir")
    if training.data_dir is not None and not training.data_dir.is_dir():
        problems.append(
            f"--data-dir: {training.data_dir} is not a directory; point it at the folder with the MNIST IDX files, or leave it empty"
        )
    if training.data_dir is not None and training.dataset == "sample":
        problems.append("--dataset: sample ignores --data-dir; drop one of the two")
    if (azure.ray_min_nodes is None) != (azure.ray_max_nodes is None):
        problems.append("--ray-min-nodes/--ray-max-nodes: autoscaling needs both; set both, or neither for a fixed --ray-node-count")
    elif azure.ray_min_nodes is not None and azure.ray_max_nodes is not None and azure.ray_min_nodes > azure.ray_max_nodes:
        problems.append(f"--ray-min-nodes: {azure.ray_min_nodes} is above --ray-max-nodes {azure.ray_max_nodes}; lower it")
    if config.target == "aks" and azure.infra_mode != "skip" and not azure.azure_subscription_id:
        problems.append("--azure-subscription-id: required for the aks target; set it (or ARM_SUBSCRIPTION_ID)")
    if config.target == "aks":
        for problem in (kept_cluster_without_backend(azure), pull_request_infra(config)):
            if problem:
                problems.append(problem)
    if config.target == "aks" and config.github.actions and not config.github.act:
        for name in ("azure_client_id", "azure_tenant_id"):
            if not getattr(azure, name):
                flag = name.replace("_", "-")
                problems.append(f"--{flag}: required for OIDC login in GitHub Actions; set the action's {flag} input")
    return problems


def queue_conflict(config: Config) -> str | None:
    """An option Kueue cannot queue with: it refuses a RayJob that keeps its Ray cluster after the job.

    Kueue v0.17's RayJob webhook requires shutdownAfterJobFinishes (a kept cluster would hold the
    queue's quota after the job ended), and KubeRay 1.7 refuses to suspend a RayJob without it.
    """
    if not config.kube.queue_name or config.target not in ("kubeconfig", "aks"):
        return None
    if config.common.keep_cluster:
        return (
            "--keep-cluster: Kueue does not queue a RayJob that keeps its Ray cluster after the job (the cluster would hold "
            "the queue's quota while nothing runs); drop --keep-cluster, or --queue-name to run without a queue"
        )
    return None


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """The values of the environment's credential-named variables (GITHUB_TOKEN, ARM_CLIENT_SECRET, ...), to redact."""
    environ = os.environ if environ is None else environ
    return [
        value
        for name, value in environ.items()
        if SECRET_NAME.search(name) and not name.endswith(("_PATH", "_FILE", "_DIR", "_URL")) and value.strip()
    ]


def mask_pipe_path(environ: Mapping[str, str] | None = None) -> str | None:
    """The mask pipe of the aks-ray step that started this process (see maskpipe.py), if any."""
    environ = os.environ if environ is None else environ
    return environ.get(MASK_PIPE_ENV) or None


def kept_cluster_without_backend(azure: AzureOptions) -> str | None:
    """A cluster this run may keep, with its state only on this machine: the next run could neither reuse nor destroy it."""
    if azure.infra_mode != "apply" or azure.destroy_policy == "always" or azure.tf_backend_config:
        return None
    return (
        f"--destroy-policy: {azure.destroy_policy} may keep the cluster, but without --tf-backend-config its Terraform state "
        "stays on this runner and is lost with it, so no later run could reuse or destroy the cluster; "
        "set --tf-backend-config (README, 'Terraform state'), or use --destroy-policy always, "
        "or --infra-mode reuse for a cluster made elsewhere"
    )


def pull_request_infra(config: Config) -> str | None:
    """A pull request's run that would create or change the Azure infrastructure, without the workflow's explicit opt-in.

    On pull_request the workflow file is the pull request's own, so whatever identity
    the job can sign in as, the pull request's author holds: an identity that may
    apply Terraform may also delete or rebuild the cluster. Such runs use the
    pull-request identity and --infra-mode reuse (README, "Two identities").
    """
    github, azure = config.github, config.azure
    if not github.triggered_by_pull_request or azure.infra_mode != "apply" or azure.allow_pull_request_infra:
        return None
    return (
        f"--infra-mode: apply on a {github.event_name} run would let the pull request's code create or change the Azure "
        "infrastructure with the cluster identity; use --infra-mode reuse with the pull-request identity (README, "
        "'Two identities'), apply from the default branch, a schedule or a protected environment, or set "
        "--allow-pull-request-infra true to accept that risk"
    )


def operator_left_to_cluster(config: Config) -> str:
    """Why `operator install` leaves the operator alone on this run ('' when it installs it).

    On a pull request's aks run the operator is the cluster's: its CRDs and
    ClusterRoles are cluster-wide, which the pull-request identity may not touch,
    and the cluster workflow installs it. A missing operator is then found by
    the RayJob's server-side dry run at submit, which says so.
    """
    if config.target != "aks" or not config.github.triggered_by_pull_request or config.azure.allow_pull_request_infra:
        return ""
    return (
        f"a {config.github.event_name} run on the aks target uses the cluster's KubeRay operator as it is; installing it is "
        "the cluster workflow's (allow-pull-request-infra lets this run do it)"
    )


def running_in_actions(environ: Mapping[str, str] | None = None) -> bool:
    """True under GitHub Actions or act, where annotations are workflow commands."""
    environ = os.environ if environ is None else environ
    return environ.get("GITHUB_ACTIONS") == "true" or environ.get("ACT", "") not in ("", "false")


def load(flags: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Build the Config from parsed flags and the environment; raise ConfigError listing every problem."""
    flags = flags or {}
    environ = os.environ if environ is None else environ
    problems: list[str] = []
    inputs = action_inputs(environ, problems)
    sections = {name: _build_section(cls, flags, environ, inputs, problems) for name, cls in SECTIONS.items()}
    config = Config(**sections, github=_github_context(environ), flags=dict(flags))
    if problems:
        raise ConfigError(problems)
    problems = cross_check(config)
    if problems:
        raise ConfigError(problems)
    return config


def reload(config: Config) -> Config:
    """The Config from the same flags and the environment as it is now (an earlier step may have exported to it)."""
    return load(config.flags)
