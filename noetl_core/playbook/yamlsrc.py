"""YAML loading that remembers where every value came from.

`parse_yaml` returns plain Python data plus a `SourceMap`: for each YAML path
(`("workflow", 3, "next", "arcs", 0, "step")`) the 1-based line it starts on. Errors
anywhere in the playbook pipeline use it to say file, line and path. libyaml's C parser
does the parsing when PyYAML has it (about 9x faster); the pure-Python loader remains the
reference for what is accepted and how errors are worded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

import yaml

from ..errors import PlaybookError, SourceLocation

Path = tuple[str | int, ...]

if TYPE_CHECKING:
    _Loader: TypeAlias = yaml.SafeLoader | yaml.CSafeLoader

# libyaml's parser with PyYAML's safe constructor and resolver (the same values and
# node marks as `yaml.SafeLoader`), or None when PyYAML was built without libyaml.
FAST_LOADER: Callable[[str], _Loader] | None = getattr(yaml, "CSafeLoader", None)
# libyaml accepts some texts PyYAML's scanner refuses (a tab after a value: `a:\t1`; a
# `?` inside a plain scalar in a flow collection: `{rec?: 1}`); texts with these
# characters go to the pure loader, which stays the judge of what a playbook may say.
_PURE_ONLY = ("\t", "?")


def format_path(path: Sequence[str | int]) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


@dataclass
class SourceMap:
    file: str
    lines: dict[Path, int] = field(default_factory=dict)

    def line_of(self, path: Sequence[str | int]) -> int | None:
        """The line of `path`, or of its nearest ancestor that the source has."""
        probe = tuple(path)
        while True:
            if probe in self.lines:
                return self.lines[probe]
            if not probe:
                return None
            probe = probe[:-1]

    def at(self, path: Sequence[str | int]) -> SourceLocation:
        return SourceLocation(self.file, self.line_of(path), format_path(path))

    def error(self, path: Sequence[str | int], message: str) -> PlaybookError:
        return PlaybookError([(self.at(path), message)])


def parse_yaml(text: str, file: str) -> tuple[Any, SourceMap]:
    """Parse with libyaml's C parser when PyYAML has it. The pure-Python loader stays the
    reference: it parses when libyaml is missing, and any text the C parser fails on is
    parsed again by it, so every error keeps its wording (libyaml phrases its own)."""
    if FAST_LOADER is not None and not any(char in text for char in _PURE_ONLY):
        try:
            return _parse(FAST_LOADER, text, file)
        except Exception:  # the reference loader below decides, and words the error
            pass
    try:
        return _parse(yaml.SafeLoader, text, file)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "malformed YAML"
        raise PlaybookError([(SourceLocation(file, line, ""), f"YAML syntax: {problem}")]) from None
    except yaml.YAMLError as exc:
        raise PlaybookError([(SourceLocation(file, None, ""), f"YAML: {exc}")]) from None


def _parse(loader_class: Callable[[str], _Loader], text: str, file: str) -> tuple[Any, SourceMap]:
    smap = SourceMap(file)
    loader = loader_class(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise smap.error((), "the file is empty; expected a playbook mapping")
        data = _build(loader, node, (), smap)
        if data is None:
            raise smap.error((), "the file is empty; expected a playbook mapping")
    finally:
        loader.dispose()
    return data, smap


def _build(loader: _Loader, node: yaml.Node, path: Path, smap: SourceMap) -> Any:
    smap.lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | float | bool) and key is not None:
                raise smap.error(path, f"mapping keys must be scalars, got {type(key).__name__}")
            key_line = key_node.start_mark.line + 1
            child_path = (*path, str(key))
            if key in out:
                where = SourceLocation(smap.file, key_line, format_path(child_path))
                raise PlaybookError([(where, f"duplicate key {key!r} in this mapping")])
            out[key] = _build(loader, value_node, child_path, smap)
            smap.lines[child_path] = key_line  # a key's line, not its value's first line
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(loader, item, (*path, i), smap) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)
