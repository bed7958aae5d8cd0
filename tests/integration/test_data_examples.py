"""The data examples (playbooks/examples/data/) end to end on the embedded default,
against a real PostgreSQL server and the local demo HTTP API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from noetl_core.devtools.http_api import DemoApi

from ..conftest import EXAMPLES, ROOT

pytestmark = pytest.mark.integration

DATA = EXAMPLES / "data"


@pytest.fixture(scope="module")
def api() -> Iterator[DemoApi]:
    with DemoApi() as server:
        yield server


@pytest.fixture
def home(tmp_path: Path, postgres_server: Any) -> Path:
    home = tmp_path / "home"
    credential = tmp_path / "pg.json"
    credential.write_text(json.dumps(postgres_server.credential("pg_local")))
    done = noetl(home, "register", "credential", "-f", str(credential))
    assert done.returncode == 0, done.stderr
    return home


def noetl(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "noetl_core.cli", *args],
        cwd=ROOT,
        env={**os.environ, "NOETL_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def run_json(home: Path, playbook: Path, *sets: str) -> dict[str, Any]:
    args = [item for s in sets for item in ("--set", s)]
    done = noetl(home, "run", str(playbook), "--json", *args)
    assert done.returncode == 0, done.stderr + done.stdout
    out: dict[str, Any] = json.loads(done.stdout)
    replay = noetl(home, "replay", out["execution_id"])
    assert replay.returncode == 0 and "MISMATCH" not in replay.stdout, replay.stdout
    return out


def test_http_to_postgres_with_a_credential_alias(home: Path, api: DemoApi) -> None:
    out = run_json(home, DATA / "http_to_postgres.yaml", f"api_url={api.url}")
    assert out["status"] == "completed"
    assert out["result"] == {
        "columns": ["users", "loaded_now"],
        "rows": [{"users": 5, "loaded_now": 5}],
        "row_count": 1,
    }
    again = run_json(home, DATA / "http_to_postgres.yaml", f"api_url={api.url}")
    assert again["result"]["rows"] == [{"users": 5, "loaded_now": 5}]  # upserts, no duplicates


def test_postgres_to_duckdb_over_the_arrow_result(home: Path) -> None:
    out = run_json(home, DATA / "postgres_to_duckdb.yaml")
    assert out["status"] == "completed"
    result = out["result"]
    assert result["rows_read"] == 100_000 and result["buckets"] == 10
    assert result["grand_total"] == pytest.approx(sum(g * 0.5 for g in range(1, 100_001)))
    assert result["first"] == {"bucket": 0, "n": 10_000, "total": pytest.approx(250_025_000.0)}


def test_http_retry_on_503_with_exponential_backoff(home: Path, api: DemoApi) -> None:
    done = noetl(home, "run", str(DATA / "http_retry.yaml"), "--set", f"api_url={api.url}")
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("! start attempt") == 2  # two 503s, each retried
    assert "↻ start attempt 3" in done.stderr
    assert '"calls": 3' in done.stdout
