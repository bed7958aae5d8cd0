"""Fault injection for the fault tests of the cloud runtime (off unless configured).

`NOETL_FAULT=<point>:<step>` makes the worker process die (`os._exit`) the first time a
block of that step reaches the point: `claimed` (claim recorded, tool not run),
`executed` (tool ran, nothing recorded), `recorded` (record committed, successors not
published). `NOETL_FAULT_MARKER` is a file that makes it happen once per test: the fault
fires only while the file does not exist, and creates it.
"""

from __future__ import annotations

import os

from ..settings import Settings


def point(settings: Settings, name: str, step: str) -> None:
    if settings.fault is None or settings.fault != f"{name}:{step}":
        return
    marker = settings.fault_marker
    if marker is not None:
        try:
            fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        except FileExistsError:
            return
        os.close(fd)
    os._exit(17)
