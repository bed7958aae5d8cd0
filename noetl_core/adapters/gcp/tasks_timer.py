"""The Timer on Cloud Tasks: a task due at the given time delivers the note to the worker.

The task's HTTP request is the body Pub/Sub push would send (`{message: {data}}`), posted
to the worker function's push path, so the worker takes a timer's note exactly as it takes
Pub/Sub's. Task names are derived from the note and the due time: arming the same timer
twice (a redelivered block) creates one task.

The worker is private, so each task carries an OIDC token minted by Cloud Tasks for the
invoker service account (`NOETL_TASKS_INVOKER`, which the worker's own account may act
as), with the worker's base URL as its audience: without it the worker answers 403 and
no retry delay, `wait` step or callback timeout ever fires.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
from typing import Any

from ... import ids
from ...runtime.ports import Note
from .pubsub_bus import encode


class CloudTasksTimer:
    def __init__(
        self,
        project: str,
        location: str,
        queue: str,
        worker_url: str,
        topic_path: str,
        invoker: str | None,
        client: Any = None,
        emulator_host: str | None = None,
    ):
        self._client = client
        self._emulator_host = emulator_host
        self.queue = f"projects/{project}/locations/{location}/queues/{queue}"
        self.audience = worker_url.rstrip("/")
        self.target = self.audience + "/" + topic_path.lstrip("/")
        self.invoker = invoker
        self.subscription = f"projects/{project}/subscriptions/{queue}"

    @property
    def client(self) -> Any:
        """Built on the first timer: most blocks arm none, and the client's imports are
        a large part of a worker's cold start."""
        if self._client is None:
            self._client = _client(self._emulator_host)
        return self._client

    def schedule(self, note: Note, due: float) -> None:
        from google.api_core import exceptions
        from google.protobuf import timestamp_pb2

        task_id = "t" + ids.digest(note.execution_id, note.command_id, note.attempt, round(due, 3))
        body = {
            "message": {"data": base64.b64encode(encode(note)).decode(), "messageId": task_id},
            "subscription": self.subscription,
        }
        when = timestamp_pb2.Timestamp()
        when.FromDatetime(dt.datetime.fromtimestamp(due, dt.UTC))
        task = {
            "name": f"{self.queue}/tasks/{task_id}",
            "schedule_time": when,
            "http_request": {
                "url": self.target,
                "http_method": "POST",
                "headers": {"Content-Type": "application/json"},
                "body": json.dumps(body).encode(),
            },
        }
        if self.invoker:
            token = {"service_account_email": self.invoker, "audience": self.audience}
            task["http_request"]["oidc_token"] = token  # type: ignore[index]
        with contextlib.suppress(exceptions.AlreadyExists):  # this timer is armed already
            self.client.create_task(parent=self.queue, task=task)

    def close(self) -> None:
        return


def _client(emulator_host: str | None) -> Any:
    from google.cloud import tasks_v2  # type: ignore[attr-defined]

    if emulator_host is None:
        return tasks_v2.CloudTasksClient()
    import grpc
    from google.cloud.tasks_v2.services.cloud_tasks import transports

    transport = transports.CloudTasksGrpcTransport(channel=grpc.insecure_channel(emulator_host))
    return tasks_v2.CloudTasksClient(transport=transport)
