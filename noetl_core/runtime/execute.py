"""Run a step's tool, or its pipeline of tasks, under the tool's policy rules.

The result is a `StepRun`: a final output (ok or error, with the policy's `set`), a
retry (a new attempt after a delay, never a sleeping worker), or a child execution to
start. Pipelines remember the tasks already done, so a retried task resumes where it
failed instead of re-running the whole pipeline.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import templating
from ..engine import policy
from ..engine.scope import Patches, merge, render_set, with_ctx
from ..errors import NoetlError, ToolError
from ..playbook.model import Step, Task, Tool
from ..templating import ResultView
from ..tools import registry
from ..tools.base import StartChild, ToolCall, ToolServices

MAX_JUMPS = 1000
MAX_LOG_CHARS = 64 * 1024  # stdout kept per step record


@dataclass
class StepRun:
    status: str  # ok | error | retry | child
    value: Any = None
    error: dict[str, Any] | None = None
    patches: Patches = field(default_factory=Patches)
    delay: float = 0.0
    child: StartChild | None = None
    resume: dict[str, Any] | None = None
    log: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Invocation:
    """Who is calling: the ids a tool gets, and the services it may use."""

    execution_id: str
    command_id: str
    attempt: int
    step: str
    services: ToolServices


def call_tool(
    tool: Tool,
    extra_input: Mapping[str, Any],
    names: Mapping[str, Any],
    inv: Invocation,
    where: str,
    context: Mapping[str, Any] | None = None,
) -> tuple[Any, str]:
    """Render the tool's fields and run it; return (value, captured stdout)."""
    module = registry.module(tool.kind)
    fields = tool.fields()
    raw_input = fields.pop("input", None) or getattr(tool, "input", None) or {}
    tool_input = templating.render(raw_input, names, f"{where}.input")
    rendered = {k: v for k, v in fields.items() if k in module.RAW_FIELDS}
    rendered.update(
        templating.render(
            {k: v for k, v in fields.items() if k not in module.RAW_FIELDS}, names, where
        )
    )
    call = ToolCall(
        kind=tool.kind,
        fields=rendered,
        input={**tool_input, **extra_input},
        step=inv.step,
        execution_id=inv.execution_id,
        command_id=inv.command_id,
        attempt=inv.attempt,
        names=names,
        context=context,
        services=inv.services,
    )
    value = module.run(call)
    return value, call.log.getvalue()


def output_of(
    status: str, value: Any, error: dict[str, Any] | None, attempt: int, started: float
) -> dict[str, Any]:
    duration = round((time.perf_counter() - started) * 1000, 3)
    out = {
        "status": status,
        "data": value,
        "error": error,
        "meta": {"attempt": attempt, "duration_ms": duration},
    }
    if error is not None:
        for key in ("http", "pg", "py"):
            if key in error:
                out[key] = error[key]
    return out


def attempt_tool(
    tool: Tool,
    extra_input: Mapping[str, Any],
    names: Mapping[str, Any],
    inv: Invocation,
    where: str,
    context: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], str]:
    started = time.perf_counter()
    try:
        value, log = call_tool(tool, extra_input, names, inv, where, context)
    except NoetlError as exc:
        log = ""
        return output_of("error", None, exc.to_dict(), inv.attempt, started), log
    if isinstance(value, StartChild):
        return {"status": "child", "child": value}, log
    return output_of("ok", value, None, inv.attempt, started), log


def conclude(
    tool: Tool, output: dict[str, Any], names: Mapping[str, Any], inv: Invocation, where: str
) -> StepRun:
    """Apply the tool's policy to one output."""
    verdict = policy.decide(tool.policy, output, inv.attempt, names, f"{where}.spec.policy")
    scope = {**names, "output": output, "outcome": output, "error": output.get("error")}
    patches = render_set(verdict.set, scope, f"{where}.spec.policy.rules[{verdict.rule}].then.set")
    meta = dict(output.get("meta") or {})
    if verdict.action == "retry":
        return StepRun(
            "retry", error=output.get("error"), delay=verdict.delay, patches=patches, meta=meta
        )
    if verdict.action == "fail":
        error = output.get("error") or {
            "kind": "policy",
            "code": "failed_by_policy",
            "retryable": False,
            "message": f"{where}: failed by policy rule {verdict.rule}",
        }
        if verdict.exhausted:
            error = {**error, "attempts": inv.attempt}
        return StepRun("error", error=error, patches=patches, meta=meta)
    value = output.get("data")
    if output.get("status") == "error":
        value = {"status": "error", "error": output.get("error"), "data": value}
    return StepRun(
        "ok",
        value=value,
        patches=patches,
        meta={**meta, "action": verdict.action, "to": verdict.to},
    )


def run_single(
    step: Step,
    tool: Tool,
    step_input: Mapping[str, Any],
    names: Mapping[str, Any],
    inv: Invocation,
    context: Mapping[str, Any] | None,
) -> StepRun:
    where = f"step {step.step}: tool"
    output, log = attempt_tool(tool, step_input, names, inv, where, context)
    if output["status"] == "child":
        return StepRun("child", child=output["child"], log=log)
    run = conclude(tool, output, names, inv, where)
    run.log = log
    return run


def run_pipeline(
    step: Step,
    tasks: list[Task],
    step_input: Mapping[str, Any],
    names: Mapping[str, Any],
    inv: Invocation,
    context: Mapping[str, Any] | None,
    resume: Mapping[str, Any] | None,
) -> StepRun:
    done: dict[str, Any] = dict((resume or {}).get("tasks", {}))
    index = int((resume or {}).get("index", 0))
    ctx_patch: dict[str, Any] = dict((resume or {}).get("ctx", {}))
    prev = done.get(tasks[index - 1].name) if index > 0 else None
    logs: list[str] = []
    jumps = 0
    while index < len(tasks):
        task = tasks[index]
        where = f"step {step.step}: tool[{index}] ({task.name})"
        views = {n: ResultView(v) for n, v in done.items()}
        scope = {**with_ctx(names, ctx_patch), **views, "_prev": ResultView(prev)}
        output, log = attempt_tool(task, step_input, scope, inv, where, context)
        logs.append(log)
        if output["status"] == "child":
            raise ToolError(
                f"{where}: a playbook tool cannot run inside a pipeline",
                tool_kind="playbook",
                code="child_in_pipeline",
            )
        run = conclude(task, output, scope, inv, where)
        if run.status == "retry":
            run.resume = {"index": index, "tasks": done, "ctx": ctx_patch}
            run.log = "".join(logs)
            return run
        if run.status == "error":
            run.log = "".join(logs)
            return run
        done[task.name] = prev = run.value
        task_scope = {
            **scope,
            task.name: ResultView(run.value),
            "_prev": ResultView(run.value),
            "output": output,
        }
        ctx_patch = merge(ctx_patch, run.patches.ctx)
        ctx_patch = merge(ctx_patch, render_set(task.set, task_scope, f"{where}.set").ctx)
        action = run.meta.get("action")
        if action == "break":
            break
        if action == "jump":
            jumps += 1
            if jumps > MAX_JUMPS:
                return StepRun(
                    "error",
                    error={
                        "kind": "policy",
                        "code": "too_many_jumps",
                        "retryable": False,
                        "message": f"{where}: more than {MAX_JUMPS} jumps",
                    },
                )
            index = [t.name for t in tasks].index(str(run.meta.get("to")))
            continue
        index += 1
    return StepRun("ok", value=prev, patches=Patches(ctx=ctx_patch), log="".join(logs))


def run_step(
    step: Step,
    names: Mapping[str, Any],
    inv: Invocation,
    context: Mapping[str, Any] | None,
    resume: Mapping[str, Any] | None,
) -> StepRun:
    try:
        step_input = templating.render(step.input or {}, names, f"step {step.step}: input")
    except NoetlError as exc:
        return StepRun("error", error=exc.to_dict())
    if isinstance(step.tool, list):
        return run_pipeline(step, step.tool, step_input, names, inv, context, resume)
    return run_single(step, step.tool, step_input, names, inv, context)
