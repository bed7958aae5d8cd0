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
    output: OutputSpec | None = None


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


class FrameSpec(Strict):
    """Upstream's `loop.spec.frame` (its FramePolicy): how much one cursor slot claims and
    runs before it records progress. Here a frame is one block: up to `max_rows` rows
    claimed, each row's body run, then one record. The other fields are accepted and not
    acted on (docs/language.md, Cursor loops)."""

    max_rows: int = Field(default=1, ge=1)
    max_seconds: float = Field(default=30.0, ge=0)
    max_bytes: int = Field(default=64 * 1024 * 1024, ge=1)
    lease_seconds: float = Field(default=120.0, ge=0)
    heartbeat_seconds: float = Field(default=30.0, ge=0)
    row_concurrency: int = Field(default=1, ge=1)


class LoopSpec(Strict):
    mode: Literal["sequential", "parallel", "cursor"] = "sequential"
    # an int, or a template rendered when the loop starts (`runtime.children.loop_width`)
    max_in_flight: int | str | None = Field(default=None, ge=1)
    policy: dict[str, Any] | None = None  # upstream placement hints (`exec: distributed`)
    frame: FrameSpec | None = None  # cursor loops only


class CursorSpec(Strict):
    """A cursor loop's source (upstream's `loop.cursor`): a claim statement that marks and
    returns the next rows, run against the credential `auth` (or connection fields in
    `options`) until it returns none."""

    kind: str
    auth: str | None = None
    claim: str
    options: dict[str, Any] | None = None


class Loop(Strict):
    in_: str | list[Any] | None = Field(default=None, alias="in")
    cursor: CursorSpec | None = None
    iterator: str = "item"
    spec: LoopSpec = Field(default_factory=LoopSpec)

    @property
    def is_cursor(self) -> bool:
        return self.cursor is not None

    @property
    def width(self) -> int:
        """How many iterations may run at once (a cursor loop: how many slots)."""
        wanted = self.spec.max_in_flight
        if self.cursor is not None:  # a literal (validation refuses a template here)
            return wanted if isinstance(wanted, int) else int(wanted or 1)
        if self.spec.mode == "sequential":
            return 1
        return wanted if isinstance(wanted, int) else 1_000_000

    @property
    def frame_rows(self) -> int:
        """A cursor frame's rows at most (upstream's `frame.max_rows`, default 1)."""
        return self.spec.frame.max_rows if self.spec.frame is not None else 1


# `output.store.kind`: where a step's result goes. `auto` (inline up to the inline limit,
# else by reference), `inline` (in the log, or an error), `payload` (by reference, always);
# upstream's tiers are read as the one this runtime has for them.
STORE_KINDS = {
    "auto": "auto",
    "inline": "inline",
    "eventlog": "inline",
    "payload": "payload",
    "memory": "payload",
    "kv": "payload",
    "disk": "payload",
    "object": "payload",
    "s3": "payload",
    "gcs": "payload",
    "db": "payload",
    "duckdb": "payload",
}


class OutputStore(Open):
    """`kind`, plus upstream's hints (`driver`, `bucket`, `prefix`, `ttl`, `compression`,
    `credential`, `scope`), accepted and not acted on: the payload store is
    `NOETL_PAYLOAD_URL`."""

    kind: str = "auto"

    @property
    def mode(self) -> str:
        return STORE_KINDS.get(self.kind, "auto")


class OutputSpec(Strict):
    """Where a step's result goes (`store`), and which fields of it stay inline beside a
    reference (`select`: names or dotted paths, or upstream's `{path: $.a.b, as: name}`)."""

    store: OutputStore | None = None
    select: list[str | dict[str, Any]] = Field(default_factory=list)
    inline_max_bytes: int | None = Field(default=None, ge=0)
    # upstream hints, accepted and not acted on
    preview_max_bytes: int | None = None
    scope: str | None = None
    accumulate: dict[str, Any] | None = None
    as_: str | None = Field(default=None, alias="as")

    @property
    def mode(self) -> str:
        return self.store.mode if self.store is not None else "auto"

    def selection(self) -> list[tuple[str, tuple[str | int, ...]]]:
        """`select` as (name, path) pairs: `status` -> (status, (status,)); `data.items[0].id`
        -> (id, (data, items, 0, id)); `{path: $.paging.next, as: next}` -> (next, ...)."""
        out: list[tuple[str, tuple[str | int, ...]]] = []
        for item in self.select:
            if isinstance(item, str):
                parts = select_path(item)
                out.append((str(parts[-1]) if parts else item, parts))
            else:
                parts = select_path(str(item.get("path", "")))
                out.append((str(item.get("as") or (parts[-1] if parts else "")), parts))
        return out


def select_path(text: str) -> tuple[str | int, ...]:
    """`$.data.items[0].id` or `data.items[0].id` -> ('data', 'items', 0, 'id')."""
    text = text.strip()
    if text.startswith("$"):
        text = text[1:]
    parts: list[str | int] = []
    for piece in text.replace("[", ".").replace("]", "").split("."):
        if piece:
            parts.append(int(piece) if piece.isdigit() else piece)
    return tuple(parts)


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
    def result_output(self) -> OutputSpec | None:
        """The `output:` that governs the step's recorded result: the step's own (a single
        tool's is moved here), else a pipeline's last task's."""
        if self.output is not None or not isinstance(self.tool, list) or not self.tool:
            return self.output
        return self.tool[-1].output

    @property
    def arcs(self) -> list[Arc]:
        return self.next.arcs if self.next else []


class WorkbookEntry(Strict):
    name: str
    desc: str | None = None
    tool: Tool
    output: OutputSpec | None = None  # upstream writes it in the entry's tool
    # upstream's `assert: {expects: [names], returns: [paths]}` (`tools.workbook`)
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
    # upstream's tracing hints (service name, exporter): accepted and kept, no effect here
    tracing: dict[str, Any] | bool | None = None

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

    def result_output(self, step: Step) -> OutputSpec | None:
        """The `output:` that governs a step's recorded result: the step's (or its last
        task's), else that of the workbook entry a `kind: workbook` tool names."""
        found = step.result_output
        tool = step.tool
        if found is None and not isinstance(tool, list) and tool.kind == "workbook":
            name = tool.fields().get("name")
            entry = self.workbook_entry(name) if isinstance(name, str) else None
            found = entry.output if entry is not None else None
        return found
