"""The action's hash-locked requirements (requirements/*.txt) match pyproject.toml.

scripts/tools/lock_requirements.py writes them with the pinned uv; these checks
are offline: every direct dependency of pyproject.toml (and of the train extra,
for the local target's lock) is locked at exactly its pin, the build backend is
locked too, and every entry carries SHA-256 hashes, which is what lets the
action's install step use `pip install --require-hashes`.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import tomllib

from aks_ray import versions

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
LOCKS = {"action.txt": (), "action-train.txt": ("train",)}
ENTRY = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;\\]+)(\s*;[^\\]*)?\s*\\?$")


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_lock(text: str) -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes); one entry per package (a universal lock may split one by markers)."""
    entries: dict[str, tuple[str, list[str]]] = {}
    current = None
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line.startswith(" "):
            match = ENTRY.match(line)
            assert match, f"not a pinned requirement: {line!r}"
            current = normalise(match.group(1))
            version = match.group(3)
            previous = entries.get(current)
            entries[current] = (version if previous is None else previous[0], previous[1] if previous else [])
            continue
        hashed = re.fullmatch(r"\s+--hash=sha256:([0-9a-f]{64})\s*\\?", line)
        assert hashed and current, f"not a hash line: {line!r}"
        entries[current][1].append(hashed.group(1))
    return entries


def direct_pins(extras: tuple[str, ...]) -> dict[str, str]:
    requirements = list(PYPROJECT["project"]["dependencies"])
    for extra in extras:
        requirements += PYPROJECT["project"]["optional-dependencies"][extra]
    pins = {}
    for requirement in requirements:
        match = re.fullmatch(r"([A-Za-z0-9._-]+)(\[[^\]]*\])?==([^\s;]+)", requirement.strip())
        assert match, f"pyproject.toml pins every dependency exactly: {requirement!r}"
        pins[normalise(match.group(1))] = match.group(3)
    return pins


@pytest.mark.parametrize(("name", "extras"), LOCKS.items(), ids=LOCKS.keys())
def test_lock_pins_exactly_pyprojects_dependencies_with_hashes(name, extras):
    text = (ROOT / "requirements" / name).read_text(encoding="utf-8")
    lock = parse_lock(text)
    for package, version in direct_pins(extras).items():
        assert package in lock, f"{package} from pyproject.toml is missing from requirements/{name}: run scripts/tools/lock_requirements.py"
        assert lock[package][0] == version, f"{package}: pyproject.toml pins {version}, requirements/{name} {lock[package][0]}"
    for package, (_version, hashes) in lock.items():
        assert hashes, f"{package} has no hash: pip --require-hashes would refuse the file"
    assert "setuptools" in lock, "the build backend is locked, so the editable install needs no index"
    assert f"(uv {versions.UV_VERSION})" in text.splitlines()[1], "written by the pinned uv"


def test_the_train_lock_is_the_base_lock_plus_the_training_stack():
    base = parse_lock((ROOT / "requirements" / "action.txt").read_text(encoding="utf-8"))
    train = parse_lock((ROOT / "requirements" / "action-train.txt").read_text(encoding="utf-8"))
    assert set(base) <= set(train)
    assert {"ray", "torch"} <= set(train) - set(base)


def test_the_parser_refuses_an_unhashed_or_unpinned_entry():
    with pytest.raises(AssertionError, match="not a pinned requirement"):
        parse_lock("kubernetes>=37\n")
    assert parse_lock("pyyaml==6.0.4\n") == {"pyyaml": ("6.0.4", [])}, "parsed, and then refused by the test above for lacking hashes"
