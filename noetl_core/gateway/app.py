"""The gateway: authenticated invocation by path, executions and their events, the
catalog and schedules over HTTP, on a Starlette application over any runtime.

    POST /v1/executions               {path, version?, workload?, request_id?} -> 202
    GET  /v1/executions               ?path=&status=&limit=          recent executions
    GET  /v1/executions/{id}          status, steps, result, error
    GET  /v1/executions/{id}/events   Server-Sent Events until the execution ends;
                                      `Last-Event-ID` resumes after that event
    POST /v1/executions/{id}/cancel   -> 202 (409 once it has ended)
    GET  /v1/catalog                  paths and versions;  POST (admin) registers YAML
    GET  /v1/schedules                the catalog's schedules
    GET  /v1/executions/{id}/graph    steps, arcs, per-step status, blocks (the viewer's)
    GET  /v1/executions/{id}/entries/{entry}  one block's inputs, output, error
    GET  /v1/executions/{id}/logs     ?step=   what its steps printed, their errors
    GET  /v1/openapi.json             this interface
    GET  /viewer/                     the execution viewer (`viewer.py`)
    POST /viewer/session              a read token in the bearer header -> the viewer's
                                      cookie;  DELETE signs out

Every /v1 route needs a bearer token (`tokens.py`); a GET may instead carry the viewer's
cookie (`viewer.py`), which `noetl serve`'s one-time login URL sets. Answers: 401 without
a valid token, 403
without the scope or path, 404 for an unknown playbook or execution, 409 for a cancel of
an execution that has ended, 422 for a workload
that is not a JSON object, 413 over `MAX_BODY`, 400 for a body that is not JSON (or
nested past `NOETL_MAX_DEPTH`), 415 for another content type. The gateway reads the log
and the catalog only through the runtime's ports: it runs no tool and reads no secret.
The same `request_id` from the same subject starts one execution.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from .. import bounded, ids
from ..engine import entries as E
from ..engine.entries import Entry
from ..errors import (
    CatalogError,
    ExecutionNotFound,
    InputLimitError,
    NoetlError,
    PlaybookError,
    WorkloadError,
)
from . import tokens, viewer

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
    WorkloadError: 422,
}


def guarded(handler: Handler) -> Handler:
    """Map refusals to their statuses; nothing a client sends becomes a 500."""

    async def run(request: Request) -> Response:
        try:
            return await handler(request)
        except HttpError as exc:
            return _error(exc.status, exc.message, exc.code)
        except NoetlError as exc:
            fallback = 503 if exc.retryable else 400  # e.g. the log did not answer: try again
            status = next((s for kind, s in STATUS.items() if isinstance(exc, kind)), fallback)
            return _error(status, exc.message, exc.code)

    return run


MAX_SCAN = 1000  # most start entries one filtered listing looks at
STATUSES = ("running", "completed", "failed", "cancelled")


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class _ListQuery:
    path: str | None
    status: str | None
    since: float | None
    limit: int

    @property
    def plain(self) -> bool:
        return self.path is None and self.status is None and self.since is None

    @classmethod
    def of(cls, request: Request) -> _ListQuery:
        params = request.query_params
        raw_limit = params.get("limit", "20")
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 200:
            raise HttpError(422, "`limit` is a whole number from 1 to 200", "invalid_query")
        status = params.get("status") or None
        if status is not None and status not in STATUSES:
            raise HttpError(422, f"`status` is one of {', '.join(STATUSES)}", "invalid_query")
        since = None
        if params.get("since"):
            try:
                moment = dt.datetime.fromisoformat(params["since"].replace("Z", "+00:00"))
            except ValueError:
                raise HttpError(
                    422, "`since` is an ISO 8601 time, e.g. 2026-12-03T10:00:00Z", "invalid_query"
                ) from None
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=dt.UTC)
            since = moment.timestamp()
        return cls(params.get("path") or None, status, since, int(raw_limit))


def _event_data(entry: Entry) -> dict[str, Any]:
    """What an event carries: the entry's kind, step, event names, time and attempt, and
    for an ended step or execution its status and error (results: GET the execution)."""
    data: dict[str, Any] = {
        "kind": entry.kind,
        "step": entry.step,
        "events": list(entry.events),
        "ts": entry.ts,
    }
    if entry.command_id:
        data["command_id"], data["attempt"] = entry.command_id, entry.attempt
    for field in ("status", "error"):
        if entry.kind in ("done", "terminal", "loopdone") and entry.body.get(field) is not None:
            data[field] = entry.body[field]
    return data


class Gateway:
    def __init__(self, rt: Runtime, key: bytes):
        self.rt = rt
        self.key = key

    def claims(self, request: Request) -> tokens.Claims:
        """The bearer header's claims; for a GET without one, the viewer's cookie
        (`viewer.py`): a page can read with it, never start or cancel."""
        header = request.headers.get("authorization")
        if header is None and request.method in ("GET", "HEAD"):
            cookie = request.cookies.get(viewer.COOKIE)
            if cookie:
                header = f"Bearer {cookie}"
        return tokens.verify(self.key, header, self.rt.clock.now())

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
            execution_id = ids.derived_execution_id("request", claims.subject, str(request_id))

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
        query = _ListQuery.of(request)

        def recent() -> list[dict[str, Any]]:
            scan = query.limit if query.plain else min(query.limit * 10, MAX_SCAN)
            starts = []
            for start in self.rt.log.executions(scan):
                playbook = start.body["playbook"]
                path = str(playbook.get("path") or playbook.get("name") or "")
                if not claims.may(path) or (query.path and path != query.path):
                    continue
                if query.since is not None and start.ts < query.since:
                    continue
                starts.append((start, path, playbook))
            ended = self.rt.log.get_many([E.terminal_id(s.execution_id) for s, _, _ in starts])
            out = []
            for start, path, playbook in starts:
                terminal = ended.get(E.terminal_id(start.execution_id))
                status = str(terminal.body.get("status")) if terminal else "running"
                if query.status and status != query.status:
                    continue
                out.append(
                    {
                        "execution_id": start.execution_id,
                        "path": path,
                        "version": playbook.get("version"),
                        "status": status,
                        "started_at": _iso(start.ts),
                        "subject": start.body.get("subject"),
                    }
                )
            return out[: query.limit]

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
        ended = await run_in_threadpool(self.rt.log.get, E.terminal_id(execution_id))
        if ended is not None:
            at = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ended.ts))
            raise HttpError(
                409,
                f"execution {execution_id} already ended ({ended.body.get('status')} at {at} "
                "UTC): there is nothing to cancel",
                "already_ended",
            )
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
                    data = _event_data(entry)
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

    async def graph(self, request: Request) -> Response:
        claims = self.claims(request)
        execution_id = request.path_params["id"]
        claims.require("read", await run_in_threadpool(self._path_of, execution_id))
        drawn = await run_in_threadpool(viewer.graph_of, self.rt, execution_id)
        return viewer.json_answer(drawn)

    async def entry(self, request: Request) -> Response:
        claims = self.claims(request)
        execution_id = request.path_params["id"]
        claims.require("read", await run_in_threadpool(self._path_of, execution_id))
        found = await run_in_threadpool(
            viewer.entry_of, self.rt, execution_id, request.path_params["entry"]
        )
        if found is None:
            raise HttpError(404, "no such entry in this execution", "not_found")
        return viewer.json_answer(found)

    async def logs(self, request: Request) -> Response:
        """What the execution's steps printed and their errors (`noetl logs`)."""
        from ..view import logs_of

        claims = self.claims(request)
        execution_id = request.path_params["id"]
        claims.require("read", await run_in_threadpool(self._path_of, execution_id))
        step = request.query_params.get("step") or None
        entries = await run_in_threadpool(self.rt.log.entries, execution_id)
        rows = logs_of(entries, execution_id, step)  # an unknown step: 404
        return viewer.json_answer({"execution_id": execution_id, "logs": rows})

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
                from .. import schedules
                from ..playbook.loader import load_text

                done = self.rt.catalog.register_loaded(loaded := load_text(source))
                schedules.publish(self.rt, loaded)  # Cloud Scheduler jobs of its path
                return done

            done = await run_in_threadpool(register)
            state = {"path": done.path, "version": done.version, "new": done.new}
            return JSONResponse(state, status_code=201 if done.new else 200)
        claims.require("read")
        entries = await run_in_threadpool(self.rt.catalog.entries)
        listed = [{"path": p, "versions": v} for p, v in entries if claims.may(p)]
        return JSONResponse({"playbooks": listed})

    async def schedules(self, request: Request) -> Response:
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

    async def session(self, request: Request) -> Response:
        """`POST /viewer/session` with a bearer token that has the read scope: sets the
        viewer's cookie, a read-only token with the same subject and paths, expiring with
        it (at most `viewer.SESSION_TTL`). How a browser signs in to a gateway that mints
        no login links (the deployed `gateway` function): the token is pasted once into
        the page, sent in this header, and never kept by the page."""
        header = request.headers.get("authorization")
        if header is None:
            raise tokens.TokenError("a bearer token is required (Authorization: Bearer <token>)")
        claims = tokens.verify(self.key, header, self.rt.clock.now())
        claims.require("read")
        now = self.rt.clock.now()
        ttl = min(claims.expires - now, viewer.SESSION_TTL)
        cookie = tokens.create(self.key, claims.subject, ["read"], list(claims.paths), now, ttl)
        answer = JSONResponse({"subject": claims.subject, "expires": _iso(now + ttl)})
        viewer.set_cookie(answer, request, cookie, ttl)
        return answer

    async def openapi(self, request: Request) -> Response:
        return JSONResponse(OPENAPI)


def create_app(
    rt: Runtime,
    key: bytes,
    *,
    extra: Sequence[BaseRoute] = (),
    middleware: Sequence[Any] = (),
    login: viewer.LoginCodes | None = None,
) -> Starlette:
    """The gateway's routes and the viewer's pages, then `extra` ones (`noetl serve` adds
    its callback route), behind `middleware` (Starlette `Middleware` entries). `login`:
    the one-time codes `GET /viewer/login` redeems (`noetl serve` mints them)."""
    gateway = Gateway(rt, key)
    pages: list[BaseRoute] = [
        Route("/viewer", viewer.to_page, methods=["GET"]),
        Route("/viewer/", viewer.page, methods=["GET"]),
    ]
    if login is not None:
        pages.append(
            Route("/viewer/login", viewer.login_route(login, key, rt.clock.now), methods=["GET"])
        )
    pages.append(Route("/viewer/session", guarded(gateway.session), methods=["POST"]))
    pages.append(Route("/viewer/session", viewer.sign_out, methods=["DELETE"]))
    pages.append(Route("/viewer/{name}", viewer.page, methods=["GET"]))
    routes: list[BaseRoute] = [
        Route("/v1/executions", guarded(gateway.start), methods=["POST"]),
        Route("/v1/executions", guarded(gateway.listing), methods=["GET"]),
        Route("/v1/executions/{id}", guarded(gateway.show), methods=["GET"]),
        Route("/v1/executions/{id}/events", guarded(gateway.events), methods=["GET"]),
        Route("/v1/executions/{id}/cancel", guarded(gateway.cancel), methods=["POST"]),
        Route("/v1/executions/{id}/graph", guarded(gateway.graph), methods=["GET"]),
        Route("/v1/executions/{id}/logs", guarded(gateway.logs), methods=["GET"]),
        Route("/v1/executions/{id}/entries/{entry}", guarded(gateway.entry), methods=["GET"]),
        Route("/v1/catalog", guarded(gateway.catalog), methods=["GET", "POST"]),
        Route("/v1/schedules", guarded(gateway.schedules), methods=["GET"]),
        Route("/v1/openapi.json", gateway.openapi, methods=["GET"]),
        *pages,
        *extra,
    ]
    return Starlette(routes=routes, middleware=list(middleware))


def _error_responses(*codes: int) -> dict[str, Any]:
    why = {
        400: "malformed request (not JSON, nested too deep, bad length)",
        401: "no valid bearer token",
        403: "the token lacks the scope or the playbook path",
        404: "unknown playbook or execution",
        409: "the execution has already ended",
        413: "body too large",
        415: "the body is not application/json",
        422: "the request is well-formed but invalid (e.g. the workload)",
    }
    error = {"$ref": "#/components/schemas/Error"}
    return {
        str(c): {"description": why[c], "content": {"application/json": {"schema": error}}}
        for c in codes
    }


def _json(schema_name: str) -> dict[str, Any]:
    ref = {"$ref": f"#/components/schemas/{schema_name}"}
    return {"content": {"application/json": {"schema": ref}}}


def _op(
    summary: str,
    ok: int,
    answer: dict[str, Any],
    errors: tuple[int, ...],
    *,
    body: str | None = None,
    body_required: bool = True,
    parameters: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary,
        "security": [{"bearer": []}],
        "responses": {str(ok): {"description": "done", **answer}, **_error_responses(*errors)},
    }
    if body is not None:
        operation["requestBody"] = {"required": body_required, **_json(body)}
    if parameters:
        operation["parameters"] = parameters
    return operation


_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "minLength": 1, "maxLength": 200},
}
_ANY = {"type": "object", "additionalProperties": True}

OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "NoETL gateway",
        "version": "1",
        "description": "Start playbooks by catalog path, follow their events, manage the "
        "catalog. Every operation needs `Authorization: Bearer <token>` (`noetl token "
        "create`); errors are `{error: {code, message}}`.",
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {
                    "error": {
                        "type": "object",
                        "required": ["code", "message"],
                        "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
                    }
                },
            },
            "StartRequest": {
                "type": "object",
                "required": ["path"],
                "properties": {
                    "path": {"type": "string", "description": "a catalog path"},
                    "version": {"type": "integer", "minimum": 1},
                    "workload": _ANY,
                    "request_id": {
                        "type": "string",
                        "description": "the same id from the same subject starts one execution",
                    },
                },
            },
            "Started": {
                "type": "object",
                "required": ["execution_id", "new"],
                "properties": {"execution_id": {"type": "string"}, "new": {"type": "boolean"}},
            },
            "ExecutionList": {
                "type": "object",
                "required": ["executions"],
                "properties": {
                    "executions": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["execution_id", "path", "status", "started_at"],
                            "properties": {
                                "execution_id": {"type": "string"},
                                "path": {"type": "string"},
                                "version": {"type": "integer", "nullable": True},
                                "status": {"type": "string", "enum": list(STATUSES)},
                                "started_at": {"type": "string", "format": "date-time"},
                                "subject": {"type": "string", "nullable": True},
                            },
                        },
                    }
                },
            },
            "Execution": {
                "type": "object",
                "required": ["execution_id", "status", "steps"],
                "properties": {
                    "execution_id": {"type": "string"},
                    "status": {"type": "string", "enum": list(STATUSES)},
                    "steps": {"type": "array", "items": _ANY},
                    "result": {"nullable": True},
                    "error": {"nullable": True},
                },
            },
            "CancelRequest": {
                "type": "object",
                "properties": {"reason": {"type": "string", "maxLength": 200}},
            },
            "Cancelling": {
                "type": "object",
                "required": ["execution_id", "status"],
                "properties": {"execution_id": {"type": "string"}, "status": {"type": "string"}},
            },
            "RegisterRequest": {
                "type": "object",
                "required": ["source"],
                "properties": {"source": {"type": "string", "description": "playbook YAML"}},
            },
            "Registered": {
                "type": "object",
                "required": ["path", "version", "new"],
                "properties": {
                    "path": {"type": "string"},
                    "version": {"type": "integer"},
                    "new": {"type": "boolean"},
                },
            },
            "Catalog": {
                "type": "object",
                "required": ["playbooks"],
                "properties": {
                    "playbooks": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "path": {"type": "string"},
                                "versions": {"type": "array", "items": {"type": "integer"}},
                            },
                        },
                    }
                },
            },
            "Schedules": {
                "type": "object",
                "required": ["schedules"],
                "properties": {
                    "schedules": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "path": {"type": "string"},
                                "cron": {"type": "string"},
                                "timezone": {"type": "string"},
                                "next": {"type": "string", "format": "date-time"},
                            },
                        },
                    }
                },
            },
        },
    },
    "paths": {
        "/v1/executions": {
            "post": _op(
                "start an execution by catalog path",
                202,
                _json("Started"),
                (400, 401, 403, 404, 413, 415, 422),
                body="StartRequest",
            ),
            "get": _op(
                "recent executions, newest first",
                200,
                _json("ExecutionList"),
                (401, 403, 422),
                parameters=[
                    {"name": "path", "in": "query", "schema": {"type": "string"}},
                    {
                        "name": "status",
                        "in": "query",
                        "schema": {"type": "string", "enum": list(STATUSES)},
                    },
                    {
                        "name": "since",
                        "in": "query",
                        "schema": {"type": "string", "format": "date-time"},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 200},
                    },
                ],
            ),
        },
        "/v1/executions/{id}": {
            "get": _op(
                "an execution's status, steps, result and error",
                200,
                _json("Execution"),
                (401, 403, 404),
                parameters=[_ID],
            )
        },
        "/v1/executions/{id}/events": {
            "get": _op(
                "the execution's log entries as Server-Sent Events until it ends; "
                "`Last-Event-ID` resumes after that event",
                200,
                {"content": {"text/event-stream": {"schema": {"type": "string"}}}},
                (401, 403, 404),
                parameters=[
                    _ID,
                    {"name": "Last-Event-ID", "in": "header", "schema": {"type": "string"}},
                ],
            )
        },
        "/v1/executions/{id}/cancel": {
            "post": _op(
                "cancel an execution and its children",
                202,
                _json("Cancelling"),
                (400, 401, 403, 404, 409, 413, 415),
                body="CancelRequest",
                body_required=False,
                parameters=[_ID],
            )
        },
        "/v1/executions/{id}/logs": {
            "get": _op(
                "what the execution's steps printed (the last 64 KiB of each block) and "
                "their errors, in log order; `step` limits it to one step",
                200,
                {"content": {"application/json": {"schema": _ANY}}},
                (401, 403, 404),
                parameters=[
                    _ID,
                    {
                        "name": "step",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string"},
                    },
                ],
            )
        },
        "/v1/executions/{id}/graph": {
            "get": _op(
                "the execution's steps and arcs, each step's status and counts, and its "
                "blocks (start, end, attempt, status): what the viewer draws",
                200,
                {"content": {"application/json": {"schema": _ANY}}},
                (401, 403, 404),
                parameters=[_ID],
            )
        },
        "/v1/executions/{id}/entries/{entry}": {
            "get": _op(
                "one entry of the execution: events, times, status, error, output, and "
                "the inputs its step declares",
                200,
                {"content": {"application/json": {"schema": _ANY}}},
                (401, 403, 404),
                parameters=[_ID, {**_ID, "name": "entry"}],
            )
        },
        "/v1/catalog": {
            "get": _op("the catalog's paths and versions", 200, _json("Catalog"), (401, 403)),
            "post": _op(
                "register a playbook (admin scope)",
                201,
                _json("Registered"),
                (400, 401, 403, 413, 415, 422),
                body="RegisterRequest",
            ),
        },
        "/v1/schedules": {
            "get": _op("the catalog's schedules", 200, _json("Schedules"), (401, 403))
        },
    },
}
OPENAPI["paths"]["/v1/catalog"]["post"]["responses"]["200"] = {
    "description": "already registered: unchanged",
    **_json("Registered"),
}
