"""The embedded catalog: playbooks by path, each registration an immutable version.

Files live under `NOETL_HOME/catalog/<path>/v<N>.yaml`. Registering the same text again
adds no version. A sub-playbook path not in the catalog is looked for beside the parent
playbook's file (its directory tree), and registered when found, so examples run as
they are.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import CatalogError, PlaybookError
from .playbook.loader import LoadedPlaybook, load_file, load_text

_SEGMENT = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class Registered:
    path: str
    version: int
    new: bool


class Catalog:
    def __init__(self, root: Path):
        self.root = Path(root)

    def _dir(self, path: str) -> Path:
        parts = path.strip("/").split("/")
        if not parts or not all(_SEGMENT.match(p) and p not in (".", "..") for p in parts):
            raise CatalogError(f"catalog path {path!r} must be segments of letters, digits, _ . -")
        return self.root.joinpath(*parts)

    def versions(self, path: str) -> list[int]:
        folder = self._dir(path)
        if not folder.is_dir():
            return []
        found = (f.stem[1:] for f in folder.glob("v*.yaml"))
        return sorted(int(v) for v in found if v.isdigit())

    def register(self, file: str | Path) -> Registered:
        loaded = load_file(file)
        folder = self._dir(loaded.path)
        folder.mkdir(parents=True, exist_ok=True)
        existing = self.versions(loaded.path)
        if existing:
            latest = (folder / f"v{existing[-1]}.yaml").read_text(encoding="utf-8")
            if hashlib.sha256(latest.encode()).hexdigest() == loaded.digest:
                return Registered(loaded.path, existing[-1], False)
        version = (existing[-1] if existing else 0) + 1
        while True:
            try:
                fd = os.open(folder / f"v{version}.yaml", os.O_WRONLY | os.O_CREAT | os.O_EXCL)
            except FileExistsError:
                version += 1
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(loaded.source)
            return Registered(loaded.path, version, True)

    def register_tree(self, directory: str | Path) -> list[Registered]:
        out = []
        for file in sorted(_yaml_files(Path(directory))):
            out.append(self.register(file))
        return out

    def resolve(
        self, path: str, version: int | str | None = None, near: str | None = None
    ) -> LoadedPlaybook:
        versions = self.versions(path)
        if not versions and near:
            found = _find_beside(path, Path(near))
            if found is not None:
                self.register(found)
                versions = self.versions(path)
        if not versions:
            raise CatalogError(
                f"no playbook registered at catalog path {path!r} "
                f"(register it with `noetl register FILE`)"
            )
        chosen = versions[-1] if version in (None, "", "latest") else int(version)
        if chosen not in versions:
            raise CatalogError(f"catalog path {path!r} has no version {version} (has {versions})")
        file = self._dir(path) / f"v{chosen}.yaml"
        return load_text(file.read_text(encoding="utf-8"), str(file))

    def entries(self) -> list[tuple[str, list[int]]]:
        out: list[tuple[str, list[int]]] = []
        if not self.root.is_dir():
            return out
        for folder in sorted(p for p in self.root.rglob("*") if p.is_dir()):
            path = folder.relative_to(self.root).as_posix()
            versions = self.versions(path)
            if versions:
                out.append((path, versions))
        return out


def _yaml_files(directory: Path) -> list[Path]:
    return [p for p in directory.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()]


def _find_beside(path: str, near: Path) -> Path | None:
    base = near.parent if near.suffix else near
    if not base.is_dir():
        return None
    for file in sorted(_yaml_files(base)):
        try:
            if load_file(file).path == path:
                return file
        except PlaybookError:
            continue
    return None
