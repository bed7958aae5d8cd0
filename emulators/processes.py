"""Child processes for the local stack: free ports, readiness probes, process-group stops.

Every service runs in its own session (``start_new_session=True``), so its PID is also
its process-group id. The SDK's emulator launchers are shell scripts that start a java
child; stopping the group (not the PID) is what stops the java too.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

Probe = Callable[[], bool]


class ServiceError(RuntimeError):
    """A service could not be started or did not become ready."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port the kernel considers free on ``host`` right now (bind to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def tcp_probe(host: str, port: int, timeout: float = 0.5) -> Probe:
    """Ready when a TCP connection to ``host:port`` succeeds."""

    def probe() -> bool:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                return True
        except OSError:
            return False

    return probe


def http_probe(url: str, method: str = "GET", timeout: float = 1.0) -> Probe:
    """Ready when ``url`` answers with any status below 500. An answer that is not
    HTTP/1.x (the Firestore emulator's port speaks only HTTP/2 for a moment after it
    opens, and answers a GET with an HTTP/2 frame) is "not yet", not an error."""

    def probe() -> bool:
        request = urllib.request.Request(url, method=method)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                return int(answer.status) < 500
        except urllib.error.HTTPError as exc:
            return exc.code < 500
        except (OSError, ValueError, http.client.HTTPException):
            return False

    return probe


def _processes() -> list[tuple[int, list[str]]]:
    """Live (non-zombie) processes as (pid, the /proc stat fields after `comm`)."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...: comm may hold spaces and parens, split after it
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) >= 3 and fields[0] != "Z":
            found.append((int(entry.name), fields))
    return found


def group_members(pgid: int) -> list[int]:
    """Live processes whose process group is ``pgid`` (Linux ``/proc``)."""
    return [pid for pid, fields in _processes() if int(fields[2]) == pgid]


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` in the process tree (Linux ``/proc``)."""
    children: dict[int, list[int]] = {}
    for child, fields in _processes():
        children.setdefault(int(fields[1]), []).append(child)
    found, todo = [], list(children.get(pid, []))
    while todo:
        child = todo.pop()
        found.append(child)
        todo.extend(children.get(child, []))
    return found


def pid_alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2 :].split()[0] != "Z"


class Service:
    """One command in its own session, its output appended to ``log_path``.

    ``start()`` launches it and waits until ``probe()`` is true (or fails with the log's
    tail when the process exits or the deadline passes); ``stop()`` sends SIGTERM to the
    whole process group, waits, then SIGKILLs whatever is left of the group.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str | os.PathLike[str]],
        *,
        log_path: str | os.PathLike[str],
        probe: Probe | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        ready_timeout: float = 60.0,
    ) -> None:
        self.name = name
        self.argv = [str(arg) for arg in argv]
        self.log_path = Path(log_path)
        self.probe = probe
        self.env = dict(env) if env is not None else None
        self.cwd = str(cwd) if cwd is not None else None
        self.ready_timeout = ready_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.pids: list[int] = []  # every PID this service ever started (one per start)

    # -- state -------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def exited(self) -> bool:
        """Started, and the main process has ended (and was reaped)."""
        return self.process is not None and self.process.poll() is not None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    # -- lifecycle ---------------------------------------------------------------------
    def launch(self) -> Service:
        """Start the process without waiting for readiness (see ``wait_ready``)."""
        if self.running():
            raise ServiceError(f"{self.name} is already running (pid {self.pid})")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"\n=== {self.name}: {' '.join(self.argv)}\n".encode())
            log.flush()
            try:
                self.process = subprocess.Popen(
                    self.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=self.env,
                    cwd=self.cwd,
                    start_new_session=True,
                )
            except OSError as exc:
                raise ServiceError(f"{self.name}: cannot run {self.argv[0]}: {exc}") from exc
        self.pids.append(self.process.pid)
        return self

    def wait_ready(self, timeout: float | None = None) -> Service:
        deadline = time.monotonic() + (self.ready_timeout if timeout is None else timeout)
        delay = 0.02
        while True:
            if self.process is None:
                raise ServiceError(f"{self.name} was never started")
            code = self.process.poll()
            if code is not None:
                raise ServiceError(
                    f"{self.name} exited with code {code} before it was ready; "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            if self.probe is None or self.probe():
                return self
            if time.monotonic() > deadline:
                tail = self.log_tail()
                self.stop()
                raise ServiceError(
                    f"{self.name} was not ready within {self.ready_timeout:.0f}s; "
                    f"log {self.log_path}:\n{tail}"
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 0.2)

    def start(self) -> Service:
        return self.launch().wait_ready()

    def stop(self, timeout: float = 10.0) -> int | None:
        """Stop the whole process group; returns the main process's exit code."""
        process = self.process
        if process is None:
            return None
        pgid = process.pid  # start_new_session: the leader's pid is the group id
        if process.poll() is None or group_members(pgid):
            _signal_group(pgid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if process.poll() is not None and not group_members(pgid):
                    break
                time.sleep(0.05)
            if group_members(pgid) or process.poll() is None:
                _signal_group(pgid, signal.SIGKILL)
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL cannot be ignored
            return None

    def kill_group(self) -> None:
        """SIGKILL every member of the group left behind by an exited leader."""
        if self.process is not None:
            _signal_group(self.process.pid, signal.SIGKILL)
            self.process.poll()

    def restart(self) -> Service:
        self.stop()
        return self.start()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
