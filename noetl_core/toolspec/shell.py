"""`shell`'s declaration (see `noetl_core.tools.shell`).

Upstream's fields: `cmds` (a list of shell programs, each run by `/bin/sh -c`), or one
program as `cmd` / `command`; `env` (the only variables the programs see, with `PATH`);
`cwd`; `timeout_seconds` (per program, default 600; `timeout` / `spec.timeout` too).
"""

from __future__ import annotations

from typing import Any

RAW_FIELDS: frozenset[str] = frozenset()
PROGRAM_FIELDS = ("cmds", "cmd", "command")


def validate(fields: dict[str, Any]) -> list[tuple[str, str]]:
    given = [key for key in PROGRAM_FIELDS if fields.get(key) is not None]
    if not given:
        return [("cmds", "`shell` needs `cmds` (a list of shell programs) or `cmd`/`command`")]
    if len(given) > 1:
        return [(given[1], f"give one of `cmds`, `cmd`, `command`, not {given}")]
    key, value, problems = given[0], fields[given[0]], []
    if key == "cmds" and isinstance(value, list):
        if not value or not all(isinstance(c, str) for c in value):
            problems.append((key, "`cmds` must be a non-empty list of program strings"))
    elif not isinstance(value, str) or not value.strip():
        problems.append((key, f"`{key}` must be a program string, got {type(value).__name__}"))
    env = fields.get("env")
    if env is not None and not (isinstance(env, dict) or _is_template(env)):
        problems.append(("env", f"`env` maps names to values, got {type(env).__name__}"))
    if fields.get("cwd") is not None and not isinstance(fields["cwd"], str):
        problems.append(("cwd", "`cwd` must be a directory path"))
    for name in ("timeout_seconds", "timeout"):
        value = fields.get(name)
        if value is None or _is_template(value):
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            problems.append((name, f"`{name}` must be a positive number of seconds"))
    return problems


def _is_template(value: Any) -> bool:
    return isinstance(value, str) and "{{" in value
