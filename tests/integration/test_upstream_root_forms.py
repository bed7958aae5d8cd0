"""Upstream forms at a playbook's root: `tracing:` hints, and keychain entries written as
`kind: secret_manager` whose secret references are templates."""

from __future__ import annotations

import pytest

from noetl_core.playbook import load_text
from noetl_core.runtime import payloads
from noetl_core.runtime.block import Runtime

pytestmark = pytest.mark.integration

PLAYBOOK = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: upstream_root}
tracing: {enabled: true, service_name: upstream_root, sample_rate: 1.0}
workload: {token_var: NOETL_TEST_UPSTREAM_TOKEN}
keychain:
  - name: api
    kind: secret_manager
    provider: env
    scope: global
    auth: "{{ gcp_auth }}"
    map:
      token: "{{ token_var }}"
workflow:
  - step: start
    tool:
      kind: python
      input: {t: "{{ keychain.api.token }}"}
      code: "result = {'length': len(t)}"
"""


def test_secret_manager_entries_and_root_tracing_run_unchanged(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOETL_TEST_UPSTREAM_TOKEN", "s3cret-value")
    loaded = load_text(PLAYBOOK)
    assert loaded.playbook.tracing == {
        "enabled": True,
        "service_name": "upstream_root",
        "sample_rate": 1.0,
    }
    (entry,) = loaded.playbook.keychain
    assert (entry["kind"], entry["provider"]) == ("secrets", "env")
    assert "auth" not in entry
    execution_id = rt.start(loaded, {})
    terminal = rt.wait(execution_id, 30)
    assert terminal is not None and terminal.body["status"] == "completed", terminal.body
    assert payloads.load(rt.payloads, terminal.body["result"]) == {"length": 12}
    logged = "".join(str(e.body) for e in rt.log.entries(execution_id))
    assert "s3cret-value" not in logged
