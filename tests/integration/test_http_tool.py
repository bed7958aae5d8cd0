"""The `http` tool against a real local API (DemoApi): called directly and in executions."""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from noetl_core.devtools.http_api import DemoApi
from noetl_core.errors import KeychainError, PlaybookError, ToolError
from noetl_core.keychain import CredentialStore, Sealer, SecretCache, Secrets
from noetl_core.playbook import load_text
from noetl_core.runtime import payloads
from noetl_core.runtime.block import Runtime
from noetl_core.tools import http
from noetl_core.tools.base import ToolCall

pytestmark = pytest.mark.integration

TOKEN = "tok-" + uuid.uuid4().hex
PASSWORD = "pw-" + uuid.uuid4().hex
API_KEY = "key-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def api() -> Iterator[DemoApi]:
    with DemoApi() as running:
        yield running


@pytest.fixture
def secrets(tmp_path: Path) -> Secrets:
    store = CredentialStore(tmp_path / "credentials")
    for credential in CREDENTIALS:
        store.put(credential)
    return Secrets(
        execution_id="E",
        entries=[],
        store=store,
        cache=SecretCache(),
        sealer=Sealer(Fernet.generate_key),
    )


CREDENTIALS: list[dict[str, Any]] = [
    {"name": "api_bearer", "type": "bearer", "data": {"token": TOKEN}},
    {"name": "api_basic", "type": "basic", "data": {"username": "ada", "password": PASSWORD}},
    {"name": "api_basic_short", "type": "basic", "data": {"user": "ada", "pass": PASSWORD}},
    {"name": "api_key", "type": "api_key", "data": {"key": API_KEY}},
    {
        "name": "api_key_query",
        "type": "api_key",
        "data": {"api_key": API_KEY, "in": "query", "name": "apikey"},
    },
    {"name": "warehouse", "type": "postgres", "data": {"db_password": PASSWORD}},
]


class Services:
    def load(self, ref: Any) -> Any:
        raise AssertionError("not used")

    def run_tool(self, tool: Any, input: Any, call: ToolCall) -> Any:
        raise AssertionError("not used")


def call(
    fields: dict[str, Any],
    secrets: Secrets | None = None,
    attempt: int = 1,
    command_id: str = "C1",
) -> ToolCall:
    return ToolCall(
        kind="http",
        fields=fields,
        input={},
        step="fetch",
        execution_id="E",
        command_id=command_id,
        attempt=attempt,
        names={},
        services=Services(),
        secrets=secrets,
    )


def fails(fields: dict[str, Any], secrets: Secrets | None = None) -> ToolError:
    with pytest.raises(ToolError) as caught:
        http.run(call(fields, secrets))
    return caught.value


def echo(api: DemoApi, secrets: Secrets | None = None, **fields: Any) -> dict[str, Any]:
    out = http.run(call({"url": f"{api.url}/echo", **fields}, secrets))
    data: dict[str, Any] = out["data"]
    return data


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- requests and answers -------------------------------------------------------------


def test_get_json_answers_status_lowercase_headers_and_parsed_data(api: DemoApi) -> None:
    out = http.run(call({"url": f"{api.url}/items", "params": {"count": 3}}))
    assert out["status_code"] == 200
    assert out["headers"]["content-type"] == "application/json"
    assert all(key == key.lower() for key in out["headers"])
    assert out["data"] == [
        {"id": 1, "name": "item-1", "price": 1.75},
        {"id": 2, "name": "item-2", "price": 3.25},
        {"id": 3, "name": "item-3", "price": 4.75},
    ]


def test_query_params_repeat_lists_skip_none_and_keep_the_urls_own(api: DemoApi) -> None:
    params = {"tags": ["a", "b"], "flag": True, "skip": None, "n": 2}
    got = echo(api, url=f"{api.url}/echo?fixed=1", params=params)
    assert got["query"] == {"fixed": "1", "tags": ["a", "b"], "flag": "true", "n": "2"}


def test_post_json_sends_a_json_body_and_reads_the_created_answer(api: DemoApi) -> None:
    out = http.run(call({"method": "post", "url": f"{api.url}/orders", "json": {"sku": "A1"}}))
    assert out["status_code"] == 201
    assert out["data"]["sku"] == "A1" and isinstance(out["data"]["id"], int)
    got = echo(api, method="PUT", json={"a": [1, 2]})
    assert got["method"] == "PUT" and got["json"] == {"a": [1, 2]}
    assert got["headers"]["content-type"] == "application/json"


def test_text_and_form_bodies(api: DemoApi) -> None:
    text = echo(api, method="POST", body="plain words", headers={"Content-Type": "text/plain"})
    assert text["body"] == "plain words" and text["headers"]["content-type"] == "text/plain"
    form = echo(api, method="POST", data={"a": "1", "b": "two words"})
    assert form["body"] == "a=1&b=two+words"
    assert form["headers"]["content-type"] == "application/x-www-form-urlencoded"


def test_headers_are_sent_as_given(api: DemoApi) -> None:
    got = echo(api, headers={"X-Trace": "abc", "X-Count": 3, "X-Flag": False})
    assert got["headers"]["x-trace"] == "abc"
    assert got["headers"]["x-count"] == "3" and got["headers"]["x-flag"] == "false"


def test_response_types_text_binary_and_the_json_default(api: DemoApi) -> None:
    url = f"{api.url}/items?count=1"
    text = http.run(call({"url": url, "response_type": "text"}))["data"]
    assert isinstance(text, str) and json.loads(text)[0]["id"] == 1
    raw = http.run(call({"url": f"{api.url}/bytes?size=300", "response_type": "binary"}))
    assert base64.b64decode(raw["data"]) == bytes(i % 256 for i in range(300))
    assert raw["headers"]["content-type"] == "application/octet-stream"
    assert isinstance(http.run(call({"url": url}))["data"], list)


def test_redirects_are_followed_unless_told_not_to(api: DemoApi) -> None:
    assert http.run(call({"url": f"{api.url}/redirect/2"}))["data"] == {"redirected": True}
    error = fails({"url": f"{api.url}/redirect/1", "follow_redirects": False})
    assert (
        error.code == "http_302" and error.details["http"]["headers"]["location"] == "/redirect/0"
    )
    error = fails({"url": f"{api.url}/redirect/30"})
    assert error.code == "too_many_redirects" and not error.retryable


# -- idempotency ----------------------------------------------------------------------


def test_idempotency_key_is_the_command_and_attempt_unless_the_playbook_sets_one(
    api: DemoApi,
) -> None:
    def key(c: ToolCall) -> str:
        value: str = http.run(c)["data"]["headers"]["idempotency-key"]
        return value

    fields = {"url": f"{api.url}/echo"}
    first = key(call(fields, command_id="cmd7", attempt=1))
    assert first == "cmd7-1"
    assert key(call(fields, command_id="cmd7", attempt=1)) == first  # a redelivery
    assert key(call(fields, command_id="cmd7", attempt=2)) == "cmd7-2"  # a retry
    own = echo(api, headers={"idempotency-KEY": "mine"})["headers"]
    assert own["idempotency-key"] == "mine"


# -- auth -----------------------------------------------------------------------------

BASIC = "Basic " + base64.b64encode(f"ada:{PASSWORD}".encode()).decode()


@pytest.mark.parametrize(
    ("auth", "header", "expected"),
    [
        ("api_bearer", "authorization", f"Bearer {TOKEN}"),
        ({"credential": "api_bearer"}, "authorization", f"Bearer {TOKEN}"),
        ({"alias": "api_basic"}, "authorization", BASIC),
        ("api_basic_short", "authorization", BASIC),
        ("api_key", "x-api-key", API_KEY),
        ({"type": "bearer", "token": TOKEN}, "authorization", f"Bearer {TOKEN}"),
        ({"type": "basic", "username": "ada", "password": PASSWORD}, "authorization", BASIC),
        ({"type": "api_key", "key": API_KEY, "header": "X-Key"}, "x-key", API_KEY),
    ],
)
def test_auth_sends_the_secret_and_masks_every_form_of_it(
    api: DemoApi, secrets: Secrets, auth: Any, header: str, expected: str
) -> None:
    got = echo(api, secrets, auth=auth, headers={"Authorization": "overridden"})
    assert got["headers"][header] == expected
    masked = json.dumps(secrets.redactor.scrub(got))
    assert masked.count("***") >= 1
    for secret in (TOKEN, PASSWORD, API_KEY, BASIC.split()[1]):
        assert secret not in masked


def test_api_key_in_the_query_string(api: DemoApi, secrets: Secrets) -> None:
    assert echo(api, secrets, auth="api_key_query")["query"] == {"apikey": API_KEY}
    inline = {"type": "api_key", "key": API_KEY, "in": "query"}
    assert echo(api, secrets, auth=inline)["query"] == {"api_key": API_KEY}
    assert secrets.redactor.text(API_KEY) == "***"


def test_auth_problems_name_the_alias_never_the_values(api: DemoApi, secrets: Secrets) -> None:
    with pytest.raises(KeychainError) as unknown:
        http.run(call({"url": f"{api.url}/echo", "auth": "nope"}, secrets))
    assert unknown.value.code == "unknown_alias" and "'nope'" in unknown.value.message
    error = fails({"url": f"{api.url}/echo", "auth": "warehouse"}, secrets)
    assert error.code == "unsupported_auth" and "'warehouse'" in error.message
    assert PASSWORD not in error.message
    error = fails({"url": f"{api.url}/echo", "auth": {"type": "basic", "username": "x"}})
    assert error.code == "bad_credential" and "password" in error.message


# -- errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "retryable"), [(404, False), (400, False), (408, True), (429, True), (503, True)]
)
def test_a_non_2xx_answer_is_an_error_with_status_headers_and_body(
    api: DemoApi, status: int, retryable: bool
) -> None:
    error = fails({"url": f"{api.url}/status/{status}?secret=s3cr3t"})
    assert error.code == f"http_{status}" and error.retryable is retryable
    assert error.kind == ("server_error" if status >= 500 else "http")
    shown = error.to_dict()
    assert shown["http"]["status"] == status and shown["http_status"] == status
    assert shown["http"]["headers"]["content-type"] == "application/json"
    assert shown["data"] == {"status": status}
    assert f"GET {api.url}/status/{status} answered {status}" in error.message
    assert "s3cr3t" not in error.message


def test_a_timeout_is_a_retryable_timeout_error(api: DemoApi) -> None:
    started = time.monotonic()
    error = fails({"url": f"{api.url}/slow?seconds=3", "timeout": 0.2})
    assert time.monotonic() - started < 2
    assert (error.code, error.retryable, error.kind) == ("timeout", True, "http")
    assert "read timeout 0.2" in error.message
    error = fails({"url": f"{api.url}/slow?seconds=3", "timeout": {"connect": 1, "read": 0.2}})
    assert error.code == "timeout"


def test_a_refused_connection_is_retryable() -> None:
    error = fails({"url": f"http://127.0.0.1:{closed_port()}/items"})
    assert (error.code, error.retryable, error.kind) == ("connection_refused", True, "http")


def test_malformed_json_is_invalid_json_with_the_body_readable(api: DemoApi) -> None:
    error = fails({"url": f"{api.url}/badjson"})
    assert (error.code, error.retryable) == ("invalid_json", False)
    assert error.to_dict()["data"] == '{"items": [1, 2,'
    assert http.run(call({"url": f"{api.url}/badjson", "response_type": "text"}))["data"]


@pytest.mark.parametrize("url", ["not a url", "ftp://example.com/x", "http://"])
def test_an_unusable_url_is_invalid_url(url: str) -> None:
    error = fails({"url": url})
    assert (error.code, error.retryable) == ("invalid_url", False)


def test_validation_names_each_problem_and_skips_templates() -> None:
    problems = dict(
        http.validate({"method": 5, "respons_type": "x", "response_type": "xml", "json": {}})
    )
    assert set(problems) == {"method", "respons_type", "response_type", "url"}
    assert "'xml'" in problems["response_type"]
    templated = {"url": "{{ u }}", "timeout": "{{ t }}", "headers": "{{ h }}", "auth": "{{ a }}"}
    assert http.validate(templated) == []
    assert http.validate({"url": "u", "json": {"a": 1}, "body": "b"}) == [
        ("json", "give the body once: `json`, or `body` / `data`")
    ]
    assert dict(http.validate({"url": "u", "timeout": {"total": 3}}))["timeout"]


def test_rendered_fields_of_the_wrong_type_fail_the_call() -> None:
    error = fails({"url": None})
    assert error.code == "invalid_request" and "url" in error.message


# -- whole executions -----------------------------------------------------------------


def run(rt: Runtime, text: str, workload: dict[str, Any]) -> tuple[str, Any]:
    execution_id = rt.start(load_text(text), workload)
    terminal = rt.wait(execution_id, 30)
    assert terminal is not None
    return execution_id, terminal


def result_of(rt: Runtime, terminal: Any) -> Any:
    assert terminal.body["status"] == "completed", terminal.body
    return payloads.load(rt.payloads, terminal.body["result"])


def test_a_playbook_gets_items_and_posts_an_order(rt: Runtime, api: DemoApi) -> None:
    text = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: http_chain}
workload: {count: 2}
workflow:
  - step: start
    tool: {kind: http, url: "{{ api }}/items", params: {count: "{{ count }}"}}
    next: order
  - step: order
    tool:
      kind: http
      method: POST
      url: "{{ api }}/orders"
      json: {items: "{{ start.data | map(attribute='id') | list }}", total: "{{ start.data | sum(attribute='price') }}"}
    next: report
  - step: report
    tool:
      kind: python
      input: {status: "{{ order.status_code }}", order: "{{ order.data }}"}
      code: "result = {'status': status, 'items': order['items'], 'total': order['total'], 'has_id': 'id' in order}"
"""
    _, terminal = run(rt, text, {"api": api.url})
    assert result_of(rt, terminal) == {
        "status": 201,
        "items": [1, 2],
        "total": 5.0,
        "has_id": True,
    }


def test_retry_on_503_with_exponential_backoff_until_flaky_succeeds(
    rt: Runtime, api: DemoApi
) -> None:
    key = uuid.uuid4().hex
    text = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: http_retry}
workflow:
  - step: start
    tool:
      kind: http
      url: "{{ api }}/flaky/{{ key }}?fail=2&status=503"
      spec:
        policy:
          rules:
            - when: "{{ output.status == 'error' and output.http.status in [429, 503] }}"
              then: {do: retry, attempts: 5, backoff: exponential, delay: 0.05}
            - when: "{{ output.status == 'error' }}"
              then: {do: fail}
"""
    execution_id, terminal = run(rt, text, {"api": api.url, "key": key})
    assert result_of(rt, terminal)["data"] == {"key": key, "calls": 3}
    retries = [e.body["retry"] for e in rt.log.find(execution_id, "attempt")]
    assert [r["delay"] for r in retries] == [0.05, 0.1]
    assert [r["attempt"] for r in retries] == [2, 3]
    errors = [e.body["error"] for e in rt.log.find(execution_id, "attempt")]
    assert {e["code"] for e in errors} == {"http_503"}
    assert errors[0]["http"]["headers"]["retry-after"] == "0"
    keys = [r["headers"]["Idempotency-Key"] for r in api.requests if key in r["path"]]
    command = keys[0].rsplit("-", 1)[0]
    assert keys == [f"{command}-1", f"{command}-2", f"{command}-3"]


def test_a_policy_rule_reads_the_status_of_a_404(rt: Runtime, api: DemoApi) -> None:
    text = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: http_policy}
workflow:
  - step: start
    tool:
      kind: http
      url: "{{ api }}/status/404"
      spec:
        policy:
          rules:
            - when: "{{ output.http.status == 404 }}"
              then: {do: continue, set: {ctx.missing: "{{ output.error.data }}", ctx.type: "{{ output.http.headers['content-type'] }}"}}
            - when: "{{ output.status == 'error' }}"
              then: {do: fail}
    next: report
  - step: report
    tool:
      kind: python
      input: {missing: "{{ ctx.missing }}", type: "{{ ctx.type }}", start: "{{ start }}"}
      code: "result = {'missing': missing, 'type': type, 'outcome': start['status'], 'code': start['error']['code']}"
"""
    _, terminal = run(rt, text, {"api": api.url})
    assert result_of(rt, terminal) == {
        "missing": {"status": 404},
        "type": "application/json",
        "outcome": "error",
        "code": "http_404",
    }


def test_a_recovery_arc_reads_the_error_status_and_body(rt: Runtime, api: DemoApi) -> None:
    text = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: http_recovery}
workflow:
  - step: start
    tool: {kind: http, url: "{{ api }}/status/500"}
    next:
      arcs:
        - step: recover
          when: "{{ event.name == 'call.error' }}"
          set: {ctx.status: "{{ error.http.status }}", ctx.body: "{{ error.data }}", ctx.code: "{{ error.code }}", ctx.retryable: "{{ error.retryable }}"}
  - step: recover
    tool:
      kind: python
      input: {status: "{{ ctx.status }}", body: "{{ ctx.body }}", code: "{{ ctx.code }}", retryable: "{{ ctx.retryable }}"}
      code: "result = {'status': status, 'body': body, 'code': code, 'retryable': retryable}"
"""
    _, terminal = run(rt, text, {"api": api.url})
    assert result_of(rt, terminal) == {
        "status": 500,
        "body": {"status": 500},
        "code": "http_500",
        "retryable": True,
    }


def test_a_timeout_in_an_execution_is_retried_then_fails_with_its_code(
    rt: Runtime, api: DemoApi
) -> None:
    text = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: http_timeout}
workflow:
  - step: start
    tool:
      kind: http
      url: "{{ api }}/slow?seconds=2"
      timeout: 0.2
      spec:
        policy:
          rules:
            - when: "{{ output.error.retryable }}"
              then: {do: retry, attempts: 2, delay: 0}
            - when: "{{ output.status == 'error' }}"
              then: {do: fail}
"""
    _, terminal = run(rt, text, {"api": api.url})
    assert terminal.body["status"] == "failed"
    error = terminal.body["error"]
    assert (error["code"], error["kind"], error["retryable"]) == ("timeout", "http", True)
    assert error["attempts"] == 2


def test_a_bearer_token_never_reaches_the_log_payloads_or_errors(rt: Runtime, api: DemoApi) -> None:
    rt.credentials.put({"name": "echo_token", "type": "bearer", "data": {"token": TOKEN}})
    text = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: http_masking}
workflow:
  - step: start
    tool:
      kind: http
      method: POST
      url: "{{ api }}/echo"
      auth: "{{ token_alias }}"
      json: {pad: "{{ 'x' * 70000 }}"}
    next: teapot
  - step: teapot
    tool: {kind: http, url: "{{ api }}/echo?status=418", auth: {credential: echo_token}}
"""
    execution_id, terminal = run(rt, text, {"api": api.url, "token_alias": "echo_token"})
    assert terminal.body["status"] == "failed"
    error = terminal.body["error"]
    assert error["code"] == "http_418"
    assert error["data"]["headers"]["authorization"] == "***"
    start = next(e for e in rt.log.find(execution_id, "done") if e.step == "start")
    assert "key" in start.body["result"]  # stored in the payload store (large)
    recorded = payloads.load(rt.payloads, start.body["result"])
    assert recorded["data"]["headers"]["authorization"] == "***"
    assert TOKEN not in json.dumps(terminal.body)
    home = rt.settings.home
    files = [*home.glob(rt.settings.log_path.name + "*"), *(home / "payloads").rglob("*")]
    contents = [f.read_bytes() for f in files if f.is_file()]
    assert len(contents) >= 2
    for secret in (TOKEN, f"Bearer {TOKEN}"):
        assert not any(secret.encode() in content for content in contents)


def test_http_fields_are_checked_when_the_playbook_loads() -> None:
    text = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: http_bad}
workflow:
  - step: start
    tool: {kind: http, url: "http://x", response_type: xml, timeout: -1}
"""
    with pytest.raises(PlaybookError) as caught:
        load_text(text, "bad.yaml")
    message = caught.value.message
    assert "workflow[0].tool.response_type" in message and "workflow[0].tool.timeout" in message


def test_the_demo_api_serves_from_the_command_line() -> None:
    command = [sys.executable, "-m", "noetl_core.devtools.http_api", "--port", "0"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            url = proc.stdout.readline().strip()
            out = http.run(call({"url": f"{url}/users"}))
            assert len(out["data"]) == 5 and out["data"][0]["email"] == "ada@example.com"
        finally:
            proc.terminate()
            proc.wait(timeout=5)


def test_upstream_endpoint_and_a_missing_ca_bundle(api: DemoApi) -> None:
    assert http.run(call({"endpoint": f"{api.url}/users"}))["data"][0]["name"] == "Ada"
    error = fails({"url": f"{api.url}/users", "verify": "/no/such/ca.pem"})
    assert error.code == "invalid_request" and "/no/such/ca.pem" in error.message
