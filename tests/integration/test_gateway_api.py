"""Property-based tests of the gateway against its own OpenAPI document: schemathesis
generates requests (valid and invalid) for every operation and sends them over HTTP to a
real `noetl serve` (uvicorn, the LocalGuard, the gateway) on a free loopback port. No
answer may be a 5xx, every status must be one the document declares, and every JSON
answer must match its declared schema."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks
from schemathesis.specs.openapi import checks as openapi_checks

from noetl_core import embedded
from noetl_core import settings as noetl_settings
from noetl_core.gateway import tokens
from noetl_core.serve import Server

from ..conftest import EXAMPLES

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    home = tmp_path_factory.mktemp("api") / "home"
    with embedded.runtime(noetl_settings.load({"NOETL_HOME": str(home)})) as rt:
        rt.catalog.register(EXAMPLES / "hello_world.yaml")
        server = Server(rt).start()
        key = tokens.load_key(None, home)
        token = tokens.create(key, "fuzz", ["admin"], ["*"], time.time())
        try:
            yield server, token
        finally:
            server.stop()


def operations() -> list[schemathesis.APIOperation]:
    """Every operation of the document the running server serves (checked equal below)."""
    from noetl_core.gateway.app import OPENAPI

    loaded = schemathesis.openapi.from_dict(OPENAPI)
    return [result.ok() for result in loaded.get_all_operations()]


OPERATIONS = operations()
CHECKS = [
    checks.not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_schema_conformance,
]
FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)


def test_the_server_serves_the_document_tested_here(served: tuple[Server, str]) -> None:
    import httpx

    from noetl_core.gateway.app import OPENAPI

    server, _ = served
    assert httpx.get(f"{server.url}/v1/openapi.json").json() == OPENAPI
    assert len(OPERATIONS) == 11


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda o: f"{o.method} {o.path}")
def test_every_operation_answers_within_its_document(
    operation: schemathesis.APIOperation, served: tuple[Server, str]
) -> None:
    server, token = served
    headers = {"Authorization": f"Bearer {token}"}

    @FUZZ
    @given(case=operation.as_strategy())
    def fuzz(case: schemathesis.Case) -> None:
        case.call_and_validate(base_url=server.url, headers=headers, checks=CHECKS)

    fuzz()


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda o: f"{o.method} {o.path}")
def test_without_a_token_every_operation_is_refused_never_a_5xx(
    operation: schemathesis.APIOperation, served: tuple[Server, str]
) -> None:
    server, _ = served

    @settings(FUZZ, max_examples=15)
    @given(case=operation.as_strategy())
    def fuzz(case: schemathesis.Case) -> None:
        case.headers = {
            k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"
        }
        response = case.call(base_url=server.url)
        assert response.status_code in (400, 401, 413, 415), response.text
