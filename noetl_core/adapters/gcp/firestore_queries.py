"""The one place the Firestore adapters run their queries and aggregations.

Real Firestore serves a query only from an index that fits it (a composite index where
one field's automatic index is not enough) and refuses it otherwise; the emulator serves
everything. So that the emulator suite can prove infra/firestore.indexes.json complete,
a runner given a shape file (`NOETL_QUERY_SHAPE_FILE`) appends there, as one JSON line,
the shape of each query it runs: collection, filtered fields with their operators,
orders, aggregations, limit; never a value. The test session checks every shape against
the declared indexes (`emulators/firestore_indexes.py`). Without a file, running a query
costs one `is None` more.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any


class QueryRunner:
    def __init__(self, prefix: str, shape_file: str | None = None) -> None:
        self._prefix = f"{prefix}_"
        self._shape_file = shape_file
        self._written: set[str] = set()  # each shape once per runner

    def stream(self, query: Any) -> Iterator[Any]:
        """The query's document snapshots."""
        if self._shape_file is not None:
            self._record(self._shape_file, query._to_protobuf(), ())
        stream: Iterator[Any] = query.stream()
        return stream

    def aggregate(self, aggregation: Any) -> dict[str, Any]:
        """The aggregation's one result, value by alias (None for a sum over nothing)."""
        if self._shape_file is not None:
            request = aggregation._to_protobuf()
            self._record(self._shape_file, request.structured_query, request.aggregations)
        return {result.alias: result.value for result in aggregation.get()[0]}

    def _record(self, path: str, query: Any, aggregations: Any) -> None:
        line = json.dumps(shape(query, aggregations, self._prefix))
        if line in self._written:
            return
        self._written.add(line)
        # one write of one line on an O_APPEND descriptor: the lines of the functions'
        # processes and the test's interleave whole
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(descriptor, (line + "\n").encode())
        finally:
            os.close(descriptor)


def shape(query: Any, aggregations: Any, prefix: str) -> dict[str, Any]:
    """What decides the index a `StructuredQuery` needs. The collection is named without
    the deployment's prefix (tests run under random ones)."""
    collection = query.from_[0].collection_id.removeprefix(prefix)
    return {
        "collection": collection,
        "filters": list(_filters(query.where)) if "where" in query else [],
        "orders": [[o.field.field_path, o.direction.name] for o in query.order_by],
        "aggregations": [_aggregation(a) for a in aggregations],
        "limit": query.limit if "limit" in query else None,
    }


def _filters(where: Any) -> Iterator[list[str]]:
    """`[field, operator]` of each filter, the AND of a composite filter flattened."""
    if "composite_filter" in where:
        composite = where.composite_filter
        if composite.op.name != "AND":
            yield ["", composite.op.name]
            return
        for each in composite.filters:
            yield from _filters(each)
    elif "field_filter" in where:
        yield [where.field_filter.field.field_path, where.field_filter.op.name]
    else:
        yield [where.unary_filter.field.field_path, where.unary_filter.op.name]


def _aggregation(aggregation: Any) -> list[str | None]:
    for kind in ("sum", "avg"):
        if kind in aggregation:
            return [kind, getattr(aggregation, kind).field.field_path]
    return ["count", None]
