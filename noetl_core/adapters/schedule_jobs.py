"""The schedule-jobs port: something outside NoETL that fires a catalog path's schedules.

A playbook's `metadata.schedule` (`schedules.py`) is fired by whoever holds the clock.
On the embedded default that is `noetl serve`'s `Scheduler` thread, which reads the
catalog itself: its `ScheduleJobs` is `NoScheduleJobs`, which does nothing and builds no
client. On Google Cloud it is Cloud Scheduler: one job per (path, cron line, time zone)
publishes `{"path": ..., "cron": ...}` to the triggers topic, and the trigger function
(`cloud.on_trigger`) starts the execution of that slot. `sync(path, schedules)` makes
the jobs of one catalog path exactly match the schedules of its newly registered
version; `schedules.publish(rt, loaded)` calls it after a registration.

A job's id is derived from the path, the cron line and the time zone (`job_id`), so
registering the same schedules again changes nothing, and a changed cron line or zone
is a new job (the old one is deleted). A job is NoETL's when its id starts with
`noetl-`; it belongs to the path its message names. The Cloud implementation is
`adapters.gcp.scheduler_jobs.CloudSchedulerJobs`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from .. import ids

if TYPE_CHECKING:
    from ..schedules import Schedule

JOB_PREFIX = "noetl-"
_NOT_ID = re.compile(r"[^A-Za-z0-9_-]+")


@dataclass(frozen=True)
class Synced:
    """What one `sync` did, each a list of job names."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.deleted)


class ScheduleJobs(Protocol):
    def sync(self, path: str, schedules: Sequence[Schedule]) -> Synced:
        """Make the jobs of catalog path `path` exactly `schedules` (all of that path)."""
        ...


class NoScheduleJobs:
    """The embedded runtime's: `noetl serve` fires schedules from the catalog itself."""

    def sync(self, path: str, schedules: Sequence[Schedule]) -> Synced:
        return Synced()


def job_id(path: str, cron: str, timezone: str) -> str:
    """`noetl-<the path, readable>-<digest of path, cron, zone>`: letters, digits,
    hyphens and underscores only, at most 223 characters (Cloud Scheduler allows 500)."""
    readable = _NOT_ID.sub("-", path).strip("-")[:200] or "path"
    return f"{JOB_PREFIX}{readable}-{ids.digest('schedule-job', path, cron, timezone)[:16]}"
