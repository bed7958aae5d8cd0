"""Playbooks written the way upstream NoETL's canonical v10 docs and fixtures write them
run here unchanged."""

from __future__ import annotations

from typing import Any

import pytest

from noetl_core.playbook import load_text
from noetl_core.runtime import payloads
from noetl_core.runtime.block import Runtime

pytestmark = pytest.mark.integration


def run(rt: Runtime, text: str) -> tuple[str, Any]:
    execution_id = rt.start(load_text(text), {})
    terminal = rt.wait(execution_id, 30)
    assert terminal is not None
    return execution_id, terminal


PAGINATION = """
apiVersion: noetl.io/v10
kind: Playbook
metadata: {name: paginate}
workload: {pages: 3}
workflow:
  - step: start
    spec: {policy: {admit: {rules: []}}, lifecycle: {timeout_s: 600}}
    tool:
      - init_iter:
          kind: noop
          spec:
            policy:
              rules:
                - else: {do: continue, set_iter: {page: 1, items: []}}
      - fetch_page:
          kind: python
          args: {page: "{{ iter.page }}", last: "{{ workload.pages }}"}
          code: |
            result = {"data": {"rows": [page * 10], "paging": {"hasMore": page < last}}}
          spec:
            policy:
              rules:
                - when: "{{ outcome.status == 'error' }}"
                  then: {do: retry, attempts: 3, backoff: fixed, delay: 0}
                - when: "{{ outcome.result.data.paging.hasMore }}"
                  then:
                    do: jump
                    to: fetch_page
                    set_iter:
                      page: "{{ iter.page + 1 }}"
                      items: "{{ iter['items'] + outcome.result.data.rows }}"
                - else:
                    then: {do: continue, set_iter: {items: "{{ iter['items'] + outcome.result.data.rows }}"}}
      - collect:
          kind: python
          args: {items: "{{ iter['items'] }}", page: "{{ iter.page }}"}
          code: "result = {'items': items, 'pages': page}"
    set_ctx: {pages_seen: "{{ start.pages }}"}
    next:
      arcs:
        - step: report
          args: {source: pagination}
  - step: report
    tool:
      kind: python
      args: {got: "{{ start }}", seen: "{{ ctx.pages_seen }}", source: "{{ args.source }}"}
      code: "result = {'items': got['items'], 'seen': seen, 'source': source}"
"""


def test_pagination_with_set_iter_jump_outcome_result_and_arc_args(rt: Runtime) -> None:
    _, terminal = run(rt, PAGINATION)
    assert terminal.body["status"] == "completed", terminal.body
    assert payloads.load(rt.payloads, terminal.body["result"]) == {
        "items": [10, 20, 30],
        "seen": 3,
        "source": "pagination",
    }


EVENTS = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: events}
workload: {users: [1, 2, 3]}
workbook:
  - name: double
    tool: {kind: python, args: {x: 0}, code: "result = x * 2"}
workflow:
  - step: start
    loop: {in: "{{ users }}", iterator: user, mode: parallel, max_in_flight: 2}
    tool: {kind: workbook, name: double, args: {x: "{{ user }}"}}
    next:
      arcs:
        - step: validate
          when: "{{ event.name == 'loop.done' }}"
  - step: validate
    tool: {kind: python, code: "raise ValueError('bad batch')"}
    next:
      arcs:
        - step: cleanup
          when: "{{ event.name == 'step.failed' }}"
  - step: cleanup
    tool:
      kind: python
      args: {doubled: "{{ start }}", indexes: "{{ start | length }}"}
      libs: [some-package-to-install]
      code: "result = {'doubled': doubled}"
"""


def test_upstream_event_names_route_loop_done_and_step_failed(rt: Runtime) -> None:
    _, terminal = run(rt, EVENTS)
    assert terminal.body["status"] == "completed", terminal.body
    assert payloads.load(rt.payloads, terminal.body["result"]) == {"doubled": [2, 4, 6]}


def test_our_own_event_names_still_hold() -> None:
    from noetl_core.engine.scope import DONE, FAILED, LOOP_DONE, OK

    assert FAILED == "call.error" and FAILED == "step.failed" and FAILED != "call.done"
    assert DONE == "call.done" and DONE == "step.done" and DONE != "step.failed"
    assert LOOP_DONE == "loop.done" and LOOP_DONE in ["loop.done"]
    assert OK == "ok" and OK == "success" and str(OK) == "ok"
