"""`noetl serve`: the embedded runtime behind a local HTTP endpoint.

    POST /callbacks/<token>          resume a step waiting for a callback (202/400/401/410/413)
    POST /executions                 {path, version?, workload?} -> 202 {execution_id}
    GET  /executions/<id>            the execution's status
    POST /executions/<id>/cancel     cancel it (and its children) -> 202

`noetl run` starts one on a free loopback port by itself when its playbook has steps that
wait for callbacks, so the callback URL those steps hand out reaches it.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from . import bounded
from .engine import entries as E
from .engine.fold import fold
from .errors import CatalogError, ExecutionNotFound, NoetlError
from .runtime import waits
from .runtime.block import Runtime

MAX_BODY = 16 << 20


class Server:
    def __init__(self, rt: Runtime, host: str = "127.0.0.1", port: int = 0):
        self.rt = rt
        self._http = ThreadingHTTPServer((host, port), _handler(self))
        self._http.daemon_threads = True
        self._thread = threading.Thread(
            target=self._http.serve_forever, name="noetl-serve", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._http.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Server:
        self._thread.start()
        if self.rt.settings.callback_url is None:  # steps hand out this server's address
            self.rt.settings = dataclasses.replace(self.rt.settings, callback_url=self.url)
        return self

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()

    # -- routes ------------------------------------------------------------------------

    def route(self, method: str, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
        parts = [p for p in path.split("?", 1)[0].split("/") if p]
        if method == "POST" and len(parts) == 2 and parts[0] == "callbacks":
            return waits.receive(self.rt, parts[1], body)
        if method == "POST" and parts == ["executions"]:
            return self._start(body)
        if len(parts) >= 2 and parts[0] == "executions":
            if method == "GET" and len(parts) == 2:
                return self._status(parts[1])
            if method == "POST" and parts[2:] == ["cancel"]:
                self.rt.cancel(parts[1], "cancelled over HTTP")
                return 202, {"execution_id": parts[1], "status": "cancelling"}
        return 404, {"error": f"no route {method} /{'/'.join(parts)}"}

    def _start(self, body: bytes) -> tuple[int, dict[str, Any]]:
        request = bounded.json_loads(body or b"{}", "the request body", self.rt.settings.limits)
        if not isinstance(request, dict) or not isinstance(request.get("path"), str):
            return 400, {"error": "the body must be JSON with `path` (a catalog path)"}
        loaded = self.rt.catalog.resolve(request["path"], request.get("version"))
        return 202, {"execution_id": self.rt.start(loaded, request.get("workload") or {})}

    def _status(self, execution_id: str) -> tuple[int, dict[str, Any]]:
        if self.rt.log.get(E.start_id(execution_id)) is None:
            raise ExecutionNotFound(f"no execution {execution_id}")
        state = fold(self.rt.log.entries(execution_id), execution_id)
        return 200, {
            "execution_id": execution_id,
            "status": state.status,
            "in_flight": state.in_flight,
            "error": state.error,
        }


def _handler(server: Server) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet: the CLI prints
            return

        def _answer(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                status, body = 413, {"error": "the body is too large"}
            else:
                raw = self.rfile.read(length) if length else b""
                try:
                    status, body = server.route(method, self.path, raw)
                except (ExecutionNotFound, CatalogError) as exc:
                    status, body = 404, {"error": exc.message}
                except NoetlError as exc:
                    status, body = (503 if exc.retryable else 400), {"error": exc.message}
                except ValueError:
                    status, body = 400, {"error": "the body is not JSON"}
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._answer("GET")

        def do_POST(self) -> None:
            self._answer("POST")

    return Handler
