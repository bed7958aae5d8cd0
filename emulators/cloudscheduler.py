"""A Cloud Scheduler emulator: an in-memory gRPC server for ``CloudScheduler`` that runs jobs.

Like ``emulators.cloudtasks``: a grpcio generic handler built from the client library's
proto-plus types (``google.cloud.scheduler_v1``), for the real ``CloudSchedulerClient``
(``client()``). Methods: CreateJob, GetJob, ListJobs (paged, by name), UpdateJob (with an
``update_mask``; an empty mask replaces every field the caller may set), DeleteJob,
PauseJob (ENABLED -> PAUSED), ResumeJob (PAUSED -> ENABLED; else FAILED_PRECONDITION) and
RunJob (one attempt now, whatever the state). App Engine targets and the location
methods are UNIMPLEMENTED. CreateJob and UpdateJob answer INVALID_ARGUMENT for a bad job
name, a cron line that is not five unix-cron fields croniter accepts, an unknown time
zone (empty: UTC), no target, a Pub/Sub topic of another project or a message with
neither data nor attributes, a URL that is not http(s).

A ticker thread fires each ENABLED job at every time of its cron line in its
``time_zone``; a time missed while the process was busy fires once, late. A Pub/Sub
target's ``data`` and ``attributes`` are published through the Pub/Sub emulator's REST
surface (``pubsub_host``, else ``PUBSUB_EMULATOR_HOST``); an HTTP target gets its body
with ``User-Agent: Google-Cloud-Scheduler``, ``X-CloudScheduler: true``,
``X-CloudScheduler-JobName`` and ``X-CloudScheduler-ScheduleTime`` (RFC 3339, UTC), and
with an ``oidc_token`` an ``Authorization: Bearer`` unsigned JWT for its audience (the
URI when unset), as ``emulators.cloudtasks`` sends one. A failed HTTP attempt is retried
``retry_config.retry_count`` times (default 0) after ``min_backoff_duration`` (5 s)
doubled each time up to ``max_backoff_duration`` (3600 s); ``max_doublings`` and
``max_retry_duration`` are ignored. Each attempt sets the job's ``last_attempt_time`` and
``status`` (code 0 when delivered) and is recorded in ``fired``; ``schedule_time`` is the
next time of the cron line. ``python -m emulators.cloudscheduler --port 8124`` runs it
alone.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import os
import re
import signal
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import grpc
from croniter import croniter
from google.cloud import scheduler_v1
from google.cloud.scheduler_v1.services.cloud_scheduler import CloudSchedulerClient, transports
from google.protobuf import empty_pb2

from .grpc_service import Abort as _Abort
from .grpc_service import copy as _copy
from .grpc_service import generic_service
from .grpc_service import page as _page
from .grpc_service import seconds as _seconds
from .grpc_service import stamp as _stamp
from .grpc_service import unsigned_jwt as _unsigned_jwt

SERVICE_NAME = "google.cloud.scheduler.v1.CloudScheduler"
ENV_VAR = "CLOUD_SCHEDULER_EMULATOR_HOST"  # a convention of this project, like the others
PUBSUB_ENV_VAR = "PUBSUB_EMULATOR_HOST"
DEADLINE = 180.0  # seconds per HTTP attempt when the job sets no attempt_deadline
MIN_BACKOFF, MAX_BACKOFF = 5.0, 3600.0  # unset retry_config durations

_LOCATION = re.compile(r"^projects/([^/]+)/locations/[^/]+$")
_JOB = re.compile(r"^(projects/([^/]+)/locations/[^/]+)/jobs/[A-Za-z0-9_-]{1,500}$")
_TOPIC = re.compile(r"^projects/([^/]+)/topics/[^/]+$")
_OUTPUT_ONLY = {"name", "user_update_time", "state", "status", "schedule_time"}
_OUTPUT_ONLY |= {"last_attempt_time"}
_TARGETS = ("pubsub_target", "http_target", "app_engine_http_target")
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
_REPLACED = {"host", "content-length", "user-agent"}

Job, State, Method = scheduler_v1.Job, scheduler_v1.Job.State, scheduler_v1.HttpMethod


@dataclass(eq=False)
class _Job:
    message: scheduler_v1.Job
    due: float | None  # the next time of its cron line (epoch seconds); None: not enabled


def _rfc3339(seconds: float) -> str:
    moment = dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat(timespec="microseconds")
    return moment.replace("+00:00", "Z")


def _invalid(message: str) -> _Abort:
    return _Abort(grpc.StatusCode.INVALID_ARGUMENT, message)


def next_time(schedule: str, zone: str, after: float) -> float:
    """The first time of the unix-cron line ``schedule`` in ``zone`` strictly after
    ``after`` (epoch seconds)."""
    start = dt.datetime.fromtimestamp(after, ZoneInfo(zone or "UTC"))
    found: dt.datetime = croniter(schedule, start).get_next(dt.datetime)
    return found.timestamp()


def _check(pb: Any) -> None:
    """INVALID_ARGUMENT unless the job (its proto) may be stored."""
    fields = pb.schedule.split()
    if len(fields) != 5 or not croniter.is_valid(pb.schedule):
        raise _invalid(f"invalid schedule (unix-cron, five fields): {pb.schedule!r}")
    try:
        ZoneInfo(pb.time_zone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise _invalid(f"invalid time_zone: {pb.time_zone!r}") from None
    target = pb.WhichOneof("target")
    if target is None:
        raise _invalid("a job needs a target (pubsub_target or http_target)")
    if target == "app_engine_http_target":
        raise _Abort(grpc.StatusCode.UNIMPLEMENTED, "the emulator has no App Engine")
    if target == "pubsub_target":
        topic = _TOPIC.match(pb.pubsub_target.topic_name)
        project = _JOB.match(pb.name)
        if not topic or (project and topic.group(1) != project.group(2)):
            raise _invalid(
                f"invalid topic_name (projects/<the job's project>/topics/<topic>): "
                f"{pb.pubsub_target.topic_name!r}"
            )
        if not pb.pubsub_target.data and not pb.pubsub_target.attributes:
            raise _invalid("a Pub/Sub message needs non-empty data or an attribute")
    else:
        http = pb.http_target
        if not http.uri.startswith(("http://", "https://")):
            raise _invalid(f"invalid uri: {http.uri!r}")
        http.http_method = http.http_method or Method.POST
        if http.body and http.http_method not in (Method.POST, Method.PUT, Method.PATCH):
            raise _invalid("a body needs POST, PUT or PATCH")


class CloudSchedulerEmulator:
    """The emulator on ``127.0.0.1:port`` (0 = a free port), served from this process: the
    jobs, one method per RPC, the ticker thread and a pool that runs attempts, behind one
    lock. ``pubsub_host`` (``HOST:PORT``) is the Pub/Sub emulator Pub/Sub targets publish
    to; unset, ``PUBSUB_EMULATOR_HOST`` when a job fires."""

    def __init__(
        self,
        port: int = 0,
        host: str = "127.0.0.1",
        pubsub_host: str | None = None,
        workers: int = 4,
    ) -> None:
        self.bind_host, self.requested_port = host, port
        self.pubsub_host, self.workers = pubsub_host, workers
        self.port: int | None = None
        self._server: grpc.Server | None = None
        self._pool: futures.ThreadPoolExecutor | None = None
        self._ticker: threading.Thread | None = None
        self._cond = threading.Condition()  # the lock, notified whenever a due time changes
        self._jobs: dict[str, _Job] = {}
        self._fired: list[dict[str, Any]] = []
        self._stopping = False

    @property
    def host(self) -> str:
        """``HOST:PORT`` of the gRPC endpoint (``CLOUD_SCHEDULER_EMULATOR_HOST``)."""
        if self.port is None:
            raise RuntimeError("the Cloud Scheduler emulator is not started")
        return f"{self.bind_host}:{self.port}"

    @property
    def fired(self) -> list[dict[str, Any]]:
        """Every attempt so far: ``name``, ``target`` (topic or URI), ``forced`` (RunJob),
        ``schedule_time`` (RFC 3339), ``at`` (epoch seconds), ``status`` (the HTTP status
        of the publish or the request; None: no answer), ``ok``, ``message_id`` (Pub/Sub)."""
        with self._cond:
            return list(self._fired)

    def start(self) -> CloudSchedulerEmulator:
        if self._server is not None:
            return self
        server = grpc.server(futures.ThreadPoolExecutor(16, thread_name_prefix="scheduler-rpc"))
        server.add_generic_rpc_handlers((generic_handler(self),))
        port = server.add_insecure_port(f"{self.bind_host}:{self.requested_port}")
        if port == 0:
            raise RuntimeError(f"cannot bind {self.bind_host}:{self.requested_port}")
        server.start()
        with self._cond:
            self._stopping = False
        self._pool = futures.ThreadPoolExecutor(self.workers, thread_name_prefix="scheduler-run")
        self._ticker = threading.Thread(target=self._tick, name="cloudscheduler", daemon=True)
        self._ticker.start()
        self._server, self.port = server, port
        return self

    def stop(self, grace: float | None = 0.5) -> None:
        if self._server is None:
            return
        self._server.stop(grace).wait()
        self._server = None
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._ticker is not None:
            self._ticker.join(timeout=1.0)
            self._ticker = None
        if self._pool is not None:  # an attempt in flight ends on its own (its deadline)
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def reset(self) -> None:
        """Delete every job and forget every attempt."""
        with self._cond:
            self._jobs.clear()
            self._fired.clear()
            self._cond.notify_all()

    def wait(self) -> None:
        if self._server is not None:
            self._server.wait_for_termination()

    def __enter__(self) -> CloudSchedulerEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- jobs ------------------------------------------------------------------------
    def _job(self, name: str) -> _Job:
        if not _JOB.match(name):
            raise _invalid(f"invalid job name: {name!r}")
        if name not in self._jobs:
            raise _Abort(grpc.StatusCode.NOT_FOUND, f"Job [{name}] not found.")
        return self._jobs[name]

    def _arm(self, job: _Job, after: float) -> None:
        """Set when an enabled job fires next (its ``schedule_time``); clear it else."""
        pb = Job.pb(job.message)
        if pb.state == State.ENABLED:
            job.due = next_time(pb.schedule, pb.time_zone, after)
            pb.schedule_time.CopyFrom(_stamp(job.due))
        else:
            job.due = None
            pb.ClearField("schedule_time")
        self._cond.notify_all()

    def create_job(self, request: scheduler_v1.CreateJobRequest) -> scheduler_v1.Job:
        message = _copy(request.job)
        pb = Job.pb(message)
        match = _JOB.match(pb.name)
        if not _LOCATION.match(request.parent) or not match or match.group(1) != request.parent:
            raise _invalid(f"invalid job name {pb.name!r} under parent {request.parent!r}")
        for output in _OUTPUT_ONLY - {"name"}:
            pb.ClearField(output)
        _check(pb)
        now = time.time()
        pb.state = State.ENABLED
        pb.user_update_time.CopyFrom(_stamp(now))
        with self._cond:
            if pb.name in self._jobs:
                raise _Abort(grpc.StatusCode.ALREADY_EXISTS, f"Job [{pb.name}] already exists.")
            job = self._jobs[pb.name] = _Job(message, None)
            self._arm(job, now)
            return _copy(job.message)

    def get_job(self, request: scheduler_v1.GetJobRequest) -> scheduler_v1.Job:
        with self._cond:
            return _copy(self._job(request.name).message)

    def list_jobs(self, request: scheduler_v1.ListJobsRequest) -> scheduler_v1.ListJobsResponse:
        if not _LOCATION.match(request.parent):
            raise _invalid(f"invalid parent: {request.parent!r}")
        prefix = f"{request.parent}/jobs/"
        with self._cond:
            jobs = [_copy(j.message) for n, j in sorted(self._jobs.items()) if n.startswith(prefix)]
        page, token = _page(jobs, request.page_size, request.page_token, 500)
        return scheduler_v1.ListJobsResponse(jobs=page, next_page_token=token)

    def update_job(self, request: scheduler_v1.UpdateJobRequest) -> scheduler_v1.Job:
        given = Job.pb(request.job)
        paths = list(request.update_mask.paths)
        for path in paths:
            top = path.split(".", 1)[0]
            if top in _OUTPUT_ONLY or top not in given.DESCRIPTOR.fields_by_name:
                raise _invalid(f"invalid update_mask path: {path!r}")
        with self._cond:
            job = self._job(given.name)
            updated = _copy(job.message)
            pb = Job.pb(updated)
            for path in paths or [f.name for f in pb.DESCRIPTOR.fields]:
                if path not in _OUTPUT_ONLY:  # an empty mask: every field the caller may set
                    _copy_path(given, pb, path.split("."))
            _check(pb)
            pb.user_update_time.CopyFrom(_stamp(time.time()))
            job.message = updated
            self._arm(job, time.time())
            return _copy(updated)

    def delete_job(self, request: scheduler_v1.DeleteJobRequest) -> empty_pb2.Empty:
        with self._cond:
            self._job(request.name)
            del self._jobs[request.name]
            self._cond.notify_all()
        return empty_pb2.Empty()

    def _set_state(self, name: str, was: Any, state: Any) -> scheduler_v1.Job:
        with self._cond:
            job = self._job(name)
            pb = Job.pb(job.message)
            if pb.state != was:
                raise _Abort(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"Job [{name}] is {State(pb.state).name}, not {State(was).name}.",
                )
            pb.state = state
            self._arm(job, time.time())
            return _copy(job.message)

    def pause_job(self, request: scheduler_v1.PauseJobRequest) -> scheduler_v1.Job:
        return self._set_state(request.name, State.ENABLED, State.PAUSED)

    def resume_job(self, request: scheduler_v1.ResumeJobRequest) -> scheduler_v1.Job:
        return self._set_state(request.name, State.PAUSED, State.ENABLED)

    def run_job(self, request: scheduler_v1.RunJobRequest) -> scheduler_v1.Job:
        with self._cond:
            job = self._job(request.name)
            self._submit(job, time.time(), forced=True)
            return _copy(job.message)

    # -- running ---------------------------------------------------------------------
    def _submit(self, job: _Job, scheduled: float, forced: bool) -> None:
        if self._pool is None or self._stopping:
            return
        self._pool.submit(self._run, job, _copy(job.message), scheduled, forced)

    def _tick(self) -> None:
        with self._cond:
            while not self._stopping:
                armed = [j for j in self._jobs.values() if j.due is not None]
                first = min(armed, key=lambda j: j.due or 0.0, default=None)
                now = time.time()
                if first is None or first.due is None or first.due > now:
                    self._cond.wait(None if first is None or first.due is None else first.due - now)
                    continue
                scheduled = first.due
                self._arm(first, max(scheduled, now))  # a time missed meanwhile fires once
                self._submit(first, scheduled, forced=False)

    def _run(self, job: _Job, message: scheduler_v1.Job, scheduled: float, forced: bool) -> None:
        pb = Job.pb(message)
        retries = pb.retry_config.retry_count if pb.HasField("http_target") else 0
        config = pb.retry_config
        backoff, most = MIN_BACKOFF, MAX_BACKOFF
        if config.HasField("min_backoff_duration"):
            backoff = _seconds(config.min_backoff_duration)
        if config.HasField("max_backoff_duration"):
            most = _seconds(config.max_backoff_duration)
        for attempt in range(retries + 1):
            if attempt:
                until = time.time() + min(backoff * 2 ** (attempt - 1), most)
                with self._cond:  # woken by any change: wait out the backoff
                    while not self._stopping and self._jobs.get(pb.name) is job:
                        if (left := until - time.time()) <= 0:
                            break
                        self._cond.wait(left)
                    if self._stopping or self._jobs.get(pb.name) is not job:
                        return  # stopped, or the job deleted or replaced meanwhile
            if self._attempt(job, pb, scheduled, forced):
                return

    def _attempt(self, job: _Job, pb: Any, scheduled: float, forced: bool) -> bool:
        started = time.time()
        with self._cond:
            if self._jobs.get(pb.name) is job:
                Job.pb(job.message).last_attempt_time.CopyFrom(_stamp(started))
        record: dict[str, Any] = {
            "name": pb.name,
            "forced": forced,
            "schedule_time": _rfc3339(scheduled),
            "at": started,
            "status": None,
            "message_id": None,
        }
        error = ""
        if pb.HasField("pubsub_target"):
            record["target"] = pb.pubsub_target.topic_name
            status, answer, error = self._publish(pb.pubsub_target)
            record["status"] = status
            if status == 200:
                record["message_id"] = str((answer.get("messageIds") or [None])[0])
        else:
            record["target"] = pb.http_target.uri
            record["status"], error = self._send(pb, scheduled)
        status = record["status"]
        record["ok"] = ok = status is not None and 200 <= status < 300
        with self._cond:
            self._fired.append(record)
            if self._jobs.get(pb.name) is job:
                result = Job.pb(job.message).status
                result.Clear()
                if not ok:
                    code = (
                        grpc.StatusCode.UNAVAILABLE if status is None else grpc.StatusCode.UNKNOWN
                    )
                    result.code = code.value[0]
                    result.message = error or f"the target answered {status}"
        return ok

    def _publish(self, target: Any) -> tuple[int | None, dict[str, Any], str]:
        host = self.pubsub_host or os.environ.get(PUBSUB_ENV_VAR)
        if not host:
            return None, {}, f"no Pub/Sub emulator ({PUBSUB_ENV_VAR} unset)"
        message: dict[str, Any] = {"data": base64.b64encode(bytes(target.data)).decode()}
        if target.attributes:
            message["attributes"] = dict(target.attributes)
        body = json.dumps({"messages": [message]}).encode()
        url = f"http://{host}/v1/{target.topic_name}:publish"
        request = urllib.request.Request(
            url, body, {"Content-Type": "application/json"}, method="POST"
        )
        try:
            with _OPENER.open(request, timeout=30) as response:
                return int(response.status), dict(json.loads(response.read() or b"{}")), ""
        except urllib.error.HTTPError as exc:
            text = exc.read().decode(errors="replace")
            exc.close()
            return exc.code, {}, f"publish to {target.topic_name}: {exc.code} {text[:200]}"
        except Exception as exc:  # refused, timed out: no answer
            return None, {}, f"publish to {target.topic_name}: {exc}"

    def _send(self, pb: Any, scheduled: float) -> tuple[int | None, str]:
        http = pb.http_target
        headers = {k: v for k, v in http.headers.items() if k.lower() not in _REPLACED}
        if http.body and not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/octet-stream"
        headers |= {
            "User-Agent": "Google-Cloud-Scheduler",
            "X-CloudScheduler": "true",
            "X-CloudScheduler-JobName": pb.name.rsplit("/", 1)[1],
            "X-CloudScheduler-ScheduleTime": _rfc3339(scheduled),
        }
        oidc = http.oidc_token
        if oidc.service_account_email:
            claims = {"iss": "https://accounts.google.com", "aud": oidc.audience or http.uri}
            claims |= {"email": oidc.service_account_email, "exp": int(time.time()) + 3600}
            headers["Authorization"] = f"Bearer {_unsigned_jwt(claims)}"
        method = Method(http.http_method or Method.POST).name
        request = urllib.request.Request(http.uri, bytes(http.body) or None, headers, method=method)
        deadline = _seconds(pb.attempt_deadline) if pb.HasField("attempt_deadline") else 0
        try:
            with _OPENER.open(request, timeout=deadline or DEADLINE) as response:
                response.read()
                return int(response.status), ""
        except urllib.error.HTTPError as exc:
            exc.close()
            return exc.code, f"{http.uri} answered {exc.code}"
        except Exception as exc:  # refused, timed out, garbled: no answer
            return None, f"{http.uri}: {exc}"


def _copy_path(source: Any, target: Any, path: list[str]) -> None:
    """Copy one update_mask path (``schedule``, ``pubsub_target.data``) from one Job
    proto into another; a path the source leaves unset clears it in the target."""
    head, rest = path[0], path[1:]
    if head not in target.DESCRIPTOR.fields_by_name:
        raise _invalid(f"invalid update_mask path: {'.'.join(path)!r}")
    field = target.DESCRIPTOR.fields_by_name[head]
    if rest:
        if field.message_type is None:
            raise _invalid(f"invalid update_mask path: {'.'.join(path)!r}")
        _copy_path(getattr(source, head), getattr(target, head), rest)
        return
    target.ClearField(head)
    if field.message_type is None:
        setattr(target, head, getattr(source, head))
    elif field.message_type.GetOptions().map_entry:  # attributes, headers
        getattr(target, head).update(getattr(source, head))
    elif source.HasField(head):
        getattr(target, head).CopyFrom(getattr(source, head))


def generic_handler(store: CloudSchedulerEmulator) -> grpc.GenericRpcHandler:
    """The RPCs, each with its request type's ``deserialize`` and response serializer."""
    s, empty = scheduler_v1, empty_pb2.Empty.SerializeToString
    methods: dict[str, tuple[Callable[[Any], Any], Any, Callable[[Any], bytes]]] = {
        "CreateJob": (store.create_job, s.CreateJobRequest, s.Job.serialize),
        "GetJob": (store.get_job, s.GetJobRequest, s.Job.serialize),
        "ListJobs": (store.list_jobs, s.ListJobsRequest, s.ListJobsResponse.serialize),
        "UpdateJob": (store.update_job, s.UpdateJobRequest, s.Job.serialize),
        "DeleteJob": (store.delete_job, s.DeleteJobRequest, empty),
        "PauseJob": (store.pause_job, s.PauseJobRequest, s.Job.serialize),
        "ResumeJob": (store.resume_job, s.ResumeJobRequest, s.Job.serialize),
        "RunJob": (store.run_job, s.RunJobRequest, s.Job.serialize),
    }
    return generic_service(SERVICE_NAME, methods)


def client(host: str) -> CloudSchedulerClient:
    """A real ``CloudSchedulerClient`` talking to the emulator at ``host``."""
    channel = grpc.insecure_channel(host)
    return CloudSchedulerClient(transport=transports.CloudSchedulerGrpcTransport(channel=channel))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emulators.cloudscheduler")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument(
        "--pubsub-host", default=None, help=f"HOST:PORT of the Pub/Sub emulator ({PUBSUB_ENV_VAR})"
    )
    args = parser.parse_args(argv)
    emulator = CloudSchedulerEmulator(port=args.port, host=args.host, pubsub_host=args.pubsub_host)
    with emulator:
        print(f"export {ENV_VAR}={emulator.host}", flush=True)
        done = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: done.set())
        done.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
