"""`noetl`: upstream NoETL's verbs on the embedded default.

    noetl run FILE|CATALOG_PATH [--set k=v]... [--workload JSON|@file] [--json]
    noetl validate FILE...
    noetl status [EXEC]          noetl events EXEC         noetl replay EXEC [--at N]
    noetl cost EXEC [--json]     noetl rerun EXEC STEP [--attempt N]
    noetl register FILE|DIR      noetl catalog list        noetl cancel EXEC
    noetl register credential -f FILE | --directory DIR    noetl credentials list
    noetl token create --subject S --scope invoke [--scope read]... --paths 'reports/*'...
                       [--ttl SECONDS] [--target emulators|gcp]

Through a gateway: `--gateway URL` (or NOETL_GATEWAY) on `run PATH`, `status`, `events`,
`logs`, `cancel`, `register FILE|DIR`, `catalog list` and `schedules list` sends them to that
gateway over HTTP (`gateway/verbs.py`) with the bearer token `--token` (or NOETL_TOKEN).
Without a token, a gateway on this machine (a loopback address) gets one minted here for
five minutes from the local gateway key; any other needs one from `noetl token create`,
which signs with the platform key: NOETL_GATEWAY_KEY or NOETL_HOME/gateway.key, and with
`--target emulators|gcp` the Secret Manager secret `noetl-gateway-key`.

Exit codes: 0 completed (or ok), 1 failed / cancelled / invalid, 2 usage.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import bounded, settings
from .errors import CatalogError, ConfigError, NoetlError, WorkloadError

if TYPE_CHECKING:
    from .engine.entries import Entry
    from .keychain import Credentials
    from .playbook.loader import LoadedPlaybook
    from .runtime.block import Runtime
    from .view import Progress

# Each verb imports what it uses when it runs (the runtime, the playbook model, the HTTP
# server, the keychain): `noetl validate` never builds a runtime, `noetl run` never
# imports the server unless a step waits for a callback.


def _parse_value(raw: str, what: str, limits: settings.Limits) -> Any:
    """A `--set` value: JSON when it parses as JSON, else the text itself."""
    try:
        return bounded.json_loads(raw, what, limits)
    except ValueError:
        return raw


def workload_from(args: argparse.Namespace, limits: settings.Limits) -> dict[str, Any]:
    workload: dict[str, Any] = {}
    if args.workload:
        text = args.workload
        if text.startswith("@"):
            try:
                text = Path(text[1:]).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
                raise WorkloadError(f"--workload {args.workload}: cannot read: {why}") from None
        try:
            what = f"--workload {args.workload}" if args.workload.startswith("@") else "--workload"
            workload = bounded.json_loads(text, what, limits)
        except ValueError as exc:
            raise WorkloadError(f"--workload is not JSON: {exc}") from None
        if not isinstance(workload, dict):
            raise WorkloadError(f"--workload must be a JSON object, got {type(workload).__name__}")
    for item in args.set or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise WorkloadError(f"--set {item!r}: expected key=value")
        node = workload
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise WorkloadError(f"--set {item!r}: {part} is not a mapping")
        node[parts[-1]] = _parse_value(value, f"--set {key}", limits)
    return workload


def _target(rt: Runtime, target: str) -> LoadedPlaybook:
    from .playbook.loader import load_file

    if Path(target).is_file():
        return load_file(target)
    if target.endswith((".yaml", ".yml")) or target.startswith((".", "/")):
        raise CatalogError(f"playbook file {target!r} does not exist (nor is it a catalog path)")
    path, _, version = target.partition("@")
    loaded: LoadedPlaybook = rt.catalog.resolve(path, version or None)  # `@1`, `@v1`, `@latest`
    return loaded


@contextmanager
def runtime_for(args: argparse.Namespace, conf: settings.Settings) -> Iterator[Runtime]:
    """The embedded runtime, or a client of the emulator stack / Google Cloud (its
    blocks run in the worker functions; this process starts, watches and reads)."""
    if getattr(args, "backend", "embedded") == "embedded":
        from . import embedded

        with embedded.runtime(conf) as rt:
            yield rt
        return
    if args.backend == "emulators":
        require_emulators(conf)
    rt = build_remote(conf, args.backend)
    try:
        yield rt
    finally:
        rt.timer.close()  # type: ignore[attr-defined]


STACK_HINT = "start the stack with `make emulators` and export the environment it prints"


def require_emulators(conf: settings.Settings) -> None:
    """Every emulator this client talks to is named and answers: else one line saying
    which (Google's clients would look for credentials instead, or retry a closed port
    for about a minute)."""
    wanted = {
        "FIRESTORE_EMULATOR_HOST": conf.firestore_emulator_host,
        "PUBSUB_EMULATOR_HOST": conf.pubsub_emulator_host,
    }
    if conf.payload_url.startswith("gs://"):
        wanted["STORAGE_EMULATOR_HOST"] = conf.storage_emulator_host
    if conf.worker_url:
        wanted["CLOUD_TASKS_EMULATOR_HOST"] = conf.tasks_emulator_host
    missing = [name for name, host in wanted.items() if not host]
    if missing:
        raise ConfigError(f"--target emulators: {', '.join(missing)} not set; {STACK_HINT}")
    for name, host in wanted.items():
        if not _answers(str(host)):
            raise ConfigError(
                f"--target emulators: nothing answers at {name}={host}; is the emulator "
                f"stack running? ({STACK_HINT})"
            )


def _answers(host: str, timeout: float = 2.0) -> bool:
    """Whether a TCP connection to `host` (`host:port`, or a URL) opens."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(host if "://" in host else f"tcp://{host}")
    try:
        with socket.create_connection((parts.hostname or "", parts.port or 80), timeout):
            return True
    except (OSError, ValueError):
        return False


def build_remote(conf: settings.Settings, backend: str) -> Runtime:
    """The Google Cloud runtime's client, or one line when Google has no credentials."""
    from google.auth.exceptions import DefaultCredentialsError

    from . import cloud

    try:
        return cloud.build(conf)
    except DefaultCredentialsError:
        raise ConfigError(
            f"--target {backend}: no Google credentials found (run `gcloud auth "
            "application-default login` or set GOOGLE_APPLICATION_CREDENTIALS)"
        ) from None


def via_gateway(args: argparse.Namespace, conf: settings.Settings, verb: str) -> int | None:
    """The verb's exit code when it went to a gateway (`--gateway`, NOETL_GATEWAY);
    None when no gateway is named and it runs here."""
    if not (getattr(args, "gateway", None) or conf.gateway_url):
        if getattr(args, "token", None):
            raise WorkloadError("--token goes with --gateway URL (or NOETL_GATEWAY)")
        return None
    from .gateway import verbs

    return verbs.dispatch(verb, args, conf)


def cmd_run(args: argparse.Namespace, conf: settings.Settings) -> int:
    from .view import Progress, print_result

    remote = via_gateway(args, conf, "run")
    if remote is not None:
        return remote
    workload = workload_from(args, conf.limits)
    with runtime_for(args, conf) as rt:
        loaded = _target(rt, args.target)
        if not args.json and Path(args.target).is_file():
            warn_unknown_names(args.target)
        progress = Progress(sys.stderr, quiet=args.json)
        remote = args.backend != "embedded"
        if remote:
            register_children(rt, loaded)
        else:
            rt.subscribe(progress)
            server = serve_callbacks(rt, loaded)
        execution_id = rt.start(loaded, workload)
        progress.started(execution_id, loaded)
        watcher = watch(rt, execution_id, progress) if remote else None
        terminal, why = await_end(rt, execution_id, args.timeout)
        if watcher is not None:
            watcher.join(timeout=5)
        if not remote and server is not None:
            server.stop()
        if not remote:
            tell_interrupted(rt)
        if why:
            said = f"did not finish within {args.timeout}s" if why == "timeout" else why
            state = terminal.body.get("status") if terminal else "cancelling"
            print(f"noetl: execution {execution_id} {said}; it is {state}", file=sys.stderr)
            return 130 if why == "interrupted" else 1
        assert terminal is not None
        print_result(rt, execution_id, terminal, as_json=args.json)
        return 0 if terminal.body.get("status") == "completed" else 1


def warn_unknown_names(file: str) -> None:
    """Before a file runs: the names its templates read that nothing defines (each would
    render as nothing), as `noetl validate` warns about them."""
    from .playbook.loader import check_file

    _, warnings = check_file(file)
    for where, message in warnings:
        print(f"warning: {where}: {message}", file=sys.stderr)


GRACE = 0.5  # seconds a cancelled execution's running blocks get before they are abandoned


def await_end(rt: Runtime, execution_id: str, timeout: float | None) -> tuple[Entry | None, str]:
    """Wait for the execution's terminal entry; (terminal, why the wait ended early: "",
    "timeout" or "interrupted"). A timeout or Ctrl-C cancels the execution; once it is
    cancelled (here or by another process), its blocks get `GRACE` seconds, then those
    still running user code are abandoned (`Runtime.abandon`), so the CLI ends promptly
    with the execution recorded as cancelled, whatever the code is doing."""
    from .engine import entries as E

    deadline = None if timeout is None else time.monotonic() + timeout
    why, halted_at = "", None
    while True:
        try:
            left = 0.25 if deadline is None else max(0.0, min(0.25, deadline - time.monotonic()))
            terminal = rt.wait(execution_id, left)
            if terminal is not None:
                return terminal, why
            now = time.monotonic()
            if deadline is not None and now >= deadline and not why:
                why = "timeout"
                rt.cancel(execution_id, "timed out waiting in `noetl run`")
            if halted_at is None and rt.log.get(E.cancel_id(execution_id)) is not None:
                halted_at = now
            if halted_at is not None and now - halted_at >= GRACE:
                rt.abandon()
                return rt.wait(execution_id, GRACE), why
        except KeyboardInterrupt:
            if not why:
                why = "interrupted"
                rt.cancel(execution_id, "interrupted in `noetl run`")


def tell_interrupted(rt: Runtime) -> None:
    from .runtime import recovery

    left = recovery.interrupted(rt)
    if left:
        print(
            f"noetl: {len(left)} interrupted execution(s) can be resumed: `noetl resume` "
            f"(all) or `noetl resume {left[-1]}`; `noetl serve` resumes them itself",
            file=sys.stderr,
        )


def cmd_resume(args: argparse.Namespace, conf: settings.Settings) -> int:
    from .runtime import recovery
    from .view import print_result, resolve_id

    with runtime_for(args, conf) as rt:
        wanted = [resolve_id(rt, args.execution)] if args.execution else recovery.interrupted(rt)
        if not wanted:
            print("noetl: no interrupted execution to resume", file=sys.stderr)
            return 0
        failed = 0
        for execution_id in wanted:
            delivered = recovery.resume(rt, execution_id)
            print(f"resuming {execution_id}: {delivered} command(s) delivered", file=sys.stderr)
            terminal, why = await_end(rt, execution_id, args.timeout)
            if terminal is None:
                print(f"noetl: execution {execution_id} {why or 'did not end'}", file=sys.stderr)
                return 130 if why == "interrupted" else 1
            print_result(rt, execution_id, terminal, as_json=args.json)
            failed += terminal.body.get("status") != "completed"
        return 1 if failed else 0


def serve_callbacks(rt: Runtime, loaded: LoadedPlaybook) -> Any:
    """A local endpoint for the callbacks this playbook's steps wait for (if any)."""
    from .runtime.waits import callback_timeout

    if rt.settings.callback_url or not any(
        callback_timeout(s) is not None for s in loaded.playbook.workflow
    ):
        return None
    from .serve import Server

    server = Server(rt).start()
    print(f"callbacks: {server.url}/callbacks/<token>", file=sys.stderr)
    return server


def cmd_serve(args: argparse.Namespace, conf: settings.Settings) -> int:
    from .schedules import Scheduler
    from .serve import Server, warn_if_exposed

    def log(line: str) -> None:
        print(f"noetl serve: {line}", flush=True)

    with runtime_for(args, conf) as rt:
        server = Server(rt, args.host, args.port, log=log)  # bound: a busy port ends here
        warn_if_exposed(server)  # before anything is served
        stop = threading.Event()
        scheduler: Scheduler | None = None
        repairs: threading.Thread | None = None
        try:
            server.start()
            scheduler = Scheduler(rt, log=log).start()
            print(
                f"noetl serve: {server.url}  (gateway at /v1, callbacks at /callbacks/<token>; "
                "schedules of the catalog fire; Ctrl-C stops)",
                flush=True,
            )
            print(
                f"noetl serve: viewer: {server.login_url()}  (one-time login link, valid 5 "
                "minutes)",
                flush=True,
            )
            repairs = threading.Thread(target=repair, args=(rt, stop), name="noetl-repair")
            repairs.start()
            stop.wait()
        except KeyboardInterrupt:  # Ctrl-C, at any moment from here on
            pass
        finally:
            stop.set()
            if repairs is not None:
                repairs.join()
            if scheduler is not None:
                scheduler.stop()
            server.stop()
    return 0


REPAIR_EVERY = 5.0  # seconds between `noetl serve`'s looks for interrupted executions


def repair(rt: Runtime, stop: threading.Event) -> None:
    """Resume every execution a crash interrupted (another process killed, or this
    server's previous run), now and every `REPAIR_EVERY` seconds."""
    from .runtime import recovery

    while not stop.is_set():
        for execution_id in recovery.interrupted(rt):
            try:
                delivered = recovery.resume(rt, execution_id)
            except NoetlError as exc:  # taken by another process meanwhile, or unreadable
                print(f"noetl serve: cannot resume {execution_id}: {exc.message}", flush=True)
                continue
            print(f"noetl serve: resumed {execution_id} ({delivered} commands)", flush=True)
        stop.wait(REPAIR_EVERY)


def cmd_schedules(args: argparse.Namespace, conf: settings.Settings) -> int:
    import datetime as dt

    from .schedules import due

    remote = via_gateway(args, conf, "schedules")
    if remote is not None:
        return remote
    now = dt.datetime.now(dt.UTC)
    with runtime_for(args, conf) as rt:
        found = due(rt.catalog)
        if not found:
            print(
                "noetl: no scheduled playbook in the catalog (`metadata.schedule`)", file=sys.stderr
            )
        for _loaded, schedule in found:
            upcoming = schedule.next_after(now)
            local = upcoming.astimezone(schedule.zone()).isoformat(timespec="minutes")
            print(f"{schedule.path}  {schedule.cron!r} {schedule.timezone}  next {local}")
    return 0


def register_children(rt: Runtime, loaded: LoadedPlaybook, tree: str | None = None) -> None:
    """Sub-playbooks named by a literal path, found in the playbook's tree (the first
    playbook's folder, at every depth), go to the remote catalog first: workers cannot
    read this machine's files."""
    from .catalog import find_in_tree
    from .playbook.loader import load_file

    tree = tree or loaded.tree
    if tree is None:
        return
    for step in loaded.playbook.workflow:
        tools = step.tool if isinstance(step.tool, list) else [step.tool]
        for tool in tools:
            path = tool.fields().get("path") if tool.kind == "playbook" else None
            if isinstance(path, str) and "{{" not in path and not rt.catalog.versions(path):
                found = find_in_tree(path, Path(tree))
                if found is not None:
                    rt.catalog.register(found)
                    register_children(rt, load_file(found), tree)


def watch(rt: Runtime, execution_id: str, progress: Progress) -> threading.Thread:
    """Feed the progress printer from the remote log (blocks run elsewhere)."""

    def poll() -> None:
        seen: set[str] = set()
        while True:
            fresh = [e for e in rt.log.entries(execution_id) if e.id not in seen]
            seen.update(e.id for e in fresh)
            progress(fresh)
            if any(e.kind == "terminal" for e in fresh):
                return
            time.sleep(0.2)

    thread = threading.Thread(target=poll, name="noetl-watch", daemon=True)
    thread.start()
    return thread


def cmd_validate(args: argparse.Namespace, conf: settings.Settings) -> int:
    from .playbook.loader import check_file

    failed = 0
    for file in args.files:
        try:
            loaded, warnings = check_file(file)
        except NoetlError as exc:
            failed += 1
            print(exc.message, file=sys.stderr)
            continue
        for where, message in warnings:
            print(f"{'error' if args.strict else 'warning'}: {where}: {message}", file=sys.stderr)
        if warnings and args.strict:
            failed += 1
            continue
        steps = len(loaded.playbook.workflow)
        said = f", {len(warnings)} warning{'s' if len(warnings) > 1 else ''}" if warnings else ""
        print(f"ok: {file} ({loaded.playbook.metadata.name}, {steps} steps{said})")
        if args.graph:
            from .graphview import render

            print(render(loaded, args.format))
    return 1 if failed else 0


def cmd_graph(args: argparse.Namespace, conf: settings.Settings) -> int:
    from .graphview import render

    with runtime_for(args, conf) as rt:
        print(render(_target(rt, args.playbook), args.format))
    return 0


def cmd_logs(args: argparse.Namespace, conf: settings.Settings) -> int:
    from .view import print_logs, resolve_id

    remote = via_gateway(args, conf, "logs")
    if remote is not None:
        return remote
    with runtime_for(args, conf) as rt:
        return print_logs(rt, resolve_id(rt, args.execution), args.step)


def cmd_status(args: argparse.Namespace, conf: settings.Settings) -> int:
    from .view import print_status, resolve_id

    remote = via_gateway(args, conf, "status")
    if remote is not None:
        return remote
    with runtime_for(args, conf) as rt:
        return print_status(rt, resolve_id(rt, args.execution) if args.execution else None)


def cmd_events(args: argparse.Namespace, conf: settings.Settings) -> int:
    from .view import print_events, resolve_id

    remote = via_gateway(args, conf, "events")
    if remote is not None:
        return remote
    with runtime_for(args, conf) as rt:
        return print_events(rt, resolve_id(rt, args.execution), as_json=args.json)


def cmd_replay(args: argparse.Namespace, conf: settings.Settings) -> int:
    from .view import print_replay, resolve_id

    with runtime_for(args, conf) as rt:
        return print_replay(rt, resolve_id(rt, args.execution), args.at)


def cmd_cost(args: argparse.Namespace, conf: settings.Settings) -> int:
    from . import cost_view
    from .view import resolve_id

    with runtime_for(args, conf) as rt:
        execution_id = resolve_id(rt, args.execution)
        return cost_view.main(rt, execution_id, args.backend, args.json)


def cmd_rerun(args: argparse.Namespace, conf: settings.Settings) -> int:
    from . import rerun
    from .view import resolve_id

    with runtime_for(args, conf) as rt:
        return rerun.main(rt, resolve_id(rt, args.execution), args.step, args.attempt)


def cmd_register(args: argparse.Namespace, conf: settings.Settings) -> int:
    if args.target == "credential":
        if args.gateway:
            raise WorkloadError("credentials are registered with --target, not --gateway")
        return register_credentials(args, conf)
    if args.file or args.directory:
        raise WorkloadError("-f/--directory go with `noetl register credential`")
    remote = via_gateway(args, conf, "register")
    if remote is not None:
        return remote
    with runtime_for(args, conf) as rt:
        target = Path(args.target)
        invalid: list[tuple[Path, NoetlError]] = []
        if target.is_dir():
            done, invalid = rt.catalog.register_tree(target)
            if not done and not invalid:
                raise WorkloadError(f"no playbook files (*.yaml, *.yml) under {target}")
        else:
            done = [rt.catalog.register(target)]
        for file, error in invalid:  # each problem on a line of its own, naming the file
            for line in error.message.splitlines():
                named = line if line.startswith(str(file)) else f"{file}: {line}"
                print(f"invalid: {named}", file=sys.stderr, flush=True)
        for item in done:
            state = "registered" if item.new else "unchanged"
            print(f"{state}: {item.path} v{item.version}")
            if args.backend != "embedded":  # Cloud Scheduler jobs (`noetl serve` reads the catalog)
                from . import schedules

                schedules.publish(rt, rt.catalog.resolve(item.path))
    return 1 if invalid else 0


def credential_store(args: argparse.Namespace, conf: settings.Settings) -> Credentials:
    """The embedded file store, or with `--target emulators|gcp` the cloud runtime's
    Secret Manager (one secret per credential), where deployed functions read them."""
    from .keychain import CredentialStore, SecretManagerCredentials, providers

    if args.backend == "embedded":
        return CredentialStore(conf.credentials_path, conf.credential_key)
    return SecretManagerCredentials(conf.project, providers.secret_manager)


def register_credentials(args: argparse.Namespace, conf: settings.Settings) -> int:
    store = credential_store(args, conf)
    if args.file:
        names = store.put_file(args.file)
    elif args.directory:
        names = store.put_directory(args.directory)
    else:
        raise WorkloadError("`noetl register credential` needs -f FILE or --directory DIR")
    for name in names:
        print(f"registered credential: {name}")
    return 0


def cmd_credentials(args: argparse.Namespace, conf: settings.Settings) -> int:
    store = credential_store(args, conf)
    described = store.describe()
    if not described:
        print(
            "noetl: no credential registered (`noetl register credential -f FILE`)", file=sys.stderr
        )
    for name, kind in described:
        print(f"{name}  {kind}")
    return 0


def cmd_catalog(args: argparse.Namespace, conf: settings.Settings) -> int:
    remote = via_gateway(args, conf, "catalog")
    if remote is not None:
        return remote
    with runtime_for(args, conf) as rt:
        listed = rt.catalog.entries()
        if not listed:
            print("noetl: the catalog is empty (`noetl register FILE|DIR`)", file=sys.stderr)
        for path, versions in listed:
            plural = "s" if len(versions) > 1 else ""
            print(f"{path}  latest v{versions[-1]}  ({len(versions)} version{plural})")
    return 0


def cmd_cancel(args: argparse.Namespace, conf: settings.Settings) -> int:
    from .engine import entries as E
    from .runtime import recovery
    from .view import resolve_id

    remote = via_gateway(args, conf, "cancel")
    if remote is not None:
        return remote
    with runtime_for(args, conf) as rt:
        execution_id = resolve_id(rt, args.execution)
        ended = rt.log.get(E.terminal_id(execution_id))
        if ended is not None:
            from .view import when

            print(
                f"noetl: execution {execution_id} already ended ({ended.body.get('status')} at "
                f"{when(ended.ts)} UTC): there is nothing to cancel",
                file=sys.stderr,
            )
            return 1
        rt.cancel(execution_id, args.reason)
        if recovery.nobody_runs(rt, execution_id):  # interrupted: end it here
            recovery.resume(rt, execution_id)
            terminal, _ = await_end(rt, execution_id, 10 * GRACE)
            state = terminal.body.get("status") if terminal else "cancelling"
            print(f"execution {execution_id} {state}")
            return 0
        print(f"cancel recorded for {execution_id}")
    return 0


def cmd_token(args: argparse.Namespace, conf: settings.Settings) -> int:
    """Print a gateway token signed with the platform key: the local one (embedded), or
    with `--target emulators|gcp` the deployment's Secret Manager secret."""
    import datetime as dt

    from .gateway import tokens

    if not args.subject.strip() or args.ttl <= 0 or not all(p.strip() for p in args.paths):
        print(
            "noetl: token create needs a --subject, --paths patterns and a --ttl > 0",
            file=sys.stderr,
        )
        return 2
    if args.backend == "embedded":
        key = tokens.load_key(conf.gateway_key, conf.home)
    else:
        from . import platform_secrets

        value = platform_secrets.read(conf, platform_secrets.GATEWAY_KEY, args.backend)
        key = tokens.load_key(value, conf.home)
    now = time.time()
    scopes = sorted(set(args.scope))
    print(tokens.create(key, args.subject, scopes, list(args.paths), now, args.ttl))
    until = dt.datetime.fromtimestamp(now + args.ttl, dt.UTC).isoformat(timespec="seconds")
    print(
        f"token of {args.subject!r}: scopes {', '.join(scopes)}; paths "
        f"{', '.join(args.paths)}; expires {until}",
        file=sys.stderr,
    )
    return 0


EXEC_HELP = "an execution id, a unique prefix of one, or `last`"
FORMAT_HELP = "mermaid (default) or dot (Graphviz)"


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("noetl-gcp")
    except PackageNotFoundError:
        return "unknown (not installed)"


class VersionAction(argparse.Action):
    """`--version`, reading the installed version only when asked (not on every run)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        kwargs.update(nargs=0, default=argparse.SUPPRESS)
        super().__init__(option_strings, argparse.SUPPRESS, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        print(f"noetl {version()}")
        parser.exit()


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="noetl",
        description="Run NoETL playbooks (noetl.io/v2). An execution id may be a unique "
        "prefix of one, or `last` (the most recent execution).",
    )
    top.add_argument("--version", action=VersionAction, help="print noetl's version and exit")
    sub = top.add_subparsers(dest="verb", metavar="VERB")
    backend = argparse.ArgumentParser(add_help=False)
    backend.add_argument(
        "--target",
        dest="backend",
        choices=["embedded", "emulators", "gcp"],
        default="embedded",
        help="embedded (default), or the Google Cloud runtime: the local emulator stack "
        "(its environment from `python -m emulators.stack up`) or a deployment",
    )
    gateway = argparse.ArgumentParser(add_help=False)
    gateway.add_argument(
        "--gateway",
        metavar="URL",
        help="send this verb to the NoETL gateway at URL (default: NOETL_GATEWAY)",
    )
    gateway.add_argument(
        "--token",
        help="the gateway's bearer token (default: NOETL_TOKEN; minted here for a "
        "gateway on this machine)",
    )
    run = sub.add_parser(
        "run",
        parents=[backend, gateway],
        help="run a playbook file or catalog path and wait for it",
    )
    run.add_argument(
        "target",
        metavar="playbook",
        help="a playbook FILE, or a catalog PATH[@VERSION] (`examples/hello_world@v1`)",
    )
    run.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="workload value (JSON or text)"
    )
    run.add_argument("--workload", help="workload as JSON, or @file")
    run.add_argument("--json", action="store_true", help="print the result as JSON only")
    run.add_argument("--timeout", type=float, default=None, help="seconds to wait")
    run.add_argument(
        "--request-id", help="with --gateway: the same id (and token subject) starts once"
    )
    run.set_defaults(func=cmd_run)
    res = sub.add_parser(
        "resume", help="finish executions a crash interrupted (all, or the one named)"
    )
    res.add_argument("execution", nargs="?", help=EXEC_HELP + " (default: every interrupted one)")
    res.add_argument("--json", action="store_true", help="print each result as JSON only")
    res.add_argument("--timeout", type=float, default=None, help="seconds to wait for each")
    res.set_defaults(func=cmd_resume, backend="embedded")
    val = sub.add_parser(
        "validate",
        help="check playbook files; warn about names templates read that nothing defines",
    )
    val.add_argument("files", nargs="+", metavar="FILE", help="playbook files")
    val.add_argument("--strict", action="store_true", help="warnings are errors (exit 1)")
    val.add_argument("--graph", action="store_true", help="also print each playbook's graph")
    val.add_argument("--format", choices=["mermaid", "dot"], default="mermaid", help=FORMAT_HELP)
    val.set_defaults(func=cmd_validate)
    gr = sub.add_parser(
        "graph", parents=[backend], help="a playbook's steps and arcs as Mermaid or Graphviz dot"
    )
    gr.add_argument("playbook", help="a playbook FILE, or a catalog PATH[@VERSION]")
    gr.add_argument("--format", choices=["mermaid", "dot"], default="mermaid", help=FORMAT_HELP)
    gr.set_defaults(func=cmd_graph)
    lg = sub.add_parser(
        "logs",
        parents=[backend, gateway],
        help="what an execution's steps printed, and their errors",
    )
    lg.add_argument("execution", help=EXEC_HELP)
    lg.add_argument("step", nargs="?", help="only this step")
    lg.set_defaults(func=cmd_logs)
    st = sub.add_parser(
        "status", parents=[backend, gateway], help="an execution's state, or the recent executions"
    )
    st.add_argument("execution", nargs="?", help=EXEC_HELP + " (default: list the recent ones)")
    st.set_defaults(func=cmd_status)
    ev = sub.add_parser(
        "events", parents=[backend, gateway], help="an execution's events as a timeline"
    )
    ev.add_argument("execution", help=EXEC_HELP)
    ev.add_argument("--json", action="store_true", help="one JSON object per event")
    ev.add_argument(
        "--follow", action="store_true", help="with --gateway: follow a running execution"
    )
    ev.set_defaults(func=cmd_events)
    rp = sub.add_parser(
        "replay", parents=[backend], help="rebuild an execution's state and check its decisions"
    )
    rp.add_argument("execution", help=EXEC_HELP)
    rp.add_argument("--at", type=int, default=None, help="stop after event N (1-based)")
    rp.set_defaults(func=cmd_replay)
    cost = sub.add_parser(
        "cost", parents=[backend], help="an execution's cost at Google Cloud list prices"
    )
    cost.add_argument("execution", help="an execution id, a unique prefix of one, or `last`")
    cost.add_argument("--json", action="store_true", help="print the report as JSON")
    cost.set_defaults(func=cmd_cost)
    rr = sub.add_parser(
        "rerun",
        parents=[backend],
        help="run one recorded block again from its inputs and diff its output",
    )
    rr.add_argument("execution", help="an execution id, a unique prefix of one, or `last`")
    rr.add_argument("step", help="the step whose recorded block runs again")
    rr.add_argument("--attempt", type=int, default=None, help="the attempt to rerun (the last)")
    rr.set_defaults(func=cmd_rerun)
    reg = sub.add_parser(
        "register",
        parents=[backend, gateway],
        help="add a playbook file or directory to the catalog; `register credential -f F`",
    )
    reg.add_argument("target", help="a playbook file or directory, or the word `credential`")
    reg.add_argument("-f", "--file", help="credential JSON file ({name, type, data} or a list)")
    reg.add_argument("--directory", help="a directory of credential JSON files")
    reg.set_defaults(func=cmd_register)
    srv = sub.add_parser(
        "serve", help="the gateway (executions, events, catalog) and callbacks over HTTP"
    )
    srv.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    srv.add_argument("--port", type=int, default=8080, help="port to listen on (8080)")
    srv.set_defaults(func=cmd_serve)
    sch = sub.add_parser(
        "schedules", parents=[gateway], help="the catalog's scheduled playbooks and next fire times"
    )
    sch.add_argument("action", nargs="?", choices=["list"], default="list", help="list (default)")
    sch.set_defaults(func=cmd_schedules)
    creds = sub.add_parser(
        "credentials", parents=[backend], help="registered credentials (names and types)"
    )
    creds.add_argument("action", nargs="?", choices=["list"], default="list", help="list (default)")
    creds.set_defaults(func=cmd_credentials)
    cat = sub.add_parser("catalog", parents=[gateway], help="the catalog")
    cat.add_argument("action", nargs="?", choices=["list"], default="list", help="list (default)")
    cat.set_defaults(func=cmd_catalog)
    can = sub.add_parser(
        "cancel", parents=[backend, gateway], help="cancel an execution and its children"
    )
    can.add_argument("execution", help=EXEC_HELP)
    can.add_argument(
        "--reason", default="cancelled by `noetl cancel`", help="recorded as the error message"
    )
    can.set_defaults(func=cmd_cancel)
    tok = sub.add_parser(
        "token", parents=[backend], help="`token create`: a gateway token signed with the key"
    )
    tok.add_argument("action", choices=["create"], help="create")
    tok.add_argument("--subject", required=True, help="who the token speaks for")
    tok.add_argument(
        "--scope",
        action="append",
        required=True,
        choices=["read", "invoke", "admin"],
        help="read, invoke, admin (admin implies the others); repeat for several",
    )
    tok.add_argument(
        "--paths",
        action="append",
        required=True,
        metavar="PATTERN",
        help="catalog path pattern the token may use (`reports/*`, `*`); repeat for several",
    )
    tok.add_argument("--ttl", type=float, default=3600.0, help="seconds it lasts (3600)")
    tok.set_defaults(func=cmd_token)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    top = parser()
    args = top.parse_args(argv)
    if args.verb is None:  # `noetl` alone: what it can do
        top.print_help()
        return 0
    try:
        conf = settings.load()
        code: int = args.func(args, conf)
        return code
    except NoetlError as exc:
        print(f"noetl: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `noetl events EXEC | head`
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
