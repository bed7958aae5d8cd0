"""Policy rules: what to do with a tool's output (pure).

Rules see `output` = `{status: ok|error, data, error: {kind, code, message, retryable},
meta: {attempt, duration_ms}, ...tool-specific parts}`. The first rule that matches
wins; a trailing `else` matches anything. Without any rules: ok continues and error
fails. With rules of which none matches: continue (upstream canonical v10's default).
Rules may also call the output `outcome`, upstream's name for it.

`retry` counts `attempts` as the total number of attempts, the first one included: once
`attempt >= attempts`, a matching retry rule fails the step instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .. import templating
from ..playbook.model import Policy, RuleAction


@dataclass(frozen=True)
class Verdict:
    action: str
    delay: float = 0.0
    to: str | None = None
    set: dict[str, Any] | None = None
    rule: int | None = None
    exhausted: bool = False


def backoff(action: RuleAction, attempt: int) -> float:
    """Seconds to wait before attempt `attempt + 1`."""
    if action.backoff == "linear":
        delay = action.delay * attempt
    elif action.backoff == "exponential":
        delay = action.delay * (2 ** (attempt - 1))
    else:
        delay = action.delay
    return min(delay, action.max_delay) if action.max_delay is not None else delay


def decide(
    policy: Policy | None,
    output: Mapping[str, Any],
    attempt: int,
    context: Mapping[str, Any],
    where: str = "policy",
) -> Verdict:
    if policy is None or not policy.rules:
        return Verdict("continue" if output.get("status") == "ok" else "fail")
    scope = {**context, "output": output, "outcome": output, "error": output.get("error")}
    for i, rule in enumerate(policy.rules):
        if not (rule.is_else or templating.condition(rule.when, scope, f"{where}.rules[{i}].when")):
            continue
        then = rule.then
        if then.do == "retry":
            if attempt >= then.attempts:
                return Verdict("fail", rule=i, exhausted=True)
            return Verdict("retry", delay=backoff(then, attempt), rule=i, set=then.assignments)
        return Verdict(then.do, to=then.to, set=then.assignments, rule=i)
    return Verdict("continue")


def names(policy: Policy | None) -> set[str]:
    if policy is None:
        return set()
    found: set[str] = set()
    for rule in policy.rules:
        found |= templating.condition_names(rule.when)
        found |= templating.names(rule.then.assignments)
    return found
