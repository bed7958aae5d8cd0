"""Tool kinds: the module that implements each (`module`, imported on first use to run
a tool) and the module that declares it (`spec`, enough to validate a playbook).

A kind's declaration (`noetl_core.toolspec.<kind>`) has `RAW_FIELDS` (fields not
rendered as templates) and `validate(fields)` returning `(sub-path, message)` problems;
its tool module re-exports both and adds `run(call)`. Importing this module loads
neither: a process that only validates and starts playbooks (the gateway) asks for
`spec`, never `module`, and so loads no tool nor the clients tools import.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
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
    "shell": "noetl_core.tools.shell",
    "transfer": "noetl_core.tools.transfer",
}
# Kinds upstream NoETL's workers run that this runtime does not: a playbook using one is
# refused at validation, naming the kind as upstream's and not supported here (rather
# than as unknown), with what to use instead where there is something.
UPSTREAM_UNSUPPORTED: Mapping[str, str] = {
    "snowflake": "no Snowflake client here",
    "snowflake_transfer": "no Snowflake client here; `transfer` moves postgres and duckdb rows",
    "ducklake": "use `duckdb` with a database file",
    "container": "no container runner here; call a Cloud Run service with `http`",
    "gcs": "read and write objects from `python` or `duckdb` (httpfs)",
    "nats": "no NATS here",
    "mcp": "no MCP client here; call the server with `http`",
    "agent": "no agent runner here",
    "gateway": "no upstream gateway here",
    "script": "use `python` (`script: {source: ...}`) or `shell`",
}
LATER = frozenset(kind for kind, module in KINDS.items() if module is None)
SPECS = "noetl_core.toolspec"


class ToolSpec(Protocol):
    RAW_FIELDS: frozenset[str]

    def validate(self, fields: dict[str, Any]) -> list[tuple[str, str]]: ...


class ToolModule(ToolSpec, Protocol):
    def run(self, call: ToolCall) -> Any: ...


def spec(kind: str) -> ToolSpec:
    """The declaration of an available kind (KeyError for one unknown or not yet here)."""
    if KINDS.get(kind) is None:
        raise KeyError(kind)
    loaded: ToolSpec = importlib.import_module(f"{SPECS}.{kind}")  # type: ignore[assignment]
    return loaded


def module(kind: str) -> ToolModule:
    name = KINDS.get(kind)
    if name is None:
        raise KeyError(kind)
    loaded: ToolModule = importlib.import_module(name)  # type: ignore[assignment]
    return loaded
