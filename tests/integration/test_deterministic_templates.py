"""Templates cannot change what they read: a mutation in a step's input or `set` fails
that step with a template error, later blocks (and later executions in the process) see
the values unchanged, and `noetl replay` reproduces every decision."""

from __future__ import annotations

from typing import Any

import pytest

from noetl_core.playbook import load_text
from noetl_core.runtime import payloads, replay
from noetl_core.runtime.block import Runtime

pytestmark = pytest.mark.integration

RECOVER = "{{ event.name == 'call.error' }}"
MUTATING = f"""
apiVersion: noetl.io/v2
kind: Playbook
metadata: {{name: mutating}}
workload:
  cfg: {{mode: safe}}
  rows: [1, 2]
workflow:
  - step: start
    tool: {{kind: python, code: "result = [10, 20]"}}
    next: in_args
  - step: in_args
    tool:
      kind: python
      input: {{x: "{{{{ workload.rows.append(3) }}}}"}}
      code: "result = x"
    next: [{{step: in_set, when: "{RECOVER}"}}]
  - step: in_set
    tool: {{kind: noop}}
    set: {{ctx.x: "{{{{ ctx.cfg.update({{'mode': 'unsafe'}}) }}}}"}}
    next: [{{step: in_result, when: "{RECOVER}"}}]
  - step: in_result
    tool:
      kind: python
      input: {{x: "{{{{ start.append(30) }}}}"}}
      code: "result = x"
    next: [{{step: in_code, when: "{RECOVER}"}}]
  - step: in_code
    tool:
      kind: python
      code: "context['start'].append(40); result = len(context['start'])"
    next: check
  - step: check
    tool:
      kind: python
      input: {{cfg: "{{{{ ctx.cfg }}}}", rows: "{{{{ workload.rows }}}}", start: "{{{{ start }}}}"}}
      code: "result = {{'cfg': cfg, 'rows': rows, 'start': start}}"
    next:
      - step: unchanged
        when: "{{{{ workload.rows | length == 2 and ctx.cfg.mode == 'safe' and start | length == 2 }}}}"
      - step: changed
  - step: unchanged
    tool: {{kind: python, code: "result = 'unchanged'"}}
  - step: changed
    tool: {{kind: python, code: "result = 'changed'"}}
"""


def _errors(rt: Runtime, execution_id: str) -> dict[str, dict[str, Any]]:
    return {
        e.step or "": e.body["error"]
        for e in rt.log.find(execution_id, "done")
        if e.body.get("status") == "error"
    }


def test_a_mutating_template_fails_its_step_and_changes_nothing(rt: Runtime) -> None:
    loaded = load_text(MUTATING)
    for _ in range(2):  # the second execution in the process sees nothing changed either
        execution_id = rt.start(loaded, {})
        terminal = rt.wait(execution_id, timeout=60)
        assert terminal is not None and terminal.body["status"] == "completed"
        assert payloads.load(rt.payloads, terminal.body["result"]) == "unchanged"
        errors = _errors(rt, execution_id)
        assert sorted(errors) == ["in_args", "in_result", "in_set"]
        for step, expression in [
            ("in_args", "workload.rows.append(3)"),
            ("in_set", "ctx.cfg.update({'mode': 'unsafe'})"),
            ("in_result", "start.append(30)"),
        ]:
            error = errors[step]
            assert (error["kind"], error["code"]) == ("template", "template_error")
            assert error["message"].startswith(f"step {step}: ")
            assert expression in error["message"] and "was refused" in error["message"]
        (checked,) = rt.log.find(execution_id, "done", step="check")
        assert payloads.load(rt.payloads, checked.body["result"]) == {
            "cfg": {"mode": "safe"},
            "rows": [1, 2],
            "start": [10, 20],
        }
        _, checks = replay.verify(rt, execution_id)
        assert checks and all(c.ok for c in checks), [c.detail for c in checks if not c.ok]
