"""A small HTTP API for tests and example playbooks (standard library only).

    GET  /items?count=N            N items {id, name, price}, the same every time
    GET  /users                    five users {id, name, email}
    GET  /status/<code>            that status, body {"status": code}
    GET  /slow?seconds=S           sleeps S seconds (at most 30), then 200
    ANY  /echo[?status=N]          {method, path, query, headers, body} (and `json` when the
                                   body is JSON); answers status N (default 200)
    GET  /flaky/<key>?fail=N&status=503
                                   the first N calls for a key answer `status` with
                                   `Retry-After: 0`; later ones 200 {key, calls}
    GET  /badjson                  200, content-type application/json, a body that is not JSON
    GET  /bytes?size=N             N bytes (0, 1, ..., 255, 0, ...) as octet-stream
    GET  /redirect/<n>             302 to /redirect/<n-1>; /redirect/0 answers 200
    POST /orders                   201, the JSON body with an `id`
    POST /jobs                     202; later POSTs `{job_id, result}` to `callback_url`

`DemoApi` serves on 127.0.0.1 and a free port from a daemon thread (`with DemoApi() as
api: api.url`); `python -m noetl_core.devtools.http_api --port N` serves until killed.
Every request is also kept in `DemoApi.requests` (method, path, headers) for tests.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

MAX_SLEEP = 30.0
USERS = [
    {"id": i, "name": name, "email": f"{name.lower()}@example.com"}
    for i, name in enumerate(["Ada", "Grace", "Alan", "Edsger", "Barbara"], start=1)
]


class Handler(BaseHTTPRequestHandler):
    server: ApiServer
    query: dict[str, str]
    body: bytes

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests and examples read the answers, not an access log."""

    def _dispatch(self) -> None:
        parts = urlsplit(self.path)
        self.query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        self.body = self._read_body()
        self.server.record(self, parts.path)
        head, _, rest = parts.path.strip("/").partition("/")
        route = ROUTES.get((self.command, head)) or ROUTES.get(("*", head))
        if route is None:
            self.answer(404, {"error": "not found", "path": parts.path})
        else:
            route(self, rest)

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def number(self, name: str, default: float) -> float:
        try:
            return float(self.query.get(name, default))
        except ValueError:
            return default

    def answer(
        self,
        status: int,
        value: Any = None,
        *,
        raw: bytes | None = None,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        body = raw if raw is not None else json.dumps(value).encode()
        if status in (204, 304) or status < 200:
            body = b""
        self.send_response(status)
        for name, text in (headers or {}).items():
            self.send_header(name, text)
        if body or status not in (204, 304):
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


def _items(h: Handler, _: str) -> None:
    count = max(0, int(h.number("count", 10)))
    items = [
        {"id": i, "name": f"item-{i}", "price": round(1.5 * i + 0.25, 2)}
        for i in range(1, count + 1)
    ]
    h.answer(200, items)


def _users(h: Handler, _: str) -> None:
    h.answer(200, USERS)


def _status(h: Handler, code: str) -> None:
    status = int(code) if code.isdigit() and 100 <= int(code) <= 599 else 400
    h.answer(status, {"status": status})


def _slow(h: Handler, _: str) -> None:
    seconds = min(max(h.number("seconds", 1.0), 0.0), MAX_SLEEP)
    time.sleep(seconds)
    h.answer(200, {"slept": seconds})


def _echo(h: Handler, _: str) -> None:
    text = h.body.decode("utf-8", errors="replace")
    query = urlsplit(h.path).query
    echoed: dict[str, Any] = {
        "method": h.command,
        "path": urlsplit(h.path).path,
        "query": {k: v[0] if len(v) == 1 else v for k, v in parse_qs(query, True).items()},
        "headers": {k.lower(): v for k, v in h.headers.items()},
        "body": text,
    }
    if "json" in (h.headers.get("Content-Type") or ""):
        with contextlib.suppress(ValueError):
            echoed["json"] = json.loads(text)
    h.answer(int(h.number("status", 200)), echoed)


def _flaky(h: Handler, key: str) -> None:
    calls = h.server.count(key)
    if calls <= int(h.number("fail", 1)):
        status = int(h.number("status", 503))
        h.answer(status, {"key": key, "calls": calls}, headers={"Retry-After": "0"})
    else:
        h.answer(200, {"key": key, "calls": calls})


def _badjson(h: Handler, _: str) -> None:
    h.answer(200, raw=b'{"items": [1, 2,', content_type="application/json")


def _bytes(h: Handler, _: str) -> None:
    size = max(0, int(h.number("size", 16)))
    h.answer(200, raw=bytes(i % 256 for i in range(size)), content_type="application/octet-stream")


def _redirect(h: Handler, rest: str) -> None:
    left = int(rest) if rest.isdigit() else 0
    if left <= 0:
        h.answer(200, {"redirected": True})
    else:
        h.answer(302, {"to": left - 1}, headers={"Location": f"/redirect/{left - 1}"})


def _orders(h: Handler, _: str) -> None:
    try:
        order = json.loads(h.body or b"{}")
    except ValueError:
        h.answer(400, {"error": "the body is not JSON"})
        return
    if not isinstance(order, dict):
        h.answer(400, {"error": "an order is a JSON object"})
        return
    h.answer(201, {**order, "id": h.server.next_order()})


def _jobs(h: Handler, _: str) -> None:
    """A slow third party: accept a job now, post its result to `callback_url` later."""
    try:
        job = json.loads(h.body or b"{}")
        url, delay = str(job["callback_url"]), float(job.get("delay", 0.5))
    except (ValueError, KeyError, TypeError):
        h.answer(400, {"error": "a job is JSON with `callback_url` (and `delay`, `result`)"})
        return
    job_id = h.server.next_order()
    result = {"job_id": job_id, "result": job.get("result", "done")}

    def call_back() -> None:
        time.sleep(delay)
        request = urllib.request.Request(
            url,
            data=json.dumps(result).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                h.server.callbacks.append({"job_id": job_id, "status": answer.status})
        except urllib.error.HTTPError as exc:
            h.server.callbacks.append({"job_id": job_id, "status": exc.code})
        except OSError as exc:
            h.server.callbacks.append({"job_id": job_id, "error": str(exc)})

    threading.Thread(target=call_back, daemon=True).start()
    h.answer(202, {"job_id": job_id, "accepted": True})


ROUTES: dict[tuple[str, str], Callable[[Handler, str], None]] = {
    ("GET", "items"): _items,
    ("GET", "users"): _users,
    ("GET", "status"): _status,
    ("GET", "slow"): _slow,
    ("*", "echo"): _echo,
    ("GET", "flaky"): _flaky,
    ("GET", "badjson"): _badjson,
    ("GET", "bytes"): _bytes,
    ("GET", "redirect"): _redirect,
    ("POST", "orders"): _orders,
    ("POST", "jobs"): _jobs,
}


class ApiServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int]):
        super().__init__(address, Handler)
        self.requests: list[dict[str, Any]] = []
        self.callbacks: list[dict[str, Any]] = []  # what /jobs posted back, and the answers
        self._calls: dict[str, int] = {}
        self._orders = itertools.count(1)
        self._lock = threading.Lock()

    def record(self, handler: Handler, path: str) -> None:
        seen = {"method": handler.command, "path": path, "headers": dict(handler.headers.items())}
        with self._lock:
            self.requests.append(seen)

    def count(self, key: str) -> int:
        with self._lock:
            self._calls[key] = self._calls.get(key, 0) + 1
            return self._calls[key]

    def next_order(self) -> int:
        with self._lock:
            return next(self._orders)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (a timeout test) is not an error of the server."""


class DemoApi:
    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self._address = (host, port)
        self._server: ApiServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("DemoApi is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def requests(self) -> list[dict[str, Any]]:
        return self._server.requests if self._server is not None else []

    @property
    def callbacks(self) -> list[dict[str, Any]]:
        return self._server.callbacks if self._server is not None else []

    def start(self) -> DemoApi:
        if self._server is None:
            self._server = ApiServer(self._address)
            self._thread = threading.Thread(
                target=self._server.serve_forever, name="demo-http-api", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> DemoApi:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the demo HTTP API until killed.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args(argv)
    api = DemoApi(args.host, args.port).start()
    print(api.url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        api.stop()


if __name__ == "__main__":
    main()
