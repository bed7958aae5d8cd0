"""`shell`: run shell programs in a subprocess, as upstream NoETL's `kind: shell` does.

Each program of `cmds` (or the one `cmd` / `command`) runs as `/bin/sh -c <program>`,
one after the other, in `cwd`, with a timeout each (`timeout_seconds`, else `timeout` /
`spec.timeout`, else 600 s). The programs see only `PATH` and the variables of `env`:
never the worker's environment, which holds the platform's own settings. Output is
captured. The result is upstream's `data`: `{returncode, stdout, stderr, commands:
[{cmd_preview, returncode, stdout, stderr, duration_ms}], duration_ms}`.

A program exiting non-zero stops the rest and fails the step with code `exit_status`, its
stderr in the message and the captured output in `error.shell`; a program out of time is
killed with its process group (code `timeout`, retryable).
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from typing import Any

from ..errors import ToolError
from ..toolspec.shell import RAW_FIELDS as RAW_FIELDS
from ..toolspec.shell import validate as validate
from .base import ToolCall

KIND = "shell"
SHELL = "/bin/sh"
DEFAULT_TIMEOUT = 600.0
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MAX_STDERR_IN_MESSAGE = 2000
_running: dict[int, tuple[str, subprocess.Popen[bytes]]] = {}  # pid -> (execution, process)
_running_lock = threading.Lock()


def run(call: ToolCall) -> dict[str, Any]:
    fields = call.fields
    problems = validate(fields)
    if problems:
        text = "; ".join(f"{path}: {message}" for path, message in problems)
        raise ToolError(f"step {call.step}: shell: {text}", tool_kind=KIND, code="invalid_request")
    programs = _programs(fields)
    seconds = _timeout(call)
    env = _env(call, fields.get("env"))
    cwd = fields.get("cwd") or None
    done: list[dict[str, Any]] = []
    started = time.monotonic()
    for program in programs:
        preview = _preview(program)
        outcome = _run_one(call, program, env, cwd, seconds)
        done.append({"cmd_preview": preview, **outcome})
        call.log.write(f"$ {preview} -> {outcome['returncode']}\n")
        if outcome["returncode"] != 0:
            data = _data(done, started)
            if outcome.get("timed_out"):
                raise ToolError(
                    f"step {call.step}: shell command timed out after {seconds:g} s "
                    f"(killed): {preview}",
                    tool_kind=KIND,
                    code="timeout",
                    retryable=True,
                    details={"shell": data},
                )
            stderr = outcome["stderr"].strip()
            if len(stderr) > MAX_STDERR_IN_MESSAGE:
                stderr = "..." + stderr[-MAX_STDERR_IN_MESSAGE:]
            raise ToolError(
                f"step {call.step}: shell command exited with status {outcome['returncode']}: "
                f"{preview}" + (f": {stderr}" if stderr else ""),
                tool_kind=KIND,
                code="exit_status",
                details={"shell": data},
            )
    return _data(done, started)


def _programs(fields: dict[str, Any]) -> list[str]:
    """`cmds` as a list of programs; one program as `cmds`, `cmd` or `command` (upstream
    takes a string under any of the three)."""
    for key in ("cmds", "cmd", "command"):
        value = fields.get(key)
        if isinstance(value, list):
            return [str(c) for c in value]
        if value is not None:
            return [str(value)]
    return []


def _timeout(call: ToolCall) -> float:
    raw = call.fields.get("timeout_seconds")
    if raw is None:
        return call.timeout() or DEFAULT_TIMEOUT
    try:
        seconds = float(raw)
    except (TypeError, ValueError):
        seconds = -1.0
    if not seconds > 0:
        raise ToolError(
            f"step {call.step}: `timeout_seconds` must be a positive number, got {raw!r}",
            tool_kind=KIND,
            code="bad_timeout",
        )
    return seconds


def _env(call: ToolCall, given: Any) -> dict[str, str]:
    if given is not None and not isinstance(given, dict):
        raise ToolError(
            f"step {call.step}: `env` must map names to values, got {type(given).__name__}",
            tool_kind=KIND,
            code="invalid_request",
        )
    env = {"PATH": os.environ.get("PATH", DEFAULT_PATH)}
    for key, value in (given or {}).items():
        if value is not None:
            env[str(key)] = value if isinstance(value, str) else _text(value)
    return env


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        import json

        return json.dumps(value, default=str)
    return str(value)


def _preview(program: str) -> str:
    lines = program.strip().splitlines()
    return lines[0][:120] if lines else ""


def _run_one(
    call: ToolCall, program: str, env: dict[str, str], cwd: str | None, seconds: float
) -> dict[str, Any]:
    began = time.monotonic()
    try:
        process = subprocess.Popen(
            [SHELL, "-c", program],
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group: a timeout kills its children
        )
    except OSError as exc:
        raise ToolError(
            f"step {call.step}: shell cannot start: {exc.strerror}"
            + (f" (cwd {cwd!r})" if cwd else ""),
            tool_kind=KIND,
            code="cannot_start",
        ) from None
    timed_out = False
    with _running_lock:
        _running[process.pid] = (call.execution_id, process)
    try:
        out, err = process.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill(process)
        out, err = process.communicate()
    finally:
        with _running_lock:
            _running.pop(process.pid, None)
    outcome: dict[str, Any] = {
        "returncode": -1 if timed_out else process.returncode,
        "stdout": out.decode("utf-8", "replace"),
        "stderr": err.decode("utf-8", "replace"),
        "duration_ms": int((time.monotonic() - began) * 1000),
    }
    if timed_out:
        outcome["timed_out"] = True
    return outcome


def _kill(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        process.kill()


def stop(execution_id: str) -> None:
    """Kill the programs running for an execution (it is being abandoned)."""
    with _running_lock:
        mine = [p for owner, p in _running.values() if owner == execution_id]
    for process in mine:
        if process.poll() is None:
            _kill(process)


def _data(done: list[dict[str, Any]], started: float) -> dict[str, Any]:
    commands = [{k: v for k, v in c.items() if k != "timed_out"} for c in done]
    return {
        "returncode": commands[-1]["returncode"] if commands else 0,
        "stdout": "\n".join(c["stdout"] for c in commands if c["stdout"]),
        "stderr": "\n".join(c["stderr"] for c in commands if c["stderr"]),
        "commands": commands,
        "duration_ms": int((time.monotonic() - started) * 1000),
    }
