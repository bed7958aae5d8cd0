"""The payload store contract, run against every PayloadStore backend: local files, S3
(moto in server mode on a loopback port) and Cloud Storage (fake-gcs-server, with the
emulator stack)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from noetl_core.adapters.fsspec_payloads import FsspecPayloadStore
from noetl_core.errors import PayloadError
from noetl_core.runtime import payloads
from noetl_core.runtime.ports import PayloadStore

pytestmark = pytest.mark.contract


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    boto3.client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).create_bucket(Bucket="noetl-payloads")
    yield url
    server.stop()


@pytest.fixture(params=["file", "s3", "gs"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> PayloadStore:
    name = uuid.uuid4().hex[:8]
    if request.param == "file":
        return FsspecPayloadStore((tmp_path / "payloads").resolve().as_uri())
    if request.param == "s3":
        endpoint = request.getfixturevalue("s3_endpoint")
        return FsspecPayloadStore(
            f"s3://noetl-payloads/{name}",
            key="testing",
            secret="testing",
            client_kwargs={"endpoint_url": endpoint, "region_name": "us-east-1"},
        )
    request.getfixturevalue("gcp_env")
    bucket = request.getfixturevalue("gcp_stack").bucket
    return FsspecPayloadStore(f"gs://{bucket}/{name}", token="anon")


def _raw(store: PayloadStore, ref: dict[str, object]) -> bytes:
    data: bytes = store.fs.cat_file(str(ref["uri"]).split("://", 1)[1])  # type: ignore[attr-defined]
    return data


def _overwrite(store: PayloadStore, ref: dict[str, object], data: bytes) -> None:
    store.fs.pipe_file(str(ref["uri"]).split("://", 1)[1], data)  # type: ignore[attr-defined]


def test_json_round_trip_with_hash_and_size(store: PayloadStore) -> None:
    value = {"a": [1, 2, 3], "b": "text"}
    ref = store.put("executions/E/s/c/1/result", value, tabular=False)
    assert ref["format"] == "json"
    raw = _raw(store, ref)
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
    _overwrite(store, ref, b'{"x": 2}')
    with pytest.raises(PayloadError, match=r"executions/E/s/c/1/result\.json is corrupt"):
        store.get(ref)


def test_missing_payload_is_an_error_naming_it(store: PayloadStore) -> None:
    ref = store.put("gone", {"x": 1}, tabular=False)
    store.fs.rm(str(ref["uri"]).split("://", 1)[1])  # type: ignore[attr-defined]
    with pytest.raises(PayloadError, match=r"gone\.json is missing"):
        store.get(ref)


def test_no_temporary_files_are_left_behind(store: PayloadStore) -> None:
    store.put("a/b", list(range(100)), tabular=False)
    root = store.root  # type: ignore[attr-defined]
    leftovers = [p for p in store.fs.find(root) if ".tmp-" in p]  # type: ignore[attr-defined]
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


@pytest.mark.parametrize("key", ["../outside", "a/../../outside", "/abs", "a//b", "./a"])
def test_a_key_that_would_leave_the_store_is_refused(store: PayloadStore, key: str) -> None:
    with pytest.raises(PayloadError, match="would leave the payload store"):
        store.put(key, {"x": 1}, tabular=False)


def test_a_reference_outside_the_store_is_refused(store: PayloadStore) -> None:
    ref = store.put("executions/E/s/c/1/result", {"x": 1}, tabular=False)
    uri = str(ref["uri"])
    root = uri.removesuffix("executions/E/s/c/1/result.json")
    elsewhere = [
        "file:///etc/passwd",
        "gs://another-bucket/payloads/executions/E/s/c/1/result.json",
        root.rstrip("/") + "-sibling/executions/E/s/c/1/result.json",
        root + "executions/E/../../../outside.json",
        "executions/E/s/c/1/result.json",
    ]
    for uri in elsewhere:
        with pytest.raises(PayloadError, match="is outside the payload store") as info:
            store.get({**ref, "uri": uri})
        assert info.value.code == "outside_store"
    assert store.get(ref) == {"x": 1}
