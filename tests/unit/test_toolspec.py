"""Validating, registering and starting a playbook read the tools' declarations
(`noetl_core.toolspec`), never their implementations: the gateway does all three and
must load no tool module, nor the clients tools use."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from noetl_core.tools import registry

from ..conftest import EXAMPLES, ROOT

pytestmark = pytest.mark.unit

TOOL_MODULES = tuple(m for m in registry.KINDS.values() if m)
CLIENTS = ("psycopg", "duckdb", "httpx", "pyarrow")
SPEC_DIR = ROOT / "noetl_core" / "toolspec"

# the kinds no example uses, and one mistake per kind that only its `validate` finds
EXTRA = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: extra, path: checks/extra}
keychain:
  - name: tok
    kind: oauth2
    endpoint: http://127.0.0.1:9/token
    data: {client_id: c, client_secret: s3cret}
  - {name: idt, kind: google_id_token, target_audience: "https://svc.run.app"}
workflow:
  - step: start
    tool: {kind: wait, seconds: 1s}
    next: fetch
  - step: fetch
    tool: {kind: artifact, action: get, input: {result_ref: "{{ start._ref }}"}}
    next: sh
  - step: sh
    tool: {kind: shell, cmds: ["echo hi"], env: {T: "{{ keychain.tok.access_token }}"}}
    next: move
  - step: move
    tool:
      kind: transfer
      source: {kind: duckdb, query: "SELECT 1 AS x"}
      target: {kind: duckdb, table: t}
"""
MISTAKES = {
    "python": {"kind": "python", "code": "def (:"},
    "noop": {"kind": "noop", "what": 1},
    "workbook": {"kind": "workbook"},
    "playbook": {"kind": "playbook"},
    "artifact": {"kind": "artifact", "action": "put"},
    "wait": {"kind": "wait"},
    "http": {"kind": "http", "url": "http://x", "response_type": "xml"},
    "postgres": {"kind": "postgres", "auth": "pg", "command": "SELECT 1; SELECT 2", "params": [1]},
    "duckdb": {"kind": "duckdb", "query": "SELECT 1", "command": "SELECT 2"},
    "shell": {"kind": "shell", "cmd": "echo a", "command": "echo b"},
    "transfer": {"kind": "transfer", "source": {"kind": "postgres"}, "target": {"kind": "duckdb"}},
}

PROBE = """
import json, sys
from pathlib import Path
from noetl_core import settings
from noetl_core.adapters.fsspec_payloads import FsspecPayloadStore
from noetl_core.adapters.inprocess import InProcessTimer
from noetl_core.adapters.sqlite_log import SqliteEventLog
from noetl_core.catalog import Catalog
from noetl_core.errors import PlaybookError
from noetl_core.keychain import sealing
from noetl_core.playbook.loader import load_file, load_text
from noetl_core.runtime.block import Runtime
from noetl_core.runtime.ports import SystemClock

examples, extra, mistakes, home = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]


class Bus:  # records what a start publishes; nothing runs a block
    def __init__(self):
        self.notes = []

    def publish(self, notes):
        self.notes.extend(notes)


conf = settings.load({"NOETL_HOME": home})
conf.home.mkdir(parents=True, exist_ok=True)
bus, clock = Bus(), SystemClock()
timer = InProcessTimer(bus, clock.now)
log = SqliteEventLog(conf.log_path, sync=conf.sqlite_sync)
rt = Runtime(
    log=log,
    bus=bus,
    payloads=FsspecPayloadStore(conf.payload_url),
    timer=timer,
    clock=clock,
    settings=conf,
    catalog=Catalog(conf.catalog_path, sealing.for_settings(conf)),
    owners=None,
)
files = sorted(Path(examples).rglob("*.yaml"))
registered = [rt.catalog.register(f) for f in files]  # load_file, then the catalog
registered.append(rt.catalog.register_loaded(load_text(extra)))  # the gateway's way
for f in files:
    load_text(f.read_text(), str(f))
started = [rt.start(rt.catalog.resolve(r.path, r.version), {}) for r in registered]
refused = {}
for kind, tool in mistakes.items():
    text = json.dumps({
        "apiVersion": "noetl.io/v2", "kind": "Playbook", "metadata": {"name": "bad"},
        "workbook": [{"name": "w", "tool": {"kind": "noop"}}],
        "workflow": [{"step": "start", "tool": tool}],
    })
    try:
        load_text(text)
    except PlaybookError as exc:
        refused[kind] = str(exc)
timer.close()
log.close()
print(json.dumps({
    "files": len(files), "started": len(started), "published": len(bus.notes),
    "refused": refused, "modules": sorted(sys.modules),
}))
"""


def test_validating_registering_and_starting_load_no_tool_module(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            PROBE,
            str(EXAMPLES),
            EXTRA,
            json.dumps(MISTAKES),
            str(tmp_path / "home"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["files"] >= 15 and got["started"] == got["files"] + 1
    assert got["published"] >= got["started"]
    assert sorted(got["refused"]) == sorted(MISTAKES)  # each kind's validate ran
    assert "syntax error" in got["refused"]["python"]
    assert "response_type" in got["refused"]["http"]
    assert "single statement" in got["refused"]["postgres"]
    loaded = got["modules"]
    assert [m for m in loaded if m in TOOL_MODULES] == []
    assert [m for m in loaded if m.split(".")[0] in CLIENTS] == []
    assert {f"noetl_core.toolspec.{kind}" for kind in MISTAKES} <= set(loaded)


@pytest.mark.parametrize("kind", sorted(k for k, m in registry.KINDS.items() if m))
def test_a_tool_module_exposes_its_declaration_unchanged(kind: str) -> None:
    spec, tool = registry.spec(kind), registry.module(kind)
    assert spec.__name__ == f"noetl_core.toolspec.{kind}"  # type: ignore[attr-defined]
    assert tool.validate is spec.validate
    assert tool.RAW_FIELDS is spec.RAW_FIELDS


def test_every_kind_has_a_declaration_and_nothing_else_is_declared() -> None:
    declared = {p.stem for p in SPEC_DIR.glob("*.py") if p.stem != "__init__"}
    assert declared == {k for k, m in registry.KINDS.items() if m}
    for kind in registry.LATER:
        with pytest.raises(KeyError):
            registry.spec(kind)
    with pytest.raises(KeyError):
        registry.spec("no_such_kind")


@pytest.mark.parametrize("path", sorted(SPEC_DIR.glob("*.py")), ids=lambda p: p.stem)
def test_a_declaration_imports_no_tool_and_no_client(path: Path) -> None:
    imported: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            imported.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            package = ["noetl_core", "toolspec"][: 3 - node.level] if node.level else []
            base = ".".join([*package, *([node.module] if node.module else [])])
            imported.append(base)
            imported.extend(f"{base}.{alias.name}" for alias in node.names)
    assert [m for m in imported if m.startswith("noetl_core.tools")] == []
    assert [m for m in imported if m.split(".")[0] in CLIENTS] == []
