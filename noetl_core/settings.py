"""The one configuration module: every environment variable NoETL reads, listed once.

| variable | default | what it does |
|---|---|---|
| `NOETL_HOME` | `./.noetl` | where the embedded runtime keeps its log, payloads, catalog |
| `NOETL_INLINE_LIMIT` | `65536` | results whose JSON is larger (bytes) go to the payload store |
| `NOETL_WORKERS` | `64` | most threads of the in-process bus (two per core, more under I/O) |
| `NOETL_LEASE_SECONDS` | `300` | how long a claim on a command stays alive |
| `NOETL_SQLITE_SYNC` | `FULL` | SQLite `synchronous` pragma for the event log (FULL or NORMAL) |
| `NOETL_CREDENTIAL_KEY` | generated | Fernet key of stored credentials (else `credential.key`) |

Keychain entries with `provider: env` read the variables they name through `environ()`.

Nothing else in the project reads `os.environ`; code asks `load()` for a frozen
`Settings` object instead.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from .errors import ConfigError


@dataclass(frozen=True)
class Settings:
    home: Path
    inline_limit: int = 64 * 1024
    workers: int = 64
    lease_seconds: float = 300.0
    sqlite_sync: str = "FULL"
    credential_key: str | None = None

    @property
    def log_path(self) -> Path:
        return self.home / "events.sqlite"

    @property
    def payload_url(self) -> str:
        return (self.home / "payloads").resolve().as_uri()

    @property
    def catalog_path(self) -> Path:
        return self.home / "catalog"

    @property
    def credentials_path(self) -> Path:
        return self.home / "credentials"

    def with_home(self, home: Path) -> Settings:
        return replace(self, home=home)


def _int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive, got {value}")
    return value


def load(env: dict[str, str] | None = None) -> Settings:
    """Read the settings from the environment (or the mapping given, for tests)."""
    source = dict(os.environ) if env is None else env
    sync = source.get("NOETL_SQLITE_SYNC", "FULL").upper()
    if sync not in ("FULL", "NORMAL"):
        raise ConfigError(f"NOETL_SQLITE_SYNC must be FULL or NORMAL, got {sync!r}")
    return Settings(
        home=Path(source.get("NOETL_HOME") or ".noetl"),
        inline_limit=_int(source, "NOETL_INLINE_LIMIT", 64 * 1024),
        workers=_int(source, "NOETL_WORKERS", 64),
        lease_seconds=float(_int(source, "NOETL_LEASE_SECONDS", 300)),
        sqlite_sync=sync,
        credential_key=source.get("NOETL_CREDENTIAL_KEY") or None,
    )


def environ(name: str) -> str | None:
    """One environment variable, for keychain entries that name one (`provider: env`)."""
    return os.environ.get(name)
