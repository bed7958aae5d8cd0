"""`http`: one HTTP request (httpx); the answer is `{status_code, headers, data}`.

`auth` is a registered credential's alias (or `{credential: alias}`) or inline
(`{type: bearer|basic|api_key, ...}`); it wins over a header of the same name, and every
secret form sent is masked. The request carries `Idempotency-Key: <command>-<attempt>`
unless the playbook sets one. A non-2xx answer is an error `http_<status>` (retryable for
408, 425, 429, 5xx) with `http: {status, headers}`, `http_status` and `data` (the parsed
body) readable by policy rules and recovery arcs; its kind is `http`, or `server_error`
for a 5xx answer (upstream's kind for it); a request without an answer is a typed error
(`timeout`, `connection_refused`, `connect_error`, `tls_error`, `invalid_url`, ...).
"""

from __future__ import annotations

import base64
import json
import re
import ssl
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from ..errors import ToolError
from ..templating import plain
from ..toolspec.http import AUTH_TYPES, PHASES
from ..toolspec.http import RAW_FIELDS as RAW_FIELDS
from ..toolspec.http import validate as validate
from .base import ToolCall

if TYPE_CHECKING:
    import httpx  # imported where a request is made: validating a playbook needs none

KIND = "http"
DEFAULT_TIMEOUT = 30.0
RETRYABLE_STATUS = frozenset({408, 425, 429})
_USERINFO = re.compile(r"//[^/@?#]*@")


def run(call: ToolCall) -> dict[str, Any]:
    fields = call.fields
    problems = validate(fields)
    if problems:
        text = "; ".join(f"{path}: {message}" for path, message in problems)
        raise ToolError(f"step {call.step}: http: {text}", tool_kind=KIND, code="invalid_request")
    method = str(fields.get("method") or "GET").upper()
    url = str(fields.get("url", fields.get("endpoint")))
    where = f"step {call.step}: {method} {safe_url(url)}"
    response = _send(fields, method, url, _request(call, _payload(fields, method)), where)
    call.log.write(f"{method} {safe_url(url)} -> {response.status_code}\n")
    return _answer(fields, response, where)


# -- the request ----------------------------------------------------------------------


def _payload(fields: dict[str, Any], method: str) -> dict[str, Any]:
    """Upstream's `payload`: the query parameters of a GET whose payload is a mapping,
    else the JSON body."""
    payload = fields.get("payload")
    if payload is None:
        return fields
    out = {k: v for k, v in fields.items() if k != "payload"}
    if method == "GET" and isinstance(payload, dict):
        given = fields.get("params")
        out["params"] = [*_items(given), *payload.items()] if given else payload
    else:
        out["json"] = payload
    return out


def _request(call: ToolCall, fields: dict[str, Any]) -> dict[str, Any]:
    import httpx

    pairs = [(k, v) for k, vs in _items(fields.get("headers")) for v in _each(vs)]
    headers = httpx.Headers([(str(k), _header(v)) for k, v in pairs])
    params = [(str(k), v) for k, vs in _items(fields.get("params")) for v in _each(vs)]
    auth_headers, auth_params = _auth(call, fields.get("auth"))
    headers.update(auth_headers)
    params.extend(auth_params.items())
    if "idempotency-key" not in headers:
        headers["Idempotency-Key"] = call.idempotency_key
    request: dict[str, Any] = {"headers": headers}
    if params:
        request["params"] = params
    if fields.get("json") is not None:
        request["content"] = json.dumps(plain(fields["json"]), default=str).encode()
        headers.setdefault("Content-Type", "application/json")
        return request
    body = fields.get("body", fields.get("data"))
    if isinstance(body, dict):
        request["data"] = {str(k): v for k, v in body.items()}
    elif body is not None:
        request["content"] = body.encode() if isinstance(body, str) else body
    return request


def _items(value: Any) -> list[tuple[Any, Any]]:
    if isinstance(value, dict):
        return list(value.items())
    return [tuple(pair) for pair in value or () if isinstance(pair, list | tuple)]


def _each(value: Any) -> list[str | int | float | bool]:
    """Query values: a list repeats the parameter, None leaves it out, others are JSON."""
    values = value if isinstance(value, list | tuple) else [value]
    return [
        v if isinstance(v, str | int | float | bool) else json.dumps(plain(v), default=str)
        for v in values
        if v is not None
    ]


def _header(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _auth(call: ToolCall, auth: Any) -> tuple[dict[str, str], dict[str, str]]:
    """Headers and query parameters that authenticate the request."""
    if not auth:
        return {}, {}
    alias = auth if isinstance(auth, str) else auth.get("credential") or auth.get("alias")
    if alias is None:
        return _apply(call, str(auth.get("type") or ""), auth, "inline auth")
    found = call.credential(str(alias))
    where = f"credential {alias!r}"
    return _apply(call, str(found.get("type") or ""), found.get("data") or {}, where)


def _apply(
    call: ToolCall, kind: str, values: dict[str, Any], where: str
) -> tuple[dict[str, str], dict[str, str]]:
    kind = kind.lower().replace("-", "_")
    if kind not in AUTH_TYPES and "token" in values and kind in ("", "generic", "secret"):
        kind = "bearer"
    if kind == "bearer":
        token = _need(values, where, kind, "token", "access_token")
        call.mask(token, f"Bearer {token}")
        return {"Authorization": f"Bearer {token}"}, {}
    if kind == "basic":
        user = _need(values, where, kind, "username", "user")
        password = _need(values, where, kind, "password", "pass")
        encoded = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        call.mask(password, encoded, f"Basic {encoded}")
        return {"Authorization": f"Basic {encoded}"}, {}
    if kind in ("api_key", "apikey"):
        key = _need(values, where, "api_key", "key", "api_key")
        call.mask(key)
        if str(values.get("in") or "header").lower() == "query":
            return {}, {str(values.get("name") or "api_key"): key}
        return {str(values.get("header") or values.get("name") or "X-API-Key"): key}, {}
    raise ToolError(
        f"{where}: http auth of type {kind or 'none'!r} is not supported "
        f"(types: {', '.join(AUTH_TYPES)})",
        tool_kind=KIND,
        code="unsupported_auth",
    )


def _need(values: dict[str, Any], where: str, kind: str, *names: str) -> str:
    for name in names:
        if values.get(name) not in (None, ""):
            return str(values[name])
    raise ToolError(
        f"{where}: {kind} auth needs `{names[0]}`", tool_kind=KIND, code="bad_credential"
    )


def _timeout(value: Any) -> httpx.Timeout:
    import httpx

    if isinstance(value, dict):
        phases = {k: float(v) for k, v in value.items() if k in PHASES and v is not None}
        return httpx.Timeout(DEFAULT_TIMEOUT, **phases)
    return httpx.Timeout(DEFAULT_TIMEOUT if value is None else float(value))


@lru_cache(maxsize=16)
def _tls(verify: bool | str) -> ssl.SSLContext:
    """One TLS context per setting: loading the CA bundle per request costs milliseconds."""
    if isinstance(verify, str):
        return ssl.create_default_context(cafile=verify)
    import httpx

    return httpx.create_ssl_context(verify=verify)


def _send(
    fields: dict[str, Any], method: str, url: str, request: dict[str, Any], where: str
) -> httpx.Response:
    import httpx

    timeout = _timeout(fields.get("timeout"))
    follow = fields.get("follow_redirects")
    verify = fields.get("verify")
    try:
        tls = _tls(True if verify is None else verify)
    except OSError as exc:
        raise ToolError(
            f"{where}: cannot use CA bundle {verify!r}: {exc.strerror}",
            tool_kind=KIND,
            code="invalid_request",
        ) from None
    try:
        if "params" in request:  # httpx replaces the URL's own query; merge as users expect
            request["params"] = [*httpx.URL(url).params.multi_items(), *request["params"]]
        with httpx.Client(
            timeout=timeout, follow_redirects=follow is not False, verify=tls
        ) as client:
            return client.request(method, url, **request)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise _transport_error(exc, where, timeout) from None


def _transport_error(exc: Exception, where: str, timeout: httpx.Timeout) -> ToolError:
    code, retryable, text = _classify(exc)
    if code == "timeout":
        phase = type(exc).__name__.removesuffix("Timeout").lower()
        seconds = getattr(timeout, phase, None)
        text = f"timed out ({phase} timeout {seconds} s)" if phase in PHASES else "timed out"
    return ToolError(f"{where}: {text}", tool_kind=KIND, code=code, retryable=retryable)


def _classify(exc: Exception) -> tuple[str, bool, str]:
    """(code, retryable, what happened) of a request that got no answer."""
    import httpx

    said = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, httpx.TimeoutException):
        return "timeout", True, said
    if isinstance(exc, httpx.TooManyRedirects):
        return "too_many_redirects", False, str(exc)
    if isinstance(exc, httpx.ConnectError):
        if "refused" in str(exc).lower():  # the OS's words: ECONNREFUSED, WSAECONNREFUSED
            return "connection_refused", True, f"connection refused ({exc})"
        if "ssl" in str(exc).lower() or "certificate" in str(exc).lower():
            return "tls_error", False, f"TLS failed: {exc}"
        return "connect_error", True, f"cannot connect: {exc}"
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return "invalid_url", False, f"invalid URL: {exc}"
    if isinstance(exc, httpx.LocalProtocolError):
        return "invalid_request", False, f"invalid request: {exc}"
    return "transport_error", isinstance(exc, httpx.TransportError), said


# -- the answer -----------------------------------------------------------------------


def _answer(fields: dict[str, Any], response: httpx.Response, where: str) -> dict[str, Any]:
    status = response.status_code
    headers = dict(response.headers.items())
    ok = 200 <= status < 300
    data = _data(response, fields.get("response_type"), where, strict=ok)
    if not ok:
        raise ToolError(
            f"{where} answered {status} {response.reason_phrase}".rstrip(),
            tool_kind=KIND,
            code=f"http_{status}",
            retryable=status in RETRYABLE_STATUS or status >= 500,
            details={
                "http": {"status": status, "headers": headers},
                "http_status": status,
                "data": data,
            },
            kind="server_error" if status >= 500 else None,
        )
    return {"status_code": status, "headers": headers, "data": data}


def _data(response: httpx.Response, response_type: Any, where: str, strict: bool) -> Any:
    """The body as `response_type` says. Bad JSON fails a 2xx answer (`strict`); in an
    error answer the body stays readable as text."""
    kind = response_type or ("json" if _is_json(response) else "text")
    if kind == "binary":
        return base64.b64encode(response.content).decode("ascii")
    if kind == "text" or not response.content.strip():
        return response.text if kind == "text" else None
    try:
        return response.json()
    except ValueError as exc:
        if not strict:
            return response.text
        raise ToolError(
            f"{where}: the answer is not JSON ({exc})",
            tool_kind=KIND,
            code="invalid_json",
            details={
                "http": {"status": response.status_code, "headers": dict(response.headers)},
                "data": response.text,
            },
        ) from None


def _is_json(response: httpx.Response) -> bool:
    mime = response.headers.get("content-type", "").split(";")[0].strip().lower()
    return mime in ("application/json", "text/json") or mime.endswith("+json")


def safe_url(url: str) -> str:
    """The URL for messages: no query string, fragment or user:password."""
    return _USERINFO.sub("//", url.split("#")[0].split("?")[0], count=1)
