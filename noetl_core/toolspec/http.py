"""`http`'s declaration (see `noetl_core.tools.http`): each field's expected form."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..templating import is_template

RAW_FIELDS: frozenset[str] = frozenset()
RESPONSE_TYPES = ("json", "text", "binary")
PHASES = ("connect", "read", "write", "pool")
AUTH_TYPES = ("bearer", "basic", "api_key")


def _number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    try:
        return float(value) > 0
    except (TypeError, ValueError):
        return is_template(value)


def _is_timeout(value: Any) -> bool:
    if isinstance(value, dict):
        return set(value) <= set(PHASES) and all(_number(v) for v in value.values())
    return _number(value)


def _is_auth(value: Any) -> bool:
    if not isinstance(value, dict):
        return isinstance(value, str) and bool(value)
    kind = value.get("type")
    named = "credential" in value or "alias" in value or "token" in value
    return named or kind in AUTH_TYPES or is_template(kind)


_URL = (lambda v: isinstance(v, str), "a URL")
_BODY = (lambda v: isinstance(v, str | bytes | dict), "a string or a form mapping")
CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "method": (lambda v: isinstance(v, str) and bool(v.strip()), "a method such as GET or POST"),
    "url": _URL,
    "endpoint": _URL,
    "headers": (lambda v: isinstance(v, dict), "a mapping of header names to values"),
    "params": (lambda v: isinstance(v, dict | list), "a mapping of query parameters"),
    "json": (lambda v: True, "any JSON value"),
    "payload": (lambda v: True, "any JSON value (the JSON body; query parameters for GET)"),
    "body": _BODY,
    "data": _BODY,
    "timeout": (_is_timeout, "seconds (a positive number) or {connect, read, write, pool}"),
    "auth": (_is_auth, "a credential alias, {credential: alias} or {type: bearer|basic|api_key}"),
    "response_type": (lambda v: v in RESPONSE_TYPES, "json, text or binary"),
    "follow_redirects": (lambda v: isinstance(v, bool), "true or false"),
    "verify": (lambda v: isinstance(v, bool | str), "true, false or a CA bundle path"),
    "input": (lambda v: isinstance(v, dict), "a mapping"),
}


def validate(fields: dict[str, Any]) -> list[tuple[str, str]]:
    problems = []
    for key, value in fields.items():
        check = CHECKS.get(key)
        if check is None:
            known = ", ".join(k for k in CHECKS if k != "input")
            problems.append((key, f"`http` takes no field {key!r} (fields: {known})"))
        elif value is not None and not is_template(value) and not check[0](value):
            shown = repr(value) if key in ("method", "response_type") else type(value).__name__
            problems.append((key, f"`{key}` must be {check[1]}, got {shown}"))
    if fields.get("url", fields.get("endpoint")) is None:
        problems.append(("url", "`http` needs `url`"))
    if fields.get("json") is not None and (fields.get("body") or fields.get("data")) is not None:
        problems.append(("json", "give the body once: `json`, or `body` / `data`"))
    others = [k for k in ("json", "body", "data") if fields.get(k) is not None]
    if fields.get("payload") is not None and others:
        problems.append(("payload", f"give the body once: `payload` or `{others[0]}`"))
    return problems
