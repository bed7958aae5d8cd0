"""On Cloud Run (`K_SERVICE` set) no setting may fall back to a local value."""

from __future__ import annotations

import pytest

from noetl_core import settings
from noetl_core.errors import ConfigError

pytestmark = pytest.mark.unit

PRODUCTION = {
    "K_SERVICE": "worker",
    "GOOGLE_CLOUD_PROJECT": "acme-prod",
    "NOETL_PAYLOAD_URL": "gs://acme-prod-payloads/payloads",
    "NOETL_WORKER_URL": "https://worker-abc-uc.a.run.app",
    "NOETL_CALLBACK_URL": "https://callback-abc-uc.a.run.app",
    "NOETL_CALLBACK_KEY": "a-secret-from-secret-manager",
    "NOETL_CREDENTIAL_KEY": "a-fernet-key-from-secret-manager",
    "NOETL_TASKS_INVOKER": "noetl-invoker@acme-prod.iam.gserviceaccount.com",
    "NOETL_HOME": "/tmp/noetl",
}


def test_a_complete_production_environment_starts() -> None:
    assert settings.production_problems(PRODUCTION) == []
    settings.require_production(PRODUCTION)


def test_one_message_names_every_missing_variable() -> None:
    with pytest.raises(ConfigError) as refused:
        settings.require_production({"K_SERVICE": "worker"})
    message = str(refused.value)
    assert message.startswith("worker: refusing to start with local settings on Cloud Run")
    for name in settings.PRODUCTION_VARIABLES:
        assert name in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("name", "local"),
    [
        ("GOOGLE_CLOUD_PROJECT", "noetl-local"),
        ("NOETL_PAYLOAD_URL", "file:///tmp/noetl/payloads"),
        ("NOETL_PAYLOAD_URL", "/tmp/payloads"),
        ("NOETL_WORKER_URL", "http://127.0.0.1:0"),
        ("NOETL_CALLBACK_URL", "http://127.0.0.1:0/callbacks"),
        ("NOETL_CALLBACK_URL", "callback"),
        ("NOETL_TASKS_INVOKER", "invoker"),
        ("NOETL_HOME", ".noetl"),
        ("NOETL_HOME", "/var/lib/noetl"),
        ("NOETL_HOME", "/tmp/../etc/noetl"),
    ],
)
def test_a_local_value_is_refused_and_named(name: str, local: str) -> None:
    problems = settings.production_problems({**PRODUCTION, name: local})
    assert [p.split(":", 1)[0] for p in problems] == [name]


def test_outside_cloud_run_the_local_defaults_stay() -> None:
    settings.require_production({})  # no K_SERVICE: the embedded default, a CLI, a test
    assert settings.load({}).project == settings.LOCAL_PROJECT


def test_no_platform_secret_is_listed_as_a_credential() -> None:
    """Credentials live in Secret Manager as `noetl-credential-<name>`: a platform secret
    under that prefix would be listed, and read, as one."""
    import json
    from pathlib import Path

    from noetl_core.keychain.credentials import SECRET_PREFIX

    infra = Path(__file__).resolve().parents[2] / "infra" / "deployment.json"
    declared = json.loads(infra.read_text())["secrets"]
    assert [name for name in declared if name.startswith(SECRET_PREFIX)] == []
