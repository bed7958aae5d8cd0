"""The command bus, catalog and keychain-provider contracts, each run against the embedded
adapter and the Google one (on the emulator stack)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from noetl_core import settings
from noetl_core.catalog import Catalog, CatalogBase
from noetl_core.errors import CatalogError, KeychainError
from noetl_core.keychain import CredentialStore, Sealer, SecretCache, Secrets
from noetl_core.runtime.ports import Note

from ..conftest import EXAMPLES

pytestmark = pytest.mark.contract

NOTES = [Note(f"E{i % 3}", f"c{i}", 1 + i % 2) for i in range(50)]


def received_in_process() -> list[Note]:
    from noetl_core.adapters.inprocess import InProcessBus

    bus = InProcessBus(max_workers=4)
    got: list[Note] = []
    lock = threading.Lock()

    def take(note: Note) -> None:
        with lock:
            got.append(note)

    bus.bind(take)
    bus.publish(NOTES)
    assert bus.wait_idle(10)
    bus.close()
    return got


def received_from_pubsub(stack: Any, notes: list[Note] = NOTES) -> list[Note]:
    from google.cloud import pubsub_v1  # type: ignore[attr-defined]

    from noetl_core.adapters.gcp.pubsub_bus import PubSubBus, decode

    topic = f"bus-{uuid.uuid4().hex[:8]}"
    stack.create_topic(topic)
    subscription = f"{topic}-pull"
    stack.create_subscription(subscription, topic)
    PubSubBus(stack.project, topic, "noetl-dead-letter").publish(notes)
    subscriber = pubsub_v1.SubscriberClient()
    got: list[Note] = []
    deadline = time.monotonic() + 60
    while len(got) < len(notes) and time.monotonic() < deadline:
        answer = subscriber.pull(
            subscription=stack.subscription_path(subscription), max_messages=1000, timeout=5
        )
        got.extend(decode(m.message.data) for m in answer.received_messages)
        if answer.received_messages:
            subscriber.acknowledge(
                subscription=stack.subscription_path(subscription),
                ack_ids=[m.ack_id for m in answer.received_messages],
            )
    return got


@pytest.mark.parametrize("bus", ["in-process", "pubsub"])
def test_every_published_note_is_delivered_intact(bus: str, request: pytest.FixtureRequest) -> None:
    if bus == "pubsub":
        request.getfixturevalue("gcp_env")
        got = received_from_pubsub(request.getfixturevalue("gcp_stack"))
    else:
        got = received_in_process()
    key = lambda n: (n.execution_id, n.command_id, n.attempt)  # noqa: E731
    assert sorted(got, key=key) == sorted(NOTES, key=key)


def test_one_publish_over_pubsubs_1000_message_limit_is_split(gcp_stack: Any) -> None:
    """Pub/Sub refuses a Publish request of more than 1,000 messages (the emulator hangs
    on one): a block issuing 2,500 commands (a wide loop's first wave) publishes them in
    three calls, and every note arrives."""
    notes = [Note("wide", f"c{i}", 1) for i in range(2500)]
    got = received_from_pubsub(gcp_stack, notes)
    assert sorted(n.command_id for n in got) == sorted(n.command_id for n in notes)


def test_pubsub_bus_never_sends_more_than_1000_messages_in_one_call() -> None:
    from noetl_core.adapters.gcp.pubsub_bus import PubSubBus, decode

    calls: list[list[Any]] = []

    class Recording:
        def publish(self, topic: str, messages: list[Any], timeout: float) -> None:
            calls.append(list(messages))

    bus = PubSubBus("p", "t", "dl", publisher=Recording())
    notes = [Note("E", f"c{i}", 1) for i in range(2001)]
    bus.publish(notes)
    assert [len(c) for c in calls] == [1000, 1000, 1]
    assert [decode(m.data) for c in calls for m in c] == notes
    bus.publish([])
    assert len(calls) == 3  # nothing to publish: no call


@pytest.fixture(params=["file", "firestore"])
def catalog(request: pytest.FixtureRequest, tmp_path: Path) -> CatalogBase:
    if request.param == "firestore":
        from noetl_core.adapters.gcp.firestore_catalog import FirestoreCatalog

        conf = settings.load(request.getfixturevalue("gcp_env"))
        prefix = f"c{uuid.uuid4().hex[:8]}"
        sealer = Sealer(Fernet.generate_key)
        return FirestoreCatalog(
            conf.project, prefix, sealer=sealer, shape_file=conf.query_shape_file
        )
    return Catalog(tmp_path / "catalog", Sealer(Fernet.generate_key))


def test_a_playbook_over_a_catalog_document_is_refused_naming_the_limit(
    catalog: CatalogBase, tmp_path: Path
) -> None:
    big = tmp_path / "big.yaml"
    pad = "p" * 1_000_100
    big.write_text(
        "apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {name: big, path: big}\n"
        f'workload: {{pad: "{pad}"}}\nworkflow:\n  - {{step: start, tool: {{kind: noop}}}}\n'
    )
    with pytest.raises(CatalogError, match="over the catalog's limit of 1,000,000 bytes"):
        catalog.register(big)
    assert catalog.versions("big") == []


def test_catalog_versions_are_immutable_and_resolvable(
    catalog: CatalogBase, tmp_path: Path
) -> None:
    hello = EXAMPLES / "hello_world.yaml"
    first = catalog.register(hello)
    assert (first.path, first.version, first.new) == ("examples/hello_world", 1, True)
    assert catalog.register(hello).new is False
    changed = tmp_path / "hello.yaml"
    changed.write_text(hello.read_text().replace("message: Hello", "message: Hi"))
    assert catalog.register(changed).version == 2
    assert catalog.versions("examples/hello_world") == [1, 2]
    assert catalog.resolve("examples/hello_world").playbook.workload["message"] == "Hi"
    assert catalog.resolve("examples/hello_world", 1).playbook.workload["message"] == "Hello"
    assert ("examples/hello_world", [1, 2]) in catalog.entries()
    with pytest.raises(CatalogError, match="has no version 7"):
        catalog.resolve("examples/hello_world", 7)
    with pytest.raises(CatalogError, match="no playbook registered at catalog path 'x/y'"):
        catalog.resolve("x/y")


def test_concurrent_registrations_of_new_text_get_distinct_versions(
    catalog: CatalogBase, tmp_path: Path
) -> None:
    base = (EXAMPLES / "hello_world.yaml").read_text()
    files = []
    for i in range(6):
        file = tmp_path / f"v{i}.yaml"
        file.write_text(base.replace("message: Hello", f"message: Hello{i}"))
        files.append(file)
    versions: list[int] = []
    lock = threading.Lock()

    def register(file: Path) -> None:
        made = catalog.register(file)
        with lock:
            versions.append(made.version)

    threads = [threading.Thread(target=register, args=(f,)) for f in files]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(versions) == list(range(1, 7))


@pytest.mark.parametrize("provider", ["file", "gcp"])
def test_a_secrets_entry_resolves_and_is_masked(
    provider: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    value = f"secret-{provider}-{uuid.uuid4().hex[:6]}"
    if provider == "gcp":
        from emulators.secretmanager import client

        env = request.getfixturevalue("gcp_env")
        monkeypatch = request.getfixturevalue("monkeypatch")
        monkeypatch.setenv("SECRET_MANAGER_EMULATOR_HOST", env["SECRET_MANAGER_EMULATOR_HOST"])
        secrets_client = client(env["SECRET_MANAGER_EMULATOR_HOST"])
        project = env["GOOGLE_CLOUD_PROJECT"]
        name = f"api-{uuid.uuid4().hex[:6]}"
        made = secrets_client.create_secret(
            parent=f"projects/{project}", secret_id=name, secret={"replication": {"automatic": {}}}
        )
        secrets_client.add_secret_version(
            parent=made.name, payload={"data": json.dumps({"key": value}).encode()}
        )
        ref = f"projects/{project}/secrets/{name}/versions/latest#key"
        missing = f"projects/{project}/secrets/absent/versions/latest"
    else:
        (tmp_path / "s.json").write_text(json.dumps({"key": value}))
        ref = f"{tmp_path}/s.json#key"
        missing = str(tmp_path / "absent.txt")
    entries = [
        {"name": "api", "kind": "secrets", "provider": provider, "map": {"key": ref}},
        {"name": "gone", "kind": "secrets", "provider": provider, "map": {"key": missing}},
    ]
    secrets = Secrets(
        execution_id="E",
        entries=entries,
        store=CredentialStore(tmp_path / "c"),
        cache=SecretCache(),
        sealer=Sealer(Fernet.generate_key),
    )
    assert secrets.entry("api") == {"key": value}
    assert secrets.redactor.text(f"token={value}") == "token=***"
    with pytest.raises(KeychainError, match=r"keychain gone\.key"):
        secrets.entry("gone")
