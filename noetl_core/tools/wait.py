"""`wait`: complete the step after a delay (`seconds`, or `until` an ISO-8601 time).

No worker sleeps: the block records `call.pending` and the timer completes the step with
`{waited: seconds}`. Durations may be written `30`, `"45s"`, `"5m"`, `"1h"`.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from ..callbacks import seconds as duration
from ..errors import NoetlError, ToolError
from ..toolspec.wait import RAW_FIELDS as RAW_FIELDS
from ..toolspec.wait import validate as validate
from .base import ToolCall, Wait


def run(call: ToolCall) -> Any:
    try:
        if "until" in call.fields:
            until = dt.datetime.fromisoformat(str(call.fields["until"]))
            if until.tzinfo is None:
                until = until.replace(tzinfo=dt.UTC)
            return Wait(max(0.0, until.timestamp() - time.time()))
        return Wait(max(0.0, duration(call.fields["seconds"], f"step {call.step}: seconds")))
    except (NoetlError, ValueError) as exc:
        raise ToolError(
            f"step {call.step}: wait: {exc}", tool_kind="wait", code="bad_time"
        ) from None
