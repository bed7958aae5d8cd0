"""The gateway client's Server-Sent Events: the parser on the specification's cases, and
a stream that a server drops mid-event resumed with Last-Event-ID, losing and repeating
nothing (a local server that cuts the connection), and given up after bounded retries."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator

import httpx
import pytest

from noetl_core.gateway.client import Event, GatewayClient, GatewayError, SSEParser

pytestmark = pytest.mark.unit


def parse(text: str, last_id: str | None = None) -> tuple[list[Event], SSEParser]:
    parser = SSEParser(last_id)
    return list(parser.parse(text.splitlines())), parser


def test_data_lines_join_with_newlines_and_one_leading_space_goes() -> None:
    events, _ = parse("data: first\ndata:second\ndata:  third\n\n")
    assert events == [Event(None, "message", "first\nsecond\n third")]


def test_comments_and_unknown_fields_are_ignored() -> None:
    events, _ = parse(": keep-alive\nfoo: bar\nevent: done\n: another\ndata: x\n\n")
    assert events == [Event(None, "done", "x")]


def test_an_id_without_data_moves_the_resume_point_but_dispatches_nothing() -> None:
    events, parser = parse("id: 1\ndata: a\n\nid: 7\n\n: end\n")
    assert [e.id for e in events] == ["1"]
    assert parser.last_id == "7"


def test_an_event_without_its_blank_line_is_not_dispatched() -> None:
    events, parser = parse("id: 1\ndata: a\n\nid: 2\ndata: b")
    assert [e.data for e in events] == ["a"]
    assert parser.last_id == "1"  # the cut event's id is not where a resume starts


def test_the_id_carries_over_and_retry_is_read_in_seconds() -> None:
    events, parser = parse("retry: 1500\nid: 3\nevent: e\ndata: a\n\ndata: b\n\n", "2")
    assert [(e.id, e.event, e.data) for e in events] == [("3", "e", "a"), ("3", "message", "b")]
    assert parser.retry == 1.5
    events, _ = parse("id: bad\x00id\ndata: a\n\n", "2")
    assert events[0].id == "2"


def frame(n: int, kind: str = "done") -> bytes:
    data = json.dumps({"kind": kind, "step": f"s{n}", "events": ["command.completed"]})
    return f"id: {n}\nevent: {kind}\ndata: {data}\n\n".encode()


Serve = Callable[[int, str | None], bytes]


@pytest.fixture
def server() -> Iterator[tuple[str, list[str | None], list[Serve]]]:
    """A raw socket server answering each GET with `plan[0](connection number,
    Last-Event-ID)` and then closing the connection (no length: HTTP/1.0 style)."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    seen: list[str | None] = []
    plan: list[Serve] = []
    stop = threading.Event()

    def loop() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    head += chunk
                last = None
                for line in head.decode().split("\r\n"):
                    name, _, value = line.partition(":")
                    if name.lower() == "last-event-id":
                        last = value.strip()
                seen.append(last)
                body = plan[0](len(seen), last)
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                    b"Connection: close\r\n\r\n" + body
                )

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}", seen, plan
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


def test_a_dropped_stream_resumes_after_the_last_event_losing_and_repeating_nothing(
    server: tuple[str, list[str | None], list[Serve]],
) -> None:
    url, seen, plan = server

    def answer(connection: int, last: str | None) -> bytes:
        if connection == 1:  # three events, then the fourth cut halfway
            return frame(1) + frame(2) + frame(3) + frame(4)[:20]
        if connection == 2:  # a comment, event 4, event 5 cut before its blank line
            return b": hello\n\n" + frame(4) + frame(5)[:-1]
        return frame(5) + frame(6, "terminal")

    plan.append(answer)
    with GatewayClient(url, "t", retry_delay=0.01) as client:
        got = list(client.events("e1"))
    assert [e.id for e in got] == ["1", "2", "3", "4", "5", "6"]
    assert [json.loads(e.data)["step"] for e in got] == ["s1", "s2", "s3", "s4", "s5", "s6"]
    assert seen == [None, "3", "4"]


def test_a_stream_that_keeps_breaking_is_given_up_after_bounded_retries(
    server: tuple[str, list[str | None], list[Serve]],
) -> None:
    url, seen, plan = server
    plan.append(lambda connection, last: frame(1) if connection == 1 else b"")
    with GatewayClient(url, "t", retries=3, retry_delay=0.01) as client:
        got: list[Event] = []
        with pytest.raises(GatewayError, match="broke off 4 times in a row"):
            got.extend(client.events("e1"))
    assert [e.id for e in got] == ["1"]
    assert seen == [None, "1", "1", "1", "1"]


def test_an_unreachable_gateway_is_one_error_at_once() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()
    with (
        GatewayClient(f"http://127.0.0.1:{port}", "t") as client,
        pytest.raises(GatewayError, match="cannot reach the gateway") as caught,
    ):
        list(client.events("e1"))
    assert caught.value.status == 0


def test_error_answers_become_one_line_with_the_status() -> None:
    answers = {
        "/v1/catalog": httpx.Response(
            403, json={"error": {"code": "forbidden", "message": "no 'admin' scope"}}
        ),
        "/v1/schedules": httpx.Response(502, text="<html><body>Bad   gateway</body></html>"),
        "/v1/executions/x": httpx.Response(401, json={"error": {"message": "not valid"}}),
    }
    client = GatewayClient("http://gw.test", "t", hint="minted here")
    client.http = httpx.Client(
        base_url=client.url, transport=httpx.MockTransport(lambda r: answers[r.url.path])
    )
    with client:
        with pytest.raises(GatewayError) as refused:
            client.register("kind: Playbook")
        assert (refused.value.status, refused.value.code) == (403, "forbidden")
        assert refused.value.message == "the gateway answered 403: no 'admin' scope"
        with pytest.raises(GatewayError, match=r"answered 502: <html><body>Bad gateway"):
            client.schedules()
        with pytest.raises(GatewayError, match=r"answered 401: not valid \(minted here\)$"):
            client.execution("x")
