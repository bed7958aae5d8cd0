"""The payload store contract, run against every PayloadStore adapter (local fsspec now)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pytest

from noetl_core.adapters.fsspec_payloads import FsspecPayloadStore
from noetl_core.errors import PayloadError
from noetl_core.runtime import payloads
from noetl_core.runtime.ports import PayloadStore

pytestmark = pytest.mark.contract


def local(path: Path) -> PayloadStore:
    return FsspecPayloadStore((path / "payloads").resolve().as_uri())


@pytest.fixture(params=[local], ids=["file"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> PayloadStore:
    factory: Callable[[Path], PayloadStore] = request.param
    return factory(tmp_path)


def _path(ref: dict[str, object]) -> Path:
    return Path(str(ref["uri"]).split("://", 1)[1])


def test_json_round_trip_with_hash_and_size(store: PayloadStore) -> None:
    value = {"a": [1, 2, 3], "b": "text"}
    ref = store.put("executions/E/s/c/1/result", value, tabular=False)
    assert ref["format"] == "json"
    raw = _path(ref).read_bytes()
    assert ref["sha256"] == hashlib.sha256(raw).hexdigest()
    assert ref["size"] == len(raw)
    assert store.get(ref) == value


def test_table_round_trip_keeps_rows_schema_and_type(store: PayloadStore) -> None:
    table = pa.table(
        {"id": pa.array(range(1000), pa.int64()), "name": [f"n{i}" for i in range(1000)]}
    )
    ref = store.put("executions/E/s/c/1/result", table, tabular=True)
    assert (ref["format"], ref["shape"], ref["rows"]) == ("arrow", "table", 1000)
    assert ref["schema"] == [{"name": "id", "type": "int64"}, {"name": "name", "type": "string"}]
    back = store.get(ref)
    assert isinstance(back, pa.Table) and back.equals(table)


def test_records_stored_as_arrow_come_back_as_records(store: PayloadStore) -> None:
    records = [{"id": i, "v": i * 2} for i in range(10)]
    ref = store.put("k", records, tabular=True)
    assert (ref["format"], ref["shape"]) == ("arrow", "records")
    assert store.get(ref) == records


def test_corrupt_payload_is_refused_naming_the_key(store: PayloadStore) -> None:
    ref = store.put("executions/E/s/c/1/result", {"x": 1}, tabular=False)
    _path(ref).write_bytes(b'{"x": 2}')
    with pytest.raises(PayloadError, match=r"corrupt.*executions/E/s/c/1/result"):
        store.get(ref)


def test_missing_payload_is_an_error_naming_it(store: PayloadStore) -> None:
    ref = store.put("gone", {"x": 1}, tabular=False)
    _path(ref).unlink()
    with pytest.raises(PayloadError, match=r"gone\.json is missing"):
        store.get(ref)


def test_no_temporary_files_are_left_behind(store: PayloadStore, tmp_path: Path) -> None:
    store.put("a/b", list(range(100)), tabular=False)
    leftovers = [p for p in (tmp_path / "payloads").rglob("*") if ".tmp-" in p.name]
    assert leftovers == []


def test_persist_keeps_small_results_inline_and_stores_large_ones(store: PayloadStore) -> None:
    small, view = payloads.persist(store, {"n": 1}, "k1", limit=1024)
    assert small == {"inline": {"n": 1}} and view.value == {"n": 1}
    big_value = {"blob": "x" * 5000, "count": 7}
    big, view = payloads.persist(store, big_value, "k2", limit=1024, select=["count"])
    assert big["format"] == "json" and big["select"] == {"count": 7}
    lazy = payloads.view(store, big)
    assert lazy["count"] == 7  # from the inline selection, no load
    assert lazy["blob"] == "x" * 5000  # loads the payload


def test_rowsets_come_back_as_tables_with_their_types(store: PayloadStore) -> None:
    import datetime as dt

    from noetl_core.tools.base import Rowset

    small = pa.table({"at": [dt.datetime(2024, 1, 2, 3, 4, 5)], "n": [1]})
    ref, view = payloads.persist(store, Rowset(small), "small", limit=64 * 1024)
    assert "inline" in ref and view["row_count"] == 1
    back = payloads.table(store, ref)
    assert back.schema.field("at").type == pa.timestamp("us")
    empty, _ = payloads.persist(store, Rowset(small.slice(0, 0)), "empty", limit=64 * 1024)
    assert payloads.table(store, empty).column_names == ["at", "n"]
    big = pa.table({"id": list(range(20_000))})
    ref, view = payloads.persist(store, Rowset(big), "big", limit=1024)
    assert ref["format"] == "arrow" and ref["select"] == {"columns": ["id"], "row_count": 20_000}
    assert view["row_count"] == 20_000  # from the inline selection
    assert payloads.table(store, ref).equals(big)
