"""Which names a step (or a pipeline task) may take.

A step's name is how templates read its result (`{{ fetch.rows }}`) and part of the
payload keys its large results are stored under, so it is checked before anything runs:

- characters: ASCII letters, digits, `_`, `-` and `.`, the first one a letter, a digit
  or `_`, at most 128 in all. So a name is never a path (`/`, `..`), never whitespace,
  and always one payload key segment;
- not one of the names templates already give a meaning to (`RESERVED`): a step named
  `ctx` would be silently shadowed by the ctx, its result unreadable.
"""

from __future__ import annotations

import re

NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
CHARACTERS = "letters, digits, _ - . (not first: - .), at most 128 characters"

# Every top-level name a block's templates see besides step results (engine/scope.py's
# `context`, `loop_names` and block-local names, the names the runtime adds), and the
# names Jinja itself defines, each with what it means there.
RESERVED: dict[str, str] = {
    "workload": "the execution's workload",
    "ctx": "the ctx of this path",
    "keychain": "the playbook's keychain",
    "execution_id": "this execution's id",
    "parent_execution_id": "the parent execution's id",
    "args": "the arguments an arc passed",
    "iter": "the loop iteration's scope",
    "loop": "the loop's position",
    "loop_index": "the loop iteration's index",
    "step": "the step's own `set` values",
    "output": "the tool's output",
    "outcome": "the tool's output",
    "error": "the step's error",
    "event": "the event being routed",
    "callback": "the step's callback URL and token",
    "_prev": "the previous task's result",
    "__playbook__": "the playbook itself",
    "range": "Jinja's range()",
    "dict": "Jinja's dict()",
    "lipsum": "Jinja's lipsum()",
    "cycler": "Jinja's cycler()",
    "joiner": "Jinja's joiner()",
    "namespace": "Jinja's namespace()",
    "true": "a Jinja literal",
    "false": "a Jinja literal",
    "none": "a Jinja literal",
    "True": "a Jinja literal",
    "False": "a Jinja literal",
    "None": "a Jinja literal",
}


def problem(kind: str, name: str) -> str | None:
    """Why `name` cannot name a `kind` (step, task), or None when it can."""
    if not NAME.match(name):
        return f"{kind} name {name!r} is not allowed: use {CHARACTERS}"
    meaning = RESERVED.get(name)
    if meaning is not None:
        reason = f"templates read it as {meaning}"
        return f"{kind} name {name!r} is reserved: {reason}; rename the {kind}"
    return None
