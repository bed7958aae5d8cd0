"""Shared fixtures: an embedded runtime in a temporary NOETL_HOME, and example paths."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from noetl_core import embedded, settings
from noetl_core.runtime.block import Runtime

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "playbooks" / "examples"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "noetl-home"


@pytest.fixture
def conf(home: Path) -> settings.Settings:
    return settings.load({"NOETL_HOME": str(home), "NOETL_SQLITE_SYNC": "NORMAL"})


@pytest.fixture
def rt(conf: settings.Settings) -> Iterator[Runtime]:
    with embedded.runtime(conf) as runtime:
        yield runtime


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[object]:
    """One real PostgreSQL server for the whole session (`make test` installs the server
    binaries when they are missing; without them these tests fail, they are not skipped)."""
    from noetl_core.devtools.postgres import PostgresServer

    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.stop()
