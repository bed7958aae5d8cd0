"""Cold start: the wall time of fresh processes, median of 10 each (after one warm-up).

- `python -c pass`: the interpreter alone, for scale;
- `noetl run playbooks/examples/hello_world.yaml` with NOETL_HOME a temporary directory
  that earlier runs created (the steady cold start; the warm-up run creates the log);
- the same with a new NOETL_HOME every run (first-ever use: the SQLite schema is made);
- `python -c "import functions.main"` from the repository root (what functions-framework
  imports before a Cloud Function serves its first request).

Two columns: with bytecode cached, as an installed package runs (compiled modules in a
temporary PYTHONPYCACHEPREFIX, filled by the warm-up run, so the repository is not
written), and without (PYTHONDONTWRITEBYTECODE=1: every NoETL module compiled each run).
Target: `noetl run` (steady) <= 150 ms.

`python bench/coldstart.py [--runs N]`
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLAYBOOK = "playbooks/examples/hello_world.yaml"
TARGET_RUN_MS = 150.0
TIMEOUT_S = 60


def noetl_command() -> list[str]:
    """The `noetl` console script beside this interpreter, else the module."""
    script = Path(sys.executable).with_name("noetl")
    return [str(script)] if script.exists() else [sys.executable, "-m", "noetl_core.cli"]


def elapsed_ms(command: Sequence[str], env: dict[str, str]) -> float:
    """Wall ms from starting the process to its exit. The wait blocks in waitpid (a
    watchdog kills a process that overruns TIMEOUT_S): `subprocess.run(timeout=...)` would
    poll with sleeps of up to 50 ms and round every figure up to that grain."""
    started = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    watchdog = threading.Timer(TIMEOUT_S, process.kill)
    watchdog.start()
    try:
        code = process.wait()
    finally:
        watchdog.cancel()
    took = (time.perf_counter() - started) * 1000
    if code != 0:
        raise subprocess.CalledProcessError(code, list(command))
    return took


def median_ms(runs: int, one: Callable[[], float]) -> float:
    one()  # warm-up: creates NOETL_HOME, fills the bytecode cache, loads the page cache
    return statistics.median(one() for _ in range(runs))


def environment(scratch: Path, bytecode: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOETL_", "PYTHONPYCACHE"))}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if bytecode:
        env["PYTHONPYCACHEPREFIX"] = str(scratch / "pycache")
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def measure(runs: int, scratch: Path, bytecode: bool) -> dict[str, float]:
    env = environment(scratch, bytecode)
    run = [*noetl_command(), "run", PLAYBOOK]
    steady = {**env, "NOETL_HOME": tempfile.mkdtemp(dir=scratch)}

    def first_ever() -> float:
        return elapsed_ms(run, {**env, "NOETL_HOME": tempfile.mkdtemp(dir=scratch)})

    return {
        "python -c pass": median_ms(runs, lambda: elapsed_ms([sys.executable, "-c", "pass"], env)),
        "noetl run hello_world (steady)": median_ms(runs, lambda: elapsed_ms(run, steady)),
        "noetl run hello_world (new NOETL_HOME)": median_ms(runs, first_ever),
        'python -c "import functions.main"': median_ms(
            runs, lambda: elapsed_ms([sys.executable, "-c", "import functions.main"], env)
        ),
    }


def report(cached: dict[str, float], compiled: dict[str, float], runs: int) -> None:
    print(f"cold start, median of {runs} fresh processes (ms)")
    print(f"{'':42} {'bytecode cached':>16} {'no bytecode':>12}")
    for name in cached:
        print(f"{name:42} {cached[name]:16.1f} {compiled[name]:12.1f}")
    for label, figures in (("bytecode cached", cached), ("no bytecode", compiled)):
        took = figures["noetl run hello_world (steady)"]
        verdict = "met" if took <= TARGET_RUN_MS else "NOT met"
        print(f"target: noetl run (steady) <= {TARGET_RUN_MS:.0f} ms, {label}: {verdict}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=10, help="measured runs per command")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="noetl-coldstart-") as tmp:
        scratch = Path(tmp)
        cached = measure(args.runs, scratch, bytecode=True)
        compiled = measure(args.runs, scratch, bytecode=False)
    report(cached, compiled, args.runs)


if __name__ == "__main__":
    main()
