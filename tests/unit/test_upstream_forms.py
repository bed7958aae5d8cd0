"""Forms upstream NoETL's canonical v10 documents use, accepted unchanged."""

from __future__ import annotations

import pytest

from noetl_core.engine import policy
from noetl_core.playbook import load_text

pytestmark = pytest.mark.unit

PIPELINE = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: upstream}
workflow:
  - step: start
    tool:
      - fetch_page:
          kind: python
          code: "result = {'page': 1}"
          spec:
            policy:
              rules:
                - when: "{{ outcome.status == 'error' }}"
                  then: {do: retry, attempts: 3, backoff: linear, delay: 1.0}
                - else:
                    then: {do: continue, set_ctx: {last: "{{ outcome.data.page }}"}}
      - store:
          kind: noop
"""


def test_labelled_tasks_take_the_label_as_their_name() -> None:
    step = load_text(PIPELINE).playbook.workflow[0]
    assert isinstance(step.tool, list)
    assert [t.name for t in step.tool] == ["fetch_page", "store"]
    assert [t.kind for t in step.tool] == ["python", "noop"]


def test_outcome_is_another_name_for_output_and_set_ctx_is_a_ctx_set() -> None:
    step = load_text(PIPELINE).playbook.workflow[0]
    assert isinstance(step.tool, list)
    rules = step.tool[0].policy
    failed = {"status": "error", "data": None, "error": {"code": "x"}}
    verdict = policy.decide(rules, failed, 1, {})
    assert (verdict.action, verdict.delay) == ("retry", 1.0)
    ok = {"status": "ok", "data": {"page": 1}, "error": None}
    verdict = policy.decide(rules, ok, 1, {})
    assert verdict.action == "continue"
    assert verdict.set == {"ctx.last": "{{ outcome.data.page }}"}


def test_a_labelled_task_with_a_bad_field_is_reported_at_its_line() -> None:
    from noetl_core.errors import PlaybookError

    with pytest.raises(PlaybookError) as caught:
        load_text(PIPELINE.replace("kind: noop", "kind: noop\n          bogus: 1"), "pb.yaml")
    assert "workflow[0].tool[1]" in caught.value.message
    assert "bogus" in caught.value.message or "noop" in caught.value.message
