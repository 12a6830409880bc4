"""The package's shape: no step module imports another, and the import graph has no cycle.

Read from the source with ast (every import, at any depth, function bodies
included), so an import hidden inside a function counts like any other.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from aks_ray import pipeline

PACKAGE = Path(pipeline.__file__).resolve().parent
# The modules that put the steps together, and so import them.
ORCHESTRATORS = {"pipeline", "cli"}


def imports_of(module: str) -> set[str]:
    """The package's own modules that `module` imports, anywhere in its source."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("aks_ray"):
            parts = (node.module or "").split(".")
            found.update([parts[1]] if len(parts) > 1 else [alias.name for alias in node.names])
        elif isinstance(node, ast.Import):
            found.update(alias.name.split(".")[1] for alias in node.names if alias.name.startswith("aks_ray."))
    return {name for name in found if (PACKAGE / f"{name}.py").is_file()} - {module}


MODULES = sorted(path.stem for path in PACKAGE.glob("*.py") if path.stem != "__init__")
GRAPH = {module: imports_of(module) for module in MODULES}
STEP_MODULES = sorted({step.function.__module__.split(".")[-1] for step in pipeline.STEPS if step.function is not None})


def test_the_step_modules_are_found():
    # Guard against a test that passes because it looked at nothing.
    assert {"infra", "credentials", "operator", "job", "local", "collect", "cleanup", "validate"} <= set(STEP_MODULES)


@pytest.mark.parametrize("module", STEP_MODULES)
def test_no_step_module_imports_another(module):
    others = (set(STEP_MODULES) - {module}) & GRAPH[module]
    assert not others, f"{module} imports the step module(s) {sorted(others)}: share through rundir or a shared module instead"


def test_only_the_orchestrators_import_the_pipeline():
    importers = {module for module, imported in GRAPH.items() if "pipeline" in imported}
    assert importers <= ORCHESTRATORS


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = "open"
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                return [*path[path.index(target) :], target] if target in path else [*path, target]
            if target not in state:
                cycle = visit(target, [*path, target])
                if cycle:
                    return cycle
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node, [node])
            if cycle:
                return cycle
    return None


def test_the_import_graph_has_no_cycle():
    assert find_cycle(GRAPH) is None, f"import cycle: {' -> '.join(find_cycle(GRAPH) or [])}"


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_imports_inside_functions_are_seen(tmp_path, monkeypatch):
    # The hiding place the old code used: an import of a sibling inside a function body.
    monkeypatch.setattr(__import__(__name__), "PACKAGE", tmp_path)
    (tmp_path / "one.py").write_text("def f():\n    from .two import g\n    return g\n")
    (tmp_path / "two.py").write_text("")
    assert imports_of("one") == {"two"}


def test_validate_runs_with_the_standard_library_alone(tmp_path):
    """The action validates from its own source before installing anything: -S leaves out every installed package."""
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(PACKAGE.parent), "HOME": str(tmp_path)}
    good = subprocess.run(
        [sys.executable, "-S", "-m", "aks_ray.validate", "--target", "kubeconfig", "--output-dir", str(tmp_path / "out")],
        capture_output=True, text=True, env=env, cwd=tmp_path, check=False, timeout=60,
    )  # fmt: skip
    assert good.returncode == 0, good.stderr
    assert "inputs are valid: target=kubeconfig" in good.stderr
    bad = subprocess.run(
        [sys.executable, "-S", "-m", "aks_ray.validate", "--workers", "0"],
        capture_output=True, text=True, env=env, cwd=tmp_path, check=False, timeout=60,
    )  # fmt: skip
    assert bad.returncode == 2 and "--workers" in bad.stderr, bad.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "aks-ray-output").exists()
