"""What a tool receives (`ToolCall`) and the services the runtime lends it."""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


class ToolServices(Protocol):
    """Runtime services a tool may use; the block runtime implements them."""

    def load(self, ref: Mapping[str, Any]) -> Any: ...

    def run_tool(self, tool: Any, input: Mapping[str, Any], call: ToolCall) -> Any: ...


@dataclass(frozen=True)
class StartChild:
    """Returned by the `playbook` tool: start a child execution and wait for its end."""

    path: str
    version: int | str | None
    workload: dict[str, Any]
    return_step: str | None = None


@dataclass
class ToolCall:
    kind: str
    fields: dict[str, Any]
    input: dict[str, Any]
    step: str
    execution_id: str
    command_id: str
    attempt: int
    names: Mapping[str, Any]
    services: ToolServices
    context: Mapping[str, Any] | None = None
    log: io.StringIO = field(default_factory=io.StringIO)

    @property
    def idempotency_key(self) -> str:
        """Stable across redeliveries of the same attempt; pass it to external systems."""
        return f"{self.command_id}-{self.attempt}"
