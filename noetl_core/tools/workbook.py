"""`workbook`: run the named `workbook:` entry; the step's `input` overrides its input."""

from __future__ import annotations

from typing import Any

from ..errors import ToolError
from .base import ToolCall

RAW_FIELDS: frozenset[str] = frozenset()


def validate(fields: dict[str, Any]) -> list[tuple[str, str]]:
    if not isinstance(fields.get("name"), str):
        return [("name", "`workbook` needs `name`, the workbook entry to run")]
    return []


def run(call: ToolCall) -> Any:
    name = call.fields["name"]
    playbook = call.names.get("__playbook__")
    entry = playbook.workbook_entry(name) if playbook is not None else None
    if entry is None:
        raise ToolError(
            f"no workbook entry named {name!r}", tool_kind="workbook", code="unknown_entry"
        )
    return call.services.run_tool(entry.tool, call.input, call)
