"""Scheduled triggers: parsing, next fire times, one execution per scheduled time on the
embedded runtime and through the `trigger` function on the emulator stack; and callbacks
through the `callback` function on the stack."""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from noetl_core import schedules
from noetl_core.devtools.http_api import DemoApi
from noetl_core.playbook import load_file, load_text
from noetl_core.runtime import payloads
from noetl_core.runtime.block import Runtime

from ..conftest import EXAMPLES, ROOT

pytestmark = pytest.mark.integration

REPORT = EXAMPLES / "scheduled_report.yaml"
NOON = dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.UTC)


def test_schedules_are_declared_with_the_playbook_and_validated() -> None:
    (schedule,) = schedules.schedules_of(load_file(REPORT))
    assert (schedule.path, schedule.cron, schedule.timezone) == (
        "examples/scheduled_report",
        "* * * * *",
        "UTC",
    )
    assert schedule.next_after(NOON) == NOON + dt.timedelta(minutes=1)
    paris = schedules.Schedule("p", "0 6 * * *", "Europe/Paris")
    assert paris.next_after(NOON) == dt.datetime(2026, 11, 30, 5, 0, tzinfo=dt.UTC)
    bad = REPORT.read_text().replace('cron: "* * * * *"', 'cron: "61 * * * *"')
    with pytest.raises(schedules.ScheduleError, match="bad cron line '61 \\* \\* \\* \\*'"):
        schedules.schedules_of(load_text(bad))
    zone = REPORT.read_text().replace("timezone: UTC", "timezone: Mars/Olympus")
    with pytest.raises(schedules.ScheduleError, match="unknown timezone 'Mars/Olympus'"):
        schedules.schedules_of(load_text(zone))


def test_a_scheduled_time_fired_twice_starts_one_execution(rt: Runtime) -> None:
    loaded = load_file(REPORT)
    (schedule,) = schedules.schedules_of(loaded)
    first, new = schedules.fire(rt, loaded, schedule, NOON)
    again, twice = schedules.fire(rt, loaded, schedule, NOON)
    assert first == again and new and not twice
    terminal = rt.wait(first, 10)
    assert terminal is not None
    assert payloads.load(rt.payloads, terminal.body["result"]) == {
        "report": "minutely",
        "scheduled": True,
    }
    assert len(rt.log.find(first, "start")) == 1
    other, _ = schedules.fire(rt, loaded, schedule, NOON + dt.timedelta(minutes=1))
    assert other != first


def test_two_schedulers_fire_each_time_once(rt: Runtime) -> None:
    rt.catalog.register(REPORT)
    one, two = schedules.Scheduler(rt), schedules.Scheduler(rt)
    for scheduler in (one, two):
        scheduler.run_once(NOON)  # learns the next time: 12:01
        scheduler.run_once(NOON + dt.timedelta(minutes=1, seconds=1))
    assert one.fired == two.fired and len(one.fired) == 1
    assert rt.wait(one.fired[0], 10) is not None
    assert len(rt.log.executions(50)) == 1


@pytest.fixture(scope="module")
def api() -> Iterator[DemoApi]:
    with DemoApi() as running:
        yield running


def test_trigger_function_delivered_twice_starts_one_execution(
    cloud_rt: Runtime, gcp_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    import functions_framework

    cloud_rt.catalog.register(REPORT)
    for name, value in {**gcp_env, "NOETL_HOME": str(tmp_path)}.items():
        monkeypatch.setenv(name, value)
    app = functions_framework.create_app(
        "trigger", str(ROOT / "functions" / "main.py"), "cloudevent"
    )
    client = app.test_client()
    data = json.dumps({"path": "examples/scheduled_report", "cron": "* * * * *"}).encode()
    event = {
        "specversion": "1.0",
        "type": "google.cloud.pubsub.topic.v1.messagePublished",
        "source": "//pubsub.googleapis.com/projects/noetl-local/topics/noetl-triggers",
        "id": "m1",
        "data": {
            "message": {
                "data": base64.b64encode(data).decode(),
                "messageId": "m1",
                "publishTime": "2026-11-29T12:00:00Z",
            }
        },
    }
    headers = {"Content-Type": "application/cloudevents+json"}
    for _ in range(2):
        assert client.post("/", data=json.dumps(event), headers=headers).status_code == 200
    (start,) = cloud_rt.log.executions(10)
    terminal = cloud_rt.wait(start.execution_id, 60)
    assert terminal is not None and terminal.body["status"] == "completed"
    assert payloads.load(cloud_rt.payloads, terminal.body["result"]) == {
        "report": "minutely",
        "scheduled": True,
    }


def test_webhook_callback_on_the_emulator_stack(
    cloud_rt: Runtime, gcp_stack: Any, api: DemoApi
) -> None:
    loaded = load_file(EXAMPLES / "data" / "webhook_callback.yaml")
    execution_id = cloud_rt.start(loaded, {"api_url": api.url})
    deadline = time.monotonic() + 30
    while not cloud_rt.log.find(execution_id, "pending") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert cloud_rt.log.find(execution_id, "pending"), "the step waits"
    terminal = cloud_rt.wait(execution_id, 60)
    assert terminal is not None and terminal.body["status"] == "completed", terminal
    assert (
        payloads.load(cloud_rt.payloads, terminal.body["result"])["said"] == "monthly report ready"
    )
    assert api.callbacks[-1]["status"] == 202
    start = next(
        e for e in cloud_rt.log.entries(execution_id) if e.kind == "done" and e.step == "start"
    )
    assert "callback.received" in start.events


def _parked(gcp_stack: Any, marker: bytes, timeout: float = 30.0) -> list[Any]:
    """Dead-letter messages whose data holds `marker` (acknowledged once read)."""
    from google.cloud import pubsub_v1

    subscriber = pubsub_v1.SubscriberClient()
    path = gcp_stack.subscription_path("noetl-dead-letter-sub")
    found: list[Any] = []
    deadline = time.monotonic() + timeout
    while not found and time.monotonic() < deadline:
        pulled = subscriber.pull(subscription=path, max_messages=50, timeout=10)
        if pulled.received_messages:
            subscriber.acknowledge(
                subscription=path, ack_ids=[m.ack_id for m in pulled.received_messages]
            )
        found += [m.message for m in pulled.received_messages if marker in m.message.data]
    return found


def test_a_scheduler_retry_published_later_starts_nothing_new(
    cloud_rt: Runtime, gcp_stack: Any
) -> None:
    cloud_rt.catalog.register(REPORT)
    body = {"path": "examples/scheduled_report", "cron": "0 0 1 1 *"}  # a slot a year
    gcp_stack.publish("noetl-triggers", body)
    deadline = time.monotonic() + 30
    while not cloud_rt.log.executions(10) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.1)  # the retry's publish time is later
    gcp_stack.publish("noetl-triggers", body)
    (start,) = cloud_rt.log.executions(10)
    terminal = cloud_rt.wait(start.execution_id, 60)
    assert terminal is not None and terminal.body["status"] == "completed"
    year = dt.datetime.now(dt.UTC).year
    assert start.body["workload"]["scheduled_time"] == f"{year}-01-01T00:00:00+00:00"
    time.sleep(2)  # the second message has been pushed and answered by now
    assert len(cloud_rt.log.executions(10)) == 1


def test_slots_follow_the_cron_line_and_its_zone() -> None:
    every_minute = schedules.Schedule("p", "* * * * *")
    assert every_minute.slot_of(NOON + dt.timedelta(seconds=40)) == NOON
    assert every_minute.slot_of(NOON) == NOON
    paris = schedules.Schedule("p", "0 6 * * *", "Europe/Paris")
    assert paris.slot_of(NOON) == dt.datetime(2026, 11, 29, 5, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("topic", "data", "cause"),
    [
        ("noetl-triggers", b"not json at all marker-t1", "invalid_workload"),
        ("noetl-triggers", b'{"path": "nowhere/marker-t2"}', "catalog_error"),
        ("noetl-commands", b"garbage note marker-w1", "malformed note"),
    ],
)
def test_a_message_nobody_can_act_on_is_parked_once_not_retried(
    gcp_env: dict[str, str], gcp_stack: Any, topic: str, data: bytes, cause: str
) -> None:
    marker = data.split()[-1].strip(b'"}')
    gcp_stack.publish(topic, data)
    (parked,) = _parked(gcp_stack, marker)
    assert cause in parked.attributes["cause"], parked.attributes
    assert parked.attributes["function"] == ("worker" if topic == "noetl-commands" else "trigger")
    time.sleep(3)  # a delivery that was not acknowledged would come again by now
    assert _parked(gcp_stack, marker, timeout=2) == []
