"""The execution viewer: static pages under /viewer/, its one-time login, and the JSON an
execution's page draws (its step graph with per-step status, its blocks, one entry).

    GET /viewer/                          the pages (index.html, app.js, style.css)
    GET /viewer/login?code=CODE           `noetl serve`'s one-time login: sets an HttpOnly,
                                          SameSite=Strict cookie holding a read-scoped
                                          token, then redirects to /viewer/
    POST /viewer/session                  the same cookie from a pasted token with the read
                                          scope (bearer header; its paths and expiry kept):
                                          how one signs in to the deployed gateway;
                                          DELETE signs out
    GET /v1/executions/{id}/graph         steps, arcs, per-step status and counts, blocks
    GET /v1/executions/{id}/entries/{e}   one block's inputs (declared), output and error

The cookie is accepted for GET requests only (`Gateway.claims`): everything that starts
or cancels still needs the bearer header. A login code is random, single-use and valid
`CODE_TTL` seconds; the page never puts a token in a URL.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Set
from importlib import resources
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from ..engine import entries as E
from ..engine.entries import Entry
from . import tokens

if TYPE_CHECKING:
    from ..engine.graph import Graph
    from ..playbook.model import Playbook
    from ..runtime.block import Runtime

COOKIE = "noetl_viewer"
CODE_TTL = 300.0  # seconds a login code stays valid
SESSION_TTL = 12 * 3600.0  # seconds the cookie's read token lasts
MAX_BLOCKS = 1000  # timeline rows one graph answer carries (the first and latest halves)
ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class LoginCodes:
    """One-time login codes: random, single-use, valid `ttl` seconds from minting."""

    def __init__(self, clock: Callable[[], float] = time.time, ttl: float = CODE_TTL):
        self.clock, self.ttl = clock, ttl
        self._codes: dict[str, float] = {}
        self._lock = threading.Lock()

    def mint(self) -> str:
        code = secrets.token_urlsafe(24)
        with self._lock:
            now = self.clock()
            self._codes = {c: t for c, t in self._codes.items() if t > now}
            self._codes[code] = now + self.ttl
        return code

    def redeem(self, code: str) -> bool:
        """True once for a code minted here and not expired; False ever after."""
        with self._lock:
            expires = self._codes.pop(code, None)
        return expires is not None and self.clock() < expires


def asset(name: str) -> Response:
    kind = ASSETS.get(name)
    if kind is None:
        return PlainTextResponse("not found", status_code=404)
    text = resources.files("noetl_core.gateway").joinpath("viewer", name).read_bytes()
    return Response(text, media_type=kind, headers=HEADERS)


async def page(request: Request) -> Response:
    return asset(request.path_params.get("name") or "index.html")


async def to_page(request: Request) -> Response:
    return RedirectResponse("viewer/", status_code=307)  # relative: kept behind a prefix


def login_route(codes: LoginCodes, key: bytes, clock: Callable[[], float]) -> Any:
    async def login(request: Request) -> Response:
        code = request.query_params.get("code", "")
        if not code or not codes.redeem(code):
            return PlainTextResponse(
                "this login link is used or expired: `noetl serve` prints a new one at start",
                status_code=401,
                headers=HEADERS,
            )
        token = tokens.create(key, "viewer", ["read"], ["*"], clock(), SESSION_TTL)
        answer = RedirectResponse("./", status_code=303, headers=HEADERS)  # /viewer/
        set_cookie(answer, request, token, SESSION_TTL)
        return answer

    return login


def set_cookie(answer: Response, request: Request, token: str, ttl: float) -> None:
    """The viewer's session: HttpOnly (no script reads it), SameSite=Strict (no other
    site's page sends it), Secure behind HTTPS; the gateway accepts it for GET only."""
    answer.set_cookie(
        COOKIE,
        token,
        max_age=max(1, int(ttl)),
        path="/",
        httponly=True,
        samesite="strict",
        secure=_https(request),
    )


def _https(request: Request) -> bool:
    # Cloud Run and Cloud Functions end TLS in front and say so in X-Forwarded-Proto
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip()
    return request.url.scheme == "https" or forwarded == "https"


async def sign_out(request: Request) -> Response:
    """`DELETE /viewer/session`: forget the cookie (nothing to authorize: it only clears)."""
    answer = Response(status_code=204, headers=HEADERS)
    answer.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return answer


# -- what an execution's page draws ------------------------------------------------------


def _tool_kind(step: Any) -> str:
    if isinstance(step.tool, list):
        return "pipeline"
    return str(getattr(step.tool, "kind", "") or "")


_PARSED: dict[str, tuple[Playbook, Graph]] = {}
_PARSED_LOCK = threading.Lock()
PARSED_CACHE = 64  # playbooks kept parsed, by digest


def _parsed(rt: Runtime, header: dict[str, Any]) -> tuple[Playbook, Graph]:
    """An execution's playbook and step graph, parsed from its start entry's source once
    per digest (a page refreshes its graph on every event)."""
    from ..engine import graph as graphs
    from ..playbook.loader import load_text
    from ..runtime import payloads

    digest = str(header["playbook"].get("digest") or "")
    with _PARSED_LOCK:
        found = _PARSED.get(digest) if digest else None
    if found is not None:
        return found
    source = payloads.unspill(rt.payloads, header["source"])
    loaded = load_text(source, header["playbook"].get("file") or "<stored>")
    made = (loaded.playbook, graphs.build(loaded.playbook))
    with _PARSED_LOCK:
        if digest:
            _PARSED[digest] = made
            while len(_PARSED) > PARSED_CACHE:
                del _PARSED[next(iter(_PARSED))]
    return made


def graph_of(rt: Runtime, execution_id: str) -> dict[str, Any]:
    """The playbook's steps and arcs (from the start entry's source), each step's status
    and counts from the log, the execution's blocks for the timeline and, once it has
    ended, its result (a table as its first rows)."""
    entries = rt.log.entries(execution_id)
    start = next((e for e in entries if e.kind == "start"), None)
    if start is None:
        start = rt.log.get(E.start_id(execution_id))
    if start is None:
        from ..errors import ExecutionNotFound

        raise ExecutionNotFound(f"no execution {execution_id!r}")
    header = start.body
    playbook, graph = _parsed(rt, header)
    steps: dict[str, dict[str, Any]] = {}
    for step in playbook.workflow:
        info: dict[str, Any] = {
            "name": step.step,
            "tool": _tool_kind(step),
            "desc": step.desc,
            "loop": step.loop is not None,
            "status": "pending",
            "issued": 0,
            "ok": 0,
            "failed": 0,
            "skipped": 0,
            "retries": 0,
            "attempts": 0,
            "waiting": 0,
            "running": 0,
            "queued": 0,
        }
        if not isinstance(step.tool, list) and info["tool"] == "playbook":
            info["child_path"] = getattr(step.tool, "path", None)
        steps[step.step] = info
    here = rt.running_here(execution_id)
    blocks = _blocks(entries, rt.clock.now(), claims_first=not rt.log.deferred_claims, here=here)
    terminal = next((e for e in entries if e.kind == "terminal"), None)
    for block in blocks:
        found = steps.get(block["step"] or "")
        if found is None:
            continue
        info = found
        if block["kind"] == "loop":
            info["loop_length"] = block.get("length")
            continue
        info["attempts"] = max(info["attempts"], block["attempt"])
        if block["index"] is not None:
            info["iterations_done"] = info.get("iterations_done", 0) + (
                block["status"] in ("ok", "error", "skipped")
            )
        state = block["status"]
        if state == "ok":
            info["ok"] += 1
        elif state == "error":
            info["failed"] += 1
        elif state == "skipped":
            info["skipped"] += 1
        elif state == "retry":
            info["retries"] += 1
        elif state == "waiting":
            info["waiting"] += 1
        elif state == "running" and terminal is None:
            info["running"] += 1
        elif state == "queued" and terminal is None:
            info["queued"] += 1
        if block.get("child_execution_id"):
            info.setdefault("children", []).append(block["child_execution_id"])
    for entry in entries:
        if entry.kind == "issue" and entry.step in steps:
            steps[entry.step]["issued"] += 1
        elif entry.kind == "loopdone" and entry.step in steps:
            steps[entry.step]["loops_done"] = steps[entry.step].get("loops_done", 0) + 1
            if entry.body.get("status") == "error":
                steps[entry.step]["failed"] += 1
    for info in steps.values():
        if info["running"] or (
            info["loop"] and info.get("loop_length") is not None and not info.get("loops_done")
        ):
            info["status"] = "running" if terminal is None else "stopped"
        elif info["queued"] and terminal is None:
            info["status"] = "queued"  # issued; no worker has taken it yet
        elif info["waiting"] and terminal is None:
            info["status"] = "waiting"
        elif info["failed"]:
            info["status"] = "failed"
        elif info["ok"] or info.get("loops_done"):
            info["status"] = "done"
        elif info["skipped"]:
            info["status"] = "skipped"
        elif terminal is not None:
            info["status"] = "unreached"  # the execution ended without running it
    arcs = [
        {"from": source_step, "to": target, "back": not graph.is_forward(source_step, target)}
        for source_step, targets in graph.arcs.items()
        for target in targets
    ]
    meta = header["playbook"]
    ended: dict[str, Any] = {}
    if terminal is not None and terminal.body.get("result") is not None:
        from ..runtime import payloads

        try:
            ended["result"] = _plain(payloads.load(rt.payloads, terminal.body["result"]))
        except Exception as exc:  # a payload gone or unreadable: say so, keep the rest
            ended["result_error"] = f"{type(exc).__name__}: {exc}"
    omitted = max(0, len(blocks) - MAX_BLOCKS)
    if omitted:  # the first and the latest blocks; the counts above saw them all
        blocks = blocks[: MAX_BLOCKS // 2] + blocks[-MAX_BLOCKS // 2 :]
    return {
        "execution_id": execution_id,
        "path": str(meta.get("path") or meta.get("name") or ""),
        "status": str(terminal.body.get("status")) if terminal else "running",
        "error": terminal.body.get("error") if terminal else None,
        **ended,
        "started_at": start.ts,
        "ended_at": terminal.ts if terminal else None,
        "now": rt.clock.now(),
        "parent_execution_id": (header.get("parent") or {}).get("execution_id"),
        "entry": graph.entry,
        "steps": list(steps.values()),
        "arcs": arcs,
        "joins": sorted(graph.joins),
        "blocks": blocks,
        "blocks_omitted": omitted,
    }


def _blocks(
    entries: list[Entry],
    now: float,
    *,
    claims_first: bool = False,
    here: Set[str] | None = None,
) -> list[dict[str, Any]]:
    """One row per attempt of a command (and per wait): start, end, status, attempt.

    A command issued and not recorded since is `queued` until a worker claims it. Where
    claims are written before the block runs (`claims_first`: the shared backends), a
    claim entry says it runs. The embedded log writes a block's claim with its record,
    so there, when this process runs the execution (`noetl serve`), `here` holds the
    commands its workers run now and the others are `queued`; when another process runs
    it (`here` None), nothing says which, and all are `running`."""
    issued: dict[str, float] = {}
    claimed: dict[tuple[str, int], float] = {}
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    order: list[tuple[str, int]] = []

    def row(entry: Entry) -> dict[str, Any]:
        command = entry.command_id or ""
        slot = (command, entry.attempt)
        found = rows.get(slot)
        if found is None:
            iteration = E.iteration_of(command)
            found = rows[slot] = {
                "entry_id": entry.id,
                "kind": "block",
                "step": entry.step,
                "command_id": command,
                "attempt": entry.attempt,
                "index": iteration[1] if iteration else None,
                "loop_command": iteration[0] if iteration else None,
                "start": claimed.get(slot, issued.get(command, entry.ts)),
                "end": None,
                "status": "running",
            }
            order.append(slot)
        return found

    for entry in entries:
        command = entry.command_id or ""
        if entry.kind == "issue":
            issued[command] = entry.ts
        for started in E.issued_iterations(entry):
            issued[started] = entry.ts
        if entry.kind == "claim":
            claimed[(command, entry.attempt)] = entry.ts
            row(entry)["start"] = entry.ts
        elif entry.kind in ("done", "attempt", "pending"):
            found = row(entry)
            found["entry_id"] = entry.id
            if "claimed" in entry.body:
                found["start"] = entry.body["claimed"]["at"]
            if entry.kind == "pending":
                found["status"] = "waiting"
                found["wait"] = entry.body.get("wait") or "child"
                found["waiting_since"] = entry.ts
                if entry.body.get("child_execution_id"):
                    found["child_execution_id"] = entry.body["child_execution_id"]
                continue
            found["end"] = entry.ts
            if entry.kind == "attempt":
                status = entry.body.get("status")
                found["status"] = "continue" if status == "continue" else "retry"
                found["error"] = entry.body.get("error")
            else:
                found["status"] = str(entry.body.get("status"))
                found["error"] = entry.body.get("error")
                if entry.body.get("loop") is not None:
                    found["kind"] = "loop"
                    found["length"] = entry.body["loop"].get("length")
                    found["width"] = entry.body["loop"].get("width")
    # commands issued and not recorded (nor claimed) since
    recorded = {slot[0] for slot in rows}
    for command, ts in issued.items():
        if command not in recorded:
            queued = claims_first or (here is not None and command not in here)
            iteration = E.iteration_of(command)
            rows[(command, 1)] = {
                "entry_id": None,
                "kind": "block",
                "step": None,
                "command_id": command,
                "attempt": 1,
                "index": iteration[1] if iteration else None,
                "loop_command": iteration[0] if iteration else None,
                "start": ts,
                "end": None,
                "status": "queued" if queued else "running",
            }
            order.append((command, 1))
    steps = {e.command_id: e.step for e in entries if e.command_id}
    for slot in order:
        found = rows[slot]
        if found["step"] is None:
            found["step"] = steps.get(found["command_id"]) or steps.get(
                (E.iteration_of(found["command_id"]) or ("",))[0]
            )
    return [rows[slot] for slot in order]


def entry_of(rt: Runtime, execution_id: str, entry_id: str) -> dict[str, Any] | None:
    """One block's record: its events, times, status, error, output (loaded from its
    payload reference) and the inputs its step declares (templates, unrendered). Entries
    are redacted when recorded; nothing here reads a secret."""
    from ..runtime import payloads

    entry = rt.log.get(entry_id)
    if entry is None or entry.execution_id != execution_id:
        return None
    body = entry.body
    out: dict[str, Any] = {
        "entry_id": entry.id,
        "kind": entry.kind,
        "step": entry.step,
        "command_id": entry.command_id,
        "attempt": entry.attempt,
        "events": list(entry.events),
        "ts": entry.ts,
        "started_at": (body.get("claimed") or {}).get("at"),
        "status": body.get("status"),
        "error": body.get("error"),
        "meta": body.get("meta"),
    }
    for field in ("wait", "due", "child_execution_id", "retry", "loop", "index"):
        if body.get(field) is not None:
            out[field] = body[field]
    if body.get("result") is not None:
        try:
            out["output"] = _plain(payloads.load(rt.payloads, body["result"]))
        except Exception as exc:  # a payload gone or unreadable: say so, keep the rest
            out["output_error"] = f"{type(exc).__name__}: {exc}"
    if entry.step:
        start = rt.log.get(E.start_id(execution_id))
        if start is not None:
            playbook, _ = _parsed(rt, start.body)
            try:
                step = playbook.step_named(entry.step)
            except KeyError:
                step = None
            if step is not None:
                declared = step.input
                if declared is None and not isinstance(step.tool, list):
                    declared = getattr(step.tool, "input", None)
                out["input"] = declared
        issue = rt.log.get(E.issue_id(execution_id, entry.command_id or ""))
        if issue is not None and issue.body.get("command", {}).get("args") is not None:
            out["args"] = issue.body["command"]["args"]
    return out


def _plain(value: Any) -> Any:
    """JSON-ready: an Arrow table as its first rows and its size."""
    if type(value).__name__ == "Table" and hasattr(value, "num_rows"):
        rows = value.slice(0, 20).to_pylist()
        return {"table": {"rows": value.num_rows, "columns": value.column_names, "preview": rows}}
    return value


def json_answer(value: Any) -> Response:
    """JSON of any value a payload holds (dates, decimals: `payloads.to_json`)."""
    from ..runtime import payloads

    text = payloads.to_json(value)
    return Response(text, media_type="application/json", headers={"Cache-Control": "no-store"})
