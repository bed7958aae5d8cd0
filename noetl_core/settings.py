"""The one configuration module: every environment variable NoETL reads, listed once.

| variable | default | what it does |
|---|---|---|
| `NOETL_HOME` | `./.noetl` | where the embedded runtime keeps its log, payloads, catalog |
| `NOETL_INLINE_LIMIT` | `65536` | values (results, ctx, workload) over it (bytes) go by reference |
| `NOETL_WORKERS` | `64` | most threads of the in-process bus (two per core, more under I/O) |
| `NOETL_LEASE_SECONDS` | `300` | how long a claim on a command stays alive |
| `NOETL_SQLITE_SYNC` | `FULL` | SQLite `synchronous` pragma for the event log (FULL or NORMAL) |
| `NOETL_CREDENTIAL_KEY` | generated | key of credentials, static values (else `credential.key`) |
| `GOOGLE_CLOUD_PROJECT` | `noetl-local` | the Google Cloud project of the cloud runtime |
| `NOETL_PAYLOAD_URL` | local dir | payload store: `gs://bucket/prefix`, or any fsspec URL |
| `NOETL_FIRESTORE_PREFIX` | `noetl` | prefix of the Firestore collections (entries, catalog) |
| `NOETL_COMMAND_TOPIC` | `noetl-commands` | Pub/Sub topic of command notes |
| `NOETL_DEAD_LETTER_TOPIC` | `noetl-dead-letter` | where commands that keep crashing go |
| `NOETL_MAX_DELIVERIES` | `5` | crashed attempts of one command before it is dead-lettered |
| `NOETL_MAX_PATH_BLOCKS` | `100000` | blocks one path may run (an endless cycle stops there) |
| `NOETL_MAX_PLAYBOOK_DEPTH` | `64` | how deep sub-playbooks may nest (top-level: depth 0) |
| `NOETL_MAX_CHILDREN` | `10000` | sub-playbooks one execution may start |
| `NOETL_FAULT_FILE` | unset | fault injection for the fault tests (`runtime/faults.py`) |
| `NOETL_QUERY_SHAPE_FILE` | unset | Firestore queries append their shape here (the index test) |
| `NOETL_CALLBACK_KEY` | generated | HMAC key of callback tokens (else `NOETL_HOME/callback.key`) |
| `NOETL_GATEWAY_KEY` | generated | HMAC key of gateway tokens (else `NOETL_HOME/gateway.key`) |
| `NOETL_SERVE_HOSTS` | unset | comma-separated Host names `noetl serve` answers besides loopback |
| `NOETL_CALLBACK_URL` | unset | base URL callbacks reach (`noetl run` serves one itself) |
| `NOETL_CALLBACK_MAX_BYTES` | `1048576` | largest callback body accepted |
| `NOETL_MAX_NODES` | `100000` | most YAML nodes in a playbook, each alias counted expanded |
| `NOETL_MAX_DEPTH` | `100` | deepest YAML and JSON nesting read (at most 200) |
| `NOETL_WORKER_URL` | unset | the worker function's URL; set, timers are Cloud Tasks |
| `NOETL_TASKS_QUEUE` | `noetl-timers` | the Cloud Tasks queue of timers |
| `NOETL_TASKS_LOCATION` | `us-central1` | the location of that queue and of schedule jobs |
| `NOETL_TRIGGER_TOPIC` | `noetl-triggers` | topic Cloud Scheduler jobs (schedules) publish to |
| `NOETL_TASKS_INVOKER` | unset | service account whose OIDC token Cloud Tasks sends the worker |
| `K_SERVICE` | unset | set by Cloud Run: the production checks below apply |
| `CLOUD_TASKS_EMULATOR_HOST` | unset | the local Cloud Tasks emulator (`emulators/cloudtasks.py`) |
| `CLOUD_SCHEDULER_EMULATOR_HOST` | unset | the Cloud Scheduler emulator (`emulators/...`) |
| `NOETL_GATEWAY` | unset | the gateway URL the CLI sends its verbs to (as `--gateway URL`) |
| `NOETL_TOKEN` | unset | the bearer token the CLI sends the gateway (as `--token`) |
| `SECRET_MANAGER_EMULATOR_HOST` | unset | the Secret Manager emulator (`emulators/...`) |
| `STORAGE_EMULATOR_HOST` | unset | the Cloud Storage emulator (fake-gcs-server) |
| `PUBSUB_EMULATOR_HOST` | unset | the Pub/Sub emulator |
| `FIRESTORE_EMULATOR_HOST` | unset | the Firestore emulator |

The Google client libraries read their emulator variables (`PUBSUB_EMULATOR_HOST`,
`FIRESTORE_EMULATOR_HOST`, `STORAGE_EMULATOR_HOST`) themselves;
`SECRET_MANAGER_EMULATOR_HOST` is read here for the Secret Manager provider,
`CLOUD_TASKS_EMULATOR_HOST` and `CLOUD_SCHEDULER_EMULATOR_HOST` for their clients, and
`STORAGE_EMULATOR_HOST` also here, to talk to the emulator without credentials.
`noetl --target emulators` reads the Pub/Sub and Firestore ones here too, to say in one
line when the stack is not there.

The location of the Cloud Tasks queue also holds the Cloud Scheduler jobs that fire the
catalog's schedules (`adapters/gcp/scheduler_jobs.py`).

On Cloud Run (`K_SERVICE` set) nothing may fall back to a local value: `production_problems`
lists every variable that is missing or still local (the project `noetl-local`, payloads
not on `gs://`, no worker URL, callback key, credential key, callback URL or Cloud Tasks
invoker, a
`NOETL_HOME` outside `/tmp`, the only writable place of an instance), and the function
refuses to start with one message naming them all (`require_production`).

Keychain entries with `provider: env` read the variables they name through `environ()`.

Nothing else in the project reads `os.environ`; code asks `load()` for a frozen
`Settings` object instead.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from .errors import ConfigError

# Code that walks a parsed value recurses once or twice per level (the YAML composer,
# merges, renders, the JSON encoder): past this, Python's recursion limit is near.
DEPTH_CEILING = 200


@dataclass(frozen=True)
class Limits:
    """Bounds on input that may be hostile, checked before it is built: a YAML alias
    bomb or a 10,000-deep document is refused in bounded time and memory, with one line
    naming the limit, instead of growing to gigabytes or overflowing the stack."""

    max_nodes: int = 100_000
    max_depth: int = 100


@dataclass(frozen=True)
class Settings:
    home: Path
    inline_limit: int = 64 * 1024
    workers: int = 64
    lease_seconds: float = 300.0
    sqlite_sync: str = "FULL"
    credential_key: str | None = None
    project: str = "noetl-local"
    payload_location: str | None = None
    firestore_prefix: str = "noetl"
    command_topic: str = "noetl-commands"
    dead_letter_topic: str = "noetl-dead-letter"
    max_deliveries: int = 5
    max_path_blocks: int = 100_000
    max_playbook_depth: int = 64
    max_children: int = 10_000
    secret_manager_host: str | None = None
    storage_emulator_host: str | None = None
    pubsub_emulator_host: str | None = None
    firestore_emulator_host: str | None = None
    fault_file: str | None = None
    query_shape_file: str | None = None
    callback_key: str | None = None
    gateway_key: str | None = None  # signs the gateway's bearer tokens; else NOETL_HOME/gateway.key
    serve_hosts: tuple[str, ...] = ()  # Host names `noetl serve` answers besides loopback
    callback_url: str | None = None
    callback_max_bytes: int = 1 << 20
    worker_url: str | None = None
    tasks_queue: str = "noetl-timers"
    tasks_location: str = "us-central1"
    tasks_emulator_host: str | None = None
    tasks_invoker: str | None = None
    trigger_topic: str = "noetl-triggers"
    scheduler_emulator_host: str | None = None
    gateway_url: str | None = None  # the CLI's gateway (NOETL_GATEWAY)
    gateway_token: str | None = None  # and its bearer token (NOETL_TOKEN)
    limits: Limits = field(default_factory=Limits)

    @property
    def storage_options(self) -> dict[str, str]:
        """fsspec options of the payload store (anonymous against the GCS emulator)."""
        if self.payload_url.startswith("gs://") and self.storage_emulator_host:
            return {"token": "anon"}
        return {}

    @property
    def log_path(self) -> Path:
        return self.home / "events.sqlite"

    @property
    def payload_url(self) -> str:
        return self.payload_location or (self.home / "payloads").resolve().as_uri()

    @property
    def catalog_path(self) -> Path:
        return self.home / "catalog"

    @property
    def credentials_path(self) -> Path:
        return self.home / "credentials"

    def with_home(self, home: Path) -> Settings:
        return replace(self, home=home)


def _int(env: Mapping[str, str], name: str, default: int, most: int | None = None) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive, got {value}")
    if most is not None and value > most:
        raise ConfigError(f"{name} must be at most {most}, got {value}")
    return value


def limits(env: Mapping[str, str] | None = None) -> Limits:
    """The input limits alone (the YAML loader and JSON readers ask for nothing else)."""
    source = os.environ if env is None else env
    default = Limits()
    return Limits(
        max_nodes=_int(source, "NOETL_MAX_NODES", default.max_nodes),
        max_depth=_int(source, "NOETL_MAX_DEPTH", default.max_depth, most=DEPTH_CEILING),
    )


def load(env: dict[str, str] | None = None) -> Settings:
    """Read the settings from the environment (or the mapping given, for tests)."""
    source = dict(os.environ) if env is None else env
    sync = source.get("NOETL_SQLITE_SYNC", "FULL").upper()
    if sync not in ("FULL", "NORMAL"):
        raise ConfigError(f"NOETL_SQLITE_SYNC must be FULL or NORMAL, got {sync!r}")
    return Settings(
        home=Path(source.get("NOETL_HOME") or ".noetl"),
        inline_limit=_int(source, "NOETL_INLINE_LIMIT", 64 * 1024),
        workers=_int(source, "NOETL_WORKERS", 64),
        lease_seconds=float(_int(source, "NOETL_LEASE_SECONDS", 300)),
        sqlite_sync=sync,
        credential_key=source.get("NOETL_CREDENTIAL_KEY") or None,
        project=source.get("GOOGLE_CLOUD_PROJECT") or "noetl-local",
        payload_location=source.get("NOETL_PAYLOAD_URL") or None,
        firestore_prefix=source.get("NOETL_FIRESTORE_PREFIX") or "noetl",
        command_topic=source.get("NOETL_COMMAND_TOPIC") or "noetl-commands",
        dead_letter_topic=source.get("NOETL_DEAD_LETTER_TOPIC") or "noetl-dead-letter",
        max_deliveries=_int(source, "NOETL_MAX_DELIVERIES", 5),
        max_path_blocks=_int(source, "NOETL_MAX_PATH_BLOCKS", 100_000),
        max_playbook_depth=_int(source, "NOETL_MAX_PLAYBOOK_DEPTH", 64),
        max_children=_int(source, "NOETL_MAX_CHILDREN", 10_000),
        secret_manager_host=source.get("SECRET_MANAGER_EMULATOR_HOST") or None,
        storage_emulator_host=source.get("STORAGE_EMULATOR_HOST") or None,
        pubsub_emulator_host=source.get("PUBSUB_EMULATOR_HOST") or None,
        firestore_emulator_host=source.get("FIRESTORE_EMULATOR_HOST") or None,
        fault_file=source.get("NOETL_FAULT_FILE") or None,
        query_shape_file=source.get("NOETL_QUERY_SHAPE_FILE") or None,
        callback_key=source.get("NOETL_CALLBACK_KEY") or None,
        gateway_key=source.get("NOETL_GATEWAY_KEY") or None,
        serve_hosts=tuple(
            h.strip().lower() for h in source.get("NOETL_SERVE_HOSTS", "").split(",") if h.strip()
        ),
        callback_url=source.get("NOETL_CALLBACK_URL") or None,
        callback_max_bytes=_int(source, "NOETL_CALLBACK_MAX_BYTES", 1 << 20),
        worker_url=source.get("NOETL_WORKER_URL") or None,
        tasks_queue=source.get("NOETL_TASKS_QUEUE") or "noetl-timers",
        tasks_location=source.get("NOETL_TASKS_LOCATION") or "us-central1",
        tasks_emulator_host=source.get("CLOUD_TASKS_EMULATOR_HOST") or None,
        tasks_invoker=source.get("NOETL_TASKS_INVOKER") or None,
        trigger_topic=source.get("NOETL_TRIGGER_TOPIC") or "noetl-triggers",
        scheduler_emulator_host=source.get("CLOUD_SCHEDULER_EMULATOR_HOST") or None,
        gateway_url=source.get("NOETL_GATEWAY") or None,
        gateway_token=source.get("NOETL_TOKEN") or None,
        limits=limits(source),
    )


LOCAL_PROJECT = "noetl-local"
_URL = re.compile(r"^https?://[^/:]+(:[1-9][0-9]*)?(/.*)?$")  # a host, and a real port if any
_ACCOUNT = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


# what `production_problems` checks, in the order it names them
PRODUCTION_VARIABLES = (
    "GOOGLE_CLOUD_PROJECT",
    "NOETL_PAYLOAD_URL",
    "NOETL_WORKER_URL",
    "NOETL_CALLBACK_URL",
    "NOETL_CALLBACK_KEY",
    "NOETL_CREDENTIAL_KEY",
    "NOETL_TASKS_INVOKER",
    "NOETL_HOME",
)


def production_problems(env: Mapping[str, str]) -> list[str]:
    """Every production variable that is missing or would fall back to a local value,
    each as `NAME: why`; empty when the instance may start."""

    def value(name: str) -> str:
        return (env.get(name) or "").strip()

    problems = []
    if value("GOOGLE_CLOUD_PROJECT") in ("", LOCAL_PROJECT):
        problems.append(f"GOOGLE_CLOUD_PROJECT: unset or the local default {LOCAL_PROJECT}")
    if not value("NOETL_PAYLOAD_URL").startswith("gs://"):
        problems.append("NOETL_PAYLOAD_URL: must be gs://bucket/prefix, not the local disk")
    for name, what in (
        ("NOETL_WORKER_URL", "the worker function's URL, for Cloud Tasks timers"),
        ("NOETL_CALLBACK_URL", "the callback function's public URL"),
    ):
        if not _URL.match(value(name)):
            problems.append(f"{name}: {what} (an http(s) URL with a real port)")
    for name, what in (
        ("NOETL_CALLBACK_KEY", "the platform key"),
        ("NOETL_CREDENTIAL_KEY", "the key static keychain values are sealed with"),
    ):
        if not value(name):
            problems.append(f"{name}: {what}, from Secret Manager")
    if value("FUNCTION_TARGET") == "gateway" and not value("NOETL_GATEWAY_KEY"):
        problems.append("NOETL_GATEWAY_KEY: the gateway's token key, from Secret Manager")
    if not _ACCOUNT.match(value("NOETL_TASKS_INVOKER")):
        problems.append("NOETL_TASKS_INVOKER: the service account Cloud Tasks acts as")
    home = Path(os.path.normpath(value("NOETL_HOME") or "."))
    if not home.is_absolute() or not home.is_relative_to("/tmp"):
        problems.append("NOETL_HOME: must be a folder under /tmp (an instance's writable disk)")
    return problems


def on_cloud_run(env: Mapping[str, str] | None = None) -> bool:
    return bool((os.environ if env is None else env).get("K_SERVICE"))


def require_production(env: Mapping[str, str] | None = None) -> None:
    """On Cloud Run (`K_SERVICE` set), refuse to start with every problem named at once."""
    source = os.environ if env is None else env
    if not source.get("K_SERVICE"):
        return
    problems = production_problems(source)
    if problems:
        raise ConfigError(
            f"{source['K_SERVICE']}: refusing to start with local settings on Cloud Run: "
            + "; ".join(problems)
        )


def prepare_gcsfs() -> None:
    """gcsfs reads this when imported; its experimental mode stalls ~60 s per call
    against an emulator (docs/architecture.md), so it is off unless set otherwise."""
    os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")


def environ(name: str) -> str | None:
    """One environment variable, for keychain entries that name one (`provider: env`)."""
    return os.environ.get(name)


def table() -> list[str]:
    """The settings table of this module's docstring, one line per row."""
    return [line for line in (__doc__ or "").splitlines() if line.startswith("|")]


def markdown() -> str:
    """docs/settings.md: `python -m noetl_core.settings > docs/settings.md` (a unit test
    checks the page against this module)."""
    return "\n".join(
        [
            "# Settings",
            "",
            "Every environment variable NoETL reads, with its default. Generated from",
            "`noetl_core/settings.py` (`python -m noetl_core.settings > docs/settings.md`);",
            "a unit test fails when the two differ. Keychain entries with `provider: env`",
            "read the variables they name; a deployed function's required settings are in",
            "[cloud.md](cloud.md).",
            "",
            *table(),
            "",
        ]
    )


if __name__ == "__main__":
    print(markdown(), end="")
