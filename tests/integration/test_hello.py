"""The hello world example, end to end through the embedded runtime."""

from __future__ import annotations

import pytest

from noetl_core.playbook import load_file
from noetl_core.runtime import payloads
from noetl_core.runtime.block import Runtime

from ..conftest import EXAMPLES

pytestmark = pytest.mark.integration


def test_hello_world_completes_with_the_last_steps_result(rt: Runtime) -> None:
    execution_id = rt.start(load_file(EXAMPLES / "hello_world.yaml"), {"name": "Ada"})
    terminal = rt.wait(execution_id, timeout=30)
    assert terminal is not None
    assert terminal.body["status"] == "completed"
    assert payloads.load(rt.payloads, terminal.body["result"]) == {
        "text": "HELLO, ADA!",
        "length": 11,
    }
