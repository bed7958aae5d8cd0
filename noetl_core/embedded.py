"""The embedded default: SQLite log, local payload files, in-process workers and timer."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from .adapters.fsspec_payloads import FsspecPayloadStore
from .adapters.inprocess import InProcessBus, InProcessTimer
from .adapters.sqlite_log import SqliteEventLog
from .catalog import Catalog
from .keychain import sealing
from .runtime.block import Runtime
from .runtime.ports import SystemClock
from .settings import Settings


@contextmanager
def runtime(settings: Settings) -> Iterator[Runtime]:
    settings.home.mkdir(parents=True, exist_ok=True)
    log = SqliteEventLog(settings.log_path, sync=settings.sqlite_sync)
    bus = InProcessBus(settings.workers)
    clock = SystemClock()
    timer = InProcessTimer(bus, clock.now)
    rt = Runtime(
        log=log,
        bus=bus,
        payloads=FsspecPayloadStore(settings.payload_url),
        timer=timer,
        clock=clock,
        settings=settings,
        catalog=Catalog(settings.catalog_path, sealing.for_settings(settings)),
    )
    bus.bind(rt.handle)
    try:
        yield rt
    finally:
        timer.close()
        bus.close()
        log.close()
