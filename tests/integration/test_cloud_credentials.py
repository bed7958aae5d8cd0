"""`auth:` credentials on the cloud runtime: registered into Secret Manager (one secret
per credential) by `noetl register credential --target emulators`, read there by the
deployed worker, which has no file store of its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from noetl_core.devtools.http_api import DemoApi
from noetl_core.playbook import load_text
from noetl_core.runtime.block import Runtime

from ..conftest import ROOT

pytestmark = pytest.mark.integration

TOKEN = "tok-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def api() -> Iterator[DemoApi]:
    with DemoApi() as running:
        yield running


def noetl(env: dict[str, str], home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "noetl_core.cli", *args],
        cwd=ROOT,
        env={**os.environ, **env, "NOETL_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_credential_registered_to_secret_manager_is_used_by_the_worker(
    cloud_rt: Runtime, gcp_env: dict[str, str], gcp_stack: object, api: DemoApi, tmp_path: Path
) -> None:
    home = tmp_path / "cli-home"
    file = tmp_path / "creds.json"
    file.write_text(
        json.dumps([{"name": "echo_token", "type": "bearer", "data": {"token": TOKEN}}])
    )
    done = noetl(gcp_env, home, "register", "credential", "-f", str(file), "--target", "emulators")
    assert done.returncode == 0, done.stderr
    assert "registered credential: echo_token" in done.stdout
    listed = noetl(gcp_env, home, "credentials", "list", "--target", "emulators")
    assert listed.returncode == 0 and "echo_token  bearer" in listed.stdout
    assert not (home / "credentials").exists()  # nothing went to a local file store
    embedded = noetl(gcp_env, home, "credentials", "list")
    assert "echo_token" not in embedded.stdout

    text = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: cloud_credential}
workflow:
  - step: start
    tool: {kind: http, url: "{{ workload.api }}/echo", auth: {credential: echo_token}}
"""
    execution_id = cloud_rt.start(load_text(text), {"api": api.url})
    terminal = cloud_rt.wait(execution_id, 60)
    assert terminal is not None and terminal.body["status"] == "completed", terminal
    sent = [r["headers"] for r in api.requests if r["path"].startswith("/echo")]
    assert any(h.get("Authorization") == f"Bearer {TOKEN}" for h in sent)
    assert TOKEN not in json.dumps([e.to_dict() for e in cloud_rt.log.entries(execution_id)])


def test_an_unknown_alias_fails_the_step_naming_the_registered_ones(
    cloud_rt: Runtime, gcp_env: dict[str, str]
) -> None:
    text = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: cloud_missing_credential}
workflow:
  - step: start
    tool: {kind: http, url: "http://127.0.0.1:9/x", auth: {credential: nobody_registered}}
"""
    terminal = cloud_rt.wait(cloud_rt.start(load_text(text), {}), 60)
    assert terminal is not None and terminal.body["status"] == "failed"
    assert "unknown credential alias 'nobody_registered'" in terminal.body["error"]["message"]
