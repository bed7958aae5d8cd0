"""A Cloud Tasks emulator: an in-memory gRPC server for ``CloudTasks`` that pushes HTTP tasks.

Like ``emulators.secretmanager``: a grpcio generic handler built from the client library's
proto-plus types (``google.cloud.tasks_v2``), for the real ``CloudTasksClient`` (``client()``).
Queue and task Create/Get/List/Delete; other methods and App Engine tasks are UNIMPLEMENTED.
A named task answers ALREADY_EXISTS while it exists and ``dedup_window`` s after it is done.
Dispatcher threads send each task when its ``schedule_time`` comes (no proxy; ``Content-Type``
defaults to ``application/octet-stream``); 2xx removes it, anything else retries it after
``min_backoff * 2**n`` (at most ``max_backoff``; unset: 0.5 s, 10 s) until ``max_attempts``
(unset: 10, -1: no limit). ``dispatched`` records each attempt. Rate limits are ignored.
``python -m emulators.cloudtasks --port 8123`` runs it alone.
"""

from __future__ import annotations

import argparse
import re
import signal
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from google.cloud import tasks_v2
from google.cloud.tasks_v2.services.cloud_tasks import CloudTasksClient, transports
from google.protobuf import empty_pb2

from .grpc_service import Abort as _Abort
from .grpc_service import copy as _copy
from .grpc_service import generic_service
from .grpc_service import page as _page
from .grpc_service import seconds as _seconds
from .grpc_service import stamp as _stamp
from .grpc_service import unsigned_jwt as _unsigned_jwt

SERVICE_NAME = "google.cloud.tasks.v2.CloudTasks"
ENV_VAR = "CLOUD_TASKS_EMULATOR_HOST"  # a convention of this project, like the others
MAX_ATTEMPTS, MIN_BACKOFF, MAX_BACKOFF = 10, 0.5, 10.0  # unset retry_config fields
DEADLINE = 600.0  # seconds per attempt when the task sets no dispatch_deadline

_LOCATION = re.compile(r"^projects/[^/]+/locations/[^/]+$")
_QUEUE = re.compile(r"^(projects/[^/]+/locations/[^/]+)/queues/[A-Za-z0-9-]{1,100}$")
_TASK = re.compile(r"^(projects/[^/]+/locations/[^/]+/queues/[^/]+)/tasks/[A-Za-z0-9_-]{1,500}$")
_REPLACED = {"host", "content-length", "user-agent"}
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))

Method, View = tasks_v2.HttpMethod, tasks_v2.Task.View
_V = TypeVar("_V")


@dataclass(eq=False)
class _Task:
    message: tasks_v2.Task
    queue: str
    due: float  # epoch seconds
    attempts: int = 0
    running: bool = False


def _find(table: dict[str, _V], pattern: re.Pattern[str], kind: str, name: str) -> _V:
    if not pattern.match(name):
        raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid {kind.lower()} name: {name!r}")
    if name not in table:
        raise _Abort(grpc.StatusCode.NOT_FOUND, f"{kind} [{name}] not found.")
    return table[name]


class CloudTasksEmulator:
    """The emulator on ``127.0.0.1:port`` (0 = a free port), served from this process: the
    queues and tasks, one method per RPC and the dispatcher threads, behind one lock."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1", dispatchers: int = 4) -> None:
        self.bind_host, self.requested_port, self.dispatchers = host, port, dispatchers
        self.dedup_window = 86_400.0  # seconds a done task's name stays taken
        self.port: int | None = None
        self._server: grpc.Server | None = None
        self._cond = threading.Condition()  # the lock, notified whenever a task may be due
        self._queues: dict[str, tasks_v2.Queue] = {}
        self._tasks: dict[str, _Task] = {}
        self._spent: dict[str, float] = {}  # delivered, dropped or deleted task -> when
        self._dispatched: list[dict[str, Any]] = []
        self._threads: list[threading.Thread] = []
        self._private: dict[str, frozenset[str]] = {}  # base URL -> invoker accounts
        self._stopping = False

    @property
    def host(self) -> str:
        """``HOST:PORT`` of the gRPC endpoint."""
        if self.port is None:
            raise RuntimeError("the Cloud Tasks emulator is not started")
        return f"{self.bind_host}:{self.port}"

    @property
    def dispatched(self) -> list[dict[str, Any]]:
        """Every attempt so far: ``name``, ``url``, ``status`` (None: no answer), ``at``."""
        with self._cond:
            return list(self._dispatched)

    def start(self) -> CloudTasksEmulator:
        if self._server is not None:
            return self
        server = grpc.server(futures.ThreadPoolExecutor(16, thread_name_prefix="cloudtasks-rpc"))
        server.add_generic_rpc_handlers((generic_handler(self),))
        port = server.add_insecure_port(f"{self.bind_host}:{self.requested_port}")
        if port == 0:
            raise RuntimeError(f"cannot bind {self.bind_host}:{self.requested_port}")
        server.start()
        self._stopping = False
        for i in range(self.dispatchers):
            thread = threading.Thread(target=self._work, name=f"cloudtasks-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)
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
        for thread in self._threads:
            thread.join(timeout=1.0)  # an attempt in flight ends on its own (daemon thread)
        self._threads.clear()

    def protect(self, url: str, invokers: frozenset[str] | set[str]) -> None:
        """Make the target at ``url`` (and every path under it) private: only tasks with
        an OIDC token for that audience, of one of ``invokers``, reach it."""
        with self._cond:
            self._private[url.rstrip("/")] = frozenset(invokers)

    def _refusal(self, url: str, oidc: Any) -> tuple[int | None, dict[str, str]]:
        """The status a private target's front end answers without calling it (None: it
        lets the request through), and the Authorization header the task carries."""
        headers: dict[str, str] = {}
        if oidc.service_account_email:
            audience = oidc.audience or url
            claims = {"iss": "https://accounts.google.com", "aud": audience}
            claims |= {"email": oidc.service_account_email, "exp": int(time.time()) + 3600}
            headers["Authorization"] = f"Bearer {_unsigned_jwt(claims)}"
        with self._cond:
            base = next((b for b in self._private if url == b or url.startswith(b + "/")), None)
            invokers = self._private[base] if base is not None else frozenset()
        if base is None:
            return None, headers
        if not oidc.service_account_email or (oidc.audience or url).rstrip("/") != base:
            return 401, headers
        if oidc.service_account_email not in invokers:
            return 403, headers
        return None, headers

    def __enter__(self) -> CloudTasksEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- queues ----------------------------------------------------------------------
    def _queue(self, name: str) -> tasks_v2.Queue:
        return _find(self._queues, _QUEUE, "Queue", name)

    def create_queue(self, request: tasks_v2.CreateQueueRequest) -> tasks_v2.Queue:
        queue = _copy(request.queue)
        pb, match = tasks_v2.Queue.pb(queue), _QUEUE.match(queue.name)
        if not match or match.group(1) != request.parent:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid queue name: {pb.name!r}")
        pb.state = tasks_v2.Queue.State.RUNNING
        retry = pb.retry_config
        retry.max_attempts = retry.max_attempts or MAX_ATTEMPTS
        for field, seconds in (("min_backoff", MIN_BACKOFF), ("max_backoff", MAX_BACKOFF)):
            if not retry.HasField(field):
                getattr(retry, field).FromNanoseconds(int(seconds * 1e9))
        with self._cond:
            if pb.name in self._queues:
                raise _Abort(grpc.StatusCode.ALREADY_EXISTS, f"Queue [{pb.name}] exists.")
            self._queues[pb.name] = queue
            return _copy(queue)

    def get_queue(self, request: tasks_v2.GetQueueRequest) -> tasks_v2.Queue:
        with self._cond:
            return _copy(self._queue(request.name))

    def list_queues(self, request: tasks_v2.ListQueuesRequest) -> tasks_v2.ListQueuesResponse:
        if not _LOCATION.match(request.parent):
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid parent: {request.parent!r}")
        if request.filter:
            raise _Abort(grpc.StatusCode.UNIMPLEMENTED, "the emulator does not support filters")
        prefix = f"{request.parent}/queues/"
        with self._cond:
            queues = [_copy(q) for n, q in sorted(self._queues.items()) if n.startswith(prefix)]
        page, token = _page(queues, request.page_size, request.page_token, 1000)
        return tasks_v2.ListQueuesResponse(queues=page, next_page_token=token)

    def delete_queue(self, request: tasks_v2.DeleteQueueRequest) -> empty_pb2.Empty:
        with self._cond:
            self._queue(request.name)
            del self._queues[request.name]
            self._tasks = {n: t for n, t in self._tasks.items() if t.queue != request.name}
        return empty_pb2.Empty()

    # -- tasks -----------------------------------------------------------------------
    def _task(self, name: str) -> _Task:
        return _find(self._tasks, _TASK, "Task", name)

    @staticmethod
    def _view(task: _Task, view: Any) -> tasks_v2.Task:
        message = _copy(task.message)
        pb = tasks_v2.Task.pb(message)
        pb.view = View.FULL if view == View.FULL else View.BASIC
        if view != View.FULL:
            pb.http_request.ClearField("body")
        return message

    def create_task(self, request: tasks_v2.CreateTaskRequest) -> tasks_v2.Task:
        message = _copy(request.task)
        pb = tasks_v2.Task.pb(message)
        if pb.HasField("app_engine_http_request"):
            raise _Abort(grpc.StatusCode.UNIMPLEMENTED, "the emulator has no App Engine")
        http = pb.http_request
        if not http.url.startswith(("http://", "https://")):
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid url: {http.url!r}")
        http.http_method = http.http_method or Method.POST
        if http.body and http.http_method not in (Method.POST, Method.PUT, Method.PATCH):
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "a body needs POST, PUT or PATCH")
        match = _TASK.match(pb.name)
        if pb.name and (not match or match.group(1) != request.parent):
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid task name: {pb.name!r}")
        now = time.time()
        due = max(now, _seconds(pb.schedule_time)) if pb.HasField("schedule_time") else now
        pb.schedule_time.CopyFrom(_stamp(due))
        pb.create_time.CopyFrom(_stamp(now))
        with self._cond:
            self._queue(request.parent)
            self._spent = {n: t for n, t in self._spent.items() if t > now - self.dedup_window}
            if pb.name in self._tasks or pb.name in self._spent:
                raise _Abort(grpc.StatusCode.ALREADY_EXISTS, f"Task [{pb.name}] already exists.")
            pb.name = pb.name or f"{request.parent}/tasks/{uuid.uuid4().int % 10**19}"
            task = self._tasks[pb.name] = _Task(message, request.parent, due)
            self._cond.notify_all()
            return self._view(task, request.response_view)

    def get_task(self, request: tasks_v2.GetTaskRequest) -> tasks_v2.Task:
        with self._cond:
            return self._view(self._task(request.name), request.response_view)

    def list_tasks(self, request: tasks_v2.ListTasksRequest) -> tasks_v2.ListTasksResponse:
        with self._cond:
            self._queue(request.parent)
            tasks = [
                self._view(t, request.response_view)
                for _, t in sorted(self._tasks.items())
                if t.queue == request.parent
            ]
        page, token = _page(tasks, request.page_size, request.page_token, 1000)
        return tasks_v2.ListTasksResponse(tasks=page, next_page_token=token)

    def delete_task(self, request: tasks_v2.DeleteTaskRequest) -> empty_pb2.Empty:
        with self._cond:
            self._task(request.name)
            del self._tasks[request.name]
            self._spent[request.name] = time.time()
        return empty_pb2.Empty()

    # -- dispatch --------------------------------------------------------------------
    def _work(self) -> None:
        while (task := self._claim()) is not None:
            self._dispatch(task)

    def _claim(self) -> _Task | None:
        with self._cond:
            while not self._stopping:
                idle = [t for t in self._tasks.values() if not t.running]
                first = min(idle, key=lambda t: t.due, default=None)
                if first is not None and first.due <= time.time():
                    first.running = True
                    return first
                self._cond.wait(None if first is None else first.due - time.time())
        return None

    def _dispatch(self, task: _Task) -> None:
        with self._cond:
            pb = tasks_v2.Task.pb(_copy(task.message))
            retries = task.attempts
        http = pb.http_request
        headers = {k: v for k, v in http.headers.items() if k.lower() not in _REPLACED}
        if not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/octet-stream"
        headers |= {
            "User-Agent": "Google-Cloud-Tasks",
            "X-CloudTasks-QueueName": task.queue.rsplit("/", 1)[1],
            "X-CloudTasks-TaskName": pb.name.rsplit("/", 1)[1],
            "X-CloudTasks-TaskRetryCount": str(retries),
            "X-CloudTasks-TaskETA": f"{_seconds(pb.schedule_time):.6f}",
        }
        refused, authorization = self._refusal(http.url, http.oidc_token)
        headers |= authorization
        method = Method(http.http_method).name
        request = urllib.request.Request(http.url, bytes(http.body) or None, headers, method=method)
        deadline = _seconds(pb.dispatch_deadline) if pb.HasField("dispatch_deadline") else 0
        started, status = time.time(), None
        if refused is not None:
            self._finish(task, pb.name, http.url, refused, started)
            return
        try:
            with _OPENER.open(request, timeout=deadline or DEADLINE) as response:
                status = int(response.status)
                response.read()
        except urllib.error.HTTPError as exc:
            status = exc.code
            exc.close()
        except Exception:  # refused, timed out, garbled: no answer, retried like a 5xx
            pass
        self._finish(task, pb.name, http.url, status, started)

    def _finish(self, task: _Task, name: str, url: str, status: int | None, at: float) -> None:
        with self._cond:
            self._dispatched.append({"name": name, "url": url, "status": status, "at": at})
            task.running = False
            self._cond.notify_all()
            if self._tasks.get(name) is not task:  # deleted meanwhile
                return
            pb = tasks_v2.Task.pb(task.message)
            pb.dispatch_count += 1
            pb.response_count += int(status is not None)
            task.attempts += 1
            retry = tasks_v2.Queue.pb(self._queues[task.queue]).retry_config
            now, ok = time.time(), status is not None and 200 <= status < 300
            if ok or 0 < retry.max_attempts <= task.attempts:
                del self._tasks[name]
                self._spent[name] = now
                return
            delay = _seconds(retry.min_backoff) * 2 ** min(task.attempts - 1, 30)
            task.due = now + min(delay, _seconds(retry.max_backoff))
            pb.schedule_time.CopyFrom(_stamp(task.due))


def generic_handler(store: CloudTasksEmulator) -> grpc.GenericRpcHandler:
    """The RPCs, each with its request type's ``deserialize`` and response serializer."""
    t, empty = tasks_v2, empty_pb2.Empty.SerializeToString
    methods: dict[str, tuple[Callable[[Any], Any], Any, Callable[[Any], bytes]]] = {
        "CreateQueue": (store.create_queue, t.CreateQueueRequest, t.Queue.serialize),
        "GetQueue": (store.get_queue, t.GetQueueRequest, t.Queue.serialize),
        "ListQueues": (store.list_queues, t.ListQueuesRequest, t.ListQueuesResponse.serialize),
        "DeleteQueue": (store.delete_queue, t.DeleteQueueRequest, empty),
        "CreateTask": (store.create_task, t.CreateTaskRequest, t.Task.serialize),
        "GetTask": (store.get_task, t.GetTaskRequest, t.Task.serialize),
        "ListTasks": (store.list_tasks, t.ListTasksRequest, t.ListTasksResponse.serialize),
        "DeleteTask": (store.delete_task, t.DeleteTaskRequest, empty),
    }
    return generic_service(SERVICE_NAME, methods)


def client(host: str) -> CloudTasksClient:
    """A real ``CloudTasksClient`` talking to the emulator at ``host``."""
    channel = grpc.insecure_channel(host)
    return CloudTasksClient(transport=transports.CloudTasksGrpcTransport(channel=channel))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emulators.cloudtasks")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args(argv)
    with CloudTasksEmulator(port=args.port, host=args.host) as emulator:
        print(f"export {ENV_VAR}={emulator.host}", flush=True)
        done = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: done.set())
        done.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
