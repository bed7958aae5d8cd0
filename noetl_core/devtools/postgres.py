"""A throwaway PostgreSQL server for tests and examples.

`PostgresServer` runs `initdb` into a temporary directory, starts `postgres` on a free
loopback port in its own process group, creates a login role and a database, and hands
out a `postgres` credential for `auth:`. `stop()` shuts it down by its PID (fast
shutdown, then SIGKILL of its process group after a timeout) and removes the directory.

PostgreSQL refuses to run as root: when this process is root, the server and `initdb`
run as the `postgres` system user (the child switches user before exec, like
`runuser -u postgres`, but the PID we hold is the server's own, not a wrapper's).

    python -m noetl_core.devtools.postgres      # prints the connection as JSON, stays up

It writes the credential (with its password) to `NOETL_HOME/pg_local.json`, or the file
`--credential-file` names, readable by its owner only, for `noetl register credential
-f`: whole, once the server takes connections, and removed when it stops (a stale one
is removed at start). What it prints never holds the password.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import glob
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

SEARCH = "/usr/lib/postgresql/*/bin"
SYSTEM_USER = "postgres"
SUPERUSER = "postgres"


NEEDS_DRIVER = (
    "the PostgreSQL driver psycopg is not installed: run `.venv/bin/pip install -e "
    "'.[postgres,duckdb]'` (or `make dev`)"
)


class PostgresUnavailable(RuntimeError):
    """The server binaries are missing, or the server would not start."""


def find_binaries(pattern: str = SEARCH) -> Path:
    """The newest `/usr/lib/postgresql/<version>/bin` holding `initdb` and `postgres`
    (`NOETL_PG_BIN` names another directory)."""
    override = os.environ.get("NOETL_PG_BIN")
    candidates = [override] if override else glob.glob(pattern)
    found = [
        Path(c)
        for c in candidates
        if (Path(c) / "initdb").is_file() and (Path(c) / "postgres").is_file()
    ]
    if not found:
        where = override or pattern
        raise PostgresUnavailable(
            f"PostgreSQL server binaries (initdb, postgres) not found in {where}; "
            "install them with `apt-get install postgresql` (or set NOETL_PG_BIN)"
        )
    return max(found, key=_version_key)


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", path.parent.name)) or (0,)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class PostgresServer:
    """One private PostgreSQL server; a context manager (`with PostgresServer() as pg:`)."""

    host = "127.0.0.1"

    def __init__(
        self,
        *,
        user: str = "noetl_dev",
        dbname: str = "noetl_dev",
        password: str | None = None,
        port: int | None = None,
        bin_dir: str | Path | None = None,
        base_dir: str | Path | None = None,
        start_timeout: float = 30.0,
        stop_timeout: float = 10.0,
    ):
        self.user = user
        self.dbname = dbname
        self.password = password or secrets.token_urlsafe(18)
        self.admin_user = SUPERUSER
        self.admin_password = secrets.token_urlsafe(18)
        self.port = port or 0
        self.bin_dir = Path(bin_dir) if bin_dir else None
        self.base_dir = base_dir
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.root: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> PostgresServer:
        with self._lock:
            if self.process is not None:
                return self
            bin_dir = self.bin_dir or find_binaries()
            self.bin_dir = bin_dir
            self.root = Path(tempfile.mkdtemp(prefix="noetl-pg-", dir=self.base_dir))
            atexit.register(self.stop)
            try:
                self._initdb(bin_dir)
                self._launch(bin_dir)
                self._create_role_and_database()
            except BaseException:
                self._stop_locked()
                raise
            return self

    def stop(self) -> None:
        with self._lock:
            self._stop_locked()

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    # -- what a client needs ------------------------------------------------------------

    def connection(self) -> dict[str, Any]:
        return {
            "db_host": self.host,
            "db_port": self.port,
            "db_user": self.user,
            "db_password": self.password,
            "db_name": self.dbname,
        }

    def credential(self, name: str = "pg_local") -> dict[str, Any]:
        """A credential `{name, type: postgres, data}` for the credential store."""
        return {"name": name, "type": "postgres", "data": self.connection()}

    def dsn(self, *, admin: bool = False, dbname: str | None = None) -> str:
        user, password = (
            (self.admin_user, self.admin_password) if admin else (self.user, self.password)
        )
        db = dbname or ("postgres" if admin else self.dbname)
        return (
            f"host={self.host} port={self.port} user={user} password={password} "
            f"dbname={db} sslmode=disable"
        )

    def connect(self, *, admin: bool = False, **kwargs: Any) -> Any:
        import psycopg

        return psycopg.connect(self.dsn(admin=admin), **kwargs)

    # -- internals ----------------------------------------------------------------------

    def _as_postgres(self) -> dict[str, Any]:
        """Popen arguments that run a child as the postgres system user when we are root."""
        if os.geteuid() != 0:
            return {}
        try:
            entry = pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            raise PostgresUnavailable(
                f"running as root, and there is no {SYSTEM_USER!r} system user to run "
                "PostgreSQL as (PostgreSQL refuses root); install `postgresql`"
            ) from None
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}

    def _give_to_postgres(self, *paths: Path) -> None:
        if os.geteuid() != 0:
            return
        entry = pwd.getpwnam(SYSTEM_USER)
        for path in paths:
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def _env(self) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items() if k in ("PATH", "TZ")}
        return {**keep, "LC_ALL": "C", "LANG": "C", "HOME": str(self.root)}

    def _initdb(self, bin_dir: Path) -> None:
        assert self.root is not None
        data, sockets, pwfile = self.root / "data", self.root / "sockets", self.root / "pwfile"
        sockets.mkdir(mode=0o700)
        pwfile.write_text(self.admin_password + "\n")
        pwfile.chmod(0o600)
        self._give_to_postgres(self.root, sockets, pwfile)
        args = [
            str(bin_dir / "initdb"),
            "-D",
            str(data),
            "-U",
            self.admin_user,
            "-A",
            "scram-sha-256",
            f"--pwfile={pwfile}",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ]
        done = subprocess.run(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=self._env(),
            cwd=self.root,
            check=False,
            **self._as_postgres(),
        )
        pwfile.unlink()
        if done.returncode != 0:
            output = done.stdout.decode(errors="replace").strip()
            raise PostgresUnavailable(f"initdb failed (exit {done.returncode}):\n{output}")

    def _launch(self, bin_dir: Path) -> None:
        assert self.root is not None
        fixed = self.port != 0
        for _ in range(1 if fixed else 5):
            port = self.port if fixed else free_port(self.host)
            logfile = self.root / "server.log"
            with open(logfile, "ab") as out:
                self._give_to_postgres(logfile)
                self.process = subprocess.Popen(
                    [
                        str(bin_dir / "postgres"),
                        "-D",
                        str(self.root / "data"),
                        "-p",
                        str(port),
                        "-k",
                        str(self.root / "sockets"),
                        "-c",
                        f"listen_addresses={self.host}",
                        # a throwaway server: durability is not wanted, speed is
                        "-c",
                        "fsync=off",
                        "-c",
                        "synchronous_commit=off",
                        "-c",
                        "full_page_writes=off",
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=self._env(),
                    cwd=self.root,
                    start_new_session=True,
                    **self._as_postgres(),
                )
            self.port = port
            if self._wait_ready():
                return
            log_text = self._log_tail()
            self.process = None
            if fixed or "already in use" not in log_text:
                raise PostgresUnavailable(f"postgres did not start:\n{log_text}")
        raise PostgresUnavailable(f"postgres found no free port:\n{self._log_tail()}")

    def _wait_ready(self) -> bool:
        """True once the server accepts connections; False if it exited first."""
        import psycopg

        assert self.process is not None
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self.process.poll() is not None:
                return False
            try:
                with psycopg.connect(self.dsn(admin=True), connect_timeout=2):
                    return True
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    self._stop_locked(remove=False)
                    raise PostgresUnavailable(
                        f"postgres did not accept connections within {self.start_timeout}s:\n"
                        f"{self._log_tail()}"
                    ) from None
                time.sleep(0.05)

    def _create_role_and_database(self) -> None:
        from psycopg import sql

        with self.connect(admin=True, autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(self.user), sql.Literal(self.password)
                )
            )
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(self.dbname), sql.Identifier(self.user)
                )
            )

    def _log_tail(self, lines: int = 30) -> str:
        if self.root is None:
            return ""
        try:
            text = (self.root / "server.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _stop_locked(self, remove: bool = True) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            # SIGINT is PostgreSQL's fast shutdown: it ends open sessions instead of
            # waiting for them (SIGTERM, a smart shutdown, would wait for every client).
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGINT)
            try:
                process.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                # PostgreSQL's children each lead their own process group (setsid), so
                # kill them by PID as well as the group the server leads
                children = _children(process.pid)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                for pid in children:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                process.wait(self.stop_timeout)
        if remove and self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None
            atexit.unregister(self.stop)


def _children(parent: int) -> list[int]:
    """PIDs whose parent is `parent` (Linux /proc; empty elsewhere)."""
    found: list[int] = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            text = Path(stat).read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...; comm may hold spaces and parentheses
        fields = text[text.rfind(")") + 2 :].split()
        if len(fields) > 1 and fields[1] == str(parent):
            found.append(int(text.split(" ", 1)[0]))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m noetl_core.devtools.postgres",
        description="Run a throwaway PostgreSQL server until interrupted.",
    )
    parser.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    parser.add_argument("--name", default="pg_local", help="name of the printed credential")
    parser.add_argument("--user", default="noetl_dev", help="login role (noetl_dev)")
    parser.add_argument("--dbname", default="noetl_dev", help="database (noetl_dev)")
    parser.add_argument("--password", default=None, help="default: a random one")
    parser.add_argument(
        "--credential-file",
        default=None,
        help="where to write the credential, for `noetl register credential -f` "
        "(default: NOETL_HOME/pg_local.json)",
    )
    args = parser.parse_args(argv)
    try:
        import psycopg  # noqa: F401
    except ImportError:
        print(f"error: {NEEDS_DRIVER}", file=sys.stderr)
        return 2
    if args.credential_file is None:
        from ..settings import load

        args.credential_file = str(load().home / "pg_local.json")

    stopping = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stopping.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    path = Path(args.credential_file)
    path.unlink(missing_ok=True)  # a stale one would name a server that is gone
    try:
        server = PostgresServer(
            user=args.user, dbname=args.dbname, password=args.password, port=args.port or None
        )
        with server:
            # the file appears whole, once the server takes connections (`until [ -s ]`)
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(path.name + ".partial")
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(json.dumps(server.credential(args.name)))
            os.replace(partial, path)
            info = {  # never the password: it is in the credential file only
                "host": server.host,
                "port": server.port,
                "user": server.user,
                "dbname": server.dbname,
                "credential_name": args.name,
                "credential_file": str(path),
                "register": f"noetl register credential -f {path}",
            }
            print(json.dumps(info, indent=2), flush=True)
            while not stopping.wait(0.5):
                if not server.running:
                    print("postgres exited:\n" + server._log_tail(), file=sys.stderr)
                    return 1
        return 0
    except PostgresUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        path.unlink(missing_ok=True)  # the server is gone: so is its password
        for signum, handler in previous.items():
            signal.signal(signum, handler)


if __name__ == "__main__":
    sys.exit(main())
