"""`make bench`: the embedded default's cost per block, and the Arrow handoff rate.

Prints, on a durable SQLite log (synchronous=FULL, WAL) in a fresh NOETL_HOME:
- ms per block for a 100-step chain of trivial python steps (median of 5 executions
  on one warm runtime);
- ms per block for a 100-wide parallel loop and the step after it (same);
- MB/s of handing a 1,000,000-row Arrow table from one step to the next (write the
  IPC payload with its sha256, then read and verify it), median of 5.
Targets (from the issue): chain <= 1 ms/block, fan-out <= 0.5 ms/block.
"""

from __future__ import annotations

import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from noetl_core import embedded, settings  # noqa: E402
from noetl_core.playbook import load_text  # noqa: E402
from noetl_core.runtime import payloads  # noqa: E402

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


def handoff_rate() -> tuple[float, int, float]:
    import pyarrow as pa
    import pyarrow.compute as pc

    from noetl_core.adapters.fsspec_payloads import FsspecPayloadStore

    ids = pa.array(range(1_000_000), type=pa.int64())
    table = pa.table({"id": ids, "value": pc.multiply(ids, 2), "group": pc.bit_wise_and(ids, 7)})
    rates = []
    size = 0
    with tempfile.TemporaryDirectory() as tmp:
        store = FsspecPayloadStore(Path(tmp).resolve().as_uri())
        for run in range(RUNS):
            started = time.perf_counter()
            ref, _ = payloads.persist(store, table, f"bench/{run}/result", 64 * 1024)
            loaded = payloads.load(store, ref)
            elapsed = time.perf_counter() - started
            assert loaded.num_rows == 1_000_000
            size = ref["size"]
            rates.append(size / 1e6 / elapsed)
    return statistics.median(rates), size, size / 1e6 / statistics.median(rates) * 1000


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
    rate, size, ms = handoff_rate()
    print(
        f"1,000,000-row Arrow handoff:  {rate:.0f} MB/s "
        f"({size / 1e6:.1f} MB written + read + sha256-verified in {ms:.1f} ms, median of {RUNS})"
    )


if __name__ == "__main__":
    main()
