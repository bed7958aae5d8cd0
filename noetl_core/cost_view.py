"""`noetl cost EXEC`: what an execution costs at Google Cloud list prices, per block and
in total, from the operations its event log records.

Counted from the log (the same entries on every backend):

- **worker invocations and compute**: one invocation per claimed attempt (a claim
  entry, or on the embedded log a claim folded into the record, `body.claimed`), plus
  one per timer or callback that resolved a wait; compute from the claim's time to the
  attempt's record, billed per 100 ms (`costs.compute_seconds`) at the worker's
  declared memory and CPU (`infra/deployment.json`);
- **Firestore writes**: every entry is one document, plus a halt marker per halting
  entry, plus on the embedded log the claim each record carries folded in (Firestore
  writes it as its own document);
- **Pub/Sub**: per command issued (issue entries and loop iterations), one message in
  its block's Publish request and one push delivery, each request billed at least the
  table's minimum bytes;
- **Cloud Storage**: one Class A write per payload reference an entry holds (results,
  loop items, values by reference), with its bytes;
- **Cloud Tasks**: per retry, wait or callback timeout recorded, the task created and
  its push delivery (2 operations).

Estimated, and marked so (the log does not see them): Firestore reads (per block, the
bench's measured reads per chain block, `BLOCK_READS`; per settling entry, the reads its
check makes: a join arrival's sum, a signal's count, a tally bucket, `loop.done`'s read
of the iterations, the terminal's halt read), the push that redelivered a command after a failed
delivery (a takeover's claim counts its crashes), a Class B read per payload written, a
month's storage of the payload bytes. Not included at all: deliveries the log does not
record (Pub/Sub duplicates, a delivery refused while another worker holds the lease),
network egress, logging.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from . import costs
from .engine import entries as E
from .engine import loops
from .engine.entries import Entry

# Firestore document reads per worker block, measured by `python bench/cloud.py cost` on
# the emulator stack for a chain of small python steps (README, "Deploying"): the
# command's get on a cold instance and the halt marker read beside the claim.
BLOCK_READS = 1.13
BUCKET = 16  # a tally bucket's members (docs/architecture.md, "Settling without scans")
MESSAGE_ID_BYTES = 16  # a Pub/Sub message id, as the emulator and Pub/Sub give them
WAIT_SECONDS = 0.1  # compute of the delivery that resolves a wait: one billing unit
UNSEEN = (
    "deliveries the log does not record (Pub/Sub duplicates, a delivery refused while "
    "another worker holds the lease): each would add an invocation (>= 100 ms billed), "
    "a push delivery and about 2 Firestore reads"
)


@dataclass
class Row:
    """One block (a claimed attempt), or the execution's start, or its settling."""

    kind: str  # block | start | settling
    step: str | None = None
    command_id: str | None = None
    attempt: int = 0
    claimed_at: float | None = None
    ended_at: float | None = None
    entries: int = 0
    counted: costs.Usage = field(default_factory=costs.Usage)
    estimated: costs.Usage = field(default_factory=costs.Usage)
    messages: int = 0
    gcs_bytes: int = 0

    @property
    def label(self) -> str:
        return self.step or f"({self.kind})"

    @property
    def seconds(self) -> float:
        if self.claimed_at is None or self.ended_at is None:
            return 0.0
        return max(0.0, self.ended_at - self.claimed_at)


@dataclass(frozen=True)
class Report:
    execution_id: str
    target: str
    rows: tuple[Row, ...]
    counted: costs.Bill
    estimated: costs.Bill
    row_costs: tuple[float, ...]
    vcpu: float
    gib: float
    playbook: str

    @property
    def total(self) -> float:
        return self.counted.total + self.estimated.total


def _refs(value: Any) -> Iterator[dict[str, Any]]:
    """Payload references held anywhere in an entry's body."""
    if isinstance(value, dict):
        if isinstance(value.get("uri"), str) and "size" in value:
            yield value
            return
        for v in value.values():
            yield from _refs(v)
    elif isinstance(value, list):
        for v in value:
            yield from _refs(v)


def _claimed_at(entry: Entry) -> float | None:
    if entry.kind == "claim":
        return entry.ts
    claimed = entry.body.get("claimed")
    return float(claimed["at"]) if isinstance(claimed, dict) and "at" in claimed else None


def _message_bytes(execution_id: str, command_id: str, attempt: int = 1) -> int:
    note = {"execution_id": execution_id, "command_id": command_id, "attempt": attempt}
    return len(json.dumps(note, separators=(",", ":"))) + 20 + MESSAGE_ID_BYTES


RECORD_KINDS = ("done", "attempt", "pending", "release")


def account(
    entries: Iterable[Entry], table: costs.PriceTable, vcpu: float, gib: float
) -> list[Row]:
    """The rows of an execution's log: its start, one per claimed attempt in the order
    they were claimed, then its settling (entries no single block's record holds)."""
    log = list(entries)
    start = Row("start")
    settling = Row("settling")
    blocks: dict[tuple[str, int], Row] = {}
    latest: dict[str, Row] = {}
    start_ts = next((e.ts for e in log if e.kind == "start"), None)

    def block(entry: Entry) -> Row:
        key = (entry.command_id or "", entry.attempt)
        row = blocks.get(key)
        if row is None:
            row = blocks[key] = Row("block", entry.step, entry.command_id, entry.attempt)
        latest[key[0]] = row
        return row

    def row_of(entry: Entry) -> Row:
        if entry.kind == "start":
            return start
        if entry.kind in ("claim", *RECORD_KINDS) and entry.command_id:
            return block(entry)
        if entry.kind == "arrive" and entry.command_id in latest:
            return latest[entry.command_id or ""]
        return settling

    owner: list[Row | None] = []
    issuer: dict[str, Row] = {}
    for entry in log:  # who wrote each entry; which record issued which command
        if entry.kind == "issue":
            owner.append(None)
            continue
        row = row_of(entry)
        owner.append(row)
        at = _claimed_at(entry)
        if at is not None and row.kind == "block":
            row.claimed_at = at
        for command_id in entry.body.get("issued", ()) or ():
            issuer[command_id] = row
    least = float(table["pubsub_throughput"].extra["min_bytes_per_request"])
    for entry, held in zip(log, owner, strict=True):
        # an issue entry was written by its issuer's batch
        writer = held or issuer.get(entry.command_id or "")
        _add(writer or (start if entry.ts == start_ts else settling), entry, log, least, vcpu, gib)
    ordered = sorted(blocks.values(), key=lambda r: (r.claimed_at is None, r.claimed_at or 0))
    for row in ordered:
        if row.claimed_at is None:  # a record without a claim (closed unrun by a cancel)
            continue
        vcpu_s, gib_s = costs.compute_seconds(1, row.seconds, vcpu, gib)
        row.counted += costs.Usage(invocations=1, vcpu_seconds=vcpu_s, gib_seconds=gib_s)
        row.estimated += costs.Usage(firestore_reads=BLOCK_READS)
    return [start, *ordered, settling]


def _add(
    row: Row, entry: Entry, log: Sequence[Entry], least: float, vcpu: float, gib: float
) -> None:
    """One entry's operations, added to the row of the block that wrote it."""
    row.entries += 1
    # a document each, a halt marker beside a halting entry, and the claim the embedded
    # log folds into a record (Firestore writes it as its own document)
    writes = 1 + (1 if entry.halt else 0) + (1 if "claimed" in entry.body else 0)
    row.counted += costs.Usage(firestore_writes=writes)
    if entry.kind in RECORD_KINDS and row.kind == "block" and row.ended_at is None:
        row.ended_at = entry.ts
    if entry.kind == "pending" and "wait" in entry.body:
        # the timer (or callback timeout) task, and the delivery that resolves the wait
        vcpu_s, gib_s = costs.compute_seconds(1, WAIT_SECONDS, vcpu, gib)
        row.counted += costs.Usage(invocations=1, tasks_operations=2)
        row.estimated += costs.Usage(vcpu_seconds=vcpu_s, gib_seconds=gib_s)
    if entry.kind == "claim" and int(entry.body.get("crashes") or 0) > 0:
        # a takeover after a failed delivery: Pub/Sub pushed the message again
        row.estimated += costs.Usage(pubsub_bytes=least)
    if entry.kind == "attempt" and "retry" in entry.body:
        row.counted += costs.Usage(tasks_operations=2)  # the retry's task and its push
    reads = 0.0  # settling reads (estimated): what each check reads
    if entry.kind in ("arrive", "signal", "terminal"):
        reads += 1
    if loops.tally_of(entry) is not None:
        reads += min(BUCKET, int(entry.body["wave"][1]))
    if entry.kind == "loopdone":
        reads += _loop_length(entry, log)
    row.estimated += costs.Usage(firestore_reads=reads)
    issued: list[str] = []
    if entry.kind == "issue" and entry.command_id:
        issued.append(entry.command_id)
    issued += E.issued_iterations(entry)
    if issued:  # a message each in the block's Publish requests, and a push each
        sizes = [_message_bytes(entry.execution_id, c) for c in issued]
        requests = [sum(sizes[i : i + 1000]) for i in range(0, len(sizes), 1000)]
        row.messages += len(sizes)
        billable = sum(max(least, float(b)) for b in [*requests, *sizes])
        row.counted += costs.Usage(pubsub_bytes=billable)
    stored = {r["uri"]: int(r.get("size") or 0) for r in _refs(entry.body)}
    if stored:
        row.gcs_bytes += sum(stored.values())
        row.counted += costs.Usage(gcs_class_a=len(stored))
        row.estimated += costs.Usage(
            gcs_class_b=len(stored), gcs_gib_months=sum(stored.values()) / costs.GIB
        )


def _loop_length(loopdone: Entry, log: Sequence[Entry]) -> float:
    """`loop.done` reads the iterations once: the loop's length, from its activation."""
    for entry in log:
        if entry.kind == "done" and entry.command_id == loopdone.command_id:
            shape = entry.body.get("loop") or {}
            return float(shape.get("length", 0))
    return 0.0


def report(
    entries: Iterable[Entry],
    execution_id: str,
    target: str,
    table: costs.PriceTable | None = None,
    declaration: Mapping[str, Any] | None = None,
    playbook: str = "",
) -> Report:
    table = table or costs.load_table()
    vcpu, gib = costs.function_shape(table, "worker", declaration)
    rows = account(entries, table, vcpu, gib)
    counted = sum((r.counted for r in rows), costs.Usage())
    estimated = sum((r.estimated for r in rows), costs.Usage())
    row_costs = tuple(
        costs.price(r.counted, table).total + costs.price(r.estimated, table).total for r in rows
    )
    return Report(
        execution_id,
        target,
        tuple(rows),
        costs.price(counted, table),
        costs.price(estimated, table),
        row_costs,
        vcpu,
        gib,
        playbook,
    )


def _usage(u: costs.Usage) -> dict[str, float]:
    return {k: v for k, v in asdict(u).items() if k in costs.FIELDS and v}


def _line(line: costs.Line, estimated: bool) -> dict[str, Any]:
    return {
        "service": line.service,
        "description": line.description,
        "item": line.key,
        "quantity": line.quantity,
        "unit": line.unit,
        "rate": line.rate,
        "cost": line.cost,
        "estimated": estimated,
        "price_verified": line.verified,
    }


def priced_as(target: str) -> str:
    if target == "embedded":
        return (
            "ran on the embedded default: priced as the same execution would cost on Google Cloud"
        )
    return f"ran on {'the emulator stack' if target == 'emulators' else 'Google Cloud'}"


def as_json(rep: Report) -> dict[str, Any]:
    return {
        "execution_id": rep.execution_id,
        "playbook": rep.playbook,
        "target": rep.target,
        "priced_as": priced_as(rep.target) + " at list prices",
        "as_of": rep.counted.as_of,
        "currency": rep.counted.currency,
        "free_tier": False,
        "worker": {"vcpu": rep.vcpu, "gib": rep.gib},
        "blocks": [
            {
                "row": r.kind,
                "step": r.step,
                "command_id": r.command_id,
                "attempt": r.attempt,
                "duration_ms": round(r.seconds * 1000, 3),
                "entries": r.entries,
                "messages": r.messages,
                "gcs_bytes": r.gcs_bytes,
                "counted": _usage(r.counted),
                "estimated": _usage(r.estimated),
                "cost": cost,
            }
            for r, cost in zip(rep.rows, rep.row_costs, strict=True)
        ],
        "lines": [_line(x, False) for x in rep.counted.lines]
        + [_line(x, True) for x in rep.estimated.lines],
        "total": rep.total,
        "not_included": [UNSEEN, "network egress, logging, taxes, free tiers"],
    }


def render(rep: Report) -> str:
    out = [
        f"execution {rep.execution_id} ({rep.playbook}): {priced_as(rep.target)}, at list "
        f"prices as of {rep.counted.as_of} ({rep.counted.currency}, without free tiers); "
        f"worker {rep.vcpu:g} vCPU, {rep.gib:g} GiB (infra/deployment.json)",
        "per block (~ marks estimated operations):",
        f"  {'step':<22} {'command':<18} {'att':>3} {'ms':>9} {'writes':>6} {'~reads':>7} "
        f"{'msgs':>4} {'gcs':>3} {'tasks':>5} {'cost $':>11}",
    ]
    for r, cost in zip(rep.rows, rep.row_costs, strict=True):
        ms = f"{r.seconds * 1000:.1f}" if r.kind == "block" else "-"
        out.append(
            f"  {r.label:<22.22} {_short(r.command_id):<18.18} "
            f"{(r.attempt if r.kind == 'block' else '-')!s:>3} {ms:>9} "
            f"{r.counted.firestore_writes:>6g} {r.estimated.firestore_reads:>7.2f} "
            f"{r.messages:>4} {r.counted.gcs_class_a:>3g} {r.counted.tasks_operations:>5g} "
            f"{cost:>11.8f}"
        )
    out.append("counted from the log:")
    out.extend(_lines(rep.counted, ""))
    out.append("estimated (the log cannot see these):")
    out.extend(_lines(rep.estimated, " [estimated]"))
    out.append(f"not included: {UNSEEN}; network egress, logging")
    out.append(
        f"total: ${rep.total:.8f} (counted ${rep.counted.total:.8f} + estimated "
        f"${rep.estimated.total:.8f})"
    )
    return "\n".join(out)


def _short(command_id: str | None) -> str:
    """A command id for a column: its head, and a loop iteration's index whole."""
    if not command_id:
        return "-"
    iteration = E.iteration_of(command_id)
    if iteration is None:
        return command_id[:12]
    return f"{iteration[0][:12]}.{iteration[1]}"


def _lines(bill: costs.Bill, mark: str) -> list[str]:
    rows = []
    for line in bill.lines:
        unverified = "" if line.verified else " [price unverified]"
        rows.append(
            f"  {line.service}: {line.description}: {costs._num(line.quantity)} {line.unit} "
            f"x {line.rate} = ${line.cost:.8f}{unverified}{mark}"
        )
    return rows or ["  (none)"]


def main(rt: Any, execution_id: str, target: str, as_json_out: bool) -> int:
    """Print the cost of an execution of this runtime's log."""
    header = rt.log.get(E.start_id(execution_id))
    path = header.body.get("playbook", {}).get("path", "") if header is not None else ""
    rep = report(rt.log.entries(execution_id), execution_id, target, playbook=str(path))
    if as_json_out:
        print(json.dumps(as_json(rep), default=str))
    else:
        print(render(rep))
    return 0


__all__ = ["BLOCK_READS", "Report", "Row", "account", "as_json", "main", "render", "report"]
