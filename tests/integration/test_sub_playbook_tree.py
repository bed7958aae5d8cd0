"""Sub-playbooks resolve from the original tree at every depth, on the embedded default:
a child loaded from the catalog looks for its own children in the tree its parent came
from (not in the catalog's folder), and files beside them that cannot be read (an alias
bomb, 10,000-deep YAML, a syntax error, bytes that are not UTF-8) fail only a lookup
that asks for them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from noetl_core.engine import entries as E
from noetl_core.errors import CatalogError
from noetl_core.playbook import load_file
from noetl_core.runtime import payloads
from noetl_core.runtime.block import Runtime

from ..unit.test_hostile_input import alias_bomb

pytestmark = pytest.mark.integration


def calling(name: str, child: str) -> str:
    return f"""
apiVersion: noetl.io/v2
kind: Playbook
metadata: {{name: {name}, path: family/{name}}}
workload: {{x: 0}}
workflow:
  - step: start
    tool: {{kind: playbook, path: family/{child}, input: {{x: "{{{{ workload.x + 1 }}}}"}}}}
"""


GRANDCHILD = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: grandchild, path: family/grandchild}
workload: {x: 0}
workflow:
  - step: start
    tool: {kind: python, input: {x: "{{ workload.x }}"}, code: "result = {'x': x, 'level': 3}"}
"""


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """root.yaml, kids/child.yaml, kids/deeper/grandchild.yaml, and unreadable files."""
    root = tmp_path / "tree"
    files = {
        "root.yaml": calling("root", "child"),
        "kids/child.yaml": calling("child", "grandchild"),
        "kids/deeper/grandchild.yaml": GRANDCHILD,
        "asks_for_broken.yaml": calling("asks_for_broken", "broken"),
        "bomb.yaml": alias_bomb(),
        "kids/deep.yaml": "w: " + "[" * 10_000 + "]" * 10_000 + "\n",
        "kids/deeper/broken.yaml": "metadata: {name: broken\nworkflow: [\n",
        "notes.yaml": "- just\n- a list\n",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    (root / "kids" / "binary.yml").write_bytes(b"metadata: \xff\xfe\x00\n")
    return root


def run(rt: Runtime, file: Path) -> tuple[str, Any]:
    execution_id = rt.start(load_file(file), {})
    terminal = rt.wait(execution_id, timeout=60)
    assert terminal is not None, f"execution {execution_id} did not finish"
    return execution_id, terminal


def header(rt: Runtime, execution_id: str) -> dict[str, Any]:
    start = rt.log.get(E.start_id(execution_id))
    assert start is not None
    return dict(start.body["playbook"])


def child_of(rt: Runtime, execution_id: str) -> str:
    (pending,) = rt.log.find(execution_id, "pending")
    return str(pending.body["child_execution_id"])


def test_three_levels_resolve_from_the_first_playbooks_tree(rt: Runtime, tree: Path) -> None:
    rt.catalog.register(tree / "kids" / "child.yaml")  # the child comes from the catalog
    assert rt.catalog.versions("family/grandchild") == []

    execution_id, terminal = run(rt, tree / "root.yaml")

    assert terminal.body["status"] == "completed", terminal.body.get("error")
    assert payloads.load(rt.payloads, terminal.body["result"]) == {"x": 2, "level": 3}
    child = child_of(rt, execution_id)
    grandchild = child_of(rt, child)
    assert str(rt.catalog.root) in header(rt, child)["file"]  # loaded from the catalog,
    for each in (execution_id, child, grandchild):  # searching the root's tree
        assert header(rt, each)["tree"] == str(tree.resolve())
    assert rt.catalog.versions("family/grandchild") == [1]


def test_an_unreadable_file_fails_only_the_lookup_that_asks_for_it(rt: Runtime, tree: Path) -> None:
    _, terminal = run(rt, tree / "asks_for_broken.yaml")
    assert terminal.body["status"] == "failed"
    error = terminal.body["error"]
    assert error["kind"] == "catalog"
    broken = tree / "kids" / "deeper" / "broken.yaml"
    assert error["message"].startswith(
        f"no playbook at catalog path 'family/broken', and {broken}, which may be it, "
        f"cannot be read: {broken}:2: YAML syntax: "
    )
    with pytest.raises(CatalogError, match="no playbook registered at catalog path 'family/none'"):
        rt.catalog.resolve("family/none", tree=str(tree))
