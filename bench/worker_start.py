"""Worker cold start on the emulator stack: from a worker process's start to its first
block's record committed (the push request answered), median of fresh processes.

For each run: an execution of a 2-step chain is started (its first command recorded and
its note captured, not pushed); then a new worker process is started the way the stack
serves functions (`python -m functions_framework --target worker`), and as soon as its
port accepts connections the note is pushed to it in Pub/Sub's push format, as the push
subscription would. Modules run from cached bytecode, as an installed package's do (the
first, unmeasured run of each tree fills a private cache). The figure is the time from
starting the process to the 200 answer: the worker answers after the block's record is
committed and its successor published.
Two parts are printed too: process start to port open (imports), and port open to the
answer (the first block, Google clients built on the first message).

`--root DIR` measures another checkout of this repository (e.g. a `git worktree` of an
earlier commit): the execution is started and the worker served by that tree's code,
against this tree's emulator stack. `make bench` measures this tree and the commit
before the cold-start work (BEFORE), side by side.

`python bench/worker_start.py [--runs N] [--root DIR | --before COMMIT]`
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from emulators.processes import free_port  # noqa: E402
from emulators.stack import HOST, EmulatorStack  # noqa: E402

BEFORE = "1a9e346"  # the last commit before the cold-start work of issue 8
TARGET_CUT = 0.40
READY_TIMEOUT_S = 60.0

# Run by the measured tree's interpreter path: start executions, print their first notes.
STARTER = r"""
import base64, json, os, sys
import noetl_core
from noetl_core import cloud, settings
from noetl_core.adapters.gcp.pubsub_bus import encode
from noetl_core.playbook import load_text
from bench.run import chain_playbook

assert noetl_core.__file__.startswith(sys.argv[2]), noetl_core.__file__
rt = cloud.build(settings.load(dict(os.environ)))
captured = []
rt.bus.publish = captured.extend
loaded = load_text(chain_playbook(2))  # bench/run.py of the tree measured
for _ in range(int(sys.argv[1])):
    rt.start(loaded, {})
print(json.dumps([base64.b64encode(encode(note)).decode() for note in captured]))
"""


def tree_env(stack: EmulatorStack, root: Path, home: Path, worker_url: str) -> dict[str, str]:
    env = stack.function_env(
        {
            "NOETL_PAYLOAD_URL": f"gs://{stack.bucket}/coldworker",
            "NOETL_HOME": str(home),
            "NOETL_WORKER_URL": worker_url,
            "NOETL_CALLBACK_URL": f"http://{HOST}:{free_port(HOST)}",
            "NOETL_CALLBACK_KEY": "cold-start-bench-key-0123456789abcdef",
            "NOETL_TASKS_INVOKER": f"noetl-invoker@{stack.project}.iam.gserviceaccount.com",
            "K_SERVICE": "worker",
            "FUNCTION_TARGET": "worker",
        }
    )
    env["PYTHONPATH"] = str(root)
    # Compiled modules cached as an installed package has them (filled by the warm-up
    # run, outside the repository), so neither tree pays for compiling its sources.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(home / "pycache")
    return env


def wait_port(port: int, deadline: float) -> None:
    while time.perf_counter() < deadline:
        try:
            with socket.create_connection((HOST, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.002)
    raise TimeoutError(f"the worker did not listen on port {port}")


def push(port: int, topic: str, data: str) -> int:
    body = {
        "message": {"data": data, "messageId": str(time.time_ns()), "attributes": {}},
        "subscription": "projects/p/subscriptions/worker-push",
    }
    request = urllib.request.Request(
        f"http://{HOST}:{port}/{topic}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=READY_TIMEOUT_S) as answer:
        return int(answer.status)


def measure(stack: EmulatorStack, root: Path, runs: int) -> dict[str, float]:
    """Median ms over `runs` fresh worker processes of `root`: start to port open, port
    open to the first block's answer, and the total."""
    home = Path(tempfile.mkdtemp(prefix="noetl-coldworker-"))
    port = free_port(HOST)
    env = tree_env(stack, root, home, f"http://{HOST}:{port}")
    started = subprocess.run(
        [sys.executable, "-c", STARTER, str(runs + 1), str(root)],
        env=env,
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    notes = json.loads(started.stdout.strip().splitlines()[-1])
    if len(notes) != runs + 1:
        raise RuntimeError(f"expected {runs + 1} notes, got {len(notes)}")
    argv = [
        sys.executable,
        "-m",
        "functions_framework",
        "--target",
        "worker",
        "--signature-type",
        "cloudevent",
        "--source",
        str(root / "functions" / "main.py"),
        "--host",
        HOST,
        "--port",
        str(port),
    ]
    listen, first, total = [], [], []
    for n, note in enumerate(notes):  # the first run warms the page cache and bytecode
        t0 = time.perf_counter()
        process = subprocess.Popen(
            argv, env=env, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            wait_port(port, t0 + READY_TIMEOUT_S)
            t1 = time.perf_counter()
            status = push(port, stack.topic_path("noetl-commands"), note)
            t2 = time.perf_counter()
        finally:
            process.terminate()
            process.wait(timeout=10)
        if status != 200:
            raise RuntimeError(f"the worker answered {status}")
        if n:
            listen.append((t1 - t0) * 1000)
            first.append((t2 - t1) * 1000)
            total.append((t2 - t0) * 1000)
    return {
        "process start -> port open": statistics.median(listen),
        "port open -> first block answered": statistics.median(first),
        "process start -> first block answered": statistics.median(total),
    }


def worktree(commit: str, into: Path) -> Path:
    path = into / f"tree-{commit}"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), commit],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--root", type=Path, default=None, help="measure only this tree")
    parser.add_argument("--before", default=BEFORE, help="the earlier commit to compare with")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="noetl-worker-start-") as tmp, EmulatorStack() as stack:
        trees = {"this tree": args.root or ROOT}
        made: Path | None = None
        if args.root is None and args.before:
            try:
                made = trees[f"commit {args.before}"] = worktree(args.before, Path(tmp))
            except (subprocess.CalledProcessError, OSError) as exc:
                print(f"worker start: no worktree of {args.before} ({exc}); this tree only")
        try:
            figures = {}
            for name, tree in trees.items():
                try:
                    figures[name] = measure(stack, tree, args.runs)
                except subprocess.CalledProcessError as exc:
                    if tree == (args.root or ROOT):
                        raise
                    print(f"worker start: {name} could not start executions:\n{exc.stderr}")
        finally:
            if made is not None:
                subprocess.run(
                    ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(made)],
                    check=False,
                    capture_output=True,
                )
    print(f"worker cold start on the emulator stack, median of {args.runs} fresh processes (ms)")
    names = list(figures)
    print(f"{'':40}" + "".join(f"{n:>18}" for n in names))
    for row in next(iter(figures.values())):
        print(f"{row:40}" + "".join(f"{figures[n][row]:18.1f}" for n in names))
    if len(names) == 2:
        now, before = (figures[n]["process start -> first block answered"] for n in names)
        cut = 1 - now / before
        verdict = "met" if cut >= TARGET_CUT else "NOT met"
        print(f"target: {TARGET_CUT:.0%} less than commit {args.before}: {cut:.1%} less, {verdict}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
