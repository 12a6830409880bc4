"""One redaction filter for everything aks-ray prints, raises or writes.

Secrets reach text in ways no single `::add-mask::` can cover: a child
process's captured stderr (helm, terraform, kubectl, the exec credential
plugin) pasted into an exception, a library logging what a subprocess said, a
Kubernetes object with a literal password in its env. So every such text goes
through `text()` before it is printed, raised or stored:

- the exact values registered with `remember()` (every value gha.add_mask
  masks, and the values of the environment's secret-named variables);
- JWT-shaped strings (GitHub OIDC tokens, Azure AD access tokens);
- `::add-mask::` commands, wherever they appear (a mask inside a captured line
  is not a command to the runner, just the secret in clear text);
- passwords and tokens inside URLs (`https://user:secret@host`);
- `Bearer`/`Basic` authorization values;
- `--token=...`, `--password ...` and similar arguments;
- `NAME=value` and `name: value` where the name looks like a credential.

`RedactingFilter` applies it to every log record; `object()` to API objects
before they are written to the outputs (it drops managedFields and the
last-applied annotation too). The module has no dependencies beyond the
standard library: the validate step imports it before any install.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from typing import Any

REDACTED = "<redacted>"

# Names that say "this value is a credential". Shared with config.secret_values.
SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|CLIENT_?KEY", re.IGNORECASE)

# header.payload.signature, base64url; header and payload are JSON objects, so both start with "eyJ".
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{6,}\.eyJ[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]*")
_ADD_MASK = re.compile(r"::add-mask::.*")
# scheme://userinfo@ : the password (or a lone token as user name) goes.
_URL_USER_PASSWORD = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]*://)([^/\s:@]*):([^/\s@]+)@")
_URL_USER_TOKEN = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]*://)([^/\s:@]{16,})@")
_AUTHORIZATION = re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
_SECRET_ARG = re.compile(
    r"(--[A-Za-z0-9-]*(?:token|password|passwd|secret|api-key|access-key|private-key)[A-Za-z0-9-]*)(=|[ \t]+)(?!-)(\S+)", re.IGNORECASE
)
# Not CREDENTIAL here: "credentials: <what happened>" is how the exec plugin's own messages begin.
_SECRET_ASSIGNMENT = re.compile(
    r"\b([A-Za-z0-9_.-]*(?:TOKEN|SECRET|PASSWORD|PASSWD|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|CLIENT_?KEY)[A-Za-z0-9_.-]*)"
    r"(\"?'?[ \t]*[:=][ \t]*\"?'?)([^\s\"',;}&]+)",
    re.IGNORECASE,
)
# Values of secret-named variables too short or too common to replace everywhere safely.
_MIN_REMEMBERED = 8

_known: set[str] = set()
_known_lock = threading.Lock()


def remember(values: Iterable[str]) -> None:
    """Replace these exact values everywhere from now on (each line of a multi-line value)."""
    with _known_lock:
        for value in values:
            for line in str(value).splitlines():
                line = line.strip()
                if len(line) >= _MIN_REMEMBERED:
                    _known.add(line)


def forget_all() -> None:
    """Tests only: start again with no remembered values."""
    with _known_lock:
        _known.clear()


def _assignment(match: re.Match[str]) -> str:
    value = match.group(3)
    # A word of prose ("id-token: write", "token: required") is not a secret: a
    # secret value has a digit or is long (a password, an opaque token).
    looks_secret = len(value) >= 6 and (any(c.isdigit() for c in value) or len(value) >= 16)
    if value.startswith(REDACTED) or not looks_secret:
        return match.group(0)
    return f"{match.group(1)}{match.group(2)}{REDACTED}"


def text(value: str) -> str:
    """`value` with every secret this module can recognise replaced by <redacted>."""
    if not value:
        return value
    with _known_lock:
        known = sorted(_known, key=len, reverse=True)
    for secret in known:
        if secret in value:
            value = value.replace(secret, REDACTED)
    value = _ADD_MASK.sub(f"::add-mask::{REDACTED}", value)
    value = _JWT.sub(REDACTED, value)
    value = _URL_USER_PASSWORD.sub(lambda m: f"{m.group(1)}{m.group(2)}:{REDACTED}@", value)
    value = _URL_USER_TOKEN.sub(lambda m: f"{m.group(1)}{REDACTED}@", value)
    value = _AUTHORIZATION.sub(lambda m: f"{m.group(1)} {REDACTED}", value)
    value = _SECRET_ARG.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", value)
    return _SECRET_ASSIGNMENT.sub(_assignment, value)


def url(value: str) -> str:
    """A URL fit to print: its user name and password removed."""
    return re.sub(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@]*@", r"\1", value)


def object(obj: Any) -> Any:
    """A copy of an API object fit for the outputs.

    Literal env values whose name looks like a credential become <redacted>,
    managedFields and kubectl's last-applied annotation (a copy of the whole
    object) go, and every string goes through text().
    """
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            if key == "managedFields":
                continue
            out[key] = object(value)
        if isinstance(out.get("name"), str) and isinstance(out.get("value"), str) and SECRET_NAME.search(out["name"]):
            out["value"] = REDACTED
        if "kubectl.kubernetes.io/last-applied-configuration" in out:
            out["kubectl.kubernetes.io/last-applied-configuration"] = REDACTED
        return out
    if isinstance(obj, list):
        return [object(item) for item in obj]
    if isinstance(obj, str):
        return text(obj)
    return obj


class RedactingFilter(logging.Filter):
    """Redacts a record's message, arguments and traceback before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: let logging report it as it always does
            return True
        record.msg, record.args = text(message), None
        if record.exc_info:
            formatter = logging.Formatter()
            record.exc_text = text(formatter.formatException(record.exc_info))
            record.exc_info = None
        if record.stack_info:
            record.stack_info = text(record.stack_info)
        return True


def install_logging(logger: logging.Logger | None = None) -> None:
    """Put the filter on every handler of `logger` (the root logger by default).

    On the handlers, not the logger: a logger's filters see only its own
    records, a handler's see every record that reaches it (the kubernetes
    client's and azure-core's loggers included).
    """
    logger = logger or logging.getLogger()
    for handler in logger.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
