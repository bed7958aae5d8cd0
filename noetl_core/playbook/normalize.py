"""Lenient forms in, canonical form out; retired v1 forms rejected.

Accepted (as upstream NoETL does):
- `apiVersion: noetl.io/v10` (upstream's other name for the same language);
- step `set_ctx: {x: ...}` for `set: {ctx.x: ...}`; loop `mode` / `max_in_flight` beside
  `in` (moved into `loop.spec`); `args` on a tool or task as well as on a step;
- `- else: {do: ..., ...}` (a rule's `then` written without `then:`);
- `next` as a single step name, a list of names, a list of `{step, when, set}`, or a
  single `{step, ...}` mapping;
- `args` as an alias of `input` (on steps and pipeline tasks);
- a tool's own fields nested under its `spec:` (only `spec.policy` stays there);
- unnamed pipeline tasks (named `task_<i>`), and tasks written `- label: {kind: ...}`;
- `output_select: [...]` for `output: {select: [...]}`, and `store:` beside it (into
  `output.store`); `output_select` inside `output:`; a single tool's `output:` (where
  upstream canonical v10 puts it) as the step's;
- a policy rule written `- else: {then: {...}}`;
- postgres / duckdb `credential:` for `auth:`; http `verify_ssl:` for `verify:`, `form:`
  for `data:` (a form body) and `retry:` as a retry policy; arc `cond:` for `when:`.

Rejected with the replacement named: step `case`, step `type`, root `vars`.
"""

from __future__ import annotations

from typing import Any

from ..errors import SourceLocation
from . import scripts
from .yamlsrc import Path, SourceMap

Problems = list[tuple[SourceLocation, str]]

RETIRED_STEP_KEYS = {
    "case": "`case` was retired in noetl.io/v2: route with `next: {arcs: [{step, when}]}`",
    "type": "step `type:` was retired in noetl.io/v2: give the step a `tool: {kind: ...}`",
}
RETIRED_ROOT_KEYS = {
    "vars": "root `vars:` was retired in noetl.io/v2: put inputs in `workload:` and "
    "mutations in `set: {ctx.<name>: ...}`",
}
SPEC_ONLY_KEYS = {"policy", "timeout", "fail_on_status"}
# Upstream's other names of a tool's fields, per kind: {kind: {alias: field}}.
TOOL_ALIASES = {
    "postgres": {"credential": "auth"},
    "duckdb": {"credential": "auth"},
    "http": {"verify_ssl": "verify", "form": "data"},
}
API_ALIASES = {"noetl.io/v10"}
HTTP_RETRY_KEYS = (
    "max_attempts",
    "initial_delay",
    "backoff_multiplier",
    "max_delay",
    "jitter",
    "retry_when",
)


class Normalizer:
    def __init__(self, smap: SourceMap, files: scripts.ScriptFiles | None = None):
        self.smap = smap
        self.problems: Problems = []
        self.files = files or scripts.ScriptFiles(None, None, None)

    def problem(self, path: Path, message: str) -> None:
        self.problems.append((self.smap.at(path), message))

    def alias(self, old: Path, new: Path) -> None:
        """Lines of `old` and everything below it also answer for `new`."""
        line = self.smap.line_of(old)
        if line is not None:
            self.smap.lines.setdefault(new, line)
        depth = len(old)
        for path, below in list(self.smap.lines.items()):
            if len(path) > depth and path[:depth] == old:
                self.smap.lines.setdefault((*new, *path[depth:]), below)

    def playbook(self, doc: Any) -> Any:
        if not isinstance(doc, dict):
            self.problem((), f"a playbook must be a mapping, got {type(doc).__name__}")
            return doc
        out = dict(doc)
        out.pop(scripts.EMBED_KEY, None)  # read by `self.files`
        if out.get("apiVersion") in API_ALIASES:
            out["apiVersion"] = "noetl.io/v2"
        for key, message in RETIRED_ROOT_KEYS.items():
            if key in out:
                self.problem((key,), message)
        if isinstance(out.get("keychain"), list):
            out["keychain"] = [self.keychain_entry(e) for e in out["keychain"]]
        if isinstance(out.get("workflow"), list):
            out["workflow"] = [self.step(s, ("workflow", i)) for i, s in enumerate(out["workflow"])]
        if isinstance(out.get("workbook"), list):
            out["workbook"] = [
                self.workbook_entry(w, ("workbook", i)) for i, w in enumerate(out["workbook"])
            ]
        return out

    def keychain_entry(self, entry: Any) -> Any:
        """Upstream's `kind: secret_manager` (with `provider`, default gcp, and `map`) is
        this project's `kind: secrets`; its `auth:` (which credentials read the secret
        manager) is left to the runtime's own identity and dropped."""
        if not isinstance(entry, dict) or entry.get("kind") != "secret_manager":
            return entry
        out = {k: v for k, v in entry.items() if k not in ("auth", "scope")}
        out["kind"] = "secrets"
        out.setdefault("provider", "gcp")
        return out

    def workbook_entry(self, entry: Any, path: Path) -> Any:
        if not isinstance(entry, dict):
            return entry
        out = dict(entry)
        if "tool" in out:
            out["tool"] = self.tool(out["tool"], (*path, "tool"))
            tool = out["tool"]
            if isinstance(tool, dict) and "output" in tool:  # the entry's, not a tool field
                if "output" in out:
                    self.problem(
                        (*path, "tool", "output"), "`output` is given both here and on the entry"
                    )
                out["tool"] = {k: v for k, v in tool.items() if k != "output"}
                out.setdefault("output", tool["output"])
                self.alias((*path, "tool", "output"), (*path, "output"))
        if isinstance(out.get("output"), dict):
            out["output"] = self.output(out["output"], (*path, "output"))
        return out

    def step(self, step: Any, path: Path) -> Any:
        if not isinstance(step, dict):
            return step
        out = dict(step)
        for key, message in RETIRED_STEP_KEYS.items():
            if key in out:
                self.problem((*path, key), message)
                out.pop(key)
        self.rename(out, "args", "input", path)
        if "set_ctx" in out:
            extra = out.pop("set_ctx")
            if isinstance(extra, dict):
                out["set"] = {**(out.get("set") or {}), **{f"ctx.{k}": v for k, v in extra.items()}}
                self.alias((*path, "set_ctx"), (*path, "set"))
        if isinstance(out.get("loop"), dict):
            out["loop"] = self.loop(out["loop"], (*path, "loop"))
        if "output_select" in out:
            if "output" in out:
                self.problem((*path, "output_select"), "give either `output` or `output_select`")
            out["output"] = {"select": out.pop("output_select")}
            self.alias((*path, "output_select"), (*path, "output", "select"))
            self.alias((*path, "output_select"), (*path, "output"))
        if "store" in out:  # `store:` beside `output_select` (or alone)
            given = out.get("output")
            output: dict[str, Any] = given if isinstance(given, dict) else {}
            if "store" in output:
                self.problem((*path, "store"), "`store` is given both here and in `output`")
            out["output"] = {**output, "store": out.pop("store")}
            self.alias((*path, "store"), (*path, "output", "store"))
        if "next" in out:
            out["next"] = self.next(out["next"], (*path, "next"))
        tool = out.get("tool")
        if isinstance(tool, list):
            out["tool"] = [self.task(t, (*path, "tool", i), i) for i, t in enumerate(tool)]
        elif tool is not None:
            out["tool"] = self.tool(tool, (*path, "tool"))
            if isinstance(out["tool"], dict) and "output" in out["tool"]:
                # upstream canonical v10 puts `output:` in the tool: it is the step's
                if "output" in out:
                    self.problem(
                        (*path, "tool", "output"), "`output` is given both here and on the step"
                    )
                hoisted = out["tool"]["output"]
                out["tool"] = {k: v for k, v in out["tool"].items() if k != "output"}
                out["output"] = out.get("output", hoisted)
                self.alias((*path, "tool", "output"), (*path, "output"))
        if isinstance(out.get("output"), dict):
            out["output"] = self.output(out["output"], (*path, "output"))
        return out

    def output(self, output: dict[str, Any], path: Path) -> dict[str, Any]:
        """`output_select` inside `output:` (as upstream's worker reads it) is `select`."""
        out = dict(output)
        self.rename(out, "output_select", "select", path)
        return out

    def loop(self, loop: dict[str, Any], path: Path) -> dict[str, Any]:
        """Older loops put `mode` / `max_in_flight` beside `in`; they belong in `spec`."""
        out = dict(loop)
        moved = {key: out.pop(key) for key in ("mode", "max_in_flight") if key in out}
        if not moved:
            return out
        spec = out.get("spec", {})
        if not isinstance(spec, dict):
            return out
        for key in moved:
            if key in spec:
                self.problem((*path, key), f"`{key}` is given both here and in `loop.spec`")
            self.alias((*path, key), (*path, "spec", key))
        out["spec"] = {**spec, **moved}
        return out

    def rename(self, mapping: dict[str, Any], old: str, new: str, path: Path) -> None:
        if old not in mapping:
            return
        if new in mapping:
            self.problem((*path, old), f"`{old}` is an alias of `{new}`: give only one of them")
            return
        mapping[new] = mapping.pop(old)
        self.alias((*path, old), (*path, new))

    def next(self, value: Any, path: Path) -> Any:
        if value is None:
            return None
        if isinstance(value, str):
            return {"arcs": [{"step": value}]}
        if isinstance(value, list):
            arcs = []
            for i, item in enumerate(value):
                self.alias((*path, i), (*path, "arcs", i))
                arcs.append({"step": item} if isinstance(item, str) else item)
            out: Any = {"arcs": arcs}
        elif isinstance(value, dict) and "step" in value and "arcs" not in value:
            self.alias(path, (*path, "arcs", 0))
            out = {"arcs": [value]}
        else:
            out = value
        if isinstance(out, dict) and isinstance(out.get("arcs"), list):
            arcs = [self.arc(a, (*path, "arcs", i)) for i, a in enumerate(out["arcs"])]
            out = {**out, "arcs": arcs}
        return out

    def arc(self, arc: Any, path: Path) -> Any:
        """Upstream's `cond:` is the arc's `when:`."""
        if not isinstance(arc, dict):
            return arc
        out = dict(arc)
        self.rename(out, "cond", "when", path)
        return out

    def tool(self, tool: Any, path: Path) -> Any:
        if not isinstance(tool, dict):
            return tool
        out = dict(tool)
        self.rename(out, "args", "input", path)
        spec = out.get("spec")
        if isinstance(spec, dict):
            kept = {}
            for key, value in spec.items():
                if key in SPEC_ONLY_KEYS:
                    kept[key] = value
                elif key in out:
                    self.problem(
                        (*path, "spec", key), f"`{key}` is given both here and on the tool"
                    )
                else:
                    out[key] = value
                    self.alias((*path, "spec", key), (*path, key))
            out["spec"] = kept
        for old, new in TOOL_ALIASES.get(str(out.get("kind")), {}).items():
            self.rename(out, old, new, path)
        if out.get("kind") == "http" and "retry" in out:
            self.http_retry(out, path)
        if "script" in out:
            try:
                out, field = scripts.resolve(out, self.files)
            except ValueError as exc:
                self.problem((*path, "script"), str(exc))
            else:
                if field is not None:
                    self.alias((*path, "script"), (*path, field))
        if isinstance(out.get("spec"), dict) and isinstance(out["spec"].get("policy"), dict):
            out["spec"]["policy"] = self.policy(out["spec"]["policy"], (*path, "spec", "policy"))
        return out

    def http_retry(self, tool: dict[str, Any], path: Path) -> None:
        """Upstream http's `retry: {max_attempts, initial_delay, backoff_multiplier,
        max_delay}` is a retry policy: retryable errors are retried, the others fail."""
        retry = tool.pop("retry")
        at = (*path, "retry")
        if retry is None or retry is False:
            return
        if not isinstance(retry, dict):
            self.problem(at, "`retry` must be a mapping {max_attempts, initial_delay, ...}")
            return
        given = tool.get("spec")
        spec: dict[str, Any] = given if isinstance(given, dict) else {}
        if "policy" in spec:
            self.problem(at, "give either `retry` or `spec.policy`, not both")
            return
        unknown = set(retry) - set(HTTP_RETRY_KEYS)
        if unknown:
            known = ", ".join(HTTP_RETRY_KEYS)
            self.problem(at, f"`retry` takes {known}; not {', '.join(sorted(unknown))}")
            return
        multiplier = retry.get("backoff_multiplier", 2)
        action: dict[str, Any] = {
            "do": "retry",
            "attempts": retry.get("max_attempts", 3),
            "delay": retry.get("initial_delay", 1),
            "backoff": "none" if multiplier in (1, 1.0) else "exponential",
        }
        if retry.get("max_delay") is not None:
            action["max_delay"] = retry["max_delay"]
        when = retry.get("retry_when") or "{{ output.status == 'error' and error.retryable }}"
        rules = [
            {"when": when, "then": action},
            {"when": "{{ output.status == 'error' }}", "then": {"do": "fail"}},
        ]
        tool["spec"] = {**spec, "policy": {"rules": rules}}
        self.alias(at, (*path, "spec", "policy"))

    def task(self, task: Any, path: Path, index: int) -> Any:
        if not isinstance(task, dict):
            return task
        if len(task) == 1 and "kind" not in task:
            ((label, body),) = task.items()
            if isinstance(body, dict) and "kind" in body:
                self.alias((*path, label), path)
                task = {"name": label, **body}
        out = self.tool(task, path)
        out.setdefault("name", f"task_{index}")
        if isinstance(out.get("output"), dict):
            out["output"] = self.output(out["output"], (*path, "output"))
        return out

    def policy(self, policy: dict[str, Any], path: Path) -> dict[str, Any]:
        rules = policy.get("rules")
        if not isinstance(rules, list):
            return policy
        out_rules = []
        for i, rule in enumerate(rules):
            if isinstance(rule, dict) and set(rule) == {"else"} and isinstance(rule["else"], dict):
                body = rule["else"]
                if "then" not in body and "do" in body:  # `- else: {do: continue, ...}`
                    body = {"then": body}
                    self.alias((*path, "rules", i, "else"), (*path, "rules", i, "then"))
                out_rules.append({**body, "is_else": True})
                self.alias((*path, "rules", i, "else"), (*path, "rules", i))
            else:
                out_rules.append(rule)
        return {**policy, "rules": out_rules}
