"""Upstream NoETL's keychain kinds (`oauth2`, `google_id_token`) and tool kinds (`shell`,
`transfer`) run here; its other tool kinds are refused at validation, named as upstream's.
Token endpoints and the metadata server are real HTTP servers on free local ports."""

from __future__ import annotations

from typing import Any

import pytest

from noetl_core.engine.entries import Entry
from noetl_core.errors import PlaybookError
from noetl_core.playbook import load_text
from noetl_core.runtime.block import Runtime

pytestmark = pytest.mark.integration


def finish(
    rt: Runtime, text: str, workload: dict[str, Any] | None = None, status: str = "completed"
) -> tuple[str, Entry]:
    execution_id = rt.start(load_text(text), workload or {})
    terminal = rt.wait(execution_id, 60)
    assert terminal is not None, "the execution did not finish"
    assert terminal.body["status"] == status, terminal.body
    return execution_id, terminal


def result_of(rt: Runtime, execution_id: str, step: str) -> Any:
    entry = next(e for e in rt.log.find(execution_id, "done") if e.step == step)
    from noetl_core.runtime import payloads

    return payloads.load(rt.payloads, entry.body["result"])


def playbook(steps: str, keychain: str = "") -> str:
    head = "apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {name: kinds}\n"
    return head + (f"keychain:\n{keychain}" if keychain else "") + "workflow:\n" + steps


# -- kinds upstream has and this runtime does not -----------------------------------------


@pytest.mark.parametrize("kind", ["snowflake", "nats", "ducklake", "container", "gcs", "mcp"])
def test_upstream_kinds_not_run_here_are_refused_by_name(kind: str) -> None:
    text = playbook(f"  - step: start\n    tool: {{kind: {kind}, query: 'SELECT 1'}}\n")
    with pytest.raises(PlaybookError) as caught:
        load_text(text, "pb.yaml")
    message = caught.value.message
    assert "pb.yaml:6: workflow[0].tool.kind" in message
    assert f"tool kind {kind!r} is upstream NoETL's but not supported here" in message
    assert "unknown tool kind" not in message


def test_a_kind_nobody_has_is_still_unknown() -> None:
    with pytest.raises(PlaybookError, match="unknown tool kind 'bogus'"):
        load_text(playbook("  - step: start\n    tool: {kind: bogus}\n"), "pb.yaml")


# -- shell ----------------------------------------------------------------------------------

SHELL = """  - step: start
    tool:
      kind: shell
      env: {GREETING: "{{ workload.greeting }}", N: 3}
      cmds:
        - echo "$GREETING $N"; echo warn >&2
        - |
          test -z "$HOME_SECRET_PROBE" && echo clean
"""


def test_shell_runs_programs_with_only_the_given_env_and_returns_upstreams_shape(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME_SECRET_PROBE", "worker-only")
    execution_id, _ = finish(rt, playbook(SHELL), {"greeting": "hello"})
    out = result_of(rt, execution_id, "start")
    assert out["returncode"] == 0
    assert out["stdout"] == "hello 3\n\nclean\n"
    assert out["stderr"] == "warn\n"
    assert [c["returncode"] for c in out["commands"]] == [0, 0]
    assert out["commands"][0]["cmd_preview"] == 'echo "$GREETING $N"; echo warn >&2'
    assert set(out["commands"][0]) == {
        "cmd_preview",
        "returncode",
        "stdout",
        "stderr",
        "duration_ms",
    }


FAILING = """  - step: start
    tool:
      kind: shell
      cmds: ["echo before", "echo 'no such table' >&2; exit 3", "echo never"]
    next:
      - step: recover
        when: "{{ event.name == 'call.error' and error.code == 'exit_status' }}"
        args: {e: "{{ error }}"}
  - step: recover
    tool:
      kind: python
      input: {e: "{{ args.e }}"}
      code: "result = {'message': e['message'], 'rc': e['shell']['returncode'], 'n': len(e['shell']['commands'])}"
"""


def test_a_non_zero_exit_fails_the_step_with_the_stderr_in_the_error(rt: Runtime) -> None:
    execution_id, _ = finish(rt, playbook(FAILING))
    out = result_of(rt, execution_id, "recover")
    assert out["rc"] == 3 and out["n"] == 2
    assert "exited with status 3" in out["message"]
    assert "no such table" in out["message"]


def test_a_shell_program_past_its_timeout_is_killed(rt: Runtime) -> None:
    import time

    text = playbook(
        "  - step: start\n    tool:\n      kind: shell\n      timeout_seconds: 0.5\n"
        "      command: 'sleep 30 & sleep 30; echo done'\n"
    )
    began = time.monotonic()
    _, terminal = finish(rt, text, status="failed")
    assert time.monotonic() - began < 15
    error = terminal.body["error"]
    assert error["code"] == "timeout" and error["retryable"] is True
    assert "timed out after 0.5 s" in error["message"]


def test_cmds_may_be_one_program_string_as_upstream_takes_it(rt: Runtime) -> None:
    text = playbook("  - step: start\n    tool: {kind: shell, cmds: 'echo one; echo two'}\n")
    execution_id, _ = finish(rt, text)
    assert result_of(rt, execution_id, "start")["stdout"] == "one\ntwo\n"


def test_shell_fields_are_checked_at_validation() -> None:
    bad = playbook("  - step: start\n    tool: {kind: shell, cmds: []}\n")
    with pytest.raises(
        PlaybookError, match=r"workflow\[0\]\.tool\.cmds: `cmds` must be a non-empty"
    ):
        load_text(bad, "pb.yaml")
    none = playbook("  - step: start\n    tool: {kind: shell}\n")
    with pytest.raises(PlaybookError, match="`shell` needs `cmds`"):
        load_text(none, "pb.yaml")


# -- keychain: oauth2 and google_id_token ---------------------------------------------------

import base64  # noqa: E402
import json  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer  # noqa: E402
from pathlib import Path  # noqa: E402
from urllib.parse import parse_qs, urlsplit  # noqa: E402

CLIENT_ID = "client-7f3a"
CLIENT_SECRET = "client-SECRET-91c2d8"


def jwt(claims: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


class TokenServer:
    """An OAuth2 token endpoint (client credentials grant), a GCE metadata identity
    endpoint and a protected API, on a free local port, in a thread."""

    def __init__(self, expires_in: float = 3600) -> None:
        self.expires_in = expires_in
        self.fail_with: int | None = None
        self.token_requests: list[dict[str, list[str]]] = []
        self.identity_requests: list[dict[str, Any]] = []
        self.issued: list[str] = []
        self.seen: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def answer(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
                data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(status)
                for key, value in {"Content-Type": "application/json", **(headers or {})}.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode())
                owner.token_requests.append(form)
                if self.path == "/sa/token":  # a service account's signed JWT for an ID token
                    assertion = form["assertion"][0].split(".")[1]
                    claims = json.loads(base64.urlsafe_b64decode(assertion + "=="))
                    token = jwt({"aud": claims["target_audience"], "exp": time.time() + 600})
                    owner.issued.append(token)
                    return self.answer(200, {"id_token": token})
                if owner.fail_with is not None:
                    return self.answer(owner.fail_with, {"error": "temporarily_unavailable"})
                if self.path != "/oauth/token":
                    return self.answer(404, {"error": "not_found"})
                good = form.get("client_id") == [CLIENT_ID] and form.get("client_secret") == [
                    CLIENT_SECRET
                ]
                if form.get("grant_type") != ["client_credentials"] or not good:
                    return self.answer(401, {"error": "invalid_client", "error_description": "bad"})
                token = f"access-{len(owner.issued) + 1}-e8d1a9f0"
                owner.issued.append(token)
                body = {
                    "access_token": token,
                    "token_type": "Bearer",
                    "expires_in": owner.expires_in,
                }
                return self.answer(200, {**body, "scope": " ".join(form.get("scope", []))})

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                if url.path.endswith("/service-accounts/default/identity"):
                    query = parse_qs(url.query)
                    owner.identity_requests.append(
                        {"flavor": self.headers.get("Metadata-Flavor"), **query}
                    )
                    if self.headers.get("Metadata-Flavor") != "Google":
                        return self.answer(
                            403, "Missing Metadata-Flavor", {"Metadata-Flavor": "Google"}
                        )
                    claims = {"aud": query["audience"][0], "exp": time.time() + owner.expires_in}
                    token = jwt({**claims, "n": len(owner.issued) + 1})
                    owner.issued.append(token)
                    return self.answer(
                        200, token, {"Metadata-Flavor": "Google", "Content-Type": "text/html"}
                    )
                auth = self.headers.get("Authorization", "")
                owner.seen.append(auth.removeprefix("Bearer "))
                if auth.removeprefix("Bearer ") not in owner.issued:
                    return self.answer(401, {"error": "unauthorized"})
                return self.answer(200, {"ok": True, "auth": auth})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> TokenServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def tokens() -> Iterator[TokenServer]:
    with TokenServer() as server:
        yield server


def scan_for(home: Path, secrets: list[str]) -> None:
    scanned = 0
    for file in home.rglob("*"):
        if file.is_file():
            data = file.read_bytes()
            scanned += 1
            for secret in secrets:
                assert secret.encode() not in data, f"{file} leaks {secret!r}"
    assert scanned >= 1


OAUTH_KEYCHAIN = """  - name: creds
    kind: secrets
    provider: env
    map: {client_id: NOETL_TEST_CLIENT_ID, client_secret: NOETL_TEST_CLIENT_SECRET}
  - name: api_token
    kind: oauth2
    scope: global
    auto_renew: true
    endpoint: "{{ workload.base }}/oauth/token"
    method: POST
    headers: {Content-Type: application/x-www-form-urlencoded}
    data:
      grant_type: client_credentials
      client_id: "{{ keychain.creds.client_id }}"
      client_secret: "{{ keychain.creds.client_secret }}"
      scope: read write
"""

OAUTH_STEPS = """  - step: start
    tool:
      kind: http
      url: "{{ workload.base }}/api/one"
      headers: {Authorization: "Bearer {{ keychain.api_token.access_token }}"}
    next: again
  - step: again
    tool:
      kind: http
      url: "{{ workload.base }}/api/two"
      auth: {type: bearer, token: "{{ keychain.api_token.access_token }}"}
    next: check
  - step: check
    tool:
      kind: python
      input:
        kind: "{{ keychain.api_token.token_type }}"
        scope: "{{ keychain.api_token.scope }}"
        token: "{{ keychain.api_token.access_token }}"
      code: "result = {'kind': kind, 'scope': scope, 'token': token}"
"""


def test_oauth2_gets_one_token_per_execution_and_never_records_it(
    rt: Runtime, home: Path, tokens: TokenServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOETL_TEST_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("NOETL_TEST_CLIENT_SECRET", CLIENT_SECRET)
    text = playbook(OAUTH_STEPS, OAUTH_KEYCHAIN)
    execution_id, _ = finish(rt, text, {"base": tokens.url})
    assert len(tokens.token_requests) == 1, "the token is cached for the execution"
    form = tokens.token_requests[0]
    assert form["scope"] == ["read write"] and form["grant_type"] == ["client_credentials"]
    assert tokens.seen == [tokens.issued[0]] * 2, "both calls carried the token"
    out = result_of(rt, execution_id, "check")
    assert out == {"kind": "Bearer", "scope": "read write", "token": "***"}
    assert result_of(rt, execution_id, "start")["data"]["auth"] == "Bearer ***"
    scan_for(home, [tokens.issued[0], CLIENT_SECRET])


def test_an_expired_oauth2_token_is_fetched_again(
    rt: Runtime, tokens: TokenServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOETL_TEST_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("NOETL_TEST_CLIENT_SECRET", CLIENT_SECRET)
    tokens.expires_in = 1
    steps = OAUTH_STEPS.replace(
        "    next: again\n",
        "    next: pause\n  - step: pause\n    tool: {kind: python, code: 'import time; time.sleep(1.2)'}\n"
        "    next: again\n",
    )
    finish(rt, playbook(steps, OAUTH_KEYCHAIN), {"base": tokens.url})
    assert len(tokens.token_requests) == 2
    assert tokens.seen == tokens.issued == ["access-1-e8d1a9f0", "access-2-e8d1a9f0"]


def test_a_refused_oauth2_request_fails_the_step_naming_the_entry(
    rt: Runtime, tokens: TokenServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOETL_TEST_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("NOETL_TEST_CLIENT_SECRET", "wrong-secret-6d2f")
    _, terminal = finish(rt, playbook(OAUTH_STEPS, OAUTH_KEYCHAIN), {"base": tokens.url}, "failed")
    error = terminal.body["error"]
    assert (error["kind"], error["code"], error["retryable"]) == (
        "keychain",
        "token_unavailable",
        False,
    )
    message = error["message"]
    assert (
        "step start: tool.headers.Authorization: keychain api_token: the token endpoint" in message
    )
    assert "answered 401 (invalid_client: bad)" in message
    assert "wrong-secret-6d2f" not in json.dumps(terminal.body)


def test_an_unavailable_token_endpoint_is_a_retryable_keychain_error(
    rt: Runtime, tokens: TokenServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOETL_TEST_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("NOETL_TEST_CLIENT_SECRET", CLIENT_SECRET)
    tokens.fail_with = 503
    steps = OAUTH_STEPS.replace(
        "    next: again\n",
        "      spec:\n        policy:\n          rules:\n"
        "            - when: \"{{ output.status == 'error' and output.error.retryable }}\"\n"
        "              then: {do: retry, attempts: 3, delay: 0.05}\n"
        "    next: again\n",
        1,
    )
    _, terminal = finish(rt, playbook(steps, OAUTH_KEYCHAIN), {"base": tokens.url}, "failed")
    error = terminal.body["error"]
    assert (error["kind"], error["code"], error["retryable"]) == (
        "keychain",
        "token_unavailable",
        True,
    )
    assert "answered 503 (temporarily_unavailable)" in error["message"]
    assert len(tokens.token_requests) == 3, "the policy retried the step"


def test_oauth2_client_credentials_from_a_registered_credential(
    rt: Runtime, tokens: TokenServer
) -> None:
    rt.credentials.put(
        {
            "name": "idp",
            "type": "oauth2",
            "data": {
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "token_url": f"{tokens.url}/oauth/token",
                "scope": "read",
            },
        }
    )
    keychain = "  - {name: api_token, kind: oauth2, credential: idp}\n"
    steps = OAUTH_STEPS.split("  - step: check")[0].replace("next: check", "next: end")
    finish(rt, playbook(steps, keychain), {"base": tokens.url})
    assert tokens.token_requests[0]["scope"] == ["read"]
    assert tokens.seen == [tokens.issued[0]] * 2


ID_TOKEN = """  - name: run_token
    kind: google_id_token
    target_audience: "{{ workload.base }}"
"""

ID_STEPS = """  - step: start
    tool:
      kind: http
      url: "{{ workload.base }}/private"
      headers: {Authorization: "Bearer {{ keychain.run_token.id_token }}"}
    next: check
  - step: check
    tool:
      kind: python
      input: {aud: "{{ keychain.run_token.audience }}", kind: "{{ keychain.run_token.token_type }}"}
      code: "result = {'aud': aud, 'kind': kind}"
"""


def test_google_id_token_comes_from_the_metadata_server_at_gce_metadata_host(
    rt: Runtime, home: Path, tokens: TokenServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GCE_METADATA_HOST", tokens.url.removeprefix("http://"))
    execution_id, _ = finish(rt, playbook(ID_STEPS, ID_TOKEN), {"base": tokens.url})
    assert tokens.identity_requests == [
        {"flavor": "Google", "audience": [tokens.url], "format": ["full"]}
    ]
    assert tokens.seen == [tokens.issued[0]]
    assert result_of(rt, execution_id, "check") == {"aud": tokens.url, "kind": "Bearer"}
    scan_for(home, [tokens.issued[0]])


def test_without_a_metadata_server_the_step_fails_saying_so(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("GCE_METADATA_HOST", f"127.0.0.1:{port}")
    _, terminal = finish(rt, playbook(ID_STEPS, ID_TOKEN), {"base": "http://x"}, "failed")
    assert "keychain run_token: no metadata server at" in terminal.body["error"]["message"]


def test_token_entries_are_checked_at_validation() -> None:
    bad = """  - {name: a, kind: oauth2, data: {grant_type: client_credentials}}
  - {name: b, kind: google_id_token}
  - {name: c, kind: oauth2, endpoint: "http://x/token", scope: "read write"}
"""
    with pytest.raises(PlaybookError) as caught:
        load_text(playbook("  - step: start\n    tool: {kind: noop}\n", bad), "pb.yaml")
    message = caught.value.message
    assert "pb.yaml:5: keychain[0].endpoint: `oauth2` needs `endpoint`" in message
    assert "pb.yaml:6: keychain[1].target_audience: `google_id_token` needs" in message
    assert "keychain[2].scope: `scope` is upstream's cache scope" in message


# -- transfer -------------------------------------------------------------------------------

TRANSFER = """  - step: seed
    tool:
      kind: postgres
      auth: pg_xfer
      command: |
        DROP TABLE IF EXISTS xfer_src; DROP TABLE IF EXISTS xfer_back;
        CREATE TABLE xfer_src (id int PRIMARY KEY, name text, amount numeric(10,2), seen timestamptz);
        CREATE TABLE xfer_back (id int PRIMARY KEY, name text, amount numeric(10,2), seen timestamptz, doubled numeric);
        INSERT INTO xfer_src SELECT g, 'n' || g, g * 1.5, '2026-01-01'::timestamptz + g * interval '1 hour'
          FROM generate_series(1, 2500) g;
    next: to_duck
  - step: to_duck
    tool:
      kind: transfer
      source: {kind: postgres, auth: pg_xfer, query: "SELECT * FROM xfer_src ORDER BY id"}
      target: {kind: duckdb, database: "{{ workload.db }}", table: staged, mode: replace}
      chunk_size: 1000
    next: to_pg
  - step: to_pg
    tool:
      kind: transfer
      source:
        kind: duckdb
        database: "{{ workload.db }}"
        query: "SELECT id, name, amount, seen, amount * 2 AS doubled FROM staged WHERE id % 2 = 0"
      target: {kind: postgres, auth: pg_xfer, table: xfer_back}
      batch_size: 300
    next: upsert
  - step: upsert
    tool:
      kind: transfer
      source: {type: postgres, auth: pg_xfer, query: "SELECT id, upper(name) AS name FROM xfer_src WHERE id <= 4"}
      target: {type: postgres, auth: pg_xfer, table: xfer_back, mode: upsert}
    next: check
  - step: check
    tool:
      kind: postgres
      auth: pg_xfer
      query: |
        SELECT count(*)::int AS n, sum(doubled)::float AS total,
               string_agg(name, ',' ORDER BY id) FILTER (WHERE id <= 4) AS firsts
        FROM xfer_back
"""


def test_transfer_moves_rows_postgres_to_duckdb_to_postgres_in_batches(
    rt: Runtime, tmp_path: Path, postgres_server: Any
) -> None:
    rt.credentials.put(postgres_server.credential("pg_xfer"))
    db = str(tmp_path / "stage.duckdb")
    execution_id, _ = finish(rt, playbook(TRANSFER), {"db": db})
    first = result_of(rt, execution_id, "to_duck")
    assert first["rows_transferred"] == 2500 and first["chunks_processed"] == 3
    assert first["direction"] == "postgres_to_duckdb" and first["mode"] == "replace"
    assert first["columns"] == ["id", "name", "amount", "seen"]
    second = result_of(rt, execution_id, "to_pg")
    assert second["rows_transferred"] == 1250 and second["chunks_processed"] == 5
    assert second["direction"] == "duckdb_to_postgres" and second["mode"] == "append"
    upsert = result_of(rt, execution_id, "upsert")
    assert upsert["rows_transferred"] == 4 and upsert["mode"] == "upsert"
    check = result_of(rt, execution_id, "check")["rows"][0]
    assert check["n"] == 1252  # 1250 even ids, then ids 1 and 3 inserted by the upsert
    assert check["total"] == pytest.approx(sum(g * 3.0 for g in range(2, 2501, 2)))
    assert check["firsts"] == "N1,N2,N3,N4"


def test_a_failed_transfer_leaves_the_target_unchanged(
    rt: Runtime, tmp_path: Path, postgres_server: Any
) -> None:
    rt.credentials.put(postgres_server.credential("pg_xfer"))
    steps = TRANSFER.split("  - step: to_duck")[0].replace("next: to_duck", "next: dup")
    steps = steps.replace(
        "FROM generate_series(1, 2500) g;",
        "FROM generate_series(1, 2500) g;\n        INSERT INTO xfer_back (id, name) VALUES (9999, 'kept');",
    )
    steps += """  - step: dup
    tool:
      kind: transfer
      source:
        kind: postgres
        auth: pg_xfer
        query: "SELECT * FROM xfer_src UNION ALL SELECT * FROM xfer_src WHERE id = 2400"
      target: {kind: postgres, auth: pg_xfer, table: xfer_back, mode: replace}
      chunk_size: 500
"""
    steps = steps.replace("SELECT * FROM xfer_src", "SELECT *, 0 AS doubled FROM xfer_src")
    _, terminal = finish(rt, playbook(steps), status="failed")
    error = terminal.body["error"]
    assert error["code"] == "23505" and "transfer target" in error["message"]
    import psycopg

    data = rt.credentials.get("pg_xfer")["data"]
    with psycopg.connect(
        host=data["db_host"],
        port=data["db_port"],
        user=data["db_user"],
        password=data["db_password"],
        dbname=data["db_name"],
    ) as conn:  # the truncate and the 2400 rows before the duplicate were rolled back
        assert conn.execute("SELECT id, name FROM xfer_back").fetchall() == [(9999, "kept")]


def test_transfer_fields_are_checked_at_validation() -> None:
    bad = """  - step: start
    tool:
      kind: transfer
      source: {kind: snowflake, query: "SELECT 1"}
      target: {kind: postgres}
      chunk_size: 0
      mode: merge
"""
    with pytest.raises(PlaybookError) as caught:
        load_text(playbook(bad), "pb.yaml")
    message = caught.value.message
    assert (
        "workflow[0].tool.source.kind: a snowflake source is upstream NoETL's but not supported here"
        in message
    )
    assert "workflow[0].tool.target.table: the target needs `table`" in message
    assert "workflow[0].tool.chunk_size: `chunk_size` must be a positive" in message
    assert "workflow[0].tool.mode: `mode` is one of append, replace, upsert" in message


def test_google_id_token_from_a_registered_service_account_key(
    rt: Runtime, home: Path, tokens: TokenServer
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    info = {
        "type": "service_account",
        "project_id": "demo",
        "private_key_id": "k1",
        "private_key": pem,
        "client_email": "runner@demo.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": f"{tokens.url}/sa/token",
    }
    rt.credentials.put({"name": "runner_sa", "type": "gcp", "data": info})
    keychain = ID_TOKEN + "    service_account_credential: runner_sa\n"
    execution_id, _ = finish(rt, playbook(ID_STEPS, keychain), {"base": tokens.url})
    grant = tokens.token_requests[0]["grant_type"]
    assert grant == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
    assert tokens.identity_requests == [], "no metadata server asked"
    assert tokens.seen == [tokens.issued[0]]
    assert result_of(rt, execution_id, "check") == {"aud": tokens.url, "kind": "Bearer"}
    scan_for(home, [tokens.issued[0]])


def test_a_cancelled_executions_shell_programs_are_killed_when_abandoned(
    rt: Runtime, tmp_path: Path
) -> None:
    flag, after = tmp_path / "running", tmp_path / "after"
    text = playbook(
        "  - step: start\n    tool:\n      kind: shell\n"
        f"      command: 'touch {flag}; sleep 30; touch {after}'\n"
    )
    execution_id = rt.start(load_text(text), {})
    deadline = time.monotonic() + 10
    while not flag.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert flag.exists()
    rt.cancel(execution_id)
    began = time.monotonic()
    assert rt.abandon() == 1
    terminal = rt.wait(execution_id, 10)
    assert terminal is not None and terminal.body["status"] == "cancelled"
    from noetl_core.tools import shell

    while shell._running and time.monotonic() - began < 5:
        time.sleep(0.01)
    assert not shell._running, "the program was killed, not left to run 30 s"
    assert not after.exists()


STEP_TABLE = """  - step: make
    tool:
      kind: python
      code: |
        import pyarrow as pa
        result = pa.table({"id": list(range(1, 8)), "label": [f"l{i}" for i in range(1, 8)]})
    next: prepare
  - step: prepare
    tool:
      kind: postgres
      auth: pg_xfer
      command: "DROP TABLE IF EXISTS xfer_custom; CREATE TABLE xfer_custom (k int, v text)"
    next: load
  - step: load
    tool:
      kind: transfer
      source: {kind: duckdb, query: "SELECT id, label FROM make WHERE id > 2 ORDER BY id"}
      target:
        kind: postgres
        auth: pg_xfer
        query: "INSERT INTO xfer_custom (k, v) VALUES (%s, %s || '!')"
      chunk_size: 2
    next: check
  - step: check
    tool:
      kind: postgres
      auth: pg_xfer
      query: "SELECT string_agg(k || v, ',' ORDER BY k) AS s FROM xfer_custom"
"""


def test_a_duckdb_source_reads_an_earlier_step_and_a_target_query_inserts_each_row(
    rt: Runtime, postgres_server: Any
) -> None:
    rt.credentials.put(postgres_server.credential("pg_xfer"))
    execution_id, _ = finish(rt, playbook(STEP_TABLE))
    load = result_of(rt, execution_id, "load")
    assert (load["rows_transferred"], load["chunks_processed"], load["mode"]) == (5, 3, "custom")
    check = result_of(rt, execution_id, "check")["rows"][0]["s"]
    assert check == "3l3!,4l4!,5l5!,6l6!,7l7!"


def test_a_duckdb_side_past_the_timeout_is_stopped(rt: Runtime, tmp_path: Path) -> None:
    steps = f"""  - step: start
    tool:
      kind: transfer
      timeout: 0.5
      source: {{kind: duckdb, query: "SELECT count(*) AS n FROM range(100000000000)"}}
      target: {{kind: duckdb, database: "{tmp_path / "x.duckdb"}", table: t}}
"""
    began = time.monotonic()
    _, terminal = finish(rt, playbook(steps), status="failed")
    assert time.monotonic() - began < 20
    error = terminal.body["error"]
    assert (error["code"], error["retryable"]) == ("timeout", True)
    assert "transfer source: timed out after 0.5 s" in error["message"]


def test_a_client_secret_written_in_an_oauth2_entry_is_stored_sealed(
    rt: Runtime, home: Path, tokens: TokenServer
) -> None:
    keychain = f"""  - name: api_token
    kind: oauth2
    endpoint: "{{{{ workload.base }}}}/oauth/token"
    data:
      grant_type: client_credentials
      client_id: {CLIENT_ID}
      client_secret: {CLIENT_SECRET}   # written in the clear, as upstream's examples do
      scope: read
"""
    steps = OAUTH_STEPS.split("  - step: again")[0].replace("next: again", "next: end")
    execution_id, _ = finish(rt, playbook(steps, keychain), {"base": tokens.url})
    assert tokens.token_requests[0]["client_secret"] == [CLIENT_SECRET]
    assert tokens.seen == [tokens.issued[0]]
    start = next(iter(rt.log.find(execution_id, "start")), None)
    assert start is not None and "noetl-sealed:" in json.dumps(start.body)
    scan_for(home, [CLIENT_SECRET, tokens.issued[0]])


def test_a_keychain_value_passed_to_shell_is_masked_in_its_output(
    rt: Runtime, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOETL_TEST_SHELL_KEY", "shell-KEY-5a0c3e")
    keychain = "  - {name: k, kind: secrets, provider: env, map: {key: NOETL_TEST_SHELL_KEY}}\n"
    steps = """  - step: start
    tool:
      kind: shell
      env: {API_KEY: "{{ keychain.k.key }}"}
      cmds: ['echo "key=$API_KEY"; echo "$API_KEY" >&2; exit 1']
"""
    _, terminal = finish(rt, playbook(steps, keychain), status="failed")
    error = terminal.body["error"]
    assert error["shell"]["stdout"] == "key=***\n"
    assert "exited with status 1" in error["message"] and "***" in error["message"]
    scan_for(home, ["shell-KEY-5a0c3e"])
