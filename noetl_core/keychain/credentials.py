"""Credential stores: named credentials (`{name, type, data}`) that `auth:` aliases name.

- `CredentialStore`, the embedded default: each credential is one file
  `NOETL_HOME/credentials/<name>.cred` holding a Fernet token (AES-128-CBC +
  HMAC-SHA256). The key comes from `NOETL_CREDENTIAL_KEY`, else from
  `NOETL_HOME/credential.key`, generated on first use with mode 0600.
- `SecretManagerCredentials`, the cloud runtime's: one Secret Manager secret per
  credential, `noetl-credential-<name>`, whose latest version holds the credential's
  JSON (Secret Manager encrypts it at rest and its IAM says who may read it). A function
  instance has no disk that outlives it, so a file store would be empty there.

Both list names and types, never data.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from pathlib import Path
from typing import Any

from .. import keyfile
from ..errors import KeychainError

_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
KNOWN_TYPES = {"postgres", "bearer", "basic", "api_key", "aws", "gcp", "generic", "secret"}


class Credentials:
    """What both stores share: loading credential files into `put`, and describing."""

    def put(self, credential: dict[str, Any], source: str = "<credential>") -> str:
        raise NotImplementedError

    def get(self, name: str) -> dict[str, Any]:
        raise NotImplementedError

    def names(self) -> list[str]:
        raise NotImplementedError

    def put_file(self, file: str | Path) -> list[str]:
        path = Path(file)
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise KeychainError(f"{path}: cannot read: {exc.strerror}", code="bad_file") from None
        except ValueError as exc:
            raise KeychainError(f"{path}: not JSON: {exc}", code="bad_file") from None
        items = loaded if isinstance(loaded, list) else [loaded]
        checked = [
            _check(item, f"{path}[{i}]" if isinstance(loaded, list) else str(path))
            for i, item in enumerate(items)
        ]  # all checked before any is stored: a bad file stores nothing
        return [self.put({"name": n, "type": k, "data": d}, str(path)) for n, k, d in checked]

    def put_directory(self, directory: str | Path) -> list[str]:
        names: list[str] = []
        for file in sorted(Path(directory).glob("*.json")):
            names.extend(self.put_file(file))
        return names

    def describe(self) -> list[tuple[str, str]]:
        return [(name, str(self.get(name).get("type"))) for name in self.names()]

    def _unknown(self, name: str) -> KeychainError:
        known = ", ".join(self.names()) or "none registered"
        return KeychainError(
            f"unknown credential alias {name!r} (known: {known})", code="unknown_alias"
        )


def credential_key(given: str | None, home: Path) -> bytes:
    """The credential key, a Fernet key (32 url-safe base64 bytes): `given`
    (`NOETL_CREDENTIAL_KEY`), else `home/credential.key`, made on first use (mode 0600).
    Stored credentials are encrypted with it, and static keychain values sealed with a
    key derived from it (keychain/sealing.py)."""
    from cryptography.fernet import Fernet

    key = given or keyfile.ensure(home / "credential.key", lambda: Fernet.generate_key().decode())
    try:
        Fernet(key.encode())
    except ValueError:
        raise KeychainError(
            "NOETL_CREDENTIAL_KEY is not a valid Fernet key (32 url-safe base64 bytes)",
            code="bad_key",
        ) from None
    return key.encode()


class CredentialStore(Credentials):
    def __init__(self, root: Path, key: str | None = None):
        self.root = Path(root)
        self._key = key

    def _fernet(self) -> Any:
        from cryptography.fernet import Fernet

        return Fernet(credential_key(self._key, self.root.parent))

    def _file(self, name: str) -> Path:
        if not _NAME.match(name):
            raise KeychainError(
                f"credential name {name!r} must be letters, digits, _ . -", code="bad_name"
            )
        return self.root / f"{name}.cred"

    def put(self, credential: dict[str, Any], source: str = "<credential>") -> str:
        name, kind, data = _check(credential, source)
        self.root.mkdir(parents=True, exist_ok=True)
        token = self._fernet().encrypt(
            json.dumps({"name": name, "type": kind, "data": data}).encode()
        )
        file = self._file(name)
        tmp = file.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(token)
        os.replace(tmp, file)
        return name

    def get(self, name: str) -> dict[str, Any]:
        from cryptography.fernet import InvalidToken

        file = self._file(name)
        if not file.exists():
            raise self._unknown(name)
        try:
            data: dict[str, Any] = json.loads(self._fernet().decrypt(file.read_bytes()))
        except InvalidToken:
            raise KeychainError(
                f"credential {name!r} cannot be decrypted with this key "
                "(NOETL_CREDENTIAL_KEY or credential.key changed?)",
                code="bad_key",
            ) from None
        return data

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.stem for p in self.root.glob("*.cred"))


SECRET_PREFIX = "noetl-credential-"
_SECRET_NAME = re.compile(r"^[A-Za-z0-9_-]{1,200}$")  # Secret Manager's secret id, less prefix


class SecretManagerCredentials(Credentials):
    """One secret per credential in `project`; `client` is a SecretManagerServiceClient
    (made on first use by `connect`, so a block that reads no credential never builds it)."""

    def __init__(self, project: str, connect: Any):
        self.project = project
        self._connect = connect
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = self._connect()
        return self._client

    def _secret(self, name: str) -> str:
        if not _SECRET_NAME.match(name):
            raise KeychainError(
                f"credential name {name!r} must be letters, digits, _ - on Secret Manager",
                code="bad_name",
            )
        return f"projects/{self.project}/secrets/{SECRET_PREFIX}{name}"

    def put(self, credential: dict[str, Any], source: str = "<credential>") -> str:
        from google.api_core import exceptions

        name, kind, data = _check(credential, source)
        secret = self._secret(name)
        with contextlib.suppress(exceptions.AlreadyExists):  # registered before: replaced
            self.client.create_secret(
                parent=f"projects/{self.project}",
                secret_id=secret.rsplit("/", 1)[1],
                secret={"replication": {"automatic": {}}, "labels": {"noetl": "credential"}},
            )
        body = json.dumps({"name": name, "type": kind, "data": data}).encode()
        self.client.add_secret_version(parent=secret, payload={"data": body})
        return name

    def get(self, name: str) -> dict[str, Any]:
        from google.api_core import exceptions

        try:
            answer = self.client.access_secret_version(name=f"{self._secret(name)}/versions/latest")
        except exceptions.NotFound:
            raise self._unknown(name) from None
        except exceptions.GoogleAPICallError as exc:
            raise KeychainError(
                f"credential {name!r}: Secret Manager refused: {type(exc).__name__}",
                code="secret_unavailable",
                retryable=isinstance(exc, exceptions.ServiceUnavailable),
            ) from None
        data: dict[str, Any] = json.loads(answer.payload.data)
        return data

    def names(self) -> list[str]:
        prefix = f"projects/{self.project}/secrets/{SECRET_PREFIX}"
        found = self.client.list_secrets(parent=f"projects/{self.project}")
        return sorted(s.name[len(prefix) :] for s in found if s.name.startswith(prefix))


def _check(credential: Any, source: str) -> tuple[str, str, dict[str, Any]]:
    if not isinstance(credential, dict):
        raise KeychainError(
            f"{source}: a credential is an object {{name, type, data}}", code="bad_credential"
        )
    name, kind, data = credential.get("name"), credential.get("type"), credential.get("data")
    if not isinstance(name, str) or not _NAME.match(name):
        raise KeychainError(
            f"{source}: `name` must be letters, digits, _ . -", code="bad_credential"
        )
    if not isinstance(kind, str):
        raise KeychainError(
            f"{source}: credential {name!r} needs a `type` ({', '.join(sorted(KNOWN_TYPES))})",
            code="bad_credential",
        )
    if not isinstance(data, dict):
        raise KeychainError(
            f"{source}: credential {name!r} needs `data`, an object", code="bad_credential"
        )
    return name, kind, data
