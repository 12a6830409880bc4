"""Write the README's inputs and outputs tables from action.yml, or check them.

    python scripts/tools/action_docs.py          # rewrite the tables in README.md
    python scripts/tools/action_docs.py --check  # exit 1 if README.md is out of date

The tables sit between `<!-- action-docs:inputs -->` and
`<!-- /action-docs:inputs -->` (and the same for outputs). Each input's
description ends with "Default: `value`." (or "Default: empty."), which becomes
the table's default column; tests/unit/test_action_yml.py checks those defaults
against scripts/aks_ray/config.py.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SENTENCE = re.compile(r"^(?P<text>.*?)\s*Default: (?P<default>empty|`[^`]*`)\.$", re.S)


def split_description(description: str) -> tuple[str, str]:
    """('what it does', 'its default as written') from an input's description."""
    text = " ".join(description.split())
    match = DEFAULT_SENTENCE.match(text)
    if not match:
        raise ValueError(f"description does not end with 'Default: `value`.' or 'Default: empty.': {text!r}")
    return match.group("text"), match.group("default")


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def inputs_table(action: dict[str, Any]) -> str:
    rows = ["| input | what it sets | default |", "| --- | --- | --- |"]
    for name, spec in action["inputs"].items():
        text, default = split_description(spec["description"])
        rows.append(f"| `{name}` | {_cell(text)} | {_cell(default)} |")
    return "\n".join(rows)


def outputs_table(action: dict[str, Any]) -> str:
    rows = ["| output | what it holds |", "| --- | --- |"]
    for name, spec in action["outputs"].items():
        rows.append(f"| `{name}` | {_cell(' '.join(spec['description'].split()))} |")
    return "\n".join(rows)


def render(readme: str, action: dict[str, Any]) -> str:
    """The README with both tables replaced; raises if a marker pair is missing."""
    for section, table in (("inputs", inputs_table(action)), ("outputs", outputs_table(action))):
        pattern = re.compile(rf"(<!-- action-docs:{section} -->\n)(?:.*?\n)?(<!-- /action-docs:{section} -->)", re.S)
        if not pattern.search(readme):
            raise ValueError(f"README.md lacks the <!-- action-docs:{section} --> ... <!-- /action-docs:{section} --> markers")
        readme = pattern.sub(lambda m, table=table: m.group(1) + table + "\n" + m.group(2), readme)
    return readme


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if README.md is out of date; change nothing")
    parser.add_argument("--action", type=Path, default=ROOT / "action.yml")
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    args = parser.parse_args(argv)
    action = yaml.safe_load(args.action.read_text(encoding="utf-8"))
    current = args.readme.read_text(encoding="utf-8")
    wanted = render(current, action)
    if current == wanted:
        return 0
    if args.check:
        print(
            f"{args.readme}: the inputs/outputs tables differ from {args.action}; run python scripts/tools/action_docs.py", file=sys.stderr
        )
        return 1
    args.readme.write_text(wanted, encoding="utf-8")
    print(f"{args.readme}: tables updated from {args.action}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
