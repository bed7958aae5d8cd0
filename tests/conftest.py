"""Shared fixtures: an embedded runtime in a temporary NOETL_HOME, and example paths.
At the session's end, every Firestore query the suite ran must be served by
infra/firestore.indexes.json under real Firestore's rules (`pytest_sessionfinish`)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from noetl_core import embedded, settings
from noetl_core.runtime.block import Runtime

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "playbooks" / "examples"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "noetl-home"


@pytest.fixture
def conf(home: Path) -> settings.Settings:
    return settings.load({"NOETL_HOME": str(home), "NOETL_SQLITE_SYNC": "NORMAL"})


@pytest.fixture
def rt(conf: settings.Settings) -> Iterator[Runtime]:
    with embedded.runtime(conf) as runtime:
        yield runtime


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[object]:
    """One real PostgreSQL server for the whole session (`make test` installs the server
    binaries when they are missing; without them these tests fail, they are not skipped)."""
    from noetl_core.devtools.postgres import PostgresServer

    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def gcp_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The local Google Cloud stack, once per session: Pub/Sub, Firestore and
    fake-gcs-server emulators, the Secret Manager, Cloud Tasks and Cloud Scheduler
    emulators (`stack.env()` names them all), and NoETL
    deployed on it from infra/deployment.json and the built artifact (`emulators.deploy`:
    every function in its own virtualenv, outside the repository, with the declared
    environment and push subscriptions). Its environment is this process's for the
    session, so Google clients made here talk to it."""
    from emulators.deploy import deploy
    from emulators.stack import EmulatorStack

    work = tmp_path_factory.mktemp("gcp")
    # this process's runtimes and logs, the CLI's and the functions' note each query
    TEST_ENV["NOETL_QUERY_SHAPE_FILE"] = str(work / "query-shapes.jsonl")
    stack = EmulatorStack().start()
    saved = {name: os.environ.get(name) for name in stack.env()}
    os.environ.update(stack.env())
    stack.fault_file = work / "fault"
    try:
        deployed = deploy(
            stack,
            env=TEST_ENV,
            function_env={"worker": {"NOETL_FAULT_FILE": str(stack.fault_file)}},
            push={"worker": {"ack_deadline_seconds": 10}},
        )
        stack.deployed, stack.client_env = deployed, deployed.client_env
        yield stack
    finally:
        stack.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# Shorter than deployed (the lease is the worker's timeout plus a margin): the fault tests
# wait for a dead worker's lease to run out, and for a command's deliveries to run out.
# `gcp_stack` adds the file every Firestore query shape is recorded in.
TEST_ENV = {"NOETL_LEASE_SECONDS": "3", "NOETL_MAX_DELIVERIES": "3"}


@pytest.fixture
def gcp_env(gcp_stack: Any) -> dict[str, str]:
    """The stack's environment, Firestore emptied first (each test starts clean)."""
    gcp_stack.reset()
    return {**gcp_stack.env(), **gcp_stack.client_env}


@pytest.fixture
def cloud_rt(gcp_env: dict[str, str], tmp_path: Path) -> Iterator[Runtime]:
    """A client of the emulator stack: it starts and reads executions; their blocks run
    in the worker function."""
    from noetl_core import cloud

    conf = settings.load({**gcp_env, "NOETL_HOME": str(tmp_path / "client-home")})
    runtime = cloud.build(conf)
    try:
        yield runtime
    finally:
        runtime.timer.close()  # type: ignore[attr-defined]


def pytest_sessionfinish(session: pytest.Session) -> None:
    """The emulator serves any query; real Firestore only one an index serves. So every
    query shape the session recorded (this process, the CLI's, the functions' alike;
    the functions are stopped by now) is checked against the declared indexes, and one
    that none serves fails the session, naming the index it needs."""
    recorded = TEST_ENV.get("NOETL_QUERY_SHAPE_FILE")
    if recorded is None or not Path(recorded).exists():
        return  # no emulator test ran
    from emulators import firestore_indexes

    shapes = firestore_indexes.read_shapes(Path(recorded))
    problems = firestore_indexes.unserved(shapes, firestore_indexes.load())
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        where = firestore_indexes.INDEX_FILE.relative_to(ROOT)
        reporter.line("")  # after the progress dots
        title = f"{len(problems)} of {len(shapes)} Firestore query shapes unserved by {where}"
        reporter.write_sep("-", title, red=bool(problems), green=not problems)
        for problem in problems:
            reporter.write_line(f"NOT SERVED {problem}", red=True)
    if problems:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# -- helpers the gateway tests share --------------------------------------------------------


def read_events(stream: Any, keep: int | None = None) -> list[dict[str, Any]]:
    """Server-Sent Events from an httpx streaming response, as `{id, data}` (data parsed
    as JSON), up to `keep` of them (the connection is then left, as a client dropping)."""
    import json

    out: list[dict[str, Any]] = []
    event: dict[str, Any] = {}
    for line in stream.iter_lines():
        if line.startswith("id: "):
            event["id"] = int(line[4:])
        elif line.startswith("data: "):
            event["data"] = json.loads(line[6:])
        elif not line and event:
            out.append(event)
            event = {}
            if keep is not None and len(out) == keep:
                break
    return out


@contextlib.contextmanager
def serving(app: Any) -> Iterator[str]:
    """An ASGI application served by uvicorn on a free loopback port; its base URL."""
    import threading
    import time

    import uvicorn

    from emulators.processes import free_port

    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
