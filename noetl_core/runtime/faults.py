"""Fault injection for the fault tests of both runtimes (off unless configured).

With `NOETL_FAULT_FILE` set, a test arms a fault by writing `<point>:<step>` into that
file: the first block of that step to reach the point removes the file and makes its
worker process die on the spot (`os._exit`). Points: `claimed` (claim recorded, tool not
run), `executed` (tool ran, nothing recorded), `recorded` (record committed, successors
not published), `published` (successors published). Without the file nothing happens
(one stat per point).
"""

from __future__ import annotations

import os

from ..settings import Settings


def point(settings: Settings, name: str, step: str) -> None:
    path = settings.fault_file
    if path is None:
        return
    try:
        with open(path, encoding="utf-8") as fh:
            armed = fh.read().strip()
    except FileNotFoundError:
        return
    if armed != f"{name}:{step}":
        return
    try:
        os.unlink(path)  # exactly one block fires it
    except FileNotFoundError:
        return
    os._exit(17)
