"""`workbook`'s declaration (see `noetl_core.tools.workbook`)."""

from __future__ import annotations

from typing import Any

RAW_FIELDS: frozenset[str] = frozenset()


def validate(fields: dict[str, Any]) -> list[tuple[str, str]]:
    if not isinstance(fields.get("name"), str):
        return [("name", "`workbook` needs `name`, the workbook entry to run")]
    return []
