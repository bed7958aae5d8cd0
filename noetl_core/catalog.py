"""The embedded catalog: playbooks by path, each registration an immutable version.

Files live under `NOETL_HOME/catalog/<path>/v<N>.yaml`, static keychain values sealed
(keychain/sealing.py). Registering the same text again adds no version. A sub-playbook
path not in the catalog is looked for in the parent playbook's tree (the folder the
family's first playbook was read from, at every depth), and registered when found, so
examples run as they are. Files there are told apart by the path they declare; one that
cannot be read fails only a lookup that asks for it.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

from .engine.entries import MAX_ENTRY_BYTES
from .errors import CatalogError, InputLimitError, NoetlError, PlaybookError
from .keychain.sealing import Sealer
from .playbook.loader import LoadedPlaybook, declared_path, load_file, load_text

_SEGMENT = re.compile(r"^[A-Za-z0-9_.-]+$")
MAX_SOURCE_BYTES = MAX_ENTRY_BYTES


@dataclass(frozen=True)
class Registered:
    path: str
    version: int
    new: bool


class CatalogBase:
    """Registration and lookup; a backend stores `(path, version) -> source`, the
    source's static keychain values sealed by `sealer`."""

    def __init__(self, sealer: Sealer):
        self.sealer = sealer

    def versions(self, path: str) -> list[int]:
        raise NotImplementedError

    def read(self, path: str, version: int) -> str:
        raise NotImplementedError

    def create(self, path: str, version: int, source: str) -> bool:
        """Store a new version; False when that version number is taken."""
        raise NotImplementedError

    def paths(self) -> list[str]:
        raise NotImplementedError

    def where(self, path: str, version: int) -> str:
        return f"catalog:{path}@{version}"

    def register(self, file: str | Path) -> Registered:
        return self.register_loaded(load_file(file))

    def register_loaded(self, loaded: LoadedPlaybook) -> Registered:
        check_path(loaded.path)
        loaded = self.sealer.seal(loaded)
        size = len(loaded.source.encode())
        if size > MAX_SOURCE_BYTES:  # one Firestore document per version: held everywhere
            raise CatalogError(
                f"playbook {loaded.path} is {size:,} bytes, over the catalog's limit of "
                f"{MAX_SOURCE_BYTES:,} bytes per playbook (a Firestore document is at most "
                "1 MiB); run the file itself instead (its source goes by reference)"
            )
        existing = self.versions(loaded.path)
        if existing:
            latest = self.read(loaded.path, existing[-1])
            if hashlib.sha256(latest.encode()).hexdigest() == loaded.digest:
                return Registered(loaded.path, existing[-1], False)
        version = (existing[-1] if existing else 0) + 1
        while not self.create(loaded.path, version, loaded.source):
            version += 1
        return Registered(loaded.path, version, True)

    def register_tree(
        self, directory: str | Path
    ) -> tuple[list[Registered], list[tuple[Path, NoetlError]]]:
        """Every valid playbook file under `directory` registered, and each invalid one
        with its error: one bad file does not keep the others out of the catalog."""
        done: list[Registered] = []
        invalid: list[tuple[Path, NoetlError]] = []
        for file in sorted(_yaml_files(Path(directory))):
            try:
                done.append(self.register(file))
            except (PlaybookError, CatalogError, InputLimitError) as exc:
                invalid.append((file, exc))
        return done, invalid

    def resolve(
        self, path: str, version: int | str | None = None, tree: str | None = None
    ) -> LoadedPlaybook:
        """The playbook at `path` (a version, else the latest); one missing from the
        catalog is looked for in `tree` and registered. The playbook keeps `tree`."""
        versions = self.versions(check_path(path))
        if not versions and tree:
            found = find_in_tree(path, Path(tree))
            if found is not None:
                self.register(found)
                versions = self.versions(path)
        if not versions:
            raise CatalogError(
                f"no playbook registered at catalog path {path!r} "
                f"(register it with `noetl register FILE`)"
            )
        chosen = versions[-1] if version in (None, "", "latest") else version_number(version)
        if chosen not in versions:
            raise CatalogError(f"catalog path {path!r} has no version {version} (has {versions})")
        return replace(load_text(self.read(path, chosen), self.where(path, chosen)), tree=tree)

    def entries(self) -> list[tuple[str, list[int]]]:
        return [(path, self.versions(path)) for path in sorted(self.paths())]


def version_number(version: int | str) -> int:
    """A catalog version as given after `@`: `3`, or `v3` as `noetl catalog` prints it."""
    text = str(version).strip()
    digits = text[1:] if text[:1] in ("v", "V") else text
    if not digits.isdigit():
        raise CatalogError(f"catalog version {version!r} is not a number (give 3, v3 or latest)")
    return int(digits)


def check_path(path: str) -> str:
    parts = path.strip("/").split("/")
    if not parts or not all(_SEGMENT.match(p) and p not in (".", "..") for p in parts):
        raise CatalogError(f"catalog path {path!r} must be segments of letters, digits, _ . -")
    return path


class Catalog(CatalogBase):
    """The embedded catalog: `NOETL_HOME/catalog/<path>/v<N>.yaml`."""

    def __init__(self, root: Path, sealer: Sealer):
        super().__init__(sealer)
        self.root = Path(root)

    def _dir(self, path: str) -> Path:
        return self.root.joinpath(*check_path(path).strip("/").split("/"))

    def versions(self, path: str) -> list[int]:
        folder = self._dir(path)
        if not folder.is_dir():
            return []
        found = (f.stem[1:] for f in folder.glob("v*.yaml"))
        return sorted(int(v) for v in found if v.isdigit())

    def read(self, path: str, version: int) -> str:
        return (self._dir(path) / f"v{version}.yaml").read_text(encoding="utf-8")

    def where(self, path: str, version: int) -> str:
        return str(self._dir(path) / f"v{version}.yaml")

    def create(self, path: str, version: int, source: str) -> bool:
        folder = self._dir(path)
        folder.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(folder / f"v{version}.yaml", os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(source)
        return True

    def paths(self) -> list[str]:
        if not self.root.is_dir():
            return []
        folders = (p for p in self.root.rglob("*") if p.is_dir())
        found = [f.relative_to(self.root).as_posix() for f in folders]
        return [p for p in found if self.versions(p)]


def _yaml_files(directory: Path) -> list[Path]:
    return [p for p in directory.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()]


def find_in_tree(path: str, tree: Path) -> Path | None:
    """The file under `tree` that declares catalog path `path`, or None. A file that
    cannot be read (bad YAML, over a limit, not UTF-8) is passed over, unless nothing
    declares the path and the file is named like it: then its problem is the answer."""
    if not tree.is_dir():
        return None
    unreadable: list[tuple[Path, PlaybookError]] = []
    for file in sorted(_yaml_files(tree)):
        try:
            if declared_path(file) == path:
                return file
        except PlaybookError as exc:
            unreadable.append((file, exc))
    name = path.rstrip("/").rsplit("/", 1)[-1]
    for file, problem in unreadable:
        if file.stem == name:
            raise CatalogError(
                f"no playbook at catalog path {path!r}, and {file}, which may be it, "
                f"cannot be read: {problem.message}"
            )
    return None
