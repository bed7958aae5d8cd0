"""`artifact`: load a referenced (large) result explicitly (`action: get`)."""

from __future__ import annotations

from typing import Any

from ..errors import ToolError
from .base import ToolCall

RAW_FIELDS: frozenset[str] = frozenset()


def validate(fields: dict[str, Any]) -> list[tuple[str, str]]:
    if fields.get("action", "get") != "get":
        return [("action", f"unknown artifact action {fields.get('action')!r} (known: get)")]
    return []


def run(call: ToolCall) -> Any:
    ref = call.input.get("result_ref")
    if not isinstance(ref, dict):
        raise ToolError(
            "artifact get needs input.result_ref, a payload reference (e.g. {{ step._ref }}); "
            f"got {type(ref).__name__}",
            tool_kind="artifact",
            code="bad_reference",
        )
    return call.services.load(ref)
