"""The pure engine: feed events (outcomes), assert the entries and commands it decides."""

from __future__ import annotations

import json
import textwrap
from dataclasses import replace
from typing import Any

import pytest

from noetl_core import engine, ids
from noetl_core.engine import entries as E
from noetl_core.engine import fold as F
from noetl_core.engine import graph as G
from noetl_core.engine import policy as P
from noetl_core.engine import scope
from noetl_core.engine.decide import Outcome, Scene
from noetl_core.engine.entries import Command, Entry
from noetl_core.engine.versions import Tries, split_ref
from noetl_core.playbook.loader import load_text
from noetl_core.playbook.model import Playbook, Policy, PolicyRule, RuleAction
from noetl_core.templating import ResultView

pytestmark = pytest.mark.unit

EID = "ex-1"
DONE_OK = ("call.done", "step.exit", "command.completed")
DONE_ERROR = ("call.error", "step.exit", "command.failed")


# -- helpers ---------------------------------------------------------------------------


def load(workflow: str, head: str = "") -> Playbook:
    text = "apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {name: t}\n"
    text += textwrap.dedent(head) + "workflow:\n" + textwrap.indent(textwrap.dedent(workflow), "  ")
    return load_text(text, "pb.yaml").playbook


# Scope-version nodes the tests made, by the entry that carries them.
NODES: dict[str, list[dict[str, Any]]] = {}


def read_node(ref: str) -> dict[str, Any]:
    entry_id, pos = split_ref(ref)
    return NODES[entry_id][pos]


def keep_nodes(entries: list[Entry]) -> None:
    for entry in entries:
        if "nodes" in entry.body:
            NODES[entry.id] = entry.body["nodes"]


def frozen(frame: dict[str, Any]) -> dict[str, Any]:
    """A frame written with plain maps, as scope versions (fixture nodes)."""
    head = "fx" + ids.digest(json.dumps(frame, sort_keys=True, default=str))
    tries = Tries(read_node, head)
    ctx = None
    for key, value in frame.get("ctx", {}).items():
        ctx = tries.put(ctx, key, value)
    results = None
    for key, value in frame.get("results", {}).items():
        results = tries.put(results, key, value)
    NODES[head] = tries.nodes
    return {**frame, "ctx": ctx, "results": results}


def thawed(frame: dict[str, Any]) -> dict[str, Any]:
    """A frame's scope versions as plain maps."""
    tries = Tries(read_node)
    return {
        **frame,
        "ctx": dict(tries.items(frame.get("ctx"))),
        "results": dict(tries.items(frame.get("results"))),
    }


def scene(pb: Playbook, ts: float = 1.0) -> Scene:
    return Scene(pb, G.build(pb), EID, ts, read_node)


def names(
    pb: Playbook,
    ctx: dict[str, Any] | None = None,
    results: dict[str, Any] | None = None,
    loop: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return scope.context(
        workload=pb.workload,
        ctx=ctx or {},
        results={k: ResultView(v) for k, v in (results or {}).items()},
        execution_id=EID,
        parent_execution_id=None,
        loop=loop,
    )


def ok(value: Any = None) -> Outcome:
    value = {} if value is None else value
    return Outcome("ok", result={"inline": value}, view=ResultView(value))


def err(message: str = "boom", code: str = "tool_error") -> Outcome:
    error = {"kind": "python", "code": code, "message": message, "retryable": False}
    return Outcome("error", error=error, view=ResultView(None))


def command(step: str, frame: dict[str, Any] | None = None, cid: str = "c-src", kind="step"):
    return Command(cid, EID, step, kind, frozen(frame or {"ctx": {}, "results": {}}))


def record(pb: Playbook, step: str, outcome: Outcome, frame=None, cid="c-src", kind="step", **kw):
    frame = frame or {"ctx": {}, "results": {}}
    sc = scene(pb)
    hydrated = names(pb, ctx=frame["ctx"], **kw)
    batch = engine.record(sc, command(step, frame, cid, kind), 1, outcome, hydrated)
    keep_nodes(batch)
    return batch


def raw_issued(batch: list[Entry]) -> list[Command]:
    """The commands a batch issued, frames as recorded (scope-version references)."""
    keep_nodes(batch)
    return [Command.from_dict(e.body["command"]) for e in batch if e.kind == "issue"]


def issued(batch: list[Entry]) -> list[Command]:
    """The commands a batch issued, frames read back as plain maps."""
    keep_nodes(batch)
    found = [Command.from_dict(e.body["command"]) for e in batch if e.kind == "issue"]
    return [replace(c, frame=thawed(c.frame)) for c in found]


def targets(batch: list[Entry]) -> list[str]:
    return [c.step for c in issued(batch)]


FAN = """
- step: start
  tool: {kind: noop}
  next: {spec: {mode: inclusive}, arcs: [{step: a}, {step: b}]}
- step: a
  tool: {kind: noop}
  next: {arcs: [{step: join}]}
- step: b
  tool: {kind: noop}
  next: {arcs: [{step: join}]}
- step: join
  tool: {kind: noop}
"""

PAGINATE = """
- step: start
  tool: {kind: noop}
  next: fetch
- step: fetch
  tool: {kind: noop}
  next: check
- step: check
  tool: {kind: noop}
  next:
    - {step: fetch, when: "{{ fetch.data.has_more }}"}
    - {step: end}
"""


def loop_pb(spec: str = "{mode: parallel, max_in_flight: 2}", arcs: str = "") -> Playbook:
    return load(
        f"""
        - step: start
          tool: {{kind: noop}}
          next: L
        - step: L
          loop: {{in: "{{{{ items }}}}", iterator: item, spec: {spec}}}
          tool: {{kind: noop}}
          {arcs}
        - step: after
          tool: {{kind: noop}}
        - step: rescue
          tool: {{kind: noop}}
        """
    )


def activation(frame: dict[str, Any] | None = None) -> Command:
    return Command("c-act", EID, "L", "loop", frozen(frame or {"ctx": {}, "results": {}}))


def issued_indices(batch: list[Entry]) -> list[int]:
    """The loop iterations a batch issued by range, by index."""
    return [int(i.rpartition(".")[2]) for e in batch for i in E.issued_iterations(e)]


# -- graph -----------------------------------------------------------------------------


def test_graph_pagination_back_edge_is_not_a_join():
    graph = G.build(load(PAGINATE))
    assert graph.entry == "start"
    assert graph.back_edges == frozenset({("check", "fetch")})
    assert graph.joins == frozenset()
    assert graph.arcs["check"] == ("fetch",)  # the absent `end` is no node
    assert graph.is_forward("fetch", "check")
    assert not graph.is_forward("check", "fetch")
    assert not graph.is_join_arc("check", "fetch")


def test_graph_joins_need_two_forward_predecessors():
    pb = load(
        """
        - step: start
          tool: {kind: noop}
          next: {spec: {mode: inclusive}, arcs: [{step: a}, {step: b}]}
        - step: a
          tool: {kind: noop}
          next: a_check
        - step: a_check
          tool: {kind: noop}
          next:
            - {step: a, when: "{{ more }}"}
            - {step: join}
        - step: b
          tool: {kind: noop}
          next: join
        - step: join
          tool: {kind: noop}
          next: final
        - step: final
          tool: {kind: noop}
        """
    )
    graph = G.build(pb)
    assert graph.back_edges == frozenset({("a_check", "a")})
    assert graph.joins == frozenset({"join"})
    assert graph.reach["join"] == frozenset({"start", "a", "a_check", "b"})
    assert graph.joins_below["a_check"] == frozenset({"join"})
    assert graph.joins_below["join"] == frozenset()
    assert graph.joins_below["final"] == frozenset()
    assert graph.is_join_arc("b", "join")


def test_graph_two_arcs_from_one_step_do_not_make_a_join():
    pb = load(
        """
        - step: start
          tool: {kind: noop}
          next:
            - {step: x, when: "{{ flag }}"}
            - {step: x}
        - step: x
          tool: {kind: noop}
        """
    )
    graph = G.build(pb)
    assert graph.arcs["start"] == ("x",)
    assert graph.joins == frozenset()


def test_fan_out_graph_reach_of_join():
    graph = G.build(load(FAN))
    assert graph.joins == frozenset({"join"})
    assert graph.reach == {"join": frozenset({"start", "a", "b"})}
    assert graph.order == ("start", "a", "b", "join")


# -- arcs ------------------------------------------------------------------------------


def test_exclusive_arcs_take_the_first_match_in_yaml_order():
    pb = load(
        """
        - step: start
          tool: {kind: noop}
          next:
            - {step: a, when: "{{ n > 5 }}"}
            - {step: b, when: "{{ n > 1 }}"}
            - {step: c}
        - {step: a, tool: {kind: noop}}
        - {step: b, tool: {kind: noop}}
        - {step: c, tool: {kind: noop}}
        """,
        "workload: {n: 3}\n",
    )
    batch = record(pb, "start", ok())
    assert targets(batch) == ["b"]
    assert batch[0].body["arcs"] == [1]


def test_inclusive_arcs_take_every_match():
    pb = load(
        """
        - step: start
          tool: {kind: noop}
          next:
            spec: {mode: inclusive}
            arcs:
              - {step: a, when: "{{ n > 1 }}"}
              - {step: b, when: "{{ n > 5 }}"}
              - {step: c}
        - {step: a, tool: {kind: noop}}
        - {step: b, tool: {kind: noop}}
        - {step: c, tool: {kind: noop}}
        """,
        "workload: {n: 3}\n",
    )
    batch = record(pb, "start", ok())
    assert targets(batch) == ["a", "c"]
    assert batch[0].body["arcs"] == [0, 2]
    assert batch[0].body["issued"] == [e.command_id for e in batch[1:]]


def test_when_sees_the_result_output_and_event():
    pb = load(PAGINATE)
    frame = {"ctx": {}, "results": {"fetch": "do-fetch"}}
    more = record(pb, "check", ok(), frame=frame, results={"fetch": {"has_more": True}})
    assert targets(more) == ["fetch"]
    done = record(pb, "check", ok(), frame=frame, results={"fetch": {"has_more": False}})
    assert targets(done) == []
    assert done[0].body["arcs"] == [1]  # `end` matched, nothing to issue

    seen = load(
        """
        - step: start
          tool: {kind: noop}
          next:
            - step: x
              when: >-
                {{ start.data.v == 1 and output.status == 'ok'
                and event.name == 'call.done' }}
        - {step: x, tool: {kind: noop}}
        """
    )
    assert targets(record(seen, "start", ok({"v": 1}))) == ["x"]
    assert targets(record(seen, "start", ok({"v": 2}))) == []


def test_back_edge_arc_issues_a_command_not_an_arrival():
    pb = load(PAGINATE)
    batch = record(pb, "check", ok(), results={"fetch": {"has_more": True}})
    assert [e.kind for e in batch] == ["done", "issue"]
    assert batch[0].body["arrived"] == []


def test_step_without_next_ends_its_branch():
    pb = load("- {step: start, tool: {kind: noop}}\n")
    batch = record(pb, "start", ok({"x": 1}))
    assert len(batch) == 1
    head = batch[0]
    assert head.kind == "done"
    assert head.events == DONE_OK
    assert head.dc == -1
    assert head.halt is False
    assert head.body["issued"] == [] and head.body["arrived"] == []
    assert head.body["result"] == {"inline": {"x": 1}}


def test_no_matching_arc_ends_the_branch_without_halting():
    pb = load(
        """
        - step: start
          tool: {kind: noop}
          next: [{step: a, when: "{{ false }}"}]
        - {step: a, tool: {kind: noop}}
        """
    )
    batch = record(pb, "start", ok())
    assert len(batch) == 1
    assert batch[0].halt is False
    assert batch[0].body["arcs"] == []


def test_successor_frame_carries_results_and_ctx_of_the_path():
    pb = load("- {step: start, tool: {kind: noop}, next: x}\n- {step: x, tool: {kind: noop}}\n")
    frame = {"ctx": {"kept": 1}, "results": {"earlier": "do-earlier"}}
    batch = record(pb, "start", ok(), frame=frame, cid="c-start")
    (cmd,) = issued(batch)
    assert cmd.frame == {
        "ctx": {"kept": 1},
        "results": {"earlier": "do-earlier", "start": E.done_id(EID, "c-start")},
        "depth": 1,
    }
    assert cmd.parent == "c-start"
    assert cmd.kind == "step"
    assert batch[1].dc == 1 and batch[1].attempt == 1


# -- set -------------------------------------------------------------------------------


def test_arc_when_sees_the_step_ctx_set():
    pb = load(
        """
        - step: start
          tool: {kind: noop}
          set: {ctx.page: "{{ ctx.page + 1 }}"}
          next:
            - {step: two, when: "{{ ctx.page == 2 }}"}
            - {step: other}
        - {step: two, tool: {kind: noop}}
        - {step: other, tool: {kind: noop}}
        """
    )
    batch = record(pb, "start", ok(), frame={"ctx": {"page": 1}, "results": {}})
    assert targets(batch) == ["two"]
    assert issued(batch)[0].frame["ctx"] == {"page": 2}
    assert batch[0].body["set"]["ctx"] == {"page": 2}


def test_arc_when_sees_the_bare_name_of_a_ctx_set():
    pb = load(
        """
        - step: start
          tool: {kind: noop}
          set: {ctx.page: 2}
          next:
            - {step: two, when: "{{ page == 2 }}"}
            - {step: other}
        - {step: two, tool: {kind: noop}}
        - {step: other, tool: {kind: noop}}
        """,
        "workload: {page: 1}\n",
    )
    assert targets(record(pb, "start", ok())) == ["two"]


def test_arc_set_lands_only_in_its_target_frame():
    pb = load(
        """
        - step: start
          tool: {kind: noop}
          set: {ctx.x: 4}
          next:
            spec: {mode: inclusive}
            arcs:
              - {step: a, set: {ctx.who: a, ctx.y: "{{ ctx.x * 10 }}"}}
              - {step: b, set: {ctx.who: b}}
              - {step: c}
        - {step: a, tool: {kind: noop}}
        - {step: b, tool: {kind: noop}}
        - {step: c, tool: {kind: noop}}
        """
    )
    batch = record(pb, "start", ok(), frame={"ctx": {"base": 0}, "results": {}})
    frames = {c.step: c.frame["ctx"] for c in issued(batch)}
    assert frames == {
        "a": {"base": 0, "x": 4, "who": "a", "y": 40},
        "b": {"base": 0, "x": 4, "who": "b"},
        "c": {"base": 0, "x": 4},
    }
    assert batch[0].body["set"]["ctx"] == {"x": 4}


def test_set_scopes_ctx_iter_step_and_unscoped_keys():
    pb = load(
        """
        - step: start
          tool: {kind: noop}
          set:
            ctx.a: 1
            iter.b: 2
            step.c: 3
            d: 4
            ctx.nested.deep: 5
          next:
            - {step: x, when: "{{ step.c == 3 and ctx.d == 4 }}"}
        - {step: x, tool: {kind: noop}}
        """
    )
    batch = record(pb, "start", ok(), frame={"ctx": {"nested": {"keep": 0}}, "results": {}})
    assert batch[0].body["set"] == {
        "ctx": {"a": 1, "d": 4, "nested": {"deep": 5}},
        "iter": {"b": 2},
        "step": {"c": 3},
    }
    (cmd,) = issued(batch)
    assert cmd.frame["ctx"] == {"a": 1, "d": 4, "nested": {"keep": 0, "deep": 5}}


def test_set_values_render_against_names_before_the_set():
    pb = load(
        """
        - step: start
          tool: {kind: noop}
          set: {ctx.x: 5, ctx.y: "{{ ctx.x }}", ctx.r: "{{ start.data.v }}"}
        """
    )
    batch = record(pb, "start", ok({"v": "r"}), frame={"ctx": {"x": 1}, "results": {}})
    assert batch[0].body["set"]["ctx"] == {"x": 5, "y": 1, "r": "r"}


def test_policy_patches_merge_over_step_set():
    pb = load(
        "- {step: start, tool: {kind: noop}, set: {ctx.a: 1, ctx.b: 1}, next: x}\n"
        "- {step: x, tool: {kind: noop}}\n"
    )
    outcome = Outcome(
        "ok", result={"inline": {}}, view=ResultView({}), patches=scope.Patches(ctx={"b": 2})
    )
    batch = record(pb, "start", outcome)
    assert batch[0].body["set"]["ctx"] == {"a": 1, "b": 2}
    assert batch[0].body["policy_set"] == {"ctx": {"b": 2}, "iter": {}, "step": {}}
    assert issued(batch)[0].frame["ctx"] == {"a": 1, "b": 2}


def test_step_set_sees_output_and_result():
    pb = load(
        """
        - step: start
          tool: {kind: noop}
          set: {ctx.status: "{{ output.status }}", ctx.n: "{{ start.data.n }}"}
        """
    )
    batch = record(pb, "start", ok({"n": 7}))
    assert batch[0].body["set"]["ctx"] == {"status": "ok", "n": 7}


def test_names_layer_workload_ctx_results_and_loop():
    hydrated = scope.context(
        workload={"api": "w", "shared": "w", "page": 1},
        ctx={"shared": "c", "fetch": "ctx-value"},
        results={"fetch": ResultView({"r": 1})},
        execution_id=EID,
        parent_execution_id="ex-parent",
        loop=scope.loop_names("user", {"id": 9}, 0, 2, {}),
    )
    assert hydrated["api"] == "w"
    assert hydrated["shared"] == "c"
    assert hydrated["ctx"] == {"api": "w", "shared": "c", "page": 1, "fetch": "ctx-value"}
    assert hydrated["workload"] == {"api": "w", "shared": "w", "page": 1}
    assert hydrated["fetch"] == ResultView({"r": 1})
    assert hydrated["user"] == {"id": 9}
    assert (hydrated["execution_id"], hydrated["parent_execution_id"]) == (EID, "ex-parent")


def test_loop_names_bind_iter_and_loop():
    named = scope.loop_names("user", {"id": 1}, 2, 3, {"x": 1})
    assert named == {
        "user": {"id": 1},
        "iter": {
            "index": 2,
            "user": {"id": 1},
            "_index": 2,
            "_first": False,
            "_last": True,
            "x": 1,
        },
        "loop": {"index": 2, "first": False, "last": True, "length": 3},
        "loop_index": 2,
    }
    first = scope.loop_names("item", "a", 0, 1, {})
    assert first["iter"]["_first"] and first["iter"]["_last"] and first["loop"]["first"]
    # an iterator called `index` wins over upstream's `iter.index` alias
    assert scope.loop_names("index", "a", 0, 1, {})["iter"]["index"] == "a"


# -- joins -----------------------------------------------------------------------------


def test_arc_to_a_join_is_an_arrival_not_a_command():
    pb = load(FAN)
    frame = {"ctx": {"k": 1}, "results": {"start": "do-start"}}
    batch = record(pb, "a", ok(1), frame=frame, cid="c-a")
    head, arrive = batch
    assert arrive.kind == "arrive"
    assert arrive.step == "join"
    assert arrive.dj == 1 and arrive.dc == 0
    assert arrive.command_id == "c-a"
    assert arrive.id == E.arrive_id(EID, "join", "c-a", 0)
    assert arrive.body["from"] == "a"
    assert thawed(arrive.body["frame"]) == {
        "ctx": {"k": 1},
        "results": {"start": "do-start", "a": E.done_id(EID, "c-a")},
        "depth": 1,
    }
    assert head.body["issued"] == []
    assert head.body["arrived"] == [arrive.id]


def arrival(cid: str, ctx: dict[str, Any], results: dict[str, str], depth: int = 1) -> Entry:
    return Entry(
        id=E.arrive_id(EID, "join", cid, 0),
        execution_id=EID,
        kind="arrive",
        events=(),
        ts=1.0,
        step="join",
        command_id=cid,
        dj=1,
        body={"frame": {**frozen({"ctx": ctx, "results": results}), "depth": depth}, "from": cid},
    )


def test_join_merges_arrival_ctx_in_order_and_consumes_them():
    first = arrival("c-a", {"x": 1, "a": 1, "m": {"p": 1}}, {"start": "d0", "a": "da"}, 5)
    second = arrival("c-b", {"x": 2, "b": 2, "m": {"q": 2}}, {"start": "d0", "b": "db"}, 3)
    entry = engine.join(scene(load(FAN)), "join", [first, second])
    keep_nodes([entry])
    assert entry.kind == "issue"
    assert entry.events == ("command.issued",)
    assert entry.step == "join"
    assert entry.dj == -2 and entry.dc == 1
    assert entry.body["arrivals"] == [first.id, second.id]
    cmd = Command.from_dict(entry.body["command"])
    assert cmd.kind == "step"
    assert thawed(cmd.frame) == {
        "ctx": {"x": 2, "a": 1, "b": 2, "m": {"p": 1, "q": 2}},
        "results": {"start": "d0", "a": "da", "b": "db"},
        "depth": 5,  # the deepest arrival's
    }
    reverse = engine.join(scene(load(FAN)), "join", [second, first])
    keep_nodes([reverse])
    assert thawed(Command.from_dict(reverse.body["command"]).frame)["ctx"]["x"] == 1


def test_join_id_is_the_same_for_the_same_arrivals_in_any_order():
    a = arrival("c-a", {}, {})
    b = arrival("c-b", {}, {})
    c = arrival("c-c", {}, {})
    sc = scene(load(FAN))
    one = engine.join(sc, "join", [a, b])
    two = engine.join(sc, "join", [b, a])
    assert one.id == two.id
    assert one.command_id == two.command_id
    assert E.issue_id(EID, one.command_id) == one.id
    assert engine.join(sc, "join", [a, b, c]).id != one.id
    assert engine.join(sc, "join", [a]).dj == -1


# -- loops -----------------------------------------------------------------------------


def activate(pb: Playbook, items: list[Any], frame=None) -> list[Entry]:
    return engine.activate(
        scene(pb), activation(frame), 1, len(items), {"inline": items}, names(pb), ResultView([])
    )


def test_activate_issues_the_first_max_in_flight_iterations_as_one_range():
    pb = loop_pb()
    items = ["a", "b", "c", "d", "e"]
    batch = activate(pb, items, {"ctx": {"k": 1}, "results": {"start": "d0"}})
    (head,) = batch  # one entry, however many iterations it starts
    assert head.kind == "done"
    assert head.events == ("command.completed",)
    assert head.dc == 2 and head.da == 0  # the two iterations it opened
    assert head.body["loop"] == {"length": 5, "width": 2}
    assert head.body["items"] == {"inline": items}
    assert head.body["iterations"] == [0, 2]
    assert E.issued_iterations(head) == ["c-act.0", "c-act.1"]
    assert head.body["issued"] == []
    loop = activation({"ctx": {"k": 1}, "results": {"start": "d0"}})
    cmd = engine.iteration_command(EID, loop, 1, "b", 5, 2)
    assert cmd.id == "c-act.1" and E.iteration_of(cmd.id) == ("c-act", 1)
    assert cmd.kind == "iteration"
    assert (cmd.length, cmd.width) == (5, 2)
    assert cmd.activation == "c-act" and cmd.parent == "c-act"
    assert thawed(cmd.frame) == {
        "ctx": {"k": 1},
        "results": {"start": "d0"},
        "iter": {"item": "b", "index": 1},
    }


def test_a_wide_activation_is_one_entry():
    batch = activate(loop_pb("{mode: parallel}"), list(range(2500)))
    assert len(batch) == 1 and batch[0].dc == 2500
    assert issued_indices(batch) == list(range(2500))
    expanded = E.expand(batch[0])
    assert [e["type"] for e in expanded].count("command.issued") == 2500


def iteration(index: int, length: int = 5, width: int = 2, item: Any = None) -> Command:
    return Command(
        E.iteration_id("c-act", index),
        EID,
        "L",
        "iteration",
        frozen(
            {"ctx": {"k": 1}, "results": {"start": "d0"}, "iter": {"item": item, "index": index}}
        ),
        parent="c-act",
        activation="c-act",
        index=index,
        length=length,
        width=width,
    )


def record_iteration(pb, cmd, outcome, items=None):
    items = items or ["a", "b", "c", "d", "e"]
    assert cmd.index is not None
    loop = scope.loop_names("item", items[cmd.index], cmd.index, cmd.length, {})
    return engine.record_iteration(
        scene(pb), scene(pb).step("L"), cmd, 1, outcome, names(pb, loop=loop)
    )


@pytest.mark.parametrize(("index", "following"), [(0, 2), (1, 3), (2, 4), (3, None), (4, None)])
def test_record_iteration_issues_index_plus_width(index, following):
    pb = loop_pb()
    batch = record_iteration(pb, iteration(index), ok(index))
    (head,) = batch
    assert head.kind == "done" and head.events == DONE_OK
    assert head.group == "c-act"
    assert head.body["index"] == index
    if following is None:
        assert head.dc == -1 and "iterations" not in head.body
        return
    assert head.dc == 0  # one command closed, one opened
    assert head.body["iterations"] == [following, 1]
    assert E.issued_iterations(head) == [f"c-act.{following}"]


def test_iteration_ids_agree_between_activation_and_record():
    items = ["a", "b", "c", "d", "e"]
    wide = E.issued_iterations(activate(loop_pb("{mode: parallel}"), items)[0])
    by_record = E.issued_iterations(record_iteration(loop_pb(), iteration(0), ok())[0])
    assert by_record == [wide[2]]


def test_sequential_loop_has_width_one():
    pb = loop_pb("{mode: sequential, max_in_flight: 10}")
    batch = activate(pb, ["a", "b", "c"])
    assert issued_indices(batch) == [0]
    assert batch[0].body["loop"] == {"length": 3, "width": 1}
    nxt = record_iteration(pb, iteration(0, length=3, width=1), ok(), items=["a", "b", "c"])
    assert issued_indices(nxt) == [1]
    last = record_iteration(pb, iteration(2, length=3, width=1), ok(), items=["a", "b", "c"])
    assert issued_indices(last) == []


def test_empty_loop_finishes_at_once_and_issues_successors():
    pb = loop_pb(arcs='next: [{step: after, when: "{{ L | length == 0 }}"}]')
    batch = activate(pb, [])
    assert [e.kind for e in batch] == ["done", "loopdone", "issue"]
    head, done, issue = batch
    assert done.events == ("loop.done", "call.done", "step.exit")
    assert done.id == E.loopdone_id(EID, "c-act")
    assert done.da == -1
    assert done.body["result"] == {"inline": []}
    assert done.body["issued"] == [issue.command_id]
    assert issue.step == "after"
    assert head.body["issued"] == [issue.command_id]
    assert head.body["loop"]["length"] == 0


def done_iteration(index: int, ctx: dict[str, Any], status: str = "ok") -> Entry:
    body: dict[str, Any] = {"status": status, "result": {"inline": index}, "index": index}
    if ctx:
        body["set"] = {"ctx": ctx, "iter": {}, "step": {}}
    return Entry(
        id=E.done_id(EID, f"c-it{index}"),
        execution_id=EID,
        kind="done",
        events=DONE_OK,
        ts=1.0,
        step="L",
        command_id=f"c-it{index}",
        dc=-1,
        group="c-act",
        body=body,
    )


def test_loop_done_merges_ctx_in_index_order_and_evaluates_arcs_once():
    pb = loop_pb(
        arcs="""next:
            spec: {mode: inclusive}
            arcs:
              - {step: after, when: "{{ L | length == 3 and ctx.last == 2 }}"}
              - {step: rescue, when: "{{ event.name == 'call.error' }}"}"""
    )
    iterations = [
        done_iteration(2, {"last": 2, "two": True}),
        done_iteration(0, {"last": 0, "zero": True}),
        done_iteration(1, {"last": 1}),
    ]
    act = activation({"ctx": {"base": 1}, "results": {"start": "d0"}})
    outcome = Outcome("ok", result={"inline": [0, 1, 2]}, view=ResultView([0, 1, 2]))
    batch = engine.loop_done(scene(pb), act, iterations, outcome, names(pb))
    head = batch[0]
    assert head.kind == "loopdone"
    assert head.events == ("loop.done", "call.done", "step.exit")
    assert head.group == "c-act" and head.command_id == "c-act"
    assert head.body["arcs"] == [0]
    assert head.body["result"] == {"inline": [0, 1, 2]}
    (cmd,) = issued(batch)
    assert cmd.step == "after"
    assert cmd.frame == {
        "ctx": {"base": 1, "last": 2, "two": True, "zero": True},
        "results": {"start": "d0", "L": E.loopdone_id(EID, "c-act")},
        "depth": 1,
    }
    assert cmd.parent == "c-act"


def test_loop_done_arcs_see_bare_names_of_iteration_ctx_sets():
    pb = loop_pb(arcs='next: [{step: after, when: "{{ total == 3 }}"}]')
    outcome = Outcome("ok", result={"inline": [0]}, view=ResultView([0]))
    iterations = [done_iteration(0, {"total": 3})]
    batch = engine.loop_done(scene(pb), activation(), iterations, outcome, names(pb))
    assert targets(batch) == ["after"]


def test_iteration_set_sees_iter_names_and_is_recorded():
    pb = load(
        """
        - step: L
          loop: {in: "{{ items }}", iterator: item}
          tool: {kind: noop}
          set: {ctx.last: "{{ item }}", iter.pos: "{{ iter._index }}-{{ loop.length }}"}
        """
    )
    batch = record_iteration(pb, iteration(1), ok())
    assert batch[0].body["set"] == {"ctx": {"last": "b"}, "iter": {"pos": "1-5"}, "step": {}}


def test_iterations_never_evaluate_the_loop_steps_arcs():
    pb = loop_pb(arcs="next: after")
    batch = record_iteration(pb, iteration(4), ok())
    assert len(batch) == 1
    assert batch[0].body["arcs"] == []


def test_failed_iteration_halts_without_recovery_arcs():
    pb = loop_pb(arcs="next: after")
    batch = record_iteration(pb, iteration(0), err())
    assert len(batch) == 1
    head = batch[0]
    assert head.halt is True
    assert head.events == DONE_ERROR
    assert head.body["status"] == "error"
    assert head.body["error"]["message"] == "boom"
    assert issued_indices(batch) == [] and head.dc == -1


def test_failed_iteration_continues_with_recovery_arcs():
    pb = loop_pb(arcs="next: [{step: rescue, when: \"{{ event.name == 'call.error' }}\"}]")
    batch = record_iteration(pb, iteration(0), err())
    assert batch[0].halt is False
    assert issued_indices(batch) == [2]


def test_failed_loop_goes_to_its_recovery_arc():
    pb = loop_pb(
        arcs="""next:
            - {step: after}
            - step: rescue
              when: "{{ event.name == 'call.error' and error.failed_iterations == [1] }}"
"""
    )
    error = {"kind": "python", "message": "boom", "failed_iterations": [1]}
    outcome = Outcome("error", result={"inline": [0, None]}, error=error, view=ResultView([0]))
    iterations = [done_iteration(0, {}), done_iteration(1, {}, status="error")]
    batch = engine.loop_done(scene(pb), activation(), iterations, outcome, names(pb))
    head = batch[0]
    assert head.events == ("loop.done", "call.error", "step.exit")
    assert head.halt is False
    assert head.body["recovered"] is True
    assert head.body["arcs"] == [1]
    assert targets(batch) == ["rescue"]


def test_failed_loop_without_recovery_halts():
    pb = loop_pb(arcs="next: after")
    outcome = Outcome("error", error={"message": "boom"}, view=ResultView([]))
    batch = engine.loop_done(scene(pb), activation(), [done_iteration(0, {})], outcome, names(pb))
    assert len(batch) == 1
    assert batch[0].halt is True
    assert batch[0].body["issued"] == []


# -- recovery --------------------------------------------------------------------------

RECOVERY = """
- step: start
  tool: {kind: noop}
  set: {ctx.never: 1}
  next:
    - {step: happy}
    - {step: rescue, when: "{{ event.name == 'call.error' and error.code == 'E42' }}"}
- {step: happy, tool: {kind: noop}}
- {step: rescue, tool: {kind: noop}}
"""


def test_recovery_arc_takes_a_failed_step():
    batch = record(load(RECOVERY), "start", err("bad", code="E42"))
    head = batch[0]
    assert head.events == DONE_ERROR
    assert head.body["status"] == "error"
    assert head.body["error"]["code"] == "E42"
    assert head.body["recovered"] is True
    assert head.halt is False
    assert head.dc == -1
    assert "set" not in head.body  # the step's set applies to successes only
    assert targets(batch) == ["rescue"]
    assert issued(batch)[0].frame["ctx"] == {}


def test_arcs_without_when_are_not_recovery_arcs():
    pb = load("- {step: start, tool: {kind: noop}, next: [x]}\n- {step: x, tool: {kind: noop}}\n")
    batch = record(pb, "start", err())
    assert len(batch) == 1
    assert batch[0].halt is True
    assert batch[0].body["issued"] == []


def test_error_without_a_matching_recovery_arc_halts():
    batch = record(load(RECOVERY), "start", err(code="OTHER"))
    assert len(batch) == 1
    assert batch[0].halt is True
    assert "recovered" not in batch[0].body
    assert batch[0].body["arcs"] == []


def test_success_does_not_take_the_recovery_arc():
    batch = record(load(RECOVERY), "start", ok())
    assert targets(batch) == ["happy"]
    assert batch[0].halt is False


def test_failed_loop_activation_closes_the_loop_and_can_recover():
    pb = loop_pb(arcs="next: [{step: rescue, when: \"{{ event.name == 'call.error' }}\"}]")
    batch = record(pb, "L", err("loop.in failed"), cid="c-act", kind="loop")
    head = batch[0]
    assert (head.dc, head.da) == (0, -1)
    assert head.halt is False
    assert targets(batch) == ["rescue"]


# -- policy ----------------------------------------------------------------------------


def rule(when: Any = None, is_else: bool = False, **then: Any) -> PolicyRule:
    return PolicyRule(when=when, is_else=is_else, then=RuleAction(**then))


def output(status: str = "error", code: str = "E", **extra: Any) -> dict[str, Any]:
    error = None if status == "ok" else {"kind": "http", "code": code, "message": "m"}
    return {"status": status, "data": None, "error": error, "meta": {}, **extra}


def test_no_policy_ok_continues_and_error_fails():
    for policy in (None, Policy(rules=[])):
        assert P.decide(policy, output("ok"), 1, {}).action == "continue"
        assert P.decide(policy, output("error"), 1, {}).action == "fail"


def test_retry_until_attempts_are_exhausted():
    policy = Policy(rules=[rule("{{ output.status == 'error' }}", do="retry", attempts=3, delay=1)])
    first = P.decide(policy, output(), 1, {})
    assert (first.action, first.delay, first.rule, first.exhausted) == ("retry", 1.0, 0, False)
    assert P.decide(policy, output(), 2, {}).action == "retry"
    last = P.decide(policy, output(), 3, {})
    assert (last.action, last.exhausted, last.rule) == ("fail", True, 0)


@pytest.mark.parametrize(
    ("kind", "max_delay", "delays"),
    [
        ("none", None, [2.0, 2.0, 2.0, 2.0]),
        ("linear", None, [2.0, 4.0, 6.0, 8.0]),
        ("exponential", None, [2.0, 4.0, 8.0, 16.0]),
        ("exponential", 5.0, [2.0, 4.0, 5.0, 5.0]),
        ("linear", 3.0, [2.0, 3.0, 3.0, 3.0]),
    ],
)
def test_backoff_delays(kind, max_delay, delays):
    action = RuleAction(do="retry", attempts=10, backoff=kind, delay=2.0, max_delay=max_delay)
    assert [P.backoff(action, a) for a in (1, 2, 3, 4)] == delays
    policy = Policy(
        rules=[rule(True, do="retry", attempts=10, backoff=kind, delay=2.0, max_delay=max_delay)]
    )
    assert [P.decide(policy, output(), a, {}).delay for a in (1, 2, 3, 4)] == delays


def test_first_matching_rule_wins_and_else_catches_the_rest():
    policy = Policy(
        rules=[
            rule("{{ output.error.code == 'A' }}", do="fail"),
            rule("{{ error.code == 'B' and limit > 1 }}", do="break"),
            rule(is_else=True, do="continue", set={"ctx.last": "{{ output.status }}"}),
        ]
    )
    assert P.decide(policy, output(code="A"), 1, {}).action == "fail"
    broke = P.decide(policy, output(code="B"), 1, {"limit": 2})
    assert (broke.action, broke.rule) == ("break", 1)
    assert P.decide(policy, output(code="B"), 1, {"limit": 0}).action == "continue"
    other = P.decide(policy, output(code="C"), 1, {})
    assert (other.action, other.rule) == ("continue", 2)
    assert other.set == {"ctx.last": "{{ output.status }}"}


def test_jump_verdict_names_its_target():
    policy = Policy(rules=[rule("{{ output.status == 'ok' }}", do="jump", to="task_b")])
    verdict = P.decide(policy, output("ok"), 1, {})
    assert (verdict.action, verdict.to, verdict.rule) == ("jump", "task_b", 0)


def test_unmatched_rules_continue_as_upstream_canonical_v10_does():
    policy = Policy(rules=[rule("{{ output.error.code == 'never' }}", do="retry")])
    assert P.decide(policy, output("error"), 1, {}).action == "continue"
    assert P.decide(policy, output("ok"), 1, {}).action == "continue"


def test_policy_written_in_yaml_with_an_else_rule():
    pb = load(
        """
        - step: start
          tool:
            kind: python
            code: "result = 1"
            spec:
              policy:
                rules:
                  - when: "{{ output.status == 'error' and output.http.status in [429, 503] }}"
                    then: {do: retry, attempts: 5, backoff: exponential, delay: 1.0}
                  - else: {then: {do: continue, set: {ctx.last: "{{ output.data }}"}}}
        """
    )
    policy = pb.step_named("start").tool.policy
    assert policy is not None and policy.rules[-1].is_else
    throttled = output(http={"status": 503})
    assert P.decide(policy, throttled, 3, {}).delay == 4.0
    assert P.decide(policy, throttled, 5, {}).action == "fail"
    assert P.decide(policy, output(http={"status": 500}), 1, {}).action == "continue"
    assert P.names(policy) == {"output"}


# -- start, terminal, close ------------------------------------------------------------


def test_start_issues_the_entry_step_with_an_empty_frame():
    pb = load("- {step: first, tool: {kind: noop}}\n- {step: start, tool: {kind: noop}}\n")
    parent = {"execution_id": "ex-parent", "command_id": "c-p"}
    head, issue = engine.start(EID, pb, {"playbook": "t"}, {"w": 1}, parent, 0.5)
    assert head.kind == "start"
    assert head.id == E.start_id(EID)
    assert head.events == ("playbook.initialized", "workflow.initialized")
    assert head.body["workload"] == {"w": 1}
    assert head.body["playbook"] == "t"
    assert head.body["parent_execution_id"] == "ex-parent"
    assert issue.kind == "issue" and issue.step == "start"
    assert issue.dc == 1 and issue.ts == 0.5
    cmd = Command.from_dict(issue.body["command"])
    assert cmd.frame == {"ctx": None, "results": None, "depth": 0}
    assert cmd.parent is None
    assert head.body["entry_command"] == cmd.id == issue.command_id


@pytest.mark.parametrize(
    ("head", "entry"),
    [
        ("executor: {spec: {entry_step: second}}\n", "second"),
        ("", "first"),
    ],
)
def test_entry_step_rules(head, entry):
    pb = load("- {step: first, tool: {kind: noop}}\n- {step: second, tool: {kind: noop}}\n", head)
    _, issue = engine.start(EID, pb, {}, {}, None, 0.0)
    assert issue.step == entry


def test_start_of_a_loop_step_issues_a_loop_command():
    pb = load('- {step: start, loop: {in: "{{ xs }}"}, tool: {kind: noop}}\n')
    head, issue = engine.start(EID, pb, {}, {}, None, 0.0)
    assert head.body["parent_execution_id"] is None
    assert Command.from_dict(issue.body["command"]).kind == "loop"
    assert (issue.dc, issue.da) == (0, 1)


@pytest.mark.parametrize(
    ("status", "events"),
    [
        ("completed", ("workflow.completed", "playbook.completed")),
        ("failed", ("workflow.failed", "playbook.failed")),
        ("cancelled", ("playbook.cancelled",)),
    ],
)
def test_terminal_events(status, events):
    error = {"message": "boom"} if status == "failed" else None
    entry = engine.terminal(EID, status, {"inline": 3}, error, 9.0)
    assert entry.kind == "terminal"
    assert entry.id == E.terminal_id(EID)
    assert entry.events == events
    assert entry.body["status"] == status
    assert entry.body["result"] == {"inline": 3}
    assert ("error" in entry.body) == (error is not None)
    assert (entry.dc, entry.da, entry.dj) == (0, 0, 0)


def test_close_skipped_versus_error():
    cmd = command("x", cid="c-x")
    error = {"kind": "halted", "code": "execution_failed", "message": "not run"}
    skipped = engine.close(cmd, 1, "skipped", error, 2.0)
    assert skipped.id == E.done_id(EID, "c-x")
    assert skipped.events == ("command.failed",)
    assert skipped.halt is False
    assert (skipped.dc, skipped.da) == (-1, 0)
    assert skipped.body["status"] == "skipped"
    assert skipped.body["issued"] == [] and skipped.body["arrived"] == []
    failed = engine.close(cmd, 2, "error", error, 2.0)
    assert failed.events == DONE_ERROR
    assert failed.halt is True
    assert failed.attempt == 2
    assert failed.body["error"] == error


def test_close_of_a_loop_command_closes_the_activation():
    entry = engine.close(activation(), 1, "skipped", {"message": "x"}, 0.0)
    assert (entry.dc, entry.da) == (0, -1)
    it = engine.close(iteration(1), 1, "skipped", {"message": "x"}, 0.0)
    assert (it.dc, it.da, it.group) == (-1, 0, "c-act")


# -- fold ------------------------------------------------------------------------------


def fan_run() -> list[list[Entry]]:
    """The worked example's fan-out + join, batch by batch, as the blocks record it."""
    pb = load(FAN)
    sc = scene(pb)
    batches = [engine.start(EID, pb, {}, {}, None, 0.0)]
    c0 = raw_issued(batches[0])[0]
    batches.append(engine.record(sc, c0, 1, ok(), names(pb)))
    ca, cb = raw_issued(batches[-1])
    batches.append(engine.record(sc, ca, 1, ok(1), names(pb)))
    batches.append(engine.record(sc, cb, 1, ok(2), names(pb)))
    arrivals = [e for b in batches for e in b if e.kind == "arrive"]
    for batch in batches:
        keep_nodes(batch)
    batches.append([engine.join(sc, "join", arrivals)])
    cj = raw_issued(batches[-1])[0]
    batches.append(engine.record(sc, cj, 1, ok(3), names(pb, results={"a": 1, "b": 2})))
    batches.append([engine.terminal(EID, "completed", {"inline": 3}, None, 2.0)])
    return batches


def test_fold_tracks_open_work_through_a_fan_out_and_join():
    batches = fan_run()
    seen: list[Entry] = []
    open_work = []
    for batch in batches:
        seen.extend(batch)
        state = F.fold(seen)
        open_work.append((state.open_commands, state.open_arrivals, state.status))
    assert open_work == [
        (1, 0, "running"),  # start issued
        (2, 0, "running"),  # a and b issued
        (1, 1, "running"),  # a arrived at the join
        (0, 2, "running"),  # b arrived: nothing can reach the join any more
        (1, 0, "running"),  # the join's command consumed both arrivals
        (0, 0, "running"),
        (0, 0, "completed"),
    ]
    state = F.fold(seen)
    assert state.in_flight == 0
    assert state.result == {"inline": 3}
    assert {n: s.ok for n, s in state.steps.items()} == {"start": 1, "a": 1, "b": 1, "join": 1}
    assert state.entries == len(seen)
    assert state.events == sum(len(e.events) for e in seen)
    assert state.halted is False


def test_fold_of_a_failed_execution():
    pb = load(RECOVERY)
    start = engine.start(EID, pb, {}, {}, None, 0.0)
    c0 = raw_issued(start)[0]
    failed = engine.record(scene(pb), c0, 1, err(code="OTHER"), names(pb))
    skipped = engine.close(command("happy", cid="c-h"), 1, "skipped", {"message": "x"}, 1.0)
    terminal = engine.terminal(EID, "failed", None, failed[0].body["error"], 1.0)
    state = F.fold([*start, *failed, skipped, terminal])
    assert state.status == "failed"
    assert state.halted is True
    assert state.steps["start"].failed == 1
    assert state.steps["start"].error["code"] == "OTHER"
    assert state.steps["happy"].skipped == 1
    assert state.error["code"] == "OTHER"
    assert state.commands[c0.id].status == "error"


def test_fold_of_a_loop_counts_iterations_not_the_activation():
    pb = loop_pb(arcs="next: after")
    act = activate(pb, ["a", "b"])
    iters = [record_iteration(pb, iteration(i, 2, 2), ok(i), items=["a", "b"]) for i in (0, 1)]
    dones = [b[0] for b in iters]
    outcome = Outcome("ok", result={"inline": [0, 1]}, view=ResultView([0, 1]))
    finished = engine.loop_done(scene(pb), activation(), dones, outcome, names(pb))
    loop_issue = E.issue_entry(activation(), 0.0)
    state = F.fold([loop_issue, *act, *[e for b in iters for e in b], *finished])
    assert state.open_loops == 0
    assert state.open_commands == 1  # `after`
    assert state.steps["L"].ok == 2
    assert state.steps["L"].result == {"inline": [0, 1]}


def test_fold_ctx_deep_merges_like_the_engine():
    pb = load(
        """
        - {step: start, tool: {kind: noop}, set: {ctx.m.p: 1}, next: second}
        - {step: second, tool: {kind: noop}, set: {ctx.m.q: 2}, next: third}
        - {step: third, tool: {kind: noop}}
        """
    )
    first = record(pb, "start", ok(), cid="c-1")
    second_cmd = raw_issued(first)[0]
    carried_in = thawed(second_cmd.frame)["ctx"]
    second = engine.record(scene(pb), second_cmd, 1, ok(), names(pb, ctx=carried_in))
    carried = issued(second)[0].frame["ctx"]
    assert carried == {"m": {"p": 1, "q": 2}}
    assert F.fold([*first, *second]).ctx == carried


# -- determinism -----------------------------------------------------------------------


def test_recording_the_same_inputs_twice_gives_identical_entries():
    pb = load(FAN)
    frame = {"ctx": {"k": 1}, "results": {}}
    one = engine.record(scene(pb), command("start", frame), 1, ok({"v": 1}), names(pb))
    two = engine.record(scene(pb), command("start", frame), 1, ok({"v": 1}), names(pb))
    assert one == two
    assert [e.to_dict() for e in one] == [e.to_dict() for e in two]
    assert [e.id for e in one] == [e.id for e in two]


def test_ids_depend_on_inputs_not_on_time():
    pb = load(FAN)
    early = engine.record(scene(pb, ts=1.0), command("start"), 1, ok(), names(pb))
    late = engine.record(scene(pb, ts=99.0), command("start"), 1, ok(), names(pb))
    assert [e.id for e in early] == [e.id for e in late]
    assert [e.command_id for e in early] == [e.command_id for e in late]
    other = engine.record(scene(pb), command("start", cid="c-other"), 1, ok(), names(pb))
    assert {e.id for e in other}.isdisjoint({e.id for e in early})


def test_whole_run_is_reproducible():
    first = [e.to_dict() for b in fan_run() for e in b]
    again = [e.to_dict() for b in fan_run() for e in b]
    assert first == again
    assert len({e["id"] for e in first}) == len(first)


def test_entry_round_trips_through_dict():
    for entry in [e for b in fan_run() for e in b]:
        assert Entry.from_dict(entry.to_dict()) == entry


def _delta(id: str, step: str, execution_id: str = "E", **kw: Any) -> Entry:
    return Entry(id=id, execution_id=execution_id, kind="issue", events=(), ts=0.0, step=step, **kw)


def test_a_batch_carries_its_net_change_upstream_of_each_join_on_its_first_entry() -> None:
    """A chain step inside a join's reach nets zero there and carries nothing; a fork,
    a branch's end and an entry into the reach carry their change, on the first entry of
    each execution in the batch; the nets survive the entry's dict round trip."""
    reach = {"j": frozenset({"a", "b"}), "k": frozenset({"b", "c"})}
    chain = [_delta("d", "a", dc=-1), _delta("i", "a", dc=1)]
    assert E.with_join_nets(lambda _: reach, chain) == chain
    fork = [_delta("d", "a", dc=-1), _delta("i1", "b", dc=1), _delta("i2", "c", dc=1)]
    out = E.with_join_nets(lambda _: reach, fork)
    assert out[0].jn == {"k": 2} and out[1].jn is None and out[2].jn is None
    end = [_delta("x", "z", dc=0), _delta("d", "b", da=-1)]
    assert E.with_join_nets(lambda _: reach, end)[0].jn == {"j": -1, "k": -1}
    two = [_delta("p", "a", dc=1), _delta("q", "c", "F", dc=1)]
    out = E.with_join_nets(lambda ex: reach if ex == "F" else {}, two)
    assert out[0].jn is None and out[1].jn == {"k": 1}
    assert Entry.from_dict(out[1].to_dict()) == out[1]
    assert "jn" not in out[0].to_dict()  # entries without nets store nothing new


def test_a_thread_of_work_is_handed_on_forked_joined_and_signalled() -> None:
    """Termination without a sum: a chain step hands its command's links on unchanged;
    a fork becomes a node of width k whose successors answer to it; a step that starts
    nothing signals each link; a join's command takes its arrivals' links, in the same
    order whatever order the arrivals come in; the start is the root node."""
    pb = load(FAN)
    sc = scene(pb)
    first = engine.start(EID, pb, {}, {}, None, 1.0)
    root = first[0]
    assert root.body["node"] == {"k": 1, "up": []}
    assert Command.from_dict(first[1].body["command"]).links == [[root.id, 0]]

    links = [["up-node", 3]]
    fork = engine.record(sc, replace(command("start"), links=links), 1, ok(), names(pb))
    head = fork[0]
    assert head.body["node"] == {"k": 2, "up": links}
    assert [c.links for c in raw_issued(fork)] == [[[head.id, 0]], [[head.id, 1]]]
    assert not any(e.kind == "signal" for e in fork)

    arrive = engine.record(
        sc, replace(command("a", cid="c-a"), links=[[head.id, 0]]), 1, ok(), names(pb)
    )
    assert "node" not in arrive[0].body and arrive[1].kind == "arrive"
    assert arrive[1].body["links"] == [[head.id, 0]]  # one successor: handed on
    other = engine.record(
        sc, replace(command("b", cid="c-b"), links=[[head.id, 1]]), 1, ok(), names(pb)
    )
    keep_nodes([*fork, *arrive, *other])
    by_id = sorted([arrive[1], other[1]], key=lambda a: a.id)
    expected = [link for a in by_id for link in a.body["links"]]
    for order in ([arrive[1], other[1]], [other[1], arrive[1]]):
        assert engine.join(sc, "join", order).body["command"]["links"] == expected
    joined = [engine.join(sc, "join", by_id)]

    join_links = joined[0].body["command"]["links"]
    leaf = engine.record(
        sc, replace(command("join", cid="c-j"), links=join_links), 1, ok(), names(pb)
    )
    signals = [e for e in leaf if e.kind == "signal"]
    assert [(s.group, s.body["slot"]) for s in signals] == [(n, s) for n, s in join_links]
    assert leaf[0].body["signals"] == [s.id for s in signals]
    assert signals[0].id == E.signal_id(EID, head.id, join_links[0][1])
    assert all(s.dc == s.da == s.dj == 0 for s in signals)

    unlinked = engine.record(sc, command("join", cid="c-k"), 1, ok(), names(pb))
    assert not any(e.kind == "signal" for e in unlinked)  # a loop iteration's way


# -- names templates see ---------------------------------------------------------------


def test_every_name_a_block_defines_is_reserved_for_steps() -> None:
    """A step may not take a name the block's own names would shadow (playbook/names.py):
    every name the engine puts in a template's scope, besides step results, workload and
    ctx keys and the loop's iterator, is in that list."""
    from noetl_core.engine.decide import _local
    from noetl_core.playbook.names import RESERVED
    from noetl_core.runtime.execute import PipelineState

    names = scope.context(
        workload={},
        ctx={},
        results={},
        execution_id=EID,
        parent_execution_id=None,
        loop=scope.loop_names("item", 1, 0, 2, {}),
        local=_local("s", Outcome("ok", view=ResultView(1))),
    )
    names = PipelineState(1).scope({**names, "step": {}})
    assert set(names) - {"item", "s"} <= set(RESERVED)
