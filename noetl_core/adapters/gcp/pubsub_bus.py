"""The command bus on Pub/Sub: thin notes `{execution_id, command_id, attempt}`.

`publish` waits until Pub/Sub has every note (a block releases its delivery only after
its successors are published), so a crash after it loses nothing. Commands that keep
crashing are sent to the dead-letter topic with their cause.
"""

from __future__ import annotations

import json
import warnings
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


class PubSubBus:
    def __init__(self, project: str, topic: str, dead_letter_topic: str, publisher: Any = None):
        from google.cloud import pubsub_v1  # type: ignore[attr-defined]

        self._publisher = publisher or pubsub_v1.PublisherClient()
        with warnings.catch_warnings():  # the unbatched client, for one call per block
            warnings.simplefilter("ignore", DeprecationWarning)
            self._direct = self._publisher.api
        self.topic = self._publisher.topic_path(project, topic)
        self.dead_letter_topic = self._publisher.topic_path(project, dead_letter_topic)

    def publish(self, notes: Sequence[Note]) -> None:
        """All of a block's notes in one Publish call, returned once Pub/Sub has them."""
        from google.pubsub_v1 import PubsubMessage

        if not notes:
            return
        messages = [PubsubMessage(data=encode(note)) for note in notes]
        self._direct.publish(topic=self.topic, messages=messages, timeout=PUBLISH_TIMEOUT)

    def dead_letter(self, note: Note, cause: str) -> None:
        future = self._publisher.publish(self.dead_letter_topic, encode(note), cause=cause[:1000])
        future.result(timeout=PUBLISH_TIMEOUT)
