"""The playbook YAML loader on libyaml: the C parser is used when PyYAML has it, and it
gives the same data, the same source lines and the same errors as the pure loader."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from noetl_core.errors import PlaybookError
from noetl_core.playbook import load_text, yamlsrc

pytestmark = pytest.mark.unit

needs_libyaml = pytest.mark.skipif(
    not getattr(yaml, "__with_libyaml__", False), reason="PyYAML built without libyaml"
)

EXAMPLES = Path(__file__).resolve().parents[2] / "playbooks" / "examples"
EXAMPLE_FILES = sorted(EXAMPLES.rglob("*.yaml"))

VALID = {
    "crlf": "a: 1\r\nb:\r\n  - x\r\n  - y\r\n",
    "bom": "\ufeffa: 1\nb: 2\n",
    "unicode line breaks": "a: 1\x85b: 2\u2028c: 3\n",
    "anchors and merge keys": "a: &x {b: 1, c: [1, 2]}\nd: *x\ne:\n  <<: *x\n  f: 3\n",
    "block scalars": "a: |\n  line1\n  line2\nb: >-\n  folded\n  text\nc: |+\n  keep\n\nd: 1\n",
    "directives and markers": "%YAML 1.1\n---\na: 1\n...\n",
    "tags": "a: !!str 1\nb: !!float 2\nc: !!binary aGVsbG8=\nd: 2001-12-14\ne: ~\n",
    "multi-line scalars": "a: 'x\n  y'\nb: \"p\\\n  q\"\nc: plain\n  more\n",
    "flow over lines": "a: {b: 1,\n  c: 2}\nd: [1,\n  2]\n",
    "json": '{"a":1,"b":[true,null],"c":{"d":"e"}}\n',
    "tab in a block scalar": "code: |\n  if x:\n  \treturn 1\nnext: 2\n",
    "query string": "url: http://host/path?page=1\n",
}

INVALID = {
    "bad indentation": "a:\n  - x\n   y: 1\n",
    "mapping value in a plain scalar": "a: b: c\n",
    "tab indentation": "a:\n\tb: 1\n",
    "tab after a value": "a: x \ty\n",
    "question mark in a flow scalar": "a: {rec?: 1}\n",
    "two documents": "a: 1\n---\nb: 2\n",
    "unclosed flow sequence": "a: [1, 2\n",
    "unclosed quote": 'a: "x\n',
    "undefined alias": "a: *nope\n",
    "unknown tag": "a: !!python/object:os.system x\n",
    "control character": "a: \x07\n",
    "lone surrogate": "a: \ud800\n",
    "duplicate key": "a: 1\nb: 2\na: 3\n",
    "non-scalar key": "? [1, 2]\n: x\n",
    "empty": "# only a comment\n",
    "empty document": "---\n",
}


def outcome(text: str) -> tuple[Any, ...]:
    try:
        data, smap = yamlsrc.parse_yaml(text, "pb.yaml")
    except PlaybookError as exc:
        return ("error", exc.problems)
    return ("ok", data, smap.lines)


def both(monkeypatch: pytest.MonkeyPatch, text: str) -> tuple[Any, Any]:
    """(C loader, pure loader) outcomes of one text."""
    fast = outcome(text)
    monkeypatch.setattr(yamlsrc, "FAST_LOADER", None)
    pure = outcome(text)
    monkeypatch.undo()
    return fast, pure


@needs_libyaml
def test_the_fast_loader_is_libyamls_safe_loader() -> None:
    assert yamlsrc.FAST_LOADER is yaml.CSafeLoader


@needs_libyaml
@pytest.mark.parametrize("file", EXAMPLE_FILES, ids=lambda p: p.name)
def test_an_example_playbook_is_parsed_by_the_c_loader_alone(
    monkeypatch: pytest.MonkeyPatch, file: Path
) -> None:
    made: list[str] = []

    def c_loader(text: str) -> Any:
        made.append(text)
        return yaml.CSafeLoader(text)

    def refuse(text: str) -> Any:
        raise AssertionError("the pure loader parsed a text the C loader reads")

    monkeypatch.setattr(yamlsrc, "FAST_LOADER", c_loader)
    monkeypatch.setattr(yaml, "SafeLoader", refuse)
    text = file.read_text(encoding="utf-8")
    yamlsrc.parse_yaml(text, str(file))
    assert made == [text, text]  # its shape (events only), then its data


@needs_libyaml
@pytest.mark.parametrize("file", EXAMPLE_FILES, ids=lambda p: p.name)
def test_an_example_playbook_has_the_same_data_and_lines(
    monkeypatch: pytest.MonkeyPatch, file: Path
) -> None:
    fast, pure = both(monkeypatch, file.read_text(encoding="utf-8"))
    assert fast[0] == "ok"
    assert fast == pure


@needs_libyaml
@pytest.mark.parametrize("text", VALID.values(), ids=VALID.keys())
def test_valid_yaml_has_the_same_data_and_lines(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    fast, pure = both(monkeypatch, text)
    assert fast[0] == "ok"
    assert fast == pure


@needs_libyaml
@pytest.mark.parametrize("text", INVALID.values(), ids=INVALID.keys())
def test_an_error_has_the_same_line_and_words(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    fast, pure = both(monkeypatch, text)
    assert fast[0] == "error"
    assert fast == pure


@needs_libyaml
def test_a_syntax_error_keeps_the_pure_loaders_words() -> None:
    (loc, message), *_ = outcome("workflow:\n  - step: a\n    desc: a: b\n")[1]
    assert loc.line == 3
    # libyaml's own words would be "mapping values are not allowed in this context"
    assert message == "YAML syntax: mapping values are not allowed here"


def test_without_libyaml_the_pure_loader_parses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yamlsrc, "FAST_LOADER", None)
    text = (EXAMPLES / "hello_world.yaml").read_text(encoding="utf-8")
    loaded = load_text(text, "hello_world.yaml")
    assert loaded.playbook.metadata.name == "hello_world"
    assert outcome("a: b: c\n")[1][0][1] == "YAML syntax: mapping values are not allowed here"
