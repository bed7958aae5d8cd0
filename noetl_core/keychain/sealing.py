"""Static keychain values, sealed wherever a playbook's text is stored.

`keychain: [{name, kind: static, map: {field: value}}]` writes a secret into the playbook
itself, and the playbook's text is stored: in each execution's start entry (any process
may have to run its blocks) and in the catalog. Before either stores it, every static
value is replaced, in the text and at the same place, by a sealed token
(`"noetl-sealed:<base64url>"`); lines and comments stay where they were, so errors still
name the right line. A token is opened only when a block reads its keychain entry.

Sealing is AES-SIV (authenticated, deterministic) under a key derived with HKDF-SHA256
from the credential key (`NOETL_CREDENTIAL_KEY`, else `NOETL_HOME/credential.key`). Being
deterministic, the same text seals to the same text: a playbook keeps one digest, and
registering it again adds no catalog version. (It also shows when two tokens hold the
same value; nothing else about the value.)
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import yaml

from ..errors import KeychainError
from .credentials import credential_key

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESSIV

    from ..playbook.loader import LoadedPlaybook
    from ..settings import Settings

PREFIX = "noetl-sealed:"
_INFO = b"noetl keychain static values"


def is_sealed(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


def has_plain_values(keychain: list[dict[str, Any]]) -> bool:
    """Whether any static entry (or secret form field of an oauth2 entry) still holds a
    value in the clear."""
    return any(
        not all(is_sealed(value) for value in _sealable(entry).values()) for entry in keychain
    )


def _sealable(entry: Any) -> dict[str, Any]:
    """The values of an entry that are sealed where its playbook is stored: a static
    entry's `map`; an oauth2 entry's secret form fields (`data.client_secret`, ...) written
    in the clear, not templates (a template reads another entry, sealed or read there)."""
    if _is_static(entry):
        return dict(entry["map"])
    if _is_oauth2(entry):
        return {k: v for k, v in entry["data"].items() if _secret_field(k, v)}
    return {}


def _is_oauth2(entry: Any) -> bool:
    return (
        isinstance(entry, dict)
        and entry.get("kind") == "oauth2"
        and isinstance(entry.get("data"), dict)
    )


def _secret_field(key: Any, value: Any) -> bool:
    from .tokens import PUBLIC_DATA

    if str(key) in PUBLIC_DATA or not isinstance(value, str):
        return False
    return is_sealed(value) or ("{{" not in value and "{%" not in value)


class Sealer:
    """Seals static values in playbook texts and opens them again. `key` gives the
    credential key; it is asked for only when a value is sealed or opened, so a playbook
    without static values needs no key."""

    def __init__(self, key: Callable[[], bytes]):
        self._key = key
        self._cipher: AESSIV | None = None

    def _aead(self) -> AESSIV:
        if self._cipher is None:
            from cryptography.hazmat.primitives import hashes
            from cryptography.hazmat.primitives.ciphers.aead import AESSIV
            from cryptography.hazmat.primitives.kdf.hkdf import HKDF

            master = base64.urlsafe_b64decode(self._key())
            derive = HKDF(algorithm=hashes.SHA256(), length=64, salt=None, info=_INFO)
            self._cipher = AESSIV(derive.derive(master))
        return self._cipher

    def seal(self, loaded: LoadedPlaybook) -> LoadedPlaybook:
        """`loaded` with its text's static values sealed (itself when none is in the clear)."""
        if not has_plain_values(loaded.playbook.keychain):
            return loaded
        return dataclasses.replace(loaded, source=self.seal_text(loaded.source, loaded.file))

    def seal_text(self, text: str, file: str) -> str:
        """The text with each static value still in the clear replaced by its token, at
        its place: every later line stays where it was. Both texts are parsed again and
        must say the same once opened, so a value that cannot be replaced in place (an
        anchor shared with another part of the playbook) is refused, never stored."""
        pieces: list[str] = []
        last = 0
        for start, end, value in _static_values(text):
            sealed_value = self._aead().encrypt(_json(value), None)
            token = PREFIX + base64.urlsafe_b64encode(sealed_value).decode()
            pieces += [text[last:start], json.dumps(token)]
            pieces.append("\n" * text.count("\n", start, end))  # later lines stay put
            last = end
        sealed = "".join([*pieces, text[last:]])
        if self._opened(_parsed(sealed)) != self._opened(_parsed(text)):
            raise KeychainError(
                f"{file}: cannot seal its static keychain values in place; write each "
                "as a plain or quoted value of its own (no anchors)",
                code="bad_keychain",
            )
        return sealed

    def open(self, value: Any, where: str) -> Any:
        """A static value as written: a sealed token opened, anything else as it is."""
        if not is_sealed(value):
            return value
        from cryptography.exceptions import InvalidTag

        try:
            data = self._aead().decrypt(base64.urlsafe_b64decode(value[len(PREFIX) :]), None)
        except (InvalidTag, binascii.Error, ValueError):
            raise KeychainError(
                f"{where}: the sealed value does not open with this credential key "
                "(NOETL_CREDENTIAL_KEY or credential.key changed?)",
                code="bad_key",
            ) from None
        return json.loads(data)

    def _opened(self, data: Any) -> Any:
        """A parsed playbook with its keychain's sealed values opened (to compare)."""
        if not isinstance(data, dict) or not isinstance(data.get("keychain"), list):
            return data
        entries = [
            {**entry, "map": {k: self.open(v, "") for k, v in entry["map"].items()}}
            if _is_static(entry)
            else {**entry, "data": {k: self.open(v, "") for k, v in entry["data"].items()}}
            if _is_oauth2(entry)
            else entry
            for entry in data["keychain"]
        ]
        return {**data, "keychain": entries}


def for_settings(settings: Settings) -> Sealer:
    """The sealer of this configuration's credential key."""
    return Sealer(lambda: credential_key(settings.credential_key, settings.home))


def _parsed(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return None


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), default=str).encode()


def _is_static(entry: Any) -> bool:
    return (
        isinstance(entry, dict)
        and entry.get("kind") == "static"
        and isinstance(entry.get("map"), dict)
    )


def _static_values(text: str) -> list[tuple[int, int, Any]]:
    """(start, end, value) of each static value still in the clear, in text order."""
    loader = yaml.SafeLoader(text)
    try:
        return list(_walk_static(loader, text))
    finally:
        loader.dispose()


def _walk_static(loader: yaml.SafeLoader, text: str) -> Iterator[tuple[int, int, Any]]:
    keychain = _child(loader.get_single_node(), "keychain")
    if not isinstance(keychain, yaml.SequenceNode):
        return
    for entry in keychain.value:
        kind = _child(entry, "kind")
        if not isinstance(kind, yaml.ScalarNode) or kind.value not in ("static", "oauth2"):
            continue
        fields = _child(entry, "map" if kind.value == "static" else "data")
        if not isinstance(fields, yaml.MappingNode):
            continue
        for key, node in fields.value:
            value = loader.construct_object(node, deep=True)
            if kind.value == "oauth2" and not (
                isinstance(key, yaml.ScalarNode) and _secret_field(key.value, value)
            ):
                continue
            if not is_sealed(value):
                start, end = node.start_mark.index, node.end_mark.index
                # a block collection ends on the next line's indentation: keep it there
                yield start, start + len(text[start:end].rstrip(" ")), value


def _child(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    found: yaml.Node | None = None
    for key_node, value_node in node.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
            found = value_node
    return found
