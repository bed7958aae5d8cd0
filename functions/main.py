"""Cloud Functions (gen2) entry points: decode, call the core, map the outcome.

- `worker`: Pub/Sub `messagePublished` on the commands topic; one block per invocation.
  A raised error means "deliver again"; a return acknowledges.
- `start`: HTTP POST `{path, version?, workload?}` -> 202 `{execution_id}`. Bodies are
  parsed by the core (`noetl_core.bounded`), which refuses JSON nested too deep.
- `callback`: HTTP POST `.../callbacks/<token>` with a JSON body -> 202 / 400 / 401 / 410 / 413.
- `cancel`: HTTP POST `{execution_id}` -> 202.
- `trigger`: Pub/Sub message from Cloud Scheduler -> one execution per scheduled time.

On Cloud Run an instance whose settings are missing or local stops here, at import, with
one line naming every such variable (`settings.require_production`), instead of running
blocks that could never finish.
"""

from __future__ import annotations

import sys
from typing import Any

import functions_framework
from flask import Request

from noetl_core import cloud, settings
from noetl_core.errors import ConfigError, NoetlError

try:
    settings.require_production()
except ConfigError as refused:
    sys.stderr.write(f"{refused}\n")
    raise SystemExit(1) from None


@functions_framework.cloud_event
def worker(event: Any) -> None:
    cloud.on_message(event.data)


@functions_framework.cloud_event
def trigger(event: Any) -> None:
    cloud.on_trigger(event.data)


@functions_framework.http
def start(request: Request) -> tuple[dict[str, Any], int]:
    try:
        return cloud.start(request.get_data(cache=False)), 202
    except NoetlError as error:
        return {"error": error.to_dict()}, cloud.http_status(error)


@functions_framework.http
def callback(request: Request) -> tuple[dict[str, Any], int]:
    token = request.path.rstrip("/").rsplit("/", 1)[-1] or request.args.get("token", "")
    status, body = cloud.on_callback(token, request.get_data(cache=False))
    return body, status


@functions_framework.http
def cancel(request: Request) -> tuple[dict[str, Any], int]:
    try:
        return cloud.cancel(request.get_data(cache=False)), 202
    except NoetlError as error:
        return {"error": error.to_dict()}, cloud.http_status(error)
