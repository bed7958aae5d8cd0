"""`python`'s declaration (see `noetl_core.tools.python`): the code is never rendered, and
must compile. `_compile` is shared with the tool, which runs what it compiles."""

from __future__ import annotations

import linecache
import textwrap
from functools import lru_cache
from typing import Any

RAW_FIELDS = frozenset({"code", "script", "libs"})


def validate(fields: dict[str, Any]) -> list[tuple[str, str]]:
    code, script = fields.get("code"), fields.get("script")
    if code is None and script is None:
        return [("code", "`python` needs `code` (or `script: {source: ...}`)")]
    if code is not None and not isinstance(code, str):
        return [("code", f"`code` must be a string, got {type(code).__name__}")]
    if script is not None:
        source = script.get("source") if isinstance(script, dict) else None
        if not isinstance(source, dict) or source.get("type") not in ("inline", "file", "gcs"):
            return [("script.source.type", "expected inline, file or gcs")]
    libs = fields.get("libs")
    if libs is not None and not isinstance(libs, dict | list):
        return [("libs", "`libs` maps an alias to a module name (or lists packages)")]
    for alias, module in libs.items() if isinstance(libs, dict) else ():
        if isinstance(module, str) and module:
            continue
        parts = module if isinstance(module, dict) else {}
        named = all(isinstance(v, str) and v for v in parts.values())
        if set(parts) == {"from", "import"} and named:
            continue
        return [
            (
                f"libs.{alias}",
                f"a module name (`pd: pandas`) or {{from: package, import: name}}, got {module!r}",
            )
        ]
    if isinstance(code, str):
        try:
            _compile(code, "<check>")
        except SyntaxError as exc:
            return [("code", f"Python syntax error at code line {exc.lineno}: {exc.msg}")]
    return []


@lru_cache(maxsize=1024)
def _compile(code: str, filename: str) -> tuple[Any, bool]:
    """Compile as a module; code with a top-level `return` is compiled as a function body."""
    try:
        compiled, as_body, text = compile(code, filename, "exec"), False, code
    except SyntaxError as exc:
        if "'return' outside function" not in str(exc.msg):
            raise
        text = "def __noetl_body__():\n" + textwrap.indent(code, "    ") + "\n"
        compiled, as_body = compile(text, filename, "exec"), True
    # Register the text so tracebacks of this step show its source lines.
    linecache.cache[filename] = (len(text), None, text.splitlines(keepends=True), filename)
    return compiled, as_body
