"""Scheduled triggers, declared with the playbook:

    metadata:
      path: reports/daily
      schedule: {cron: "0 6 * * *", timezone: Europe/Paris, workload: {kind: daily}}

(`schedule` may also be a list of such mappings.) A trigger for one scheduled time starts
one execution whose id is derived from the playbook path, the cron line and that time:
two deliveries of the same trigger (Cloud Scheduler retries, two `noetl serve`
processes) start it once. The execution's workload gets `scheduled_time` (ISO 8601).
Cron lines are parsed by croniter, not by hand.

Who fires them: on the embedded default, `noetl serve`'s `Scheduler` below, from the
catalog; on Google Cloud, Cloud Scheduler jobs that `publish` makes match the latest
registered version of each path (`adapters/schedule_jobs.py`), and the trigger function.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from . import ids
from .adapters.schedule_jobs import Synced
from .catalog import CatalogBase
from .errors import NoetlError
from .playbook.loader import LoadedPlaybook
from .runtime.block import Runtime


class ScheduleError(NoetlError):
    code = "invalid_schedule"


@dataclass(frozen=True)
class Schedule:
    path: str
    cron: str
    timezone: str = "UTC"
    workload: dict[str, Any] = field(default_factory=dict)

    def zone(self) -> ZoneInfo:
        try:
            return ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ScheduleError(f"{self.path}: unknown timezone {self.timezone!r}") from None

    def slot_of(self, moment: dt.datetime) -> dt.datetime:
        """The latest time of this schedule at or before `moment`: a trigger published
        late, or published again by a retry, still names the time it was for."""
        from croniter import croniter

        local = moment.astimezone(self.zone())
        try:
            before: dt.datetime = croniter(self.cron, local).get_prev(dt.datetime)
            after: dt.datetime = croniter(self.cron, before).get_next(dt.datetime)
        except (ValueError, KeyError) as exc:
            raise ScheduleError(f"{self.path}: bad cron line {self.cron!r}: {exc}") from None
        return (after if after <= local else before).astimezone(dt.UTC)

    def next_after(self, moment: dt.datetime) -> dt.datetime:
        from croniter import croniter

        local = moment.astimezone(self.zone())
        try:
            found: dt.datetime = croniter(self.cron, local).get_next(dt.datetime)
        except (ValueError, KeyError) as exc:
            raise ScheduleError(f"{self.path}: bad cron line {self.cron!r}: {exc}") from None
        return found.astimezone(dt.UTC)


def schedules_of(loaded: LoadedPlaybook) -> list[Schedule]:
    declared = (loaded.playbook.metadata.model_extra or {}).get("schedule")
    if declared is None:
        return []
    items = declared if isinstance(declared, list) else [declared]
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("cron"), str):
            raise ScheduleError(f"{loaded.file}: metadata.schedule[{i}] needs `cron`")
        made = Schedule(
            loaded.path,
            item["cron"],
            str(item.get("timezone", "UTC")),
            dict(item.get("workload") or {}),
        )
        made.next_after(dt.datetime.now(dt.UTC))  # validates the cron line and the zone
        out.append(made)
    return out


def execution_id(schedule: Schedule, scheduled: dt.datetime) -> str:
    moment = scheduled.astimezone(dt.UTC).isoformat()
    return ids.derived_execution_id("schedule", schedule.path, schedule.cron, moment)


def fire(
    rt: Runtime,
    loaded: LoadedPlaybook,
    schedule: Schedule,
    scheduled: dt.datetime,
    workload: dict[str, Any] | None = None,
) -> tuple[str, bool]:
    """Start the execution for this scheduled time; (its id, whether this call started it)."""
    moment = scheduled.astimezone(dt.UTC).isoformat()
    merged = {**schedule.workload, **(workload or {}), "scheduled_time": moment}
    return rt.start_once(loaded, merged, execution_id(schedule, scheduled))


def publish(rt: Runtime, loaded: LoadedPlaybook) -> Synced:
    """After `loaded` was registered: make the runtime's schedule jobs of its path match
    its schedules (none: its jobs are deleted). Embedded, nothing happens. Returns what
    the sync did (`adapters.schedule_jobs.Synced`)."""
    return rt.schedule_jobs.sync(loaded.path, schedules_of(loaded))


def due(catalog: CatalogBase) -> list[tuple[LoadedPlaybook, Schedule]]:
    """Every schedule of the latest version of every catalog path."""
    found: list[tuple[LoadedPlaybook, Schedule]] = []
    for path, _versions in catalog.entries():
        loaded = catalog.resolve(path)
        found.extend((loaded, s) for s in schedules_of(loaded))
    return found


class Scheduler:
    """`noetl serve`'s loop: fire each schedule when its next time comes."""

    def __init__(self, rt: Runtime, tick: float = 1.0, log: Callable[[str], None] | None = None):
        self.rt = rt
        self.tick = tick
        self.log = log  # one line per fired schedule, and per schedule that cannot fire
        self._stop = threading.Event()
        self._next: dict[tuple[str, str], dt.datetime] = {}
        self.fired: list[str] = []
        self._thread = threading.Thread(target=self._loop, name="noetl-scheduler", daemon=True)

    def start(self) -> Scheduler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def run_once(self, now: dt.datetime) -> None:
        for loaded, schedule in due(self.rt.catalog):
            key = (schedule.path, schedule.cron)
            upcoming = self._next.setdefault(key, schedule.next_after(now))
            if upcoming <= now:
                started, new = fire(self.rt, loaded, schedule, upcoming)
                self.fired.append(started)
                self._next[key] = schedule.next_after(upcoming)
                if self.log is not None:
                    at = upcoming.astimezone(schedule.zone()).isoformat(timespec="seconds")
                    said = "started" if new else "was already started (by another server)"
                    self.log(
                        f"schedule {schedule.path} {schedule.cron!r} fired for {at}: "
                        f"execution {started} {said}"
                    )

    def _loop(self) -> None:
        said = ""
        while not self._stop.wait(self.tick):
            try:
                self.run_once(dt.datetime.now(dt.UTC))
            except NoetlError as exc:
                if self.log is not None and exc.message != said:  # once, not every tick
                    self.log(f"schedules: {exc.message}")
                said = exc.message
                time.sleep(self.tick)
            else:
                said = ""
