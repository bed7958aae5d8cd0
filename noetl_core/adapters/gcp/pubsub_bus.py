"""The command bus on Pub/Sub: thin notes `{execution_id, command_id, attempt}`.

`publish` waits until Pub/Sub has every note (a block releases its delivery only after
its successors are published), so a crash after it loses nothing. Commands that keep
crashing are sent to the dead-letter topic with their cause.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from ...runtime.ports import Note

PUBLISH_TIMEOUT = 30.0


def encode(note: Note) -> bytes:
    body = {
        "execution_id": note.execution_id,
        "command_id": note.command_id,
        "attempt": note.attempt,
    }
    return json.dumps(body, separators=(",", ":")).encode()


def decode(data: bytes) -> Note:
    body = json.loads(data)
    return Note(str(body["execution_id"]), str(body["command_id"]), int(body.get("attempt", 1)))


MAX_MESSAGES = 1000  # per Publish request, Pub/Sub's limit


class PubSubBus:
    """Publishes with the generated (unbatched) Pub/Sub client: one Publish call per
    block, answered once Pub/Sub stores every message. The client is built on first use:
    a worker's first block does not wait for the batching publisher's machinery."""

    def __init__(
        self,
        project: str,
        topic: str,
        dead_letter_topic: str,
        publisher: Any = None,
        emulator_host: str | None = None,
    ):
        self._client = publisher
        self._emulator_host = emulator_host or os.environ.get("PUBSUB_EMULATOR_HOST")
        self.topic = f"projects/{project}/topics/{topic}"
        self.dead_letter_topic = f"projects/{project}/topics/{dead_letter_topic}"

    @property
    def client(self) -> Any:
        if self._client is None:
            from google.pubsub_v1.services.publisher import PublisherClient, transports

            if self._emulator_host:
                import grpc

                channel = grpc.insecure_channel(self._emulator_host)
                transport = transports.PublisherGrpcTransport(channel=channel)
                self._client = PublisherClient(transport=transport)
            else:
                self._client = PublisherClient()
        return self._client

    def publish(self, notes: Sequence[Note]) -> None:
        """All of a block's notes, in Publish calls of at most 1,000 messages, returned
        once Pub/Sub has them all."""
        from google.pubsub_v1 import PubsubMessage

        messages = [PubsubMessage(data=encode(note)) for note in notes]
        for first in range(0, len(messages), MAX_MESSAGES):
            self.client.publish(
                topic=self.topic,
                messages=messages[first : first + MAX_MESSAGES],
                timeout=PUBLISH_TIMEOUT,
            )

    def dead_letter(self, note: Note, cause: str) -> None:
        self.dead_letter_raw(encode(note), cause)

    def dead_letter_raw(self, data: bytes, cause: str, **attributes: str) -> None:
        """Park a message nobody can act on in the dead-letter topic, with its cause."""
        from google.pubsub_v1 import PubsubMessage

        message = PubsubMessage(data=data, attributes={**attributes, "cause": cause[:1000]})
        self.client.publish(
            topic=self.dead_letter_topic, messages=[message], timeout=PUBLISH_TIMEOUT
        )
