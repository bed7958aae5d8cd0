"""`wait`'s declaration (see `noetl_core.tools.wait`)."""

from __future__ import annotations

from typing import Any

RAW_FIELDS: frozenset[str] = frozenset()


def validate(fields: dict[str, Any]) -> list[tuple[str, str]]:
    if ("seconds" in fields) == ("until" in fields):
        return [("seconds", "`wait` needs `seconds` (a duration) or `until` (a time), one of them")]
    return []
