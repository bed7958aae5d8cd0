"""What a tool receives (`ToolCall`), what it may return besides plain values (`Rowset`,
`StartChild`), and the services the runtime lends it."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import KeychainError, ToolError

if TYPE_CHECKING:
    from ..keychain import Secrets


class ToolServices(Protocol):
    """Runtime services a tool may use; the block runtime implements them."""

    def load(self, ref: Mapping[str, Any]) -> Any: ...

    def run_tool(self, tool: Any, input: Mapping[str, Any], call: ToolCall) -> Any: ...


FIELDS = ("columns", "rows", "row_count")


@dataclass(frozen=True)
class Rowset(Mapping[str, Any]):
    """A query result: `{columns, rows, row_count}` to templates, an Arrow table inside.

    Small rowsets are recorded inline as JSON records; large ones are stored as Arrow IPC
    with `columns` and `row_count` kept inline, so rows are materialized only when a
    template reads them, and `duckdb` reads the table by the step's name without JSON.
    Before it is recorded (in policy rules, `output.data`, and a pipeline task's `set`) it
    reads as that mapping too: `output.data.rows[0].t`, each field made when read.
    """

    table: Any  # pyarrow.Table

    def __getitem__(self, key: str) -> Any:
        if key == "columns":
            return self.columns
        if key == "rows":
            return self.records()
        if key == "row_count":
            return self.row_count
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(FIELDS)

    def __len__(self) -> int:
        return len(FIELDS)

    @property
    def columns(self) -> list[str]:
        return list(self.table.column_names)

    @property
    def row_count(self) -> int:
        return int(self.table.num_rows)

    def records(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self.table.to_pylist()
        return rows

    def value(self) -> dict[str, Any]:
        return {"columns": self.columns, "rows": self.records(), "row_count": self.row_count}


@dataclass(frozen=True)
class Wait:
    """Returned by the `wait` tool: complete the step after `seconds`, no worker held."""

    seconds: float


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
    secrets: Secrets | None = None
    tables: Callable[[str], Any] | None = None

    def credential(self, alias: str) -> dict[str, Any]:
        """A registered credential for `auth:`; its values are masked in all the block writes."""
        if self.secrets is None:
            raise KeychainError(
                f"credential {alias!r} asked for outside a block", code="no_keychain"
            )
        return self.secrets.credential(alias)

    def mask(self, *values: Any) -> None:
        """Also mask values derived from secrets (an Authorization header, a DSN)."""
        if self.secrets is not None:
            self.secrets.redactor.add(*values)

    def table(self, step: str) -> Any:
        """An earlier step's result on this path as an Arrow table, or None."""
        return self.tables(step) if self.tables is not None else None

    def timeout(self) -> float | None:
        """The call's `timeout` (its own, or `spec.timeout`) in seconds, or None."""
        raw = self.fields.get("timeout")
        if raw is None:
            return None
        try:
            seconds = float(raw)
        except (TypeError, ValueError):
            seconds = -1.0
        if not seconds > 0:
            raise ToolError(
                f"step {self.step}: `timeout` must be a positive number of seconds, got {raw!r}",
                tool_kind=self.kind,
                code="bad_timeout",
            )
        return seconds

    @property
    def idempotency_key(self) -> str:
        """Stable across redeliveries of the same attempt; pass it to external systems."""
        return f"{self.command_id}-{self.attempt}"
