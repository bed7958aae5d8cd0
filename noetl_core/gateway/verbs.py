"""The CLI's verbs against a gateway (`--gateway URL`, or `NOETL_GATEWAY`): `register`,
`catalog list`, `schedules list`, `run PATH`, `status`, `events`, `cancel`, each over
HTTP (client.py) and printed like its local counterpart.

The token is `--token`, else `NOETL_TOKEN`; with neither, a gateway on this machine (a
loopback address) gets a token minted here for `LOCAL_TTL` seconds (subject: the OS
user, scope admin, every path), signed with the local gateway key (`NOETL_GATEWAY_KEY`,
else `NOETL_HOME/gateway.key`, the one a gateway on the same NOETL_HOME uses). Any other
gateway needs a token (`noetl token create`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import ipaddress
import json
import queue
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .. import settings
from ..errors import CatalogError, ConfigError, ExecutionNotFound, NoetlError, WorkloadError
from . import tokens
from .client import Event, GatewayClient, GatewayError

LOCAL_TTL = 300.0  # seconds a token minted for a gateway on this machine lasts
CANCEL_WAIT = 10.0  # seconds `run` waits for the end of what its timeout cancelled
CLAIM_EVENTS = ("command.claimed", "command.started", "step.enter")
SNAPSHOT_IDLE = 2.0  # `events` of a running execution: stop after this long silent


def gateway_url(args: argparse.Namespace, conf: settings.Settings) -> str | None:
    """The gateway named by `--gateway`, else by NOETL_GATEWAY unless `--target` names
    a runtime; None for none."""
    given = getattr(args, "gateway", None)
    backend = getattr(args, "backend", "embedded")
    if given and backend != "embedded":
        raise ConfigError(f"--gateway and --target {backend}: name one, not both")
    url = given or (conf.gateway_url if backend == "embedded" else None)
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"--gateway {url!r}: expected an http(s) URL (http://host:port)")
    return url


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def connect(args: argparse.Namespace, conf: settings.Settings) -> GatewayClient | None:
    """A client of the named gateway with its token; None when no gateway is named."""
    url = gateway_url(args, conf)
    if url is None:
        return None
    token = getattr(args, "token", None) or conf.gateway_token
    hint = ""
    if not token:
        if not is_loopback(url):
            raise ConfigError(
                f"--gateway {url}: a token is needed (--token TOKEN or NOETL_TOKEN; "
                "`noetl token create` makes one with the platform key)"
            )
        key = tokens.load_key(conf.gateway_key, conf.home)
        token = tokens.create(key, getpass.getuser(), ["admin"], ["*"], time.time(), LOCAL_TTL)
        source = "NOETL_GATEWAY_KEY" if conf.gateway_key else str(conf.home / "gateway.key")
        hint = (
            f"the token was minted with the key of {source}; does that gateway use another "
            "NOETL_HOME or NOETL_GATEWAY_KEY? pass --token"
        )
    return GatewayClient(url, token, hint=hint)


def dispatch(verb: str, args: argparse.Namespace, conf: settings.Settings) -> int | None:
    """Run `verb` through the gateway when one is named; None when none is."""
    client = connect(args, conf)
    if client is None:
        return None
    with client:
        if getattr(args, "execution", None) == "last":  # the most recent the gateway lists
            recent = client.executions(limit=1)
            if not recent:
                raise ExecutionNotFound("the gateway lists no execution yet (`last` names none)")
            args.execution = str(recent[0]["execution_id"])
        return VERBS[verb](args, conf, client)


def _err(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# -- the catalog ---------------------------------------------------------------------------


def playbook_files(target: Path) -> list[Path]:
    if target.is_dir():
        found = target.rglob("*")
        return sorted(p for p in found if p.suffix in (".yaml", ".yml") and p.is_file())
    if target.is_file():
        return [target]
    raise CatalogError(f"{str(target)!r} is neither a playbook file nor a directory")


UNREGISTRABLE = (400, 413, 422)  # the playbook's fault: listed, the others go on


def register(args: argparse.Namespace, conf: settings.Settings, client: GatewayClient) -> int:
    """POST each playbook file's YAML; one line each: registered, unchanged or invalid
    (with why, on stderr). Exit 1 when one was invalid."""
    files = playbook_files(Path(args.target))
    if not files:
        _err(f"noetl: no playbook files (*.yaml, *.yml) under {args.target}")
        return 1
    invalid = 0
    for file in files:
        try:
            source = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            invalid += 1
            _err(f"invalid: {file}: cannot read: {why}")
            continue
        try:
            done = client.register(source)
        except GatewayError as exc:
            if exc.status not in UNREGISTRABLE:
                raise
            invalid += 1
            _err(f"invalid: {file}: {exc.detail.replace('<playbook>', str(file))}")
            continue
        state = "registered" if done.get("new") else "unchanged"
        print(f"{state}: {done.get('path')} v{done.get('version')}", flush=True)
    return 1 if invalid else 0


def catalog(args: argparse.Namespace, conf: settings.Settings, client: GatewayClient) -> int:
    for item in client.catalog():
        versions = item.get("versions") or [None]
        plural = "s" if len(versions) > 1 else ""
        print(f"{item['path']}  latest v{versions[-1]}  ({len(versions)} version{plural})")
    return 0


def schedules(args: argparse.Namespace, conf: settings.Settings, client: GatewayClient) -> int:
    from zoneinfo import ZoneInfo

    for item in client.schedules():
        upcoming = str(item.get("next"))
        try:
            when = dt.datetime.fromisoformat(upcoming).astimezone(ZoneInfo(item["timezone"]))
            upcoming = when.isoformat(timespec="minutes")
        except (ValueError, KeyError, LookupError):
            pass  # printed as the gateway said it
        print(f"{item['path']}  {item.get('cron')!r} {item.get('timezone')}  next {upcoming}")
    return 0


# -- executions ----------------------------------------------------------------------------


class Progress:
    """One line per step boundary, from the event stream (the local run's `view.Progress`
    reads whole entries; the stream carries each entry's kind, step and event names). A
    loop's iterations are counted, and said once when the loop is done."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.loops: dict[str, int] = {}  # step -> iterations done, while its loop runs

    def __call__(self, event: Event) -> None:
        try:
            data = event.json()
        except ValueError:
            return
        step, names = data.get("step") or "", list(data.get("events") or [])
        kind = data.get("kind", event.event)
        line = None
        if kind == "done":  # a claim recorded with its end names itself first
            names = [n for n in names if n not in CLAIM_EVENTS]
        if kind == "done" and names == ["command.completed"]:  # a loop's activation
            self.loops[step] = 0
        elif kind == "done" and names == ["command.failed"]:
            line = f"  - {step} skipped"
        elif kind == "done":
            failed = "command.failed" in names
            if step in self.loops:
                self.loops[step] += 1
                line = f"  ✗ {step} an iteration failed" if failed else None
            else:
                line = f"  {'✗' if failed else '✓'} {step}"
        elif kind == "loopdone":
            count = self.loops.pop(step, None)
            line = f"  ✓ {step} loop done" + ("" if count is None else f" ({count} iterations)")
        elif kind == "attempt":
            line = f"  ! {step} attempt failed; retrying"
        elif kind == "pending":
            line = f"  … {step} waiting (no worker held)"
        elif kind == "terminal":
            ended = next((n for n in names if n.startswith("playbook.")), "playbook.ended")
            line = f"  = {ended.removeprefix('playbook.')}"
        if line and not self.quiet:
            _err(line)


def follow(
    client: GatewayClient,
    execution_id: str,
    on_event: Callable[[Event], None],
    timeout: float | None,
) -> str:
    """Follow the execution's events to its end; "" when it ended, "timeout" or
    "interrupted" (Ctrl-C) when it was cancelled here first (then its end is awaited
    `CANCEL_WAIT` more seconds; a second Ctrl-C stops waiting)."""
    found: queue.Queue[tuple[str, Any]] = queue.Queue()

    def pump() -> None:
        try:
            for event in client.events(execution_id):
                found.put(("event", event))
            found.put(("end", None))
        except NoetlError as exc:
            found.put(("error", exc))
        except Exception as exc:  # reported in the main thread, as one line
            found.put(("error", GatewayError(0, f"reading the event stream failed: {exc!r}")))

    threading.Thread(target=pump, name="noetl-gateway-events", daemon=True).start()
    deadline = None if timeout is None else time.monotonic() + timeout
    why, give_up = "", None
    while True:
        try:
            now = time.monotonic()
            if give_up is not None and now >= give_up:
                return why
            if not why and deadline is not None and now >= deadline:
                why, give_up = "timeout", now + CANCEL_WAIT
                _cancel_quietly(client, execution_id, "timed out waiting in `noetl run`")
            try:
                kind, item = found.get(timeout=0.25)
            except queue.Empty:
                continue
            if kind == "event":
                on_event(item)
            elif kind == "end":
                return why
            else:
                raise item
        except KeyboardInterrupt:
            if why:
                return why
            why, give_up = "interrupted", time.monotonic() + CANCEL_WAIT
            _cancel_quietly(client, execution_id, "interrupted in `noetl run`")


def _cancel_quietly(client: GatewayClient, execution_id: str, reason: str) -> None:
    """Cancel what `run` follows; one that ended meanwhile (409) is fine: its end comes."""
    try:
        client.cancel(execution_id, reason)
    except GatewayError as exc:
        if exc.status != 409:
            raise


def print_result(state: dict[str, Any], *, as_json: bool) -> None:
    """As `view.print_result` prints a local run's end."""
    out = {k: state.get(k) for k in ("execution_id", "status", "result")}
    if state.get("error"):
        out["error"] = state["error"]
    if as_json:
        print(json.dumps(out, default=str))
        return
    print(f"status: {state.get('status')}")
    if state.get("error"):
        error = state["error"]
        _err(f"error: {error.get('message') if isinstance(error, dict) else error}")
    print("result:")
    print(json.dumps(state.get("result"), indent=2, default=str))


def run(args: argparse.Namespace, conf: settings.Settings, client: GatewayClient) -> int:
    from ..cli import workload_from

    target: str = args.target
    if Path(target).is_file() or target.endswith((".yaml", ".yml")):
        raise WorkloadError(
            f"with --gateway, `noetl run` takes a catalog path: register {target} first "
            f"(`noetl register {target} --gateway {client.url}`), then run its path"
        )
    workload = workload_from(args, conf.limits)
    path, _, version = target.partition("@")
    started = client.start(path, version or None, workload, args.request_id)
    execution_id = str(started["execution_id"])
    if not args.json:
        _err(f"execution {execution_id}: {path} (gateway {client.url})")
        if not started.get("new"):
            _err(f"  request id {args.request_id!r} started it before: following it")
    why = follow(client, execution_id, Progress(quiet=args.json), args.timeout)
    state = client.execution(execution_id)
    if why:
        said = f"did not finish within {args.timeout}s" if why == "timeout" else why
        status = state.get("status")
        _err(
            f"noetl: execution {execution_id} {said}; it is "
            f"{'cancelling' if status == 'running' else status}"
        )
        return 130 if why == "interrupted" else 1
    print_result(state, as_json=args.json)
    return 0 if state.get("status") == "completed" else 1


def _when(ts: Any) -> str:
    """A time the gateway gave (epoch seconds, or ISO 8601) as `noetl status` prints it."""
    if isinstance(ts, str):
        try:
            ts = dt.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return "-"
    if not isinstance(ts, int | float):
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def status(args: argparse.Namespace, conf: settings.Settings, client: GatewayClient) -> int:
    if not args.execution:
        for item in client.executions():  # one request: the list carries each status
            status = str(item.get("status") or "-")
            when = _when(item.get("started_at"))
            print(f"{item['execution_id']}  {when}  {status:<10}  {item['path']}")
        return 0
    execution_id = args.execution
    state = client.execution(execution_id)
    drawn = client.graph(execution_id)
    print(f"execution {execution_id}: {state.get('status')}")
    print(f"playbook  {drawn.get('path')}")
    print("steps:")
    print(f"  {'step':<24} {'status':<9} {'runs':>5} {'attempts':>8}")
    for step in drawn.get("steps") or []:
        runs = int(step.get("ok", 0)) + int(step.get("failed", 0)) + int(step.get("skipped", 0))
        attempts = max(int(step.get("attempts", 0)), runs)
        name = str(step.get("name"))
        name = name if len(name) <= 24 else name[:23] + "…"
        print(f"  {name:<24} {step.get('status', '-'):<9} {runs:>5} {attempts:>8}")
    error = state.get("error")
    if error:
        print(f"error: {error.get('message') if isinstance(error, dict) else error}")
        print(f"(`noetl logs {execution_id}` shows what the steps printed)")
    elif state.get("status") == "completed":
        print("result:")
        print(json.dumps(state.get("result"), indent=2, default=str))
    return 0


def logs(args: argparse.Namespace, conf: settings.Settings, client: GatewayClient) -> int:
    from ..view import print_log_rows

    return print_log_rows(client.logs(args.execution, args.step))


def events(args: argparse.Namespace, conf: settings.Settings, client: GatewayClient) -> int:
    """The execution's events from the stream, one row each: to its end when it has
    ended (or with --follow), else what is recorded so far."""
    running = client.execution(args.execution).get("status") == "running"
    idle = SNAPSHOT_IDLE if running and not getattr(args, "follow", False) else None
    n = 0
    for event in client.events(args.execution, until_idle=idle):
        data = event.json()
        for name in data.get("events") or []:
            n += 1
            step = data.get("step") or ""
            if args.json:
                row = {"n": n, "entry": event.id, "kind": data.get("kind"), "type": name}
                print(json.dumps({**row, "step": data.get("step")}))
                continue
            print(f"{n:>5}  entry {event.id or '-':<6} {name:<20} {step:<20} {data.get('kind')}")
    return 0


def cancel(args: argparse.Namespace, conf: settings.Settings, client: GatewayClient) -> int:
    try:
        client.cancel(args.execution, args.reason)
    except GatewayError as exc:
        if exc.status != 409:  # 409: it has ended; the gateway says when, in one line
            raise
        print(f"noetl: {exc.detail}", file=sys.stderr)
        return 1
    print(f"cancel recorded for {args.execution}")
    return 0


Verb = Callable[[argparse.Namespace, settings.Settings, GatewayClient], int]
VERBS: dict[str, Verb] = {
    "register": register,
    "catalog": catalog,
    "schedules": schedules,
    "run": run,
    "status": status,
    "events": events,
    "cancel": cancel,
    "logs": logs,
}
