"""The event log contract, run against every EventLog adapter: SQLite, and Firestore on
the official emulator. The assertions are the same for both."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from noetl_core import settings
from noetl_core.adapters.sqlite_log import SqliteEventLog
from noetl_core.engine.entries import MAX_BATCH_WRITES, MAX_ENTRY_BYTES, Entry
from noetl_core.errors import LimitError
from noetl_core.runtime.ports import EventLog

if TYPE_CHECKING:
    from noetl_core.adapters.gcp.firestore_log import FirestoreEventLog

pytestmark = pytest.mark.contract

Factory = Callable[[Path], EventLog]


def sqlite(path: Path) -> EventLog:
    return SqliteEventLog(path / "events.sqlite", sync="NORMAL")


def firestore(env: dict[str, str]) -> FirestoreEventLog:
    """A Firestore log under a prefix of its own; its queries' shapes go to the session's
    index check like the runtime's."""
    from noetl_core.adapters.gcp.firestore_log import FirestoreEventLog

    conf = settings.load(env)
    prefix = f"t{uuid.uuid4().hex[:8]}"
    return FirestoreEventLog(conf.project, prefix, shape_file=conf.query_shape_file)


@pytest.fixture(params=["sqlite", "firestore"])
def log(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventLog]:
    if request.param == "firestore":
        made: EventLog = firestore(request.getfixturevalue("gcp_env"))
    else:
        made = sqlite(tmp_path)
    yield made
    close = getattr(made, "close", None)
    if close is not None:
        close()


def entry(id: str, **kw: object) -> Entry:
    fields: dict[str, object] = {
        "execution_id": "E1",
        "kind": "done",
        "events": ("call.done",),
        "ts": 1.0,
    }
    fields.update(kw)
    return Entry(id=id, **fields)  # type: ignore[arg-type]


def test_append_then_get_returns_the_same_entry_with_a_commit_order(log: EventLog) -> None:
    assert log.append([entry("a", body={"result": {"inline": [1, 2]}, "status": "ok"})])
    got = log.get("a")
    assert got is not None
    assert got.body == {"result": {"inline": [1, 2]}, "status": "ok"}
    assert got.events == ("call.done",)
    assert got.seq is not None


def test_a_batch_with_a_taken_id_writes_nothing(log: EventLog) -> None:
    assert log.append([entry("a")])
    assert not log.append([entry("b"), entry("a"), entry("c")])
    assert log.get("b") is None and log.get("c") is None
    assert [e.id for e in log.entries("E1")] == ["a"]


def test_a_batch_over_the_logs_limits_is_refused_whole_naming_the_limit(log: EventLog) -> None:
    """Firestore's limits, held by every adapter: 500 writes per commit (a halt marker
    is one), 1 MiB per document. Nothing of a refused batch is written, and the error
    names the limit, not an emulator's message."""
    wide = [entry(f"w{i}") for i in range(MAX_BATCH_WRITES)]
    with pytest.raises(LimitError, match="limit of 500 writes per commit"):
        log.append([*wide, entry("halting", halt=True)])
    big = entry("big", step="s", body={"blob": "x" * MAX_ENTRY_BYTES})
    with pytest.raises(LimitError, match=r"done entry of step s is 1,000,\d{3} bytes.*1,000,000"):
        log.append([entry("small"), big])
    assert log.entries("E1") == [] and not log.halted("E1")
    assert log.append(wide)  # 500 writes: one commit


def test_entries_come_back_in_commit_order(log: EventLog) -> None:
    for name in ["z", "m", "a"]:
        log.append([entry(name)])
    assert [e.id for e in log.entries("E1")] == ["z", "m", "a"]


def test_open_work_sums_deltas_per_step(log: EventLog) -> None:
    log.append(
        [
            entry("i1", kind="issue", step="a", dc=1),
            entry("i2", kind="issue", step="b", dc=1),
            entry("l1", kind="issue", step="loop", da=1),
            entry("j1", kind="arrive", step="join", dj=1),
        ]
    )
    log.append([entry("d1", step="a", dc=-1)])
    everything = log.open_work("E1")
    assert (everything.commands, everything.loops, everything.arrivals) == (1, 1, 1)
    assert log.open_work("E1", ["a"]).total == 0
    assert log.open_work("E1", ["b", "loop"]).commands == 1
    assert log.open_work("E1", ["b", "loop"]).loops == 1
    assert log.open_work("E1", []).total == 0
    assert log.open_work("other").total == 0


def test_find_and_count_filter_by_kind_step_and_group(log: EventLog) -> None:
    log.append(
        [
            entry("d1", step="s", group="A"),
            entry("d2", step="s", group="A"),
            entry("d3", step="t", group="B"),
            entry("i1", kind="issue", step="s"),
        ]
    )
    assert [e.id for e in log.find("E1", "done", group="A")] == ["d1", "d2"]
    assert [e.id for e in log.find("E1", "done", step="t")] == ["d3"]
    assert log.count("E1", "done") == 3
    assert log.count("E1", "done", group="B") == 1


def test_halted_once_a_halting_entry_exists(log: EventLog) -> None:
    log.append([entry("d1")])
    assert not log.halted("E1")
    log.append([entry("d2", halt=True)])
    assert log.halted("E1")
    assert not log.halted("E2")


def test_last_result_skips_iterations_and_failures(log: EventLog) -> None:
    log.append([entry("d1", step="a", body={"status": "ok", "result": {"inline": 1}})])
    log.append([entry("d2", step="b", body={"status": "error", "result": None})])
    log.append([entry("d3", step="c", group="A", body={"status": "ok", "result": {"inline": 3}})])
    last = log.last_result("E1")
    assert last is not None and last.id == "d1"
    log.append(
        [entry("l1", kind="loopdone", step="c", body={"status": "ok", "result": {"inline": [3]}})]
    )
    last = log.last_result("E1")
    assert last is not None and last.id == "l1"


def test_get_many_returns_only_existing(log: EventLog) -> None:
    log.append([entry("a"), entry("b")])
    found = log.get_many(["a", "x", "b"])
    assert sorted(found) == ["a", "b"]


def test_executions_lists_start_entries_newest_first(log: EventLog) -> None:
    log.append([entry("s1", kind="start", execution_id="E1")])
    log.append([entry("s2", kind="start", execution_id="E2")])
    assert [e.execution_id for e in log.executions(10)] == ["E2", "E1"]


def test_concurrent_creates_of_one_id_succeed_exactly_once(log: EventLog) -> None:
    wins: list[bool] = []
    lock = threading.Lock()

    def create(n: int) -> None:
        ok = log.append([entry("terminal", body={"by": n}), entry(f"other-{n}")])
        with lock:
            wins.append(ok)

    threads = [threading.Thread(target=create, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wins.count(True) == 1
    assert len(log.entries("E1")) == 2


def test_concurrent_distinct_batches_all_land(log: EventLog) -> None:
    def create(n: int) -> None:
        assert log.append([entry(f"a{n}", dc=1, step="s"), entry(f"b{n}", dc=-1, step="s")])

    threads = [threading.Thread(target=create, args=(n,)) for n in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(log.entries("E1")) == 64
    assert log.open_work("E1").total == 0


def test_two_writers_on_one_sqlite_file_interleave_in_commit_order(tmp_path: Path) -> None:
    """Two processes (here: two log objects) may share NOETL_HOME, e.g. `noetl cancel`."""
    first = SqliteEventLog(tmp_path / "shared.sqlite", sync="NORMAL")
    second = SqliteEventLog(tmp_path / "shared.sqlite", sync="NORMAL")
    try:
        assert first.append([entry("a1"), entry("a2")])
        assert second.append([entry("b1")])
        assert first.append([entry("a3")])  # its cached next seq is taken: careful path
        assert not second.append([entry("a1")])
        assert second.append([entry("b2")])
        ordered = first.entries("E1")
        assert [e.id for e in ordered] == ["a1", "a2", "b1", "a3", "b2"]
        seqs = [e.seq or 0 for e in ordered]
        assert seqs == sorted(seqs) and len(set(seqs)) == 5
        got = first.get("a3")
        assert got is not None and got.seq == ordered[3].seq
    finally:
        first.close()
        second.close()


def test_sqlite_append_then_runs_its_continuation_once_the_batch_is_stored(
    tmp_path: Path,
) -> None:
    log = SqliteEventLog(tmp_path / "e.sqlite", sync="NORMAL")
    try:
        seen: list[tuple[bool, BaseException | None, Entry | None]] = []

        def then(ok: bool, error: BaseException | None) -> None:
            # the continuation runs after the commit: another connection sees the row
            other = SqliteEventLog(tmp_path / "e.sqlite", sync="NORMAL")
            seen.append((ok, error, other.get("a")))
            other.close()

        log.append_then([entry("a")], then)
        log.end_block()
        assert [(ok, err) for ok, err, _ in seen] == [(True, None)]
        assert seen[0][2] is not None and seen[0][2].id == "a"
        log.append_then([entry("a")], lambda ok, err: seen.append((ok, err, None)))
        assert seen[-1][:2] == (False, None)  # a taken id: refused, nothing written
        assert [e.id for e in log.entries("E1")] == ["a"]
    finally:
        log.close()


def test_sqlite_batches_queued_while_a_reader_holds_the_writer_are_committed(
    tmp_path: Path,
) -> None:
    """A thread that hands its batch on while another thread holds the write lock (here a
    read that no commit may interleave with) does not wait: the holder commits it when it
    releases the lock, so no batch is left in the queue."""
    log = SqliteEventLog(tmp_path / "e.sqlite", sync="NORMAL")
    try:
        done = threading.Event()
        with log._writer_held():
            worker = threading.Thread(
                target=lambda: log.append_then([entry("q")], lambda ok, err: done.set())
            )
            worker.start()
            worker.join()  # append_then returned without committing: the lock is taken
            assert not done.is_set()
        assert done.wait(5)
        assert log.get("q") is not None
    finally:
        log.close()


def test_sqlite_a_thread_reads_its_own_queued_batch_until_its_block_ends(
    tmp_path: Path,
) -> None:
    log = SqliteEventLog(tmp_path / "e.sqlite", sync="NORMAL")
    try:
        ran: list[bool] = []
        with log._writer_held():  # the batch cannot be committed by its own thread now
            holder_release = threading.Event()
            got: list[Entry | None] = []

            def block() -> None:
                log.append_then([entry("r")], lambda ok, err: ran.append(ok))
                holder_release.set()
                got.append(log.get("r"))  # waits for its own batch
                log.end_block()

            worker = threading.Thread(target=block)
            worker.start()
            assert holder_release.wait(5)
        worker.join(5)
        assert ran == [True]
        assert got and got[0] is not None and got[0].id == "r"
    finally:
        log.close()


def test_firestore_documents_carry_only_the_query_fields_that_say_something(
    gcp_env: dict[str, str],
) -> None:
    """Every field is indexed (and the emulator's commits slow down with each): a field
    is written only when it has a value a query asks for; counts and sums still come out
    right."""
    log = firestore(gcp_env)
    assert log.append(
        [
            entry("plain", kind="claim", step="s"),
            entry("it0", kind="done", step="s", group="g", body={"index": 0}, dc=-1),
            entry("it1", kind="done", step="s", group="g", body={"index": 1}, da=1),
        ]
    )
    stored = {d.id: d.to_dict() or {} for d in log._entries.stream()}
    plain = {"execution_id", "kind", "step", "committed", "bi", "data"}
    # the batch's net change of open work rides on its first entry
    assert set(stored["plain"]) == plain | {"net", "nc", "na", "nj"}
    assert (stored["plain"]["nc"], stored["plain"]["na"], stored["plain"]["nj"]) == (-1, 1, 0)
    assert "net" not in stored["it0"] and "net" not in stored["it1"]
    assert "ix" not in stored["it0"] and stored["it0"]["grp"] == "g"
    assert (stored["it0"]["dc"], stored["it0"]["da"], stored["it0"]["dj"]) == (-1, 0, 0)
    assert log.count("E1", "done", group="g") == 2
    work = log.open_work("E1")
    assert (work.commands, work.loops, work.arrivals) == (-1, 1, 0)


def test_firestore_whole_execution_open_work_reads_only_batches_that_changed_it(
    gcp_env: dict[str, str],
) -> None:
    """A chain step's record closes its command and issues the next one: net zero, so it
    carries no net fields, and the execution-wide sum (the termination check) matches
    only the start, the branch points and the ends, however long the chain ran. The sum
    equals the per-entry deltas' sum."""
    log = firestore(gcp_env)
    assert log.append([entry("start", kind="start"), entry("i0", kind="issue", step="s0", dc=1)])
    for n in range(1, 30):  # 29 chain steps: done (-1) with the next command (+1)
        assert log.append(
            [
                entry(f"d{n}", kind="done", step=f"s{n - 1}", dc=-1),
                entry(f"i{n}", kind="issue", step=f"s{n}", dc=1),
            ]
        )
    stored = {d.id: d.to_dict() or {} for d in log._entries.stream()}
    assert sorted(k for k, v in stored.items() if v.get("net")) == ["start"]
    work = log.open_work("E1")
    assert (work.commands, work.loops, work.arrivals) == (1, 0, 0)
    assert log.open_work("E1", ["s29"]).commands == 1  # per-step sums still per entry
    assert log.append([entry("d30", kind="done", step="s29", dc=-1)])  # the last step
    assert log.open_work("E1").total == 0
    stored = {d.id: d.to_dict() or {} for d in log._entries.stream()}
    assert sorted(k for k, v in stored.items() if v.get("net")) == ["d30", "start"]


def test_sqlite_a_commit_interrupted_mid_way_leaves_no_batch_waiting_forever(
    tmp_path: Path,
) -> None:
    """A KeyboardInterrupt inside the group commit reaches the committing thread, and
    every other thread whose batch was in the group gets it too instead of waiting."""
    log = SqliteEventLog(tmp_path / "e.sqlite", sync="NORMAL")
    real = log._writer

    class Interrupting:
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def executemany(self, *args: Any) -> Any:
            raise KeyboardInterrupt

    outcome: list[BaseException | bool] = []

    def waiter() -> None:
        try:
            outcome.append(log.append([entry("w")]))
        except BaseException as exc:
            outcome.append(exc)

    try:
        with pytest.raises(KeyboardInterrupt), log._writer_held():
            log._writer = Interrupting()  # type: ignore[assignment]
            thread = threading.Thread(target=waiter)
            thread.start()
            deadline = time.monotonic() + 5
            while not log._queue and time.monotonic() < deadline:
                time.sleep(0.01)
            assert log._queue, "the waiter's batch was not queued"
        thread.join(5)
        assert not thread.is_alive(), "a batch in the interrupted group waited forever"
        assert len(outcome) == 1 and isinstance(outcome[0], KeyboardInterrupt)
    finally:
        log._writer = real
        log.close()


def test_entries_since_gives_everything_after_a_seq_in_commit_order(log: EventLog) -> None:
    log.append([entry("a"), entry("b")])
    log.append([entry("c"), entry("other", execution_id="E2")])
    log.append([entry("d")])
    whole = log.entries("E1")
    assert [e.id for e in whole] == ["a", "b", "c", "d"]
    for cut, entry_before in enumerate(whole):
        assert entry_before.seq is not None
        since = log.entries_since("E1", entry_before.seq)
        # whatever else shares the commit instant may come again; nothing after is lost
        assert [e.id for e in since if e.id not in {w.id for w in whole[: cut + 1]}] == [
            w.id for w in whole[cut + 1 :]
        ]
        assert [e.seq for e in since] == sorted(e.seq or 0 for e in since)
    assert log.entries_since("E1", 0) == whole
