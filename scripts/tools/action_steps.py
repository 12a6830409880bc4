"""Write action.yml's steps from the pipeline's step list (scripts/aks_ray/pipeline.py), or check them.

    python scripts/tools/action_steps.py          # rewrite the `runs:` section of action.yml
    python scripts/tools/action_steps.py --check  # exit 1 if it is out of date

Everything from `runs:` to the end of action.yml is generated: one visible
step per phase, in pipeline.STEPS's order, each with the comment that says
why it exists, its `if:` from the step's targets and run condition, and its
env block. The inputs reach every step as one document,
`AKS_RAY_INPUTS: ${{ toJSON(inputs) }}`, which config.py reads, so adding an
option needs no edit here. The inputs and outputs above `runs:` stay written
by hand; tests/unit/test_action_yml.py checks them and that this file's
output is what action.yml holds.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

from aks_ray import config, pipeline  # noqa: E402 (needs the path above)

RUNS_MARKER = "\nruns:\n"
INPUTS_ENV = f"{config.INPUTS_ENV}: ${{{{ toJSON(inputs) }}}}"
VENV_BIN = "ACTION_VENV_BIN: ${{ steps.install.outputs.bin }}"
PYTHON = "PYTHON: ${{ steps.python.outputs.python-path || 'python3' }}"
OUTPUT_DIR = "${{ steps.local.outputs.artifacts-path || steps.collect.outputs.artifacts-path || steps.validate.outputs.output-dir }}"
UNDER_ACT, NOT_UNDER_ACT = "env.ACT == 'true'", "env.ACT != 'true'"
# The job's token, for the two steps that need it (baseline auto, comment) and for no other: never the training.
TOKEN_ENV = "GITHUB_TOKEN: ${{ github.token }}"  # noqa: S105 (an expression GitHub fills in, not a secret)
TOKEN_STEPS = ("validate", "verdict")
SETUP_PYTHON = "actions/setup-python@a26af69be951a213d495a4c3e4e4022e16d87065 # v5.6.0"
UPLOAD_ARTIFACT = "actions/upload-artifact@ea165f8d65b6e75b540449e92b4886f43607fa02 # v4.6.2"
SETUP_TERRAFORM = "hashicorp/setup-terraform@dfe3c3f87815947d99a8997f908cb6525fc44e9e # v4.0.1"


def target_condition(step: pipeline.Step) -> str:
    if set(step.targets) == set(config.TARGETS):
        return ""
    return " || ".join(f"steps.validate.outputs.target == '{target}'" for target in step.targets)


def condition(step: pipeline.Step) -> str:
    """The step's `if:`: the same rule as pipeline.should_run, in GitHub's expression language."""
    targets = target_condition(step)
    if step.after is None:
        return targets  # and GitHub's implicit success(): every earlier step succeeded
    if step.after == "validate":
        return "always() && steps.validate.outcome == 'success'"
    attempted = " || ".join(f"steps.{step.after}.outcome == '{outcome}'" for outcome in ("success", "failure", "cancelled"))
    parts = ["always()", "steps.install.outcome == 'success'"]
    if targets:
        parts.append(f"({targets})" if " || " in targets else targets)
    parts.append(f"({attempted})")
    return " && ".join(parts)


def both(*conditions: str) -> str:
    present = [c for c in conditions if c]
    return " && ".join(present)


def title(step: pipeline.Step) -> str:
    if set(step.targets) == set(config.TARGETS):
        return step.title
    noun = "target" if len(step.targets) == 1 else "targets"
    return f"{step.title} ({noun} {', '.join(step.targets)})"


def comment(text: str) -> str:
    return "".join(f"    # {line}\n" for line in text.splitlines())


def block(why: str, *parts: list[str]) -> str:
    """One step: its comment, then its keys (given in parts), indented as in action.yml."""
    lines = [line for part in parts for line in part]
    return comment(why) + f"    - {lines[0]}\n" + "".join(f"      {line}\n" for line in lines[1:])


def if_line(expression: str) -> list[str]:
    return [f"if: {expression}"] if expression else []


def render_step(step: pipeline.Step) -> str:
    if step.id == "python":
        return (
            block(
                step.why,
                ["name: Set up Python", "id: python", *if_line(NOT_UNDER_ACT), f"uses: {SETUP_PYTHON}", "with:"],
                ["  python-version: ${{ inputs.python-version }}", "  update-environment: false"],
            )
            + "\n"
            + block(
                "act runs offline here and cannot fetch actions/setup-python: say so instead of skipping silently.",
                ["name: Set up Python (skipped under act)", *if_line(UNDER_ACT), "shell: bash"],
                [
                    "run: echo \"::notice title=aks-ray under act::skipped actions/setup-python (it needs GitHub's network); "
                    'using $(command -v python3), $(python3 --version)"'
                ],
            )
        )
    if step.id == "validate":
        # From the action's source with the caller's Python: nothing is installed yet. PYTHONSAFEPATH keeps a
        # module in the workspace (the working directory) from standing in for one of the package's.
        return block(
            step.why,
            [f"name: {title(step)}", "id: validate", *if_line(condition(step)), "shell: bash", "env:"],
            [f"  {INPUTS_ENV}", f"  {PYTHON}", f"  {TOKEN_ENV}", '  PYTHONSAFEPATH: "1"', "run: |"],
            ['  export PYTHONPATH="$GITHUB_ACTION_PATH/scripts"', '  exec "$PYTHON" -m aks_ray.validate'],
        )
    if step.id == "install":
        return block(
            step.why,
            [f"name: {title(step)}", "id: install", *if_line(condition(step)), "shell: bash", "env:"],
            [f"  {PYTHON}", "  TARGET: ${{ steps.validate.outputs.target }}", "run: |"],
            [
                '  venv="$RUNNER_TEMP/aks-ray-action/venv"',
                '  action="${GITHUB_ACTION_PATH%/}"',
                '  lock="$action/requirements/action.txt"',
                '  if [[ "$TARGET" == local ]]; then lock="$action/requirements/action-train.txt"; fi',
                '  echo "::group::Install aks-ray and ${lock##*/} into $venv"',
                '  "$PYTHON" -m venv "$venv"',
                "  # Every dependency pinned with its hashes (pip refuses any other file), then the action itself, offline.",
                '  pip=("$venv/bin/python" -m pip install --disable-pip-version-check --progress-bar off --quiet)',
                '  "${pip[@]}" --require-hashes --no-deps -r "$lock"',
                '  "${pip[@]}" --no-deps --no-index --no-build-isolation --editable "$action"',
                '  echo "::endgroup::"',
                '  echo "bin=$venv/bin" >> "$GITHUB_OUTPUT"',
            ],
        )
    if step.id == "terraform":
        missing = both(condition(step), "steps.terraform.outputs.present != 'true'")
        return (
            block(
                step.why,
                [f"name: {title(step)}", "id: terraform", *if_line(condition(step)), "shell: bash", "env:"],
                [f"  {PYTHON}", '  PYTHONSAFEPATH: "1"', "run: |"],
                [
                    '  export PYTHONPATH="$GITHUB_ACTION_PATH/scripts"',
                    '  version="$("$PYTHON" -c \'from aks_ray import versions; print(versions.TERRAFORM_VERSION)\')"',
                    '  echo "version=$version" >> "$GITHUB_OUTPUT"',
                    '  if terraform version -json 2>/dev/null | grep -q "\\"terraform_version\\": \\"$version\\""; then',
                    '    echo "Terraform $version is on PATH: $(command -v terraform)"',
                    '    echo "present=true" >> "$GITHUB_OUTPUT"',
                    "  else",
                    '    echo "present=false" >> "$GITHUB_OUTPUT"',
                    "  fi",
                ],
            )
            + "\n"
            + block(
                "Exactly the pinned Terraform; no wrapper, so aks-ray reads Terraform's own output and exit codes.",
                ["name: Set up Terraform (target aks)", *if_line(both(missing, NOT_UNDER_ACT)), f"uses: {SETUP_TERRAFORM}", "with:"],
                ["  terraform_version: ${{ steps.terraform.outputs.version }}", "  terraform_wrapper: false"],
            )
            + "\n"
            + block(
                "act runs offline here and cannot fetch hashicorp/setup-terraform: say so instead of skipping silently.",
                ["name: Set up Terraform (skipped under act)", *if_line(both(missing, UNDER_ACT)), "shell: bash", "env:"],
                [
                    "  VERSION: ${{ steps.terraform.outputs.version }}",
                    "run: echo \"::notice title=aks-ray under act::skipped hashicorp/setup-terraform (it needs GitHub's network); "
                    'infra plan needs Terraform $VERSION on PATH"',
                ],
            )
        )
    if step.id == "upload":
        return (
            block(
                step.why,
                [f"name: {title(step)}", *if_line(both(condition(step), NOT_UNDER_ACT)), f"uses: {UPLOAD_ARTIFACT}", "with:"],
                ["  name: ${{ steps.validate.outputs.artifact-name }}", f"  path: {OUTPUT_DIR}", "  if-no-files-found: warn"],
            )
            + "\n"
            + block(
                "act runs offline here and cannot fetch actions/upload-artifact: say where the outputs are instead.",
                [f"name: {title(step)} (skipped under act)", *if_line(both(condition(step), UNDER_ACT)), "shell: bash", "env:"],
                [
                    f"  OUTPUT_DIR: {OUTPUT_DIR}",
                    "run: echo \"::notice title=aks-ray under act::skipped actions/upload-artifact (it needs GitHub's network); "
                    'the outputs are in $OUTPUT_DIR"',
                ],
            )
        )
    if not step.command:
        raise ValueError(f"pipeline step {step.id!r} has no command and no template here")
    # `exec`: the runner's cancel signals (SIGINT, then SIGTERM) reach aks-ray itself, not a shell in between.
    return block(
        step.why,
        [f"name: {title(step)}", f"id: {step.id}", *if_line(condition(step)), "shell: bash", "env:"],
        [f"  {INPUTS_ENV}", f"  {VENV_BIN}", *([f"  {TOKEN_ENV}"] if step.id in TOKEN_STEPS else [])],
        [f'run: exec "$ACTION_VENV_BIN/aks-ray" {" ".join(step.command)}'],
    )


def runs_section(steps: tuple[pipeline.Step, ...] = pipeline.STEPS) -> str:
    body = "\n".join(render_step(step) for step in steps)
    return f"runs:\n  using: composite\n  steps:\n{body}"


def generate(current: str) -> str:
    """action.yml with its runs section written anew; everything above `runs:` is kept as it is."""
    head, found, _old = current.partition(RUNS_MARKER)
    if not found:
        raise ValueError("action.yml has no top-level `runs:`")
    return head + "\n" + runs_section()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if action.yml is out of date; change nothing")
    parser.add_argument("--action", type=Path, default=ROOT / "action.yml")
    args = parser.parse_args(argv)
    current = args.action.read_text(encoding="utf-8")
    wanted = generate(current)
    if wanted == current:
        return 0
    if args.check:
        print(f"{args.action}: its steps differ from pipeline.STEPS; run python scripts/tools/action_steps.py", file=sys.stderr)
        return 1
    args.action.write_text(wanted, encoding="utf-8")
    print(f"{args.action}: steps written from pipeline.STEPS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
