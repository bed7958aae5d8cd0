"""A tool kind whose driver the base install leaves out (psycopg, duckdb) fails its step
with one line naming the install command, not an ImportError traceback."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from noetl_core.playbook.model import Tool
from noetl_core.runtime import execute
from noetl_core.tools import registry

pytestmark = pytest.mark.unit


def test_a_missing_driver_is_one_line_naming_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    def run(call: Any) -> Any:
        raise ModuleNotFoundError("No module named 'duckdb'", name="duckdb")

    fake = SimpleNamespace(RAW_FIELDS=frozenset(), run=run)
    monkeypatch.setattr(registry, "module", lambda kind: fake)
    tool = Tool.validate({"kind": "duckdb", "query": "SELECT 1"})
    inv = execute.Invocation("e1", "c1", 1, "crunch", services=None)  # type: ignore[arg-type]
    output, _ = execute.attempt_tool(tool, {}, {}, inv, "step crunch")
    assert output["status"] != "ok"
    message = output["error"]["message"]
    assert message == (
        "step crunch: tool kind duckdb needs duckdb, which is not installed: run "
        "`.venv/bin/pip install -e '.[duckdb]'` (or `make dev`)"
    )
    assert output["error"]["code"] == "missing_dependency"


def test_other_import_errors_are_not_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    def run(call: Any) -> Any:
        raise ModuleNotFoundError("No module named 'nothing_here'", name="nothing_here")

    monkeypatch.setattr(registry, "module", lambda kind: SimpleNamespace(RAW_FIELDS=(), run=run))
    tool = Tool.validate({"kind": "duckdb", "query": "SELECT 1"})
    inv = execute.Invocation("e1", "c1", 1, "crunch", services=None)  # type: ignore[arg-type]
    with pytest.raises(ModuleNotFoundError):
        execute.attempt_tool(tool, {}, {}, inv, "step crunch")
