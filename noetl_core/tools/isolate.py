"""Code that must be stoppable runs in a child process: a python step with a timeout.

A thread running Python cannot be stopped from outside; a process can. Children are
forked by a `forkserver` (a clean, single-threaded process started on the first use and
kept for the life of this one, with the python tool preloaded), so a child starts in a
few milliseconds without inheriting the worker's threads and locks. The step's input,
the code and the names it uses go to the child by pickle; its result, its standard
output and its failure come back the same way. When the time is up, or the execution is
abandoned (`stop`), the child is killed and the step fails with code `timeout`
(retryable, like an HTTP timeout: a policy can retry it).
"""

from __future__ import annotations

import io
import multiprocessing
import threading
from collections.abc import Callable
from typing import Any

from ..errors import ToolError
from .base import ToolCall

_context: Any = None
_context_lock = threading.Lock()
_running: dict[int, tuple[str, Any]] = {}  # child pid -> (execution id, process)
_running_lock = threading.Lock()


def _forkserver() -> Any:
    global _context
    with _context_lock:
        if _context is None:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["noetl_core.tools.python"])
            _context = context
        return _context


def _child(connection: Any, target: Callable[..., Any], args: tuple[Any, ...]) -> None:
    log = io.StringIO()
    try:
        value = target(*args, log)
        answer: tuple[Any, ...] = ("ok", value, log.getvalue())
    except ToolError as exc:
        answer = ("error", exc.message, exc.code, exc.retryable, exc.details, log.getvalue())
    try:
        connection.send(answer)
    except Exception as exc:  # the result cannot be pickled: say so, do not hang
        message = f"the step's result cannot leave its process: {type(exc).__name__}: {exc}"
        connection.send(("error", message, "unpicklable_result", False, {}, log.getvalue()))
    connection.close()


def run(
    call: ToolCall,
    seconds: float,
    target: Callable[..., Any],
    code: str,
    filename: str,
    libs: Any,
    context: dict[str, Any],
) -> Any:
    """`target(code, filename, step, libs, input, context, log)` in a child process,
    killed after `seconds`."""
    context_of = _forkserver()
    receive, send = context_of.Pipe(duplex=False)
    args = (code, filename, call.step, libs, dict(call.input), context)
    process = context_of.Process(target=_child, args=(send, target, args), daemon=True)
    process.start()
    send.close()
    with _running_lock:
        _running[process.pid] = (call.execution_id, process)
    try:
        answer = receive.recv() if receive.poll(seconds) else None
    except EOFError:  # the child died without answering (killed by `stop`, or crashed)
        answer = ("error", "the step's process ended without an answer", "abandoned")
        answer += (False, {"exit_code": process.exitcode}, "")
    finally:
        with _running_lock:
            _running.pop(process.pid, None)
        if process.is_alive():
            process.kill()
        process.join()
        receive.close()
    if answer is None:
        raise ToolError(
            f"step {call.step}: timed out after {seconds:g} s (the code was stopped)",
            tool_kind="python",
            code="timeout",
            retryable=True,
        )
    if answer[0] == "ok":
        call.log.write(answer[2])
        return answer[1]
    _, message, error_code, retryable, details, log = answer
    call.log.write(log)
    raise ToolError(
        message, tool_kind="python", code=error_code, retryable=retryable, details=details
    )


def stop(execution_id: str) -> None:
    """Kill the children running steps of an execution (it is being abandoned)."""
    with _running_lock:
        mine = [p for owner, p in _running.values() if owner == execution_id]
    for process in mine:
        if process.is_alive():
            process.kill()
