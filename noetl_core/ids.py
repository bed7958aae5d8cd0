"""Deterministic ids: the same parts always give the same id.

Two blocks that decide the same thing (a join's command, a loop's `loop.done`, the
execution's terminal entry) compute the same id, so a create-if-absent write makes the
decision happen once. Ids are short hex digests; Firestore document ids cannot hold `/`.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache


@lru_cache(maxsize=65536)
def digest(*parts: object) -> str:
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()[:24]


def command(execution_id: str, *parts: object) -> str:
    return "c" + digest(execution_id, "command", *parts)


def entry(execution_id: str, kind: str, *parts: object) -> str:
    return kind[:2] + digest(execution_id, kind, *parts)


# Execution ids are decimal: 19 digits, a valid SQL BIGINT literal (below 2**63), so a
# template may put `{{ execution_id }}` unquoted into SQL as upstream NoETL's integer ids
# allow. A new execution's id is its start time in milliseconds, then six random
# digits: ids sort by start time, as strings and as numbers, until the year 2286. An id
# derived from something else (a request id, a schedule's time, a parent's step) is a
# digest mapped into the same 19-digit range.
EXECUTION_ID_DIGITS = 19
_DERIVED_FLOOR, _DERIVED_SPAN = 10**18, 8 * 10**18


def execution_id_at(now: float, random_digits: int) -> str:
    return f"{int(now * 1000) * 10**6 + random_digits % 10**6:019d}"


def derived_execution_id(*parts: object) -> str:
    return str(_DERIVED_FLOOR + int(digest(*parts), 16) % _DERIVED_SPAN)
