"""The pure engine: given what a block produced, decide the entries to record.

No I/O, no clock, no random ids: the caller passes the time and the hydrated names, and
every id is derived from the ids it was given. So replaying a log through these
functions reproduces exactly the entries the blocks recorded.

Order after a tool finishes (docs/language.md): step `set` -> evaluate arcs ->
chosen arcs' `set` -> issue the targets. On `call.error`, only arcs with a `when` are
candidates (recovery arcs); they see `event.name == 'call.error'` and `error`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import ids, templating
from ..errors import NoArcMatched
from ..playbook.model import NO_MATCH_FAILS, Playbook, Step
from ..templating import ResultView
from . import entries as E
from .entries import Command, Entry
from .graph import Graph
from .scope import (
    DONE,
    ERROR,
    FAILED,
    LOOP_DONE,
    OK,
    Patches,
    merge,
    merge_value,
    render_set,
    with_ctx,
)
from .versions import MISSING, NodeReader, Ref, Tries

DONE_OK = ("call.done", "step.exit", "command.completed")
DONE_ERROR = ("call.error", "step.exit", "command.failed")


@dataclass(frozen=True)
class Outcome:
    """A tool's final outcome for one command, after its policy."""

    status: str
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    view: ResultView | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    patches: Patches | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def output(self) -> dict[str, Any]:
        return {
            "status": OK if self.ok else ERROR,
            "data": self.view,
            "result": self.view,
            "error": self.error,
            "meta": self.meta,
        }


@dataclass(frozen=True)
class Scene:
    """What every decision about one execution needs."""

    playbook: Playbook
    graph: Graph
    execution_id: str
    ts: float
    read: NodeReader = field(default=lambda ref: _no_node(ref), compare=False)

    def step(self, name: str) -> Step:
        return self.playbook.step_named(name)

    def tries(self, head: str = "") -> Tries:
        """Scope versions, read through this scene; new nodes go in entry `head`."""
        return Tries(self.read, head)


def _no_node(ref: str) -> dict[str, Any]:
    raise LookupError(f"no node reader for scope node {ref}")


def depth(frame: Mapping[str, Any]) -> int:
    """How many blocks ran before a command on its path: the entry step's is 0, a
    successor's one more than the step it follows, a join's that of its deepest arrival;
    a loop's iterations share their loop step's. Carried in the frame, so a limit on it
    (NOETL_MAX_PATH_BLOCKS) reads nothing."""
    return int(frame.get("depth", 0))


def add_ctx(tries: Tries, root: Ref, patch: dict[str, Any]) -> Ref:
    """The ctx version after a `set`: each top-level key merged deeply over its value."""
    if not patch:
        return root
    return tries.update(root, templating.plain(patch), _ctx_combine)


def _ctx_combine(old: Any, new: Any) -> Any:
    return new if old is MISSING else merge_value(old, new)


def merge_ctx(tries: Tries, base: Ref, later: Ref) -> Ref:
    return tries.merge(base, later, merge_value)


def start(
    execution_id: str,
    playbook: Playbook,
    header: dict[str, Any],
    workload: dict[str, Any],
    parent: dict[str, Any] | None,
    ts: float,
) -> list[Entry]:
    entry_step = playbook.entry_step
    start_id = E.start_id(execution_id)
    command = _command(
        execution_id,
        playbook,
        entry_step,
        ids.command(execution_id, "entry"),
        {"ctx": None, "results": None, "depth": 0},
        None,
        links=[[start_id, 0]],
    )
    parent_id = parent["execution_id"] if parent else None
    first = Entry(
        id=start_id,
        execution_id=execution_id,
        kind="start",
        events=("playbook.initialized", "workflow.initialized"),
        ts=ts,
        body={
            **header,
            "workload": workload,
            "parent": parent,
            "parent_execution_id": parent_id,
            "entry_command": command.id,
            "node": {"k": 1, "up": []},  # the root: its one thread ending ends the execution
        },
    )
    return [first, E.issue_entry(command, ts)]


def _command(
    execution_id: str,
    playbook: Playbook,
    step: str,
    command_id: str,
    frame: dict[str, Any],
    parent: str | None,
    links: list[list[Any]] | None = None,
) -> Command:
    kind = "loop" if playbook.step_named(step).loop is not None else "step"
    return Command(command_id, execution_id, step, kind, frame, parent=parent, links=links)


def record(
    scene: Scene,
    command: Command,
    attempt: int,
    outcome: Outcome,
    names: Mapping[str, Any],
) -> list[Entry]:
    """The record batch of a finished command (not an iteration): done + what it issues."""
    step = scene.step(command.step)
    local = _local(step.step, outcome)
    scope = {**names, **local}
    patches = _step_patches(step, outcome, scope) if outcome.ok else Patches()
    done_id = E.done_id(scene.execution_id, command.id)
    tries = scene.tries(done_id)
    ctx = add_ctx(tries, command.frame.get("ctx"), patches.ctx)
    scope = {**with_ctx(scope, patches.ctx), "step": patches.step}
    chosen = choose_arcs(step, outcome.ok, scope)
    done = Entry(
        id=done_id,
        execution_id=scene.execution_id,
        kind="done",
        events=DONE_OK if outcome.ok else DONE_ERROR,
        ts=scene.ts,
        step=step.step,
        command_id=command.id,
        attempt=attempt,
        dc=-1 if command.kind != "loop" else 0,
        da=-1 if command.kind == "loop" else 0,
        halt=not outcome.ok and not chosen,
        body=_done_body(outcome, patches, chosen, recovered=not outcome.ok and bool(chosen)),
    )
    if patches.ctx:
        done = done.evolve(body=_set_by_reference(done.body, tries, ctx))
    results = tries.put(command.frame.get("results"), step.step, done_id)
    frame = {"ctx": ctx, "results": results, "depth": depth(command.frame) + 1}
    arc_sets: dict[str, Any] = {}
    made = successors(scene, step, command.id, chosen, frame, scope, tries, arc_sets)
    return with_issued(done, made, tries, arc_sets, command.links)


def _set_by_reference(body: dict[str, Any], tries: Tries, ctx: Ref) -> dict[str, Any]:
    """The record's `set` naming, instead of repeating, a big ctx value that this batch
    stored as a node of its own (`{"$node": ref}`: the key's value after the set)."""
    patch = body.get("set", {}).get("ctx") or {}
    refs = {key: ref for key in patch if (ref := tries.apart(ctx, key)) is not None}
    if not refs:
        return body
    shown = {key: {"$node": refs[key]} if key in refs else value for key, value in patch.items()}
    return {**body, "set": {**body["set"], "ctx": shown}}


def with_issued(
    head: Entry,
    made: Sequence[Entry],
    tries: Tries | None = None,
    arc_sets: dict[str, Any] | None = None,
    links: list[list[Any]] | None = None,
) -> list[Entry]:
    """`head` noting what its batch issued, so a redelivery can publish it again, and
    carrying the scope-version nodes the batch made. With `links` (the closed command's
    thread of work: see `hand_on`), the batch hands the thread on."""
    body = {
        **head.body,
        "issued": [e.command_id for e in made if e.kind == "issue"],
        "arrived": [e.id for e in made if e.kind == "arrive"],
    }
    if arc_sets:
        body["arc_set"] = arc_sets
    if tries is not None and tries.nodes:
        body["nodes"] = tries.nodes
    made = list(made)
    if links is not None:
        made = hand_on(head, body, made, links)
    return [head.evolve(body=body), *made]


def hand_on(
    head: Entry, body: dict[str, Any], made: list[Entry], links: list[list[Any]]
) -> list[Entry]:
    """Termination without a sum over the execution (a diffusing computation, after
    Dijkstra and Scholten): every command but a loop iteration carries `links`, the
    [node, slot] pairs its thread of work answers to. A batch that closes it:
    - starting one successor (a command or an arrival at a join), hands the links on;
    - starting k >= 2, becomes a node (`body.node`: k and the links above it) and gives
      successor i the link [head, i];
    - starting none, signals each link (a `signal` entry, counted per node).
    A join's command takes its arrivals' links; `loop.done` the loop command's. When a
    node has k signals it signals its own links; the root (the start entry) ending ends
    the execution. A chain step hands on: it writes and reads nothing for this."""
    children = [i for i, e in enumerate(made) if e.kind in ("issue", "arrive")]
    if not children:
        signals = [E.signal(head.execution_id, str(n), int(s), head.ts) for n, s in links]
        body["signals"] = [e.id for e in signals]
        return [*made, *signals]
    if len(children) == 1:
        given = [links]
    else:
        body["node"] = {"k": len(children), "up": links}
        given = [[[head.id, slot]] for slot in range(len(children))]
    for i, child_links in zip(children, given, strict=True):
        child = made[i]
        if child.kind == "issue":
            command = {**child.body["command"], "links": child_links}
            made[i] = child.evolve(body={**child.body, "command": command})
        else:
            made[i] = child.evolve(body={**child.body, "links": child_links})
    return made


def _local(step: str, outcome: Outcome, loop: bool = False) -> dict[str, Any]:
    name = (LOOP_DONE if loop else DONE) if outcome.ok else FAILED
    event = {"name": name, "step": step}
    return {step: outcome.view, "output": outcome.output(), "error": outcome.error, "event": event}


def _step_patches(step: Step, outcome: Outcome, scope: Mapping[str, Any]) -> Patches:
    patches = render_set(step.set, scope, f"step {step.step}: set")
    if outcome.patches is not None:
        patches.ctx = merge(patches.ctx, outcome.patches.ctx)
        patches.iter = merge(patches.iter, outcome.patches.iter)
        patches.step = merge(patches.step, outcome.patches.step)
    return patches


def _done_body(
    outcome: Outcome, patches: Patches, chosen: Sequence[int], recovered: bool
) -> dict[str, Any]:
    policy_set = outcome.patches
    body: dict[str, Any] = {
        "status": outcome.status,
        "result": outcome.result,
        "arcs": list(chosen),
    }
    if outcome.error is not None:
        body["error"] = outcome.error
    if patches.ctx or patches.iter or patches.step:
        body["set"] = {"ctx": patches.ctx, "iter": patches.iter, "step": patches.step}
    if recovered:
        body["recovered"] = True
    if policy_set is not None and (policy_set.ctx or policy_set.iter or policy_set.step):
        body["policy_set"] = {
            "ctx": policy_set.ctx,
            "iter": policy_set.iter,
            "step": policy_set.step,
        }
    if outcome.meta:
        body["meta"] = outcome.meta
    return body


def choose_arcs(step: Step, ok: bool, scope: Mapping[str, Any]) -> list[int]:
    """Indices of the arcs that fire (exclusive: the first match; inclusive: all)."""
    chosen = []
    for i, arc in enumerate(step.arcs):
        if not ok and arc.when is None:
            continue
        if templating.condition(arc.when, scope, f"step {step.step}: next.arcs[{i}].when"):
            chosen.append(i)
            if step.next is not None and step.next.spec.mode == "exclusive":
                break
    fails = step.next is not None and step.next.spec.on_no_match in NO_MATCH_FAILS
    if ok and step.arcs and not chosen and fails:
        raise NoArcMatched(f"step {step.step}: no arc matched (next.spec.on_no_match: fail)")
    return chosen


def has_recovery(step: Step) -> bool:
    return any(arc.when is not None for arc in step.arcs)


def successors(
    scene: Scene,
    step: Step,
    source_id: str,
    chosen: Sequence[int],
    frame: dict[str, Any],
    scope: Mapping[str, Any],
    tries: Tries,
    arc_sets: dict[str, Any] | None = None,
) -> list[Entry]:
    out = []
    for i in chosen:
        arc = step.arcs[i]
        arc_patch = render_set(arc.set, scope, f"step {step.step}: next.arcs[{i}].set")
        if arc_patch.ctx and arc_sets is not None:
            arc_sets[str(i)] = templating.plain(arc_patch.ctx)
        target_frame = {**frame, "ctx": add_ctx(tries, frame["ctx"], arc_patch.ctx)}
        target_frame.pop("args", None)
        if arc.args:
            where = f"step {step.step}: next.arcs[{i}].args"
            target_frame["args"] = templating.render(arc.args, scope, where)
        made = successor(scene, step.step, source_id, i, arc.step, target_frame)
        if made is not None:
            out.append(made)
    return out


def successor(
    scene: Scene, source_step: str, source_id: str, arc: int, target: str, frame: dict[str, Any]
) -> Entry | None:
    """An arrival at a join, or a new command; None for an arc to an absent `end`."""
    if target not in scene.graph.arcs:
        return None
    execution_id = scene.execution_id
    if scene.graph.is_join_arc(source_step, target):
        return Entry(
            id=E.arrive_id(execution_id, target, source_id, arc),
            execution_id=execution_id,
            kind="arrive",
            events=(),
            ts=scene.ts,
            step=target,
            command_id=source_id,
            dj=1,
            body={"frame": frame, "from": source_step},
        )
    command = _command(
        execution_id,
        scene.playbook,
        target,
        ids.command(execution_id, target, source_id, arc),
        frame,
        source_id,
    )
    return E.issue_entry(command, scene.ts)


def join(scene: Scene, target: str, arrivals: Sequence[Entry]) -> Entry:
    """The join's command: arrivals' versions merged in commit order, consumed at once
    (later arrivals win a name both carry; ctx values merge deeply)."""
    key = ids.digest(*sorted(a.id for a in arrivals))
    command_id = ids.command(scene.execution_id, target, "join", key)
    tries = scene.tries(E.issue_id(scene.execution_id, command_id))
    ctx: Ref = None
    results: Ref = None
    args: dict[str, Any] = {}
    deepest = max(depth(arrival.body["frame"]) for arrival in arrivals)
    for arrival in arrivals:
        frame = arrival.body["frame"]
        ctx = merge_ctx(tries, ctx, frame.get("ctx"))
        results = tries.merge(results, frame.get("results"))
        args.update(frame.get("args", {}))
    # by arrival id, like the join's id: the same arrivals in any order, the same links
    links = [link for a in sorted(arrivals, key=lambda a: a.id) for link in a.body.get("links", ())]
    command = _command(
        scene.execution_id,
        scene.playbook,
        target,
        command_id,
        {"ctx": ctx, "results": results, "depth": deepest, **({"args": args} if args else {})},
        None,
        links=links,
    )
    issued = E.issue_entry(command, scene.ts)
    body = {**issued.body, "arrivals": [a.id for a in arrivals]}
    if tries.nodes:
        body["nodes"] = tries.nodes
    return issued.evolve(dj=-len(arrivals), body=body)


def terminal(
    execution_id: str,
    status: str,
    result: dict[str, Any] | None,
    error: dict[str, Any] | None,
    ts: float,
) -> Entry:
    events = {
        "completed": ("workflow.completed", "playbook.completed"),
        "failed": ("workflow.failed", "playbook.failed"),
        "cancelled": ("playbook.cancelled",),
    }[status]
    body: dict[str, Any] = {"status": status, "result": result}
    if error is not None:
        body["error"] = error
    return Entry(
        id=E.terminal_id(execution_id),
        execution_id=execution_id,
        kind="terminal",
        events=events,
        ts=ts,
        body=body,
    )


def close(command: Command, attempt: int, status: str, error: dict[str, Any], ts: float) -> Entry:
    """Close a command without running it (halted execution) or after an internal failure.

    `status` is `skipped` (not run: the execution halted) or `error` (the block itself
    failed outside the tool); an error halts the execution.
    """
    is_loop = command.kind == "loop"
    return Entry(
        id=E.done_id(command.execution_id, command.id),
        execution_id=command.execution_id,
        kind="done",
        events=("command.failed",) if status == "skipped" else DONE_ERROR,
        ts=ts,
        step=command.step,
        command_id=command.id,
        attempt=attempt,
        dc=0 if is_loop else -1,
        da=-1 if is_loop else 0,
        group=command.activation,
        halt=status == "error",
        body={
            "status": status,
            "result": None,
            "arcs": [],
            "error": error,
            "issued": [],
            "arrived": [],
        },
    )
