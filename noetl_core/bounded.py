"""JSON that may be hostile, read within `NOETL_MAX_DEPTH`.

Python's `json` recurses once per nesting level, so a body of 10,000 `[` ends in a
`RecursionError` (or, nested a little less, in a value that every later walk over it
overflows on). The nesting is measured first, on the text, without recursion and
without building anything: strings are cut out and the brackets left are summed, by
regular expressions and `itertools` in C. Only a text within the limit is parsed.
A value that did not come from text (a workload built by `--set`, by a caller) is
measured level by level, also without recursion.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from itertools import accumulate
from typing import Any

from . import settings
from .errors import InputLimitError
from .settings import Limits

# A JSON string, or the rest of the text when it is unterminated: the match never fails,
# so the scan is linear whatever the text (a failing match would be retried at every
# later quote).
_STRING = re.compile(r'"(?:[^"\\]++|\\[\s\S]|\\\Z)*+(?:"|\Z)')
_NOT_BRACKET = re.compile(r"[^\[\]{}]++")
_TOKEN = re.compile(_STRING.pattern + r"|[\[\]{}]")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
_CHUNK = 1 << 16


def json_loads(data: str | bytes, what: str, limits: Limits | None = None) -> Any:
    """`json.loads(data)` once its nesting is within the limit; a InputLimitError naming
    `what`, the limit and the line otherwise. Malformed JSON raises ValueError, as
    `json.loads` does."""
    text = (
        data.decode(json.detect_encoding(data), "surrogatepass")
        if isinstance(data, bytes)
        else data
    )
    most = (limits or settings.limits()).max_depth
    if _deeper_than(text, most):
        raise InputLimitError(
            f"{what}: nested deeper than {most} levels at line {_line_past(text, most)} "
            "(NOETL_MAX_DEPTH)"
        )
    return json.loads(text)


def check_depth(value: Any, what: str, limits: Limits | None = None) -> None:
    """Refuse a value that nests lists and mappings deeper than the limit, measured a
    level at a time (no recursion: the value may be far deeper than the stack)."""
    most = (limits or settings.limits()).max_depth
    level = [value]
    depth = 0
    while level:
        containers = [v for v in level if isinstance(v, Mapping | list | tuple)]
        if not containers:
            return
        depth += 1
        if depth > most:
            raise InputLimitError(f"{what}: nested deeper than {most} levels (NOETL_MAX_DEPTH)")
        level = [item for c in containers for item in (c.values() if isinstance(c, Mapping) else c)]


def _deeper_than(text: str, most: int) -> bool:
    if text.count("[") + text.count("{") <= most:  # most texts: no scan at all
        return False
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    level = 0
    for start in range(0, len(brackets), _CHUNK):  # a hostile text stops in its first chunk
        chunk = brackets[start : start + _CHUNK]
        levels = list(accumulate(map(_STEP.__getitem__, chunk), initial=level))
        if max(levels) > most:
            return True
        level = levels[-1]
    return False


def _line_past(text: str, most: int) -> int:
    """The line of the bracket that goes past `most` (read only to word a refusal)."""
    level = 0
    for token in _TOKEN.finditer(text):
        level += _STEP.get(token.group(), 0)
        if level > most:
            return text.count("\n", 0, token.start()) + 1
    return 1
