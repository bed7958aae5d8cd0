"""Cursor loops (pure decisions): `loop.cursor` with `spec.mode: cursor`.

Upstream NoETL runs a cursor loop as `max_in_flight` worker slots, each claiming rows
with the playbook's claim statement and running the step's body per row until a claim
returns none; `loop.done` comes when every slot has ended. Here a slot is a chain of
**frames**, each frame one block (upstream's `loop.spec.frame`: a bounded batch claimed
and processed before progress is committed):

- the activation records the loop and issues frame 0 of slots 0..M-1 (one issue entry
  each, deterministic ids `frame_command_id(loop, slot, frame)`);
- a frame's block claims up to `frame.max_rows` rows, runs the body for each, and
  records one `done` entry holding the rows' results as a list; unless the slot ends
  there, the same batch issues the slot's next frame;
- the slot ends when a claim returned no row (drained), a row's body broke, a row
  failed without recovery arcs (the execution halts), or the slot reached
  `cursor.options.max_iterations` rows; the ending frame's batch writes the slot's end
  (`slotend`) under the id an iteration record of slot s would have
  (`done_id(iteration_id(loop, s))`), so the loop's last-wave tally (`loops.Tally`,
  one wave of M members) settles `loop.done` once, exactly as for a collection loop of
  M iterations.

Frames carry no termination links: like iterations, their loop's `loop.done` hands the
loop command's links on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import ids
from . import entries as E
from .decide import DONE_ERROR, DONE_OK, Outcome, Scene, _done_body, has_recovery, with_issued
from .entries import Command, Entry
from .scope import Patches

SLOT_END = "slotend"
DEFAULT_MAX_ITERATIONS = 100_000  # rows per slot, upstream's safety cap


def frame_command_id(execution_id: str, activation_id: str, slot: int, frame: int) -> str:
    return ids.command(execution_id, "cursor", activation_id, slot, frame)


def slot_end_id(execution_id: str, activation_id: str, slot: int) -> str:
    """Where slot `slot` records its end: the id an iteration's record would have, so
    the loop's tally reads slot ends as it reads iteration records."""
    return E.done_id(execution_id, E.iteration_id(activation_id, slot))


def worker_slot_id(activation_id: str, slot: int) -> str:
    return f"{activation_id}:slot-{slot}"


def frame_command(
    execution_id: str, loop: Command, slot: int, frame: int, rows: int, slots: int
) -> Command:
    """Frame `frame` of slot `slot`; `rows`: the rows the slot ran before it."""
    state = {"slot": slot, "frame": frame, "rows": rows}
    return Command(
        id=frame_command_id(execution_id, loop.id, slot, frame),
        execution_id=execution_id,
        step=loop.step,
        kind="frame",
        frame={**loop.frame, "cursor": state},
        parent=loop.id,
        activation=loop.id,
        index=slot,
        length=slots,
        width=slots,
    )


def activate(scene: Scene, command: Command, attempt: int) -> list[Entry]:
    """The cursor loop's activation: frame 0 of every slot, one issue entry each."""
    step = scene.step(command.step)
    assert step.loop is not None and step.loop.cursor is not None
    slots = step.loop.width
    body: dict[str, Any] = {
        "status": "ok",
        "loop": {"length": slots, "width": slots, "cursor": True},
        "result": None,
        "arcs": [],
    }
    done = Entry(
        id=E.done_id(scene.execution_id, command.id),
        execution_id=scene.execution_id,
        kind="done",
        events=("command.completed",),
        ts=scene.ts,
        step=step.step,
        command_id=command.id,
        attempt=attempt,
        body=body,
    )
    issued = [
        E.issue_entry(frame_command(scene.execution_id, command, s, 0, 0, slots), scene.ts)
        for s in range(slots)
    ]
    return with_issued(done, issued)


def record_frame(
    scene: Scene,
    command: Command,
    attempt: int,
    outcome: Outcome,
    progress: Mapping[str, Any],
    ctx_patch: Mapping[str, Any] | None = None,
) -> list[Entry]:
    """A frame's record. `progress`: `rows` claimed and run, `failed` (their positions in
    the frame), `drained` (a claim returned no row), `broke` (a row's body broke). The
    slot ends on any of those, on a failure that halts, or at `max_iterations` rows;
    else the batch issues the slot's next frame. `ctx_patch`: the rows' `set` on ctx, in
    row order (`loop.done` merges the frames' patches slot by slot, frame by frame)."""
    step = scene.step(command.step)
    assert step.loop is not None and step.loop.cursor is not None
    state = command.frame["cursor"]
    slot, frame, before = int(state["slot"]), int(state["frame"]), int(state["rows"])
    rows = int(progress["rows"])
    total = before + rows
    halt = not outcome.ok and not has_recovery(step)
    cap = int((step.loop.cursor.options or {}).get("max_iterations") or DEFAULT_MAX_ITERATIONS)
    ends = bool(progress["drained"] or progress["broke"]) or halt or total >= cap
    body = _done_body(outcome, Patches(ctx=dict(ctx_patch or {})), [], recovered=False)
    body["index"] = slot
    body["cursor"] = {
        "slot": slot,
        "frame": frame,
        "rows": rows,
        "failed": list(progress["failed"]),
        "drained": bool(progress["drained"]),
        "broke": bool(progress["broke"]),
    }
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
    assert command.activation is not None and command.length is not None
    made: list[Entry] = []
    if not ends:
        loop = Command(
            id=command.activation,
            execution_id=scene.execution_id,
            step=command.step,
            kind="loop",
            frame={k: v for k, v in command.frame.items() if k != "cursor"},
        )
        following = frame_command(scene.execution_id, loop, slot, frame + 1, total, command.length)
        made.append(E.issue_entry(following, scene.ts))
    elif not halt:
        body["cursor"]["end"] = slot_end_id(scene.execution_id, command.activation, slot)
        made.append(
            Entry(
                id=slot_end_id(scene.execution_id, command.activation, slot),
                execution_id=scene.execution_id,
                kind=SLOT_END,
                events=(),
                ts=scene.ts,
                step=step.step,
                command_id=command.id,
                group=command.activation,
                body={
                    "index": slot,
                    "wave": [command.length, command.length],
                    "frames": frame + 1,
                    "rows": total,
                },
            )
        )
    return with_issued(done, made)
