"""The tools of this release, called directly: python, noop, workbook, playbook, artifact."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from noetl_core.errors import ToolError
from noetl_core.tools import artifact, noop, playbook, python
from noetl_core.tools.base import StartChild, ToolCall

pytestmark = pytest.mark.unit


class Services:
    def __init__(self) -> None:
        self.loaded: list[Any] = []

    def load(self, ref: Any) -> Any:
        self.loaded.append(ref)
        return {"loaded": ref["key"]}

    def run_tool(self, tool: Any, input: Any, call: ToolCall) -> Any:
        raise AssertionError("not used here")


def call(fields: dict[str, Any], input: dict[str, Any] | None = None, **names: Any) -> ToolCall:
    return ToolCall(
        kind="python",
        fields=fields,
        input=input or {},
        step="s",
        execution_id="E",
        command_id="C",
        attempt=2,
        names=names,
        services=Services(),
    )


def test_python_global_result_wins() -> None:
    assert python.run(call({"code": "result = a + b"}, {"a": 1, "b": 2})) == 3


def test_python_main_gets_only_the_inputs_it_names() -> None:
    code = "def main(a, c=10):\n    return a + c"
    assert python.run(call({"code": code}, {"a": 1, "b": 2})) == 11


def test_python_main_with_kwargs_gets_every_input() -> None:
    code = "def main(**kw):\n    return sorted(kw)"
    assert python.run(call({"code": code}, {"a": 1, "b": 2})) == ["a", "b"]


def test_python_top_level_return_runs_the_code_as_a_function_body() -> None:
    assert python.run(call({"code": "x = a * 2\nreturn x"}, {"a": 21})) == 42


def test_python_result_precedence_is_result_then_main() -> None:
    code = "def main():\n    return 'main'\nresult = 'global'"
    assert python.run(call({"code": code})) == "global"


def test_python_sees_input_data_and_context() -> None:
    code = "result = [sorted(input_data), context['execution_id']]"
    out = python.run(call({"code": code}, {"a": 1}, execution_id="E"))
    assert out == [["a"], "E"]


def test_python_no_result_is_none() -> None:
    assert python.run(call({"code": "x = 1"})) is None


def test_python_failed_status_is_data() -> None:
    out = python.run(call({"code": "result = {'status': 'failed', 'message': 'quota'}"}))
    assert out == {"status": "failed", "message": "quota"}


def test_python_exception_names_step_class_and_code_line() -> None:
    with pytest.raises(ToolError) as caught:
        python.run(call({"code": "a = 1\nb = 0\nc = a / b"}))
    error = caught.value.to_dict()
    assert error["kind"] == "python" and error["code"] == "ZeroDivisionError"
    assert error["message"].startswith("step s: ZeroDivisionError at code line 3")
    assert error["retryable"] is False


def test_python_exception_line_in_a_function_body() -> None:
    with pytest.raises(ToolError) as caught:
        python.run(call({"code": "x = 1\nraise KeyError('k')\nreturn x"}))
    assert "at code line 2" in caught.value.message


def test_python_stdout_goes_to_the_calls_log_per_thread() -> None:
    logs: dict[int, str] = {}

    def one(n: int) -> None:
        c = call({"code": f"for i in range(50):\n    print('thread {n}', i)"})
        python.run(c)
        logs[n] = c.log.getvalue()

    threads = [threading.Thread(target=one, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for n, text in logs.items():
        lines = text.splitlines()
        assert len(lines) == 50 and all(line.startswith(f"thread {n} ") for line in lines)


def test_python_libs_and_script_file(tmp_path: Path) -> None:
    script = tmp_path / "step.py"
    script.write_text("result = js.dumps({'n': n})")
    fields = {"script": {"source": {"type": "file", "path": str(script)}}, "libs": {"js": "json"}}
    with pytest.raises(ToolError) as caught:  # read at load time (playbook.scripts) only
        python.run(call(fields, {"n": 1}))
    assert caught.value.code == "unsupported_source"
    inline = {"script": {"source": {"type": "inline", "code": script.read_text()}}}
    assert python.run(call({**inline, "libs": {"js": "json"}}, {"n": 1})) == '{"n": 1}'


def test_python_validate_reports_syntax_errors_and_missing_code() -> None:
    assert python.validate({}) == [("code", "`python` needs `code` (or `script: {source: ...}`)")]
    problems = python.validate({"code": "x = = 1"})
    assert problems and problems[0][0] == "code" and "line 1" in problems[0][1]


def test_idempotency_key_is_command_and_attempt() -> None:
    assert call({"code": ""}).idempotency_key == "C-2"


def test_noop_returns_an_empty_mapping() -> None:
    assert noop.run(call({})) == {}
    assert noop.validate({"url": "x"}) == [("url", "`noop` takes no field 'url'")]


def test_playbook_tool_asks_for_a_child_with_its_input_as_workload() -> None:
    out = playbook.run(call({"path": "a/b", "return_step": "s2"}, {"n": 1}))
    assert out == StartChild(path="a/b", version=None, workload={"n": 1}, return_step="s2")
    out = playbook.run(call({"path": "a/b", "payload": {"m": 2}}, {"n": 1}))
    assert out.workload == {"m": 2}


def test_artifact_get_loads_the_reference() -> None:
    c = call({"action": "get"}, {"result_ref": {"key": "k", "uri": "file:///x"}})
    assert artifact.run(c) == {"loaded": "k"}
    with pytest.raises(ToolError, match="result_ref"):
        artifact.run(call({"action": "get"}, {"result_ref": "nope"}))
