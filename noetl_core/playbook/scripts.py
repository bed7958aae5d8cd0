"""Tool scripts (`script: {uri, source: {type: file | inline}}`) turned into the tool's own
code field when a playbook is loaded.

A `file` script is read once, when the playbook is loaded from its file: the path is
relative to the playbook's folder (then, as upstream reads it, to the current directory);
a templated `uri` is rendered against the playbook's own `workload:`. Its text is
embedded in the playbook's stored source under the top-level key `x-noetl-scripts` (a
mapping of uri to text, appended to the file's text so every line above keeps its
number), so the catalog, the start entries, and every block that re-reads the stored
source find it there: a block never reads the disk, and the cloud runtime has none. A
playbook registered from text (the gateway) has no folder: its file scripts must already
be embedded.

The script becomes the field the tool runs: python `code`, postgres `command`, duckdb
`query` (upstream's priority: a script wins over `code` / `command`). An `inline` script
(`source: {type: inline, code: ...}`) of postgres or duckdb becomes that field too; the
python tool keeps it and renders its code as a template when the step runs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path as FsPath
from typing import Any

from .. import templating
from ..errors import NoetlError

EMBED_KEY = "x-noetl-scripts"
TARGET = {"python": "code", "postgres": "command", "duckdb": "query"}
REPLACED = {
    "python": ("code", "code_b64", "code_base64"),
    "postgres": ("command", "query", "command_b64"),
    "duckdb": ("query", "command", "commands"),
}
SOURCE_TYPES = ("file", "inline", "gcs", "s3", "http")


class ScriptFiles:
    """Where file scripts come from: the text embedded in the playbook, else `base`'s
    folder. `read` collects the files read from disk, to embed them."""

    def __init__(self, embedded: Any, base: str | None, workload: Any):
        self.embedded: dict[str, str] = (
            {k: v for k, v in embedded.items() if isinstance(v, str)}
            if isinstance(embedded, dict)
            else {}
        )
        self.base = base
        self.workload = workload if isinstance(workload, dict) else {}
        self.read: dict[str, str] = {}

    def uri_of(self, script: dict[str, Any]) -> str:
        source = script.get("source") if isinstance(script.get("source"), dict) else {}
        uri = script.get("uri") or script.get("path") or (source or {}).get("path")
        if not isinstance(uri, str) or not uri.strip():
            raise ValueError("a file script needs `uri`, the path of the file")
        if templating.is_template(uri):
            try:
                rendered = templating.render(uri, {"workload": self.workload}, "script.uri")
            except NoetlError as exc:
                raise ValueError(
                    f"`uri` {uri!r} is rendered when the playbook is loaded, against its "
                    f"own `workload:` only: {exc}"
                ) from None
            uri = str(rendered)
        return uri.strip()

    def text(self, uri: str) -> str:
        if uri in self.embedded:
            return self.embedded[uri]
        if uri in self.read:
            return self.read[uri]
        if self.base is None:
            raise ValueError(
                f"script file {uri!r} is not embedded in this playbook's text and there is "
                "no folder to read it from: register the playbook from its file "
                "(`noetl register -f FILE`), which embeds its script files"
            )
        tried = [FsPath(self.base) / uri]
        if not os.path.isabs(uri):
            tried.append(FsPath.cwd() / uri)
        for path in tried:
            if path.is_file():
                try:
                    found = path.read_text(encoding="utf-8")
                except (OSError, UnicodeDecodeError) as exc:
                    raise ValueError(
                        f"script file {uri!r} cannot be read ({path}): {exc}"
                    ) from None
                self.read[uri] = found
                return found
        places = " nor ".join(str(p) for p in dict.fromkeys(tried))
        raise ValueError(f"script file {uri!r} not found: neither {places} exists")


def resolve(tool: dict[str, Any], files: ScriptFiles) -> tuple[dict[str, Any], str | None]:
    """The tool with its `script` made into its code field, and the field's name (None
    when the script stays: a python inline script, or a source this runtime fetches at
    run time). Raises ValueError with the problem."""
    kind = str(tool.get("kind"))
    script = tool.get("script")
    if kind not in TARGET or script is None:
        return tool, None
    source = script.get("source") if isinstance(script, dict) else None
    if not isinstance(source, dict):
        raise ValueError("`script` needs `source: {type: file | inline, ...}`")
    kind_of_source = source.get("type")
    if kind_of_source == "inline":
        code = source.get("code")
        if not isinstance(code, str):
            raise ValueError("an inline script needs `source.code` (text)")
        if kind == "python":
            return tool, None
        return _replaced(tool, kind, code), TARGET[kind]
    if kind_of_source == "file":
        assert isinstance(script, dict)
        return _replaced(tool, kind, files.text(files.uri_of(script))), TARGET[kind]
    if kind == "python":  # the tool's declaration judges the other sources
        return tool, None
    raise ValueError(
        f"script source type {kind_of_source!r} is not supported for `{kind}` here (file or inline)"
    )


def _replaced(tool: dict[str, Any], kind: str, code: str) -> dict[str, Any]:
    out = {k: v for k, v in tool.items() if k != "script" and k not in REPLACED[kind]}
    out[TARGET[kind]] = code
    return out


def embed(text: str, scripts: dict[str, str]) -> str:
    """The playbook text with `scripts` appended under `x-noetl-scripts` (JSON strings,
    which YAML reads as double-quoted scalars); every earlier line keeps its number."""
    lines = [
        "",
        "# Script files read when this playbook was loaded; blocks read them from here.",
        f"{EMBED_KEY}:",
    ]
    for uri, code in sorted(scripts.items()):
        lines.append(f"  {_quoted(uri)}: {_quoted(code)}")
    return text + ("" if text.endswith("\n") else "\n") + "\n".join(lines) + "\n"


def _printable(c: str) -> bool:
    """Whether the character stands as itself in a YAML double-quoted scalar: printable,
    and no line break (NEL, LS and PS would be folded or read as breaks)."""
    n = ord(c)
    return (
        0x20 <= n <= 0x7E
        or (0xA0 <= n <= 0xD7FF and n not in (0x2028, 0x2029))
        or 0xE000 <= n <= 0xFFFD
        or 0x10000 <= n <= 0x10FFFF
    )


def _quoted(value: str) -> str:
    """A YAML double-quoted scalar: JSON's escapes, and `\\uXXXX` / `\\UXXXXXXXX` for
    every character YAML would refuse as itself."""
    body = json.dumps(value, ensure_ascii=False)
    return "".join(
        c if _printable(c) else (f"\\u{ord(c):04x}" if ord(c) <= 0xFFFF else f"\\U{ord(c):08x}")
        for c in body
    )
