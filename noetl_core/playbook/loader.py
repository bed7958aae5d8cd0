"""Load a playbook file into a validated `Playbook`, or fail naming file, line and path."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path as FsPath
from typing import Any

import pydantic

from ..errors import PlaybookError
from .model import Playbook
from .normalize import Normalizer
from .validate import semantic_problems
from .yamlsrc import Path, SourceMap, parse_yaml

_SHAPE_ERRORS = {"list_type", "model_type", "dict_type", "model_attributes_type"}


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
        playbook = Playbook.model_validate(canonical)
    except pydantic.ValidationError as exc:
        raise PlaybookError(_pydantic_problems(exc, canonical, smap)) from None
    problems = semantic_problems(playbook, canonical, smap)
    if problems:
        raise PlaybookError(problems)
    return LoadedPlaybook(playbook, text, file)


def _data_path(loc: tuple[Any, ...], data: Any) -> Path:
    """Keep only the parts of a pydantic `loc` that exist in the data (drop union tags)."""
    path: list[str | int] = []
    node = data
    for part in loc:
        in_dict = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_dict or in_list:
            node = node[part]
            path.append(part)
        elif isinstance(node, dict | list) and isinstance(part, str | int):
            if part == "in_":
                part = "in"
            if not (isinstance(part, str) and ("[" in part or part[:1].isupper())):
                path.append(part)
                node = None
    return tuple(path)


def _pydantic_problems(exc: pydantic.ValidationError, data: Any, smap: SourceMap) -> Any:
    errors = exc.errors()
    by_path: dict[Path, list[dict[str, Any]]] = {}
    for err in errors:
        by_path.setdefault(_data_path(err["loc"], data), []).append(dict(err))  # type: ignore[arg-type]
    problems = []
    for path, errs in by_path.items():
        deeper = any(p[: len(path)] == path and len(p) > len(path) for p in by_path)
        kept: list[dict[str, Any]] = [e for e in errs if e["type"] not in _SHAPE_ERRORS] or (
            [] if deeper else errs
        )
        for kept_err in kept:
            problems.append((smap.at(path), _message(kept_err)))
    return problems


def _message(err: dict[str, Any]) -> str:
    kind = err["type"]
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        return "unknown field (not part of noetl.io/v2)"
    if kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        return f"expected {expected}, got {err.get('input')!r}"
    return f"{err['msg']} (got {err.get('input')!r})"
