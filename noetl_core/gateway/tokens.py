"""Gateway bearer tokens: who calls, what they may do, and on which playbooks.

A token is `<payload>.<signature>`: the payload is base64url JSON `{sub, scp, paths, iat,
exp}`, the signature HMAC-SHA256 of the payload text under the platform's gateway key
(`NOETL_GATEWAY_KEY`, from Secret Manager in the cloud; else `NOETL_HOME/gateway.key`,
made once with mode 0600, which the CLI on the same machine reads). Scopes: `read`
(list and follow executions, the catalog, schedules), `invoke` (start and cancel) and
`admin` (register playbooks; implies the others). `paths` are catalog path patterns
(`reports/*`, `*`) that the token may start, cancel and read.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import hmac
import json
import os
from dataclasses import dataclass
from pathlib import Path

from .. import keyfile
from ..errors import NoetlError

SCOPES = ("read", "invoke", "admin")
DEFAULT_TTL = 3600.0


class TokenError(NoetlError):
    """A missing, forged, malformed or expired token (HTTP 401)."""

    code = "unauthenticated"


class Forbidden(NoetlError):
    """A valid token without the scope or path asked for (HTTP 403)."""

    code = "forbidden"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Claims:
    subject: str
    scopes: frozenset[str]
    paths: tuple[str, ...]
    expires: float

    def require(self, scope: str, path: str | None = None) -> None:
        """Raise Forbidden unless the token has `scope` (admin has every scope) and, for
        a playbook path, a pattern that matches it."""
        if scope not in self.scopes and "admin" not in self.scopes:
            raise Forbidden(f"the token of {self.subject!r} has no {scope!r} scope")
        if path is not None and not self.may(path):
            raise Forbidden(f"the token of {self.subject!r} may not use playbook {path!r}")

    def may(self, path: str) -> bool:
        return any(fnmatch.fnmatchcase(path, pattern) for pattern in self.paths)


def load_key(configured: str | None, home: Path) -> bytes:
    if configured:
        return configured.encode()
    return keyfile.ensure(home / "gateway.key", lambda: _b64(os.urandom(32))).encode()


def create(
    key: bytes,
    subject: str,
    scopes: list[str],
    paths: list[str],
    now: float,
    ttl: float = DEFAULT_TTL,
) -> str:
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        raise NoetlError(f"scopes must be among {', '.join(SCOPES)}; got {scopes}")
    if not subject or not paths or ttl <= 0:
        raise NoetlError("a token needs a subject, at least one path pattern and a ttl > 0")
    body = {"sub": subject, "scp": sorted(scopes), "paths": paths, "iat": round(now)}
    body["exp"] = round(now + ttl)
    payload = _b64(json.dumps(body, separators=(",", ":")).encode())
    return f"{payload}.{_b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())}"


def verify(key: bytes, header: str | None, now: float) -> Claims:
    """The claims of `Authorization: Bearer <token>`; TokenError when it is missing,
    forged, malformed or expired."""
    if not header or not header.startswith("Bearer "):
        raise TokenError("a bearer token is required (Authorization: Bearer <token>)")
    payload, _, signature = header.removeprefix("Bearer ").strip().partition(".")
    expected = _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())
    if not signature or not hmac.compare_digest(signature, expected):
        raise TokenError("the bearer token is not valid")
    try:
        body = json.loads(_unb64(payload))
        claims = Claims(
            str(body["sub"]),
            frozenset(str(s) for s in body["scp"]),
            tuple(str(p) for p in body["paths"]),
            float(body["exp"]),
        )
    except (ValueError, TypeError, KeyError):
        raise TokenError("the bearer token is not valid") from None
    if now >= claims.expires:
        raise TokenError("the bearer token has expired")
    return claims
