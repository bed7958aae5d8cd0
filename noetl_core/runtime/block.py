"""The block runtime: one command = one atomic block, written once against the ports.

    claim -> hydrate -> execute -> persist -> record (one atomic batch) -> settle -> publish

A delivery of a command that already has its record is harmless: the block does not run
again, it settles and publishes again (duplicates die at the claim of their target).
Retry delays are timer entries; a sub-playbook leaves its step `call.pending` until the
child's terminal entry completes it. Embedded and Google Cloud backends share this code.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import bounded, callbacks, engine, ids
from ..engine import entries as E
from ..engine import versions
from ..engine.entries import Command, Entry
from ..engine.scope import merge
from ..errors import (
    ClaimConflict,
    ExecutionNotFound,
    LimitError,
    NoetlError,
    TemplateError,
    WorkloadError,
)
from ..keychain import Credentials, CredentialStore, SecretCache, sealing
from ..playbook.loader import LoadedPlaybook
from ..settings import Settings
from ..templating import ResultView
from ..tools.base import ToolCall
from . import children, claims, cursor, execute, faults, limits, payloads, settle, waits
from .executions import Execution, ExecutionCache
from .hydrate import PathContext
from .ports import Clock, CommandBus, EventLog, Note, PayloadStore, Snapshot, Timer

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

    from ..adapters.locks import ExecutionLocks
    from ..adapters.schedule_jobs import ScheduleJobs

log = logging.getLogger(__name__)
Listener = Callable[[Sequence[Entry]], None]


@dataclass
class _Tail:
    """The block a worker thread is running: its final commit may be handed on."""

    ex: Execution
    command: Command
    attempt: int
    key: tuple[str, int]
    handed: bool = False


def new_execution_id(now: float) -> str:
    """Time-ordered and decimal (`ids.execution_id_at`): usable unquoted in SQL."""
    return ids.execution_id_at(now, int.from_bytes(os.urandom(4), "big"))


class Runtime(ExecutionCache):
    """Runs blocks: one `handle` per note (the block protocol), executions started
    here, what the runtime knows of executions inherited from `ExecutionCache`."""

    def __init__(
        self,
        *,
        log: EventLog,
        bus: CommandBus,
        payloads: PayloadStore,
        timer: Timer,
        clock: Clock,
        settings: Settings,
        catalog: Any = None,
        credentials: Credentials | None = None,
        owners: ExecutionLocks | None = None,
        schedule_jobs: ScheduleJobs | None = None,
    ):
        self.credentials = credentials or CredentialStore(
            settings.credentials_path, settings.credential_key
        )
        super().__init__(log=log, payloads=payloads, clock=clock, settings=settings)
        self.secret_cache = SecretCache()
        self.sealer = sealing.for_settings(settings)
        self.callback_key = callbacks.load_key(settings.callback_key, settings.home)
        self.bus = bus
        self.timer = timer
        self.catalog = catalog
        # embedded: which executions this process runs (`recovery`); the cloud has leases
        self.owners = owners
        # what fires the catalog's schedules (`schedules.publish`); embedded: `noetl serve`
        if schedule_jobs is None:
            from ..adapters.schedule_jobs import NoScheduleJobs

            schedule_jobs = NoScheduleJobs()
        self.schedule_jobs = schedule_jobs
        self.abandoned = 0  # blocks closed while their code still runs (`abandon`)
        host = os.uname().nodename if hasattr(os, "uname") else os.environ.get("COMPUTERNAME", "")
        self.worker_id = f"{host or 'host'}-{os.getpid()}"
        self._side: ThreadPoolExecutor | None = None
        self._running: dict[tuple[str, int], str] = {}  # (command, attempt) -> execution
        self._local = threading.local()  # the block each worker thread runs (`_Tail`)
        self._listeners: list[Listener] = []
        self._terminal = threading.Condition()

    # -- starting executions ------------------------------------------------------------

    def start(
        self,
        loaded: LoadedPlaybook,
        workload: Mapping[str, Any] | None = None,
        *,
        parent: dict[str, Any] | None = None,
        execution_id: str | None = None,
    ) -> str:
        """Record an execution's start and publish its entry command."""
        return self.start_once(loaded, workload, execution_id, parent=parent)[0]

    def start_once(
        self,
        loaded: LoadedPlaybook,
        workload: Mapping[str, Any] | None,
        execution_id: str | None,
        *,
        parent: dict[str, Any] | None = None,
        subject: str | None = None,
    ) -> tuple[str, bool]:
        """`start`, also saying whether this call started it: a start with an id already
        taken (a duplicate trigger, a redelivered child start) publishes again, no more.
        The stored text has its static keychain values sealed; `subject` (who asked, e.g.
        a gateway token's) is recorded in the start entry."""
        if workload is not None and not isinstance(workload, Mapping):
            raise WorkloadError(
                f"the workload must be a JSON object, got {type(workload).__name__}"
            )
        loaded = self.sealer.seal(loaded)
        bounded.check_depth(workload, "the workload", self.settings.limits)
        merged = merge(loaded.playbook.workload, dict(workload or {}))
        try:
            merged = json.loads(payloads.to_json(merged))
        except (TypeError, ValueError) as exc:
            raise WorkloadError(f"the workload is not JSON: {exc}") from None
        now = self.clock.now()
        execution_id = execution_id or new_execution_id(now)
        meta = loaded.playbook.metadata
        header = {
            "playbook": {
                "name": meta.name,
                "path": loaded.path,
                "version": meta.version,
                "digest": loaded.digest,
                "file": loaded.file,
                "tree": loaded.tree,
            },
            "source": loaded.source,
        }
        if subject is not None:
            header["subject"] = subject
        # its blocks here will not parse the stored source again
        reach = self.blueprint(loaded).graph.reach
        batch = engine.start(execution_id, loaded.playbook, header, merged, parent, now)
        owned = self.owners is None or self.owners.take(execution_id)
        new = self.append(batch, reach)
        if owned:  # else another live process started it and runs it
            self.bus.publish(settle.issued_notes(batch))
        return execution_id, new

    # -- log writes, listeners, terminal waits ------------------------------------------

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def append(
        self, batch: Sequence[Entry], reach: Mapping[str, frozenset[str]] | None = None
    ) -> bool:
        """Append a batch (`reach`: the joins' reach sets of a starting execution, which
        the log cannot look up yet)."""
        batch = self._prepared(batch, reach)
        if not self.log.append(batch):
            return False
        self._appended(batch)
        return True

    def _prepared(
        self, batch: Sequence[Entry], reach: Mapping[str, frozenset[str]] | None = None
    ) -> list[Entry]:
        def reach_of(execution_id: str) -> Mapping[str, frozenset[str]]:
            if reach is not None:
                return reach
            return self.execution(execution_id).blueprint.graph.reach

        folded = E.fold_claim(batch)
        if reach is None or reach:  # a block's own batch says when its playbook has no join
            folded = E.with_join_nets(reach_of, folded)
        limit = self.settings.inline_limit
        return [payloads.spill_entry(self.payloads, self._masked(e), limit) for e in folded]

    def _appended(self, batch: Sequence[Entry]) -> None:
        for entry in batch:
            if "nodes" in entry.body:
                self._remember_nodes(entry.id, entry.body["nodes"])
        for listener in self._listeners:
            listener(batch)
        if any(e.kind == "terminal" for e in batch):
            with self._terminal:
                self._terminal.notify_all()

    def _masked(self, entry: Entry) -> Entry:
        """The entry with every secret resolved for its execution masked."""
        redactor = self.secret_cache.redactor(entry.execution_id)
        return entry.evolve(body=redactor.scrub(entry.body)) if redactor else entry

    def on_terminal(self, ex: Execution, terminal: Entry) -> None:
        """An execution ended: its parent's step completes, which may end the parent and
        complete the grandparent's step, and so on. On one thread these run one after
        another from a queue, not nested, so a tree of any depth unwinds in constant
        stack."""
        self.secret_cache.drop(ex.id)
        if self.owners is not None:
            self.owners.release(ex.id)
        queue = self._local.__dict__.get("resuming")
        if queue is not None:
            queue.append((ex, terminal))
            return
        queue = self._local.resuming = deque([(ex, terminal)])
        try:
            while queue:
                children.resume_parent(self, *queue.popleft())
        finally:
            self._local.resuming = None

    def wait(self, execution_id: str, timeout: float | None = None) -> Entry | None:
        """Block the caller (never a worker) until the execution's terminal entry exists."""
        deadline = None if timeout is None else self.clock.now() + timeout
        with self._terminal:
            while True:
                found = self.log.get(E.terminal_id(execution_id))
                if found is not None:
                    return found
                left = 0.5 if deadline is None else min(0.5, deadline - self.clock.now())
                if left <= 0:
                    return None
                self._terminal.wait(left)

    # -- one block ----------------------------------------------------------------------

    def handle(self, note: Note) -> None:
        key = (note.command_id, note.attempt)
        with self._lock:
            if key in self._running:
                return
            self._running[key] = note.execution_id
        tail: _Tail | None = None
        try:
            try:
                ex = self.execution(note.execution_id)
            except ExecutionNotFound:  # commands are recorded before they are published
                log.warning("dropping a note for unknown execution %s", note.execution_id)
                return
            snapshot = None
            if self.log.deferred_claims:
                snapshot = self._snapshot(ex, note.command_id, note.attempt)
                found = snapshot.found
            else:  # a shared log claims first: the command alone is read before
                found = self.log.get_many(self.command_sources(ex, note.command_id))
            command = self.command_in(ex, note.command_id, found)
            if command is None:
                log.warning("dropping a note for unknown command %s", note.command_id)
                return
            tail = self._local.tail = _Tail(ex, command, note.attempt, key)
            try:
                if snapshot is None:
                    claims.claim_first(self, ex, command, note.attempt)
                else:
                    self.run_block(ex, command, note.attempt, snapshot=snapshot)
            except ClaimConflict:
                raise
            except Exception as exc:  # a failure of the block itself, not of the tool
                self._local.tail = None
                if not self.log.deferred_claims and not isinstance(exc, LimitError):
                    self._report_failed(ex, command, exc)
                    raise  # redelivered; its release entry lets the next delivery take over
                # recorded at once: on the embedded log nothing redelivers; a record over
                # the log's limits would be over them on every delivery
                self._block_failed(ex, command, note.attempt, exc)
        finally:
            self._local.tail = None
            end_block = getattr(self.log, "end_block", None)
            if end_block is not None:
                end_block()
            if tail is None or not tail.handed:
                with self._lock:
                    self._running.pop(key, None)

    def _report_failed(self, ex: Execution, command: Command, exc: Exception) -> None:
        masked = self.secret_cache.redactor(ex.id).text(f"{type(exc).__name__}: {exc}")
        log.error("block %s of %s failed: %s", command.id, ex.id, masked)

    def _block_failed(self, ex: Execution, command: Command, attempt: int, exc: Exception) -> None:
        """Record a failure of the block itself (embedded log: nothing redelivers it)."""
        self._report_failed(ex, command, exc)
        self._fail_block(ex, command, attempt, exc)

    def side_reads(self) -> ThreadPoolExecutor:
        """A small pool for reads that run beside a write (the claim's halt check)."""
        from concurrent.futures import ThreadPoolExecutor

        with self._lock:
            if self._side is None:
                self._side = ThreadPoolExecutor(2, thread_name_prefix="noetl-side-read")
            return self._side

    def _snapshot(self, ex: Execution, command_id: str, attempt: int) -> Snapshot:
        """One read of what deciding to run this attempt needs (and the command itself)."""
        wanted = [
            *self.command_sources(ex, command_id),
            E.done_id(ex.id, command_id),
            E.attempt_id(ex.id, command_id, attempt),
            E.pending_id(ex.id, command_id, attempt),
        ]
        return self.log.snapshot(ex.id, wanted)

    def run_block(
        self,
        ex: Execution,
        command: Command,
        attempt: int,
        crashes: int = 0,
        snapshot: Snapshot | None = None,
    ) -> None:
        done_id = E.done_id(ex.id, command.id)
        retry_id = E.attempt_id(ex.id, command.id, attempt)
        pending_id = E.pending_id(ex.id, command.id, attempt)
        snapshot = snapshot or self._snapshot(ex, command.id, attempt)
        found = snapshot.found
        if done_id in found:
            self.resettle(ex, found[done_id])
            return
        if retry_id in found:
            due = found[retry_id].body["retry"]["due"]
            self.timer.schedule(Note(ex.id, command.id, attempt + 1), due)
            return
        if pending_id in found:
            if "wait" in found[pending_id].body:  # a callback's or a wait's timer came due
                waits.on_timer(self, ex, command, attempt, found[pending_id], snapshot.halted)
            return  # a child execution completes it
        try:
            claim = claims.claim(self, ex, command, attempt, crashes)
        except claims.Takeover as takeover:
            if takeover.crashes >= self.settings.max_deliveries:
                claims.dead_letter(self, ex, command, takeover)
                return
            self.run_block(ex, command, takeover.attempt, takeover.crashes)
            return
        try:
            self.run_claimed(ex, command, attempt, snapshot.halted, claim)
        except Exception as exc:
            if not self.log.deferred_claims:
                claims.release_after(self, ex, command, attempt, exc)
            raise

    def run_claimed(
        self,
        ex: Execution,
        command: Command,
        attempt: int,
        halted: bool,
        claim: Sequence[Entry] = (),
    ) -> None:
        """Run an attempt this worker holds (`claim`: its deferred claim entries)."""
        claim = list(claim)
        if halted:
            reason = "cancelled" if self.log.get(E.cancel_id(ex.id)) else "execution_failed"
            error = {
                "kind": "halted",
                "code": reason,
                "message": f"not run: {reason}",
                "retryable": False,
            }
            self.commit(
                ex, [*claim, engine.close(command, attempt, "skipped", error, self.clock.now())]
            )
            return
        refused = limits.on_path(self.settings, command)
        if refused is not None:
            limits.refuse(self, ex, command, attempt, refused, claim)
            return
        loop = ex.blueprint.step(command.step).loop
        if command.kind == "loop" and loop is not None and loop.is_cursor:
            cursor.activate(self, ex, command, attempt, claim)
        elif command.kind == "loop":
            self._activate(ex, command, attempt, claim)
        elif command.kind == "frame":
            cursor.run_frame(self, ex, command, attempt, claim)
        else:
            self._execute(ex, command, attempt, claim)

    def _activate(self, ex: Execution, command: Command, attempt: int, claim: list[Entry]) -> None:
        step = ex.blueprint.step(command.step)
        assert step.loop is not None
        names = self.names(ex, command)
        try:
            items = children.loop_items(step, names)
            width = children.loop_width(step, names)
        except NoetlError as exc:
            self.conclude(
                ex, command, attempt, execute.StepRun("error", error=exc.to_dict()), names, claim
            )
            return
        key = payloads.key(ex.id, step.step, command.id, "items")
        items_ref, _ = payloads.persist(self.payloads, items, key, self.settings.inline_limit)
        batch = engine.activate(
            self.scene(ex), command, attempt, len(items), items_ref, names, ResultView([]), width
        )
        self.commit(ex, [*claim, *batch])

    def _execute(self, ex: Execution, command: Command, attempt: int, claim: list[Entry]) -> None:
        step = ex.blueprint.step(command.step)
        secrets = self.secrets(ex)
        names = self.names(ex, command, secrets)
        context = PathContext(names, versions.Tries(self.node), command.frame, self.view_of)
        resume = None
        if attempt > 1:
            previous = self.log.get(E.attempt_id(ex.id, command.id, attempt - 1))
            resume = children.resume_state(self, previous)
        inv = execute.Invocation(
            ex.id, command.id, attempt, step.step, self, secrets, self.tables(command)
        )
        timeout = waits.callback_timeout(step)
        if timeout is not None:
            names["callback"] = waits.callback_names(self, ex, command, attempt, timeout)
        faults.point(self.settings, "claimed", step.step)
        run = execute.run_step(step, names, inv, context, resume)
        faults.point(self.settings, "executed", step.step)
        if timeout is not None and run.status == "ok":
            due = names["callback"]["expires"]
            waits.start(self, ex, command, attempt, "callback", due, run.value, claim)
            return
        self.conclude(ex, command, attempt, run, names, claim)

    def conclude(
        self,
        ex: Execution,
        command: Command,
        attempt: int,
        run: execute.StepRun,
        names: Mapping[str, Any],
        claim: list[Entry],
        received: bool = False,
    ) -> None:
        """Record what a step run came to: a retry, a child execution, a wait, or its
        outcome (`received`: the outcome is a callback's body)."""
        if run.status in ("retry", "continue"):
            children.schedule_retry(self, ex, command, attempt, run, claim)
            return
        if run.status == "child" and run.child is not None:
            children.start_child(self, ex, command, attempt, run.child, claim, run.resume)
            return
        if run.status == "wait":
            due = self.clock.now() + run.delay
            waits.start(self, ex, command, attempt, "timer", due, None, claim)
            return
        outcome = self._outcome(ex, command, attempt, run)
        try:
            batch = self._record(ex, command, attempt, outcome, names)
        except TemplateError as exc:
            if not outcome.ok:
                raise
            # The step's `set` or an arc failed to render (a refused mutation, a division
            # by zero): the step fails with that error, which recovery arcs may route,
            # rather than the block failing (redelivered on a shared log).
            failed = engine.Outcome("error", error=exc.to_dict(), view=ResultView(None))
            batch = self._record(ex, command, attempt, failed, names)
        if received:
            head = batch[0]
            body = {**head.body, "callback_received": True}
            batch = [head.evolve(events=("callback.received", *head.events), body=body), *batch[1:]]
        self.commit(ex, [*claim, *batch])

    def _record(
        self,
        ex: Execution,
        command: Command,
        attempt: int,
        outcome: engine.Outcome,
        names: Mapping[str, Any],
    ) -> list[Entry]:
        scene = self.scene(ex)
        if command.kind == "iteration":
            return engine.record_iteration(
                scene,
                ex.blueprint.step(command.step),
                command,
                attempt,
                outcome,
                names,
            )
        return engine.record(scene, command, attempt, outcome, names)

    def _outcome(
        self, ex: Execution, command: Command, attempt: int, run: execute.StepRun
    ) -> engine.Outcome:
        meta = dict(run.meta)
        meta.pop("action", None)
        meta.pop("to", None)
        tracing = ex.blueprint.step(command.step).tracing
        if tracing is not None:  # upstream's hints: recorded, not acted on
            meta["tracing"] = tracing
        if run.log:
            meta["log"] = run.log[-execute.MAX_LOG_CHARS :]
        if run.status != "ok":
            return engine.Outcome(
                "error", error=run.error, view=ResultView(None), meta=meta, patches=run.patches
            )
        step = ex.blueprint.step(command.step)
        key = payloads.key(ex.id, step.step, command.id, attempt, "result")
        output = ex.blueprint.playbook.result_output(step)
        select = output.selection() if output else ()
        limit = self.settings.inline_limit
        if output is not None and output.inline_max_bytes is not None:
            limit = min(output.inline_max_bytes, payloads.MAX_INLINE)
        redactor = self.secret_cache.redactor(ex.id)
        try:
            ref, view = payloads.persist(
                self.payloads,
                run.value,
                key,
                limit,
                select,
                redactor,
                output.mode if output else "auto",
                self.settings.inline_limit,
            )
        except payloads.InlineTooLarge as exc:
            error = {**exc.to_dict(), "message": f"step {step.step}: {exc.message}"}
            return engine.Outcome(
                "error", error=error, view=ResultView(None), meta=meta, patches=run.patches
            )
        return engine.Outcome("ok", result=ref, view=view, meta=meta, patches=run.patches)

    def _fail_block(self, ex: Execution, command: Command, attempt: int, exc: Exception) -> None:
        error = {
            "kind": "internal",
            "code": type(exc).__name__,
            "retryable": False,
            "message": f"step {command.step}: the block failed: {exc}",
        }
        entry = engine.close(command, attempt, "error", error, self.clock.now())
        claim = (
            []
            if not self.log.deferred_claims
            else [
                Entry(
                    id=E.claim_id(ex.id, command.id, attempt),
                    execution_id=ex.id,
                    kind="claim",
                    events=("command.claimed", "command.started", "step.enter"),
                    ts=self.clock.now(),
                    step=command.step,
                    command_id=command.id,
                    attempt=attempt,
                    body={"worker": self.worker_id},
                )
            ]
        )
        if self.log.get(claim[0].id if claim else "") is not None:
            claim = []
        self.commit(ex, [*claim, entry])

    # -- record, settle, publish --------------------------------------------------------

    def commit(self, ex: Execution, batch: Sequence[Entry]) -> None:
        """Append a block's batch, then settle and publish what it made. On a log that
        can commit later (`append_then`), a block's commit is handed to the next group
        commit and the worker goes on: settling and publishing run once it is durable,
        and a failure there is recorded as the block's own."""
        tail = self._local.__dict__.get("tail")
        append_then = getattr(self.log, "append_then", None)
        own = all(e.execution_id == ex.id for e in batch)
        batch = self._prepared(batch, ex.blueprint.graph.reach if own else None)
        if tail is None or append_then is None:
            self._committed(ex, batch, self.log.append(batch))
            return
        append_then(batch, lambda ok, error: self._committed_later(ex, batch, ok, error, tail))
        tail.handed = True  # not if append_then refused the batch (over the log's limits)

    def _committed_later(
        self,
        ex: Execution,
        batch: Sequence[Entry],
        ok: bool,
        error: BaseException | None,
        tail: _Tail,
    ) -> None:
        saved = self._local.__dict__.pop("tail", None)
        try:
            try:
                if error is not None:
                    raise error
                self._committed(ex, batch, ok)
            except Exception as exc:
                self._block_failed(tail.ex, tail.command, tail.attempt, exc)
        finally:
            self._local.tail = saved
            with self._lock:
                self._running.pop(tail.key, None)

    def _committed(self, ex: Execution, batch: Sequence[Entry], ok: bool) -> None:
        if not ok:
            head = next((e for e in batch if e.kind != "claim"), None)
            existing = self.log.get(head.id) if head is not None else None
            if existing is not None:
                self.resettle(ex, existing)
            return
        self._appended(batch)
        head = batch[0]
        if head.step is not None:
            faults.point(self.settings, "recorded", head.step)
        self.bus.publish(settle.settle(self, ex, batch))
        if head.step is not None:
            faults.point(self.settings, "published", head.step)

    def resettle(self, ex: Execution, head: Entry) -> None:
        """Redo steps 7-8 for a record that is already in the log."""
        self.bus.publish(self.resettled(ex, head))

    def resettled(self, ex: Execution, head: Entry) -> list[Note]:
        """Step 7 again for a record already in the log; the notes step 8 would publish."""
        made: list[Entry] = [head]
        for command_id in head.body.get("issued", ()):
            issued = self.log.get(E.issue_id(ex.id, command_id))
            if issued is not None:
                made.append(issued)
        ended = head.body.get("cursor", {}).get("end")  # a cursor slot's end (engine.cursor)
        for entry_id in (
            *head.body.get("arrived", ()),
            *head.body.get("signals", ()),
            *([ended] if ended else []),
        ):
            stored = self.log.get(entry_id)
            if stored is not None:
                made.append(stored)
        return list(settle.settle(self, ex, made))

    # -- services lent to tools ---------------------------------------------------------

    def load(self, ref: Mapping[str, Any]) -> Any:
        return payloads.load(self.payloads, dict(ref))

    def run_tool(self, tool: Any, input: Mapping[str, Any], call: ToolCall) -> Any:
        inv = execute.Invocation(
            call.execution_id,
            call.command_id,
            call.attempt,
            call.step,
            self,
            call.secrets,
            call.tables,
        )
        value, log_text = execute.call_tool(
            tool, input, call.names, inv, f"step {call.step}: workbook {tool.kind}", call.context
        )
        call.log.write(log_text)
        return value

    # -- cancellation -------------------------------------------------------------------

    def cancel(self, execution_id: str, reason: str = "cancelled by request") -> None:
        children.cancel(self, self.execution(execution_id), reason)

    def running_here(self, execution_id: str) -> set[str] | None:
        """The commands of `execution_id` this process's workers run now, when this
        process runs that execution (holds its lock); None when it does not (another
        process does, or the backend has no execution locks)."""
        if self.owners is None or not self.owners.held(execution_id):
            return None
        with self._lock:
            return {command for (command, _), ex in self._running.items() if ex == execution_id}

    def abandon(self) -> int:
        """Close as cancelled the blocks this process still runs for halted executions
        (a cancel, a failure) because their user code does not return, so those
        executions can end now; a block that returns later finds its record refused (ids
        are created once) and changes nothing. Returns how many blocks were closed."""
        from ..tools import isolate

        with self._lock:
            running = list(self._running.items())
        error = {
            "kind": "cancelled",
            "code": "abandoned",
            "retryable": False,
            "message": "cancelled while its code was still running; the code was left behind",
        }
        closed = 0
        for (command_id, attempt), execution_id in running:
            if not self.log.halted(execution_id):
                continue
            isolate.stop(execution_id)
            if "noetl_core.tools.shell" in sys.modules:  # its programs, when any ran here
                sys.modules["noetl_core.tools.shell"].stop(execution_id)
            ex = self.execution(execution_id)
            if self.log.get(E.done_id(ex.id, command_id)) is not None:
                continue
            command = self.command(ex, command_id)
            claim = claims.claim(self, ex, command, attempt, 0)
            closing = engine.close(command, attempt, "skipped", error, self.clock.now())
            self.commit(ex, [*claim, closing])
            closed += 1
        self.abandoned += closed
        return closed


def child_execution_id(parent_execution_id: str, command_id: str, attempt: int) -> str:
    return ids.derived_execution_id("child", parent_execution_id, command_id, attempt)
