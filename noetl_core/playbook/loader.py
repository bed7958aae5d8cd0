"""Load a playbook file into a validated `Playbook`, or fail naming file, line and path."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path as FsPath
from typing import Any

from ..errors import PlaybookError, SourceLocation
from ..settings import Limits
from . import scripts
from .model import Playbook
from .normalize import Normalizer
from .schema import Invalid
from .validate import name_warnings, semantic_problems
from .yamlsrc import SourceMap, parse_yaml


@dataclass(frozen=True)
class LoadedPlaybook:
    """A validated playbook with the text it came from (stored with each execution), and
    the folder its sub-playbooks are looked for in when the catalog lacks them: the one
    it was read from, or, loaded for a parent from the catalog, the parent's, so that a
    family of playbooks resolves from its original tree at every depth."""

    playbook: Playbook
    source: str
    file: str
    tree: str | None = None

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.source.encode()).hexdigest()

    @property
    def path(self) -> str:
        return self.playbook.metadata.path or self.playbook.metadata.name


def load_file(file: str | FsPath, limits: Limits | None = None) -> LoadedPlaybook:
    folder = str(FsPath(file).resolve().parent)
    loaded = load_text(_read(file), str(file), limits, base=folder)
    return replace(loaded, tree=folder)


def declared_path(file: str | FsPath, limits: Limits | None = None) -> str | None:
    """The catalog path a playbook file declares (`metadata.path`, else `metadata.name`),
    read without validating the rest: looking for one playbook among a folder's files
    must neither load them all nor fail on another's mistakes."""
    data, _ = parse_yaml(_read(file), str(file), limits)
    meta = data.get("metadata") if isinstance(data, dict) else None
    if not isinstance(meta, dict):
        return None
    found = meta.get("path") or meta.get("name")
    return found if isinstance(found, str) else None


def _read(file: str | FsPath) -> str:
    try:
        return FsPath(file).read_text(encoding="utf-8")
    except OSError as exc:
        problem = f"cannot read: {exc.strerror}"
    except UnicodeDecodeError as exc:
        problem = f"not UTF-8 text (byte {exc.start})"
    raise PlaybookError([(SourceMap(str(file)).at(()), problem)])


def check_file(
    file: str | FsPath, limits: Limits | None = None
) -> tuple[LoadedPlaybook, list[tuple[SourceLocation, str]]]:
    """`load_file`, and the warnings `noetl validate` prints: names the playbook's
    templates read that nothing defines (`validate.name_warnings`)."""
    folder = str(FsPath(file).resolve().parent)
    loaded, canonical, smap = _load(_read(file), str(file), limits, base=folder)
    return replace(loaded, tree=folder), name_warnings(loaded.playbook, canonical, smap)


def load_text(
    text: str, file: str = "<playbook>", limits: Limits | None = None, base: str | None = None
) -> LoadedPlaybook:
    """`base`: the folder file scripts are read from (`scripts`); the files read are
    embedded in the returned source, so no later load of it reads the disk."""
    return _load(text, file, limits, base)[0]


def _load(
    text: str, file: str, limits: Limits | None, base: str | None
) -> tuple[LoadedPlaybook, dict[str, Any], SourceMap]:
    data, smap = parse_yaml(text, file, limits)
    top = data if isinstance(data, dict) else {}
    files = scripts.ScriptFiles(top.get(scripts.EMBED_KEY), base, top.get("workload"))
    normalizer = Normalizer(smap, files)
    canonical = normalizer.playbook(data)
    if files.read and scripts.EMBED_KEY in top:
        missing = ", ".join(sorted(files.read))
        normalizer.problem(
            (scripts.EMBED_KEY,), f"embedded scripts lack {missing}: remove `{scripts.EMBED_KEY}`"
        )
    if normalizer.problems:
        raise PlaybookError(normalizer.problems)
    try:
        playbook = Playbook.validate(canonical)
    except Invalid as exc:
        raise PlaybookError([(smap.at(path), message) for path, message in exc.problems]) from None
    problems = semantic_problems(playbook, canonical, smap)
    if problems:
        raise PlaybookError(problems)
    if files.read:
        text = scripts.embed(text, files.read)
    return LoadedPlaybook(playbook, text, file), canonical, smap
