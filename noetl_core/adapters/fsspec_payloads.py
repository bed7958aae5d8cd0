"""Payload store on any fsspec URL (`file://` for the embedded default).

Tables are Arrow IPC files, everything else JSON. A reference carries uri, format,
shape, sha256, size, rows and schema; reads verify the hash, and errors name the key.
Local writes go to a temporary name first, then rename, so a reader never sees half a
payload. The store stays inside its URL: a key that would leave it is refused, and so is
a reference to anything else (`file:///etc/passwd`, another bucket), since references
also reach the store from templates (the `artifact` tool).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import threading
from typing import Any

from ..errors import PayloadError


def _arrow() -> Any:
    import pyarrow as pa
    import pyarrow.ipc

    return pa


def _escapes(key: str) -> bool:
    """Whether a key relative to the store's root could resolve outside it."""
    return any(part in ("", ".", "..") for part in key.split("/"))


def _local_root(url: str, options: dict[str, Any]) -> str | None:
    """The directory of a plain `file:///abs/dir` URL on a POSIX system, as fsspec would
    resolve it (no unquoting, no chaining), or None for what fsspec must interpret."""
    if options or os.sep != "/" or not url.startswith("file:///") or "::" in url:
        return None
    return url.removeprefix("file://")


class FsspecPayloadStore:
    def __init__(self, url: str, **options: Any):
        self.url = url.rstrip("/")
        self.protocol = self.url.split("://", 1)[0] if "://" in self.url else "file"
        self._options = options

    @functools.cached_property
    def _connection(self) -> tuple[Any, str]:
        """fsspec's filesystem and root path, made on first use: most blocks keep their
        results inline, so a cold start imports no storage client (gcsfs takes ~0.5 s)."""
        import fsspec.core

        fs, root = fsspec.core.url_to_fs(self.url, **self._options)
        return fs, root

    @property
    def fs(self) -> Any:
        return self._connection[0]

    @functools.cached_property
    def root(self) -> str:
        """A local directory is known without fsspec: it is written with os and read with
        pyarrow, so the embedded default never imports fsspec (nor the asyncio it pulls)."""
        local = _local_root(self.url, self._options)
        return local if local is not None else self._connection[1]

    def _path(self, key: str) -> str:
        if _escapes(key):
            raise PayloadError(f"payload key {key!r} would leave the payload store {self.url}")
        return f"{self.root.rstrip('/')}/{key}"

    def _confined(self, uri: str) -> str:
        """The path of a reference's `uri`, which must name an object of this store."""
        prefix = f"{self.protocol}://{self.root.rstrip('/')}/"
        if not uri.startswith(prefix) or _escapes(uri.removeprefix(prefix)):
            raise PayloadError(
                f"payload reference {uri!r} is outside the payload store {self.url}",
                code="outside_store",
            )
        return uri.split("://", 1)[1]

    def put(self, key: str, value: Any, *, tabular: bool) -> dict[str, Any]:
        if tabular:
            data, meta = self._encode_arrow(value)
            path = self._path(key + ".arrow")
        else:
            data = json.dumps(value, separators=(",", ":"), default=str).encode()
            meta = {
                "format": "json",
                "shape": "value",
                "rows": len(value) if isinstance(value, list) else None,
            }
            path = self._path(key + ".json")
        digest = self._write_hashed(path, data)
        return {
            "uri": f"{self.protocol}://{path}",
            "key": key,
            "sha256": digest,
            "size": len(data),
            **meta,
        }

    def _encode_arrow(self, value: Any) -> tuple[Any, dict[str, Any]]:
        pa = _arrow()
        shape = "table" if isinstance(value, pa.Table) else "records"
        table = value if shape == "table" else pa.Table.from_pylist(value)
        sink = pa.BufferOutputStream()
        with pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        schema = [{"name": f.name, "type": str(f.type)} for f in table.schema]
        return memoryview(sink.getvalue()), {
            "format": "arrow",
            "shape": shape,
            "rows": table.num_rows,
            "schema": schema,
        }

    def _write_hashed(self, path: str, data: Any) -> str:
        """Write `data` and compute its sha256 at the same time: hashlib and file writes
        both release the interpreter lock, so on two cores they overlap."""
        if len(data) < 1 << 20:
            digest = hashlib.sha256(data).hexdigest()
            self._write(path, data)
            return digest
        hasher = hashlib.sha256()
        thread = threading.Thread(target=hasher.update, args=(data,))
        thread.start()
        try:
            self._write(path, data)
        finally:
            thread.join()
        return hasher.hexdigest()

    def _write(self, path: str, data: Any) -> None:
        parent = path.rsplit("/", 1)[0]
        try:
            if self.protocol == "file":
                os.makedirs(parent, exist_ok=True)
                tmp = f"{path}.tmp-{os.urandom(16).hex()}"
                with open(tmp, "wb") as fh:
                    fh.write(data)
                os.replace(tmp, path)
            else:
                self.fs.pipe_file(path, bytes(data))
        except OSError as exc:
            raise PayloadError(f"cannot write payload {path}: {exc}", retryable=True) from None

    def get(self, ref: dict[str, Any]) -> Any:
        uri = str(ref.get("uri", ""))
        data = self._read(uri, self._confined(uri))
        digest = hashlib.sha256(memoryview(data)).hexdigest()
        if digest != ref.get("sha256"):
            raise PayloadError(
                f"payload {uri} is corrupt: sha256 {digest} differs from "
                f"the recorded {ref.get('sha256')}"
            )
        if ref.get("format") == "arrow":
            pa = _arrow()
            table = pa.ipc.open_file(pa.py_buffer(data)).read_all()
            return table if ref.get("shape") == "table" else table.to_pylist()
        return json.loads(bytes(data))

    def _read(self, uri: str, path: str) -> Any:
        """The object's bytes; local files are memory-mapped (no copy: Arrow tables read
        from them point into the mapping)."""
        try:
            if self.protocol == "file":
                pa = _arrow()
                with pa.memory_map(path) as source:
                    return source.read_buffer()
            return self.fs.cat_file(path)
        except FileNotFoundError:
            raise PayloadError(f"payload {uri} is missing") from None
        except OSError as exc:
            raise PayloadError(f"cannot read payload {uri}: {exc}", retryable=True) from None
