"""The platform's own secrets (infra/deployment.json "secrets") read from Secret Manager
by a client of a deployment, without the keychain: `noetl token create --target gcp`
signs with `noetl-gateway-key`, the value the deployed functions get as
`NOETL_GATEWAY_KEY` (their `secret_env`). Against the emulator stack when
`SECRET_MANAGER_EMULATOR_HOST` is set.
"""

from __future__ import annotations

from typing import Any

from .errors import ConfigError
from .settings import Settings

GATEWAY_KEY = "noetl-gateway-key"
TIMEOUT = 20.0  # seconds one read may take before it is given up


def client(conf: Settings) -> Any:
    """A Secret Manager client: on the emulator's insecure channel when one is named."""
    from google.cloud import secretmanager  # type: ignore[attr-defined]

    if conf.secret_manager_host is None:
        return secretmanager.SecretManagerServiceClient()
    import grpc
    from google.cloud.secretmanager_v1.services.secret_manager_service import transports

    channel = grpc.insecure_channel(conf.secret_manager_host)
    transport = transports.SecretManagerServiceGrpcTransport(channel=channel)
    return secretmanager.SecretManagerServiceClient(transport=transport)


def read(conf: Settings, name: str, target: str) -> str:
    """The latest version of platform secret `name` in the project; one ConfigError line
    when there are no credentials, no such secret, or Secret Manager does not answer."""
    from google.api_core import exceptions as gexc
    from google.auth.exceptions import DefaultCredentialsError

    if target == "emulators" and conf.secret_manager_host is None:
        raise ConfigError(
            "--target emulators: SECRET_MANAGER_EMULATOR_HOST not set; start the stack with "
            "`make emulators` and export the environment it prints"
        )
    where = f"projects/{conf.project}/secrets/{name}/versions/latest"
    try:
        answer = client(conf).access_secret_version(name=where, timeout=TIMEOUT)
    except DefaultCredentialsError:
        raise ConfigError(
            f"--target {target}: no Google credentials found (run `gcloud auth "
            "application-default login` or set GOOGLE_APPLICATION_CREDENTIALS)"
        ) from None
    except gexc.NotFound:
        raise ConfigError(
            f"--target {target}: no secret {name!r} in project {conf.project} (is NoETL "
            "deployed there?)"
        ) from None
    except gexc.GoogleAPIError as exc:
        raise ConfigError(f"--target {target}: cannot read secret {name!r}: {exc}") from None
    value: str = answer.payload.data.decode().strip()
    if not value:
        raise ConfigError(f"--target {target}: secret {name!r} is empty")
    return value
