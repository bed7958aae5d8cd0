"""The keychain: credential store at rest, providers, lazy views, and the redactor."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa
import pytest
from cryptography.fernet import Fernet

from noetl_core import templating
from noetl_core.errors import KeychainError, PlaybookError
from noetl_core.keychain import CredentialStore, Sealer, SecretCache, Secrets
from noetl_core.playbook import load_text
from noetl_core.redact import MASK, Redactor

pytestmark = pytest.mark.unit
SEALER = Sealer(Fernet.generate_key)

PG = {
    "name": "pg_local",
    "type": "postgres",
    "data": {
        "db_host": "127.0.0.1",
        "db_port": 5432,
        "db_user": "app",
        "db_password": "s3cret-pw",
        "db_name": "app",
    },
}


def test_credentials_are_encrypted_at_rest_and_listed_without_values(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path / "credentials")
    assert store.put(PG) == "pg_local"
    raw = (tmp_path / "credentials" / "pg_local.cred").read_bytes()
    assert b"s3cret-pw" not in raw and b"db_password" not in raw
    assert oct((tmp_path / "credential.key").stat().st_mode)[-3:] == "600"
    assert store.get("pg_local")["data"]["db_password"] == "s3cret-pw"
    assert store.describe() == [("pg_local", "postgres")]


def test_a_key_from_the_environment_setting_is_used(tmp_path: Path) -> None:
    from cryptography.fernet import Fernet

    key = Fernet.generate_key().decode()
    CredentialStore(tmp_path / "c", key).put(PG)
    assert not (tmp_path / "credential.key").exists()
    assert CredentialStore(tmp_path / "c", key).get("pg_local")["type"] == "postgres"
    with pytest.raises(KeychainError, match="cannot be decrypted"):
        CredentialStore(tmp_path / "c", Fernet.generate_key().decode()).get("pg_local")


def test_unknown_alias_names_it_and_the_known_ones(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path / "credentials")
    store.put(PG)
    with pytest.raises(
        KeychainError, match=r"unknown credential alias 'pg_prod' \(known: pg_local\)"
    ):
        store.get("pg_prod")


def test_register_a_file_and_a_directory(tmp_path: Path) -> None:
    folder = tmp_path / "creds"
    folder.mkdir()
    (folder / "a.json").write_text(json.dumps(PG))
    (folder / "b.json").write_text(
        json.dumps([{"name": "api", "type": "bearer", "data": {"token": "tok-123"}}])
    )
    store = CredentialStore(tmp_path / "credentials")
    assert store.put_directory(folder) == ["pg_local", "api"]
    assert store.names() == ["api", "pg_local"]
    (folder / "bad.json").write_text("{not json")
    with pytest.raises(KeychainError, match=r"bad\.json: not JSON"):
        store.put_file(folder / "bad.json")
    with pytest.raises(KeychainError, match="needs a `type`"):
        store.put({"name": "x", "data": {}})


def secrets_for(tmp_path: Path, entries: list[dict[str, object]]) -> Secrets:
    store = CredentialStore(tmp_path / "credentials")
    store.put(PG)
    return Secrets(
        execution_id="E", entries=entries, store=store, cache=SecretCache(), sealer=SEALER
    )


def test_keychain_entries_resolve_lazily_and_are_masked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "token.txt").write_text("file-token-42\n")
    (tmp_path / "secret.json").write_text(json.dumps({"api": {"key": "json-key-7"}}))
    monkeypatch.setenv("NOETL_TEST_API_KEY", "env-key-99")
    secrets = secrets_for(
        tmp_path,
        [
            {
                "name": "env",
                "kind": "secrets",
                "provider": "env",
                "map": {"key": "NOETL_TEST_API_KEY"},
            },
            {
                "name": "files",
                "kind": "secrets",
                "provider": "file",
                "map": {
                    "token": str(tmp_path / "token.txt"),
                    "key": f"{tmp_path}/secret.json#api.key",
                },
            },
            {"name": "fixed", "kind": "static", "map": {"region": "eu-west1"}},
            {"name": "svc", "kind": "bearer", "token": "bearer-tok-1"},
            {"name": "db", "kind": "credential", "alias": "pg_local"},
        ],
    )
    names = {"keychain": secrets.view()}
    assert not secrets.redactor  # nothing resolved yet
    rendered = templating.render(
        {
            "a": "{{ keychain.env.key }}",
            "b": "{{ keychain.files.token }}",
            "c": "{{ keychain.files.key }}",
            "d": "{{ keychain.fixed.region }}",
            "e": "Bearer {{ keychain.svc.token }}",
            "f": "{{ keychain.db.db_password }}",
        },
        names,
    )
    assert rendered == {
        "a": "env-key-99",
        "b": "file-token-42",
        "c": "json-key-7",
        "d": "eu-west1",
        "e": "Bearer bearer-tok-1",
        "f": "s3cret-pw",
    }
    assert secrets.redactor.text(json.dumps(rendered)).count(MASK) == 6


def test_unknown_entry_or_field_is_an_error_naming_it(tmp_path: Path) -> None:
    secrets = secrets_for(tmp_path, [{"name": "svc", "kind": "bearer", "token": "bearer-tok-1"}])
    names = {"keychain": secrets.view()}
    with pytest.raises(Exception, match="unknown keychain entry 'nope'"):
        templating.render("{{ keychain.nope.token }}", names)
    with pytest.raises(Exception, match="has no field 'secret'"):
        templating.render("{{ keychain.svc.secret }}", names)


def test_missing_env_variable_names_entry_field_and_variable_not_a_value(tmp_path: Path) -> None:
    secrets = secrets_for(
        tmp_path,
        [
            {
                "name": "env",
                "kind": "secrets",
                "provider": "env",
                "map": {"key": "NOETL_UNSET_VAR_X"},
            }
        ],
    )
    with pytest.raises(
        KeychainError, match=r"keychain env.key: environment variable NOETL_UNSET_VAR_X is not set"
    ):
        secrets.entry("env")


def test_values_are_cached_per_execution(tmp_path: Path) -> None:
    path = tmp_path / "rot.txt"
    path.write_text("first-value")
    cache = SecretCache()
    store = CredentialStore(tmp_path / "credentials")
    entry = {"name": "f", "kind": "secrets", "provider": "file", "map": {"v": str(path)}}
    one = Secrets(execution_id="E1", entries=[entry], store=store, cache=cache, sealer=SEALER)
    assert one.entry("f") == {"v": "first-value"}
    path.write_text("second-value")
    again = Secrets(execution_id="E1", entries=[entry], store=store, cache=cache, sealer=SEALER)
    assert again.entry("f") == {"v": "first-value"}  # same execution: cached
    other = Secrets(execution_id="E2", entries=[entry], store=store, cache=cache, sealer=SEALER)
    assert other.entry("f") == {"v": "second-value"}
    cache.drop("E1")
    assert Secrets(
        execution_id="E1", entries=[entry], store=store, cache=cache, sealer=SEALER
    ).entry("f") == {"v": "second-value"}


def test_playbook_keychain_entries_are_validated() -> None:
    text = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: k}
keychain:
  - {name: a, kind: secrets, provider: vault, map: {x: y}}
  - {name: b, kind: bearer}
  - {name: a, kind: static, map: {}}
workflow:
  - step: start
    tool: {kind: noop}
"""
    with pytest.raises(PlaybookError) as caught:
        load_text(text, "pb.yaml")
    message = caught.value.message
    assert "pb.yaml:6: keychain[0].provider: expected one of env, file, aws, gcp" in message
    assert "pb.yaml:7: keychain[1].token: `bearer` needs `token`" in message
    assert "keychain[2].name: keychain entry 'a' is declared twice" in message


def test_redactor_masks_strings_structures_and_tables() -> None:
    redactor = Redactor()
    assert redactor.scrub({"a": "x"}) == {"a": "x"}
    redactor.add({"pw": "hunter22", "port": 5432}, "ab")
    assert redactor.text("login hunter22!") == f"login {MASK}!"
    assert redactor.scrub({"k": ["hunter22", 5432, {"hunter22": 1}]}) == {
        "k": [MASK, 5432, {MASK: 1}]
    }
    assert redactor.text("5432 ab") == "5432 ab"  # numbers and tiny values are not masked
    table = pa.table({"s": ["x hunter22 y", "ok"], "n": [1, 2]})
    masked = redactor.scrub(table)
    assert masked.column("s").to_pylist() == [f"x {MASK} y", "ok"]
    assert masked.column("n").to_pylist() == [1, 2]


def test_redactor_masks_the_longest_secret_first() -> None:
    redactor = Redactor()
    redactor.add("abc123", "abc123-extended")
    assert redactor.text("abc123-extended and abc123") == f"{MASK} and {MASK}"


def test_no_secret_in_the_process_environment_after_resolution(tmp_path: Path) -> None:
    secrets = secrets_for(tmp_path, [{"name": "db", "kind": "credential", "alias": "pg_local"}])
    secrets.entry("db")
    assert all("s3cret-pw" not in value for value in os.environ.values())


STATIC_TEXT = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: s}
keychain:
  - {name: api, kind: static, map: {token: "tok-1", retries: 3}}   # stays
  - name: db
    kind: static
    map:
      password: |
        two
        lines
      options:
        sslmode: require
  - {name: other, kind: bearer, token: not-static}
workflow:
  - step: start
    tool: {kind: noop}
"""


def test_sealing_replaces_static_values_in_place_and_opens_them_again() -> None:
    loaded = load_text(STATIC_TEXT, "pb.yaml")
    sealed = SEALER.seal(loaded)
    text = sealed.source
    for plain in ("tok-1", "two", "require"):
        assert plain not in text
    assert "not-static" in text and "# stays" in text
    assert text.count("\n") == STATIC_TEXT.count("\n")  # every later line where it was
    assert SEALER.seal(sealed) == sealed and SEALER.seal(loaded) == sealed  # deterministic
    again = load_text(text, "pb.yaml")
    secrets = Secrets(
        execution_id="E",
        entries=again.playbook.keychain,
        store=CredentialStore(Path("/nonexistent")),
        cache=SecretCache(),
        sealer=SEALER,
    )
    assert secrets.entry("api") == {"token": "tok-1", "retries": 3}
    assert secrets.entry("db") == {"password": "two\nlines\n", "options": {"sslmode": "require"}}


def test_a_playbook_without_static_values_needs_no_key() -> None:
    def no_key() -> bytes:
        raise AssertionError("the key was asked for")

    sealed = load_text(SEALER.seal(load_text(STATIC_TEXT, "pb.yaml")).source, "pb.yaml")
    assert Sealer(no_key).seal(sealed) is sealed  # its values are sealed already
    without_keychain = (
        STATIC_TEXT.split("keychain:")[0] + "workflow:" + STATIC_TEXT.split("workflow:")[1]
    )
    loaded = load_text(without_keychain, "pb.yaml")
    assert Sealer(no_key).seal(loaded) is loaded


def test_a_sealed_value_does_not_open_with_another_key() -> None:
    sealed = load_text(SEALER.seal(load_text(STATIC_TEXT, "pb.yaml")).source, "pb.yaml")
    token = sealed.playbook.keychain[0]["map"]["token"]
    with pytest.raises(KeychainError, match=r"keychain api.token: the sealed value does not open"):
        Sealer(Fernet.generate_key).open(token, "keychain api.token")


def test_a_static_value_behind_an_anchor_is_refused_rather_than_stored_plain() -> None:
    text = STATIC_TEXT.replace(
        "metadata: {name: s}", 'metadata: {name: s}\nworkload: {tok: &tok "tok-1"}'
    ).replace('token: "tok-1"', "token: *tok")
    with pytest.raises(KeychainError, match="cannot seal its static keychain values in place"):
        SEALER.seal(load_text(text, "pb.yaml"))
