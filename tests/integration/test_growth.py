"""Flat cost as executions grow: stored bytes per block must not grow with length.

Ratios of bytes, never times. A frame that carried the map of every earlier result
made a 500-step chain store ~6x the bytes per block of a 50-step one; scope versions
keep it to the trie's depth.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from bench.growth import chain, ctx_carry, loop
from noetl_core import embedded, settings
from noetl_core.engine.loops import TALLY_WIDTH
from noetl_core.playbook import load_text

pytestmark = pytest.mark.integration


def stored_per_block(home: Path, text: str) -> tuple[float, float]:
    """(bytes of log rows and payload files per block, total bytes) of one execution."""
    conf = settings.load({"NOETL_HOME": str(home)})
    with embedded.runtime(conf) as rt:
        execution_id = rt.start(load_text(text), {})
        terminal = rt.wait(execution_id, 300)
        assert terminal is not None and terminal.body["status"] == "completed"
        blocks = sum(1 for e in rt.log.entries(execution_id) if e.kind == "done")
    with sqlite3.connect(conf.log_path) as db:
        logged = db.execute(
            "SELECT sum(length(data)) FROM entries WHERE execution_id = ?", (execution_id,)
        ).fetchone()[0]
    payloads = sum(p.stat().st_size for p in (home / "payloads").rglob("*") if p.is_file())
    total = logged + payloads
    return total / blocks, total


def test_bytes_per_block_of_a_chain_stay_flat(tmp_path: Path) -> None:
    short, _ = stored_per_block(tmp_path / "short", chain(50))
    long, _ = stored_per_block(tmp_path / "long", chain(800))
    assert long / short < 1.5, (short, long)


def test_bytes_per_item_of_a_loop_stay_flat(tmp_path: Path) -> None:
    small, _ = stored_per_block(tmp_path / "small", loop(50, width=10))
    big, _ = stored_per_block(tmp_path / "big", loop(2000, width=10))
    assert big / small < 1.2, (small, big)


def test_a_big_ctx_value_is_stored_once_not_once_per_step(tmp_path: Path) -> None:
    size = 300_000
    _, plain = stored_per_block(tmp_path / "plain", ctx_carry(40, 1))
    _, carried = stored_per_block(tmp_path / "carried", ctx_carry(40, size))
    # the step's own result (a payload) and the ctx value: twice the size, not 40 times
    assert carried - plain < 3 * size, (plain, carried)


@pytest.mark.parametrize(("items", "width"), [(300, 10), (2500, None), (1500, 1500)])
def test_settling_a_loop_reads_a_bounded_set(tmp_path: Path, items: int, width: int | None) -> None:
    """Settling a loop reads a bounded set whatever its width: an iteration that issued
    the next one reads nothing; one of the last wave reads the other members of its
    bucket of the wave's tally tree and its tally, at most TALLY_WIDTH ids, and never
    counts."""
    conf = settings.load({"NOETL_HOME": str(tmp_path)})
    with embedded.runtime(conf) as rt:
        reads: list[int] = []
        snapshot = rt.log.snapshot

        def reading(execution_id, entry_ids=()):  # type: ignore[no-untyped-def]
            reads.append(len(entry_ids))
            return snapshot(execution_id, entry_ids)

        rt.log.snapshot = reading  # type: ignore[method-assign]
        count = rt.log.count

        def no_iteration_count(execution_id, kind, *, group=None):  # type: ignore[no-untyped-def]
            assert kind == "signal", "a loop's iterations are never counted"
            return count(execution_id, kind, group=group)

        rt.log.count = no_iteration_count  # type: ignore[method-assign]
        text = loop(items) if width is None else loop(items, width=width)
        if width is None:
            text = text.replace(", max_in_flight: 100", "")
        terminal = rt.wait(rt.start(load_text(text), {}), 120)
        assert terminal is not None and terminal.body["status"] == "completed"
        assert terminal.body["result"] == {"inline": items}
        tallies = rt.log.find(terminal.execution_id, "tally")
    assert max(reads) <= TALLY_WIDTH
    wave = min(items, width or items)
    assert len([r for r in reads if r]) >= wave  # each of the last wave checks its bucket
    expected, members = 0, wave
    while members > TALLY_WIDTH:  # one tally per bucket, level by level up to the root
        members = -(-members // TALLY_WIDTH)
        expected += members
    assert len(tallies) == expected


def test_loop_done_reads_its_iterations_by_id_not_by_a_query(tmp_path: Path) -> None:
    """`loop.done` gathers its iteration records by their deterministic ids (from the
    entry cache of the process that wrote them), not with a query that decodes them all
    again; the loop's result keeps index order."""
    conf = settings.load({"NOETL_HOME": str(tmp_path)})
    with embedded.runtime(conf) as rt:
        find = rt.log.find

        def no_iteration_query(execution_id, kind, *, step=None, group=None):  # type: ignore[no-untyped-def]
            assert not (kind == "done" and group is not None), "iterations read by a query"
            return find(execution_id, kind, step=step, group=group)

        rt.log.find = no_iteration_query  # type: ignore[method-assign]
        text = """apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: ordered}
workflow:
  - step: start
    loop: {in: "{{ range(40) | list }}", iterator: x, spec: {mode: parallel, max_in_flight: 7}}
    tool: {kind: python, input: {x: "{{ x }}"}, code: "result = x * 2"}
    next: after
  - step: after
    tool: {kind: python, input: {xs: "{{ start }}"}, code: "result = xs"}
"""
        terminal = rt.wait(rt.start(load_text(text), {}), 30)
        assert terminal is not None and terminal.body["status"] == "completed"
        assert terminal.body["result"]["inline"] == [x * 2 for x in range(40)]


def test_a_started_playbook_is_not_parsed_again_by_its_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from noetl_core.runtime import executions

    loaded = load_text(chain(20))

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the stored playbook was parsed again")

    monkeypatch.setattr(executions, "load_text", refuse)
    with embedded.runtime(settings.load({"NOETL_HOME": str(tmp_path)})) as rt:
        terminal = rt.wait(rt.start(loaded, {}), 60)
    assert terminal is not None and terminal.body["status"] == "completed"


def forked(chain_length: int) -> str:
    """`start` forks into two branches of `chain_length` steps that join, then a loop."""
    steps = [
        "  - step: start\n    tool: {kind: noop}\n"
        "    next:\n      spec: {mode: inclusive}\n      arcs: [{step: a0}, {step: b0}]"
    ]
    for side in "ab":
        for i in range(chain_length):
            nxt = f"{side}{i + 1}" if i + 1 < chain_length else "join"
            steps.append(
                f"  - step: {side}{i}\n    tool: {{kind: python, code: 'result = {i}'}}\n"
                f"    next: {nxt}"
            )
    steps.append("  - step: join\n    tool: {kind: noop}\n    next: each")
    steps.append(
        "  - step: each\n"
        "    loop: {in: '{{ range(20) | list }}', iterator: x, spec: {mode: parallel, max_in_flight: 4}}\n"
        "    tool: {kind: python, input: {x: '{{ x }}'}, code: 'result = x'}"
    )
    return (
        "apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {name: forked}\nworkflow:\n"
        + "\n".join(steps)
        + "\n"
    )


def test_termination_reads_no_sum_over_the_execution(tmp_path: Path) -> None:
    """An execution that does not fail ends when its root's threads of work have all
    signalled: each check counts the signals of one fork (at most its width), never a
    sum over the execution, and a branch's chain adds no signal whatever its length."""
    conf = settings.load({"NOETL_HOME": str(tmp_path)})
    signals = {}
    with embedded.runtime(conf) as rt:
        sums: list[object] = []
        open_work = rt.log.open_work

        def watched(execution_id, steps=None, *, join=None):  # type: ignore[no-untyped-def]
            if steps is None:
                sums.append(execution_id)
            return open_work(execution_id, steps, join=join)

        rt.log.open_work = watched  # type: ignore[method-assign]
        for length in (2, 25):
            execution_id = rt.start(load_text(forked(length)), {})
            terminal = rt.wait(execution_id, 120)
            assert terminal is not None and terminal.body["status"] == "completed"
            entries = rt.log.entries(execution_id)
            signals[length] = sorted(
                (e.group, e.body["slot"]) for e in entries if e.kind == "signal"
            )
            assert terminal.seq is not None
            assert max(e.seq or 0 for e in entries if e.kind == "signal") < terminal.seq
    assert sums == []
    # the join's command ends the fork's two threads, then the root's one: 3 signals
    assert len(signals[2]) == len(signals[25]) == 3
