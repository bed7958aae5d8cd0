"""The runtime on Google Cloud: Firestore log and catalog, Pub/Sub bus, Cloud Storage
payloads (gcsfs), Secret Manager for keychain entries. Entry points in `functions/` call
the three functions at the bottom; they stay thin.

One runtime per process (a Cloud Function instance), built on first use. Retry delays,
callback timeouts and `wait` steps are Cloud Tasks tasks that call the worker at their
due time (`NOETL_WORKER_URL`); no instance sleeps through a delay. A registered playbook's
`metadata.schedule` becomes Cloud Scheduler jobs (`schedule_jobs`) publishing to the
triggers topic, which `on_trigger` serves.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import threading
from typing import TYPE_CHECKING, Any

from . import bounded
from . import settings as settings_module
from .errors import ConfigError, NoetlError, WorkloadError
from .settings import Settings

if TYPE_CHECKING:
    from .runtime.block import Runtime
    from .runtime.ports import Note, SystemClock

# The runtime (engine, playbook model, templating) and the Google clients are imported
# when the first message or request builds it, not when functions-framework loads
# `functions/main.py`.

log = logging.getLogger(__name__)
_lock = threading.Lock()
_runtime: Runtime | None = None


def _no_secrets() -> Any:
    raise NoetlError("the gateway reads no secrets: credentials are read by the worker")


def build(conf: Settings, *, gateway: bool = False) -> Runtime:
    """The runtime of a function instance. The gateway's (`gateway=True`) has no way to
    read a credential, and its process never imports the keychain's readers."""
    settings_module.prepare_gcsfs()
    from .adapters.fsspec_payloads import FsspecPayloadStore
    from .adapters.gcp.firestore_catalog import FirestoreCatalog
    from .adapters.gcp.firestore_log import FirestoreEventLog
    from .adapters.gcp.pubsub_bus import PubSubBus
    from .keychain import SecretManagerCredentials, sealing
    from .runtime.block import Runtime
    from .runtime.ports import SystemClock

    if gateway:
        connect: Any = _no_secrets
    else:
        from .keychain import providers

        connect = providers.secret_manager

    bus = PubSubBus(conf.project, conf.command_topic, conf.dead_letter_topic)
    clock = SystemClock()
    return Runtime(
        log=FirestoreEventLog(
            conf.project, conf.firestore_prefix, shape_file=conf.query_shape_file
        ),
        bus=bus,
        payloads=FsspecPayloadStore(conf.payload_url, **conf.storage_options),
        timer=timer(conf, bus, clock),
        clock=clock,
        settings=conf,
        catalog=FirestoreCatalog(
            conf.project,
            conf.firestore_prefix,
            sealer=sealing.for_settings(conf),
            shape_file=conf.query_shape_file,
        ),
        credentials=SecretManagerCredentials(conf.project, connect),
        schedule_jobs=schedule_jobs(conf),
    )


def schedule_jobs(conf: Settings) -> Any:
    """Cloud Scheduler jobs publishing the catalog's schedules to the triggers topic, in
    the Cloud Tasks queue's location (the client is built on the first sync)."""
    from .adapters.gcp.scheduler_jobs import CloudSchedulerJobs

    return CloudSchedulerJobs(
        conf.project,
        conf.tasks_location,
        conf.trigger_topic,
        emulator_host=conf.scheduler_emulator_host,
        emulated=conf.pubsub_emulator_host is not None,
    )


def timer(conf: Settings, bus: Any, clock: SystemClock) -> Any:
    """Cloud Tasks calling the worker when its URL is known; else an in-process timer
    (a client that only starts and reads executions, or a local run)."""
    if conf.worker_url is None:
        from .adapters.inprocess import InProcessTimer

        return InProcessTimer(bus, clock.now)
    from .adapters.gcp.tasks_timer import CloudTasksTimer

    topic = f"projects/{conf.project}/topics/{conf.command_topic}"
    return CloudTasksTimer(
        conf.project,
        conf.tasks_location,
        conf.tasks_queue,
        conf.worker_url,
        topic,
        conf.tasks_invoker,
        emulator_host=conf.tasks_emulator_host,
    )


def runtime() -> Runtime:
    global _runtime
    with _lock:
        if _runtime is None:
            _runtime = build(settings_module.load())
        return _runtime


_gateway: Any = None


def gateway() -> Any:
    """The gateway application (`gateway/app.py`) over this instance's runtime, signed
    tokens checked with NOETL_GATEWAY_KEY (on Cloud Run it must be set: a key made up
    by one instance would refuse every token)."""
    global _gateway
    with _lock:
        if _gateway is None:
            from .gateway import app, tokens

            conf = settings_module.load()
            if conf.gateway_key is None and settings_module.on_cloud_run():
                raise ConfigError("NOETL_GATEWAY_KEY: the gateway's token key, from Secret Manager")
            key = tokens.load_key(conf.gateway_key, conf.home)
            _gateway = app.create_app(build(conf, gateway=True), key)
        return _gateway


def note_of(event_data: dict[str, Any]) -> Note:
    """The note inside a Pub/Sub `messagePublished` CloudEvent's data."""
    from .adapters.gcp.pubsub_bus import decode

    message = event_data.get("message") or {}
    return decode(base64.b64decode(message.get("data", "")))


def _message(event_data: Any) -> dict[str, Any]:
    message = event_data.get("message") if isinstance(event_data, dict) else None
    return message if isinstance(message, dict) else {}


def _park(event_data: Any, cause: str, function: str) -> None:
    """Acknowledge a message nobody can ever act on by parking it, with its cause, in the
    dead-letter topic: redelivering it would fail the same way until retention ends."""
    message = _message(event_data)
    raw = message.get("data", "")
    try:
        data = base64.b64decode(raw, validate=True) if isinstance(raw, str) else b""
    except ValueError:
        data = str(raw).encode()
    log.error("%s: dead-lettered message %s: %s", function, message.get("messageId"), cause)
    runtime().bus.dead_letter_raw(  # type: ignore[attr-defined]
        data, cause, function=function, message_id=str(message.get("messageId", ""))
    )


def on_message(event_data: dict[str, Any]) -> None:
    """Run one block. Raising asks Pub/Sub to deliver again (a retryable failure);
    returning acknowledges (done, or failed and recorded; a malformed note is parked in
    the dead-letter topic)."""
    try:
        note = note_of(event_data)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        _park(event_data, f"malformed note: {type(exc).__name__}: {exc}", "worker")
        return
    runtime().handle(note)


def on_trigger(event_data: dict[str, Any]) -> dict[str, Any] | None:
    """A Cloud Scheduler message `{path, version?, cron?, workload?, scheduled_time?}` on
    the triggers topic: start the execution for that time, once however often it comes.

    The time is `scheduled_time` when the message names one, else the slot of the cron
    line its publish time falls in: Cloud Scheduler's retry is a new message with a new
    publish time, for the same slot, and starts nothing new. A malformed message, or one
    for a playbook the catalog does not hold, is parked in the dead-letter topic and
    acknowledged (None); only failures that may pass (Firestore unreachable) are raised
    for redelivery."""
    from . import schedules

    try:
        body, moment = _trigger_of(event_data)
        rt = runtime()
        loaded = rt.catalog.resolve(body["path"], body.get("version"))
        cron = body.get("cron")
        declared = [s for s in schedules.schedules_of(loaded) if s.cron == cron]
        if declared:
            schedule = declared[0]
        elif isinstance(cron, str):
            schedule = schedules.Schedule(loaded.path, cron)
        else:  # no cron line: the message is its own slot
            schedule = schedules.Schedule(loaded.path, "trigger")
        scheduled = moment if "scheduled_time" in body or cron is None else schedule.slot_of(moment)
        started, new = schedules.fire(rt, loaded, schedule, scheduled, body.get("workload"))
    except NoetlError as error:
        if error.retryable:
            raise
        _park(event_data, f"{error.code}: {error}", "trigger")
        return None
    return {"execution_id": started, "new": new}


def _trigger_of(event_data: Any) -> tuple[dict[str, Any], dt.datetime]:
    """A trigger message's JSON body and its time, or a WorkloadError saying what is wrong."""
    message = _message(event_data)
    try:
        data = base64.b64decode(message.get("data", ""), validate=True) or b"{}"
        body = bounded.json_loads(data, "a trigger message", settings_module.limits())
    except ValueError as exc:
        raise WorkloadError(f"a trigger message is base64 JSON: {exc}") from None
    if not isinstance(body, dict) or not isinstance(body.get("path"), str):
        raise WorkloadError("a trigger message is JSON with `path` (a catalog path)")
    if body.get("workload") is not None and not isinstance(body["workload"], dict):
        raise WorkloadError("a trigger message's `workload` is a JSON object")
    moment = body.get("scheduled_time") or message.get("publishTime")
    try:
        scheduled = dt.datetime.fromisoformat(str(moment).replace("Z", "+00:00"))
    except ValueError:
        raise WorkloadError(f"a trigger's time {moment!r} is not ISO 8601") from None
    if scheduled.tzinfo is None:
        raise WorkloadError(f"a trigger's time {moment!r} has no time zone")
    return body, scheduled


def on_callback(token: str, body: bytes) -> tuple[int, dict[str, Any]]:
    from .runtime import waits

    return waits.receive(runtime(), token, body)
