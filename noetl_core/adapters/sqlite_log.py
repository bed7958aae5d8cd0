"""The embedded event log: one SQLite table in WAL mode, rows created once.

Each row is one entry (several events may share it); `seq` is the commit order. A
record batch is one transaction, so one commit per block. Rows are never updated, so an
in-process cache of entries by id is always valid, and what settling asks (halt, sums in
flight, a loop's last wave, the latest result) is answered from memory
(`sqlite_state`), with no read per block.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ..engine.entries import Entry, check_limits, is_result, stored_json
from ..runtime.ports import Open, Snapshot
from .sqlite_state import Known, KnownExecutions

SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    execution_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    step TEXT,
    grp TEXT,
    dc INTEGER NOT NULL DEFAULT 0,
    da INTEGER NOT NULL DEFAULT 0,
    dj INTEGER NOT NULL DEFAULT 0,
    halt INTEGER NOT NULL DEFAULT 0,
    resulting INTEGER NOT NULL DEFAULT 0,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_by_kind ON entries(execution_id, kind, grp);
DROP INDEX IF EXISTS entries_wave;
"""
# (`entries_wave` indexed loop iterations by index for counts no longer made; a log
# written before keeps its unused `ix` column.)
LIFECYCLE_INDEX = """CREATE INDEX IF NOT EXISTS entries_lifecycle ON entries(kind, execution_id)
    WHERE kind IN ('start', 'terminal')"""
COLUMNS = "seq, id, execution_id, kind, step, grp, dc, da, dj, halt, resulting, data"
log = logging.getLogger(__name__)
INSERT = f"INSERT INTO entries({COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"


def _rows(entries: Sequence[Entry]) -> list[tuple[object, ...]]:
    """The batch's rows, once it is known to fit the event log's limits (Firestore's,
    held here too: both backends take the same batches)."""
    stored = [stored_json(e) for e in entries]
    check_limits(entries, stored)
    return [
        (
            e.id,
            e.execution_id,
            e.kind,
            e.step,
            e.group,
            e.dc,
            e.da,
            e.dj,
            int(e.halt),
            int(is_result(e)),
            text,
        )
        for e, text in zip(entries, stored, strict=True)
    ]


@dataclass
class _Pending:
    entries: Sequence[Entry]
    rows: list[tuple[object, ...]]
    seqs: list[int] = field(default_factory=list)
    result: bool | None = None
    error: BaseException | None = None
    done: bool = False  # set under the log's `_finished` condition
    then: Callable[[bool, BaseException | None], None] | None = None


def _max_seq(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT coalesce(max(seq), 0) FROM entries").fetchone()[0])


class SqliteEventLog:
    deferred_claims = True

    def __init__(self, path: Path, *, sync: str = "FULL", cache_size: int = 20_000):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.sync = sync
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._queue_lock = threading.Lock()
        self._queue: list[_Pending] = []
        self._finished = threading.Condition()
        self._last_seq: int | None = None
        self._cache: OrderedDict[str, Entry] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._cache_size = cache_size
        self._known = KnownExecutions()
        self._writer = self._connect()
        self._writer.executescript(SCHEMA)
        self._writer.execute(LIFECYCLE_INDEX)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self.sync}")
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    @property
    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        return conn

    def close(self) -> None:
        self._writer.close()

    def _drain(self) -> list[_Pending]:
        """Commit every batch waiting now in one transaction (the caller holds the write
        lock); returns the committed batches that have a continuation to run."""
        with self._queue_lock:
            group, self._queue = self._queue, []
        if not group:
            return []
        try:
            self._commit(group)
        except BaseException:  # e.g. KeyboardInterrupt mid-commit: nobody waits forever
            self._finish(group)
            raise
        later: list[_Pending] = []
        for request in group:
            if request.result:
                for entry, seq, row in zip(
                    request.entries, request.seqs, request.rows, strict=True
                ):
                    self._known.apply(entry, seq, bool(row[9]))
                with self._cache_lock:
                    for entry, seq in zip(request.entries, request.seqs, strict=True):
                        self._remember(entry.with_seq(seq))
            if request.then is not None:
                later.append(request)
        self._finish(group)
        return later

    def _finish(self, group: list[_Pending]) -> None:
        """Mark a group done and wake its waiters: one condition for the whole log, not
        an event per batch (most batches are handed on and nobody waits for them)."""
        with self._finished:
            for request in group:
                request.done = True
            self._finished.notify_all()

    def _lead(self) -> None:
        """Commit what waits if the writer is free, group by group, running each group's
        continuations outside the lock before the next (they may write again, and the
        successors they publish keep the other workers busy while the next group fills).
        A batch queued while another thread holds the writer is committed by that
        thread: it looks at the queue again after releasing."""
        while True:
            if not self._write_lock.acquire(blocking=False):
                return
            try:
                later = self._drain()
            finally:
                self._write_lock.release()
            for request in later:
                assert request.then is not None
                try:
                    request.then(bool(request.result), request.error)
                except Exception:  # a continuation reports its own failures
                    log.exception("a commit's continuation failed")
            with self._queue_lock:
                if not self._queue:
                    return

    @contextmanager
    def _writer_held(self) -> Iterator[None]:
        """The write lock, for a read that no commit may interleave with; batches queued
        meanwhile (their threads found the lock taken) are committed on release."""
        with self._write_lock:
            yield
        if self._queue:
            self._lead()

    def _await(self, request: _Pending) -> None:
        while not request.done:
            self._lead()
            with self._finished:
                if not request.done:
                    self._finished.wait(0.002)

    def append(self, entries: Sequence[Entry]) -> bool:
        """Group commit: whichever thread finds the writer free commits every batch waiting
        at that moment in one transaction (one fsync); the others wait for their batch to
        be done. A batch whose id is taken is refused alone."""
        if not entries:
            return True
        self._own_writes()
        request = _Pending(entries, _rows(entries))
        with self._queue_lock:
            self._queue.append(request)
        self._await(request)
        if request.error is not None:
            raise request.error
        return bool(request.result)

    def append_then(
        self, entries: Sequence[Entry], then: Callable[[bool, BaseException | None], None]
    ) -> None:
        """Queue a batch for the next group commit and return without waiting: `then`
        runs once the batch is durable (or refused, or failed), on whichever thread
        commits it. The calling thread may go on with other work meanwhile; its own later
        reads wait for the batch (read your writes) until `end_block`. This is what lets a
        worker start its next block while the commit of its last one waits for the disk,
        so concurrent blocks share one fsync: nothing is published or acknowledged before
        it is durable, so durability is that of `append`."""
        request = _Pending(entries, _rows(entries), then=then)
        mine = self._local.__dict__.setdefault("mine", [])
        mine.append(request)
        with self._queue_lock:
            self._queue.append(request)
        self._lead()

    def end_block(self) -> None:
        """The calling thread's block is over: its later reads need not wait for the
        batches it queued with `append_then`."""
        self._local.__dict__.pop("mine", None)

    def _own_writes(self) -> None:
        mine = self._local.__dict__.get("mine")
        while mine:
            self._await(mine[0])
            mine.pop(0)

    def _commit(self, group: list[_Pending]) -> None:
        """One transaction for the whole group: all rows in one statement when no id is
        taken (the common case); else batch by batch in savepoints, so a batch whose id
        is taken is refused alone. Few calls into SQLite also keep the GIL convoy short."""
        conn = self._writer
        try:
            conn.execute("BEGIN IMMEDIATE")
            if self._last_seq is None:
                self._last_seq = _max_seq(conn)
            # Optimistic: another process that wrote since our last commit took the next
            # seq, so our first row collides and we take the careful path below.
            seq = self._last_seq
            rows: list[tuple[object, ...]] = []
            for pending in group:
                pending.seqs = list(range(seq + 1, seq + 1 + len(pending.rows)))
                seq += len(pending.rows)
                rows.extend((s, *row) for s, row in zip(pending.seqs, pending.rows, strict=True))
            try:
                conn.executemany(INSERT, rows)
                for pending in group:
                    pending.result = True
            except sqlite3.IntegrityError:
                conn.execute("ROLLBACK")
                conn.execute("BEGIN IMMEDIATE")
                seq = self._one_by_one(conn, group)
            # Known before the rows are visible: a reader that sees them must not take
            # them for another process's write (`_fresh`) and wait for this writer.
            self._last_seq = seq
            conn.execute("COMMIT")
        except BaseException as exc:
            self._last_seq = None
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            for pending in group:
                pending.result, pending.error = False, exc
            if not isinstance(exc, Exception):
                raise

    def _one_by_one(self, conn: sqlite3.Connection, group: list[_Pending]) -> int:
        seq = _max_seq(conn)
        if self._last_seq is None or seq > self._last_seq:
            self._known.clear()  # another process wrote: what we knew may be stale
        for i, pending in enumerate(group):
            pending.seqs = list(range(seq + 1, seq + 1 + len(pending.rows)))
            conn.execute(f"SAVEPOINT b{i}")
            try:
                conn.executemany(
                    INSERT, [(s, *r) for s, r in zip(pending.seqs, pending.rows, strict=True)]
                )
                pending.result = True
                seq += len(pending.rows)
            except sqlite3.IntegrityError:
                conn.execute(f"ROLLBACK TO b{i}")
                pending.result = False
            conn.execute(f"RELEASE b{i}")
        return seq

    def _remember(self, entry: Entry) -> None:
        self._cache[entry.id] = entry
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    # -- reads ----------------------------------------------------------------------

    def _decode(self, seq: int, data: str) -> Entry:
        return Entry.from_dict({**json.loads(data), "seq": seq})

    def _select(self, where: str, args: Sequence[object], tail: str = "") -> list[Entry]:
        self._own_writes()
        rows = self._reader.execute(f"SELECT seq, data FROM entries WHERE {where} {tail}", args)
        return [self._decode(seq, data) for seq, data in rows]

    def get(self, entry_id: str) -> Entry | None:
        self._own_writes()
        with self._cache_lock:
            cached = self._cache.get(entry_id)
        if cached is not None:
            return cached
        found = self._select("id = ?", (entry_id,))
        if not found:
            return None
        with self._cache_lock:
            self._remember(found[0])
        return found[0]

    def _cached(self, entry_ids: Sequence[str]) -> tuple[dict[str, Entry], list[str]]:
        """The entries the cache has, and the ids it lacks."""
        self._own_writes()
        with self._cache_lock:
            found = {i: e for i in entry_ids if (e := self._cache.get(i)) is not None}
        return found, [i for i in entry_ids if i not in found]

    def get_many(self, entry_ids: Sequence[str]) -> dict[str, Entry]:
        found, missing = self._cached(entry_ids)
        if missing:
            marks = ",".join("?" * len(missing))
            for entry in self._select(f"id IN ({marks})", missing):
                found[entry.id] = entry
        return found

    # -- what this process knows (see sqlite_state) -----------------------------------

    def _fresh(self) -> None:
        """Drop the known state if another process wrote since this one last did."""
        top = self._reader.execute("SELECT max(seq) FROM entries").fetchone()[0] or 0
        if self._last_seq is not None and top <= self._last_seq:
            return
        with self._writer_held():
            top = _max_seq(self._writer)
            if self._last_seq is None or top > self._last_seq:
                self._known.clear()
                self._last_seq = top

    def _known_of(self, execution_id: str) -> Known:
        self._own_writes()
        self._fresh()
        found = self._known.get(execution_id)
        if found is not None:
            return found
        with self._writer_held():  # no commit of ours can slip between the read and the state
            found = self._known.get(execution_id)
            if found is None:
                found = Known()
                rows = self._writer.execute(
                    "SELECT id, seq, step, dc, da, dj, halt, resulting FROM entries"
                    " WHERE execution_id = ?",
                    (execution_id,),
                )
                for entry_id, seq, step, dc, da, dj, halt, resulting in rows:
                    found.add(entry_id, seq, step, (dc, da, dj), bool(halt), bool(resulting))
                self._known.put(execution_id, found)
        return found

    def snapshot(self, execution_id: str, entry_ids: Sequence[str] = ()) -> Snapshot:
        known = self._known_of(execution_id)
        found, missing = self._cached(entry_ids)
        stored = [i for i in missing if i in known.ids]
        if stored:
            found.update(self.get_many(stored))
        return Snapshot(found, known.halted)

    def find(
        self, execution_id: str, kind: str, *, step: str | None = None, group: str | None = None
    ) -> list[Entry]:
        where, args = "execution_id = ? AND kind = ?", [execution_id, kind]
        if step is not None:
            where, args = where + " AND step = ?", [*args, step]
        if group is not None:
            where, args = where + " AND grp = ?", [*args, group]
        return self._select(where, args, "ORDER BY seq")

    def count(self, execution_id: str, kind: str, *, group: str | None = None) -> int:
        self._own_writes()
        sql = "SELECT count(*) FROM entries WHERE execution_id = ? AND kind = ?"
        args: list[object] = [execution_id, kind]
        if group is not None:
            sql, args = sql + " AND grp = ?", [*args, group]
        return int(self._reader.execute(sql, args).fetchone()[0])

    def open_work(
        self, execution_id: str, steps: Collection[str] | None = None, *, join: str | None = None
    ) -> Open:
        if steps is not None and not steps:
            return Open()
        return self._known_of(execution_id).open_work(steps)

    def halted(self, execution_id: str) -> bool:
        return self._known_of(execution_id).halted

    def last_result(self, execution_id: str) -> Entry | None:
        last = self._known_of(execution_id).last_result
        return self.get(last[1]) if last is not None else None

    def entries(self, execution_id: str) -> list[Entry]:
        return self._select("execution_id = ?", (execution_id,), "ORDER BY seq")

    def entries_since(self, execution_id: str, seq: int) -> list[Entry]:
        return self._select("execution_id = ? AND seq > ?", (execution_id, seq), "ORDER BY seq")

    def executions(self, limit: int = 20) -> list[Entry]:
        return self._select("kind = 'start'", (), f"ORDER BY seq DESC LIMIT {int(limit)}")

    def unfinished(self) -> list[str]:
        """Executions started and not ended, oldest first (what a crash may have left)."""
        self._own_writes()
        rows = self._reader.execute(
            "SELECT execution_id FROM entries WHERE kind = 'start' AND execution_id NOT IN"
            " (SELECT execution_id FROM entries WHERE kind = 'terminal') ORDER BY seq"
        )
        return [r[0] for r in rows]

    def find_execution(self, prefix: str) -> list[str]:
        rows = self._reader.execute(
            "SELECT execution_id FROM entries WHERE kind = 'start' AND execution_id LIKE ? LIMIT 5",
            (prefix + "%",),
        )
        return [r[0] for r in rows]
