"""The Cloud Tasks emulator through the real ``CloudTasksClient``: queues, tasks, pushes to a
loopback HTTP server at their schedule time, deduplication by name, retries and errors."""

from __future__ import annotations

import base64
import itertools
import json
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import pytest
from google.api_core import exceptions
from google.cloud import tasks_v2
from google.protobuf import duration_pb2

from emulators import cloudtasks

pytestmark = pytest.mark.integration

PARENT = "projects/noetl-local/locations/us-central1"
ROOT = Path(__file__).resolve().parents[2]
FULL = tasks_v2.Task.View.FULL
T = TypeVar("T")


class Target(ThreadingHTTPServer):
    """Records every request; answers the statuses scripted for its path first, then 200."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.received: list[dict[str, Any]] = []
        self.script: dict[str, list[int]] = {}

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"

    def requests(self, path: str) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.received if r["path"] == path]


class _Handler(BaseHTTPRequestHandler):
    server: Target

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.server.lock:
            self.server.received.append(
                {
                    "method": self.command,
                    "path": self.path,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": body,
                    "at": time.time(),
                }
            )
            script = self.server.script.get(self.path)
            status = script.pop(0) if script else 200
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_PUT = do_GET = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


def wait_for(predicate: Callable[[], T], timeout: float = 10.0) -> T:
    deadline = time.monotonic() + timeout
    while not (result := predicate()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
    return result


def gone(client: tasks_v2.CloudTasksClient, name: str) -> bool:
    try:
        client.get_task(name=name)
    except exceptions.NotFound:
        return True
    return False


@pytest.fixture(scope="module")
def emulator() -> Iterator[cloudtasks.CloudTasksEmulator]:
    with cloudtasks.CloudTasksEmulator() as running:
        yield running


@pytest.fixture(scope="module")
def tasks(emulator: cloudtasks.CloudTasksEmulator) -> Iterator[tasks_v2.CloudTasksClient]:
    client = cloudtasks.client(emulator.host)
    yield client
    client.transport.close()


@pytest.fixture
def target() -> Iterator[Target]:
    server = Target()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def queue(tasks: tasks_v2.CloudTasksClient) -> str:
    name = f"{PARENT}/queues/q-{uuid.uuid4().hex[:12]}"
    return tasks.create_queue(parent=PARENT, queue=tasks_v2.Queue(name=name)).name


def http_task(url: str, **fields: Any) -> tasks_v2.Task:
    request: dict[str, Any] = {
        "url": url,
        **{k: fields.pop(k) for k in ("headers", "body") if k in fields},
    }
    return tasks_v2.Task(http_request=tasks_v2.HttpRequest(**request), **fields)


def test_a_queue_is_created_with_default_retries_and_read_back(
    tasks: tasks_v2.CloudTasksClient,
) -> None:
    name = f"{PARENT}/queues/orders"
    created = tasks.create_queue(parent=PARENT, queue=tasks_v2.Queue(name=name))
    assert created.name == name
    assert created.state == tasks_v2.Queue.State.RUNNING
    assert created.retry_config.max_attempts == cloudtasks.MAX_ATTEMPTS
    assert created.retry_config.min_backoff.total_seconds() == cloudtasks.MIN_BACKOFF
    assert tasks.get_queue(name=name) == created
    assert name in [q.name for q in tasks.list_queues(parent=PARENT)]
    with pytest.raises(exceptions.AlreadyExists):
        tasks.create_queue(parent=PARENT, queue=tasks_v2.Queue(name=name))
    with pytest.raises(exceptions.InvalidArgument):
        tasks.create_queue(
            parent=PARENT, queue=tasks_v2.Queue(name="projects/p/locations/l/queues/x")
        )


def test_a_task_arrives_at_its_schedule_time_with_its_body_and_headers(
    tasks: tasks_v2.CloudTasksClient,
    emulator: cloudtasks.CloudTasksEmulator,
    target: Target,
    queue: str,
) -> None:
    due = time.time() + 0.5
    body = json.dumps({"execution_id": "e1", "step": "fetch"}).encode()
    task = tasks.create_task(
        parent=queue,
        task=http_task(
            target.url("/run"),
            headers={"Content-Type": "application/json", "X-Trace": "t-1"},
            body=body,
            schedule_time=datetime.fromtimestamp(due, tz=UTC),
        ),
    )
    assert task.name.startswith(f"{queue}/tasks/")
    assert task.http_request.http_method == tasks_v2.HttpMethod.POST
    assert task.http_request.body == b""  # the BASIC view omits it
    assert abs(task.schedule_time.timestamp() - due) < 1e-3
    time.sleep(0.3)
    assert target.requests("/run") == []  # not before its time
    (arrived,) = wait_for(lambda: target.requests("/run"))
    assert arrived["at"] >= due
    assert arrived["method"] == "POST"
    assert json.loads(arrived["body"]) == {"execution_id": "e1", "step": "fetch"}
    headers = arrived["headers"]
    assert headers["content-type"] == "application/json"
    assert headers["x-trace"] == "t-1"
    assert headers["user-agent"] == "Google-Cloud-Tasks"
    assert headers["x-cloudtasks-taskname"] == task.name.rsplit("/", 1)[1]
    assert headers["x-cloudtasks-queuename"] == queue.rsplit("/", 1)[1]
    assert headers["x-cloudtasks-taskretrycount"] == "0"
    wait_for(lambda: gone(tasks, task.name))  # delivered: removed
    (attempt,) = [d for d in emulator.dispatched if d["name"] == task.name]
    assert attempt["status"] == 200
    assert attempt["url"] == target.url("/run")
    assert attempt["at"] >= due


def test_a_named_task_created_twice_is_already_exists(
    tasks: tasks_v2.CloudTasksClient, target: Target, queue: str
) -> None:
    later = datetime.fromtimestamp(time.time() + 60, tz=UTC)
    waiting = f"{queue}/tasks/exec-1-step-2"
    tasks.create_task(
        parent=queue, task=http_task(target.url("/a"), name=waiting, schedule_time=later)
    )
    with pytest.raises(exceptions.AlreadyExists):
        tasks.create_task(parent=queue, task=http_task(target.url("/a"), name=waiting))
    tasks.delete_task(name=waiting)
    with pytest.raises(exceptions.AlreadyExists):  # a deleted name stays taken
        tasks.create_task(parent=queue, task=http_task(target.url("/a"), name=waiting))

    done = f"{queue}/tasks/exec-1-step-3"
    tasks.create_task(parent=queue, task=http_task(target.url("/b"), name=done))
    wait_for(lambda: gone(tasks, done))
    with pytest.raises(exceptions.AlreadyExists):  # so does a delivered one
        tasks.create_task(parent=queue, task=http_task(target.url("/b"), name=done))
    time.sleep(0.2)
    assert len(target.requests("/b")) == 1
    assert target.requests("/a") == []
    with pytest.raises(exceptions.InvalidArgument):  # a name outside the parent queue
        tasks.create_task(
            parent=queue, task=http_task(target.url("/a"), name=f"{PARENT}/queues/other/tasks/x")
        )


def test_a_failing_target_is_retried_with_backoff_until_delivered(
    tasks: tasks_v2.CloudTasksClient,
    emulator: cloudtasks.CloudTasksEmulator,
    target: Target,
    queue: str,
) -> None:
    target.script["/flaky"] = [500, 500]
    task = tasks.create_task(parent=queue, task=http_task(target.url("/flaky"), body=b"\x00raw"))
    wait_for(lambda: len(target.requests("/flaky")) == 3)
    arrivals = target.requests("/flaky")
    wait_for(lambda: gone(tasks, task.name))
    assert [d["status"] for d in emulator.dispatched if d["name"] == task.name] == [500, 500, 200]
    assert [r["headers"]["x-cloudtasks-taskretrycount"] for r in arrivals] == ["0", "1", "2"]
    assert {r["body"] for r in arrivals} == {b"\x00raw"}
    assert {r["headers"]["content-type"] for r in arrivals} == {"application/octet-stream"}
    gaps = [b["at"] - a["at"] for a, b in itertools.pairwise(arrivals)]
    assert gaps[0] >= 0.45  # 0.5 s, then doubled
    assert gaps[1] >= 0.95
    time.sleep(0.3)
    assert len(target.requests("/flaky")) == 3


def test_a_task_is_dropped_after_max_attempts_of_connection_errors(
    tasks: tasks_v2.CloudTasksClient, emulator: cloudtasks.CloudTasksEmulator
) -> None:
    queue = tasks.create_queue(
        parent=PARENT,
        queue=tasks_v2.Queue(
            name=f"{PARENT}/queues/q-{uuid.uuid4().hex[:12]}",
            retry_config=tasks_v2.RetryConfig(
                max_attempts=3,
                min_backoff=duration_pb2.Duration(nanos=50_000_000),
                max_backoff=duration_pb2.Duration(nanos=100_000_000),
            ),
        ),
    ).name
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    task = tasks.create_task(parent=queue, task=http_task(f"http://127.0.0.1:{port}/x"))
    wait_for(lambda: gone(tasks, task.name))
    time.sleep(0.3)
    attempts = [d for d in emulator.dispatched if d["name"] == task.name]
    assert [d["status"] for d in attempts] == [None, None, None]


def test_tasks_are_read_listed_and_deleted(
    tasks: tasks_v2.CloudTasksClient,
    emulator: cloudtasks.CloudTasksEmulator,
    target: Target,
    queue: str,
) -> None:
    later = datetime.fromtimestamp(time.time() + 60, tz=UTC)
    names = [
        tasks.create_task(
            parent=queue, task=http_task(target.url(f"/{i}"), body=b"{}", schedule_time=later)
        ).name
        for i in range(3)
    ]
    basic = tasks.get_task(name=names[0])
    full = tasks.get_task(request={"name": names[0], "response_view": FULL})
    assert (basic.http_request.body, full.http_request.body) == (b"", b"{}")
    assert full.http_request.url == target.url("/0")
    assert (full.view, basic.view) == (FULL, tasks_v2.Task.View.BASIC)
    assert sorted(t.name for t in tasks.list_tasks(parent=queue)) == sorted(names)
    paged = tasks.list_tasks(request={"parent": queue, "page_size": 2})
    assert [len(p.tasks) for p in paged.pages] == [2, 1]  # the pager follows the token

    tasks.delete_task(name=names[1])
    assert sorted(t.name for t in tasks.list_tasks(parent=queue)) == sorted([names[0], names[2]])
    with pytest.raises(exceptions.NotFound):
        tasks.get_task(name=names[1])
    with pytest.raises(exceptions.NotFound):
        tasks.delete_task(name=names[1])

    tasks.delete_queue(name=queue)
    with pytest.raises(exceptions.NotFound):
        tasks.get_task(name=names[0])
    assert queue not in [q.name for q in tasks.list_queues(parent=PARENT)]
    assert not [d for d in emulator.dispatched if d["name"] in names]


def test_a_missing_queue_is_not_found_and_bad_requests_are_refused(
    tasks: tasks_v2.CloudTasksClient, target: Target
) -> None:
    missing = f"{PARENT}/queues/missing"
    with pytest.raises(exceptions.NotFound):
        tasks.get_queue(name=missing)
    with pytest.raises(exceptions.NotFound):
        tasks.delete_queue(name=missing)
    with pytest.raises(exceptions.NotFound):
        tasks.list_tasks(parent=missing)
    with pytest.raises(exceptions.NotFound):
        tasks.create_task(parent=missing, task=http_task(target.url("/x")))
    with pytest.raises(exceptions.InvalidArgument):
        tasks.get_queue(name="queues/missing")
    with pytest.raises(exceptions.MethodNotImplemented):
        tasks.pause_queue(name=missing)


def test_the_module_runs_the_emulator_alone() -> None:
    command = [sys.executable, "-m", "emulators.cloudtasks", "--port", "0"]
    with subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            line = process.stdout.readline().strip()
            assert line.startswith(f"export {cloudtasks.ENV_VAR}=127.0.0.1:")
            client = cloudtasks.client(line.split("=", 1)[1])
            name = f"{PARENT}/queues/alone"
            assert client.create_queue(parent=PARENT, queue=tasks_v2.Queue(name=name)).name == name
            client.transport.close()
        finally:
            process.terminate()
            assert process.wait(timeout=10) == 0


def test_a_private_target_takes_only_tasks_with_an_invokers_oidc_token(
    tasks: tasks_v2.CloudTasksClient,
    emulator: cloudtasks.CloudTasksEmulator,
    target: Target,
    queue: str,
) -> None:
    base = target.url("")
    emulator.protect(base, {"invoker@p.iam.gserviceaccount.com"})
    no_token = tasks.create_task(parent=queue, task=http_task(target.url("/none")))
    wrong_audience = tasks.create_task(
        parent=queue,
        task=tasks_v2.Task(
            http_request=tasks_v2.HttpRequest(
                url=target.url("/aud"),
                oidc_token=tasks_v2.OidcToken(
                    service_account_email="invoker@p.iam.gserviceaccount.com",
                    audience="https://elsewhere.example",
                ),
            )
        ),
    )
    other_account = tasks.create_task(
        parent=queue,
        task=tasks_v2.Task(
            http_request=tasks_v2.HttpRequest(
                url=target.url("/other"),
                oidc_token=tasks_v2.OidcToken(
                    service_account_email="someone@p.iam.gserviceaccount.com", audience=base
                ),
            )
        ),
    )
    allowed = tasks.create_task(
        parent=queue,
        task=tasks_v2.Task(
            http_request=tasks_v2.HttpRequest(
                url=target.url("/ok"),
                oidc_token=tasks_v2.OidcToken(
                    service_account_email="invoker@p.iam.gserviceaccount.com", audience=base
                ),
            )
        ),
    )
    wait_for(lambda: target.requests("/ok"))
    claims = target.requests("/ok")[0]["headers"]["authorization"].split(".")[1]
    decoded = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    assert decoded["aud"] == base
    assert decoded["email"] == "invoker@p.iam.gserviceaccount.com"

    def statuses(name: str) -> list[int | None]:
        return [d["status"] for d in emulator.dispatched if d["name"] == name]

    wait_for(lambda: statuses(no_token.name) and statuses(other_account.name))
    wait_for(lambda: statuses(wrong_audience.name))
    assert set(statuses(no_token.name)) == {401}
    assert set(statuses(wrong_audience.name)) == {401}
    assert set(statuses(other_account.name)) == {403}
    assert not target.requests("/none") and not target.requests("/aud")
    assert not target.requests("/other")
    assert gone(tasks, allowed.name)
    assert not gone(tasks, no_token.name)  # refused, kept for its retries
