"""Cursor loops (`loop.cursor` + `spec.mode: cursor`, upstream's form): what the loader
takes and what it refuses, and the engine's decisions for a slot's frames."""

from __future__ import annotations

import pytest

from noetl_core.engine import Outcome, Scene
from noetl_core.engine import cursor as C
from noetl_core.engine import entries as E
from noetl_core.engine.graph import build
from noetl_core.engine.loops import tally_of
from noetl_core.errors import PlaybookError
from noetl_core.playbook import load_text
from noetl_core.templating import ResultView

pytestmark = pytest.mark.unit

CURSOR = """\
apiVersion: noetl.io/v10
kind: Playbook
metadata: {name: cursor}
workflow:
  - step: start
    loop:
      cursor:
        kind: postgres
        auth: pg_k8s
        claim: |
          UPDATE tasks SET status = 'claimed'
          WHERE id = (SELECT id FROM tasks WHERE status = 'pending'
                      FOR UPDATE SKIP LOCKED LIMIT 1)
          RETURNING id, payload
      iterator: task
      spec:
        mode: cursor
        max_in_flight: 3
        frame: {max_rows: 4, lease_seconds: 60}
    tool: {kind: python, input: {id: "{{ iter.task.id }}"}, code: "result = id"}
"""


def problems(text: str) -> str:
    with pytest.raises(PlaybookError) as caught:
        load_text(text, "pb.yaml")
    return caught.value.message


def test_upstream_cursor_form_loads_with_its_slots_and_frame() -> None:
    loop = load_text(CURSOR).playbook.workflow[0].loop
    assert loop is not None and loop.is_cursor and loop.cursor is not None
    assert (loop.width, loop.frame_rows, loop.cursor.kind) == (3, 4, "postgres")


def test_a_cursor_without_mode_cursor_is_refused_where_it_is() -> None:
    message = problems(CURSOR.replace("mode: cursor", "mode: parallel"))
    assert "pb.yaml:17: workflow[0].loop.spec.mode" in message
    assert "needs `spec.mode: cursor`" in message


def test_mode_cursor_over_a_collection_is_refused() -> None:
    text = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: c}
workflow:
  - step: start
    loop: {in: [1], spec: {mode: cursor}}
    tool: {kind: noop}
"""
    assert "workflow[0].loop.spec.mode: `mode: cursor` needs a `loop.cursor`" in problems(text)


def test_both_sources_and_no_source_are_refused() -> None:
    both = CURSOR.replace("      iterator: task", "      in: [1]\n      iterator: task")
    assert "not both" in problems(both)
    none = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: c}
workflow:
  - step: start
    loop: {iterator: x}
    tool: {kind: noop}
"""
    assert "pb.yaml:6: workflow[0].loop.in: required field is missing" in problems(none)


def test_an_unknown_cursor_kind_is_named() -> None:
    message = problems(CURSOR.replace("kind: postgres", "kind: redis"))
    assert "workflow[0].loop.cursor.kind: cursor kind 'redis' is not supported" in message


def test_a_cursor_without_a_connection_is_refused() -> None:
    message = problems(CURSOR.replace("        auth: pg_k8s\n", ""))
    assert "workflow[0].loop.cursor.auth" in message


def test_a_frame_on_a_collection_loop_is_refused() -> None:
    text = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: c}
workflow:
  - step: start
    loop: {in: [1], spec: {mode: parallel, frame: {max_rows: 2}}}
    tool: {kind: noop}
"""
    assert "workflow[0].loop.spec.frame" in problems(text)


def scene() -> Scene:
    playbook = load_text(CURSOR).playbook
    return Scene(playbook, build(playbook), "E", 1.0)


def test_activation_issues_frame_zero_of_every_slot_and_frames_chain() -> None:
    sc = scene()
    loop = E.Command("L", "E", "start", "loop", {"ctx": None, "results": None, "depth": 0})
    batch = C.activate(sc, loop, 1)
    issued = [E.Command.from_dict(e.body["command"]) for e in batch if e.kind == "issue"]
    assert [c.frame["cursor"] for c in issued] == [
        {"slot": s, "frame": 0, "rows": 0} for s in range(3)
    ]
    assert batch[0].body["loop"] == {"length": 3, "width": 3, "cursor": True}
    first = issued[1]
    ok = Outcome("ok", result={"inline": [1, 2, 3, 4]}, view=ResultView([1, 2, 3, 4]))
    full = {"rows": 4, "failed": [], "drained": False, "broke": False}
    more = C.record_frame(sc, first, 1, ok, full)
    (following,) = [E.Command.from_dict(e.body["command"]) for e in more if e.kind == "issue"]
    assert following.frame["cursor"] == {"slot": 1, "frame": 1, "rows": 4}
    assert following.id == C.frame_command_id("E", "L", 1, 1)
    assert not any(e.kind == C.SLOT_END for e in more)
    drained = {"rows": 2, "failed": [], "drained": True, "broke": False}
    last = C.record_frame(sc, following, 1, ok, drained)
    (end,) = [e for e in last if e.kind == C.SLOT_END]
    assert end.id == E.done_id("E", E.iteration_id("L", 1))
    assert end.body["frames"] == 2 and end.body["rows"] == 6
    member = tally_of(end)
    assert member is not None and member.is_root and member.member == 1


def test_a_failed_row_without_recovery_halts_and_ends_no_slot() -> None:
    sc = scene()
    loop = E.Command("L", "E", "start", "loop", {"ctx": None, "results": None, "depth": 0})
    frame = C.frame_command("E", loop, 0, 0, 0, 3)
    failed = Outcome("error", error={"kind": "python"}, view=ResultView(None))
    progress = {"rows": 1, "failed": [0], "drained": False, "broke": False}
    batch = C.record_frame(sc, frame, 1, failed, progress)
    assert batch[0].halt
    assert [e.kind for e in batch] == ["done"]


def test_more_slots_than_one_batch_holds_are_refused() -> None:
    message = problems(CURSOR.replace("max_in_flight: 3", "max_in_flight: 1000"))
    assert "workflow[0].loop.spec.max_in_flight: a cursor loop runs at most 400 slots" in message


def test_a_bad_max_iterations_is_named() -> None:
    text = CURSOR.replace(
        "        auth: pg_k8s\n", "        auth: pg_k8s\n        options: {max_iterations: many}\n"
    )
    message = problems(text)
    assert "workflow[0].loop.cursor.options.max_iterations: max_iterations" in message
    assert "'many'" in message


def test_unknown_frame_and_cursor_fields_are_named() -> None:
    message = problems(CURSOR.replace("lease_seconds: 60", "lease_secs: 60"))
    assert "workflow[0].loop.spec.frame.lease_secs: unknown field" in message
