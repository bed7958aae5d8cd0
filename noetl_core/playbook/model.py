"""The records of the noetl.io/v2 playbook language (see docs/language.md).

The models describe the canonical form; `normalize.py` turns the lenient forms upstream
accepts into it before validation, and `validate.py` checks what a schema cannot
(unique names, arc targets, templates, tool fields).
"""

from __future__ import annotations

from typing import Any, Literal

from .schema import Record
from .schema import field as Field


class Strict(Record):
    """Unknown keys are problems."""


class Open(Record):
    """Unknown keys are kept (`model_extra`)."""

    extra_allowed = True


Action = Literal["continue", "retry", "fail", "break", "jump"]


class RuleAction(Strict):
    do: Action
    attempts: int = Field(default=3, ge=1)
    backoff: Literal["none", "fixed", "linear", "exponential"] = "none"
    delay: float = Field(default=0.0, ge=0)
    max_delay: float | None = Field(default=None, ge=0)
    to: str | None = None
    set: dict[str, Any] | None = None
    set_ctx: dict[str, Any] | None = None
    set_iter: dict[str, Any] | None = None

    @property
    def assignments(self) -> dict[str, Any] | None:
        """`set`, with upstream's `set_ctx` / `set_iter` folded in as scoped keys."""
        if self.set_ctx is None and self.set_iter is None:
            return self.set
        out = dict(self.set or {})
        out.update({f"ctx.{k}": v for k, v in (self.set_ctx or {}).items()})
        out.update({f"iter.{k}": v for k, v in (self.set_iter or {}).items()})
        return out


class PolicyRule(Strict):
    when: str | bool | None = None
    then: RuleAction
    is_else: bool = False


class Policy(Strict):
    rules: list[PolicyRule] = Field(default_factory=list)


class ToolSpec(Open):
    policy: Policy | None = None


class Tool(Open):
    """A tool call: `kind` plus the tool's own fields (kept as extra fields)."""

    kind: str
    spec: ToolSpec = Field(default_factory=ToolSpec)

    def fields(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    @property
    def policy(self) -> Policy | None:
        return self.spec.policy


class Task(Tool):
    """One task of a pipeline (`tool:` given as a list)."""

    name: str
    input: dict[str, Any] | None = None
    set: dict[str, Any] | None = None


class Arc(Strict):
    step: str
    when: str | bool | None = None
    set: dict[str, Any] | None = None
    args: dict[str, Any] | None = None  # rendered here, read by the target as `{{ args }}`


# `next.spec.on_no_match`: a successful step none of whose arcs match ends its branch
# (upstream's `complete` (its default) and `quiet`, and `end` / `continue`), or, with
# `fail` / `error` (this runtime's), fails with `no_arc_matched`
NO_MATCH_FAILS = frozenset({"fail", "error"})


class NextSpec(Strict):
    mode: Literal["exclusive", "inclusive"] = "exclusive"
    on_no_match: Literal["complete", "quiet", "end", "continue", "fail", "error"] | None = None


class Next(Strict):
    spec: NextSpec = Field(default_factory=NextSpec)
    arcs: list[Arc] = Field(default_factory=list)


class LoopSpec(Strict):
    mode: Literal["sequential", "parallel"] = "sequential"
    # an int, or a template rendered when the loop starts (`engine.loops.width_of`)
    max_in_flight: int | str | None = Field(default=None, ge=1)
    policy: dict[str, Any] | None = None  # upstream placement hints (`exec: distributed`)


class Loop(Strict):
    in_: str | list[Any] = Field(alias="in")
    iterator: str = "item"
    spec: LoopSpec = Field(default_factory=LoopSpec)

    @property
    def width(self) -> int:
        """How many iterations may run at once."""
        if self.spec.mode == "sequential":
            return 1
        wanted = self.spec.max_in_flight
        return wanted if isinstance(wanted, int) else 1_000_000


class OutputSpec(Strict):
    select: list[str] = Field(default_factory=list)


class StepSpec(Open):
    """Upstream's step hints (admission policy, lifecycle, timeouts): accepted, not acted on
    by this runtime yet."""


class Step(Strict):
    step: str
    desc: str | None = None
    spec: StepSpec | None = None
    input: dict[str, Any] | None = None
    loop: Loop | None = None
    tool: Tool | list[Task]
    set: dict[str, Any] | None = None
    next: Next | None = None
    output: OutputSpec | None = None
    # upstream's tracing hints: recorded in the step's command entries, no other effect
    tracing: dict[str, Any] | bool | None = None

    @property
    def is_pipeline(self) -> bool:
        return isinstance(self.tool, list)

    @property
    def arcs(self) -> list[Arc]:
        return self.next.arcs if self.next else []


class WorkbookEntry(Strict):
    name: str
    desc: str | None = None
    tool: Tool
    # upstream's `assert: {expects: [...], returns: [...]}`: accepted, not enforced
    assert_: dict[str, Any] | None = Field(default=None, alias="assert")


class Metadata(Open):
    name: str
    path: str | None = None
    version: int | str | None = None
    description: str | None = None


class ExecutorSpec(Open):
    entry_step: str | None = None


class Executor(Open):
    spec: ExecutorSpec = Field(default_factory=ExecutorSpec)


class Playbook(Strict):
    api_version: Literal["noetl.io/v2"] = Field(alias="apiVersion")
    kind: Literal["Playbook"]
    metadata: Metadata
    executor: Executor = Field(default_factory=Executor)
    workload: dict[str, Any] = Field(default_factory=dict)
    keychain: list[dict[str, Any]] = Field(default_factory=list)
    workbook: list[WorkbookEntry] = Field(default_factory=list)
    workflow: list[Step] = Field(min_length=1)

    def step_named(self, name: str) -> Step:
        """O(1): the steps by name, built on first use."""
        by_name: dict[str, Step] | None = self.__dict__.get("_by_name")
        if by_name is None:
            by_name = {step.step: step for step in self.workflow}
            object.__setattr__(self, "_by_name", by_name)
        found = by_name.get(name)
        if found is None:
            raise KeyError(name)
        return found

    @property
    def entry_step(self) -> str:
        explicit = self.executor.spec.entry_step
        if explicit:
            return explicit
        names = [s.step for s in self.workflow]
        return "start" if "start" in names else names[0]

    def workbook_entry(self, name: str) -> WorkbookEntry | None:
        return next((w for w in self.workbook if w.name == name), None)
