"""`python`: run inline code with the step's input as global names.

The result is, in order: a global `result` set by the code; else the return value of
`def main(...)`, called with the input keys it names; else the value of a top-level
`return` (the code is then run as a function body). A result
`{"status": "failed" | "error", ...}` is data, as upstream records it; it fails the step
only under `spec.fail_on_status: true` (`runtime.execute`). Standard output goes to the step's
log. Code also comes from `script: {source: {type: inline, code}}` (a template, rendered
when the step runs; a file script is embedded as `code` at load: `playbook.scripts`), and
`libs: {alias: module}` imports modules into the code's globals (a list under `libs` names
packages to install; this runtime does not install packages, so the list is ignored).

Without a `timeout` (`spec.timeout` or the tool's own), the code runs in the worker's
thread: no cost beyond the call. With one, it runs in a child process forked from a
clean server process (`isolate`, ~5-10 ms per step on a 2-core machine), killed when the
time is up: a thread running Python cannot be stopped, a process can. Anything the code
raises, `SystemExit` and `KeyboardInterrupt` included, is the step's failure.
"""

from __future__ import annotations

import builtins
import hashlib
import importlib
import inspect
import io
import traceback
from collections.abc import Mapping
from typing import Any

from .. import templating
from ..errors import ToolError
from ..toolspec.python import RAW_FIELDS as RAW_FIELDS
from ..toolspec.python import _compile
from ..toolspec.python import validate as validate
from .base import ToolCall
from .capture import stdout_to

FILENAME = "<step {step} {digest}>"
_UNSET = object()


def source_of(call: ToolCall) -> str:
    """The code to run: `code`, or an inline script's code rendered as a template (a
    file script was embedded as `code` when the playbook was loaded)."""
    fields = call.fields
    if isinstance(fields.get("code"), str):
        return str(fields["code"])
    source = fields["script"]["source"]
    kind = source["type"]
    if kind == "inline":
        where = f"step {call.step}: script.source.code"
        return str(templating.render(str(source.get("code", "")), call.names, where))
    if kind == "file":
        raise ToolError(
            f"step {call.step}: a file script is read when the playbook is loaded (it is "
            "then the tool's `code`), never by a step",
            tool_kind="python",
            code="unsupported_source",
        )
    raise ToolError(
        f"step {call.step}: script source type {kind!r} needs the Google Cloud runtime",
        tool_kind="python",
        code="unsupported_source",
    )


def run(call: ToolCall) -> Any:
    """Run the step's code in this thread, or, with a `timeout`, in a process of its own
    that is killed when the time is up (`isolate`)."""
    code = source_of(call)
    filename = FILENAME.format(step=call.step, digest=hashlib.sha256(code.encode()).hexdigest()[:8])
    libs = call.fields.get("libs") or {}
    context = call.context or call.names
    timeout = call.timeout()
    if timeout is not None:
        from . import isolate

        # the child gets copies: `context` (every name in scope) only if the code uses it
        shared = dict(context) if "context" in code else {}
        result = isolate.run(call, timeout, execute, code, filename, libs, shared)
    else:
        result = execute(code, filename, call.step, libs, call.input, context, call.log)
    return result


def execute(
    code: str,
    filename: str,
    step: str,
    libs: Any,
    inputs: Mapping[str, Any],
    context: Any,
    log: io.StringIO,
) -> Any:
    """Run the code; any exception it raises, `SystemExit` and `KeyboardInterrupt`
    included, becomes a ToolError (user code never ends the worker that runs it)."""
    scope: dict[str, Any] = {"__builtins__": builtins, "__name__": "__noetl_step__"}
    for alias, module in libs.items() if isinstance(libs, dict) else ():
        scope[alias] = _import(step, alias, module)
    scope.update(inputs)
    scope.update(input_data=dict(inputs), context=context)
    before = scope.get("result", _UNSET)
    try:
        compiled, as_body = _compile(code, filename)
        with stdout_to(log):
            exec(compiled, scope)
            return _result(scope, before, as_body, dict(inputs))
    except ToolError:
        raise
    except SyntaxError as exc:
        raise ToolError(
            f"step {step}: Python syntax error at code line {exc.lineno}: {exc.msg}",
            tool_kind="python",
            code="SyntaxError",
        ) from None
    except BaseException as exc:
        raise _failure(step, exc, filename) from None


def _import(step: str, alias: str, module: Any) -> Any:
    """`libs: {alias: module}` is `import module as alias`; `{alias: {from: package,
    import: name}}` is `from package import name as alias` (a name of the package, or
    its submodule), as upstream's python tool imports them before running the code."""
    try:
        if isinstance(module, str):
            return importlib.import_module(module)
        package, name = module["from"], module["import"]
        loaded = importlib.import_module(package)
        if hasattr(loaded, name):
            return getattr(loaded, name)
        return importlib.import_module(f"{package}.{name}")
    except ImportError as exc:
        wanted = module if isinstance(module, str) else f"{module['import']} from {module['from']}"
        raise ToolError(
            f"step {step}: libs.{alias}: cannot import {wanted}: {exc}",
            tool_kind="python",
            code="ImportError",
        ) from None


def _result(scope: dict[str, Any], before: Any, as_body: bool, inputs: dict[str, Any]) -> Any:
    if as_body:
        return scope["__noetl_body__"]()
    if "result" in scope and scope["result"] is not before:
        return scope["result"]
    main = scope.get("main")
    if callable(main):
        return main(**_arguments(main, inputs))
    return None


def _arguments(main: Any, inputs: dict[str, Any]) -> dict[str, Any]:
    params = inspect.signature(main).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return dict(inputs)
    return {p.name: inputs[p.name] for p in params if p.name in inputs}


def _failure(step: str, exc: BaseException, filename: str) -> ToolError:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == filename]
    shift = 1 if _is_body(frames) else 0
    lines = [f"line {(f.lineno or 0) - shift}: {f.line}" for f in frames]
    where = f" at code line {(frames[-1].lineno or 0) - shift}" if frames else ""
    return ToolError(
        f"step {step}: {type(exc).__name__}{where}: {exc}",
        tool_kind="python",
        code=type(exc).__name__,
        details={"traceback": lines},
    )


def _is_body(frames: list[traceback.FrameSummary]) -> bool:
    return any(f.name == "__noetl_body__" for f in frames)
