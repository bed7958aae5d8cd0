"""The `aws` keychain provider against AWS Secrets Manager served by moto (server mode,
on a loopback port): a real boto3 client over HTTP, no patched calls."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from noetl_core.errors import KeychainError
from noetl_core.redact import MASK

from ..unit.test_keychain import secrets_for

pytestmark = pytest.mark.integration


@pytest.fixture
def moto_server(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    yield f"http://{host}:{port}"
    server.stop()


def test_aws_provider_reads_secrets_manager_served_by_moto(
    tmp_path: Path, moto_server: str
) -> None:
    import boto3

    client = boto3.client("secretsmanager", region_name="us-east-1", endpoint_url=moto_server)
    client.create_secret(Name="app/api", SecretString=json.dumps({"key": "aws-key-31"}))
    client.create_secret(Name="app/plain", SecretString="plain-value-8")
    entry = {
        "name": "aws",
        "kind": "secrets",
        "provider": "aws",
        "endpoint_url": moto_server,
        "map": {"key": "app/api#key", "plain": "app/plain"},
    }
    secrets = secrets_for(tmp_path, [entry])
    assert secrets.entry("aws") == {"key": "aws-key-31", "plain": "plain-value-8"}
    assert secrets.redactor.text("aws-key-31") == MASK
    missing = {**entry, "name": "gone", "map": {"x": "app/missing"}}
    with pytest.raises(KeychainError, match="refused 'app/missing': ResourceNotFoundException"):
        secrets_for(tmp_path, [missing]).entry("gone")
