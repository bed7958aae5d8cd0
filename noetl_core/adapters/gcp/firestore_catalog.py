"""The catalog on Firestore: one document per `(path, version)`, created once."""

from __future__ import annotations

from typing import Any

from ... import ids
from ...catalog import CatalogBase
from ...keychain.sealing import Sealer
from .firestore_queries import QueryRunner


class FirestoreCatalog(CatalogBase):
    def __init__(
        self,
        project: str,
        prefix: str = "noetl",
        client: Any = None,
        *,
        sealer: Sealer,
        shape_file: str | None = None,
    ):
        from google.cloud import firestore

        super().__init__(sealer)
        self._client = client or firestore.Client(project=project)
        self._docs = self._client.collection(f"{prefix}_catalog")
        self._queries = QueryRunner(prefix, shape_file)

    def _id(self, path: str, version: int) -> str:
        return ids.digest("catalog", path, version)

    def versions(self, path: str) -> list[int]:
        from google.cloud.firestore_v1.base_query import FieldFilter

        query = self._docs.where(filter=FieldFilter("path", "==", path))
        return sorted(int((s.to_dict() or {})["version"]) for s in self._queries.stream(query))

    def read(self, path: str, version: int) -> str:
        snapshot = self._docs.document(self._id(path, version)).get()
        return str((snapshot.to_dict() or {})["source"])

    def create(self, path: str, version: int, source: str) -> bool:
        from google.api_core import exceptions

        try:
            self._docs.document(self._id(path, version)).create(
                {"path": path, "version": version, "source": source}
            )
        except (exceptions.AlreadyExists, exceptions.Conflict):
            return False
        return True

    def paths(self) -> list[str]:
        every = self._docs.select(["path"])  # not the sources
        return sorted({str((s.to_dict() or {})["path"]) for s in self._queries.stream(every)})
