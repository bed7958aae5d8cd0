"""Loop decisions (pure): activation, one iteration's record, `loop.done`.

With `max_in_flight` M the activation issues iterations 0..M-1 and the record of
iteration i issues iteration i+M, so no counter is shared; `loop.done` is one
deterministic id, settled when every iteration has a done entry (sequential is M = 1).
A failed iteration halts the execution unless the loop step has recovery arcs; then
the loop runs to the end and `loop.done` reports `call.error` to those arcs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .. import ids
from . import entries as E
from .decide import (
    DONE_ERROR,
    DONE_OK,
    Outcome,
    Scene,
    _done_body,
    _local,
    _step_patches,
    add_ctx,
    choose_arcs,
    depth,
    has_recovery,
    successors,
    with_issued,
)
from .entries import Command, Entry
from .scope import Patches, merge, with_ctx


def iteration_command(
    scene: Scene, activation: Command, index: int, item: Any, length: int, width: int
) -> Command:
    frame = {**activation.frame, "iter": {"item": item, "index": index}}
    return Command(
        id=ids.command(scene.execution_id, activation.step, activation.id, index),
        execution_id=scene.execution_id,
        step=activation.step,
        kind="iteration",
        frame=frame,
        parent=activation.id,
        activation=activation.id,
        index=index,
        length=length,
        width=width,
    )


def iteration_done_ids(execution_id: str, step: str, activation_id: str, length: int) -> list[str]:
    """The ids of a loop's iteration records, in index order (ids are deterministic)."""
    return [
        E.done_id(execution_id, ids.command(execution_id, step, activation_id, index))
        for index in range(length)
    ]


def activate(
    scene: Scene,
    command: Command,
    attempt: int,
    items: Sequence[Any],
    items_ref: dict[str, Any],
    names: Mapping[str, Any],
    empty_view: Any = None,
) -> list[Entry]:
    """Record a loop's activation: iterations 0..M-1, or `loop.done` at once if empty."""
    step = scene.step(command.step)
    assert step.loop is not None
    length, width = len(items), step.loop.width
    done = Entry(
        id=E.done_id(scene.execution_id, command.id),
        execution_id=scene.execution_id,
        kind="done",
        events=("command.completed",),
        ts=scene.ts,
        step=step.step,
        command_id=command.id,
        attempt=attempt,
        body={
            "status": "ok",
            "loop": {"length": length, "width": width},
            "items": items_ref,
            "result": None,
            "arcs": [],
        },
    )
    made = [
        E.issue_entry(iteration_command(scene, command, i, items[i], length, width), scene.ts)
        for i in range(min(width, length))
    ]
    if length == 0:
        outcome = Outcome("ok", result={"inline": []}, view=empty_view)
        made.extend(loop_done(scene, command, [], outcome, names))
    return with_issued(done, made)


def record_iteration(
    scene: Scene,
    step: Any,
    command: Command,
    attempt: int,
    outcome: Outcome,
    names: Mapping[str, Any],
    next_item: Callable[[int], Any] | None,
) -> list[Entry]:
    assert command.index is not None and command.length is not None and command.width is not None
    scope = {**names, **_local(step.step, outcome)}
    patches = _step_patches(step, outcome, scope) if outcome.ok else Patches()
    halt = not outcome.ok and not has_recovery(step)
    body = _done_body(outcome, patches, [], recovered=False)
    body["index"] = command.index
    body["wave"] = [command.length, command.width]  # settle reads the last wave only
    done = Entry(
        id=E.done_id(scene.execution_id, command.id),
        execution_id=scene.execution_id,
        kind="done",
        events=DONE_OK if outcome.ok else DONE_ERROR,
        ts=scene.ts,
        step=step.step,
        command_id=command.id,
        attempt=attempt,
        dc=-1,
        group=command.activation,
        halt=halt,
        body=body,
    )
    made = []
    following = command.index + command.width
    if not halt and following < command.length and next_item is not None:
        activation = Command(
            command.activation or "",
            scene.execution_id,
            step.step,
            "loop",
            {k: v for k, v in command.frame.items() if k != "iter"},
        )
        made.append(
            E.issue_entry(
                iteration_command(
                    scene,
                    activation,
                    following,
                    next_item(following),
                    command.length,
                    command.width,
                ),
                scene.ts,
            )
        )
    return with_issued(done, made)


def loop_done(
    scene: Scene,
    activation: Command,
    iterations: Sequence[Entry],
    outcome: Outcome,
    names: Mapping[str, Any],
) -> list[Entry]:
    """`loop.done` with the results in index order, then the loop step's arcs, once."""
    step = scene.step(activation.step)
    entry_id = E.loopdone_id(scene.execution_id, activation.id)
    tries = scene.tries(entry_id)
    patch: dict[str, Any] = {}
    for done in sorted(iterations, key=lambda d: d.body["index"]):
        patch = merge(patch, done.body.get("set", {}).get("ctx", {}))
    ctx = add_ctx(tries, activation.frame.get("ctx"), patch)
    scope = with_ctx({**names, **_local(step.step, outcome, loop=True)}, patch)
    chosen = choose_arcs(step, outcome.ok, scope)
    entry = Entry(
        id=entry_id,
        execution_id=scene.execution_id,
        kind="loopdone",
        events=(
            "loop.done",
            *(DONE_OK if outcome.ok else DONE_ERROR)[:2],
        ),  # its command completed at activation
        ts=scene.ts,
        step=step.step,
        command_id=activation.id,
        da=-1,
        group=activation.id,
        halt=not outcome.ok and not chosen,
        body=_done_body(
            outcome, Patches(ctx=patch), chosen, recovered=not outcome.ok and bool(chosen)
        ),
    )
    results = tries.put(activation.frame.get("results"), step.step, entry_id)
    frame = {"ctx": ctx, "results": results, "depth": depth(activation.frame) + 1}
    arc_sets: dict[str, Any] = {}
    made = successors(scene, step, activation.id, chosen, frame, scope, tries, arc_sets)
    return with_issued(entry, made, tries, arc_sets, activation.links)
