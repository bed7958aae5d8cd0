"""Signed callback tokens: who may resume a waiting step, and until when.

A token is `<payload>.<signature>`: the payload is base64url JSON
`[execution_id, command_id, attempt, expires]`, the signature base64url
HMAC-SHA256(platform key, payload). Single use is enforced by the log (the step's record
is created once); expiry by the token and by the step's timeout.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from . import keyfile
from .errors import NoetlError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


class CallbackError(NoetlError):
    """A callback that cannot be taken; `status` is the HTTP answer to give."""

    code = "callback_refused"

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Grant:
    execution_id: str
    command_id: str
    attempt: int
    expires: float


def seconds(value: object, where: str) -> float:
    """`30`, `"30s"`, `"5m"`, `"1h"`, `"2d"`, `"250ms"` -> seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    found = _DURATION.match(str(value)) if isinstance(value, str) else None
    if found is None:
        raise NoetlError(f"{where}: {value!r} is not a duration (e.g. 30, '45s', '5m', '1h')")
    return float(found[1]) * _UNITS[found[2]]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(key: bytes, grant: Grant) -> str:
    body = [grant.execution_id, grant.command_id, grant.attempt, round(grant.expires, 3)]
    payload = _b64(json.dumps(body, separators=(",", ":")).encode())
    signature = _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())
    return f"{payload}.{signature}"


def verify(key: bytes, token: str, now: float) -> Grant:
    """The grant of a well-signed, unexpired token; else a CallbackError (401 / 410)."""
    payload, _, signature = token.partition(".")
    expected = _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())
    if not signature or not hmac.compare_digest(signature, expected):
        raise CallbackError("the callback token is not valid", 401)
    try:
        execution_id, command_id, attempt, expires = json.loads(_unb64(payload))
    except (ValueError, TypeError):
        raise CallbackError("the callback token is not valid", 401) from None
    grant = Grant(str(execution_id), str(command_id), int(attempt), float(expires))
    if now > grant.expires:
        raise CallbackError("the callback token has expired", 410)
    return grant


def load_key(configured: str | None, home: Path) -> bytes:
    """The platform key: `NOETL_CALLBACK_KEY`, else `NOETL_HOME/callback.key` (made once,
    mode 0600)."""
    if configured:
        return configured.encode()
    return keyfile.ensure(home / "callback.key", lambda: _b64(os.urandom(32))).encode()
