"""Tool kinds and the module that implements each (imported on first use).

Each tool module has `RAW_FIELDS` (fields not rendered as templates), `validate(fields)`
returning `(sub-path, message)` problems, and `run(call)`.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any, Protocol

from .base import ToolCall

KINDS: Mapping[str, str | None] = {
    "python": "noetl_core.tools.python",
    "noop": "noetl_core.tools.noop",
    "workbook": "noetl_core.tools.workbook",
    "playbook": "noetl_core.tools.playbook",
    "artifact": "noetl_core.tools.artifact",
    "wait": "noetl_core.tools.wait",
    "http": "noetl_core.tools.http",
    "postgres": "noetl_core.tools.postgres",
    "duckdb": "noetl_core.tools.duckdb",
}
LATER = frozenset(kind for kind, module in KINDS.items() if module is None)


class ToolModule(Protocol):
    RAW_FIELDS: frozenset[str]

    def validate(self, fields: dict[str, Any]) -> list[tuple[str, str]]: ...

    def run(self, call: ToolCall) -> Any: ...


def module(kind: str) -> ToolModule:
    name = KINDS.get(kind)
    if name is None:
        raise KeyError(kind)
    loaded: ToolModule = importlib.import_module(name)  # type: ignore[assignment]
    return loaded
