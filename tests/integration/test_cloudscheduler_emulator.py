"""The Cloud Scheduler emulator through the real ``CloudSchedulerClient``: jobs created,
read, listed by page, updated with and without a mask, paused, resumed, deleted; the
errors the service answers; HTTP targets pushed with their headers and retried; Pub/Sub
targets published to the session's Pub/Sub emulator, on RunJob and by the cron line
itself, and a paused job that does not fire."""

from __future__ import annotations

import base64
import datetime as dt
import itertools
import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import pytest
from google.api_core import exceptions
from google.cloud import scheduler_v1
from google.protobuf import duration_pb2, field_mask_pb2

from emulators import cloudscheduler

from ..conftest import ROOT

pytestmark = pytest.mark.integration

PROJECT = "noetl-local"
PARENT = f"projects/{PROJECT}/locations/us-central1"
T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float = 10.0) -> T:
    deadline = time.monotonic() + timeout
    while not (result := predicate()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
    return result


class Target(ThreadingHTTPServer):
    """Records every request; answers the statuses scripted first, then 200."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.received: list[dict[str, Any]] = []
        self.script: list[int] = []

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"


class _Handler(BaseHTTPRequestHandler):
    server: Target

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.server.lock:
            self.server.received.append(
                {
                    "path": self.path,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": body,
                    "at": time.time(),
                }
            )
            status = self.server.script.pop(0) if self.server.script else 200
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def emulator() -> Iterator[cloudscheduler.CloudSchedulerEmulator]:
    with cloudscheduler.CloudSchedulerEmulator() as running:
        yield running


@pytest.fixture(scope="module")
def jobs(
    emulator: cloudscheduler.CloudSchedulerEmulator,
) -> Iterator[scheduler_v1.CloudSchedulerClient]:
    client = cloudscheduler.client(emulator.host)
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


def name(prefix: str = "job") -> str:
    return f"{PARENT}/jobs/{prefix}-{uuid.uuid4().hex[:12]}"


def pubsub_job(job_name: str, **fields: Any) -> scheduler_v1.Job:
    target = scheduler_v1.PubsubTarget(
        topic_name=fields.pop("topic", f"projects/{PROJECT}/topics/t"),
        data=fields.pop("data", b'{"k": 1}'),
        attributes=fields.pop("attributes", {}),
    )
    fields.setdefault("schedule", "0 6 * * *")
    return scheduler_v1.Job(name=job_name, pubsub_target=target, **fields)


def next_six_paris(now: dt.datetime) -> dt.datetime:
    local = now.astimezone(ZoneInfo("Europe/Paris"))
    six = local.replace(hour=6, minute=0, second=0, microsecond=0)
    return (six if six > local else six + dt.timedelta(days=1)).astimezone(dt.UTC)


def test_create_get_update_pause_resume_delete(jobs: scheduler_v1.CloudSchedulerClient) -> None:
    job_name = name()
    before = dt.datetime.now(dt.UTC)
    created = jobs.create_job(
        parent=PARENT, job=pubsub_job(job_name, time_zone="Europe/Paris", description="d")
    )
    assert created.name == job_name and created.state == scheduler_v1.Job.State.ENABLED
    assert created.schedule_time == next_six_paris(before)
    assert created.user_update_time >= before
    assert jobs.get_job(name=job_name) == created

    mask = field_mask_pb2.FieldMask(paths=["schedule", "pubsub_target.data"])
    changed = pubsub_job(job_name, schedule="30 7 * * *", data=b"new", description="ignored")
    updated = jobs.update_job(job=changed, update_mask=mask)
    assert (updated.schedule, updated.pubsub_target.data) == ("30 7 * * *", b"new")
    assert (updated.description, updated.time_zone) == ("d", "Europe/Paris")  # not in the mask
    local = updated.schedule_time.astimezone(ZoneInfo("Europe/Paris"))
    assert (local.hour, local.minute) == (7, 30)

    # no mask: every field the caller may set is replaced (unset ones cleared)
    whole = jobs.update_job(job=pubsub_job(job_name, schedule="0 0 * * *"))
    assert (whole.description, whole.time_zone, whole.schedule) == ("", "", "0 0 * * *")
    assert whole.schedule_time.time() == dt.time(0, 0)  # UTC when no zone is set

    paused = jobs.pause_job(name=job_name)
    assert paused.state == scheduler_v1.Job.State.PAUSED and "schedule_time" not in paused
    with pytest.raises(exceptions.FailedPrecondition):
        jobs.pause_job(name=job_name)
    resumed = jobs.resume_job(name=job_name)
    assert resumed.state == scheduler_v1.Job.State.ENABLED and resumed.schedule_time
    with pytest.raises(exceptions.FailedPrecondition):
        jobs.resume_job(name=job_name)

    jobs.delete_job(name=job_name)
    for call in (jobs.get_job, jobs.delete_job, jobs.pause_job, jobs.run_job):
        with pytest.raises(exceptions.NotFound):
            call(name=job_name)


def test_list_jobs_by_page_and_by_location(jobs: scheduler_v1.CloudSchedulerClient) -> None:
    parent = f"projects/{PROJECT}/locations/list-{uuid.uuid4().hex[:8]}"
    made = sorted(
        jobs.create_job(parent=parent, job=pubsub_job(f"{parent}/jobs/j{i}")).name for i in range(7)
    )
    other = f"projects/{PROJECT}/locations/elsewhere-{uuid.uuid4().hex[:8]}"
    jobs.create_job(parent=other, job=pubsub_job(f"{other}/jobs/j0"))
    first = jobs.list_jobs(request={"parent": parent, "page_size": 3})
    pages = list(first.pages)
    assert [len(page.jobs) for page in pages] == [3, 3, 1]
    assert [j.name for page in pages for j in page.jobs] == made
    assert [j.name for j in jobs.list_jobs(parent=parent)] == made
    with pytest.raises(exceptions.InvalidArgument):
        list(jobs.list_jobs(request={"parent": parent, "page_token": "nonsense"}))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"schedule": "61 * * * *"}, "invalid schedule"),
        ({"schedule": "* * * * * *"}, "invalid schedule"),  # six fields: not unix-cron
        ({"schedule": "every 5 minutes"}, "invalid schedule"),
        ({"time_zone": "Mars/Olympus"}, "invalid time_zone"),
        ({"topic": "projects/another-project/topics/t"}, "invalid topic_name"),
        ({"topic": "topics/t"}, "invalid topic_name"),
        ({"data": b""}, "non-empty data or an attribute"),
    ],
)
def test_invalid_jobs_are_refused(
    jobs: scheduler_v1.CloudSchedulerClient, fields: dict[str, Any], message: str
) -> None:
    job_name = name()
    with pytest.raises(exceptions.InvalidArgument, match=message):
        jobs.create_job(parent=PARENT, job=pubsub_job(job_name, **fields))
    with pytest.raises(exceptions.NotFound):
        jobs.get_job(name=job_name)


def test_names_targets_and_duplicates(jobs: scheduler_v1.CloudSchedulerClient) -> None:
    for bad in (f"{PARENT}/jobs/has space", f"{PARENT}/jobs/" + "x" * 501, "jobs/x", ""):
        with pytest.raises(exceptions.InvalidArgument, match="invalid job name"):
            jobs.create_job(parent=PARENT, job=pubsub_job(bad))
    elsewhere = f"projects/{PROJECT}/locations/europe-west1/jobs/j"
    with pytest.raises(exceptions.InvalidArgument):  # not under the parent
        jobs.create_job(parent=PARENT, job=pubsub_job(elsewhere))
    with pytest.raises(exceptions.InvalidArgument, match="needs a target"):
        jobs.create_job(parent=PARENT, job=scheduler_v1.Job(name=name(), schedule="* * * * *"))
    with pytest.raises(exceptions.InvalidArgument, match="invalid uri"):
        http = scheduler_v1.HttpTarget(uri="ftp://example/")
        jobs.create_job(
            parent=PARENT, job=scheduler_v1.Job(name=name(), schedule="0 * * * *", http_target=http)
        )
    app_engine = scheduler_v1.AppEngineHttpTarget(relative_uri="/x")
    with pytest.raises(exceptions.MethodNotImplemented):
        jobs.create_job(
            parent=PARENT,
            job=scheduler_v1.Job(
                name=name(), schedule="0 * * * *", app_engine_http_target=app_engine
            ),
        )
    job_name = name()
    jobs.create_job(parent=PARENT, job=pubsub_job(job_name))
    with pytest.raises(exceptions.AlreadyExists):
        jobs.create_job(parent=PARENT, job=pubsub_job(job_name))
    mask = field_mask_pb2.FieldMask(paths=["state"])
    with pytest.raises(exceptions.InvalidArgument, match="update_mask"):  # output only
        jobs.update_job(job=pubsub_job(job_name), update_mask=mask)
    with pytest.raises(exceptions.InvalidArgument, match="invalid schedule"):
        jobs.update_job(
            job=pubsub_job(job_name, schedule="nope"),
            update_mask=field_mask_pb2.FieldMask(paths=["schedule"]),
        )
    assert jobs.get_job(name=job_name).schedule == "0 6 * * *"  # a refused update changes nothing
    with pytest.raises(exceptions.NotFound):
        jobs.update_job(job=pubsub_job(name()))


def test_run_job_posts_an_http_target_with_its_headers_and_token(
    jobs: scheduler_v1.CloudSchedulerClient,
    emulator: cloudscheduler.CloudSchedulerEmulator,
    target: Target,
) -> None:
    job_name = name("http")
    http = scheduler_v1.HttpTarget(
        uri=target.url("/hook"),
        body=b'{"x": 1}',
        headers={"Content-Type": "application/json", "X-Extra": "yes"},
        oidc_token=scheduler_v1.OidcToken(service_account_email="invoker@p.iam"),
    )
    jobs.create_job(
        parent=PARENT, job=scheduler_v1.Job(name=job_name, schedule="0 0 1 1 *", http_target=http)
    )
    before = time.time()
    jobs.run_job(name=job_name)
    (request,) = wait_for(lambda: target.received)
    headers = request["headers"]
    assert request["body"] == b'{"x": 1}' and request["path"] == "/hook"
    assert headers["content-type"] == "application/json" and headers["x-extra"] == "yes"
    assert headers["user-agent"] == "Google-Cloud-Scheduler"
    assert headers["x-cloudscheduler"] == "true"
    assert headers["x-cloudscheduler-jobname"] == job_name.rsplit("/", 1)[1]
    stamp = dt.datetime.fromisoformat(headers["x-cloudscheduler-scheduletime"])
    assert abs(stamp.timestamp() - before) < 5 and stamp.tzinfo == dt.UTC
    claims = headers["authorization"].removeprefix("Bearer ").split(".")[1]
    decoded = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    assert decoded["aud"] == target.url("/hook") and decoded["email"] == "invoker@p.iam"
    fired = wait_for(lambda: [f for f in emulator.fired if f["name"] == job_name])
    assert fired[0]["forced"] and fired[0]["status"] == 200 and fired[0]["ok"]
    job = jobs.get_job(name=job_name)
    assert job.last_attempt_time.timestamp() >= before and job.status.code == 0


def test_a_failed_http_attempt_is_retried_as_the_job_says(
    jobs: scheduler_v1.CloudSchedulerClient,
    emulator: cloudscheduler.CloudSchedulerEmulator,
    target: Target,
) -> None:
    target.script = [503, 500]
    job_name = name("retry")
    retry = scheduler_v1.RetryConfig(
        retry_count=2, min_backoff_duration=duration_pb2.Duration(nanos=200_000_000)
    )
    job = scheduler_v1.Job(
        name=job_name,
        schedule="0 0 1 1 *",
        http_target=scheduler_v1.HttpTarget(uri=target.url("/flaky")),
        retry_config=retry,
    )
    jobs.create_job(parent=PARENT, job=job)
    jobs.run_job(name=job_name)
    arrivals = wait_for(lambda: target.received if len(target.received) == 3 else None)
    gaps = [b["at"] - a["at"] for a, b in itertools.pairwise(arrivals)]
    assert gaps[0] >= 0.18 and gaps[1] >= 0.38  # 0.2 s, then doubled
    statuses = [f["status"] for f in wait_for(lambda: _fired(emulator, job_name, 3))]
    assert statuses == [503, 500, 200]
    assert jobs.get_job(name=job_name).status.code == 0

    # no answer at all: recorded, the job's status says so
    jobs.update_job(
        job=scheduler_v1.Job(
            name=job_name,
            schedule="0 0 1 1 *",
            http_target=scheduler_v1.HttpTarget(uri="http://127.0.0.1:9/closed"),
        )
    )
    jobs.run_job(name=job_name)
    last = wait_for(lambda: _fired(emulator, job_name, 4))[-1]
    assert last["status"] is None and not last["ok"]
    assert wait_for(lambda: jobs.get_job(name=job_name).status.code) == 14  # UNAVAILABLE


def _fired(emulator: cloudscheduler.CloudSchedulerEmulator, job: str, n: int) -> Any:
    found = [f for f in emulator.fired if f["name"] == job]
    return found if len(found) >= n else None


def test_the_module_runs_alone_and_prints_its_host() -> None:
    command = [sys.executable, "-m", "emulators.cloudscheduler", "--port", "0"]
    with subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            line = process.stdout.readline().strip()
            assert line.startswith(f"export {cloudscheduler.ENV_VAR}=127.0.0.1:")
            client = cloudscheduler.client(line.split("=", 1)[1])
            job = client.create_job(parent=PARENT, job=pubsub_job(f"{PARENT}/jobs/alone"))
            assert [j.name for j in client.list_jobs(parent=PARENT)] == [job.name]
            client.transport.close()
        finally:
            process.terminate()
            assert process.wait(timeout=10) == 0


# -- Pub/Sub targets, on the session's emulator stack ---------------------------------


@pytest.fixture
def topic(gcp_stack: Any) -> Iterator[tuple[str, str]]:
    """A fresh topic on the stack's Pub/Sub emulator and a pull subscription to it."""
    name = f"sched-{uuid.uuid4().hex[:10]}"
    gcp_stack.create_topic(name)
    gcp_stack.create_subscription(f"{name}-sub", name)
    yield gcp_stack.topic_path(name), gcp_stack.subscription_path(f"{name}-sub")
    gcp_stack.delete_subscription(f"{name}-sub")


@pytest.fixture(scope="module")
def published(gcp_stack: Any) -> Iterator[scheduler_v1.CloudSchedulerClient]:
    """The stack's own Cloud Scheduler emulator (it publishes to the stack's Pub/Sub)."""
    client = cloudscheduler.client(gcp_stack.scheduler_host)
    yield client
    client.transport.close()


def pull(subscription: str, want: int, timeout: float) -> list[Any]:
    from google.cloud import pubsub_v1

    subscriber = pubsub_v1.SubscriberClient()
    found: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(found) < want and time.monotonic() < deadline:
        answer = subscriber.pull(subscription=subscription, max_messages=10, timeout=5)
        if answer.received_messages:
            ids = [m.ack_id for m in answer.received_messages]
            subscriber.acknowledge(subscription=subscription, ack_ids=ids)
        found += [m.message for m in answer.received_messages]
    subscriber.close()
    return found


def test_run_job_publishes_data_and_attributes(
    gcp_stack: Any, published: scheduler_v1.CloudSchedulerClient, topic: tuple[str, str]
) -> None:
    topic_path, subscription = topic
    parent = f"projects/{gcp_stack.project}/locations/us-central1"
    job_name = f"{parent}/jobs/run-{uuid.uuid4().hex[:10]}"
    job = pubsub_job(job_name, topic=topic_path, data=b'{"path": "p"}', attributes={"a": "1"})
    published.create_job(parent=parent, job=job)
    try:
        published.run_job(name=job_name)
        (message,) = pull(subscription, 1, 20)
        assert message.data == b'{"path": "p"}' and dict(message.attributes) == {"a": "1"}
        (fired,) = wait_for(lambda: _fired(gcp_stack.scheduler, job_name, 1))
        assert fired["ok"] and fired["message_id"] == message.message_id
        assert fired["target"] == topic_path
    finally:
        published.delete_job(name=job_name)


def test_a_job_fires_by_its_cron_line_and_a_paused_one_does_not(
    gcp_stack: Any, published: scheduler_v1.CloudSchedulerClient, topic: tuple[str, str]
) -> None:
    """Slow: waits for the next minute (at most ~61 s)."""
    topic_path, subscription = topic
    parent = f"projects/{gcp_stack.project}/locations/us-central1"
    every = f"{parent}/jobs/every-{uuid.uuid4().hex[:10]}"
    paused = f"{parent}/jobs/paused-{uuid.uuid4().hex[:10]}"
    for job_name in (every, paused):
        data = json.dumps({"job": job_name}).encode()
        job = pubsub_job(job_name, topic=topic_path, data=data, schedule="* * * * *")
        published.create_job(parent=parent, job=job)
    published.pause_job(name=paused)
    try:
        due = published.get_job(name=every).schedule_time
        assert due.second == 0 and due.microsecond == 0 and due > dt.datetime.now(dt.UTC)
        (message,) = pull(subscription, 1, 75)
        assert json.loads(message.data) == {"job": every}
        published_at = message.publish_time.timestamp()
        assert due.timestamp() <= published_at < due.timestamp() + 5
        (fired,) = _fired(gcp_stack.scheduler, every, 1)
        assert dt.datetime.fromisoformat(fired["schedule_time"]) == due
        assert not fired["forced"] and fired["ok"]
        job = published.get_job(name=every)
        assert job.last_attempt_time >= due
        assert job.schedule_time == due + dt.timedelta(minutes=1)
        assert job.state == scheduler_v1.Job.State.ENABLED
        assert _fired(gcp_stack.scheduler, paused, 1) is None  # due at the same minute
        assert pull(subscription, 1, 1) == []
    finally:
        published.delete_job(name=every)
        published.delete_job(name=paused)
