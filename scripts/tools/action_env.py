"""Rewrite the AKS_RAY_* lines of each `aks-ray` step in action.yml from the CLI's options.

    python scripts/tools/action_env.py          # rewrite action.yml's env blocks
    python scripts/tools/action_env.py --check  # exit 1 if they are out of date

A step that runs `aks-ray <command>` gets one `AKS_RAY_<OPTION>: ${{ inputs.<option> }}`
line for every option of the sections that command reads (scripts/aks_ray/cli.py),
in config.py's order; its other env lines are kept. After adding an option to
config.py, run this, add the input's description to action.yml, then
scripts/tools/action_docs.py for the README. tests/unit/test_action_yml.py checks
the result.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

from aks_ray import cli, config  # noqa: E402 (needs the path above)

# Options the action does not offer (tests/unit/test_action_yml.py says why).
CLI_ONLY_OPTIONS = {"dry-run", "yes"}
STEP_START = re.compile(r"^    - name: ", re.M)
AKS_RAY_CALL = re.compile(r'(?:"\$ACTION_VENV_BIN/aks-ray"|"\$PYTHON" -m aks_ray\.cli) ([a-z]+(?: [a-z]+)?)')
INPUT_LINE = re.compile(r"^        AKS_RAY_[A-Z0-9_]+: \$\{\{ inputs\.[a-z0-9-]+ \}\}\n", re.M)


def env_lines(words: tuple[str, ...]) -> str:
    sections = next(sections for command, _module, sections, _help in cli.COMMANDS if command == words)
    return "".join(
        f"        {config.env_name(f)}: ${{{{ inputs.{config.flag_name(f)} }}}}\n"
        for section in sections
        for f in dataclasses.fields(config.SECTIONS[section])
        if config.flag_name(f) not in CLI_ONLY_OPTIONS
    )


def sync_step(step: str) -> str:
    match = AKS_RAY_CALL.search(step)
    if not match:
        return step
    wanted = env_lines(tuple(match.group(1).split()))
    found = list(INPUT_LINE.finditer(step))
    if found:
        start = found[0].start()
        kept = INPUT_LINE.sub("", step[start:])
        return step[:start] + wanted + kept
    env = step.index("      env:\n") + len("      env:\n")
    return step[:env] + wanted + step[env:]


def sync(text: str) -> str:
    starts = [m.start() for m in STEP_START.finditer(text)] + [len(text)]
    head = text[: starts[0]]
    return head + "".join(sync_step(text[a:b]) for a, b in itertools.pairwise(starts))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if action.yml is out of date; change nothing")
    parser.add_argument("--action", type=Path, default=ROOT / "action.yml")
    args = parser.parse_args(argv)
    current = args.action.read_text(encoding="utf-8")
    wanted = sync(current)
    if wanted == current:
        return 0
    if args.check:
        print(f"{args.action}: env blocks differ from the CLI's options; run python scripts/tools/action_env.py", file=sys.stderr)
        return 1
    args.action.write_text(wanted, encoding="utf-8")
    options = [config.flag_name(f) for section in config.SECTIONS.values() for f in dataclasses.fields(section)]
    missing = [name for name in options if name not in CLI_ONLY_OPTIONS and f"\n  {name}:\n" not in wanted]
    print(f"{args.action}: env blocks updated" + (f"; add these inputs with a description: {', '.join(missing)}" if missing else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
