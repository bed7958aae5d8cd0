"""The embedded credential store: named credentials (`{name, type, data}`) encrypted at rest.

Each credential is one file `NOETL_HOME/credentials/<name>.cred` holding a Fernet token
(AES-128-CBC + HMAC-SHA256). The key comes from `NOETL_CREDENTIAL_KEY`, else from
`NOETL_HOME/credential.key`, generated on first use with mode 0600. Listing shows names
and types, never data.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from .. import keyfile
from ..errors import KeychainError

_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
KNOWN_TYPES = {"postgres", "bearer", "basic", "api_key", "aws", "gcp", "generic", "secret"}


class CredentialStore:
    def __init__(self, root: Path, key: str | None = None):
        self.root = Path(root)
        self._key = key

    def _fernet(self) -> Any:
        from cryptography.fernet import Fernet

        key = self._key or self._local_key()
        try:
            return Fernet(key.encode() if isinstance(key, str) else key)
        except ValueError:
            raise KeychainError(
                "NOETL_CREDENTIAL_KEY is not a valid Fernet key (32 url-safe base64 bytes)",
                code="bad_key",
            ) from None

    def _local_key(self) -> str:
        from cryptography.fernet import Fernet

        return keyfile.ensure(
            self.root.parent / "credential.key", lambda: Fernet.generate_key().decode()
        )

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

    def put_file(self, file: str | Path) -> list[str]:
        path = Path(file)
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise KeychainError(f"{path}: cannot read: {exc.strerror}", code="bad_file") from None
        except ValueError as exc:
            raise KeychainError(f"{path}: not JSON: {exc}", code="bad_file") from None
        items = loaded if isinstance(loaded, list) else [loaded]
        return [
            self.put(item, f"{path}[{i}]" if isinstance(loaded, list) else str(path))
            for i, item in enumerate(items)
        ]

    def put_directory(self, directory: str | Path) -> list[str]:
        names: list[str] = []
        for file in sorted(Path(directory).glob("*.json")):
            names.extend(self.put_file(file))
        return names

    def get(self, name: str) -> dict[str, Any]:
        from cryptography.fernet import InvalidToken

        file = self._file(name)
        if not file.exists():
            known = ", ".join(self.names()) or "none registered"
            raise KeychainError(
                f"unknown credential alias {name!r} (known: {known})", code="unknown_alias"
            )
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

    def describe(self) -> list[tuple[str, str]]:
        return [(name, str(self.get(name).get("type"))) for name in self.names()]


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
