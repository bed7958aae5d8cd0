"""`artifact`'s declaration (see `noetl_core.tools.artifact`)."""

from __future__ import annotations

from typing import Any

RAW_FIELDS: frozenset[str] = frozenset()


def validate(fields: dict[str, Any]) -> list[tuple[str, str]]:
    if fields.get("action", "get") != "get":
        return [("action", f"unknown artifact action {fields.get('action')!r} (known: get)")]
    return []
