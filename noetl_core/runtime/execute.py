"""Run a step's tool, or its pipeline of tasks, under the tool's policy rules.

The result is a `StepRun`: a final output (ok or error, with the policy's `set`), a
retry (a new attempt after a delay, never a sleeping worker), or a child execution to
start. Pipelines remember the tasks already done, so a retried task resumes where it
failed instead of re-running the whole pipeline.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import templating
from ..engine import policy
from ..engine.scope import ERROR, OK, Patches, merge, render_set, with_ctx
from ..errors import NoetlError, ToolError
from ..keychain import Secrets
from ..playbook.model import Step, Task, Tool
from ..templating import ResultView
from ..tools import registry
from ..tools.base import StartChild, ToolCall, ToolServices, Wait

MAX_JUMPS = 1000
MAX_LOG_CHARS = 64 * 1024  # stdout kept per step record
FAILED_STATUSES = ("error", "failed")  # a result's `status` that fails under fail_on_status


@dataclass
class StepRun:
    status: str  # ok | error | retry | child | wait | continue (a pipeline after a child)
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
    secrets: Secrets | None = None
    tables: Callable[[str], Any] | None = None


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
    spec_extra = tool.spec.model_extra or {}
    if "timeout" in spec_extra and "timeout" not in fields:  # upstream's `spec.timeout`
        fields["timeout"] = spec_extra["timeout"]
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
        secrets=inv.secrets,
        tables=inv.tables,
    )
    try:
        value = module.run(call)
    except NoetlError as exc:
        exc.captured = call.log.getvalue()
        raise
    except ModuleNotFoundError as exc:
        if exc.name not in OPTIONAL_DRIVERS:
            raise
        raise ToolError(
            f"{where}: tool kind {tool.kind} needs {exc.name}, which is not installed: run "
            f"`.venv/bin/pip install -e '.[{OPTIONAL_DRIVERS[exc.name]}]'` (or `make dev`)",
            tool_kind=tool.kind,
            code="missing_dependency",
        ) from None
    return value, call.log.getvalue()


# drivers of tool kinds that the base install leaves out, and the extra that brings each
OPTIONAL_DRIVERS = {"psycopg": "postgres", "duckdb": "duckdb", "boto3": "aws"}


def output_of(
    status: str, value: Any, error: dict[str, Any] | None, attempt: int, started: float
) -> dict[str, Any]:
    duration = round((time.perf_counter() - started) * 1000, 3)
    out = {
        "status": OK if status == "ok" else ERROR,
        "data": value,
        "result": value,
        "error": error,
        "meta": {"attempt": attempt, "duration_ms": duration},
    }
    if error is not None:
        for key in ("http", "pg", "py"):
            if key in error:
                out[key] = error[key]
    return out


def fails_on_status(tool: Tool, step: Step) -> bool:
    """Whether a result `{status: error | failed}` fails the tool (the tool's or task's
    `spec.fail_on_status`, else the step's): by default it is data, as upstream has it."""
    own = (tool.spec.model_extra or {}).get("fail_on_status")
    if own is None and step.spec is not None:
        own = (step.spec.model_extra or {}).get("fail_on_status")
    return own is True


def status_error(where: str, kind: str, value: dict[str, Any]) -> dict[str, Any]:
    said = value.get("message") or value.get("error") or "the result's status is failed"
    return {
        "kind": kind,
        "code": "result_status",
        "retryable": False,
        "message": f"{where}: result status {value.get('status')!r}: {said}",
        "data": value,
    }


def attempt_tool(
    tool: Tool,
    extra_input: Mapping[str, Any],
    names: Mapping[str, Any],
    inv: Invocation,
    where: str,
    context: Mapping[str, Any] | None = None,
    fail_on_status: bool = False,
) -> tuple[dict[str, Any], str]:
    started = time.perf_counter()
    try:
        value, log = call_tool(tool, extra_input, names, inv, where, context)
    except NoetlError as exc:
        return output_of("error", None, exc.to_dict(), inv.attempt, started), exc.captured
    if isinstance(value, StartChild):
        return {"status": "child", "child": value}, log
    if isinstance(value, Wait):
        return {"status": "wait", "seconds": value.seconds}, log
    if fail_on_status and isinstance(value, dict) and value.get("status") in FAILED_STATUSES:
        error = status_error(where, tool.kind, value)
        return output_of("error", None, error, inv.attempt, started), log
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
    strict = fails_on_status(tool, step)
    output, log = attempt_tool(tool, step_input, names, inv, where, context, strict)
    if output["status"] == "child":
        return StepRun("child", child=output["child"], log=log)
    if output["status"] == "wait":
        return StepRun("wait", delay=float(output["seconds"]), log=log)
    run = conclude(tool, output, names, inv, where)
    run.log = log
    return run


@dataclass
class PipelineState:
    """Where a pipeline is: the next task, the results so far, the ctx and iter patches
    its tasks made. A retry saves it, so the retried attempt resumes here."""

    index: int = 0
    done: dict[str, Any] = field(default_factory=dict)
    ctx: dict[str, Any] = field(default_factory=dict)
    iter: dict[str, Any] = field(default_factory=dict)
    prev: Any = None

    @classmethod
    def resumed(cls, saved: Mapping[str, Any] | None, tasks: list[Task]) -> PipelineState:
        saved = saved or {}
        state = cls(
            int(saved.get("index", 0)),
            dict(saved.get("tasks", {})),
            dict(saved.get("ctx", {})),
            dict(saved.get("iter", {})),
        )
        if state.index > 0:
            state.prev = state.done.get(tasks[state.index - 1].name)
        return state

    def saved(self) -> dict[str, Any]:
        return {"index": self.index, "tasks": self.done, "ctx": self.ctx, "iter": self.iter}

    def scope(self, names: Mapping[str, Any]) -> dict[str, Any]:
        views = {n: ResultView(v) for n, v in self.done.items()}
        out = {**with_ctx(names, self.ctx), **views, "_prev": ResultView(self.prev)}
        out["iter"] = merge(names.get("iter") or {}, self.iter)
        return out

    def absorb(
        self,
        task: Task,
        run: StepRun,
        scope: Mapping[str, Any],
        output: Mapping[str, Any],
        where: str,
    ) -> None:
        self.done[task.name] = self.prev = run.value
        result = ResultView(run.value)
        # A task's `set` reads the task's result as `output` / `result` (as upstream's
        # pipelines do); the policy envelope stays `outcome`.
        task_scope = {
            **scope,
            task.name: result,
            "_prev": result,
            "output": result,
            "result": result,
            "outcome": output,
        }
        own = render_set(task.set, task_scope, f"{where}.set")
        for patch in (run.patches, own):
            self.ctx = merge(self.ctx, patch.ctx)
            self.iter = merge(self.iter, patch.iter)


def run_pipeline(
    step: Step,
    tasks: list[Task],
    step_input: Mapping[str, Any],
    names: Mapping[str, Any],
    inv: Invocation,
    context: Mapping[str, Any] | None,
    resume: Mapping[str, Any] | None,
) -> StepRun:
    state = PipelineState.resumed(resume, tasks)
    logs: list[str] = []
    jumps = 0
    while state.index < len(tasks):
        task = tasks[state.index]
        where = f"step {step.step}: tool[{state.index}] ({task.name})"
        scope = state.scope(names)
        strict = fails_on_status(task, step)
        output, log = attempt_tool(task, step_input, scope, inv, where, context, strict)
        logs.append(log)
        if output["status"] == "child":  # the pipeline goes on when the child ends
            resume = state.saved()
            return StepRun("child", child=output["child"], resume=resume, log="".join(logs))
        if output["status"] == "wait":
            raise ToolError(
                f"{where}: a wait tool cannot run inside a pipeline",
                tool_kind="wait",
                code="wait_in_pipeline",
            )
        run = conclude(task, output, scope, inv, where)
        if run.status in ("retry", "error"):
            run.resume = state.saved() if run.status == "retry" else None
            run.log = "".join(logs)
            return run
        state.absorb(task, run, scope, output, where)
        action = run.meta.get("action")
        if action == "break":
            break
        if action == "jump":
            jumps += 1
            if jumps > MAX_JUMPS:
                error = {
                    "kind": "policy",
                    "code": "too_many_jumps",
                    "retryable": False,
                    "message": f"{where}: more than {MAX_JUMPS} jumps",
                }
                return StepRun("error", error=error, log="".join(logs))
            state.index = [t.name for t in tasks].index(str(run.meta.get("to")))
            continue
        state.index += 1
    patches = Patches(ctx=state.ctx, iter=state.iter)
    return StepRun("ok", value=state.prev, patches=patches, log="".join(logs))


def child_task_done(
    step: Step,
    tasks: list[Task],
    saved: Mapping[str, Any],
    output: dict[str, Any],
    names: Mapping[str, Any],
    inv: Invocation,
) -> StepRun:
    """A pipeline's playbook task ended with `output` (its child's end): the task's
    policy judges it; a retry runs the child again; otherwise the pipeline goes on at the
    next task (or the one a `jump` names) in a new attempt (`status: continue`, `resume`
    saved), or ends here (`break`, the last task) with the step's result."""
    state = PipelineState.resumed(saved, tasks)
    task = tasks[state.index]
    where = f"step {step.step}: tool[{state.index}] ({task.name})"
    scope = state.scope(names)
    run = conclude(task, output, scope, inv, where)
    if run.status == "retry":
        run.resume = state.saved()
        return run
    if run.status == "error":
        return run
    state.absorb(task, run, scope, output, where)
    action = run.meta.get("action")
    if action == "jump":
        state.index = [t.name for t in tasks].index(str(run.meta.get("to")))
    else:
        state.index += 1
    if action == "break" or state.index >= len(tasks):
        patches = Patches(ctx=state.ctx, iter=state.iter)
        return StepRun("ok", value=state.prev, patches=patches)
    return StepRun("continue", resume=state.saved())


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
