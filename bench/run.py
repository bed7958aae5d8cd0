"""`make bench`: the embedded default's cost per block, and the Arrow handoff rate.

Prints, on a durable SQLite log (synchronous=FULL, WAL) in a fresh NOETL_HOME:
- ms per block for a 100-step chain of trivial python steps (median of 5 executions
  on one warm runtime);
- ms per block for a 100-wide parallel loop and the step after it (same);
- MB/s of handing a 1,000,000-row table from one step to the next through the payload
  store (encode, sha256, write; read, verify, decode) as Arrow IPC and as JSON records,
  and the ratio. MB are the table's column bytes (pyarrow `nbytes`).
Targets: chain <= 1 ms/block, fan-out <= 0.5 ms/block, Arrow >= 500 MB/s and >= 20x JSON.
"""

from __future__ import annotations

import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from noetl_core import embedded, settings  # noqa: E402
from noetl_core.playbook import load_text  # noqa: E402

RUNS = 5


def chain_playbook(n: int) -> str:
    steps = []
    for i in range(n):
        nxt = f"\n    next: s{i + 1}" if i + 1 < n else ""
        steps.append(f"  - step: s{i}\n    tool: {{kind: python, code: 'result = {i}'}}{nxt}")
    return (
        "apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {name: chain}\nworkflow:\n"
        + "\n".join(steps)
        + "\n"
    )


def fanout_playbook(n: int) -> str:
    return f"""apiVersion: noetl.io/v2
kind: Playbook
metadata: {{name: fanout}}
workload: {{items: {list(range(n))}}}
workflow:
  - step: start
    loop: {{in: "{{{{ items }}}}", iterator: x, spec: {{mode: parallel, max_in_flight: {n}}}}}
    tool: {{kind: python, input: {{x: "{{{{ x }}}}"}}, code: "result = x"}}
    next: join
  - step: join
    tool: {{kind: python, input: {{xs: "{{{{ start }}}}"}}, code: "result = len(xs)"}}
"""


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def per_block(text: str) -> tuple[float, float, int]:
    """Median wall and CPU ms per block over RUNS executions of one warm embedded runtime
    (one execution first warms imports, the blueprint and the SQLite files)."""
    samples = []
    cpu = []
    blocks = 0
    loaded = load_text(text)
    with tempfile.TemporaryDirectory() as tmp:
        conf = settings.load({"NOETL_HOME": tmp, "NOETL_SQLITE_SYNC": "FULL"})
        with embedded.runtime(conf) as rt:
            rt.wait(rt.start(loaded, {}), 60)
            for _ in range(RUNS):
                started, cpu_started = time.perf_counter(), cpu_seconds()
                execution_id = rt.start(loaded, {})
                terminal = rt.wait(execution_id, 120)
                elapsed = time.perf_counter() - started
                used = cpu_seconds() - cpu_started
                assert terminal is not None and terminal.body["status"] == "completed"
                blocks = sum(1 for e in rt.log.entries(execution_id) if e.kind == "done")
                samples.append(elapsed * 1000 / blocks)
                cpu.append(used * 1000 / blocks)
    return statistics.median(samples), statistics.median(cpu), blocks


def million_rows() -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    ids = pa.array(range(1_000_000), type=pa.int64())
    return pa.table({"id": ids, "value": pc.multiply(ids, 2), "group": pc.bit_wise_and(ids, 7)})


def handoff(value: Any, runs: int, *, tabular: bool) -> tuple[float, int]:
    """Median seconds to hand `value` from one step to the next through the payload store
    (persist: encode, sha256, write; then load: read, verify sha256, decode), and the
    stored size. A fresh store each run, so no run reads another's file."""
    from noetl_core.adapters.fsspec_payloads import FsspecPayloadStore

    seconds = []
    size = 0
    for run in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            store = FsspecPayloadStore(Path(tmp).resolve().as_uri())
            started = time.perf_counter()
            ref = store.put(f"bench/{run}/result", value, tabular=tabular)
            loaded = store.get(ref)
            seconds.append(time.perf_counter() - started)
            assert len(loaded) == 1_000_000
            size = ref["size"]
    return statistics.median(seconds), size


def arrow_versus_json() -> None:
    table = million_rows()
    logical = table.nbytes / 1e6
    arrow_s, arrow_size = handoff(table, RUNS, tabular=True)
    json_s, json_size = handoff(table.to_pylist(), 3, tabular=False)
    print(
        f"1,000,000-row handoff, Arrow IPC: {logical / arrow_s:.0f} MB/s "
        f"({logical:.1f} MB of columns, {arrow_size / 1e6:.1f} MB stored, {arrow_s * 1000:.1f} ms, "
        f"median of {RUNS}; target >= 500 MB/s)"
    )
    print(
        f"1,000,000-row handoff, JSON:      {logical / json_s:.1f} MB/s "
        f"({json_size / 1e6:.1f} MB stored, {json_s * 1000:.0f} ms, median of 3)"
    )
    print(f"Arrow / JSON: {json_s / arrow_s:.0f}x (target >= 20x)")


def main() -> None:
    for label, text, target in (
        ("chain of 100 python steps:  ", chain_playbook(100), "1"),
        ("100-wide parallel loop+join:", fanout_playbook(100), "0.5"),
    ):
        wall, cpu, blocks = per_block(text)
        print(
            f"{label}  {wall:.3f} ms/block wall, {cpu:.3f} ms/block CPU "
            f"({blocks} blocks, median of {RUNS}; target <= {target} ms)"
        )
    arrow_versus_json()


if __name__ == "__main__":
    main()
