"""The fake `terraform` (tests/fakes/terraform) put first on PATH, and a copy of terraform/ to run it in."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
FAKES = REPO / "tests" / "fakes"


class FakeTerraform:
    def __init__(self, tmp_path: Path, monkeypatch) -> None:
        self.monkeypatch = monkeypatch
        self.log = tmp_path / "terraform-calls.jsonl"
        self.dir = tmp_path / "tf"
        shutil.copytree(REPO / "terraform", self.dir, ignore=shutil.ignore_patterns(".terraform", "*.tfstate*", "*_override.tf"))
        self.files = tmp_path / "tf-answers"
        self.files.mkdir()
        monkeypatch.setenv("PATH", f"{FAKES}:{monkeypatch_path()}")
        monkeypatch.setenv("FAKE_TERRAFORM_LOG", str(self.log))

    def exit(self, command: str, code: int) -> None:
        self.monkeypatch.setenv(f"FAKE_TERRAFORM_EXIT_{command.upper()}", str(code))

    def stderr(self, command: str, text: str) -> None:
        self.monkeypatch.setenv(f"FAKE_TERRAFORM_ERR_{command.upper()}", text)

    def stdout(self, command: str, doc: Any) -> None:
        path = self.files / f"{command}.json"
        path.write_text(json.dumps(doc))
        self.monkeypatch.setenv(f"FAKE_TERRAFORM_OUT_{command.upper()}", str(path))

    def state(self, addresses: list[str]) -> None:
        """What `terraform state list` prints: these addresses (none: an empty state)."""
        path = self.files / "state.txt"
        path.write_text("".join(f"{a}\n" for a in addresses))
        self.monkeypatch.setenv("FAKE_TERRAFORM_OUT_STATE", str(path))

    def calls(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def commands(self) -> list[str]:
        return [call["argv"][0] for call in self.calls()]

    def call(self, command: str) -> dict[str, Any]:
        found = [c for c in self.calls() if c["argv"][0] == command]
        assert len(found) == 1, f"terraform {command} ran {len(found)} times: {self.commands()}"
        return found[0]


def monkeypatch_path() -> str:
    import os

    return os.environ.get("PATH", "")
