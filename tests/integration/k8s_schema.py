"""Validation of objects against a CRD's OpenAPI v3 schema, the way the API server does it.

jsonschema checks types, enums and required fields; unknown fields are refused
(the API server's strict field validation, which kubectl uses by default,
refuses them too, where the default pruning would drop a misspelt field
silently); the CRD's CEL rules (x-kubernetes-validations) are evaluated with
cel-python, except transition rules (oldSelf), which need an update.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import yaml


def crd_schema(crd_file: Path, version: str = "v1") -> dict[str, Any]:
    crd = yaml.safe_load(crd_file.read_text(encoding="utf-8"))
    for entry in crd["spec"]["versions"]:
        if entry["name"] == version:
            return entry["schema"]["openAPIV3Schema"]
    raise LookupError(f"{crd_file} has no version {version}")


def strict(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy that refuses unknown fields wherever the CRD does not keep them on purpose."""
    schema = copy.deepcopy(schema)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "properties" in node and "additionalProperties" not in node and not node.get("x-kubernetes-preserve-unknown-fields"):
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    # ObjectMeta is not described in a CRD: the API server validates it itself.
    schema.get("properties", {}).get("metadata", {}).pop("additionalProperties", None)
    return schema


def schema_errors(obj: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(strict(schema))
    return [f"{'/'.join(str(p) for p in error.absolute_path) or '(root)'}: {error.message}" for error in validator.iter_errors(obj)]


def cel_errors(obj: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """Evaluate every x-kubernetes-validations rule on the parts of `obj` that are present."""
    import celpy

    errors = []
    for rule in schema.get("x-kubernetes-validations", []):
        if "oldSelf" in rule["rule"]:
            continue
        env = celpy.Environment()
        program = env.program(env.compile(rule["rule"]))
        if not bool(program.evaluate({"self": celpy.json_to_cel(obj)})):
            errors.append(f"{path or '(root)'}: {rule.get('message') or rule['rule']}")
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key in schema.get("properties", {}):
                errors += cel_errors(value, schema["properties"][key], f"{path}/{key}")
            elif isinstance(schema.get("additionalProperties"), dict):
                errors += cel_errors(value, schema["additionalProperties"], f"{path}/{key}")
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for index, value in enumerate(obj):
            errors += cel_errors(value, schema["items"], f"{path}/{index}")
    return errors


def validate(obj: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    return schema_errors(obj, schema) + cel_errors(obj, schema)
