"""Upstream NoETL's keychain kinds (`oauth2`, `google_id_token`) and tool kinds (`shell`,
`transfer`) run here; its other tool kinds are refused at validation, named as upstream's.
Token endpoints and the metadata server are real HTTP servers on free local ports."""

from __future__ import annotations

from typing import Any

import pytest

from noetl_core.engine.entries import Entry
from noetl_core.errors import PlaybookError
from noetl_core.playbook import load_text
from noetl_core.runtime.block import Runtime

pytestmark = pytest.mark.integration


def finish(
    rt: Runtime, text: str, workload: dict[str, Any] | None = None, status: str = "completed"
) -> tuple[str, Entry]:
    execution_id = rt.start(load_text(text), workload or {})
    terminal = rt.wait(execution_id, 60)
    assert terminal is not None, "the execution did not finish"
    assert terminal.body["status"] == status, terminal.body
    return execution_id, terminal


def result_of(rt: Runtime, execution_id: str, step: str) -> Any:
    entry = next(e for e in rt.log.find(execution_id, "done") if e.step == step)
    from noetl_core.runtime import payloads

    return payloads.load(rt.payloads, entry.body["result"])


def playbook(steps: str, keychain: str = "") -> str:
    head = "apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {name: kinds}\n"
    return head + (f"keychain:\n{keychain}" if keychain else "") + "workflow:\n" + steps


# -- kinds upstream has and this runtime does not -----------------------------------------


@pytest.mark.parametrize("kind", ["snowflake", "nats", "ducklake", "container", "gcs", "mcp"])
def test_upstream_kinds_not_run_here_are_refused_by_name(kind: str) -> None:
    text = playbook(f"  - step: start\n    tool: {{kind: {kind}, query: 'SELECT 1'}}\n")
    with pytest.raises(PlaybookError) as caught:
        load_text(text, "pb.yaml")
    message = caught.value.message
    assert "pb.yaml:6: workflow[0].tool.kind" in message
    assert f"tool kind {kind!r} is upstream NoETL's but not supported here" in message
    assert "unknown tool kind" not in message


def test_a_kind_nobody_has_is_still_unknown() -> None:
    with pytest.raises(PlaybookError, match="unknown tool kind 'bogus'"):
        load_text(playbook("  - step: start\n    tool: {kind: bogus}\n"), "pb.yaml")


# -- shell ----------------------------------------------------------------------------------

SHELL = """  - step: start
    tool:
      kind: shell
      env: {GREETING: "{{ workload.greeting }}", N: 3}
      cmds:
        - echo "$GREETING $N"; echo warn >&2
        - |
          test -z "$HOME_SECRET_PROBE" && echo clean
"""


def test_shell_runs_programs_with_only_the_given_env_and_returns_upstreams_shape(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME_SECRET_PROBE", "worker-only")
    execution_id, _ = finish(rt, playbook(SHELL), {"greeting": "hello"})
    out = result_of(rt, execution_id, "start")
    assert out["returncode"] == 0
    assert out["stdout"] == "hello 3\n\nclean\n"
    assert out["stderr"] == "warn\n"
    assert [c["returncode"] for c in out["commands"]] == [0, 0]
    assert out["commands"][0]["cmd_preview"] == 'echo "$GREETING $N"; echo warn >&2'
    assert set(out["commands"][0]) == {
        "cmd_preview",
        "returncode",
        "stdout",
        "stderr",
        "duration_ms",
    }


FAILING = """  - step: start
    tool:
      kind: shell
      cmds: ["echo before", "echo 'no such table' >&2; exit 3", "echo never"]
    next:
      - step: recover
        when: "{{ event.name == 'call.error' and error.code == 'exit_status' }}"
        args: {e: "{{ error }}"}
  - step: recover
    tool:
      kind: python
      input: {e: "{{ args.e }}"}
      code: "result = {'message': e['message'], 'rc': e['shell']['returncode'], 'n': len(e['shell']['commands'])}"
"""


def test_a_non_zero_exit_fails_the_step_with_the_stderr_in_the_error(rt: Runtime) -> None:
    execution_id, _ = finish(rt, playbook(FAILING))
    out = result_of(rt, execution_id, "recover")
    assert out["rc"] == 3 and out["n"] == 2
    assert "exited with status 3" in out["message"]
    assert "no such table" in out["message"]


def test_a_shell_program_past_its_timeout_is_killed(rt: Runtime) -> None:
    import time

    text = playbook(
        "  - step: start\n    tool:\n      kind: shell\n      timeout_seconds: 0.5\n"
        "      command: 'sleep 30 & sleep 30; echo done'\n"
    )
    began = time.monotonic()
    _, terminal = finish(rt, text, status="failed")
    assert time.monotonic() - began < 15
    error = terminal.body["error"]
    assert error["code"] == "timeout" and error["retryable"] is True
    assert "timed out after 0.5 s" in error["message"]


def test_shell_fields_are_checked_at_validation() -> None:
    bad = playbook("  - step: start\n    tool: {kind: shell, cmds: []}\n")
    with pytest.raises(
        PlaybookError, match=r"workflow\[0\]\.tool\.cmds: `cmds` must be a non-empty"
    ):
        load_text(bad, "pb.yaml")
    none = playbook("  - step: start\n    tool: {kind: shell}\n")
    with pytest.raises(PlaybookError, match="`shell` needs `cmds`"):
        load_text(none, "pb.yaml")
