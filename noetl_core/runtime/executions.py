"""What a runtime knows of executions: their blueprints (a playbook parsed once per
process), their start headers, the scope-version nodes frames point to, and the names a
command's templates read. Everything here is read from the event log and cached; nothing
is ever invalidated, because entries are never updated.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .. import engine
from ..engine import entries as E
from ..engine import versions
from ..engine.entries import Command, Entry
from ..errors import ExecutionNotFound
from ..keychain import Credentials, Sealer, SecretCache, Secrets
from ..playbook.loader import LoadedPlaybook, load_text
from ..settings import Settings
from ..templating import ResultView
from . import payloads
from .blueprint import Blueprint
from .hydrate import names_for
from .ports import Clock, EventLog, PayloadStore

NODE_CACHE_ENTRIES = 4096
EXECUTION_CACHE_ENTRIES = 1000
ITEMS_CACHE_LOOPS = 256
VALUE_CACHE_ENTRIES = 32
_ABSENT = object()


@dataclass(frozen=True)
class Execution:
    id: str
    blueprint: Blueprint
    workload: dict[str, Any]
    parent: dict[str, Any] | None
    tree: str | None = None  # where its sub-playbooks are looked for (LoadedPlaybook.tree)

    @property
    def parent_execution_id(self) -> str | None:
        return self.parent["execution_id"] if self.parent else None

    @property
    def depth(self) -> int:
        """0 for an execution started by itself; a child's is its parent's + 1."""
        return int(self.parent.get("depth", 1)) if self.parent else 0


class ExecutionCache:
    credentials: Credentials
    secret_cache: SecretCache
    sealer: Sealer

    def __init__(
        self, *, log: EventLog, payloads: PayloadStore, clock: Clock, settings: Settings
    ) -> None:
        self.log = log
        self.payloads = payloads
        self.clock = clock
        self.settings = settings
        self._blueprints: dict[str, Blueprint] = {}
        self._executions: OrderedDict[str, Execution] = OrderedDict()
        self._nodes: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
        self._items: OrderedDict[str, list[Any]] = OrderedDict()
        self._values: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def blueprint(self, loaded: LoadedPlaybook) -> Blueprint:
        with self._lock:
            found = self._blueprints.get(loaded.digest)
            if found is None:
                found = self._blueprints[loaded.digest] = Blueprint(loaded)
            return found

    def execution(self, execution_id: str) -> Execution:
        with self._lock:
            found = self._executions.get(execution_id)
        if found is not None:
            return found
        start = self.log.get(E.start_id(execution_id))
        if start is None:
            raise ExecutionNotFound(f"no execution {execution_id}")
        header = start.body
        with self._lock:
            blueprint = self._blueprints.get(header["playbook"]["digest"])
        if blueprint is None:
            source = payloads.unspill(self.payloads, header["source"])
            loaded = load_text(source, header["playbook"].get("file") or "<stored>")
            blueprint = self.blueprint(loaded)
        workload = payloads.unspill(self.payloads, header["workload"])
        found = Execution(
            execution_id, blueprint, workload, header["parent"], header["playbook"].get("tree")
        )
        with self._lock:
            self._executions[execution_id] = found
            if len(self._executions) > EXECUTION_CACHE_ENTRIES:
                self._executions.popitem(last=False)
        return found

    def scene(self, ex: Execution, ts: float | None = None) -> engine.Scene:
        now = self.clock.now() if ts is None else ts
        return engine.Scene(ex.blueprint.playbook, ex.blueprint.graph, ex.id, now, self.node)

    def node(self, ref: str) -> dict[str, Any]:
        """A scope-version node: immutable, so cached by the entry that carries it."""
        entry_id, pos = versions.split_ref(ref)
        with self._lock:
            nodes = self._nodes.get(entry_id)
        if nodes is None:
            entry = self.log.get(entry_id)
            if entry is None or "nodes" not in entry.body:
                raise ExecutionNotFound(f"scope node {ref} is not in the event log")
            nodes = entry.body["nodes"]
            self._remember_nodes(entry_id, nodes)
        node = nodes[pos]
        if E.is_spilled(node.get("v")):
            return {"v": self._spilled_value(node["v"])}
        return node

    def _spilled_value(self, held: dict[str, Any]) -> Any:
        """A value node's value, stored by reference: read once per process while in
        use (a few at a time: they are large), by its digest."""
        digest = held[E.SPILLED]["sha256"]
        with self._lock:
            found = self._values.get(digest, _ABSENT)
        if found is _ABSENT:
            found = payloads.unspill(self.payloads, held)
            with self._lock:
                self._values[digest] = found
                if len(self._values) > VALUE_CACHE_ENTRIES:
                    self._values.popitem(last=False)
        return found

    def _remember_nodes(self, entry_id: str, nodes: list[dict[str, Any]]) -> None:
        with self._lock:
            self._nodes[entry_id] = nodes
            if len(self._nodes) > NODE_CACHE_ENTRIES:
                self._nodes.popitem(last=False)

    def command_sources(self, ex: Execution, command_id: str) -> list[str]:
        """The entries a command is read from: its issue entry; for a loop iteration
        (never stored: see engine.loops), its loop's issue entry and activation."""
        iteration = E.iteration_of(command_id)
        if iteration is None:
            return [E.issue_id(ex.id, command_id)]
        return [E.issue_id(ex.id, iteration[0]), E.done_id(ex.id, iteration[0])]

    def command_in(
        self, ex: Execution, command_id: str, found: Mapping[str, Entry]
    ) -> Command | None:
        """The command, from its `command_sources` among `found`; None when they are not
        there (or name no such iteration)."""
        iteration = E.iteration_of(command_id)
        if iteration is None:
            issued = found.get(E.issue_id(ex.id, command_id))
            return None if issued is None else Command.from_dict(issued.body["command"])
        activation_id, index = iteration
        issued = found.get(E.issue_id(ex.id, activation_id))
        activation = found.get(E.done_id(ex.id, activation_id))
        if issued is None or activation is None or "loop" not in activation.body:
            return None
        shape = activation.body["loop"]
        if index >= shape["length"]:
            return None
        loop = Command.from_dict(issued.body["command"])
        item = self.items_of(activation)[index]
        return engine.iteration_command(ex.id, loop, index, item, shape["length"], shape["width"])

    def command(self, ex: Execution, command_id: str) -> Command:
        found = self.log.get_many(self.command_sources(ex, command_id))
        command = self.command_in(ex, command_id, found)
        if command is None:
            raise ExecutionNotFound(f"execution {ex.id} has no command {command_id}")
        return command

    def items_of(self, activation: Entry) -> list[Any]:
        """A loop's items, from its activation record (inline or a payload), read once
        per process for each of its iterations."""
        with self._lock:
            found = self._items.get(activation.id)
        if found is None:
            found = payloads.load(self.payloads, activation.body["items"])
            with self._lock:
                self._items[activation.id] = found
                if len(self._items) > ITEMS_CACHE_LOOPS:
                    self._items.popitem(last=False)
        return found

    def view_of(self, entry_id: str) -> ResultView:
        entry = self.log.get(entry_id)
        ref = entry.body.get("result") if entry is not None else None
        return payloads.view(self.payloads, ref)

    def secrets(self, ex: Execution) -> Secrets:
        return Secrets(
            execution_id=ex.id,
            entries=ex.blueprint.playbook.keychain,
            store=self.credentials,
            cache=self.secret_cache,
            sealer=self.sealer,
            workload=ex.workload,
        )

    def names(
        self, ex: Execution, command: Command, secrets: Secrets | None = None
    ) -> dict[str, Any]:
        names = names_for(
            playbook=ex.blueprint.playbook,
            command=command,
            workload=ex.workload,
            execution_id=ex.id,
            parent_execution_id=ex.parent_execution_id,
            view_of=self.view_of,
            wanted=ex.blueprint.names(command.step),
            tries=versions.Tries(self.node),
        )
        names["keychain"] = (secrets or self.secrets(ex)).view()
        return names

    def tables(self, command: Command) -> Callable[[str], Any]:
        """Earlier steps' results on this command's path, as Arrow tables (for duckdb)."""
        tries = versions.Tries(self.node)

        def table(step: str) -> Any:
            entry_id = tries.get(command.frame.get("results"), step)
            if entry_id is None:
                return None
            entry = self.log.get(entry_id)
            return payloads.table(self.payloads, entry.body.get("result") if entry else None)

        return table
