"""Load a playbook file into a validated `Playbook`, or fail naming file, line and path."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path as FsPath

from ..errors import PlaybookError
from .model import Playbook
from .normalize import Normalizer
from .schema import Invalid
from .validate import semantic_problems
from .yamlsrc import SourceMap, parse_yaml


@dataclass(frozen=True)
class LoadedPlaybook:
    """A validated playbook with the text it came from (stored with each execution)."""

    playbook: Playbook
    source: str
    file: str

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.source.encode()).hexdigest()

    @property
    def path(self) -> str:
        return self.playbook.metadata.path or self.playbook.metadata.name


def load_file(file: str | FsPath) -> LoadedPlaybook:
    path = FsPath(file)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PlaybookError(
            [(SourceMap(str(file)).at(()), f"cannot read: {exc.strerror}")]
        ) from None
    return load_text(text, str(file))


def load_text(text: str, file: str = "<playbook>") -> LoadedPlaybook:
    data, smap = parse_yaml(text, file)
    normalizer = Normalizer(smap)
    canonical = normalizer.playbook(data)
    if normalizer.problems:
        raise PlaybookError(normalizer.problems)
    try:
        playbook = Playbook.validate(canonical)
    except Invalid as exc:
        raise PlaybookError([(smap.at(path), message) for path, message in exc.problems]) from None
    problems = semantic_problems(playbook, canonical, smap)
    if problems:
        raise PlaybookError(problems)
    return LoadedPlaybook(playbook, text, file)
