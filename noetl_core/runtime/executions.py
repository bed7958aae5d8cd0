"""What a runtime knows of executions: their blueprints (a playbook parsed once per
process), their start headers, the scope-version nodes frames point to, and the names a
command's templates read. Everything here is read from the event log and cached; nothing
is ever invalidated, because entries are never updated.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .. import engine
from ..engine import entries as E
from ..engine import versions
from ..engine.entries import Command
from ..errors import ExecutionNotFound
from ..keychain import Credentials, SecretCache, Secrets
from ..playbook.loader import LoadedPlaybook, load_text
from ..settings import Settings
from ..templating import ResultView
from . import payloads
from .blueprint import Blueprint
from .hydrate import names_for
from .ports import Clock, EventLog, PayloadStore

NODE_CACHE_ENTRIES = 4096
EXECUTION_CACHE_ENTRIES = 1000


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


class ExecutionCache:
    credentials: Credentials
    secret_cache: SecretCache

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
            loaded = load_text(header["source"], header["playbook"].get("file") or "<stored>")
            blueprint = self.blueprint(loaded)
        found = Execution(
            execution_id,
            blueprint,
            header["workload"],
            header["parent"],
            header["playbook"].get("tree"),
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
        return nodes[pos]

    def _remember_nodes(self, entry_id: str, nodes: list[dict[str, Any]]) -> None:
        with self._lock:
            self._nodes[entry_id] = nodes
            if len(self._nodes) > NODE_CACHE_ENTRIES:
                self._nodes.popitem(last=False)

    def command(self, ex: Execution, command_id: str) -> Command:
        issued = self.log.get(E.issue_id(ex.id, command_id))
        if issued is None:
            raise ExecutionNotFound(f"execution {ex.id} has no command {command_id}")
        return Command.from_dict(issued.body["command"])

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
