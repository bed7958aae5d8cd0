"""`noetl serve`: the gateway (`gateway/app.py`) and callbacks over the embedded runtime,
served by uvicorn.

    /v1/...                   the gateway: executions, events, cancel, catalog, schedules;
                              every route needs a bearer token (`noetl token create`, or
                              the CLI mints one from the local key, NOETL_HOME/gateway.key)
    POST /callbacks/<token>   resume a step waiting for a callback (202/400/401/410/413);
                              the token in the path is the authority
    GET  /viewer/             the execution viewer; `noetl serve` prints a one-time login
                              URL (`/viewer/login?code=...`, 5 minutes) that sets its
                              read-only cookie (`gateway/viewer.py`)

Before any route, `LocalGuard` refuses what a browser page on another site, or a DNS
name rebound to this machine, could send: a `Host` that is not loopback, this server's
bound address or one of NOETL_SERVE_HOSTS (400); an `Origin` other than this server's
own, or `Sec-Fetch-Site: cross-site` on anything but GET (403); and a POST whose body is
not `application/json` (415), which is the only kind of cross-site POST a page can send
without asking first. Malformed HTTP (a `Content-Length` that is not a number, say) is
answered 400 by the server itself.

`noetl run` starts one on a free loopback port by itself when its playbook has steps that
wait for callbacks, so the callback URL those steps hand out reaches it.
"""

from __future__ import annotations

import dataclasses
import errno
import ipaddress
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import uvicorn
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import NoetlError
from .gateway import app as gateway
from .gateway import tokens, viewer
from .runtime import waits
from .runtime.block import Runtime

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
STARTUP = 10.0  # seconds uvicorn may take to start answering
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class ServeError(NoetlError):
    code = "serve"


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _hostname(authority: str) -> str:
    """`host[:port]` or `[v6][:port]` -> the lowercased host without brackets."""
    authority = authority.strip().lower()
    if authority.startswith("["):
        return authority[1 : authority.find("]")] if "]" in authority else ""
    return authority.rsplit(":", 1)[0] if authority.count(":") == 1 else authority


def _refuse(status: int, message: str, code: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


class LocalGuard:
    """ASGI middleware: the Host, Origin, fetch-site and content-type checks above, and
    one line per answered request through `log` when given."""

    def __init__(
        self,
        app: ASGIApp,
        hosts: frozenset[str],
        port: Callable[[], int],
        log: Callable[[str], None] | None = None,
    ):
        self.app, self.hosts, self.port, self.log = app, hosts, port, log

    def refusal(self, scope: Scope) -> JSONResponse | None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = _hostname(headers.get("host", ""))
        if host not in self.hosts:
            return _refuse(400, f"this server does not answer to host {host!r}", "bad_host")
        origin = headers.get("origin")
        if origin is not None:
            parts = urlsplit(origin)
            try:
                port = parts.port or (443 if parts.scheme == "https" else 80)
            except ValueError:
                port = -1
            if (parts.hostname or "") not in self.hosts or port != self.port():
                return _refuse(403, f"requests from origin {origin!r} are refused", "bad_origin")
        method = scope["method"]
        if method in UNSAFE and headers.get("sec-fetch-site") == "cross-site":
            return _refuse(403, "cross-site requests are refused", "cross_site")
        kind = headers.get("content-type", "").split(";")[0].strip().lower()
        if method in UNSAFE and kind != "application/json":
            return _refuse(415, "request bodies must be application/json", "unsupported_media")
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        status = [0]

        async def sent(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        refused = self.refusal(scope)
        if refused is not None:
            await refused(scope, receive, sent)
        else:
            await self.app(scope, receive, sent)
        if self.log is not None:
            path = scope["path"]
            if path.startswith("/callbacks/"):
                path = "/callbacks/<token>"  # the token is a credential: never printed
            ms = (time.monotonic() - started) * 1000
            self.log(f"{scope['method']} {path} {status[0]} ({ms:.0f} ms)")


def callback_route(rt: Runtime) -> Route:
    async def callback(request: Request) -> Response:
        limit = rt.settings.callback_max_bytes
        raw = b""
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > limit:
                return _refuse(413, f"the callback body is over {limit} bytes", "too_large")
        token = request.path_params["token"]
        status, body = await run_in_threadpool(waits.receive, rt, token, raw)
        return JSONResponse(body, status_code=status)

    return Route("/callbacks/{token}", callback, methods=["POST"])


def bind(host: str, port: int) -> socket.socket:
    """A listening socket, or a ServeError that says the port is taken."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise ServeError(f"cannot listen on {host!r}: {exc.strerror}") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ServeError(
                f"port {port} on {host} is in use by another program: choose one with --port"
            ) from None
        raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


class Server:
    def __init__(
        self,
        rt: Runtime,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        log: Callable[[str], None] | None = None,
    ):
        self.rt = rt
        self._socket = bind(host, port)
        self.host, self.port = host, int(self._socket.getsockname()[1])
        hosts = LOOPBACK | set(rt.settings.serve_hosts)
        if not ipaddress.ip_address(self._socket.getsockname()[0]).is_unspecified:
            hosts |= {host.lower().strip("[]")}
        key = tokens.load_key(rt.settings.gateway_key, rt.settings.home)
        guard = Middleware(LocalGuard, hosts=frozenset(hosts), port=lambda: self.port, log=log)
        self.logins = viewer.LoginCodes()
        self.app = gateway.create_app(
            rt, key, extra=[callback_route(rt)], middleware=[guard], login=self.logins
        )
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_keep_alive=5,
            timeout_graceful_shutdown=1,
            limit_concurrency=256,
        )
        self._uvicorn = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name="noetl-serve", daemon=True)

    def _run(self) -> None:
        self._uvicorn.run(sockets=[self._socket])

    @property
    def url(self) -> str:
        host = self.host if ":" not in self.host else f"[{self.host}]"
        return f"http://{host}:{self.port}"

    def login_url(self) -> str:
        """A one-time URL that logs a browser into the viewer (read scope): single use,
        valid `viewer.CODE_TTL` seconds."""
        return f"{self.url}/viewer/login?code={self.logins.mint()}"

    @property
    def exposed(self) -> bool:
        """Bound beyond loopback: other machines can reach it."""
        return not is_loopback(self.host)

    def start(self) -> Server:
        self._thread.start()
        deadline = time.monotonic() + STARTUP
        while not self._uvicorn.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self._socket.close()
                raise ServeError(f"the HTTP server on {self.url} did not start")
            time.sleep(0.01)
        if self.rt.settings.callback_url is None:  # steps hand out this server's address
            self.rt.settings = dataclasses.replace(self.rt.settings, callback_url=self.url)
        return self

    def stop(self) -> None:
        self._uvicorn.should_exit = True
        if self._thread.ident is not None:  # started
            self._thread.join(timeout=5)
        self._socket.close()


EXPOSED_WARNING = """\
!!! WARNING: noetl serve is listening on {url}, beyond this machine's loopback.
!!! Anyone who can reach it and holds a token signed with {key} can start and
!!! cancel executions; callbacks need only their own token. Serve on 127.0.0.1 unless
!!! other machines must call it, and put TLS in front of it when they do."""


def warn_if_exposed(server: Server, out: Any = None) -> None:
    if server.exposed:
        key = "NOETL_GATEWAY_KEY" if server.rt.settings.gateway_key else "the local gateway.key"
        print(EXPOSED_WARNING.format(url=server.url, key=key), file=out or sys.stderr, flush=True)
