"""The keychain: secrets and credentials resolved inside the block that needs them.

`Secrets` is one block's access: `keychain.<entry>.<field>` in templates (a lazy view,
resolving an entry on first read) and `credential(alias)` for tools' `auth:`. Every value
it hands out goes into the block's `Redactor`, so the runtime masks it in whatever the
block records. Values are cached per execution in memory only (`SecretCache`), never in
the log, the payload store or the environment.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Any

from ..errors import KeychainError
from ..redact import Redactor
from .credentials import Credentials, CredentialStore, SecretManagerCredentials
from .sealing import Sealer

# Fields of a credential that locate or name things rather than prove identity; every
# other field (password, token, key, dsn, ...) is masked. Masking a host or a user name
# would mangle ordinary results that mention them.
NOT_SECRET = frozenset(
    {
        "host",
        "port",
        "user",
        "username",
        "name",
        "database",
        "dbname",
        "db_host",
        "db_port",
        "db_user",
        "db_name",
        "sslmode",
        "region",
        "header",
        "in",
        "endpoint",
        "endpoint_url",
        "type",
        "project",
        "account",
    }
)


TOKEN_KINDS = ("oauth2", "google_id_token")


class SecretCache:
    """Resolved values per execution, and the execution's redactor; in memory only."""

    def __init__(self, executions: int = 256):
        self._data: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._redactors: dict[str, Redactor] = {}
        self._limit = executions
        self._lock = threading.Lock()

    def redactor(self, execution_id: str) -> Redactor:
        """What to mask in everything recorded for this execution (empty: nothing)."""
        found = self._redactors.get(execution_id)  # a dict read needs no lock
        if found is not None:
            return found
        with self._lock:
            found = self._redactors.get(execution_id)
            if found is None:
                found = self._redactors[execution_id] = Redactor()
                if len(self._redactors) > self._limit * 4:
                    self._redactors.pop(next(iter(self._redactors)))
            return found

    def get(self, execution_id: str, key: str) -> Any:
        with self._lock:
            return self._data.get(execution_id, {}).get(key)

    def put(self, execution_id: str, key: str, value: Any) -> None:
        with self._lock:
            self._data.setdefault(execution_id, {})[key] = value
            self._data.move_to_end(execution_id)
            while len(self._data) > self._limit:
                self._data.popitem(last=False)

    def drop(self, execution_id: str) -> None:
        """Forget the values (the redactor stays: late writes are still masked)."""
        with self._lock:
            self._data.pop(execution_id, None)


class Secrets:
    def __init__(
        self,
        *,
        execution_id: str,
        entries: list[dict[str, Any]],
        store: Credentials,
        cache: SecretCache,
        sealer: Sealer,
        workload: Mapping[str, Any] | None = None,
    ):
        self.execution_id = execution_id
        self.workload = workload or {}
        self._resolving: set[str] = set()
        self.sealer = sealer
        self.entries = {e["name"]: e for e in entries if isinstance(e, dict) and "name" in e}
        self.store = store
        self.cache = cache
        self.redactor = cache.redactor(execution_id)

    def credential(self, alias: str) -> dict[str, Any]:
        """A registered credential `{name, type, data}`; its data is masked from now on."""
        if not isinstance(alias, str) or not alias:
            raise KeychainError(
                f"`auth` must name a registered credential, got {alias!r}", code="unknown_alias"
            )
        key = f"credential:{alias}"
        found = self.cache.get(self.execution_id, key)
        if found is None:
            found = self.store.get(alias)
            self.cache.put(self.execution_id, key, found)
        data = found.get("data", {})
        self.redactor.add([v for k, v in data.items() if k.lower() not in NOT_SECRET])
        return dict(found)

    def entry(self, name: str) -> dict[str, Any]:
        if name not in self.entries:
            known = ", ".join(sorted(self.entries)) or "none declared"
            raise KeychainError(
                f"unknown keychain entry {name!r} (declared: {known})", code="unknown_alias"
            )
        key = f"entry:{name}"
        entry = self.entries[name]
        found = self.cache.get(self.execution_id, key)
        now = time.time()
        if found is None or (found[1] is not None and now >= found[1]):
            values, refresh = self._resolve(name, entry, now)
            self.cache.put(self.execution_id, key, (values, refresh))
        else:
            values = found[0]
        if entry.get("kind") in TOKEN_KINDS:
            from . import tokens

            self.redactor.add(tokens.secret_part(values))
        else:
            self.redactor.add(values)
        return dict(values)

    def _resolve(
        self, name: str, entry: dict[str, Any], now: float
    ) -> tuple[dict[str, Any], float | None]:
        from . import providers  # the readers load only when a value is read

        if name in self._resolving:
            raise KeychainError(
                f"keychain entry {name!r} reads itself through its templates",
                code="bad_keychain",
            )
        self._resolving.add(name)
        try:
            values = providers.resolve(
                entry, self.credential, self.sealer.open, self._render, self.redactor.add
            )
        finally:
            self._resolving.discard(name)
        if entry.get("kind") not in TOKEN_KINDS:
            return values, None
        from . import tokens

        return values, tokens.refresh_at(entry, values, now)

    def _render(self, value: Any, where: str) -> Any:
        """An entry's templates (a token entry's fields, a secret's reference): `workload`
        and the other entries (`keychain`)."""
        from .. import templating

        names = {**self.workload, "workload": self.workload, "keychain": self.view()}
        return templating.render(value, names, where)  # workload keys by name, as in steps

    def view(self) -> KeychainView:
        return KeychainView(self)


class KeychainView(Mapping[str, Any]):
    """`{{ keychain.<entry>.<field> }}`: resolves an entry when a template reads it."""

    def __init__(self, secrets: Secrets):
        self._secrets = secrets

    def __getitem__(self, name: str) -> EntryView:
        self._secrets.entry(name)  # raises, naming the entry, when it is unknown
        return EntryView(self._secrets, name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._secrets.entries)

    def __len__(self) -> int:
        return len(self._secrets.entries)


class EntryView(Mapping[str, Any]):
    def __init__(self, secrets: Secrets, name: str):
        self._secrets = secrets
        self._name = name

    def __getitem__(self, field: str) -> Any:
        values = self._secrets.entry(self._name)
        if field not in values:
            raise KeychainError(
                f"keychain entry {self._name!r} has no field {field!r} "
                f"(fields: {', '.join(sorted(values))})",
                code="unknown_alias",
            )
        return values[field]

    def __iter__(self) -> Iterator[str]:
        return iter(self._secrets.entry(self._name))

    def __len__(self) -> int:
        return len(self._secrets.entry(self._name))


__all__ = [
    "CredentialStore",
    "Credentials",
    "KeychainView",
    "Sealer",
    "SecretCache",
    "SecretManagerCredentials",
    "Secrets",
]
