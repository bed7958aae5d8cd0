"""Cloud Functions (gen2) entry points: decode, call the core, map the outcome.

- `worker`: Pub/Sub `messagePublished` on the commands topic; one block per invocation.
  A raised error means "deliver again"; a return acknowledges.
- `gateway`: HTTP, served as ASGI (`FUNCTION_USE_ASGI=true`): the gateway application
  of `noetl_core/gateway/app.py` (executions by catalog path, their state and event
  streams, cancel, the catalog and schedules), every route behind a bearer token.
- `callback`: HTTP POST `.../callbacks/<token>` with a JSON body -> 202 / 400 / 401 / 410 / 413.
- `trigger`: Pub/Sub message from Cloud Scheduler -> one execution per scheduled time.

On Cloud Run an instance whose settings are missing or local stops here, at import, with
one line naming every such variable (`settings.require_production`), instead of running
blocks that could never finish.
"""

from __future__ import annotations

import sys
from typing import Any

import functions_framework
import functions_framework.aio
from flask import Request
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request as StarletteRequest
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from noetl_core import cloud, settings
from noetl_core.errors import ConfigError

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


class _Forward(Response):
    """A response that hands the request to another ASGI application: the gateway routes
    the path itself, and streams its answers (Server-Sent Events)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        inner = {k: v for k, v in scope.items() if k not in ("path_params", "endpoint", "route")}
        await self.app(inner, receive, send)


@functions_framework.aio.http
async def gateway(request: StarletteRequest) -> Response:
    return _Forward(await run_in_threadpool(cloud.gateway))  # built once per instance


@functions_framework.http
def callback(request: Request) -> tuple[dict[str, Any], int]:
    token = request.path.rstrip("/").rsplit("/", 1)[-1] or request.args.get("token", "")
    status, body = cloud.on_callback(token, request.get_data(cache=False))
    return body, status
