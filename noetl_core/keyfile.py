"""Local key files (credential encryption, callback signing): made once, mode 0600."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def ensure(path: Path, make: Callable[[], str]) -> str:
    """The key stored at `path`; written first with `make()` if there is none. Two
    processes racing here both end up with the one that was written first."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_text().strip()
        with os.fdopen(fd, "w") as fh:
            fh.write(make())
    return path.read_text().strip()
