"""No secret value leaks: run playbooks that use secrets (a credential for http, one for
Postgres, keychain entries from the environment and a file), including a python step
whose exception carries a secret and an HTTP server that echoes the Authorization header
back; then scan every file under NOETL_HOME (the SQLite log with its WAL, the payload
objects) and everything `noetl run`, `noetl events` and `noetl status` printed."""

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

from ..conftest import ROOT

pytestmark = pytest.mark.integration

TOKEN = "tok-LEAK-5f3a9e"
ENV_KEY = "env-LEAK-77c1d2"
FILE_KEY = "file-LEAK-913b4a"
WRONG_PASSWORD = "wrong-LEAK-pw-0a1"

PLAYBOOK = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: leaky}
workload: {api_url: "http://127.0.0.1:1", pg_auth: pg_leak}
keychain:
  - {name: envsecret, kind: secrets, provider: env, map: {key: NOETL_LEAK_KEY}}
  - {name: filesecret, kind: secrets, provider: file, map: {key: "SECRET_FILE"}}
workflow:
  - step: start
    tool: {kind: noop}
    next:
      spec: {mode: inclusive}
      arcs: [{step: echo}, {step: echo_error}, {step: shout}, {step: boom}, {step: query}, {step: bad_login}]
  - step: echo
    tool: {kind: http, method: GET, url: "{{ api_url }}/echo", auth: api_token}
    next: finish
  - step: echo_error
    tool: {kind: http, method: GET, url: "{{ api_url }}/echo", params: {status: 500}, auth: api_token}
    next:
      arcs: [{step: finish, when: "{{ event.name == 'call.error' }}", set: {ctx.echoed: "{{ error.data }}"}}]
  - step: shout
    tool:
      kind: python
      input: {key: "{{ keychain.envsecret.key }}"}
      code: |
        print("the key is", key)
        result = {"key": key, "said": "key=" + key}
    set: {ctx.copied: "{{ keychain.envsecret.key }}"}
    next: finish
  - step: boom
    tool:
      kind: python
      input: {key: "{{ keychain.filesecret.key }}"}
      code: "raise ValueError('cannot use ' + key)"
    next:
      arcs: [{step: finish, when: "{{ event.name == 'call.error' }}", set: {ctx.why: "{{ error.message }}"}}]
  - step: query
    tool:
      kind: postgres
      auth: "{{ pg_auth }}"
      query: "SELECT %(k)s AS k, current_user AS who"
      params: {k: "{{ keychain.filesecret.key }}"}
    next: finish
  - step: bad_login
    tool: {kind: postgres, auth: pg_bad, query: "SELECT 1"}
    next:
      arcs: [{step: finish, when: "{{ event.name == 'call.error' }}", set: {ctx.login: "{{ error.message }}"}}]
  - step: finish
    tool:
      kind: python
      input: {ctx: "{{ ctx }}", echo: "{{ echo }}", rows: "{{ query.rows }}"}
      code: "result = {'ctx': ctx, 'echo': echo, 'rows': rows}"
"""


@pytest.fixture(scope="module")
def api() -> Iterator[DemoApi]:
    with DemoApi() as server:
        yield server


def noetl(home: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "noetl_core.cli", *args],
        cwd=ROOT,
        env={**os.environ, **env, "NOETL_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_no_secret_appears_in_the_log_payloads_or_output(
    tmp_path: Path, api: DemoApi, postgres_server: Any
) -> None:
    home = tmp_path / "home"
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text(FILE_KEY)
    password = postgres_server.password
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "api.json").write_text(
        json.dumps({"name": "api_token", "type": "bearer", "data": {"token": TOKEN}})
    )
    (creds / "pg.json").write_text(json.dumps(postgres_server.credential("pg_leak")))
    bad = postgres_server.credential("pg_bad")
    bad["data"]["db_password"] = WRONG_PASSWORD
    (creds / "bad.json").write_text(json.dumps(bad))
    env = {"NOETL_LEAK_KEY": ENV_KEY}
    registered = noetl(home, env, "register", "credential", "--directory", str(creds))
    assert registered.returncode == 0, registered.stderr

    playbook = tmp_path / "leaky.yaml"
    playbook.write_text(PLAYBOOK.replace("SECRET_FILE", str(secret_file)))
    run = noetl(home, env, "run", str(playbook), "--set", f"api_url={api.url}")
    assert run.returncode == 0, run.stderr + run.stdout
    result = json.loads(run.stdout.split("result:", 1)[1])
    execution_id = run.stderr.split()[1].rstrip(":")

    # the secrets were really used: the echo carried the header, the query the key
    assert result["echo"]["data"]["headers"]["authorization"] in ("***", "Bearer ***")
    assert result["rows"] == [{"k": "***", "who": postgres_server.user}]
    assert "***" in result["ctx"]["why"] and "***" in result["ctx"]["copied"]
    assert "password authentication failed" in result["ctx"]["login"]

    events = noetl(home, env, "events", execution_id)
    status = noetl(home, env, "status", execution_id)
    printed = run.stdout + run.stderr + events.stdout + events.stderr + status.stdout
    secrets = [TOKEN, ENV_KEY, FILE_KEY, password, WRONG_PASSWORD]
    secrets += [f"Bearer {TOKEN}"]
    for secret in secrets:
        assert secret not in printed, f"printed output leaks {secret!r}"
    scanned = 0
    for file in home.rglob("*"):
        if file.is_file():
            data = file.read_bytes()
            scanned += 1
            for secret in secrets:
                assert secret.encode() not in data, f"{file} leaks {secret!r}"
    assert scanned >= 3 and (home / "events.sqlite").exists()


STATIC = "static-LEAK-4e2b19"
STATIC_CHILD = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: static_child, path: tests/static_child}
keychain:
  - name: vault
    kind: static
    map:
      pw: SECRET   # a comment that stays
      port: 5432
workflow:
  - step: start
    tool:
      kind: python
      input: {pw: "{{ keychain.vault.pw }}", port: "{{ keychain.vault.port }}"}
      code: |
        import hashlib
        result = {"sha": hashlib.sha256(pw.encode()).hexdigest(), "port": port}
"""
STATIC_PARENT = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: static_parent}
keychain:
  - {name: vault, kind: static, map: {pw: "SECRET"}}
workflow:
  - step: start
    tool:
      kind: python
      input: {pw: "{{ keychain.vault.pw }}"}
      code: |
        import hashlib
        result = hashlib.sha256(pw.encode()).hexdigest()
    next: child
  - step: child
    tool: {kind: playbook, path: tests/static_child}
"""


def test_static_keychain_values_are_stored_sealed_and_open_when_read(
    rt: Any, home: Path, tmp_path: Path
) -> None:
    """A `static` value is a secret written into the playbook: the texts the start entry
    and the catalog keep carry it sealed; blocks (here also a child's, run from the
    catalog's text) still read the value."""
    import hashlib

    from noetl_core.engine import entries as E
    from noetl_core.playbook import load_file
    from noetl_core.runtime import payloads

    folder = tmp_path / "playbooks"
    folder.mkdir()
    (folder / "child.yaml").write_text(STATIC_CHILD.replace("SECRET", STATIC))
    parent = folder / "parent.yaml"
    parent.write_text(STATIC_PARENT.replace("SECRET", STATIC))
    execution_id = rt.start(load_file(parent), {})
    terminal = rt.wait(execution_id, 30)
    assert terminal is not None and terminal.body["status"] == "completed", terminal.body
    digest = hashlib.sha256(STATIC.encode()).hexdigest()
    first = next(e for e in rt.log.find(execution_id, "done") if e.step == "start")
    assert payloads.load(rt.payloads, first.body["result"]) == digest
    assert payloads.load(rt.payloads, terminal.body["result"]) == {"sha": digest, "port": 5432}

    stored = rt.log.get(E.start_id(execution_id))
    assert "noetl-sealed:" in stored.body["source"]
    assert stored.body["source"].count("\n") == STATIC_PARENT.count("\n")
    registered = rt.catalog.register(folder / "child.yaml")
    assert not registered.new  # sealing is deterministic: the same text, no new version
    assert "# a comment that stays" in rt.catalog.read("tests/static_child", 1)
    scanned = 0
    for file in home.rglob("*"):
        if file.is_file() and file.parent.name != "running":  # (empty execution locks)
            scanned += 1
            assert STATIC.encode() not in file.read_bytes(), f"{file} holds the static value"
    assert scanned >= 3 and (home / "events.sqlite").exists()
