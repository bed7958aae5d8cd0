"""Loop decisions (pure): activation, one iteration's record, `loop.done`.

With `max_in_flight` M the activation issues iterations 0..M-1 and the record of
iteration i issues iteration i+M, so no counter is shared; `loop.done` is one
deterministic id, settled when every iteration has a done entry (sequential is M = 1).
Iterations are issued by range (`body.iterations`, see `entries`): their commands are
never stored, so an activation is one entry whatever M, and an iteration's record
writes nothing for the next one but its index. A failed iteration halts the execution
unless the loop step has recovery arcs; then the loop runs to the end and `loop.done`
reports `call.error` to those arcs.

Once the last wave (iterations L-M..L-1) is done, every iteration is. The last wave is
checked in buckets of `TALLY_WIDTH` (see `Tally`), so no check reads more than that
many entries, however wide the wave.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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
    execution_id: str, loop: Command, index: int, item: Any, length: int, width: int
) -> Command:
    """Iteration `index` of `loop` (the loop step's command): never stored, derived
    wherever it is needed from the loop's command and items."""
    frame = {**loop.frame, "iter": {"item": item, "index": index}}
    return Command(
        id=E.iteration_id(loop.id, index),
        execution_id=execution_id,
        step=loop.step,
        kind="iteration",
        frame=frame,
        parent=loop.id,
        activation=loop.id,
        index=index,
        length=length,
        width=width,
    )


def iteration_done_ids(execution_id: str, activation_id: str, length: int) -> list[str]:
    """The ids of a loop's iteration records, in index order (ids are deterministic)."""
    return [E.done_id(execution_id, E.iteration_id(activation_id, i)) for i in range(length)]


def activate(
    scene: Scene,
    command: Command,
    attempt: int,
    length: int,
    items_ref: dict[str, Any],
    names: Mapping[str, Any],
    empty_view: Any = None,
    width: int | None = None,
) -> list[Entry]:
    """Record a loop's activation: iterations 0..M-1 as one range (one entry, whatever
    M), or `loop.done` at once if there are no items. `width` is M when the block
    rendered a templated `max_in_flight`."""
    step = scene.step(command.step)
    assert step.loop is not None
    width = width or step.loop.width
    first_wave = min(width, length)
    body: dict[str, Any] = {
        "status": "ok",
        "loop": {"length": length, "width": width},
        "items": items_ref,
        "result": None,
        "arcs": [],
    }
    if first_wave:
        body["iterations"] = [0, first_wave]
    done = Entry(
        id=E.done_id(scene.execution_id, command.id),
        execution_id=scene.execution_id,
        kind="done",
        events=("command.completed",),
        ts=scene.ts,
        step=step.step,
        command_id=command.id,
        attempt=attempt,
        dc=first_wave,
        body=body,
    )
    made: list[Entry] = []
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
) -> list[Entry]:
    """An iteration's record; unless it halts, it issues iteration index + M (its
    `dc` then nets zero: one command closed, one opened)."""
    assert command.index is not None and command.length is not None and command.width is not None
    scope = {**names, **_local(step.step, outcome)}
    patches = _step_patches(step, outcome, scope) if outcome.ok else Patches()
    halt = not outcome.ok and not has_recovery(step)
    body = _done_body(outcome, patches, [], recovered=False)
    body["index"] = command.index
    body["wave"] = [command.length, command.width]  # settle reads the last wave only
    following = command.index + command.width
    issues_next = not halt and following < command.length
    if issues_next:
        body["iterations"] = [following, 1]
    done = Entry(
        id=E.done_id(scene.execution_id, command.id),
        execution_id=scene.execution_id,
        kind="done",
        events=DONE_OK if outcome.ok else DONE_ERROR,
        ts=scene.ts,
        step=step.step,
        command_id=command.id,
        attempt=attempt,
        dc=0 if issues_next else -1,
        group=command.activation,
        halt=halt,
        body=body,
    )
    return with_issued(done, [])


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


TALLY_WIDTH = 16


@dataclass(frozen=True)
class Tally:
    """A member of a loop's last-wave tally tree, just recorded: an iteration of the
    last wave (level 0) or a `tally` entry (level >= 1), which says that a whole bucket
    of the level below is done. Members of a level are grouped in buckets of
    `TALLY_WIDTH`; after its record commits, a member reads its bucket's other members by
    their deterministic ids. The one that finds them all (the bucket's last to commit
    sees the others) writes its bucket's tally one level up, created once (read in the
    same round trip: members committed together all find the bucket complete), or, at
    the level with one bucket, settles `loop.done`. So each check reads at most
    `TALLY_WIDTH` entries, and a wave of W iterations adds about W / 15 tallies."""

    activation: str
    step: str
    length: int
    width: int
    level: int
    member: int

    @property
    def first(self) -> int:
        """The last wave's first iteration index."""
        return max(0, self.length - self.width)

    def members(self, level: int) -> int:
        count = self.length - self.first
        for _ in range(level):
            count = -(-count // TALLY_WIDTH)
        return count

    def member_id(self, execution_id: str, member: int) -> str:
        if self.level == 0:
            return E.done_id(execution_id, E.iteration_id(self.activation, self.first + member))
        return tally_id(execution_id, self.activation, self.level, member)

    def siblings(self, execution_id: str) -> list[str]:
        """The ids of the other members of this member's bucket."""
        start = self.member - self.member % TALLY_WIDTH
        stop = min(start + TALLY_WIDTH, self.members(self.level))
        return [self.member_id(execution_id, m) for m in range(start, stop) if m != self.member]

    @property
    def is_root(self) -> bool:
        """Whether this member's bucket is the level's only one: the whole wave."""
        return self.members(self.level) <= TALLY_WIDTH

    def reads(self, execution_id: str) -> list[str]:
        """What a check reads: the bucket's other members and, below the root, the
        bucket's tally (a member that finds it written goes on without writing it)."""
        above = [] if self.is_root else [self.up_id(execution_id)]
        return [*self.siblings(execution_id), *above]

    def up_id(self, execution_id: str) -> str:
        return tally_id(execution_id, self.activation, self.level + 1, self.member // TALLY_WIDTH)

    def up(self, execution_id: str, ts: float) -> Entry:
        """The tally entry of this member's bucket, one level up."""
        level, bucket = self.level + 1, self.member // TALLY_WIDTH
        return Entry(
            id=self.up_id(execution_id),
            execution_id=execution_id,
            kind="tally",
            events=(),
            ts=ts,
            step=self.step,
            group=self.activation,
            body={"level": level, "bucket": bucket, "wave": [self.length, self.width]},
        )


def tally_id(execution_id: str, activation_id: str, level: int, bucket: int) -> str:
    return ids.entry(execution_id, "tally", activation_id, level, bucket)


def tally_of(entry: Entry) -> Tally | None:
    """The tally member an entry is: an iteration record of its loop's last wave (or a
    cursor loop's slot end, `engine.cursor`), or a tally entry; None for anything else."""
    wave = entry.body.get("wave")
    if entry.group is None or wave is None or entry.step is None:
        return None
    length, width = wave
    if entry.kind == "tally":
        level, member = entry.body["level"], entry.body["bucket"]
        return Tally(entry.group, entry.step, length, width, level, member)
    if entry.kind not in ("done", "slotend") or entry.body["index"] + width < length:
        return None  # an earlier wave's iteration: it issued the next one
    member = entry.body["index"] - max(0, length - width)
    return Tally(entry.group, entry.step, length, width, 0, member)
