"""Time bounds of the embedded default's lifecycle.

1. How long `noetl run` takes to end after Ctrl-C (SIGINT), after its `--timeout` expires,
   and after `noetl cancel` from another process has recorded the cancel, while its only
   step spins in a Python loop that never returns (target <= 2 s each; median of RUNS).
2. Time to full width: a parallel loop of 400 python steps that each sleep 20 ms, with
   `max_in_flight: 20`, on a fresh runtime: how long after the first iteration starts 20
   iterations run at once (target <= 100 ms; median of RUNS).
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from noetl_core import embedded, settings  # noqa: E402
from noetl_core.playbook import load_text  # noqa: E402

RUNS = 5
STUCK = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: stuck}
workflow:
  - step: start
    tool: {kind: python, code: "while True:\\n  pass"}
"""
WIDE = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: width}
workflow:
  - step: start
    loop: {in: "{{ range(400) | list }}", iterator: n, spec: {mode: parallel, max_in_flight: 20}}
    tool:
      kind: python
      code: "import time; a = time.monotonic(); time.sleep(0.02); result = [a, time.monotonic()]"
"""


def cli(home: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "noetl_core.cli", *args]


def end_after(how: str) -> float:
    """Seconds from the request to the end of the `noetl run` process."""
    with tempfile.TemporaryDirectory() as home:
        playbook = Path(home) / "stuck.yaml"
        playbook.write_text(STUCK)
        env = {**os.environ, "NOETL_HOME": home}
        extra = ["--timeout", "1"] if how == "timeout" else []
        run = subprocess.Popen(
            cli(home, "run", str(playbook), *extra),
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        if how == "timeout":  # measured from the timeout's expiry: the start's time + 1 s
            run.wait(timeout=60)
            ended = time.time()
            conf = settings.load({"NOETL_HOME": home})
            with embedded.runtime(conf) as rt:
                (start,) = rt.log.executions(1)
            return ended - (start.ts + 1.0)
        time.sleep(1.0)  # started, and spinning
        status = subprocess.run(cli(home, "status"), cwd=ROOT, env=env, capture_output=True)
        execution_id = status.stdout.split()[0].decode()
        asked = time.monotonic()
        if how == "ctrl-c":
            run.send_signal(signal.SIGINT)
        else:  # measured from the moment the cancel is recorded
            subprocess.run(cli(home, "cancel", execution_id), cwd=ROOT, env=env, check=True)
            asked = time.monotonic()
        run.wait(timeout=60)
        return time.monotonic() - asked


def time_to_width() -> float:
    with tempfile.TemporaryDirectory() as home:
        conf = settings.load({"NOETL_HOME": home, "NOETL_SQLITE_SYNC": "FULL"})
        with embedded.runtime(conf) as rt:
            execution_id = rt.start(load_text(WIDE), {})
            terminal = rt.wait(execution_id, 120)
            assert terminal is not None and terminal.body["status"] == "completed"
            spans = [
                rt.load(e.body["result"])
                for e in rt.log.entries(execution_id)
                if e.kind == "done" and "index" in e.body
            ]
    events = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans])
    running, first = 0, events[0][0]
    for moment, change in events:
        running += change
        if running >= 20:
            return moment - first
    raise AssertionError("the loop never ran 20 iterations at once")


def main() -> None:
    for how in ("ctrl-c", "cancel", "timeout"):
        took = [end_after(how) for _ in range(RUNS)]
        what = {"ctrl-c": "Ctrl-C", "cancel": "`noetl cancel`", "timeout": "--timeout 1 expiry"}
        print(
            f"`noetl run` of a step that never returns ends {statistics.median(took):.2f} s "
            f"after {what[how]} (median of {RUNS}; max {max(took):.2f} s; target <= 2 s)"
        )
    widths = [time_to_width() * 1000 for _ in range(RUNS)]
    print(
        f"parallel loop of 20 ms I/O steps, max_in_flight 20: full width after "
        f"{statistics.median(widths):.0f} ms (median of {RUNS}; max {max(widths):.0f} ms; "
        f"target <= 100 ms)"
    )


if __name__ == "__main__":
    main()
