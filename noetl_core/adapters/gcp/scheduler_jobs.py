"""Schedule jobs on Cloud Scheduler: one job per (path, cron line, time zone) of a catalog
path, under `projects/{project}/locations/{location}`, publishing
`{"path": ..., "cron": ...}` to `projects/{project}/topics/{triggers topic}`.

`sync` lists the location's jobs once, keeps NoETL's jobs (`noetl-` ids) whose message
names the path, creates the missing ones, updates one whose description, schedule, zone
or target differs (an operator's edit, a new triggers topic), and deletes the ones no
longer declared; jobs of other paths and jobs NoETL did not make are left alone. A job an
operator paused stays paused. Two registrations racing are harmless: a create that
finds the job made meanwhile, or a delete that finds it gone, is not an error.

The client is built on the first sync and imported then (the gateway and a worker that
never registers a playbook do not load it). With `CLOUD_SCHEDULER_EMULATOR_HOST` it talks
to `emulators/cloudscheduler.py` over an insecure channel, as the Cloud Tasks timer does;
a client of the emulators without it is refused rather than sent to Google.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ...errors import ConfigError, NoetlError
from ..schedule_jobs import JOB_PREFIX, Synced, job_id

if TYPE_CHECKING:
    from ...schedules import Schedule

_COMPARED = ("description", "schedule", "time_zone", "pubsub_target")


class ScheduleJobsError(NoetlError):
    code = "schedule_jobs_failed"


class CloudSchedulerJobs:
    def __init__(
        self,
        project: str,
        location: str,
        topic: str,
        client: Any = None,
        emulator_host: str | None = None,
        emulated: bool = False,
    ):
        self.parent = f"projects/{project}/locations/{location}"
        self.topic = f"projects/{project}/topics/{topic}"
        self._client = client
        self._emulator_host = emulator_host
        self._emulated = emulated  # other Google services are emulators

    @property
    def client(self) -> Any:
        if self._client is None:
            if self._emulator_host is None and self._emulated:
                raise ConfigError(
                    "CLOUD_SCHEDULER_EMULATOR_HOST is not set while the other Google "
                    "services are emulators: schedule jobs would go to Google Cloud"
                )
            self._client = _client(self._emulator_host)
        return self._client

    def job(self, schedule: Schedule) -> Any:
        """The Cloud Scheduler job of one schedule."""
        from google.cloud import scheduler_v1

        data = json.dumps({"path": schedule.path, "cron": schedule.cron}, sort_keys=True)
        name = f"{self.parent}/jobs/{job_id(schedule.path, schedule.cron, schedule.timezone)}"
        return scheduler_v1.Job(
            name=name,
            description=f"NoETL schedule of {schedule.path}"[:500],
            schedule=schedule.cron,
            time_zone=schedule.timezone,
            pubsub_target=scheduler_v1.PubsubTarget(topic_name=self.topic, data=data.encode()),
        )

    def jobs_of(self, path: str) -> dict[str, Any]:
        """NoETL's jobs in the location whose message names `path`, by name."""
        found = {}
        for job in self.client.list_jobs(parent=self.parent):
            if job.name.rsplit("/", 1)[-1].startswith(JOB_PREFIX) and _path_of(job) == path:
                found[job.name] = job
        return found

    def sync(self, path: str, schedules: Sequence[Schedule]) -> Synced:
        from google.api_core import exceptions

        wanted = {job.name: job for job in map(self.job, schedules)}
        done = Synced()
        try:
            existing = self.jobs_of(path)
            for name, job in wanted.items():
                current = existing.get(name)
                if current is None:
                    try:
                        self.client.create_job(parent=self.parent, job=job)
                        done.created.append(name)
                        continue
                    except exceptions.AlreadyExists:  # made meanwhile by another sync
                        current = self.client.get_job(name=name)
                differ = [f for f in _COMPARED if _field(current, f) != _field(job, f)]
                if differ:
                    from google.protobuf import field_mask_pb2

                    mask = field_mask_pb2.FieldMask(paths=differ)
                    self.client.update_job(job=job, update_mask=mask)
                    done.updated.append(name)
                else:
                    done.unchanged.append(name)
            for name in sorted(set(existing) - set(wanted)):
                with contextlib.suppress(exceptions.NotFound):  # deleted meanwhile
                    self.client.delete_job(name=name)
                done.deleted.append(name)
        except exceptions.GoogleAPICallError as exc:
            passing = (exceptions.ServiceUnavailable, exceptions.DeadlineExceeded)
            raise ScheduleJobsError(
                f"{path}: Cloud Scheduler refused syncing its jobs: {exc}",
                retryable=isinstance(exc, passing),
            ) from exc
        return done


def _field(job: Any, name: str) -> Any:
    from google.cloud import scheduler_v1

    pb = scheduler_v1.Job.pb(job)
    if name == "pubsub_target":
        target = pb.pubsub_target
        return (target.topic_name, bytes(target.data), dict(target.attributes))
    return getattr(pb, name)


def _path_of(job: Any) -> str | None:
    """The catalog path a job's message names (None: not a NoETL trigger)."""
    try:
        body = json.loads(bytes(job.pubsub_target.data) or b"null")
    except ValueError:
        return None
    path = body.get("path") if isinstance(body, dict) else None
    return path if isinstance(path, str) else None


def _client(emulator_host: str | None) -> Any:
    from google.cloud import scheduler_v1

    if emulator_host is None:
        return scheduler_v1.CloudSchedulerClient()
    import grpc
    from google.cloud.scheduler_v1.services.cloud_scheduler import transports

    channel = grpc.insecure_channel(emulator_host)
    return scheduler_v1.CloudSchedulerClient(
        transport=transports.CloudSchedulerGrpcTransport(channel=channel)
    )
