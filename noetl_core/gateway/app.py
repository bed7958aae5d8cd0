"""The gateway: authenticated invocation by path, executions and their events, the
catalog and schedules over HTTP, on a Starlette application over any runtime.

    POST /v1/executions               {path, version?, workload?, request_id?} -> 202
    GET  /v1/executions               ?path=&status=&limit=          recent executions
    GET  /v1/executions/{id}          status, steps, result, error
    GET  /v1/executions/{id}/events   Server-Sent Events until the execution ends;
                                      `Last-Event-ID` resumes after that event
    POST /v1/executions/{id}/cancel   -> 202
    GET  /v1/catalog                  paths and versions;  POST (admin) registers YAML
    GET  /v1/schedules                the catalog's schedules
    GET  /v1/openapi.json             this interface

Every route needs a bearer token (`tokens.py`). Answers: 401 without a valid token, 403
without the scope or path, 404 for an unknown playbook or execution, 422 for a workload
that is not a JSON object, 413 over `MAX_BODY`, 400 for a body that is not JSON (or
nested past `NOETL_MAX_DEPTH`), 415 for another content type. The gateway reads the log
and the catalog only through the runtime's ports: it runs no tool and reads no secret.
The same `request_id` from the same subject starts one execution.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from .. import bounded, ids
from ..engine import entries as E
from ..errors import CatalogError, ExecutionNotFound, InputLimitError, NoetlError, PlaybookError
from . import tokens

if TYPE_CHECKING:
    from ..runtime.block import Runtime

MAX_BODY = 1 << 20
POLL = 0.2  # seconds between looks at the log while following an execution that moves
MAX_POLL = 2.0  # ... growing to this while it waits
KEEPALIVE = 15.0  # seconds of silence before a comment line keeps the stream open
Handler = Callable[[Request], Awaitable[Response]]


class HttpError(Exception):
    def __init__(self, status: int, message: str, code: str):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


def _error(status: int, message: str, code: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


STATUS = {
    tokens.TokenError: 401,
    tokens.Forbidden: 403,
    CatalogError: 404,
    ExecutionNotFound: 404,
    PlaybookError: 422,
}


def guarded(handler: Handler) -> Handler:
    """Map refusals to their statuses; nothing a client sends becomes a 500."""

    async def run(request: Request) -> Response:
        try:
            return await handler(request)
        except HttpError as exc:
            return _error(exc.status, exc.message, exc.code)
        except NoetlError as exc:
            status = next((s for kind, s in STATUS.items() if isinstance(exc, kind)), 400)
            return _error(status, exc.message, exc.code)

    return run


class Gateway:
    def __init__(self, rt: Runtime, key: bytes):
        self.rt = rt
        self.key = key

    def claims(self, request: Request) -> tokens.Claims:
        return tokens.verify(self.key, request.headers.get("authorization"), self.rt.clock.now())

    async def body(self, request: Request) -> dict[str, Any]:
        kind = request.headers.get("content-type", "").split(";")[0].strip()
        if kind != "application/json":
            raise HttpError(415, "the body must be application/json", "unsupported_media_type")
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY):
            raise HttpError(413 if declared.isdigit() else 400, "bad body length", "bad_length")
        raw = b""
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > MAX_BODY:
                raise HttpError(413, f"the body is over {MAX_BODY} bytes", "too_large")
        try:
            value = bounded.json_loads(raw, "the request body", self.rt.settings.limits)
        except InputLimitError as exc:
            raise HttpError(400, exc.message, exc.code) from None
        except ValueError:
            raise HttpError(400, "the body is not JSON", "malformed") from None
        if not isinstance(value, dict):
            raise HttpError(400, "the body must be a JSON object", "malformed")
        return value

    # -- executions ------------------------------------------------------------------
    async def start(self, request: Request) -> Response:
        claims = self.claims(request)
        body = await self.body(request)
        path = body.get("path")
        if not isinstance(path, str):
            raise HttpError(422, "`path` (a catalog path) is required", "invalid_request")
        claims.require("invoke", path)
        workload = body.get("workload") or {}
        if not isinstance(workload, dict):
            raise HttpError(422, "`workload` must be a JSON object", "invalid_workload")
        request_id = body.get("request_id")
        execution_id = None
        if request_id is not None:
            execution_id = "r" + ids.digest("request", claims.subject, str(request_id))[:18]

        def start() -> tuple[str, bool]:
            loaded = self.rt.catalog.resolve(path, body.get("version"))
            started: tuple[str, bool] = self.rt.start_once(
                loaded, {**workload}, execution_id, subject=claims.subject
            )
            return started

        started, new = await run_in_threadpool(start)
        return JSONResponse({"execution_id": started, "new": new}, status_code=202)

    def _path_of(self, execution_id: str) -> str:
        start = self.rt.log.get(E.start_id(execution_id))
        if start is None:
            raise ExecutionNotFound(f"no execution {execution_id!r}")
        playbook = start.body["playbook"]
        return str(playbook.get("path") or playbook.get("name") or "")

    async def show(self, request: Request) -> Response:
        claims = self.claims(request)
        execution_id = request.path_params["id"]
        claims.require("read", await run_in_threadpool(self._path_of, execution_id))
        return JSONResponse(await run_in_threadpool(self._state, execution_id))

    def _state(self, execution_id: str) -> dict[str, Any]:
        from ..runtime import payloads

        entries = self.rt.log.entries(execution_id)
        terminal = next((e for e in entries if e.kind == "terminal"), None)
        steps = [
            {"step": e.step, "status": e.body.get("status"), "attempt": e.attempt}
            for e in entries
            if e.kind == "done"
        ]
        out: dict[str, Any] = {"execution_id": execution_id, "steps": steps}
        out["status"] = terminal.body.get("status") if terminal else "running"
        if terminal is not None:
            out["result"] = payloads.load(self.rt.payloads, terminal.body.get("result"))
            out["error"] = terminal.body.get("error")
        return out

    async def listing(self, request: Request) -> Response:
        claims = self.claims(request)
        claims.require("read")
        wanted_path = request.query_params.get("path")
        limit = min(int(request.query_params.get("limit", "20") or 20), 200)

        def recent() -> list[dict[str, Any]]:
            out = []
            for start in self.rt.log.executions(limit):
                playbook = start.body["playbook"]
                path = str(playbook.get("path") or playbook.get("name") or "")
                if not claims.may(path) or (wanted_path and path != wanted_path):
                    continue
                out.append({"execution_id": start.execution_id, "path": path, "at": start.ts})
            return out

        return JSONResponse({"executions": await run_in_threadpool(recent)})

    async def cancel(self, request: Request) -> Response:
        claims = self.claims(request)
        execution_id = request.path_params["id"]
        claims.require("invoke", await run_in_threadpool(self._path_of, execution_id))
        reason = f"cancelled by {claims.subject}"
        if int(request.headers.get("content-length") or 0) > 0:
            given = (await self.body(request)).get("reason")
            if given is not None:
                reason = f"{str(given)[:200]} (by {claims.subject})"
        await run_in_threadpool(self.rt.cancel, execution_id, reason)
        return JSONResponse({"execution_id": execution_id, "status": "cancelling"}, 202)

    async def events(self, request: Request) -> Response:
        claims = self.claims(request)
        execution_id = request.path_params["id"]
        claims.require("read", await run_in_threadpool(self._path_of, execution_id))
        after = request.headers.get("last-event-id", "0")
        seen = int(after) if after.isdigit() else 0
        return StreamingResponse(self._follow(execution_id, seen), media_type="text/event-stream")

    async def _follow(self, execution_id: str, seen: int) -> AsyncIterator[str]:
        """Each entry once, in commit order, as an SSE event whose id is its position in
        the execution's log; ends after the terminal entry. The log is read whole once,
        then only from the last entry's seq on, less often while nothing happens."""
        batch = await run_in_threadpool(self.rt.log.entries, execution_id)
        position, last_seq, recent = 0, 0, set[str]()
        wait, quiet_since = POLL, time.monotonic()
        while True:
            for entry in batch:
                if entry.id in recent:
                    continue
                position += 1
                if entry.seq is not None:
                    if entry.seq // 1000 != last_seq // 1000:
                        recent = set()
                    last_seq = max(last_seq, entry.seq)
                recent.add(entry.id)
                if position > seen:
                    data = {"kind": entry.kind, "step": entry.step, "events": list(entry.events)}
                    yield f"id: {position}\nevent: {entry.kind}\ndata: {json.dumps(data)}\n\n"
                    wait, quiet_since = POLL, time.monotonic()
                if entry.kind == "terminal":
                    return
            if time.monotonic() - quiet_since > KEEPALIVE:
                yield ": still running\n\n"  # a comment: keeps proxies from closing the stream
                quiet_since = time.monotonic()
            await asyncio.sleep(wait)
            wait = min(wait * 1.5, MAX_POLL)
            batch = await run_in_threadpool(self.rt.log.entries_since, execution_id, last_seq)

    # -- catalog and schedules -------------------------------------------------------
    async def catalog(self, request: Request) -> Response:
        claims = self.claims(request)
        if request.method == "POST":
            claims.require("admin")
            body = await self.body(request)
            source = body.get("source")
            if not isinstance(source, str):
                raise HttpError(422, "`source` (the playbook's YAML) is required", "invalid")

            def register() -> Any:
                from ..playbook.loader import load_text

                return self.rt.catalog.register_loaded(load_text(source))

            done = await run_in_threadpool(register)
            state = {"path": done.path, "version": done.version, "new": done.new}
            return JSONResponse(state, status_code=201 if done.new else 200)
        claims.require("read")
        entries = await run_in_threadpool(self.rt.catalog.entries)
        listed = [{"path": p, "versions": v} for p, v in entries if claims.may(p)]
        return JSONResponse({"playbooks": listed})

    async def schedules(self, request: Request) -> Response:
        import datetime as dt

        from .. import schedules

        self.claims(request).require("read")
        now = dt.datetime.now(dt.UTC)
        found = await run_in_threadpool(schedules.due, self.rt.catalog)
        listed = [
            {
                "path": s.path,
                "cron": s.cron,
                "timezone": s.timezone,
                "next": s.next_after(now).isoformat(),
            }
            for _loaded, s in found
        ]
        return JSONResponse({"schedules": listed})

    async def openapi(self, request: Request) -> Response:
        return JSONResponse(OPENAPI)


def create_app(
    rt: Runtime, key: bytes, *, extra: Sequence[BaseRoute] = (), middleware: Sequence[Any] = ()
) -> Starlette:
    """The gateway's routes, then `extra` ones (`noetl serve` adds its callback route),
    behind `middleware` (Starlette `Middleware` entries)."""
    gateway = Gateway(rt, key)
    routes: list[BaseRoute] = [
        Route("/v1/executions", guarded(gateway.start), methods=["POST"]),
        Route("/v1/executions", guarded(gateway.listing), methods=["GET"]),
        Route("/v1/executions/{id}", guarded(gateway.show), methods=["GET"]),
        Route("/v1/executions/{id}/events", guarded(gateway.events), methods=["GET"]),
        Route("/v1/executions/{id}/cancel", guarded(gateway.cancel), methods=["POST"]),
        Route("/v1/catalog", guarded(gateway.catalog), methods=["GET", "POST"]),
        Route("/v1/schedules", guarded(gateway.schedules), methods=["GET"]),
        Route("/v1/openapi.json", gateway.openapi, methods=["GET"]),
        *extra,
    ]
    return Starlette(routes=routes, middleware=list(middleware))


def _op(summary: str, *codes: int) -> dict[str, Any]:
    return {
        "summary": summary,
        "security": [{"bearer": []}],
        "responses": {str(c): {"description": "see the gateway's module docs"} for c in codes},
    }


OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "NoETL gateway", "version": "1"},
    "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    "paths": {
        "/v1/executions": {
            "post": _op("start an execution by catalog path", 202, 400, 401, 403, 404, 413, 422),
            "get": _op("recent executions", 200, 401, 403),
        },
        "/v1/executions/{id}": {"get": _op("an execution's state", 200, 401, 403, 404)},
        "/v1/executions/{id}/events": {
            "get": _op("the execution's events (text/event-stream)", 200, 401, 403, 404)
        },
        "/v1/executions/{id}/cancel": {"post": _op("cancel", 202, 401, 403, 404)},
        "/v1/catalog": {
            "get": _op("the catalog", 200, 401, 403),
            "post": _op("register a playbook (admin)", 200, 201, 400, 401, 403, 422),
        },
        "/v1/schedules": {"get": _op("the catalog's schedules", 200, 401, 403)},
    },
}
