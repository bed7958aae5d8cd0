"""Where keychain entries take their values from.

Entry forms (a playbook's `keychain:` list):

    {name, kind: secrets, provider: env,  map: {field: ENV_VAR}}
    {name, kind: secrets, provider: file, map: {field: /path/to/file[#json.key]}}
    {name, kind: secrets, provider: aws,  map: {field: secret-id[#json.key]}, region, endpoint_url}
    {name, kind: secrets, provider: gcp,  map: {field: projects/p/secrets/s/versions/v}}
    {name, kind: static,  map: {field: value}}   (values sealed in stored texts: sealing.py)
    {name, kind: bearer,  token: value}
    {name, kind: credential, alias: registered-credential-name}
    {name, kind: oauth2, endpoint, data, ...}            (tokens.py)
    {name, kind: google_id_token, target_audience, ...}  (tokens.py)

Client libraries (boto3, google-cloud-secret-manager) are imported only when an entry
that needs them is read.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import settings
from ..errors import KeychainError
from ..playbook.keychain import KINDS, PROVIDERS, problems  # re-exported

__all__ = ["KINDS", "PROVIDERS", "problems", "resolve", "secret_manager"]


def resolve(
    entry: dict[str, Any],
    credential: Callable[[str], dict[str, Any]],
    open_static: Callable[[Any, str], Any],
    render: Callable[[Any, str], Any] | None = None,
    mask: Callable[..., None] | None = None,
) -> dict[str, Any]:
    """Every field of one entry, read now (`open_static`: a static value as written,
    opened when it was sealed; `render`: a token entry's templates, which read `workload`
    and other entries; `mask`: values to mask that the entry's fields do not show)."""
    kind = entry["kind"]
    if kind in ("oauth2", "google_id_token"):
        from . import tokens

        render_with = render or (lambda value, where: value)
        if kind == "oauth2":
            return tokens.oauth2(
                entry, credential, render_with, mask or (lambda *v: None), open_static
            )
        return tokens.google_id_token(entry, credential, render_with, _secret_version)
    if kind == "static":
        where = f"keychain {entry['name']}"
        return {f: open_static(v, f"{where}.{f}") for f, v in entry["map"].items()}
    if kind == "bearer":
        return {"token": entry["token"]}
    if kind == "credential":
        found = credential(entry["alias"])
        return {**found.get("data", {}), "type": found.get("type")}
    reader = _READERS[entry["provider"]]
    out = {}
    for field, ref in entry["map"].items():  # a reference may be a template (`{{ path }}`)
        if render is not None and isinstance(ref, str) and "{{" in ref:
            ref = render(ref, f"keychain {entry['name']}.map.{field}")
        out[field] = reader(entry, field, str(ref))
    return out


def _split(ref: str) -> tuple[str, str | None]:
    base, _, key = ref.partition("#")
    return base, key or None


def _pick(text: str, key: str | None, where: str) -> str:
    if key is None:
        return text
    try:
        value: Any = json.loads(text)
        for part in key.split("."):
            value = value[part]
    except (ValueError, KeyError, TypeError):
        raise KeychainError(
            f"{where}: no JSON field {key!r} in the secret", code="secret_unavailable"
        ) from None
    return value if isinstance(value, str) else json.dumps(value)


def _env(entry: dict[str, Any], field: str, ref: str) -> str:
    value = settings.environ(ref)
    if value is None:
        raise KeychainError(
            f"keychain {entry['name']}.{field}: environment variable {ref} is not set",
            code="secret_unavailable",
        )
    return value


def _file(entry: dict[str, Any], field: str, ref: str) -> str:
    path, key = _split(ref)
    where = f"keychain {entry['name']}.{field}"
    try:
        text = Path(path).read_text(encoding="utf-8").rstrip("\n")
    except OSError as exc:
        raise KeychainError(
            f"{where}: cannot read {path}: {exc.strerror}", code="secret_unavailable"
        ) from None
    return _pick(text, key, where)


def _aws(entry: dict[str, Any], field: str, ref: str) -> str:
    import boto3
    import botocore.exceptions

    secret_id, key = _split(ref)
    where = f"keychain {entry['name']}.{field}"
    client = boto3.client(
        "secretsmanager",
        region_name=entry.get("region", "us-east-1"),
        endpoint_url=entry.get("endpoint_url"),
    )
    try:
        answer = client.get_secret_value(SecretId=secret_id)
    except botocore.exceptions.ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "error")
        raise KeychainError(
            f"{where}: AWS Secrets Manager refused {secret_id!r}: {code}", code="secret_unavailable"
        ) from None
    except botocore.exceptions.BotoCoreError as exc:
        raise KeychainError(
            f"{where}: AWS Secrets Manager unreachable: {type(exc).__name__}",
            code="secret_unavailable",
            retryable=True,
        ) from None
    return _pick(str(answer.get("SecretString", "")), key, where)


def _gcp(entry: dict[str, Any], field: str, ref: str) -> str:
    name, key = _split(ref)
    where = f"keychain {entry['name']}.{field}"
    client = secret_manager()
    try:
        answer = client.access_secret_version(name=name)
    except Exception as exc:  # the client raises google.api_core exceptions
        raise KeychainError(
            f"{where}: Secret Manager refused {name!r}: {type(exc).__name__}",
            code="secret_unavailable",
        ) from None
    return _pick(answer.payload.data.decode(), key, where)


def _secret_version(name: str, where: str) -> str:
    """The text of a Secret Manager version (`projects/p/secrets/s/versions/v`)."""
    return _gcp(
        {"name": where.removeprefix("keychain ").split(".")[0]}, "service_account_secret", name
    )


def secret_manager() -> Any:
    """The Secret Manager client; against the local emulator when one is configured."""
    from google.cloud import secretmanager  # type: ignore[attr-defined]

    host = settings.load().secret_manager_host
    if host is None:
        return secretmanager.SecretManagerServiceClient()
    import grpc
    from google.cloud.secretmanager_v1.services.secret_manager_service import transports

    channel = grpc.insecure_channel(host)
    transport = transports.SecretManagerServiceGrpcTransport(channel=channel)
    return secretmanager.SecretManagerServiceClient(transport=transport)


_READERS: dict[str, Callable[[dict[str, Any], str, str], str]] = {
    "env": _env,
    "file": _file,
    "aws": _aws,
    "gcp": _gcp,
}
