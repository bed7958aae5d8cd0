"""`artifact`: load a referenced (large) result explicitly (`action: get`)."""

from __future__ import annotations

from typing import Any

from ..errors import ToolError
from ..toolspec.artifact import RAW_FIELDS as RAW_FIELDS
from ..toolspec.artifact import validate as validate
from .base import ToolCall


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
