"""A small HTTP client of the gateway (app.py), for the CLI's `--gateway URL`.

    client = GatewayClient("http://127.0.0.1:8080", token)
    started = client.start("reports/daily", None, {"day": "2026-12-01"}, "order-17")
    for event in client.events(started["execution_id"]):   # Server-Sent Events
        ...
    client.execution(execution_id)                          # status, steps, result

Every answer that is not a success becomes a `GatewayError` (a NoetlError) carrying the
HTTP status and the gateway's one-line message (`{"error": {"code", "message"}}`); a
gateway that cannot be reached, or does not answer in time, is one too (status 0). Every
request has a timeout; the event stream waits up to `IDLE` seconds between two events
(an execution may wait for hours with nothing to say), then reconnects.

The event stream is read by `SSEParser` (the WHATWG `text/event-stream` rules: `field:
value` lines, one leading space dropped, `data` lines joined by newlines, `:` comments,
a blank line ending an event, `id` kept for the reconnect even on an event without
data). A stream that breaks off before the terminal event is resumed with
`Last-Event-ID`, so no event is lost or repeated; `MAX_RETRIES` reconnects in a row
that bring nothing new end it with a GatewayError.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from ..errors import NoetlError

TIMEOUT = httpx.Timeout(30.0, connect=10.0)
IDLE = 600.0  # seconds the event stream may stay silent before it is reopened
MAX_RETRIES = 5  # reconnects in a row, with nothing received, before giving up
RETRY_DELAY = 0.5  # seconds before the first reconnect; doubled each time, at most 8 s


class GatewayError(NoetlError):
    """The gateway refused a request (`status` its HTTP status), or could not be reached
    or did not answer in time (`status` 0)."""

    code = "gateway_error"

    def __init__(
        self, status: int, message: str, *, code: str | None = None, detail: str | None = None
    ):
        super().__init__(message, code=code)
        self.status = status
        self.detail = message if detail is None else detail  # the gateway's own words


@dataclass(frozen=True)
class Event:
    """One Server-Sent Event: `id` is the last event id when it was dispatched."""

    id: str | None
    event: str
    data: str
    retry: float | None = None

    def json(self) -> Any:
        return json.loads(self.data)


class SSEParser:
    """Feed it the stream's lines (without their line ends); it returns each event as
    the blank line that ends it arrives. `last_id` is what a reconnect sends as
    `Last-Event-ID`; `retry` the reconnect delay the server asked for (seconds)."""

    def __init__(self, last_id: str | None = None):
        self.last_id = last_id
        self.retry: float | None = None
        self._id = last_id
        self._event = ""
        self._data: list[str] = []

    def feed(self, line: str) -> Event | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment (servers send them to keep a connection alive)
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value
        elif name == "retry" and value.isdigit():
            self.retry = int(value) / 1000
        return None  # other fields are ignored, as the specification says

    def _dispatch(self) -> Event | None:
        self.last_id = self._id
        data, event = self._data, self._event or "message"
        self._data, self._event = [], ""
        if not data:
            return None
        return Event(self.last_id, event, "\n".join(data), self.retry)

    def parse(self, lines: Iterable[str]) -> Iterator[Event]:
        for line in lines:
            event = self.feed(line)
            if event is not None:
                yield event


class GatewayClient:
    """The gateway at `url`, called with bearer `token`."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout: httpx.Timeout = TIMEOUT,
        idle: float = IDLE,
        retries: int = MAX_RETRIES,
        retry_delay: float = RETRY_DELAY,
        hint: str = "",
    ):
        self.url = url.rstrip("/")
        self.idle, self.retries, self.retry_delay = idle, retries, retry_delay
        self.hint = hint  # added to a 401's message (where the token came from)
        self.http = httpx.Client(
            base_url=self.url,
            timeout=timeout,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- requests ----------------------------------------------------------------------
    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            answer = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from None
        self._check(answer)
        try:
            return answer.json()
        except ValueError:
            raise GatewayError(
                answer.status_code, f"the gateway at {self.url} answered something not JSON"
            ) from None

    def _unreachable(self, exc: httpx.HTTPError) -> GatewayError:
        if isinstance(exc, httpx.TimeoutException):
            return GatewayError(
                0, f"the gateway at {self.url} did not answer in time", code="timeout"
            )
        if isinstance(exc, httpx.ConnectError):
            why = str(exc) or type(exc).__name__
            return GatewayError(
                0, f"cannot reach the gateway at {self.url}: {why}", code="unreachable"
            )
        why = str(exc) or type(exc).__name__
        return GatewayError(0, f"the gateway at {self.url}: {why}", code="unreachable")

    def _check(self, answer: httpx.Response) -> None:
        if answer.is_success:
            return
        answer.read()
        message, code = "", "http_error"
        try:
            error = answer.json().get("error") or {}
            message, code = str(error.get("message") or ""), str(error.get("code") or code)
        except (ValueError, AttributeError):
            pass
        if not message:  # not the gateway's own answer (a proxy, a load balancer)
            message = " ".join(answer.text.split())[:200] or answer.reason_phrase
        said = f"{message} ({self.hint})" if answer.status_code == 401 and self.hint else message
        raise GatewayError(
            answer.status_code,
            f"the gateway answered {answer.status_code}: {said}",
            code=code,
            detail=message,
        )

    def start(
        self,
        path: str,
        version: str | int | None = None,
        workload: dict[str, Any] | None = None,
        request_id: str | None = None,
    ) -> dict[str, Any]:
        """Start the playbook at catalog `path`: {execution_id, new}."""
        body: dict[str, Any] = {"path": path, "workload": workload or {}}
        if version is not None:
            body["version"] = version
        if request_id is not None:
            body["request_id"] = request_id
        started: dict[str, Any] = self._call("POST", "/v1/executions", json=body)
        return started

    def executions(
        self, path: str | None = None, status: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        query = {k: v for k, v in (("path", path), ("status", status), ("limit", limit)) if v}
        listed: list[dict[str, Any]] = self._call("GET", "/v1/executions", params=query)[
            "executions"
        ]
        return listed

    def execution(self, execution_id: str) -> dict[str, Any]:
        """{execution_id, status, steps, result?, error?}"""
        state: dict[str, Any] = self._call("GET", f"/v1/executions/{execution_id}")
        return state

    def graph(self, execution_id: str) -> dict[str, Any]:
        """The viewer's drawing: steps with status and counts, arcs, blocks."""
        drawn: dict[str, Any] = self._call("GET", f"/v1/executions/{execution_id}/graph")
        return drawn

    def logs(self, execution_id: str, step: str | None = None) -> list[dict[str, Any]]:
        """What the steps printed and their errors (`view.logs_of` rows)."""
        params = {"step": step} if step else None
        found = self._call("GET", f"/v1/executions/{execution_id}/logs", params=params)
        rows: list[dict[str, Any]] = found["logs"]
        return rows

    def cancel(self, execution_id: str, reason: str | None = None) -> dict[str, Any]:
        body = {"reason": reason} if reason else {}
        done: dict[str, Any] = self._call(
            "POST", f"/v1/executions/{execution_id}/cancel", json=body
        )
        return done

    def register(self, source: str) -> dict[str, Any]:
        """Register playbook YAML: {path, version, new}."""
        done: dict[str, Any] = self._call("POST", "/v1/catalog", json={"source": source})
        return done

    def catalog(self) -> list[dict[str, Any]]:
        listed: list[dict[str, Any]] = self._call("GET", "/v1/catalog")["playbooks"]
        return listed

    def schedules(self) -> list[dict[str, Any]]:
        listed: list[dict[str, Any]] = self._call("GET", "/v1/schedules")["schedules"]
        return listed

    # -- the event stream --------------------------------------------------------------
    def events(
        self,
        execution_id: str,
        last_event_id: str | None = None,
        *,
        until_idle: float | None = None,
    ) -> Iterator[Event]:
        """The execution's events after `last_event_id`, to its `terminal` event. A
        stream that breaks off is reopened after the last event received. With
        `until_idle`, the iteration ends quietly once the stream is silent that long
        (what is recorded so far has come; the execution goes on)."""
        path = f"/v1/executions/{execution_id}/events"
        idle = self.idle if until_idle is None else until_idle
        timeout = httpx.Timeout(TIMEOUT.read, connect=TIMEOUT.connect, read=idle)
        failures, delay, opened = 0, self.retry_delay, False
        while True:
            parser = SSEParser(last_event_id)
            headers = {"Accept": "text/event-stream"}
            if last_event_id is not None:
                headers["Last-Event-ID"] = last_event_id
            why: httpx.HTTPError | None = None
            received = False
            try:
                with self.http.stream("GET", path, headers=headers, timeout=timeout) as answer:
                    self._check(answer)
                    opened = True
                    for event in parser.parse(answer.iter_lines()):
                        received = True
                        last_event_id = parser.last_id
                        yield event
                        if event.event == "terminal":
                            return
                    last_event_id = parser.last_id  # an id without data counts too
            except httpx.ReadTimeout as exc:
                last_event_id = parser.last_id
                if until_idle is not None:
                    return
                why, received = exc, True  # silent, not broken: reopen at once
            except httpx.HTTPError as exc:
                if not opened:  # never reached: say so now, not after the retries
                    raise self._unreachable(exc) from None
                last_event_id = parser.last_id
                why = exc
            if received:
                failures, delay = 0, self.retry_delay
                continue
            failures += 1
            if failures > self.retries:
                said = str(why or "it ended before the execution did") or type(why).__name__
                raise GatewayError(
                    0,
                    f"the event stream of {execution_id} at {self.url} broke off "
                    f"{failures} times in a row ({said})",
                    code="stream_broken",
                )
            time.sleep(parser.retry if parser.retry is not None else delay)
            delay = min(delay * 2, 8.0)
