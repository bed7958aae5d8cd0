"""Cost per block as executions grow, on the embedded default (durable SQLite, FULL sync).

Each case runs one execution in a fresh child process and NOETL_HOME, and reports:
ms per block (wall, whole execution), stored bytes per block (every log row the
execution wrote plus its payload files, divided by its blocks) and the child's peak
memory. Cases: chains of 100 / 1,000 / 5,000 python steps, parallel loops of 100 and
10,000 items, and a 1 MB ctx value carried through 50 steps.

Targets (issue: flat cost): bytes per block from 100 to 5,000 steps <= 1.6x; ms per
block within 1.5x; a 5,000-step chain under 200 MB peak; the 1 MB ctx adds < 3 MB;
a 10,000-item loop within 1.3x per item of a 100-item loop.

`python bench/growth.py [case ...]` runs some cases; `--json` prints one JSON line each.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run import chain_playbook  # noqa: E402


def chain(n: int) -> str:
    return chain_playbook(n)


def loop(n: int, width: int = 100) -> str:
    return f"""apiVersion: noetl.io/v2
kind: Playbook
metadata: {{name: loop}}
workload: {{n: {n}}}
workflow:
  - step: start
    loop: {{in: "{{{{ range(n) | list }}}}", iterator: x,
            spec: {{mode: parallel, max_in_flight: {width}}}}}
    tool: {{kind: python, input: {{x: "{{{{ x }}}}"}}, code: "result = x"}}
    next: after
  - step: after
    tool: {{kind: python, input: {{xs: "{{{{ start | length }}}}"}}, code: "result = xs"}}
"""


def ctx_carry(steps: int, size: int) -> str:
    body = [
        "apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {name: carry}",
        f"workload: {{size: {size}}}",
        "workflow:",
        "  - step: s0",
        "    tool: {kind: python, input: {n: '{{ size }}'}, code: \"result = 'x' * n\"}",
        "    set: {ctx.big: '{{ s0 }}'}",
        "    next: s1",
    ]
    for i in range(1, steps):
        nxt = f"\n    next: s{i + 1}" if i + 1 < steps else ""
        body.append(f"  - step: s{i}\n    tool: {{kind: python, code: 'result = {i}'}}{nxt}")
    return "\n".join(body) + "\n"


CASES: dict[str, Any] = {
    "chain-100": lambda: chain(100),
    "chain-1000": lambda: chain(1000),
    "chain-5000": lambda: chain(5000),
    "loop-100": lambda: loop(100),
    "loop-2000": lambda: loop(2000),
    "loop-10000": lambda: loop(10_000),
    "ctx-1MB-50": lambda: ctx_carry(50, 1_000_000),
    "ctx-none-50": lambda: ctx_carry(50, 1),
}

CHILD = r"""
import json, os, resource, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from noetl_core import embedded, settings
from noetl_core.playbook import load_text
text = sys.stdin.read()
with tempfile.TemporaryDirectory() as tmp:
    conf = settings.load({"NOETL_HOME": tmp, "NOETL_SQLITE_SYNC": "FULL"})
    loaded = load_text(text)
    with embedded.runtime(conf) as rt:
        started = time.perf_counter()
        execution_id = rt.start(loaded, {})
        terminal = rt.wait(execution_id, 900)
        elapsed = time.perf_counter() - started
        assert terminal is not None and terminal.body["status"] == "completed", terminal
        entries = rt.log.entries(execution_id)
    blocks = sum(1 for e in entries if e.kind == "done")
    import sqlite3
    conn = sqlite3.connect(conf.log_path)
    logged = conn.execute(
        "SELECT coalesce(sum(length(data)), 0) FROM entries WHERE execution_id = ?",
        (execution_id,),
    ).fetchone()[0]
    payload = sum(p.stat().st_size for p in Path(tmp).rglob("*") if p.is_file()
                  and "payloads" in p.parts)
    print(json.dumps({
        "blocks": blocks,
        "ms_per_block": elapsed * 1000 / blocks,
        "bytes_per_block": (logged + payload) / blocks,
        "stored_mb": (logged + payload) / 1e6,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))
"""


def measure(case: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(ROOT)],
        input=CASES[case](),
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )
    if done.returncode != 0:
        raise SystemExit(f"{case} failed:\n{done.stderr[-3000:]}")
    return {"case": case, **json.loads(done.stdout.strip().splitlines()[-1])}


def report(results: dict[str, dict[str, Any]]) -> None:
    for r in results.values():
        print(
            f"{r['case']:<12} {r['blocks']:>6} blocks  {r['ms_per_block']:7.3f} ms/block  "
            f"{r['bytes_per_block']:9.0f} B/block  {r['stored_mb']:8.2f} MB stored  "
            f"{r['peak_mb']:7.1f} MB peak"
        )

    def ratio(a: str, b: str, key: str) -> str:
        if a in results and b in results:
            return f"{results[b][key] / results[a][key]:.2f}x"
        return "n/a"

    print(
        f"chain 100 -> 5,000: bytes/block {ratio('chain-100', 'chain-5000', 'bytes_per_block')}"
        f" (target <= 1.6x), ms/block {ratio('chain-100', 'chain-5000', 'ms_per_block')}"
        " (target <= 1.5x)"
    )
    print(
        f"loop 100 -> 10,000: ms/item {ratio('loop-100', 'loop-10000', 'ms_per_block')}"
        " (target <= 1.3x)"
    )
    if "ctx-1MB-50" in results and "ctx-none-50" in results:
        extra = results["ctx-1MB-50"]["stored_mb"] - results["ctx-none-50"]["stored_mb"]
        print(f"1 MB ctx through 50 steps adds {extra:.2f} MB (target < 3 MB)")


def main(argv: list[str]) -> None:
    as_json = "--json" in argv
    names = [a for a in argv if not a.startswith("--")] or list(CASES)
    results = {}
    for name in names:
        results[name] = measure(name)
        if as_json:
            print(json.dumps(results[name]), flush=True)
    if not as_json:
        report(results)


if __name__ == "__main__":
    main(sys.argv[1:])
