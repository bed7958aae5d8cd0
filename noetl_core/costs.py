"""What NoETL on Google Cloud costs at list prices: a usage, priced line by line.

The prices are data, `noetl_core/prices.json`: Google Cloud's published list prices in
USD for the declared region (us-central1, Cloud Run Tier 1; Firestore in nam5), each item
with its unit, price, free tier and the public page it was read from, and a top-level
`as_of` date. Prices change: every figure this module prints is "at list prices as of
<as_of>", and the table has to be re-read from its sources to stay true. Items whose
figure could not be confirmed on a current Google page carry `"verified": false` and a
`caveat` (the Firestore per-location prices, at the date above); Cloud Storage's free
tier was not found and is not applied.

Covered: Cloud Run functions (gen2) requests, vCPU-seconds and GiB-seconds under
request-based billing; Firestore document reads, writes, deletes and stored GiB; Pub/Sub
throughput (each publish and each push delivery at least `min_bytes_per_request`);
Cloud Storage Standard storage and Class A/B operations; Cloud Tasks operations; Cloud
Scheduler jobs; Secret Manager active versions and accesses; Artifact Registry storage;
Cloud Build minutes. Not covered: network egress, Firestore PITR/backup storage, logging
and monitoring, committed-use or negotiated discounts, taxes.

API: `load_table()` -> `PriceTable`; `Usage` (operation counts over `days`);
`price(usage, table, free_tier=False)` -> `Bill` (line items, total, `render()`);
helpers `compute_seconds`, `function_shape`, `pubsub_billable_bytes`; `idle_usage` and
`idle_cost` for a deployment with no requests.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TABLE_PATH = Path(__file__).with_name("prices.json")
DECLARATION_PATH = Path(__file__).resolve().parent.parent / "infra" / "deployment.json"
GIB = 2**30
DAYS_PER_MONTH = 30.0  # a month's free tier is pro-rated over Usage.days / 30
BILLING_GRANULARITY_S = 0.1  # Cloud Run rounds billed time up to 100 ms


@dataclass(frozen=True)
class Item:
    key: str
    service: str
    description: str
    unit: str
    per: float
    price: float
    free_amount: float | None
    free_period: str | None
    source_title: str
    source_url: str
    verified: bool = True
    caveat: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def free_allowance(self, days: float) -> float:
        """Units the free tier covers over `days`."""
        if self.free_amount is None:
            return 0.0
        if self.free_period == "day":
            return self.free_amount * days
        if self.free_period == "month":
            return self.free_amount * days / DAYS_PER_MONTH
        raise ValueError(f"{self.key}: unknown free-tier period {self.free_period!r}")


@dataclass(frozen=True)
class PriceTable:
    as_of: str
    currency: str
    region: str
    items: Mapping[str, Item]
    vcpu_by_memory_mib: Mapping[int, float]
    cpu_source: str

    def __getitem__(self, key: str) -> Item:
        return self.items[key]


def load_table(path: str | Path | None = None) -> PriceTable:
    """The price table; raises ValueError when an item lacks a price, unit or source."""
    raw = json.loads(Path(path or TABLE_PATH).read_text())
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(raw.get("as_of", ""))):
        raise ValueError("price table: `as_of` must be a YYYY-MM-DD date")
    items: dict[str, Item] = {}
    for key, it in raw["items"].items():
        source = it.get("source") or {}
        if not source.get("url") or not source.get("title"):
            raise ValueError(f"price table: {key} has no source")
        for name in ("unit", "per", "price"):
            if it.get(name) in (None, ""):
                raise ValueError(f"price table: {key} has no {name}")
        free = it.get("free")
        known = {"service", "description", "unit", "per", "price", "free", "source"}
        items[key] = Item(
            key=key,
            service=it["service"],
            description=it["description"],
            unit=it["unit"],
            per=float(it["per"]),
            price=float(it["price"]),
            free_amount=None if free is None else float(free["amount"]),
            free_period=None if free is None else str(free["period"]),
            source_title=source["title"],
            source_url=source["url"],
            verified=bool(it.get("verified", True)),
            caveat=str(it.get("caveat", "")),
            extra={k: v for k, v in it.items() if k not in known},
        )
    cpu = raw["function_cpu_by_memory"]
    return PriceTable(
        as_of=raw["as_of"],
        currency=raw["currency"],
        region=raw["region"],
        items=items,
        vcpu_by_memory_mib={int(k): float(v) for k, v in cpu["vcpu"].items()},
        cpu_source=cpu["source"]["url"],
    )


# Usage field -> price table item.
FIELDS: dict[str, str] = {
    "invocations": "run_requests",
    "vcpu_seconds": "run_vcpu_seconds",
    "gib_seconds": "run_gib_seconds",
    "firestore_reads": "firestore_reads",
    "firestore_writes": "firestore_writes",
    "firestore_deletes": "firestore_deletes",
    "firestore_gib_months": "firestore_storage",
    "pubsub_bytes": "pubsub_throughput",
    "gcs_gib_months": "gcs_standard_storage",
    "gcs_class_a": "gcs_class_a",
    "gcs_class_b": "gcs_class_b",
    "tasks_operations": "tasks_operations",
    "scheduler_job_months": "scheduler_jobs",
    "secret_version_months": "secret_versions",
    "secret_accesses": "secret_accesses",
    "artifact_gib_months": "artifact_storage",
    "build_minutes": "build_minutes",
}


@dataclass(frozen=True)
class Usage:
    """Operation counts over `days` (the period free tiers are pro-rated over).
    `pubsub_bytes` are billable bytes (see `pubsub_billable_bytes`)."""

    invocations: float = 0
    vcpu_seconds: float = 0
    gib_seconds: float = 0
    firestore_reads: float = 0
    firestore_writes: float = 0
    firestore_deletes: float = 0
    firestore_gib_months: float = 0
    pubsub_bytes: float = 0
    gcs_gib_months: float = 0
    gcs_class_a: float = 0
    gcs_class_b: float = 0
    tasks_operations: float = 0
    scheduler_job_months: float = 0
    secret_version_months: float = 0
    secret_accesses: float = 0
    artifact_gib_months: float = 0
    build_minutes: float = 0
    days: float = DAYS_PER_MONTH

    def scaled(self, factor: float) -> Usage:
        """Every count times `factor` (the period stays)."""
        return dataclasses.replace(self, **{f: getattr(self, f) * factor for f in FIELDS})

    def __add__(self, other: Usage) -> Usage:
        return dataclasses.replace(
            self, **{f: getattr(self, f) + getattr(other, f) for f in FIELDS}
        )


@dataclass(frozen=True)
class Line:
    key: str
    service: str
    description: str
    quantity: float
    unit: str
    free: float
    billable: float
    rate: str
    cost: float
    source: str
    verified: bool


@dataclass(frozen=True)
class Bill:
    lines: tuple[Line, ...]
    as_of: str
    currency: str
    free_tier: bool

    @property
    def total(self) -> float:
        return sum(line.cost for line in self.lines)

    def by_service(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for line in self.lines:
            out[line.service] = out.get(line.service, 0.0) + line.cost
        return out

    def render(self, title: str = "") -> str:
        head = title or "cost"
        tier = "with free tiers" if self.free_tier else "without free tiers"
        rows = [f"{head} at list prices as of {self.as_of} ({self.currency}, {tier}):"]
        for line in self.lines:
            mark = "" if line.verified else " [price unverified]"
            free = f", {_num(line.free)} free" if self.free_tier and line.free else ""
            rows.append(
                f"  {line.service}: {line.description}: {_num(line.quantity)} {line.unit}"
                f"{free} x {line.rate} = ${line.cost:.6f}{mark}"
            )
        rows.append(f"  total: ${self.total:.6f}")
        return "\n".join(rows)


def _num(x: float) -> str:
    if x == int(x) and abs(x) < 1e15:
        return f"{int(x):,}"
    return f"{x:,.2f}" if abs(x) >= 1 else f"{x:.4g}"


def _rate(item: Item) -> str:
    per = "" if item.per == 1 else f" per {_num(item.per)}"
    if item.key == "pubsub_throughput":
        per = " per TiB"
    return f"${item.price:.10f}".rstrip("0").rstrip(".") + per


def price(usage: Usage, table: PriceTable, free_tier: bool = False) -> Bill:
    """The itemised cost of `usage` at the table's list prices; with `free_tier`, each
    item's free allowance over `usage.days` is taken off first. Items with zero
    quantity are left out."""
    lines = []
    for name, key in FIELDS.items():
        quantity = float(getattr(usage, name))
        if quantity == 0:
            continue
        item = table[key]
        free = min(quantity, item.free_allowance(usage.days)) if free_tier else 0.0
        billable = quantity - free
        unit = "bytes" if key == "pubsub_throughput" else item.unit + ("s" * (quantity != 1))
        lines.append(
            Line(
                key=key,
                service=item.service,
                description=item.description,
                quantity=quantity,
                unit=unit,
                free=free,
                billable=billable,
                rate=_rate(item),
                cost=billable * item.price / item.per,
                source=item.source_url,
                verified=item.verified,
            )
        )
    return Bill(tuple(lines), table.as_of, table.currency, free_tier)


def pubsub_billable_bytes(request_bytes: Iterable[float], table: PriceTable) -> float:
    """Billable throughput of publish/push/pull requests of these sizes (message data,
    attributes, timestamp and message id summed per request): each at least the
    table's minimum per request."""
    least = float(table["pubsub_throughput"].extra["min_bytes_per_request"])
    return sum(max(least, float(b)) for b in request_bytes)


def memory_mib(value: str) -> int:
    """'512Mi' -> 512, '1Gi' -> 1024, '256M' -> 244 (decimal megabytes)."""
    m = re.fullmatch(r"(\d+)(Mi|Gi|M|G)", value)
    if m is None:
        raise ValueError(f"memory {value!r}: expected e.g. 512Mi or 1Gi")
    n, suffix = int(m.group(1)), m.group(2)
    return {
        "Mi": n,
        "Gi": n * 1024,
        "M": n * 10**6 // 2**20,
        "G": n * 10**9 // 2**20,
    }[suffix]


def function_shape(
    table: PriceTable, function: str = "worker", declaration: Mapping[str, Any] | None = None
) -> tuple[float, float]:
    """(vCPU, GiB) of a declared function: its memory, and the CPU that memory gets when
    no `cpu` is declared (the functions' memory/CPU table)."""
    decl = declaration if declaration is not None else load_declaration()
    spec = decl["functions"][function]
    mib = memory_mib(spec.get("memory", "256Mi"))
    if "cpu" in spec:
        vcpu = float(spec["cpu"])
    else:
        fits = [m for m in sorted(table.vcpu_by_memory_mib) if m >= mib]
        if not fits:
            raise ValueError(f"{function}: {mib} MiB is beyond the memory/CPU table")
        vcpu = table.vcpu_by_memory_mib[fits[0]]
    return vcpu, mib / 1024


def compute_seconds(
    invocations: float,
    seconds_each: float,
    vcpu: float,
    gib: float,
    granularity: float = BILLING_GRANULARITY_S,
) -> tuple[float, float]:
    """(vCPU-seconds, GiB-seconds) of `invocations` requests of `seconds_each`, one
    request per instance at a time, billed time rounded up to `granularity`."""
    billed = (
        math.ceil(round(seconds_each / granularity, 9)) * granularity
        if granularity
        else seconds_each
    )
    return invocations * billed * vcpu, invocations * billed * gib


def load_declaration(path: str | Path | None = None) -> dict[str, Any]:
    return dict(json.loads(Path(path or DECLARATION_PATH).read_text()))


def idle_usage(
    declaration: Mapping[str, Any] | None = None,
    *,
    source_zip_bytes: float = 0,
    source_copies: int = 1,
    image_bytes: float = 0,
    log_bytes: float = 0,
    scheduler_jobs: int = 0,
    days: float = DAYS_PER_MONTH,
) -> Usage:
    """A month (`days`) of a deployment that serves no request: one active version of
    each declared secret, `scheduler_jobs` Cloud Scheduler jobs (the declaration has
    none; each playbook schedule adds one), the function source zip in Cloud Storage
    (`source_copies` copies), the functions' images in Artifact Registry
    (`image_bytes` in all), and an event log of `log_bytes` in Firestore."""
    decl = declaration if declaration is not None else load_declaration()
    months = days / DAYS_PER_MONTH
    return Usage(
        secret_version_months=len(decl.get("secrets", {})) * months,
        scheduler_job_months=scheduler_jobs * months,
        gcs_gib_months=source_zip_bytes * source_copies / GIB * months,
        artifact_gib_months=image_bytes / GIB * months,
        firestore_gib_months=log_bytes / GIB * months,
        days=days,
    )


def idle_cost(table: PriceTable | None = None, *, free_tier: bool = True, **kwargs: Any) -> Bill:
    """The bill of `idle_usage(**kwargs)`."""
    return price(idle_usage(**kwargs), table or load_table(), free_tier=free_tier)


def within_free_tier(per_unit: Usage, table: PriceTable) -> tuple[float, str | None]:
    """How many units of `per_unit` (e.g. one block's usage) the free tiers cover over
    `per_unit.days`, and the item that runs out first (None when nothing is used).
    An item used without any free tier limits the count to 0."""
    best, limit = math.inf, None
    for name, key in FIELDS.items():
        quantity = float(getattr(per_unit, name))
        if quantity <= 0:
            continue
        units = table[key].free_allowance(per_unit.days) / quantity
        if units < best:
            best, limit = units, key
    return best, limit


def main(argv: list[str] | None = None) -> int:
    """`python -m noetl_core.costs idle [...]`: an idle month of the declared deployment;
    `python -m noetl_core.costs table`: the price table with its sources."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m noetl_core.costs")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("table", help="the price table, its date and sources")
    idle = sub.add_parser("idle", help="a month of the declared deployment with no requests")
    idle.add_argument("--zip", help="the function source zip (make package: dist/*.zip)")
    idle.add_argument(
        "--copies",
        type=int,
        help="copies of the zip kept in Cloud Storage (default 1: infra uploads one object)",
    )
    idle.add_argument("--image-bytes", type=float, default=0, help="the images, all of them")
    idle.add_argument("--log-bytes", type=float, default=0, help="Firestore stored bytes")
    idle.add_argument("--jobs", type=int, default=0, help="Cloud Scheduler jobs")
    args = parser.parse_args(argv)
    table = load_table()
    if args.command == "table":
        print(f"list prices as of {table.as_of}, {table.currency}, {table.region}")
        for item in table.items.values():
            free = (
                f"{_num(item.free_amount)} free per {item.free_period}"
                if item.free_amount is not None
                else "no free tier applied"
            )
            mark = "" if item.verified else " [unverified: " + item.caveat + "]"
            print(f"  {item.key}: {_rate(item)} ({item.unit}); {free}; {item.source_url}{mark}")
        return 0
    decl = load_declaration()
    zip_bytes = 0.0
    if args.zip:
        zip_bytes = float(Path(args.zip).stat().st_size)
    copies = args.copies if args.copies is not None else 1
    usage = idle_usage(
        decl,
        source_zip_bytes=zip_bytes,
        source_copies=copies,
        image_bytes=args.image_bytes,
        log_bytes=args.log_bytes,
        scheduler_jobs=args.jobs,
    )
    print(
        f"idle month: {len(decl.get('secrets', {}))} secrets (one active version each), "
        f"{args.jobs} Cloud Scheduler jobs, source zip {int(zip_bytes):,} B x {copies}, "
        f"images {int(args.image_bytes):,} B, Firestore {int(args.log_bytes):,} B, "
        "no requests"
    )
    for free_tier in (False, True):
        print(price(usage, table, free_tier=free_tier).render("idle deployment, a month"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
