"""Shared fixtures: an embedded runtime in a temporary NOETL_HOME, and example paths."""

from __future__ import annotations

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
    fake-gcs-server emulators, the Secret Manager and Cloud Tasks emulators, and NoETL
    deployed on it from infra/deployment.json and the built artifact (`emulators.deploy`:
    every function in its own virtualenv, outside the repository, with the declared
    environment and push subscriptions). Its environment is this process's for the
    session, so Google clients made here talk to it."""
    from emulators.deploy import deploy
    from emulators.stack import EmulatorStack

    work = tmp_path_factory.mktemp("gcp")
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
