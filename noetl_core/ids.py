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
