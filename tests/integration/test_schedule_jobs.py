"""Schedule jobs: a catalog path's Cloud Scheduler jobs made to match its schedules
(`adapters/gcp/scheduler_jobs.py`) against the Cloud Scheduler emulator; the embedded
runtime's port, which does nothing and loads no client; and, on the emulator stack, a
playbook registered with a schedule through the deployed gateway function, whose job
runs it through the deployed trigger function, and whose job goes when the CLI registers
a version without a schedule."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.cloud import scheduler_v1

from emulators import cloudscheduler
from noetl_core import schedules, settings
from noetl_core.adapters.gcp.scheduler_jobs import CloudSchedulerJobs
from noetl_core.adapters.schedule_jobs import NoScheduleJobs, job_id
from noetl_core.errors import ConfigError
from noetl_core.playbook import load_text
from noetl_core.runtime import payloads
from noetl_core.runtime.block import Runtime

from ..conftest import EXAMPLES, ROOT

pytestmark = pytest.mark.integration

PROJECT, LOCATION = "noetl-local", "us-central1"
PARENT = f"projects/{PROJECT}/locations/{LOCATION}"
REPORT = EXAMPLES / "scheduled_report.yaml"


@pytest.fixture(scope="module")
def emulator() -> Iterator[cloudscheduler.CloudSchedulerEmulator]:
    with cloudscheduler.CloudSchedulerEmulator() as running:
        yield running


@pytest.fixture
def client(
    emulator: cloudscheduler.CloudSchedulerEmulator,
) -> Iterator[scheduler_v1.CloudSchedulerClient]:
    emulator.reset()
    made = cloudscheduler.client(emulator.host)
    yield made
    made.transport.close()


def port(client: Any, topic: str = "noetl-triggers") -> CloudSchedulerJobs:
    return CloudSchedulerJobs(PROJECT, LOCATION, topic, client=client)


def listed(client: Any) -> dict[str, Any]:
    return {job.name: job for job in client.list_jobs(parent=PARENT)}


def test_a_path_gets_one_job_per_schedule_publishing_path_and_cron(client: Any) -> None:
    daily = schedules.Schedule("reports/daily", "0 6 * * *", "Europe/Paris")
    hourly = schedules.Schedule("reports/daily", "0 * * * *")
    done = port(client).sync("reports/daily", [daily, hourly])
    jobs = listed(client)
    assert sorted(done.created) == sorted(jobs) and done.changed
    for schedule in (daily, hourly):
        name = f"{PARENT}/jobs/{job_id(schedule.path, schedule.cron, schedule.timezone)}"
        job = jobs[name]
        assert (job.schedule, job.time_zone) == (schedule.cron, schedule.timezone)
        assert job.pubsub_target.topic_name == f"projects/{PROJECT}/topics/noetl-triggers"
        assert json.loads(job.pubsub_target.data) == {
            "path": "reports/daily",
            "cron": schedule.cron,
        }
        assert job.state == scheduler_v1.Job.State.ENABLED


def test_job_ids_are_deterministic_and_valid() -> None:
    made = job_id("reports/daily v2.é", "0 6 * * *", "Europe/Paris")
    assert made == job_id("reports/daily v2.é", "0 6 * * *", "Europe/Paris")
    assert made.startswith("noetl-reports-daily-v2-")
    assert all(c.isascii() and (c.isalnum() or c in "-_") for c in made)
    others = {job_id("reports/daily", c, z) for c in ("0 6 * * *", "0 7 * * *") for z in "AB"}
    assert len(others) == 4
    assert len(job_id("x" * 2000, "* * * * *", "UTC")) <= 500


def test_registering_the_same_schedules_again_changes_nothing(client: Any) -> None:
    schedule = schedules.Schedule("p/same", "*/5 * * * *", "UTC")
    (name,) = port(client).sync("p/same", [schedule]).created
    stamp = client.get_job(name=name).user_update_time
    again = port(client).sync("p/same", [schedule])
    assert (again.unchanged, again.changed) == ([name], False)
    assert client.get_job(name=name).user_update_time == stamp


def test_a_changed_cron_line_replaces_the_job(client: Any) -> None:
    (old,) = port(client).sync("p/c", [schedules.Schedule("p/c", "0 6 * * *")]).created
    done = port(client).sync("p/c", [schedules.Schedule("p/c", "30 6 * * *")])
    (new,) = done.created
    assert done.deleted == [old] and new != old
    assert list(listed(client)) == [new] and client.get_job(name=new).schedule == "30 6 * * *"


def test_a_job_whose_fields_differ_is_updated(client: Any) -> None:
    schedule = schedules.Schedule("p/u", "0 6 * * *", "Asia/Tokyo")
    (name,) = port(client).sync("p/u", [schedule]).created
    done = port(client, topic="noetl-triggers-2").sync("p/u", [schedule])  # a new topic
    assert done.updated == [name] and not done.created and not done.deleted
    assert client.get_job(name=name).pubsub_target.topic_name.endswith("/noetl-triggers-2")
    # an operator's edit of the schedule is undone; a pause is theirs to keep
    edited = scheduler_v1.Job(name=name, description="mine", schedule="0 9 * * *")
    mask = {"paths": ["description", "schedule"]}
    client.update_job(job=edited, update_mask=mask)
    client.pause_job(name=name)
    assert port(client, topic="noetl-triggers-2").sync("p/u", [schedule]).updated == [name]
    job = client.get_job(name=name)
    assert (job.schedule, job.time_zone) == ("0 6 * * *", "Asia/Tokyo")
    assert job.description == "NoETL schedule of p/u"
    assert job.state == scheduler_v1.Job.State.PAUSED


def test_jobs_of_a_path_without_schedules_are_deleted_and_others_kept(client: Any) -> None:
    sync = port(client).sync
    mine = sync(
        "p/a", [schedules.Schedule("p/a", "0 6 * * *"), schedules.Schedule("p/a", "0 7 * * *")]
    )
    (theirs,) = sync("p/a-b", [schedules.Schedule("p/a-b", "0 6 * * *")]).created
    (prefix,) = sync("p/a/b", [schedules.Schedule("p/a/b", "0 6 * * *")]).created
    foreign = f"{PARENT}/jobs/hand-made"
    target = scheduler_v1.PubsubTarget(
        topic_name=f"projects/{PROJECT}/topics/noetl-triggers",
        data=json.dumps({"path": "p/a", "cron": "0 8 * * *"}).encode(),
    )
    client.create_job(
        parent=PARENT,
        job=scheduler_v1.Job(name=foreign, schedule="0 8 * * *", pubsub_target=target),
    )
    done = sync("p/a", [])
    assert sorted(done.deleted) == sorted(mine.created) and not done.created
    assert sorted(listed(client)) == sorted([theirs, prefix, foreign])


def test_the_embedded_runtime_syncs_nothing_and_loads_no_client(tmp_path: Path) -> None:
    """In a fresh interpreter: the embedded runtime's port is `NoScheduleJobs`, and a
    scheduled playbook registered and published there loads no Cloud Scheduler client."""
    code = f"""
import sys
from noetl_core import embedded, schedules, settings
from noetl_core.playbook import load_file
conf = settings.load({{"NOETL_HOME": {str(tmp_path)!r}}})
with embedded.runtime(conf) as rt:
    loaded = load_file({str(REPORT)!r})
    rt.catalog.register_loaded(loaded)
    done = schedules.publish(rt, loaded)
    print(type(rt.schedule_jobs).__name__, done.changed, done.created)
print(any(m.startswith(("google.cloud.scheduler", "grpc")) for m in sys.modules))
"""
    answer = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert answer.stdout.split("\n")[:2] == ["NoScheduleJobs False []", "False"]
    assert NoScheduleJobs().sync("p", [schedules.Schedule("p", "* * * * *")]).changed is False


def test_a_client_of_emulators_without_the_scheduler_emulator_is_refused() -> None:
    conf = settings.load({"PUBSUB_EMULATOR_HOST": "127.0.0.1:1", "NOETL_HOME": "/tmp/x"})
    from noetl_core import cloud

    jobs = cloud.schedule_jobs(conf)
    with pytest.raises(ConfigError, match="CLOUD_SCHEDULER_EMULATOR_HOST is not set"):
        jobs.sync("p", [])


# -- on the emulator stack -------------------------------------------------------------


def test_a_registered_schedule_runs_through_cloud_scheduler_and_the_trigger_function(
    cloud_rt: Runtime, gcp_stack: Any, gcp_env: dict[str, str], tmp_path: Path
) -> None:
    import httpx

    from noetl_core.gateway import tokens

    from .test_gateway_stack import gateway_key

    path = f"tests/sched-{uuid.uuid4().hex[:8]}"
    source = REPORT.read_text().replace("path: examples/scheduled_report", f"path: {path}")
    source = source.replace('cron: "* * * * *"', 'cron: "0 0 1 1 *"')  # fires only when run
    admin = tokens.create(gateway_key(gcp_stack), "ada", ["admin"], ["*"], time.time(), 600)
    jobs = cloudscheduler.client(gcp_stack.scheduler_host)
    parent = f"projects/{gcp_stack.project}/locations/{gcp_env['NOETL_TASKS_LOCATION']}"
    try:
        # registered through the deployed gateway function: its job is made
        made = httpx.post(
            f"{gcp_stack.deployed.functions['gateway'].url}v1/catalog",
            json={"source": source},
            headers={"Authorization": f"Bearer {admin}"},
            timeout=60,
        )
        assert made.status_code == 201, made.text
        (job,) = jobs.list_jobs(parent=parent)  # the stack's jobs are reset with Firestore
        assert job.name == f"{parent}/jobs/{job_id(path, '0 0 1 1 *', 'UTC')}"
        assert job.pubsub_target.topic_name == gcp_stack.topic_path("noetl-triggers")

        # Cloud Scheduler publishes; the deployed trigger function starts the execution
        jobs.run_job(name=job.name)
        deadline = time.monotonic() + 60
        while not cloud_rt.log.executions(10) and time.monotonic() < deadline:
            time.sleep(0.1)
        (start,) = cloud_rt.log.executions(10)
        terminal = cloud_rt.wait(start.execution_id, 60)
        assert terminal is not None and terminal.body["status"] == "completed", terminal
        result = payloads.load(cloud_rt.payloads, terminal.body["result"])
        assert result == {"report": "minutely", "scheduled": True}
        year = time.gmtime().tm_year  # the run's publish time falls in this year's slot
        assert start.body["workload"]["scheduled_time"] == f"{year}-01-01T00:00:00+00:00"

        # a version without a schedule, registered by the CLI: the job is deleted
        unscheduled = tmp_path / "unscheduled.yaml"
        text = source.split("  schedule:\n")[0] + source.split("workload: {report: minutely}\n")[1]
        unscheduled.write_text(text)
        assert schedules.schedules_of(load_text(text)) == []
        cli = subprocess.run(
            [
                sys.executable,
                "-m",
                "noetl_core.cli",
                "register",
                str(unscheduled),
                "--target",
                "emulators",
            ],
            cwd=ROOT,
            env={**os.environ, **gcp_env, "NOETL_HOME": str(tmp_path / "cli-home")},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert cli.returncode == 0, cli.stderr
        assert cli.stdout.strip() == f"registered: {path} v2"
        assert [j.name for j in jobs.list_jobs(parent=parent) if j.name == job.name] == []
    finally:
        gcp_stack.scheduler.reset()
        jobs.transport.close()


def test_register_on_emulators_without_the_scheduler_emulator_says_so(
    gcp_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**os.environ, **gcp_env, "NOETL_HOME": str(tmp_path / "cli-home")}
    env.pop("CLOUD_SCHEDULER_EMULATOR_HOST")
    cli = subprocess.run(
        [sys.executable, "-m", "noetl_core.cli", "register", str(REPORT), "--target", "emulators"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 1
    assert cli.stdout == "registered: examples/scheduled_report v1\n"
    assert cli.stderr.strip().splitlines() == [
        "noetl: CLOUD_SCHEDULER_EMULATOR_HOST is not set while the other Google services are "
        "emulators: schedule jobs would go to Google Cloud"
    ]
