"""`playbook`'s declaration (see `noetl_core.tools.playbook`)."""

from __future__ import annotations

from typing import Any

RAW_FIELDS: frozenset[str] = frozenset()


def validate(fields: dict[str, Any]) -> list[tuple[str, str]]:
    if not isinstance(fields.get("path"), str):
        return [("path", "`playbook` needs `path`, the catalog path of the child playbook")]
    return []
