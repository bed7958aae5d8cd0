"""`playbook`: run a registered playbook as a child execution.

The parent step does not wait in a thread: the block records `call.pending` and ends;
the child's terminal entry completes the parent's step (see runtime/children.py).
"""

from __future__ import annotations

from typing import Any

from ..errors import ToolError
from ..toolspec.playbook import RAW_FIELDS as RAW_FIELDS
from ..toolspec.playbook import validate as validate
from .base import StartChild, ToolCall


def run(call: ToolCall) -> Any:
    workload = call.fields.get("payload")
    if workload is None:
        workload = call.input
    if not isinstance(workload, dict):
        raise ToolError(
            "the child's input/payload must be a mapping", tool_kind="playbook", code="bad_input"
        )
    return StartChild(
        path=call.fields["path"],
        version=call.fields.get("version"),
        workload=dict(workload),
        return_step=call.fields.get("return_step"),
    )
