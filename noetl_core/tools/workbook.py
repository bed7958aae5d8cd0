"""`workbook`: run the named `workbook:` entry; the step's `input` overrides its input.

An entry's `assert: {expects: [names], returns: [paths]}` (upstream's) is checked around
the call: every name in `expects` must be an input of the call (the step's, or the
entry tool's own `input`) that is not null, and every dotted path in `returns` must be
in the result (`data.url`: key `data`, then `url`; `data` is the result itself when it
has no `data` key, as upstream's envelope reads); a miss fails the step with
`code: assert_failed`."""

from __future__ import annotations

from collections.abc import Mapping
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
    checks = entry.assert_ or {}
    given = {**(getattr(entry.tool, "input", None) or entry.tool.fields().get("input") or {})}
    given.update(call.input)
    missing = [n for n in checks.get("expects") or () if given.get(n) is None]
    if missing:
        raise _failed(call, name, f"expects input {', '.join(missing)}, not given")
    result = call.services.run_tool(entry.tool, call.input, call)
    absent = [p for p in checks.get("returns") or () if not _has(result, str(p))]
    if absent:
        raise _failed(call, name, f"returns {', '.join(absent)}, not in its result")
    return result


def _has(value: Any, path: str) -> bool:
    """Whether `path` is in the result; a leading `data` is the result itself when it has
    no `data` key (upstream's results are `{status, data}` envelopes)."""
    parts = path.split(".")
    if parts[0] == "data" and not (isinstance(value, Mapping) and "data" in value):
        parts = parts[1:]
    for part in parts:
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return False
    return True


def _failed(call: ToolCall, name: str, why: str) -> ToolError:
    return ToolError(
        f"step {call.step}: workbook entry {name!r} assert: {why}",
        tool_kind="workbook",
        code="assert_failed",
    )
