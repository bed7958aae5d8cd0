"""The embedded default: SQLite log, local payload files, in-process workers and timer."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from .adapters.fsspec_payloads import FsspecPayloadStore
from .adapters.inprocess import InProcessBus, InProcessTimer
from .adapters.locks import ExecutionLocks
from .adapters.sqlite_log import SqliteEventLog
from .catalog import Catalog
from .keychain import sealing
from .runtime.block import Runtime
from .runtime.ports import SystemClock
from .settings import Settings

CLOSE_TIMEOUT = 0.5  # seconds running blocks get to finish when the runtime closes


@contextmanager
def runtime(settings: Settings) -> Iterator[Runtime]:
    settings.home.mkdir(parents=True, exist_ok=True)
    log = SqliteEventLog(settings.log_path, sync=settings.sqlite_sync)
    bus = InProcessBus(settings.workers)
    clock = SystemClock()
    timer = InProcessTimer(bus, clock.now)
    owners = ExecutionLocks(settings.home / "running")
    rt = Runtime(
        log=log,
        bus=bus,
        payloads=FsspecPayloadStore(settings.payload_url),
        timer=timer,
        clock=clock,
        settings=settings,
        catalog=Catalog(settings.catalog_path, sealing.for_settings(settings)),
        owners=owners,
    )
    bus.bind(rt.handle)
    try:
        yield rt
    finally:
        timer.close()
        bus.close(0 if rt.abandoned else CLOSE_TIMEOUT)  # abandoned code never returns
        log.close()
        owners.close()
