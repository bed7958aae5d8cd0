"""Masking of secret values: whatever a block resolved from the keychain or a credential
is replaced by `***` in everything the block records, stores, logs or prints.

A `Redactor` collects the values as they are resolved (and derived forms a tool sends,
such as a basic-auth header) and scrubs strings, mappings, lists and Arrow tables.
An empty redactor costs nothing: blocks that touch no secret scrub nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

MASK = "***"
MIN_LENGTH = 3  # shorter values would mask ordinary text (and are not real secrets)


class Redactor:
    def __init__(self) -> None:
        self._values: set[str] = set()
        self._lock = threading.Lock()
        self._ordered: list[str] = []

    def __bool__(self) -> bool:
        return bool(self._values)

    def add(self, *values: Any) -> None:
        for value in _strings(values):
            if len(value) >= MIN_LENGTH and value not in self._values:
                with self._lock:
                    self._values.add(value)
                    # longest first, so a secret containing another is masked whole
                    self._ordered = sorted(self._values, key=len, reverse=True)

    def text(self, text: str) -> str:
        for value in self._ordered:
            if value in text:
                text = text.replace(value, MASK)
        return text

    def scrub(self, value: Any) -> Any:
        """A copy of `value` with every secret masked (the value itself when none)."""
        if not self._values:
            return value
        return self._scrub(value)

    def _scrub(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self._scrub(k): self._scrub(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._scrub(v) for v in value]
        if type(value).__name__ == "Table" and hasattr(value, "schema"):
            return self._scrub_table(value)
        return value

    def _scrub_table(self, table: Any) -> Any:
        import pyarrow as pa
        import pyarrow.compute as pc

        columns = []
        for column in table.columns:
            if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
                for secret in self._ordered:
                    column = pc.replace_substring(column, secret, MASK)
            columns.append(column)
        return pa.Table.from_arrays(columns, schema=table.schema)


def _strings(values: Iterable[Any]) -> Iterable[str]:
    for value in values:
        if isinstance(value, str):
            yield value
        elif isinstance(value, dict):
            yield from _strings(value.values())
        elif isinstance(value, list | tuple):
            yield from _strings(value)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            continue  # numbers (ports) are not secrets, and would mask ordinary digits
