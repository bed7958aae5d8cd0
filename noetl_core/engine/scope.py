"""The names a template sees, and how `set` changes them (pure).

Layering of bare names, later wins: workload keys, ctx keys, step results, loop names,
then block-local names (`output`, `error`, `event`, `step`, `_prev`, task names).

`set` keys are scoped: `ctx.x` (execution-wide, travels with the flow), `iter.x` (this
iteration), `step.x` (this step's arcs). A key without a scope means `ctx.`. Dotted keys
below the scope set nested fields (`ctx.page.next: 2`). All values of one `set` are
rendered against the names as they were before it, then applied in order.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import templating
from ..errors import TemplateError
from ..templating import ResultView
from .versions import CtxScope


class Alias(str):
    """A name that also equals upstream's synonyms for it: `{{ event.name ==
    'step.failed' }}` holds where this project says `call.error`."""

    synonyms: frozenset[str]

    def __new__(cls, name: str, *synonyms: str) -> Alias:
        made = super().__new__(cls, name)
        made.synonyms = frozenset((name, *synonyms))
        return made

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            return other in self.synonyms
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    __hash__ = str.__hash__


DONE = Alias("call.done", "step.done", "step.exit", "command.completed")
FAILED = Alias("call.error", "step.failed", "command.failed")
LOOP_DONE = Alias("loop.done", "call.done", "step.done", "step.exit")
OK = Alias("ok", "success")
ERROR = Alias("error", "failed")


@dataclass
class Patches:
    ctx: dict[str, Any] = field(default_factory=dict)
    iter: dict[str, Any] = field(default_factory=dict)
    step: dict[str, Any] = field(default_factory=dict)


def context(
    *,
    workload: Mapping[str, Any],
    ctx: Mapping[str, Any],
    results: Mapping[str, ResultView],
    execution_id: str,
    parent_execution_id: str | None,
    loop: Mapping[str, Any] | None = None,
    local: Mapping[str, Any] | None = None,
    bare: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The names of one block. `ctx` is a plain mapping of `set` values (merged over the
    workload here, every key also bare) or a `CtxScope` read lazily, whose bare names
    the caller passes in `bare` (only those its templates read)."""
    merged_ctx: Mapping[str, Any]
    if isinstance(ctx, CtxScope):
        merged_ctx = ctx
        names: dict[str, Any] = {**(bare or {}), **results}
    else:
        merged_ctx = merge(workload, ctx)
        names = {**merged_ctx, **results}
    if loop:
        names.update(loop)
    names.update(
        workload=dict(workload),
        ctx=merged_ctx,
        execution_id=execution_id,
        parent_execution_id=parent_execution_id,
    )
    if local:
        names.update(local)
    return names


def loop_names(
    iterator: str, item: Any, index: int, length: int, patch: Mapping[str, Any]
) -> dict[str, Any]:
    first, last = index == 0, index == length - 1
    it = {"index": index, iterator: item, "_index": index, "_first": first, "_last": last, **patch}
    return {
        iterator: item,
        "iter": it,
        "loop": {"index": index, "first": first, "last": last, "length": length},
        "loop_index": index,
    }


def render_set(
    assignments: Mapping[str, Any] | None, names: Mapping[str, Any], where: str
) -> Patches:
    patches = Patches()
    if not assignments:
        return patches
    for key, template in assignments.items():
        value = templating.render(template, names, f"{where}.{key}")
        scope, _, rest = key.partition(".")
        if scope not in ("ctx", "iter", "step") or not rest:
            scope, rest = "ctx", key
        target = getattr(patches, scope)
        _assign(target, rest.split("."), value, f"{where}.{key}")
    return patches


def _assign(target: dict[str, Any], parts: list[str], value: Any, where: str) -> None:
    node = target
    for part in parts[:-1]:
        existing = node.get(part)
        if existing is None:
            existing = node[part] = {}
        if not isinstance(existing, dict):
            raise TemplateError(
                f"{where}: cannot set a field below {part!r}, which is not a mapping"
            )
        node = existing
    node[parts[-1]] = value


def with_ctx(names: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """`names` after a ctx patch: `ctx` and the bare names it covers (step results,
    which shadow ctx keys, keep shadowing them)."""
    if not patch:
        return dict(names)
    out = dict(names)
    current = names.get("ctx", {})
    out["ctx"] = current.patched(patch) if isinstance(current, CtxScope) else merge(current, patch)
    for key in patch:
        if not isinstance(out.get(key), ResultView):
            out[key] = out["ctx"][key]
    return out


def merge_value(old: Any, new: Any) -> Any:
    """One ctx key's value after a later `set`: mappings merge deeply, else replace."""
    if isinstance(new, dict) and isinstance(old, Mapping):
        return merge(old, new)
    return new


def merge(base: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge `patch` over `base` (mappings merge, everything else replaces)."""
    out = copy.copy(dict(base))
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def set_names(assignments: Mapping[str, Any] | None) -> set[str]:
    return templating.names(dict(assignments)) if assignments else set()
