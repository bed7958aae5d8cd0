"""The event log on Firestore: one document per entry, created once, never updated.

Documents live in the collection `<prefix>_entries`, with the entry's id as document id
(ids are hex digests: no `/`). A record batch is one `WriteBatch` of `create`s, which is
atomic: if one id is taken, nothing is written. The entry itself is stored as JSON in
`data`; the fields queries need sit beside it (execution_id, kind, step, grp, the
in-flight deltas dc/da/dj, halt, resulting), each only when it has something to say.
Commit order is the commit timestamp Firestore returns for the batch, then the position
in the batch (`bi`); `seq` is built from both. Counts and sums are aggregation queries:
strongly consistent, no shared counter document that every block rewrites
(docs/architecture.md). Every query runs through `QueryRunner`; the indexes they need
on real Firestore are declared in infra/firestore.indexes.json.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Collection, Iterable, Sequence
from typing import Any

from ... import ids
from ...engine.entries import Entry, check_limits, is_result, stored_json
from ...runtime.ports import Open, Snapshot
from .firestore_queries import QueryRunner

IN_LIMIT = 30  # Firestore's most values in one `in` filter
CACHE_ENTRIES = 10_000


def _seq(committed: Any, position: int) -> int:
    micros = int(committed.timestamp() * 1_000_000)
    return micros * 1000 + position


class FirestoreEventLog:
    deferred_claims = False

    def __init__(
        self,
        project: str,
        prefix: str = "noetl",
        client: Any = None,
        *,
        shape_file: str | None = None,
    ):
        from google.cloud import firestore

        self._client = client or firestore.Client(project=project)
        self._entries = self._client.collection(f"{prefix}_entries")
        self._halts = self._client.collection(f"{prefix}_halts")
        self._queries = QueryRunner(prefix, shape_file)
        # Entries are never updated: what this instance wrote or read stays true. A warm
        # chain reads its next command from here instead of Firestore.
        self._cache: OrderedDict[str, Entry] = OrderedDict()
        self._cache_lock = threading.Lock()

    def _remember(self, entries: Iterable[Entry]) -> None:
        with self._cache_lock:
            for entry in entries:
                self._cache[entry.id] = entry
            while len(self._cache) > CACHE_ENTRIES:
                self._cache.popitem(last=False)

    def _cached(self, entry_id: str) -> Entry | None:
        with self._cache_lock:
            return self._cache.get(entry_id)

    # -- writes ---------------------------------------------------------------------

    def append(self, entries: Sequence[Entry]) -> bool:
        from google.api_core import exceptions

        if not entries:
            return True
        stored = [stored_json(e) for e in entries]
        check_limits(entries, stored)  # else Firestore refuses it, naming its own limits
        batch = self._client.batch()
        nets = _nets(entries)
        for position, (entry, text) in enumerate(zip(entries, stored, strict=True)):
            document = self._document(entry, position, text)
            net = nets.pop(entry.execution_id, None)
            if net is not None:  # on the batch's first entry of its execution
                document.update(net=True, nc=net[0], na=net[1], nj=net[2])
            batch.create(self._entries.document(entry.id), document)
        for execution_id in dict.fromkeys(e.execution_id for e in entries if e.halt):
            # A marker read by id with the block's other reads; a blind set, so a second
            # halting entry neither conflicts nor reads. Only failures and cancels write it.
            batch.set(self._halts.document(execution_id), {"halted": True})
        try:
            batch.commit()
        except (exceptions.AlreadyExists, exceptions.Conflict):
            return False
        committed = batch.commit_time  # what SERVER_TIMESTAMP became in every document
        self._remember(e.with_seq(_seq(committed, i)) for i, e in enumerate(entries))
        return True

    def _document(self, entry: Entry, position: int, data: str) -> dict[str, Any]:
        """The entry's document. Query fields are written only when they say something
        (a step, a group, a nonzero delta, a true flag): every field but `data` is
        indexed, and the emulator's commit time, like the index entries billed in
        production, grows with them. Nothing is lost: an equality filter never asks for
        the missing value, and the deltas are left out only all together when all are 0.
        `committed` and `bi` are always written (queries order by them)."""
        from google.cloud import firestore

        document: dict[str, Any] = {
            "execution_id": entry.execution_id,
            "kind": entry.kind,
            "committed": firestore.SERVER_TIMESTAMP,
            "bi": position,
            "data": data,
        }
        if entry.step is not None:
            document["step"] = entry.step
        if entry.group is not None:
            document["grp"] = entry.group
        if entry.dc or entry.da or entry.dj:
            # all three or none: an aggregation of several sums counts only the documents
            # that have every summed field
            document.update(dc=entry.dc, da=entry.da, dj=entry.dj)
        if entry.jn:
            # each change to a join's upstream under a key of that execution's join (a
            # digest: step names may hold any character); a join's check sums the key
            document["jv"] = {
                _join_key(entry.execution_id, join): net for join, net in entry.jn.items()
            }
        if entry.halt:
            document["halt"] = True
        if is_result(entry):
            document["resulting"] = True
        return document

    # -- reads ----------------------------------------------------------------------

    def _decode(self, snapshot: Any) -> Entry:
        fields = snapshot.to_dict()
        entry = Entry.from_dict(json.loads(fields["data"]))
        return entry.with_seq(_seq(fields["committed"], fields["bi"]))

    def _where(self, execution_id: str, **equal: Any) -> Any:
        from google.cloud.firestore_v1.base_query import FieldFilter

        query = self._entries.where(filter=FieldFilter("execution_id", "==", execution_id))
        for field, value in equal.items():
            if value is not None:
                query = query.where(filter=FieldFilter(field, "==", value))
        return query

    def _ordered(self, query: Any, descending: bool = False) -> Any:
        from google.cloud import firestore

        direction = firestore.Query.DESCENDING if descending else firestore.Query.ASCENDING
        return query.order_by("committed", direction=direction).order_by("bi", direction=direction)

    def get(self, entry_id: str) -> Entry | None:
        cached = self._cached(entry_id)
        if cached is not None:
            return cached
        snapshot = self._entries.document(entry_id).get()
        if not snapshot.exists:
            return None
        found = self._decode(snapshot)
        self._remember([found])
        return found

    def get_many(self, entry_ids: Sequence[str]) -> dict[str, Entry]:
        found = {i: e for i in entry_ids if (e := self._cached(i)) is not None}
        missing = [i for i in entry_ids if i not in found]
        if missing:
            refs = [self._entries.document(i) for i in missing]
            read = [self._decode(s) for s in self._client.get_all(refs) if s.exists]
            self._remember(read)
            found.update((e.id, e) for e in read)
        return found

    def snapshot(self, execution_id: str, entry_ids: Sequence[str] = ()) -> Snapshot:
        """One batched get of the entries this instance has not cached (an entry never
        changes once it exists) and of the execution's halt marker."""
        found = {i: e for i in entry_ids if (e := self._cached(i)) is not None}
        refs = [self._entries.document(i) for i in entry_ids if i not in found]
        refs.append(self._halts.document(execution_id))
        halted, read = False, []
        for snap in self._client.get_all(refs):
            if not snap.exists:
                continue
            if snap.reference.parent.id == self._halts.id:
                halted = True
            else:
                read.append(self._decode(snap))
        self._remember(read)
        found.update((e.id, e) for e in read)
        return Snapshot(found, halted)

    def find(
        self, execution_id: str, kind: str, *, step: str | None = None, group: str | None = None
    ) -> list[Entry]:
        query = self._where(execution_id, kind=kind, step=step, grp=group)
        found = (self._decode(s) for s in self._queries.stream(query))
        return sorted(found, key=lambda e: e.seq or 0)

    def count(self, execution_id: str, kind: str, *, group: str | None = None) -> int:
        query = self._where(execution_id, kind=kind, grp=group)
        return int(self._queries.aggregate(query.count(alias="n"))["n"])

    def open_work(
        self, execution_id: str, steps: Collection[str] | None = None, *, join: str | None = None
    ) -> Open:
        from google.cloud.firestore_v1.base_query import FieldFilter

        if steps is not None and not steps:
            return Open()
        if join is not None:  # a join's upstream: only the batches that changed it
            # No filter: the key is this execution's own, so the field's automatic
            # single-field index holds exactly those batches (a filter beside a sum
            # would need a composite index per key, which no index file can declare).
            summed = self._entries.sum(f"jv.{_join_key(execution_id, join)}", alias="n")
            return Open(commands=int(self._queries.aggregate(summed)["n"] or 0))
        if steps is None:  # the whole execution: only batches that changed what is open
            query = self._where(execution_id, net=True)
            aggregation = query.sum("nc", alias="c").sum("na", alias="a").sum("nj", alias="j")
            got = self._queries.aggregate(aggregation)
            return Open(int(got["c"] or 0), int(got["a"] or 0), int(got["j"] or 0))
        chunks: list[list[str] | None] = [None]
        if steps is not None:
            names = sorted(steps)
            chunks = [names[i : i + IN_LIMIT] for i in range(0, len(names), IN_LIMIT)]
        totals = {"c": 0, "a": 0, "j": 0}
        for chunk in chunks:
            query = self._where(execution_id)
            if chunk is not None:
                query = query.where(filter=FieldFilter("step", "in", chunk))
            aggregation = query.sum("dc", alias="c").sum("da", alias="a").sum("dj", alias="j")
            for alias, value in self._queries.aggregate(aggregation).items():
                totals[alias] += int(value or 0)
        return Open(totals["c"], totals["a"], totals["j"])

    def halted(self, execution_id: str) -> bool:
        return bool(self._halts.document(execution_id).get().exists)

    def last_result(self, execution_id: str) -> Entry | None:
        query = self._ordered(self._where(execution_id, resulting=True), descending=True)
        found = [self._decode(s) for s in self._queries.stream(query.limit(1))]
        return found[0] if found else None

    def entries(self, execution_id: str) -> list[Entry]:
        query = self._ordered(self._where(execution_id))
        return [self._decode(s) for s in self._queries.stream(query)]

    def entries_since(self, execution_id: str, seq: int) -> list[Entry]:
        """From the commit instant of `seq` on (the instant included: two batches can
        share a commit timestamp, so a position in a batch alone cannot order them)."""
        import datetime as dt

        from google.cloud.firestore_v1.base_query import FieldFilter

        instant = dt.datetime.fromtimestamp((seq // 1000) / 1_000_000, dt.UTC)
        query = self._where(execution_id).where(filter=FieldFilter("committed", ">=", instant))
        return [self._decode(s) for s in self._queries.stream(self._ordered(query))]

    def executions(self, limit: int = 20) -> list[Entry]:
        from google.cloud.firestore_v1.base_query import FieldFilter

        query = self._entries.where(filter=FieldFilter("kind", "==", "start"))
        newest = self._ordered(query, descending=True).limit(limit)
        return [self._decode(s) for s in self._queries.stream(newest)]

    def find_execution(self, prefix: str) -> list[str]:
        from google.cloud.firestore_v1.base_query import FieldFilter

        query = (
            self._entries.where(filter=FieldFilter("execution_id", ">=", prefix))
            .where(filter=FieldFilter("execution_id", "<", prefix + "\uf8ff"))
            .where(filter=FieldFilter("kind", "==", "start"))
            .limit(5)
        )
        return [str((s.to_dict() or {}).get("execution_id")) for s in self._queries.stream(query)]

    def close(self) -> None:
        self._client.close()


def _join_key(execution_id: str, join: str) -> str:
    return "j" + ids.digest("join", execution_id, join)


def _nets(entries: Sequence[Entry]) -> dict[str, tuple[int, int, int]]:
    """What a batch changes in each execution's open work (commands, loops, arrivals),
    where it changes anything. A chain step's record closes its command and issues the
    next (net zero), so the execution-wide sum of open work reads only the batches that
    opened or closed branches: the start, fan-outs, joins, leaves and loop waves, not
    every block run."""
    sums: dict[str, list[int]] = {}
    for entry in entries:
        total = sums.setdefault(entry.execution_id, [0, 0, 0])
        total[0] += entry.dc
        total[1] += entry.da
        total[2] += entry.dj
    return {k: (v[0], v[1], v[2]) for k, v in sums.items() if any(v)}
