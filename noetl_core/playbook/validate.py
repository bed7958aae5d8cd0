"""What a schema cannot check: names, arc targets, templates, tool fields, pipelines."""

from __future__ import annotations

from typing import Any

from .. import templating
from ..errors import NoetlError, SourceLocation
from ..tools import registry
from . import keychain as keychain_entries
from . import names as step_names
from .model import STORE_KINDS, OutputSpec, Playbook, Policy, Step, Tool, select_path
from .yamlsrc import Path, SourceMap

Problems = list[tuple[SourceLocation, str]]


def semantic_problems(playbook: Playbook, data: dict[str, Any], smap: SourceMap) -> Problems:
    problems: Problems = []

    def add(path: Path, message: str) -> None:
        problems.append((smap.at(path), message))

    names = [s.step for s in playbook.workflow]
    seen: set[str] = set()
    for i, name in enumerate(names):
        why = step_names.problem("step", name)
        if why is not None:
            add(("workflow", i, "step"), why)
        if name in seen:
            add(("workflow", i, "step"), f"step name {name!r} is used twice; names are unique")
        seen.add(name)
    if playbook.entry_step not in seen:
        add(("executor", "spec", "entry_step"), f"entry step {playbook.entry_step!r} is not a step")

    workbook_names = [w.name for w in playbook.workbook]
    for i, entry in enumerate(playbook.workbook):
        if workbook_names.count(entry.name) > 1:
            add(("workbook", i, "name"), f"workbook name {entry.name!r} is used twice")
        _check_tool(entry.tool, ("workbook", i, "tool"), workbook_names, add)
        _check_output(entry.output, ("workbook", i), add)
        _check_assert(entry.assert_, ("workbook", i, "assert"), add)

    for i, step in enumerate(playbook.workflow):
        _check_step(step, ("workflow", i), seen, workbook_names, add)

    _check_keychain(playbook.keychain, add)

    for sub, message in templating.check(_without_raw_fields(data)):
        add(sub, message)
    return problems


def _without_raw_fields(data: dict[str, Any]) -> dict[str, Any]:
    """The playbook minus fields that are never rendered (python `code`, ...)."""

    def tool(value: Any) -> Any:
        if isinstance(value, list):
            return [tool(t) for t in value]
        if not isinstance(value, dict) or value.get("kind") not in registry.KINDS:
            return value
        if registry.KINDS[value["kind"]] is None:
            return value
        raw = registry.spec(value["kind"]).RAW_FIELDS
        return {k: v for k, v in value.items() if k not in raw}

    out = dict(data)
    for section in ("workflow", "workbook"):
        items = out.get(section)
        if isinstance(items, list):
            out[section] = [
                {**item, "tool": tool(item.get("tool"))} if isinstance(item, dict) else item
                for item in items
            ]
    return out


def _check_assert(checks: dict[str, Any] | None, path: Path, add: Any) -> None:
    """Upstream's workbook `assert: {expects: [names], returns: [dotted paths]}`."""
    for key, value in (checks or {}).items():
        if key not in ("expects", "returns"):
            add((*path, key), f"`assert` takes `expects` and `returns`, not {key!r}")
        elif not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            add((*path, key), f"`assert.{key}` must be a list of names")


def _check_keychain(entries: list[dict[str, Any]], add: Any) -> None:
    declared: list[str] = []
    for i, item in enumerate(entries):
        for where, message in keychain_entries.problems(item):
            add(("keychain", i, *_split(where)), message)
        label = item.get("name") if isinstance(item, dict) else None
        if isinstance(label, str):
            if label in declared:
                add(("keychain", i, "name"), f"keychain entry {label!r} is declared twice")
            declared.append(label)


def _check_flag(spec: Any, path: Path, add: Any) -> None:
    """`spec.fail_on_status` is true or false."""
    flag = (getattr(spec, "model_extra", None) or {}).get("fail_on_status")
    if flag is not None and not isinstance(flag, bool):
        add((*path, "spec", "fail_on_status"), f"expected true or false, got {flag!r}")


def _check_output(output: OutputSpec | None, path: Path, add: Any) -> None:
    """`output.store.kind` is one this runtime knows; `select` entries name a field."""
    if output is None:
        return
    if output.store is not None and output.store.kind not in STORE_KINDS:
        known = ", ".join(STORE_KINDS)
        add(
            (*path, "output", "store", "kind"),
            f"unknown store kind {output.store.kind!r} (known: {known})",
        )
    for k, item in enumerate(output.select):
        if isinstance(item, dict):
            if not isinstance(item.get("path"), str) or not select_path(item["path"]):
                add((*path, "output", "select", k, "path"), "a selected field needs a `path`")
            elif set(item) - {"path", "as"}:
                extra = ", ".join(sorted(set(item) - {"path", "as"}))
                add((*path, "output", "select", k), f"unknown keys {extra} (give `path`, `as`)")
        elif not select_path(item):
            add((*path, "output", "select", k), "a selected field needs a name or a path")


def _check_step(step: Step, path: Path, steps: set[str], workbook: list[str], add: Any) -> None:
    _check_flag(step.spec, path, add)
    _check_output(step.output, path, add)
    for j, arc in enumerate(step.arcs):
        if arc.step not in steps and arc.step != "end":
            known = ", ".join(sorted(steps))
            add(
                (*path, "next", "arcs", j, "step"),
                f"arc to unknown step {arc.step!r} (steps: {known})",
            )
    if step.loop is not None and not step.loop.iterator.isidentifier():
        add((*path, "loop", "iterator"), f"iterator {step.loop.iterator!r} is not a valid name")
    if step.loop is not None:
        _check_loop_source(step, (*path, "loop"), add)
    wanted = step.loop.spec.max_in_flight if step.loop is not None else None
    if step.loop is not None and step.loop.is_cursor and templating.is_template(wanted):
        add(
            (*path, "loop", "spec", "max_in_flight"),
            "a cursor loop's `max_in_flight` is a number, not a template",
        )
    bad = isinstance(wanted, str) and not templating.is_template(wanted)
    if bad and not (str(wanted).strip().isdigit() and int(str(wanted)) >= 1):
        add(
            (*path, "loop", "spec", "max_in_flight"),
            f"`max_in_flight` must be a positive integer or a template, got {wanted!r}",
        )
    if isinstance(step.tool, list):
        task_names = [t.name for t in step.tool]
        if not task_names:
            add((*path, "tool"), "a pipeline needs at least one task")
        for k, task in enumerate(step.tool):
            why = step_names.problem("task", task.name)
            if why is not None:
                add((*path, "tool", k, "name"), why)
            if task_names.count(task.name) > 1:
                add((*path, "tool", k, "name"), f"task name {task.name!r} is used twice")
            _check_tool(task, (*path, "tool", k), workbook, add, task_names)
            _check_output(task.output, (*path, "tool", k), add)
    else:
        _check_tool(step.tool, (*path, "tool"), workbook, add)


CURSOR_KINDS = ("postgres",)
MAX_CURSOR_SLOTS = 400  # one activation batch: a write per slot, 500 writes at most


def _check_loop_source(step: Step, path: Path, add: Any) -> None:
    """A loop has one source: `in` (a collection) or `cursor` (claimed rows), the latter
    with `spec.mode: cursor` and the former without it, as upstream's model requires."""
    loop = step.loop
    assert loop is not None
    if loop.in_ is not None and loop.cursor is not None:
        add(path, "give either `loop.in` (a collection) or `loop.cursor` (claimed rows), not both")
        return
    if loop.in_ is None and loop.cursor is None:
        add(
            (*path, "in"),
            "required field is missing: a loop needs `in` (a collection) or `cursor` "
            "(a claim query, with `spec.mode: cursor`)",
        )
        return
    mode = loop.spec.mode
    if loop.cursor is None:
        if mode == "cursor":
            add((*path, "spec", "mode"), "`mode: cursor` needs a `loop.cursor` source, not `in`")
        if loop.spec.frame is not None:
            add((*path, "spec", "frame"), "`loop.spec.frame` is for cursor loops only")
        return
    if mode != "cursor":
        add(
            (*path, "spec", "mode"),
            f"`loop.cursor` needs `spec.mode: cursor` (got {mode!r})",
        )
    if loop.width > MAX_CURSOR_SLOTS:
        add(
            (*path, "spec", "max_in_flight"),
            f"a cursor loop runs at most {MAX_CURSOR_SLOTS} slots (got {loop.width}): its "
            "activation issues every slot's first frame in one batch",
        )
    cursor = loop.cursor
    if cursor.kind not in CURSOR_KINDS:
        add(
            (*path, "cursor", "kind"),
            f"cursor kind {cursor.kind!r} is not supported (supported: {', '.join(CURSOR_KINDS)})",
        )
    cap = (cursor.options or {}).get("max_iterations")
    if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
        add(
            (*path, "cursor", "options", "max_iterations"),
            f"max_iterations (rows per slot at most) must be a positive integer, got {cap!r}",
        )
    if not cursor.claim.strip():
        add((*path, "cursor", "claim"), "the claim statement is empty")
    if not cursor.auth and not (cursor.options or {}).keys() & _CONNECTION_KEYS:
        add(
            (*path, "cursor", "auth"),
            "a cursor needs `auth` (a postgres credential alias) or connection fields in "
            "`options` (db_host, db_name, ...)",
        )


_CONNECTION_KEYS = {"db_host", "host", "db_name", "dbname", "database"}


def _check_tool(
    tool: Tool, path: Path, workbook: list[str], add: Any, tasks: list[str] | None = None
) -> None:
    _check_flag(tool.spec, path, add)
    if tool.kind in registry.UPSTREAM_UNSUPPORTED:
        why = registry.UPSTREAM_UNSUPPORTED[tool.kind]
        add(
            (*path, "kind"),
            f"tool kind {tool.kind!r} is upstream NoETL's but not supported here ({why})",
        )
        return
    if tool.kind not in registry.KINDS:
        known = ", ".join(sorted(registry.KINDS))
        add((*path, "kind"), f"unknown tool kind {tool.kind!r} (known: {known})")
        return
    if tool.kind in registry.LATER:
        add((*path, "kind"), f"tool kind {tool.kind!r} is not available in this version yet")
        return
    fields = tool.fields()
    for sub, message in registry.spec(tool.kind).validate(fields):
        add((*path, *_split(sub)), message)
    if tool.kind == "workbook" and isinstance(fields.get("name"), str):
        name = fields["name"]
        if not templating.is_template(name) and name not in workbook:
            add((*path, "name"), f"no workbook entry named {name!r}")
    if tool.policy is not None:
        _check_policy(tool.policy, (*path, "spec", "policy"), tasks, add)


def _check_policy(policy: Policy, path: Path, tasks: list[str] | None, add: Any) -> None:
    for r, rule in enumerate(policy.rules):
        rule_path = (*path, "rules", r)
        if rule.is_else and r != len(policy.rules) - 1:
            add(rule_path, "`else` must be the last rule")
        action = rule.then
        if action.do == "jump":
            if tasks is None:
                add((*rule_path, "then", "do"), "`jump` works only between tasks of a pipeline")
            elif action.to not in tasks:
                add((*rule_path, "then", "to"), f"jump to unknown task {action.to!r}")


def _split(sub: str) -> Path:
    """'workflow[3].tool.code' -> ('workflow', 3, 'tool', 'code')."""
    out: list[str | int] = []
    for part in sub.replace("]", "").replace("[", ".").split("."):
        if part == "":
            continue
        out.append(int(part) if part.isdigit() else part)
    return tuple(out)


# Names every template may read besides the playbook's own (docs/language.md, Templates):
# the scopes, the ids, what policies, sets and arcs see of an outcome, loop and cursor
# names, a callback's URL, and Jinja's globals.
BUILTIN_NAMES = frozenset(
    {
        "workload",
        "ctx",
        "iter",
        "loop",
        "loop_index",
        "args",
        "keychain",
        "execution_id",
        "parent_execution_id",
        "output",
        "outcome",
        "error",
        "event",
        "result",
        "callback",
        "cursor",
        "step",
        "range",
        "dict",
        "lipsum",
        "cycler",
        "joiner",
        "namespace",
    }
) | frozenset(step_names.RESERVED)
# what a run adds to the workload: a scheduled execution's time (`schedules.fire`)
RUNTIME_WORKLOAD_KEYS = frozenset({"scheduled_time"})

Warnings = list[tuple[SourceLocation, str]]


def name_warnings(playbook: Playbook, data: dict[str, Any], smap: SourceMap) -> Warnings:
    """Names the playbook's templates read that nothing defines: no step, task, workload
    key, ctx key (`set: {ctx.x: ...}` or `set: {x: ...}`), loop iterator, keychain entry
    or built-in name; and `workload.x`, `ctx.x`, `keychain.x` whose `x` the playbook never
    declares or sets (a key given only at run time, `--set x=...`, reads as a typo here).
    At run time such a name renders as nothing (None), so this is where a typo shows."""
    workload = set(playbook.workload) | RUNTIME_WORKLOAD_KEYS
    schedule = (playbook.metadata.model_extra or {}).get("schedule")
    for item in schedule if isinstance(schedule, list) else [schedule]:
        if isinstance(item, dict) and isinstance(item.get("workload"), dict):
            workload |= set(item["workload"])
    ctx_keys = _set_keys(data) | workload
    entries = {e["name"] for e in playbook.keychain if isinstance(e.get("name"), str)}
    defined = set(BUILTIN_NAMES) | ctx_keys | entries
    for step in playbook.workflow:
        defined.add(step.step)
        if step.loop is not None:
            defined.add(step.loop.iterator)
        if isinstance(step.tool, list):
            defined.update(t.name for t in step.tool)
    defined.update(w.name for w in playbook.workbook)
    scoped = {"workload": workload, "ctx": ctx_keys, "keychain": entries}
    found: Warnings = []
    for path, source in _templates(_without_raw_fields(data)):
        try:
            read = templating.reads(source)
        except NoetlError:  # a syntax error: already a problem of its own
            continue
        said: set[str] = set()
        for parts in sorted(read):
            name = parts[0]
            if name.startswith("_") or name in said:
                continue
            if len(parts) == 1 and name not in defined:
                said.add(name)
                what = (
                    f"{name!r} is not a step, workload key, set key, loop iterator, keychain "
                    "entry or built-in name: it renders as nothing"
                )
                found.append((smap.at(path), _unknown(what, name, defined)))
            elif len(parts) == 2 and name in scoped and parts[1] not in scoped[name]:
                key = parts[1]
                if name == "workload" and not playbook.workload:
                    continue  # no workload declared: every key comes at run time
                whose = {
                    "workload": "the workload declares no key",
                    "ctx": "no workload key or `set` defines",
                    "keychain": "the keychain declares no entry",
                }
                what = f"`{name}.{key}`: {whose[name]} {key!r}: it renders as nothing"
                found.append((smap.at(path), _unknown(what, key, scoped[name])))
    return found


def _unknown(what: str, name: str, known: set[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.75)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return what + hint


def _templates(value: Any, path: Path = ()) -> list[tuple[Path, str]]:
    """Every template in `value` with its path; a `when:` without braces counts as one
    expression, as the runtime reads it."""
    out: list[tuple[Path, str]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "when" and isinstance(item, str) and not templating.is_template(item):
                out.append(((*path, key), "{{ " + item + " }}"))
            else:
                out.extend(_templates(item, (*path, str(key))))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            out.extend(_templates(item, (*path, i)))
    elif templating.is_template(value):
        out.append((path, value))
    return out


def _set_keys(value: Any) -> set[str]:
    """ctx keys any `set` (of a step, task, arc or policy rule) or `set_ctx` assigns."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("set", "set_ctx") and isinstance(item, dict):
                for name in item:
                    scope, _, rest = str(name).partition(".")
                    if key == "set_ctx" or not rest or scope not in ("ctx", "iter", "step"):
                        found.add(str(name).split(".")[0])
                    elif scope == "ctx":
                        found.add(rest.split(".")[0])
            found |= _set_keys(item)
    elif isinstance(value, list):
        for item in value:
            found |= _set_keys(item)
    return found
