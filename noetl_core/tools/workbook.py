"""`workbook`: run the named `workbook:` entry; the step's `input` overrides its input."""

from __future__ import annotations

from typing import Any

from ..errors import ToolError
from ..toolspec.workbook import RAW_FIELDS as RAW_FIELDS
from ..toolspec.workbook import validate as validate
from .base import ToolCall


def run(call: ToolCall) -> Any:
    name = call.fields["name"]
    playbook = call.names.get("__playbook__")
    entry = playbook.workbook_entry(name) if playbook is not None else None
    if entry is None:
        raise ToolError(
            f"no workbook entry named {name!r}", tool_kind="workbook", code="unknown_entry"
        )
    return call.services.run_tool(entry.tool, call.input, call)
