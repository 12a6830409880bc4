"""Versions are declared once (scripts/aks_ray/versions.py) and everything else agrees."""

from __future__ import annotations

import re
from pathlib import Path

import tomllib

from aks_ray import versions
from aks_ray.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]


def pins() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = project["dependencies"] + [d for extra in project["optional-dependencies"].values() for d in extra]
    found = {}
    for line in lines:
        match = re.match(r"^([A-Za-z0-9_.\-]+)(\[[^\]]*\])?==(\S+)$", line)
        assert match, f"not pinned exactly: {line}"
        found[match.group(1).lower()] = match.group(3)
    return found


def test_every_python_dependency_is_pinned_and_ray_and_torch_match():
    found = pins()
    assert found["ray"] == versions.RAY_VERSION
    assert found["torch"] == versions.TORCH_VERSION
    assert "torchvision" not in found


def test_the_base_install_never_pulls_torch_or_ray():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not any(d.startswith(("torch", "ray")) for d in project["dependencies"])


def test_the_readme_versions_table_matches():
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("## Versions") :]
    for _, version in versions.versions_table():
        assert f"| {version} |" in table, version


def test_help_shows_the_pinned_versions():
    text = build_parser().format_help()
    for _, version in versions.versions_table():
        assert version in text


def test_the_ray_image_is_the_ray_version_the_local_target_runs():
    assert versions.RAY_IMAGE.split(":")[1].startswith(versions.RAY_VERSION)
