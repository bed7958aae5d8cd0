"""YAML loading that remembers where every value came from.

`parse_yaml` returns plain Python data plus a `SourceMap`: for each YAML path
(`("workflow", 3, "next", "arcs", 0, "step")`) the 1-based line it starts on. Errors
anywhere in the playbook pipeline use it to say file, line and path. libyaml's C parser
does the parsing when PyYAML has it (about 9x faster); the pure-Python loader remains the
reference for what is accepted and how errors are worded.

A text is first read as parser events, which nest nothing and build nothing, and
refused when it is nested deeper than `NOETL_MAX_DEPTH` or holds more than
`NOETL_MAX_NODES` nodes counting each alias as the nodes it repeats (the data built
copies an alias's value at every use, so a 1 KiB alias bomb would grow to gigabytes).
Only a text within both limits is composed, which recurses once or twice per level.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

import yaml

from .. import settings
from ..errors import PlaybookError, SourceLocation
from ..settings import Limits

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


def parse_yaml(text: str, file: str, limits: Limits | None = None) -> tuple[Any, SourceMap]:
    """Parse with libyaml's C parser when PyYAML has it. The pure-Python loader stays the
    reference: it parses when libyaml is missing, and any text the C parser fails on is
    parsed again by it, so every error keeps its wording (libyaml phrases its own).
    Either composes only a text whose shape is within the limits (`_check_shape`)."""
    try:
        _check_shape(text, file, limits or settings.limits())
        if FAST_LOADER is not None and not any(char in text for char in _PURE_ONLY):
            try:
                return _parse(FAST_LOADER, text, file)
            except Exception:  # the reference loader below decides, and words the error
                pass
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


_NESTING = "exceeded maximum nesting depth"  # libyaml's words past 1000 levels, and ours


class _FlowBounded(yaml.SafeLoader):
    """The reference loader, refusing flow nesting past `max_depth` as libyaml does past
    1000 levels. Its scanner reads ahead through open flow collections and pays for
    every one open at each token: a line of 10,000 `[` would take seconds to refuse."""

    def __init__(self, text: str, max_depth: int):
        super().__init__(text)
        self.max_depth = max_depth

    def fetch_flow_collection_start(self, TokenClass: Any) -> None:
        if self.flow_level >= self.max_depth:
            raise yaml.scanner.ScannerError(
                "while increasing flow level", None, _NESTING, self.get_mark()
            )
        super().fetch_flow_collection_start(TokenClass)


def _check_shape(text: str, file: str, limits: Limits) -> None:
    """Refuse a text past the limits, read as libyaml's events when PyYAML has it (fast,
    and the same shape the reference loader would see up to any point where the two
    disagree, where the reference loader stops with an error), else, or when libyaml
    refuses the text, as the reference parser's events. A refusal of nesting by either
    parser, which stops at no more than 1000 levels, is this limit's."""
    if FAST_LOADER is not None:
        try:
            return _walk_events(FAST_LOADER(text), file, limits)
        except PlaybookError:
            raise
        except Exception as exc:  # else a text libyaml refuses: the reference decides
            if getattr(exc, "problem", None) == _NESTING:
                raise _too_deep(file, getattr(exc, "problem_mark", None), limits) from None
    try:
        _walk_events(_FlowBounded(text, limits.max_depth), file, limits)
    except yaml.MarkedYAMLError as exc:
        if exc.problem == _NESTING:
            raise _too_deep(file, exc.problem_mark, limits) from None
        raise


def _too_deep(file: str, mark: Any, limits: Limits) -> PlaybookError:
    return _refusal(
        file, mark, f"YAML nested deeper than {limits.max_depth} levels (NOETL_MAX_DEPTH)"
    )


def _refusal(file: str, mark: Any, problem: str) -> PlaybookError:
    """A one-line refusal at the line of `mark` (a PyYAML or libyaml mark, or None)."""
    line = mark.line + 1 if mark is not None else None
    return PlaybookError([(SourceLocation(file, line, ""), problem)])


@dataclass
class _Open:
    """A collection whose end event has not come yet."""

    anchor: str | None
    nodes_before: int  # nodes counted before it began
    depth: int  # its own nesting level (the document's top node is 1)
    deepest: int  # the deepest level found in it so far, aliases expanded


def _walk_events(loader: _Loader, file: str, limits: Limits) -> None:
    """One pass over the parser's events: nodes counted with each alias as the nodes
    (and levels) of what it names. Time linear in the text, memory in its anchors and
    nesting, whatever the aliases would expand to."""
    named: dict[str, tuple[int, int]] = {}  # anchor -> (nodes, levels) of its node
    open_: list[_Open] = []
    nodes = 0

    def reached(event: yaml.Event, depth: int) -> None:
        if depth > limits.max_depth:
            raise _too_deep(file, event.start_mark, limits)
        if nodes > limits.max_nodes:
            raise _refusal(
                file,
                event.start_mark,
                f"YAML holds more than {limits.max_nodes} nodes, aliases expanded "
                "(NOETL_MAX_NODES)",
            )
        if open_:
            open_[-1].deepest = max(open_[-1].deepest, depth)

    try:
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, yaml.CollectionStartEvent):
                nodes += 1
                depth = len(open_) + 1
                reached(event, depth)
                open_.append(_Open(event.anchor, nodes - 1, depth, depth))
            elif isinstance(event, yaml.CollectionEndEvent):
                done = open_.pop()
                if done.anchor is not None:
                    named[done.anchor] = (nodes - done.nodes_before, done.deepest - done.depth + 1)
                if open_:
                    open_[-1].deepest = max(open_[-1].deepest, done.deepest)
            elif isinstance(event, yaml.ScalarEvent):
                nodes += 1
                if event.anchor is not None:
                    named[event.anchor] = (1, 1)
                reached(event, len(open_) + 1)
            elif isinstance(event, yaml.AliasEvent):
                if event.anchor not in named:
                    return  # an undefined alias: composing reports it, where it is
                size, levels = named[event.anchor]
                nodes += size
                reached(event, len(open_) + levels)
    finally:
        loader.dispose()


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
