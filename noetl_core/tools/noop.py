"""`noop`: a pure routing step; its result is `{}`."""

from __future__ import annotations

from typing import Any

from ..toolspec.noop import RAW_FIELDS as RAW_FIELDS
from ..toolspec.noop import validate as validate
from .base import ToolCall


def run(call: ToolCall) -> Any:
    return {}
