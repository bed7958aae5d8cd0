"""`noop`'s declaration (see `noetl_core.tools.noop`)."""

from __future__ import annotations

from typing import Any

RAW_FIELDS: frozenset[str] = frozenset()


def validate(fields: dict[str, Any]) -> list[tuple[str, str]]:
    return [(key, f"`noop` takes no field {key!r}") for key in fields if key not in ("input",)]
