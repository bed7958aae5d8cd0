"""The local Google Cloud stack: each emulator through the real client libraries, functions
fed by Pub/Sub push subscriptions, supervision of function processes, a clean stop."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from emulators import secretmanager
from emulators.processes import descendants, group_members, pid_alive, tcp_probe
from emulators.stack import (
    COMMANDS_TOPIC,
    DEAD_LETTER_SUBSCRIPTION,
    DEAD_LETTER_TOPIC,
    ROOT,
    EmulatorNotFound,
    EmulatorStack,
    find_sdk_tool,
)

pytestmark = pytest.mark.integration

PROJECT = "noetl-local"
BUCKET = "noetl-local-payloads"  # infra/deployment.json names it after the project

FUNCTIONS_SOURCE = """
import base64
import json
import os

import functions_framework


def _append(record):
    with open(os.environ["RECORD_FILE"], "a") as out:
        out.write(json.dumps(record) + "\\n")


@functions_framework.http
def echo(request):
    body = request.get_json(silent=True)
    if request.method == "POST":
        _append({"path": request.path, "body": body})
    return {"service": os.environ.get("K_SERVICE"), "pid": os.getpid(), "body": body}


@functions_framework.cloud_event
def record(cloud_event):
    _append(
        {
            "id": cloud_event["id"],
            "type": cloud_event["type"],
            "source": cloud_event["source"],
            "data": cloud_event.data,
            "pid": os.getpid(),
        }
    )


@functions_framework.cloud_event
def always_fails(cloud_event):
    _append({"id": cloud_event["id"], "data": cloud_event.data})
    raise RuntimeError("this function always fails")
"""


def wait_for(
    condition: Callable[[], Any],
    timeout: float = 20.0,
    what: str = "condition",
    log: Callable[[], str] | None = None,
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            tail = f"; log:\n{log()}" if log else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}{tail}")
        time.sleep(0.05)


def records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def stack() -> Iterator[EmulatorStack]:
    with pytest.MonkeyPatch.context() as patch:
        emulators = EmulatorStack(PROJECT)
        try:
            emulators.start()
            for key, value in emulators.env().items():
                patch.setenv(key, value)
            yield emulators
        finally:
            emulators.stop()


@pytest.fixture(autouse=True)
def clean_firestore(stack: EmulatorStack) -> None:
    if stack.services and stack.services["firestore"].running():
        stack.reset()


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("functions") / "main.py"
    path.write_text(textwrap.dedent(FUNCTIONS_SOURCE))
    return path


@pytest.fixture(scope="module")
def publisher(stack: EmulatorStack) -> Iterator[Any]:
    from google.cloud import pubsub_v1

    client = pubsub_v1.PublisherClient()
    yield client
    client.stop()


def test_stack_starts_quickly_and_describes_itself(stack: EmulatorStack) -> None:
    env = stack.env()
    assert env["GOOGLE_CLOUD_PROJECT"] == PROJECT
    assert env["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] == "false"
    assert env["STORAGE_EMULATOR_HOST"].startswith("http://127.0.0.1:")
    for key in ("PUBSUB_EMULATOR_HOST", "FIRESTORE_EMULATOR_HOST", "SECRET_MANAGER_EMULATOR_HOST"):
        host, port = env[key].split(":")
        assert host == "127.0.0.1"
        assert tcp_probe(host, int(port))()
    assert stack.startup_seconds is not None
    print(f"emulator stack started in {stack.startup_seconds:.2f}s")
    assert stack.startup_seconds < 20


def test_pubsub_publish_and_pull(stack: EmulatorStack, publisher: Any) -> None:
    from google.cloud import pubsub_v1

    topic = publisher.topic_path(PROJECT, "test-pull")
    publisher.create_topic(name=topic)
    with pubsub_v1.SubscriberClient() as subscriber:
        subscription = subscriber.subscription_path(PROJECT, "test-pull-sub")
        subscriber.create_subscription(name=subscription, topic=topic)
        message_id = publisher.publish(topic, b'{"n": 1}', kind="test").result(timeout=10)

        def pull() -> list[Any]:
            answer = subscriber.pull(
                request={"subscription": subscription, "max_messages": 10}, timeout=5
            )
            return list(answer.received_messages)

        received = wait_for(pull, what="the published message")
        assert [m.message.message_id for m in received] == [message_id]
        assert received[0].message.data == b'{"n": 1}'
        assert dict(received[0].message.attributes) == {"kind": "test"}
        subscriber.acknowledge(
            request={"subscription": subscription, "ack_ids": [received[0].ack_id]}
        )
        # the project's own resources exist
        dead = subscriber.get_subscription(
            subscription=subscriber.subscription_path(PROJECT, DEAD_LETTER_SUBSCRIPTION)
        )
        assert dead.topic == publisher.topic_path(PROJECT, DEAD_LETTER_TOPIC)
    publisher.get_topic(topic=publisher.topic_path(PROJECT, COMMANDS_TOPIC))


def test_firestore_write_read_and_reset(stack: EmulatorStack) -> None:
    from google.cloud import firestore

    client = firestore.Client(project=PROJECT)
    try:
        ref = client.collection("events").document("e1")
        ref.create({"type": "step.enter", "seq": 1})
        assert ref.get().to_dict() == {"type": "step.enter", "seq": 1}
        stack.reset()
        assert not ref.get().exists
    finally:
        client.close()


def test_storage_objects_through_google_cloud_storage_and_gcsfs(stack: EmulatorStack) -> None:
    from google.cloud import storage

    client = storage.Client(project=PROJECT)
    bucket = client.bucket(BUCKET)
    bucket.blob("executions/e1/a.json").upload_from_string(b'{"x": 1}')
    assert bucket.blob("executions/e1/a.json").download_as_bytes() == b'{"x": 1}'
    assert [b.name for b in client.list_blobs(BUCKET, prefix="executions/e1/")] == [
        "executions/e1/a.json"
    ]

    assert os.environ["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] == "false"  # before importing
    import gcsfs

    fs = gcsfs.GCSFileSystem(project=PROJECT, token="anon")
    started = time.monotonic()
    fs.pipe(f"{BUCKET}/executions/e1/b.arrow", b"\x00arrow")
    assert fs.cat(f"{BUCKET}/executions/e1/b.arrow") == b"\x00arrow"
    assert fs.cat(f"{BUCKET}/executions/e1/a.json") == b'{"x": 1}'
    assert time.monotonic() - started < 10  # no 60 s stalls against the emulator


def test_secret_manager(stack: EmulatorStack) -> None:
    from google.api_core import exceptions

    client = secretmanager.client(stack.secrets_host)
    parent = f"projects/{PROJECT}"
    secret = client.create_secret(
        parent=parent, secret_id="pg-local", secret={"replication": {"automatic": {}}}
    )
    assert secret.name == f"{parent}/secrets/pg-local"
    with pytest.raises(exceptions.AlreadyExists):
        client.create_secret(parent=parent, secret_id="pg-local", secret={})
    first = client.add_secret_version(parent=secret.name, payload={"data": b"one"})
    client.add_secret_version(parent=secret.name, payload={"data": b"two"})
    latest = client.access_secret_version(name=f"{secret.name}/versions/latest")
    assert latest.payload.data == b"two"
    assert latest.name == f"{secret.name}/versions/2"
    assert client.access_secret_version(name=first.name).payload.data == b"one"
    assert client.access_secret_version(name=f"{secret.name}/versions/1").payload.data == b"one"
    assert [s.name for s in client.list_secrets(parent=parent)] == [secret.name]
    assert [v.name for v in client.list_secret_versions(parent=secret.name)] == [
        f"{secret.name}/versions/2",
        f"{secret.name}/versions/1",
    ]
    assert client.get_secret(name=secret.name).name == secret.name
    with pytest.raises(exceptions.NotFound):
        client.access_secret_version(name=f"{parent}/secrets/missing/versions/latest")
    with pytest.raises(exceptions.NotFound):
        client.access_secret_version(name=f"{secret.name}/versions/7")
    with pytest.raises(exceptions.InvalidArgument):
        client.access_secret_version(name="not-a-name")
    client.delete_secret(name=secret.name)
    with pytest.raises(exceptions.NotFound):
        client.get_secret(name=secret.name)


def test_http_function_direct_and_through_push(
    stack: EmulatorStack, source: Path, tmp_path: Path, publisher: Any
) -> None:
    out = tmp_path / "echo.jsonl"
    stack.create_topic("test-http")
    echo = stack.add_function(
        "echo", "echo", "http", source, push_topic="test-http", env={"RECORD_FILE": str(out)}
    )
    with urllib.request.urlopen(echo.url) as answer:
        assert json.load(answer)["service"] == "echo"

    message_id = publisher.publish(
        publisher.topic_path(PROJECT, "test-http"), b"raw", k="v"
    ).result(timeout=10)
    [pushed] = wait_for(lambda: records(out), what="the push", log=echo.service.log_tail)
    # the emulator's push body, as an http function sees it
    assert pushed["path"] == f"/projects/{PROJECT}/topics/test-http"
    assert pushed["body"]["subscription"] == stack.subscription_path("echo-push")
    assert pushed["body"]["message"]["messageId"] == message_id
    assert base64.b64decode(pushed["body"]["message"]["data"]) == b"raw"
    assert pushed["body"]["message"]["attributes"] == {"k": "v"}


def test_cloud_event_function_gets_pubsub_messages_and_is_restarted(
    stack: EmulatorStack, source: Path, tmp_path: Path, publisher: Any
) -> None:
    out = tmp_path / "events.jsonl"
    recorder = stack.add_function(
        "recorder",
        "record",
        "cloudevent",
        source,
        push_topic=COMMANDS_TOPIC,
        env={"RECORD_FILE": str(out)},
    )
    assert stack.dead_letter_supported is True
    topic = publisher.topic_path(PROJECT, COMMANDS_TOPIC)
    notice = {"execution_id": "e1", "command_id": "c1", "attempt": 1}
    message_id = publisher.publish(topic, json.dumps(notice).encode(), attempt="1").result(10)

    [event] = wait_for(lambda: records(out), what="the CloudEvent", log=recorder.service.log_tail)
    # functions-framework turned the emulator's raw push body into a CloudEvent
    assert event["type"] == "google.cloud.pubsub.topic.v1.messagePublished"
    assert event["source"] == f"//pubsub.googleapis.com/projects/{PROJECT}/topics/{COMMANDS_TOPIC}"
    assert event["id"] == message_id
    message = event["data"]["message"]
    assert json.loads(base64.b64decode(message["data"])) == notice
    assert message["attributes"] == {"attempt": "1"}
    assert message["messageId"] == message_id
    assert "subscription" not in event["data"]  # the conversion drops it

    # kill the instance: the stack starts a new one on the same port
    first_pid = recorder.pid
    assert first_pid is not None
    os.kill(first_pid, signal.SIGKILL)
    wait_for(lambda: stack.restarts["recorder"] >= 1, what="the restart")
    assert recorder.pid != first_pid
    assert recorder.service.running()
    assert recorder.exit_codes == [-signal.SIGKILL]
    assert not group_members(first_pid)  # the killed instance's gunicorn worker is gone too

    second = publisher.publish(topic, b'{"command_id": "c2"}').result(10)
    wait_for(
        lambda: len(records(out)) == 2,
        what="delivery to the new instance",
        log=recorder.service.log_tail,
    )
    after = records(out)[1]
    assert after["id"] == second
    assert after["pid"] != event["pid"]


def test_failing_function_dead_letters_after_max_attempts(
    stack: EmulatorStack, source: Path, tmp_path: Path, publisher: Any
) -> None:
    from google.cloud import pubsub_v1

    out = tmp_path / "fails.jsonl"
    stack.create_topic("test-fail")
    stack.add_function(
        "failing",
        "always_fails",
        "cloudevent",
        source,
        push_topic="test-fail",
        env={"RECORD_FILE": str(out)},
        max_delivery_attempts=5,  # the emulator redelivers a failed push about once a second
    )
    marker = uuid.uuid4().hex
    message_id = publisher.publish(
        publisher.topic_path(PROJECT, "test-fail"), marker.encode()
    ).result(10)
    with pubsub_v1.SubscriberClient() as subscriber:
        dead = subscriber.subscription_path(PROJECT, DEAD_LETTER_SUBSCRIPTION)

        def pull() -> list[Any]:
            answer = subscriber.pull(request={"subscription": dead, "max_messages": 10}, timeout=5)
            return list(answer.received_messages)

        [received] = wait_for(pull, timeout=60, what="the dead-lettered message")
        subscriber.acknowledge(request={"subscription": dead, "ack_ids": [received.ack_id]})
    assert received.message.data == marker.encode()
    attributes = dict(received.message.attributes)
    assert attributes["CloudPubSubDeadLetterSourceDeliveryCount"] == "5"
    assert attributes["CloudPubSubDeadLetterSourceSubscription"] == "failing-push"
    deliveries = records(out)
    assert len(deliveries) == 5
    assert {d["id"] for d in deliveries} == {message_id}


def test_ordered_push_delivers_one_key_in_order(
    stack: EmulatorStack, source: Path, tmp_path: Path
) -> None:
    from google.cloud import pubsub_v1

    out = tmp_path / "ordered.jsonl"
    stack.create_topic("test-ordered")
    stack.add_function(
        "ordered",
        "echo",
        "http",
        source,
        push_topic="test-ordered",
        env={"RECORD_FILE": str(out)},
        ordering=True,
    )
    ordered = pubsub_v1.PublisherClient(
        publisher_options=pubsub_v1.types.PublisherOptions(enable_message_ordering=True)
    )
    try:
        topic = ordered.topic_path(PROJECT, "test-ordered")
        futures = [ordered.publish(topic, str(i).encode(), ordering_key="e1") for i in range(20)]
        for future in futures:
            future.result(timeout=10)
    finally:
        ordered.stop()
    wait_for(lambda: len(records(out)) >= 20, what="20 ordered deliveries")
    seen = [int(base64.b64decode(r["body"]["message"]["data"])) for r in records(out)]
    assert seen == list(range(20))


def test_missing_emulator_names_what_and_where() -> None:
    with pytest.raises(EmulatorNotFound) as caught:
        find_sdk_tool("platform/no-such-emulator/bin/run", "Spanner emulator", "/nonexistent")
    assert "Spanner emulator not found" in str(caught.value)
    assert "/nonexistent/platform/no-such-emulator/bin/run" in str(caught.value)


def test_stack_up_command_runs_until_sigint(tmp_path: Path) -> None:
    up = subprocess.Popen(
        [sys.executable, "-m", "emulators.stack", "up", "--workdir", str(tmp_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert up.stdout is not None
        exports = {}
        for line in up.stdout:
            if line.startswith("export "):
                key, value = line.removeprefix("export ").strip().split("=", 1)
                exports[key] = value
            if line.startswith("# up in"):
                break
        assert set(exports) >= {"PUBSUB_EMULATOR_HOST", "FIRESTORE_EMULATOR_HOST"}
        with urllib.request.urlopen(f"{exports['STORAGE_EMULATOR_HOST']}/storage/v1/b") as answer:
            assert [b["name"] for b in json.load(answer)["items"]] == [EmulatorStack().bucket]
        children = descendants(up.pid)
        assert len(children) >= 4  # pubsub java, firestore launcher + java, fake-gcs-server
        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=30) == 0
        for pid in children:
            assert not pid_alive(pid), f"process {pid} outlived `emulators.stack up`"
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
        if up.stdout is not None:
            up.stdout.close()


def test_stop_leaves_no_process(stack: EmulatorStack) -> None:
    assert stack.functions, "the function tests ran before this one"
    pids = stack.pids()
    children = [child for pid in pids if pid_alive(pid) for child in descendants(pid)]
    java = [pid for pid in children if Path(f"/proc/{pid}/comm").read_text().strip() == "java"] + [
        stack.services["pubsub"].pid
    ]
    secrets_port = int(stack.secrets_host.split(":")[1])
    assert java, "the SDK emulators run java"

    stack.stop()

    for pid in [*pids, *children, *java]:
        assert not pid_alive(pid), f"process {pid} outlived stop()"
        assert not group_members(pid), f"process group {pid} outlived stop()"
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", secrets_port), timeout=1).close()


def test_http_probe_takes_an_answer_that_is_not_http_1_for_not_ready() -> None:
    """The Firestore emulator's port can answer a GET with an HTTP/2 frame while it
    starts: the probe says "not yet" instead of failing the stack's start."""
    import socket
    import threading

    from emulators.processes import http_probe

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def answer() -> None:
        conn, _ = server.accept()
        conn.recv(1024)
        conn.sendall(b"\x00\x00\x12\x04\x00\x00\x00\x00\x00\xff\xff\xff garbage\r\n\r\n")
        conn.close()

    thread = threading.Thread(target=answer)
    thread.start()
    try:
        assert http_probe(f"http://127.0.0.1:{server.getsockname()[1]}/")() is False
    finally:
        thread.join(5)
        server.close()
