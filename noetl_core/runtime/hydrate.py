"""Hydrate a block: the names its templates read, and nothing more.

The step's templates are parsed once (Jinja's AST) for the names they read; only the
results of steps among those names are put in scope, each as a lazy view that reads
its entry (and its payload, if stored) on first access. The python tool's `context`
is a mapping that can reach every step on the path, loading on access.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from .. import templating
from ..engine import policy, scope
from ..engine.entries import Command
from ..engine.versions import CtxScope, Ref, Tries
from ..playbook.model import Playbook, Step, Tool
from ..templating import ResultView
from ..tools import registry

ViewOf = Callable[[str], ResultView]


def tool_templates(tool: Tool, playbook: Playbook) -> list[Any]:
    fields = tool.fields()
    raw = registry.spec(tool.kind).RAW_FIELDS if tool.kind in registry.KINDS else frozenset()
    found: list[Any] = [{k: v for k, v in fields.items() if k not in raw}]
    found.append(sorted(policy.names(tool.policy)))
    script = fields.get("script")
    if tool.kind == "python" and isinstance(script, dict) and "script" in raw:
        source = script.get("source")
        if isinstance(source, dict) and source.get("type") == "inline":
            found.append({"code": source.get("code")})  # rendered when the step runs
    if tool.kind == "workbook":
        entry = playbook.workbook_entry(str(fields.get("name")))
        if entry is not None:
            found.extend(tool_templates(entry.tool, playbook))
    return found


def step_names(playbook: Playbook, step: Step) -> frozenset[str]:
    """Every name the step's templates read (cache it: see Blueprint)."""
    parts: list[Any] = [step.input, step.set]
    tools = step.tool if isinstance(step.tool, list) else [step.tool]
    for tool in tools:
        parts.extend(tool_templates(tool, playbook))
        parts.append(getattr(tool, "input", None))
        parts.append(getattr(tool, "set", None))
    found = templating.names(*[p for p in parts if p is not None and not isinstance(p, list)])
    for p in parts:
        if isinstance(p, list):
            found |= set(p) if all(isinstance(x, str) for x in p) else templating.names(p)
    for arc in step.arcs:
        found |= templating.condition_names(arc.when) | scope.set_names(arc.set)
    if step.loop is not None:
        if step.loop.in_ is not None:
            found |= templating.names(step.loop.in_)
        if step.loop.cursor is not None:
            cursor = step.loop.cursor
            found |= templating.names(cursor.claim, cursor.auth or "", cursor.options or {})
        found |= templating.names(step.loop.spec.max_in_flight)
    return frozenset(found)


class PathContext(Mapping[str, Any]):
    """The python tool's `context`: the render names, then every step result and ctx
    key on the path, each read from the scope versions on first access. Values are
    copies: the step's code may change them, never what the log and later blocks read."""

    def __init__(
        self, names: Mapping[str, Any], tries: Tries, frame: Mapping[str, Any], view_of: ViewOf
    ):
        self._names = names
        self._tries = tries
        self._results: Ref = frame.get("results")
        self._view_of = view_of
        self._loaded: dict[str, Any] = {}

    def __getitem__(self, key: str) -> Any:
        if key in self._names:
            return templating.unwrap(self._names[key])
        if key not in self._loaded:
            entry_id = self._tries.get(self._results, key)
            if entry_id is not None:
                self._loaded[key] = templating.unwrap(self._view_of(entry_id).value)
            else:
                ctx = self._names.get("ctx")
                if not isinstance(ctx, Mapping) or key not in ctx:
                    raise KeyError(key)
                self._loaded[key] = templating.unwrap(ctx[key])
        return self._loaded[key]

    def _all(self) -> dict[str, None]:
        found = dict.fromkeys(self._names)
        found.update(dict.fromkeys(name for name, _ in self._tries.items(self._results)))
        ctx = self._names.get("ctx")
        if isinstance(ctx, Mapping):
            found.update(dict.fromkeys(ctx))
        return found

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())

    def __bool__(self) -> bool:  # never empty; and truthiness must not list every name
        return True


def names_for(
    *,
    playbook: Playbook,
    command: Command,
    workload: Mapping[str, Any],
    execution_id: str,
    parent_execution_id: str | None,
    view_of: ViewOf,
    wanted: frozenset[str],
    tries: Tries,
) -> dict[str, Any]:
    """The render names of one command: of its scope versions, only the names its
    templates read are looked up; results load lazily."""
    step = playbook.step_named(command.step)
    frame = command.frame
    results = {}
    for name in wanted:
        entry_id = tries.get(frame.get("results"), name)
        if entry_id is not None:
            results[name] = view_of(entry_id)
    ctx = CtxScope(tries, frame.get("ctx"), workload, merge=scope.merge_value)
    bare = {n: ctx[n] for n in wanted if n not in results and n in ctx}
    loop = None
    it = frame.get("iter")
    if it is not None and step.loop is not None and command.length is not None:
        loop = scope.loop_names(step.loop.iterator, it["item"], it["index"], command.length, {})
    names = scope.context(
        workload=workload,
        ctx=ctx,
        results=results,
        execution_id=execution_id,
        parent_execution_id=parent_execution_id,
        loop=loop,
        bare=bare,
    )
    names["args"] = frame.get("args", {})
    names["__playbook__"] = playbook
    return names
