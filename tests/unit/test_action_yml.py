"""action.yml against the CLI it drives: inputs, defaults, env, steps, outputs, README tables."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import re
from pathlib import Path

import pytest
import yaml

from aks_ray import config, pipeline, report, versions
from aks_ray.errors import ConfigError
from aks_ray.rundir import Timings

ROOT = Path(__file__).resolve().parents[2]
ACTION_TEXT = (ROOT / "action.yml").read_text(encoding="utf-8")
ACTION = yaml.safe_load(ACTION_TEXT)
STEPS = ACTION["runs"]["steps"]

# Inputs of the action itself, with the default each declares in action.yml.
ACTION_ONLY_INPUTS = {"python-version": versions.PYTHON_VERSION}
# CLI options the action does not offer, and why.
CLI_ONLY_OPTIONS = {
    "dry-run": "the action's later steps need what the earlier ones created; dry runs are a CLI affair",
    "yes": "`infra sweep`, the one command that reads it, is run by hand or by a scheduled workflow, not by the action",
}
OPTIONS = {config.flag_name(f): f for section in config.SECTIONS.values() for f in dataclasses.fields(section)}
# The CLI from the private venv, or (validate, before the install) from the action's source.
AKS_RAY_CALL = re.compile(r'(?:"\$ACTION_VENV_BIN/aks-ray"|"\$PYTHON" -m aks_ray\.(?:cli|validate))(?: ([a-z]+(?: [a-z]+)?))?')
INPUTS_LINE = "${{ toJSON(inputs) }}"


def _load_tool(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


action_docs = _load_tool("action_docs")
action_steps = _load_tool("action_steps")


def stated_default(field: dataclasses.Field) -> str:
    """How an input's description must state config.py's default for it."""
    raw = field.metadata["raw_default"]
    if raw.startswith(str(config.PROJECT_ROOT)):
        raw = "<action>/" + Path(raw).relative_to(config.PROJECT_ROOT).as_posix()
    return f"`{raw}`" if raw else "empty"


def aks_ray_steps() -> list[tuple[dict, tuple[str, ...]]]:
    found = []
    for step in STEPS:
        match = AKS_RAY_CALL.search(step.get("run", ""))
        if match:
            found.append((step, tuple((match.group(1) or "validate").split())))
    return found


# ---------------------------------------------------------------- inputs


@pytest.mark.parametrize("name", list(ACTION["inputs"]))
def test_input_description_states_its_default(name):
    spec = ACTION["inputs"][name]
    _text, default = action_docs.split_description(spec["description"])
    if name == "target":
        # The one deliberate difference: the action is for AKS, the CLI for trying things locally.
        assert spec["default"] == "aks" and default == "`aks`"
        assert OPTIONS["target"].metadata["raw_default"] == "local"
    elif name in ACTION_ONLY_INPUTS:
        assert str(spec["default"]) == ACTION_ONLY_INPUTS[name]
        assert default == f"`{ACTION_ONLY_INPUTS[name]}`"
    else:
        # Declared once, in config.py: an empty input falls through to the CLI's default.
        assert "default" not in spec, f"{name}: its default belongs in config.py only"
        assert default == stated_default(OPTIONS[name])
    assert spec.get("required", False) is False


def test_inputs_are_the_cli_options():
    assert set(ACTION["inputs"]) - set(ACTION_ONLY_INPUTS) == set(OPTIONS) - set(CLI_ONLY_OPTIONS)


def test_inputs_are_kebab_case():
    for name in ACTION["inputs"]:
        assert re.fullmatch(r"[a-z][a-z0-9]*(-[a-z0-9]+)*", name), name


# ----------------------------------------------------------------- steps


@pytest.mark.parametrize("index", range(len(STEPS)), ids=[s["name"] for s in STEPS])
def test_step_has_a_name_shell_and_a_reason(index):
    step = STEPS[index]
    assert step.get("name")
    if "run" in step:
        assert step.get("shell") == "bash"
    # The line before each step is a comment saying why the step exists.
    lines = ACTION_TEXT[: ACTION_TEXT.index(f"    - name: {step['name']}\n")].rstrip("\n").splitlines()
    assert lines[-1].strip().startswith("#"), f"no comment above step {step['name']!r}"


@pytest.mark.parametrize("index", range(len(STEPS)), ids=[s["name"] for s in STEPS])
def test_no_expression_inside_run(index):
    """Values reach scripts through env:, never pasted into the script (injection, quoting)."""
    assert "${{" not in STEPS[index].get("run", "")


def test_steps_are_what_the_generator_writes_from_the_step_list():
    assert action_steps.generate(ACTION_TEXT) == ACTION_TEXT, "run: python scripts/tools/action_steps.py"


def test_the_generator_restores_a_changed_step():
    changed = ACTION_TEXT.replace('exec "$ACTION_VENV_BIN/aks-ray" job wait', 'exec "$ACTION_VENV_BIN/aks-ray" job submit', 1)
    assert changed != ACTION_TEXT and action_steps.generate(changed) == ACTION_TEXT


def test_one_action_step_per_pipeline_step_in_the_same_order():
    ids = [s.get("id") for s in STEPS if s.get("id")]
    assert ids == [step.id for step in pipeline.STEPS if step.id != "upload"]
    assert [words for _step, words in aks_ray_steps()] == [step.command for step in pipeline.STEPS if step.command]


@pytest.mark.parametrize("step, words", aks_ray_steps(), ids=[s["name"] for s, _ in aks_ray_steps()])
def test_every_aks_ray_step_gets_the_inputs_as_one_document(step, words):
    assert step["env"][config.INPUTS_ENV] == INPUTS_LINE
    # Nothing else of the inputs: one line per input per step is what the document replaced.
    assert not [name for name in step["env"] if name.startswith(config.ENV_PREFIX) and name != config.INPUTS_ENV]


@pytest.mark.parametrize("step, words", [(s, w) for s, w in aks_ray_steps() if w != ("validate",)], ids=lambda v: str(v))
def test_steps_exec_the_cli_so_a_cancel_reaches_it(step, words):
    """The runner signals the step's process only: without exec that is bash, which dies on
    SIGTERM and leaves the CLI (and its Terraform) running. tests/integration/test_cancel.py
    replays a cancel against these lines."""
    assert step["run"] == f'exec "$ACTION_VENV_BIN/aks-ray" {" ".join(words)}'


@pytest.mark.parametrize("step, words", [(s, w) for s, w in aks_ray_steps() if w != ("validate",)], ids=lambda v: str(v))
def test_steps_skip_themselves_for_other_targets_and_after_bad_input(step, words):
    condition = step.get("if", "")
    if step["id"] == "verdict":
        # Every target's outputs are judged; with no if:, GitHub's implicit success() skips it after bad input or a failed job.
        assert condition == "", step["name"]
        return
    assert "steps.validate.outputs.target" in condition, step["name"]


@pytest.mark.parametrize(("step_id", "after"), [("collect", "submit"), ("cleanup", "submit"), ("destroy", "infra-apply")])
def test_collection_and_cleanup_run_after_any_failure_once_there_is_something_to_handle(step_id, after):
    """always(), once the CLI is installed (so never after bad input) and the step that creates things has run."""
    step = next(s for s in STEPS if s.get("id") == step_id)
    assert step["if"].startswith("always() && steps.install.outcome == 'success' && ")
    ran = f"(steps.{after}.outcome == 'success' || steps.{after}.outcome == 'failure' || steps.{after}.outcome == 'cancelled')"
    assert step["if"].endswith(ran)


def test_upload_runs_always_after_validation_and_skips_visibly_under_act():
    upload = next(s for s in STEPS if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert upload["if"] == "always() && steps.validate.outcome == 'success' && env.ACT != 'true'"
    # The name is config.py's artifact-name, as validate resolved it: baseline auto looks for that same name.
    assert upload["with"]["name"] == "${{ steps.validate.outputs.artifact-name }}"


@pytest.mark.parametrize("index", [i for i, s in enumerate(STEPS) if "uses" in s], ids=lambda i: STEPS[i]["uses"].split("@")[0])
def test_remote_action_is_pinned_and_said_skipped_under_act(index):
    step = STEPS[index]
    action, _, ref = step["uses"].partition("@")
    assert re.fullmatch(r"[0-9a-f]{40}", ref), f"{action} is not pinned by commit SHA"
    assert "env.ACT != 'true'" in step["if"]
    twin = STEPS[index + 1]
    assert "env.ACT == 'true'" in twin["if"] and f"skipped {action}" in twin["run"], "the skip under act must be visible"


def test_validation_comes_before_any_install():
    ids = [s.get("id") for s in STEPS]
    assert ids.index("validate") < ids.index("install")
    validate = STEPS[ids.index("validate")]
    assert "pip" not in validate["run"] and 'exec "$PYTHON" -m aks_ray.validate' in validate["run"]
    # The workspace is the working directory: a module there must not stand in for one of the package's.
    assert validate["env"]["PYTHONSAFEPATH"] == "1"


def test_only_the_local_target_installs_the_training_extra():
    (install,) = [s for s in STEPS if "pip install" in s.get("run", "")]
    assert install["id"] == "install" and "if" not in install
    assert install["env"]["TARGET"] == "${{ steps.validate.outputs.target }}"
    assert 'if [[ "$TARGET" == local ]]; then lock="$action/requirements/action-train.txt"; fi' in install["run"]


def test_the_install_takes_only_hash_locked_dependencies():
    (install,) = [s for s in STEPS if "pip install" in s.get("run", "")]
    first, second = [line for line in install["run"].splitlines() if line.startswith('"${pip[@]}"')]
    assert "--require-hashes --no-deps -r" in first, "every dependency from the lock, with its hashes"
    assert "--no-deps --no-index" in second and "--editable" in second, "the action itself adds nothing from an index"


def test_the_inputs_document_reaches_the_options(tmp_path):
    """What toJSON(inputs) hands a step is read as AKS_RAY_<OPTION> would be; a flag or a variable still wins."""
    document = json.dumps({"epochs": "7", "workers": "", "target": "kubeconfig", "python-version": "3.11"})
    cfg = config.load({}, {config.INPUTS_ENV: document, "AKS_RAY_OUTPUT_DIR": str(tmp_path)})
    assert (cfg.training.epochs, cfg.training.workers, cfg.target) == (7, 2, "kubeconfig")
    cfg = config.load({"epochs": "9"}, {config.INPUTS_ENV: document, "AKS_RAY_SEED": "5"})
    assert (cfg.training.epochs, cfg.training.seed) == (9, 5)


def test_a_bad_value_in_the_inputs_document_names_the_input():
    with pytest.raises(ConfigError) as caught:
        config.load({}, {config.INPUTS_ENV: json.dumps({"workers": "0"})})
    assert "the action's input workers (--workers)" in caught.value.problems[0]
    with pytest.raises(ConfigError, match=config.INPUTS_ENV):
        config.load({}, {config.INPUTS_ENV: "not json"})


# --------------------------------------------------------------- outputs


def test_outputs_are_what_the_cli_writes():
    written = report.step_outputs({"final": {}}, report.RunOutcome(target="local", status="SUCCEEDED"), Timings(), Path("out"))
    # `verdict` is written by `aks-ray verdict` (scripts/aks_ray/verdict.py), after the outputs exist.
    assert set(ACTION["outputs"]) == {*written, "verdict"}


@pytest.mark.parametrize("name", list(ACTION["outputs"]))
def test_output_comes_from_steps_that_exist_and_can_write_it(name):
    ids = {s.get("id") for s in STEPS}
    references = re.findall(r"steps\.([a-z-]+)\.outputs\.([a-z-]+)", ACTION["outputs"][name]["value"])
    assert references
    for step_id, output in references:
        assert step_id in ids, f"{name}: no step with id {step_id}"
        assert output == name or (step_id, output) == ("validate", "output-dir")


# ---------------------------------------------------------------- README


def test_readme_tables_match_action_yml():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert action_docs.render(readme, ACTION) == readme, "run: python scripts/tools/action_docs.py"


def test_action_docs_rejects_a_description_without_its_default():
    with pytest.raises(ValueError, match="Default"):
        action_docs.split_description("Number of workers.")


def test_action_docs_check_and_write(tmp_path, capsys):
    readme = tmp_path / "README.md"
    inputs = "<!-- action-docs:inputs -->\nstale\n<!-- /action-docs:inputs -->\n"
    readme.write_text("intro\n" + inputs + "<!-- action-docs:outputs -->\n<!-- /action-docs:outputs -->\n")
    args = ["--action", str(ROOT / "action.yml"), "--readme", str(readme)]
    assert action_docs.main([*args, "--check"]) == 1
    assert "stale" in readme.read_text()
    assert action_docs.main(args) == 0
    assert "| `epochs` | Training epochs. | `3` |" in readme.read_text()
    assert action_docs.main([*args, "--check"]) == 0
    capsys.readouterr()
