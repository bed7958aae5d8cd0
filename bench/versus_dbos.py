"""The embedded engine against DBOS Transact, side by side on durable SQLite.

Two workloads, each run on both sides in one process, interleaved (one warm-up execution
per side, then noetl, DBOS, noetl, DBOS ... for RUNS timed executions each, so machine
noise hits both alike); prints the median wall and CPU ms per block (noetl) or step (DBOS)
and the ratio DBOS/noetl of the wall figures:

1. a 100-step chain. noetl: `chain_playbook(100)` from bench/run.py, 100 python steps
   `result = i`, each `next` to the following. DBOS: one `@DBOS.workflow()` calling 100
   `@DBOS.step()` functions in sequence, each returning i.
2. a 100-wide fan-out with a gather. noetl: `fanout_playbook(100)` from bench/run.py, a
   parallel loop of 100 iterations and a join step. DBOS (default `--fanout gather`, the
   fastest idiomatic way measured): one async `@DBOS.workflow()` that starts 100 async
   `@DBOS.step()` calls at once with `asyncio.gather` (DBOS's documented way to run steps
   concurrently; each step is checkpointed) and sums the results in one more step, so
   101 steps against noetl's 100 iterations + join. The alternatives, slower on the
   machine this was written on (about 2x and 3x the time per item), are kept behind the flag:
   `--fanout children` (`DBOS.start_workflow` of a one-step child workflow per item, then
   `get_result` on each handle) and `--fanout queue` (`enqueue` of the child workflow on a
   queue with worker_concurrency=100 and a 10 ms polling interval, then `get_result`).

Durability, and nothing weakened on either side:
- noetl: `embedded.runtime` with NOETL_SQLITE_SYNC=FULL, i.e. journal_mode=WAL,
  synchronous=FULL (as bench/run.py).
- DBOS 3.x: SQLite system database (`system_database_url: sqlite:///<tmp>/dbos.sqlite`).
  DBOS sets only `busy_timeout=30000` and `foreign_keys=ON` (and IMMEDIATE transactions)
  on its connections, so SQLite's defaults apply: journal_mode=DELETE (rollback journal)
  and synchronous=FULL. This script additionally sets synchronous=FULL on every DBOS
  connection (a no-op with default SQLite builds) and prints what the connection reports.
  `--dbos-wal` switches the DBOS file to journal_mode=WAL (still synchronous=FULL), the
  same journal as noetl; by default DBOS runs as shipped.

Each side runs in its own process (spawned, warm for the whole run): one library's
background threads (DBOS polls its queues) never share an interpreter lock with the
other's blocks. With two or more CPUs, each process is pinned to a CPU of its own
(noetl the first the script may use, DBOS the second; `--no-pin` leaves placement to the
scheduler). Measured on the 2-core machine this was written on: unpinned, a side's
threads migrate between the cores and each timed run starts on caches the other side
just filled, which cost noetl's ~100 ms runs 20-60 % (its CPU time per block rose, not
only its wall time; a plain SQLite writer run between its runs did the same); pinned,
both sides ran faster than unpinned (DBOS's chain too). The parent alternates the
requests, so the interleaving is kept; each side times itself (wall and its own
process's CPU), and noetl counts its blocks after its clock stops. Fresh temporary
directories per side. Without the `dbos` package the script says so and exits 0.
Requires `dbos>=3.4,<4`.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import resource
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run import chain_playbook, fanout_playbook  # noqa: E402
from noetl_core import embedded, settings  # noqa: E402
from noetl_core.playbook import load_text  # noqa: E402

RUNS = 5
WIDTH = 100
SYNC_NAMES = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(run: Callable[[], Callable[[], int]]) -> tuple[float, float, int]:
    """Wall ms, CPU ms and the unit count (blocks or steps) of one execution; `run`
    returns how to count its units, which is done after the clock stops."""
    started, cpu_started = time.perf_counter(), cpu_seconds()
    units = run()
    wall, cpu = (time.perf_counter() - started) * 1000, (cpu_seconds() - cpu_started) * 1000
    return wall, cpu, units()


class Noetl:
    """One warm embedded runtime on a durable SQLite log in its own NOETL_HOME."""

    def __init__(self, home: str) -> None:
        conf = settings.load({"NOETL_HOME": home, "NOETL_SQLITE_SYNC": "FULL"})
        self._context = embedded.runtime(conf)
        self.rt = self._context.__enter__()
        self.chain = load_text(chain_playbook(WIDTH))
        self.fanout = load_text(fanout_playbook(WIDTH))

    def execute(self, loaded: Any) -> Callable[[], int]:
        execution_id = self.rt.start(loaded, {})
        terminal = self.rt.wait(execution_id, 120)
        assert terminal is not None and terminal.body["status"] == "completed"
        return lambda: sum(1 for e in self.rt.log.entries(execution_id) if e.kind == "done")

    def run_chain(self) -> Callable[[], int]:
        return self.execute(self.chain)

    def run_fanout(self) -> Callable[[], int]:
        return self.execute(self.fanout)

    def close(self) -> None:
        self._context.__exit__(None, None, None)


class Dbos:
    """DBOS launched on a SQLite system database in its own directory, with its workflows."""

    def __init__(self, home: str, *, fanout: str, wal: bool) -> None:
        from dbos import DBOS, SetWorkflowID

        self.DBOS = DBOS
        self.SetWorkflowID = SetWorkflowID
        self.fanout_mode = fanout
        path = Path(home) / "dbos.sqlite"
        if wal:  # journal_mode=WAL is persistent in the file; set it before DBOS opens it
            with sqlite3.connect(path) as conn:
                conn.execute("PRAGMA journal_mode=WAL")
            conn.close()

        @DBOS.step()
        def value(i: int) -> int:
            return i

        @DBOS.step()
        async def value_async(i: int) -> int:
            return i

        @DBOS.step()
        def total(xs: list[int]) -> int:
            return sum(xs)

        @DBOS.step()
        async def total_async(xs: list[int]) -> int:
            return sum(xs)

        @DBOS.workflow()
        def chain(n: int) -> int:
            acc = 0
            for i in range(n):
                acc += value(i)
            return acc

        @DBOS.workflow()
        def child(i: int) -> int:
            return value(i)

        @DBOS.workflow()
        async def fan_gather(n: int) -> int:
            xs = await asyncio.gather(*(value_async(i) for i in range(n)))
            return await total_async(list(xs))

        @DBOS.workflow()
        def fan_children(n: int) -> int:
            handles = [DBOS.start_workflow(child, i) for i in range(n)]
            return total([h.get_result() for h in handles])

        @DBOS.workflow()
        def fan_queue(n: int) -> int:
            queue = DBOS.retrieve_queue("versus_fanout")
            assert queue is not None
            handles = [queue.enqueue(child, i) for i in range(n)]
            return total([h.get_result() for h in handles])

        self.chain_wf, self.fan_gather = chain, fan_gather
        self.fan_children, self.fan_queue = fan_children, fan_queue
        DBOS(
            config={
                "name": "versus-noetl",
                "system_database_url": f"sqlite:///{path}",
                "log_level": "WARNING",
            }
        )
        try:
            DBOS.launch()
            self._force_full_sync()
            if fanout == "queue":
                DBOS.register_queue(
                    "versus_fanout", worker_concurrency=WIDTH, polling_interval_sec=0.01
                )
        except BaseException:
            DBOS.destroy(destroy_registry=True)
            raise
        self.loop = asyncio.new_event_loop()
        self.last_id = ""

    def _force_full_sync(self) -> None:
        """synchronous=FULL on every DBOS connection from now on (pool emptied, so all)."""
        from dbos._dbos import _get_dbos_instance
        from sqlalchemy import event

        engine = _get_dbos_instance()._sys_db.engine

        @event.listens_for(engine, "connect")
        def full_sync(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.execute("PRAGMA synchronous=FULL")

        engine.dispose()
        with engine.connect() as conn:
            sync = conn.exec_driver_sql("PRAGMA synchronous").scalar()
            journal = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
        named = SYNC_NAMES.get(sync, sync) if isinstance(sync, int) else sync
        self.pragmas = f"journal_mode={journal}, synchronous={named}"
        assert sync == 2, self.pragmas

    @staticmethod
    def _checked(result: int, units: int) -> Callable[[], int]:
        assert result == sum(range(WIDTH)), result
        return lambda: units

    def run_chain(self) -> Callable[[], int]:
        with self.SetWorkflowID(str(uuid.uuid4())):
            result = self.chain_wf(WIDTH)
        return self._checked(result, WIDTH)

    def run_fanout(self) -> Callable[[], int]:
        wf_id = str(uuid.uuid4())
        with self.SetWorkflowID(wf_id):
            if self.fanout_mode == "gather":
                result = self.loop.run_until_complete(self.fan_gather(WIDTH))
            elif self.fanout_mode == "children":
                result = self.fan_children(WIDTH)
            else:
                result = self.fan_queue(WIDTH)
        self.last_id = wf_id
        return self._checked(result, WIDTH + 1)

    def recorded_steps(self, wf_id: str) -> int:
        return len(self.DBOS.list_workflow_steps(wf_id, load_output=False))

    def close(self) -> None:
        self.loop.close()
        self.DBOS.destroy(destroy_registry=True)


def serve(side: str, home: str, fanout: str, wal: bool, cpu: int | None, conn: Connection) -> None:
    """One side in its own process: build it, then run what the parent asks, timed."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    worker: Noetl | Dbos = Noetl(home) if side == "noetl" else Dbos(home, fanout=fanout, wal=wal)
    try:
        conn.send(getattr(worker, "pragmas", ""))
        while (asked := conn.recv()) != "close":
            if asked == "steps":
                assert isinstance(worker, Dbos)
                conn.send(worker.recorded_steps(worker.last_id))
            else:
                conn.send(timed(worker.run_chain if asked == "chain" else worker.run_fanout))
    finally:
        worker.close()


class Side:
    """A side served by a child process (spawned: nothing of the parent's state)."""

    def __init__(
        self, side: str, home: str, fanout: str, wal: bool, cpu: int | None = None
    ) -> None:
        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process = context.Process(target=serve, args=(side, home, fanout, wal, cpu, child))
        self.process.start()
        self.pragmas = str(self.conn.recv())

    def ask(self, what: str) -> Any:
        self.conn.send(what)
        return self.conn.recv()

    def close(self) -> None:
        if self.process.is_alive():
            self.conn.send("close")
        self.process.join(60)


def interleave(
    ours: Side, theirs: Side, what: str
) -> tuple[list[tuple[float, float, int]], list[tuple[float, float, int]]]:
    ours.ask(what)
    theirs.ask(what)
    mine: list[tuple[float, float, int]] = []
    dbos: list[tuple[float, float, int]] = []
    for _ in range(RUNS):
        mine.append(ours.ask(what))
        dbos.append(theirs.ask(what))
    return mine, dbos


def per_unit(samples: list[tuple[float, float, int]]) -> tuple[float, float, int]:
    wall = statistics.median(s[0] / s[2] for s in samples)
    cpu = statistics.median(s[1] / s[2] for s in samples)
    return wall, cpu, samples[-1][2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fanout", choices=("gather", "children", "queue"), default="gather")
    parser.add_argument("--dbos-wal", action="store_true", help="DBOS file in WAL mode")
    parser.add_argument("--no-pin", action="store_true", help="do not pin each side to a CPU")
    args = parser.parse_args()
    usable = sorted(os.sched_getaffinity(0))
    cpus: tuple[int | None, int | None] = (None, None)
    if not args.no_pin and len(usable) >= 2:
        cpus = (usable[0], usable[1])
    try:
        import dbos  # noqa: F401
    except ImportError:
        print("DBOS comparison skipped: the `dbos` package is not installed (pip install dbos)")
        return
    from importlib.metadata import version

    with (
        tempfile.TemporaryDirectory() as ours_home,
        tempfile.TemporaryDirectory() as dbos_home,
    ):
        ours = Side("noetl", ours_home, args.fanout, args.dbos_wal, cpus[0])
        theirs: Side | None = None
        try:
            theirs = Side("dbos", dbos_home, args.fanout, args.dbos_wal, cpus[1])
            print(
                f"DBOS {version('dbos')}, SQLite {sqlite3.sqlite_version}; "
                f"noetl log journal_mode=wal, synchronous=FULL; DBOS {theirs.pragmas}; "
                f"fan-out via {args.fanout}; each side in its own process"
                + (f" pinned to CPU {cpus[0]} / {cpus[1]}; " if cpus[0] is not None else "; ")
                + f"median of {RUNS}, interleaved"
            )
            for label, target, what in (
                ("100-step chain:  ", 4, "chain"),
                ("100-wide fan-out:", 20, "fanout"),
            ):
                mine, other = interleave(ours, theirs, what)
                m_wall, m_cpu, blocks = per_unit(mine)
                d_wall, d_cpu, steps = per_unit(other)
                print(
                    f"{label}   noetl {m_wall:.2f} ms/block ({m_cpu:.2f} CPU, {blocks} blocks), "
                    f"DBOS {d_wall:.2f} ms/step ({d_cpu:.2f} CPU, {steps} steps), "
                    f"DBOS/noetl = {d_wall / m_wall:.1f}x (target >= {target}x)"
                )
            assert theirs.ask("steps") >= WIDTH + 1
        finally:
            if theirs is not None:
                theirs.close()
            ours.close()


if __name__ == "__main__":
    main()
