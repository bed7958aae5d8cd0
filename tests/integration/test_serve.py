"""`noetl serve` tried as an attacker would: a real `noetl serve` process on a free
loopback port, called over real sockets. Nothing starts or cancels without a token, even
on loopback; cross-site and DNS-rebinding requests are refused; malformed HTTP and JSON
get a 400 answer, never a dropped connection or a hung handler; a busy port is one clear
line; serving beyond loopback warns loudly; the local key's tokens work."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from noetl_core import embedded, settings
from noetl_core.gateway import tokens

from ..conftest import EXAMPLES, ROOT

pytestmark = pytest.mark.integration


class Served:
    def __init__(self, process: subprocess.Popen[str], port: int, home: Path):
        self.process, self.port, self.home = process, port, home
        self.url = f"http://127.0.0.1:{port}"

    def token(self, *scopes: str, paths: tuple[str, ...] = ("*",)) -> str:
        key = tokens.load_key(None, self.home)
        return tokens.create(key, "tester", list(scopes), list(paths), time.time())

    def raw(self, request: bytes) -> bytes:
        """Send bytes as they are and read the whole answer (the server closes)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as conn:
            conn.sendall(request)
            answer = b""
            while chunk := conn.recv(65536):
                answer += chunk
        return answer

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        out, _ = self.process.communicate(timeout=30)
        return out


def spawn(home: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "noetl_core.cli", "serve", *args],
        cwd=ROOT,
        env={**os.environ, "NOETL_HOME": str(home)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_listening(port: int, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while True:
        assert process.poll() is None, process.communicate()[0]
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            assert time.monotonic() < deadline, "noetl serve did not start"
            time.sleep(0.05)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    from emulators.processes import free_port

    home = tmp_path_factory.mktemp("serve") / "home"
    with embedded.runtime(settings.load({"NOETL_HOME": str(home)})) as rt:
        rt.catalog.register(EXAMPLES / "hello_world.yaml")
    port = free_port()
    process = spawn(home, "--port", str(port))
    wait_listening(port, process)
    running = Served(process, port, home)
    yield running
    running.stop()


def executions(served: Served) -> list[Any]:
    answer = httpx.get(
        served.url + "/v1/executions", headers={"Authorization": f"Bearer {served.token('read')}"}
    )
    assert answer.status_code == 200
    listed: list[Any] = answer.json()["executions"]
    return listed


START = json.dumps({"path": "examples/hello_world", "workload": {"message": "hi"}})


def test_nothing_starts_or_cancels_without_a_token_even_on_loopback(served: Served) -> None:
    before = executions(served)
    headers = {"Content-Type": "application/json"}
    answer = httpx.post(served.url + "/v1/executions", content=START, headers=headers)
    assert answer.status_code == 401 and "bearer token" in answer.json()["error"]["message"]
    cancel = httpx.post(served.url + "/v1/executions/anything/cancel", headers=headers)
    assert cancel.status_code == 401
    assert httpx.get(served.url + "/v1/executions").status_code == 401
    assert executions(served) == before


def test_a_token_from_the_local_key_starts_and_follows_an_execution(served: Served) -> None:
    headers = {"Authorization": f"Bearer {served.token('invoke', 'read')}"}
    answer = httpx.post(
        served.url + "/v1/executions",
        content=START,
        headers={**headers, "Content-Type": "application/json"},
    )
    assert answer.status_code == 202
    execution_id = answer.json()["execution_id"]
    deadline = time.monotonic() + 30
    while True:
        state = httpx.get(f"{served.url}/v1/executions/{execution_id}", headers=headers).json()
        if state["status"] != "running":
            break
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert state["status"] == "completed"
    record = tokens.verify(
        tokens.load_key(None, served.home), f"Bearer {served.token('read')}", time.time()
    )
    assert record.subject == "tester"


@pytest.mark.parametrize(
    "headers, status, code",
    [
        # a web page's simple POST: no preflight, so its content type is not JSON
        ({"Content-Type": "text/plain"}, 415, "unsupported_media"),
        ({"Content-Type": "application/x-www-form-urlencoded"}, 415, "unsupported_media"),
        ({"Content-Type": "application/json", "Origin": "http://evil.example"}, 403, "bad_origin"),
        ({"Content-Type": "application/json", "Origin": "null"}, 403, "bad_origin"),
        (
            {"Content-Type": "application/json", "Origin": "http://127.0.0.1:1"},
            403,
            "bad_origin",
        ),
        (
            {"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"},
            403,
            "cross_site",
        ),
        # DNS rebinding: a name the attacker controls now resolves to 127.0.0.1
        ({"Content-Type": "application/json", "Host": "evil.example"}, 400, "bad_host"),
        ({"Content-Type": "application/json", "Host": "evil.example:80"}, 400, "bad_host"),
    ],
)
def test_cross_site_and_rebound_requests_are_refused_even_with_a_token(
    served: Served, headers: dict[str, str], status: int, code: str
) -> None:
    before = executions(served)
    token = {"Authorization": f"Bearer {served.token('invoke')}"}
    answer = httpx.post(served.url + "/v1/executions", content=START, headers={**token, **headers})
    assert answer.status_code == status
    assert answer.json()["error"]["code"] == code
    assert executions(served) == before


def test_its_own_origin_is_accepted(served: Served) -> None:
    headers = {
        "Authorization": f"Bearer {served.token('read')}",
        "Origin": served.url,
        "Sec-Fetch-Site": "same-origin",
    }
    assert httpx.get(served.url + "/v1/catalog", headers=headers).status_code == 200


@pytest.mark.parametrize("length", [b"abc", b"-1", b"1e3", b"99999999999999999999999"])
def test_a_malformed_content_length_gets_a_400_answer(served: Served, length: bytes) -> None:
    request = (
        b"POST /v1/executions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: " + length + b"\r\n\r\n{}"
    )
    answer = served.raw(request)
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]


def test_deep_or_broken_json_gets_a_400_answer_promptly(served: Served) -> None:
    headers = {
        "Authorization": f"Bearer {served.token('invoke')}",
        "Content-Type": "application/json",
    }
    deep = b'{"path": "examples/hello_world", "workload": ' + b"[" * 100_000 + b"]" * 100_000
    for body in (deep + b"}", b'{"path": ', b"\xff\xfe", b"[]"):
        answer = httpx.post(served.url + "/v1/executions", content=body, headers=headers)
        assert answer.status_code == 400, body[:40]
        assert answer.json()["error"]["message"]


def test_an_oversized_body_is_413_without_reading_it_all(served: Served) -> None:
    headers = {
        "Authorization": f"Bearer {served.token('invoke')}",
        "Content-Type": "application/json",
    }
    body = b'{"path": "' + b"x" * (2 << 20) + b'"}'
    answer = httpx.post(served.url + "/v1/executions", content=body, headers=headers)
    assert answer.status_code == 413


def test_each_answered_request_is_one_line_and_callback_tokens_are_never_printed(
    tmp_path: Path,
) -> None:
    from emulators.processes import free_port

    port = free_port()
    process = spawn(tmp_path / "home", "--port", str(port))
    wait_listening(port, process)
    running = Served(process, port, tmp_path / "home")
    secretish = "AAAA.BBBB-secret-token"
    httpx.post(
        f"{running.url}/callbacks/{secretish}",
        content=b"{}",
        headers={"Content-Type": "application/json"},
    )
    httpx.get(running.url + "/v1/catalog")
    out = running.stop()
    assert "POST /callbacks/<token> 401" in out
    assert "GET /v1/catalog 401" in out
    assert secretish not in out


def test_a_busy_port_is_one_clear_line(served: Served, tmp_path: Path) -> None:
    process = spawn(tmp_path / "home", "--port", str(served.port))
    out, _ = process.communicate(timeout=30)
    assert process.returncode != 0
    assert f"port {served.port} on 127.0.0.1 is in use" in out
    assert "Traceback" not in out


def test_serving_beyond_loopback_warns_loudly(tmp_path: Path) -> None:
    from emulators.processes import free_port

    port = free_port()
    process = spawn(tmp_path / "home", "--host", "0.0.0.0", "--port", str(port))
    wait_listening(port, process)
    running = Served(process, port, tmp_path / "home")
    # the bound address answers only to loopback names and NOETL_SERVE_HOSTS
    answer = httpx.get(running.url + "/v1/catalog", headers={"Host": "192.0.2.7"})
    out = running.stop()
    assert answer.status_code == 400
    assert "WARNING: noetl serve is listening on http://0.0.0.0" in out
