"""Every argument and block terraform/ sets exists, undeprecated, in the pinned azurerm provider's schema.

The schema is read from the provider's own Go source at the pinned version
(versions.AZURERM_PROVIDER_VERSION): the Go module github.com/hashicorp/
terraform-provider-azurerm at the commit of that tag, which `make
azurerm-source` downloads into the Go module cache (the tag itself is no module
version: the module's go.mod has no /v4 suffix). AZURERM_PROVIDER_SOURCE may
point at a checkout of that tag instead. Without either, the test is skipped,
saying how to get it.

A schema entry in the provider's source is a line `"name": ...` in a schema
map; nested blocks are maps inside their parent's entry. This check is by
name within a resource's source files (a nested name is looked for anywhere in
them), plus: the entry is not marked Deprecated, and every top-level argument
the schema marks Required is set.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from test_terraform import RESOURCES, clean, parse

from aks_ray import versions

# The source files that declare each resource's schema, inside the provider's module.
SCHEMA_FILES = {
    "azurerm_resource_group": ["internal/services/resource/resource_group_resource.go"],
    "azurerm_kubernetes_cluster": [
        "internal/services/containers/kubernetes_cluster_resource.go",
        # top-level add-on arguments, merged into the cluster's schema (schemaKubernetesAddOns)
        "internal/services/containers/kubernetes_addons.go",
        # default_node_pool's schema (SchemaDefaultNodePool)
        "internal/services/containers/kubernetes_nodepool.go",
    ],
    "azurerm_kubernetes_cluster_node_pool": ["internal/services/containers/kubernetes_cluster_node_pool_resource.go"],
    "azurerm_role_assignment": ["internal/services/authorization/role_assignment_resource.go"],
    "azurerm_container_registry": ["internal/services/containers/container_registry_resource.go"],
    "provider": ["internal/provider/provider.go", "internal/provider/features.go"],
}
# Files whose outermost schema map adds top-level arguments to the resource of the first file.
TOP_LEVEL_FILES = {"internal/services/containers/kubernetes_addons.go"}
# Blocks whose schema comes from a shared helper (go-azure-helpers' commonschema), not the resource's file.
HELPER_BLOCKS = {"identity": ({"type", "identity_ids"}, '"identity": commonschema.SystemOrUserAssignedIdentity')}
META_ARGUMENTS = {"count", "for_each", "depends_on", "lifecycle", "provider", "dynamic"}
ENTRY = re.compile(r'^\s*"(?P<name>[a-z][a-z0-9_]*)":\s*(?P<rest>.*)$', re.MULTILINE)


def provider_source() -> Path | None:
    configured = os.environ.get("AZURERM_PROVIDER_SOURCE")
    if configured:
        return Path(configured)
    go = shutil.which("go")
    if go is None:
        return None
    modcache = subprocess.run([go, "env", "GOMODCACHE"], capture_output=True, text=True, timeout=60, check=False).stdout.strip()
    candidate = Path(modcache) / f"{versions.AZURERM_PROVIDER_MODULE}@{versions.AZURERM_PROVIDER_PSEUDO_VERSION}"
    return candidate if candidate.is_dir() else None


@pytest.fixture(scope="module")
def source() -> Path:
    found = provider_source()
    if found is None:
        pytest.skip(
            f"the azurerm {versions.AZURERM_PROVIDER_VERSION} source is not here: run `make azurerm-source` (Go module "
            f"{versions.AZURERM_PROVIDER_MODULE}@{versions.AZURERM_PROVIDER_PSEUDO_VERSION}), or point "
            "AZURERM_PROVIDER_SOURCE at a checkout of that tag"
        )
    return found


class Schema:
    """The schema entries of one resource's source files: name -> the entry's own text (up to its first nested entry)."""

    def __init__(self, texts: list[str], top_level: list[str] | None = None) -> None:
        self.text = "\n".join(texts)
        self.entries: dict[str, list[str]] = {}
        self.top: dict[str, str] = {}
        for text in texts:
            for match in ENTRY.finditer(text):
                own = _own_text(text, match)
                self.entries.setdefault(match.group("name"), []).append(own)
        self.top = {}
        for text in [texts[0], *(top_level or [])]:
            self.top.update(self._top_level(text))

    def _top_level(self, text: str) -> dict[str, str]:
        """Entries of the outermost schema map in the resource's main file: depth 1 inside `Schema: map[...]{`."""
        start = re.search(r"(?:Schema:|:=)\s*map\[string\]\*(?:pluginsdk|schema)\.Schema\{", text)
        if start is None:
            return {}
        depth, top, i = 1, {}, start.end()
        while depth and i < len(text):
            match = ENTRY.match(text, i) if text[i - 1] == "\n" else None
            if match and depth == 1:
                top[match.group("name")] = _own_text(text, match)
            char = text[i]
            depth += {"{": 1, "}": -1}.get(char, 0)
            i += 1
        return top

    def required(self) -> set[str]:
        """Top-level arguments marked Required, less those a 4.x build relaxes (`Schema["x"].Required = false`
        under `if !features.FivePointOh()`: required only from 5.0)."""
        relaxed = set(re.findall(r'Schema\["([a-z0-9_]+)"\]\.Required = false', self.text))
        return {name for name, own in self.top.items() if re.search(r"\bRequired:\s*true", own)} - relaxed

    def has(self, name: str) -> bool:
        return name in self.entries

    def deprecated(self, name: str) -> bool:
        return any("Deprecated:" in own for own in self.entries.get(name, []))


def _own_text(text: str, match: re.Match) -> str:
    """An entry's text up to its end or its first nested entry, whichever is first."""
    rest = text[match.end() :]
    following = ENTRY.search(rest)
    end = rest.find("\n\t\t},")
    cut = min(x for x in (following.start() if following else len(rest), end if end >= 0 else len(rest)))
    return match.group("rest") + rest[:cut]


def used_names(body: Any, path: str = "") -> list[tuple[str, str]]:
    """(path, name) of every argument and block in a resource body, dynamic blocks included."""
    found: list[tuple[str, str]] = []
    if not isinstance(body, dict):
        return found
    for name, value in body.items():
        if name == "dynamic":
            for item in value:
                for label, spec in item.items():
                    found.append((path, label))
                    for content in spec.get("content", []):
                        found += used_names(content, f"{path}{label}.")
            continue
        if name in META_ARGUMENTS:
            continue
        found.append((path, name))
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for block in value:
                found += used_names(block, f"{path}{name}.")
    return found


def schema_for(source: Path, kind: str) -> Schema:
    texts = {path: (source / path).read_text(encoding="utf-8") for path in SCHEMA_FILES[kind]}
    return Schema(list(texts.values()), [text for path, text in texts.items() if path in TOP_LEVEL_FILES])


def test_the_source_is_the_pinned_provider(source):
    go_mod = (source / "go.mod").read_text(encoding="utf-8")
    assert go_mod.startswith(f"module {versions.AZURERM_PROVIDER_MODULE}\n")
    assert (source / "internal" / "services" / "containers").is_dir()


@pytest.mark.parametrize("address", sorted(a for a in RESOURCES if a.split(".")[0] in SCHEMA_FILES))
def test_every_argument_is_in_the_providers_schema(source, address):
    kind = address.split(".")[0]
    schema = schema_for(source, kind)
    problems = []
    for path, name in used_names(RESOURCES[address]):
        block = path.rstrip(".").split(".")[-1] if path else ""
        if block in HELPER_BLOCKS:
            names, helper = HELPER_BLOCKS[block]
            if name not in names or helper not in schema.text:
                problems.append(f"{path}{name}: not an argument of the {block} block ({helper}...)")
            continue
        if not path and name not in schema.top:
            problems.append(f"{name}: not a top-level argument of {kind} in azurerm {versions.AZURERM_PROVIDER_VERSION}")
        elif not schema.has(name):
            problems.append(f"{path}{name}: not in the schema of {kind} in azurerm {versions.AZURERM_PROVIDER_VERSION}")
        elif schema.deprecated(name):
            problems.append(f"{path}{name}: deprecated in azurerm {versions.AZURERM_PROVIDER_VERSION}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("address", sorted(a for a in RESOURCES if a.split(".")[0] in SCHEMA_FILES))
def test_every_required_argument_is_set(source, address):
    schema = schema_for(source, address.split(".")[0])
    assert len(schema.top) >= 3, f"few top-level arguments found for {address}: is the schema parser reading the right map?"
    required = schema.required()
    set_here = {name for path, name in used_names(RESOURCES[address]) if not path}
    assert required <= set_here, f"{address} lacks {sorted(required - set_here)}"


def test_the_provider_block_uses_the_providers_own_settings(source):
    schema = schema_for(source, "provider")
    provider = clean(parse("terraform.tf")["provider"][0]["azurerm"])
    names = used_names(provider)
    assert ("", "use_cli") in names
    missing = [f"{path}{name}" for path, name in names if not schema.has(name)]
    assert not missing, missing
