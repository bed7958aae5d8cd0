"""Hostile YAML and JSON are refused before they are built: alias bombs under a node
budget (NOETL_MAX_NODES), nesting under a depth limit (NOETL_MAX_DEPTH), each with one
line naming the limit (and file and line where there is one), quickly and in bounded
memory."""

from __future__ import annotations

import base64
import json
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from noetl_core import bounded, cloud, settings, templating
from noetl_core.errors import ConfigError, InputLimitError, PlaybookError, TemplateError
from noetl_core.playbook import load_text, yamlsrc
from noetl_core.settings import Limits

pytestmark = pytest.mark.unit

DEEP = 10_000


def alias_bomb(levels: int = 10) -> str:
    """478 bytes that expand to 9**10 (3.5 billion) strings."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


HOSTILE_YAML = {
    "alias bomb": (alias_bomb(), 6, "NOETL_MAX_NODES"),
    "deep flow": ("w: " + "[" * DEEP + "]" * DEEP + "\n", 1, "NOETL_MAX_DEPTH"),
    "deep block": ("w:\n" + "  " + "- " * DEEP + "x\n", 2, "NOETL_MAX_DEPTH"),
    "deep mappings": (
        "".join(f"{' ' * i}k{i}:\n" for i in range(150)) + " " * 150 + "x: 1\n",
        100,
        "NOETL_MAX_DEPTH",
    ),
    "deep, with a character only the pure loader reads": (
        "w: " + "[" * DEEP + "]" * DEEP + "  # ?\tx\n",
        1,
        "NOETL_MAX_DEPTH",
    ),
}


@contextmanager
def bounded_cost(seconds: float, megabytes: float) -> Iterator[None]:
    """Fail when the block takes longer or allocates more (Python's allocator) than given."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        yield
    finally:
        took = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert took < seconds, f"took {took:.2f} s"
    assert peak < megabytes * 1e6, f"peaked at {peak / 1e6:.1f} MB"


def refusal(call: Callable[[], Any]) -> str:
    with pytest.raises(PlaybookError) as info:
        call()
    message = info.value.message
    assert "\n" not in message
    return message


@pytest.mark.parametrize(("text", "line", "limit"), HOSTILE_YAML.values(), ids=HOSTILE_YAML.keys())
@pytest.mark.parametrize("fast", [True, False], ids=["libyaml", "pure"])
def test_hostile_yaml_is_refused_quickly_in_bounded_memory(
    monkeypatch: pytest.MonkeyPatch, text: str, line: int, limit: str, fast: bool
) -> None:
    if not fast:
        monkeypatch.setattr(yamlsrc, "FAST_LOADER", None)
    with bounded_cost(seconds=5, megabytes=20):
        message = refusal(lambda: load_text(text, "hostile.yaml"))
    assert message.startswith(f"hostile.yaml:{line}: YAML ")
    assert limit in message


def test_an_alias_counts_the_nodes_and_levels_it_repeats() -> None:
    limits = Limits(max_nodes=50, max_depth=5)
    nested = "a: &a [[[1]]]\n"  # levels 2..4 below the document's mapping
    assert yamlsrc.parse_yaml(nested + "b: *a\n", "ok.yaml", limits)[0]["b"] == [[[1]]]
    message = refusal(lambda: yamlsrc.parse_yaml(nested + "b: [[*a]]\n", "x.yaml", limits))
    assert message == "x.yaml:2: YAML nested deeper than 5 levels (NOETL_MAX_DEPTH)"
    many = "a: &a [1, 2, 3, 4, 5, 6, 7, 8, 9]\nb: [*a, *a, *a, *a, *a]\n"
    message = refusal(lambda: yamlsrc.parse_yaml(many, "x.yaml", limits))
    assert message == "x.yaml:2: YAML holds more than 50 nodes, aliases expanded (NOETL_MAX_NODES)"


def test_yaml_at_the_depth_limit_loads() -> None:
    limits = Limits(max_depth=settings.DEPTH_CEILING)
    deepest = "w: " + "[" * (limits.max_depth - 1) + "]" * (limits.max_depth - 1) + "\n"
    for fast in (yamlsrc.FAST_LOADER, None):
        saved, yamlsrc.FAST_LOADER = yamlsrc.FAST_LOADER, fast
        try:
            data, _ = yamlsrc.parse_yaml(deepest, "ok.yaml", limits)
        finally:
            yamlsrc.FAST_LOADER = saved
        assert bounded.check_depth(data, "it", limits) is None
    refusal(lambda: yamlsrc.parse_yaml("w: [" + deepest[3:], "x.yaml", limits))


def test_a_file_that_is_not_utf8_is_a_playbook_error(tmp_path: Any) -> None:
    from noetl_core.playbook import load_file

    file = tmp_path / "binary.yaml"
    file.write_bytes(b"a: \xff\xfe\n")
    assert refusal(lambda: load_file(file)) == f"{file}: not UTF-8 text (byte 3)"


def test_limits_are_settings_with_safe_defaults() -> None:
    assert settings.limits({}) == Limits() == settings.load({}).limits
    assert Limits().max_depth <= settings.DEPTH_CEILING
    assert settings.limits({"NOETL_MAX_NODES": "7", "NOETL_MAX_DEPTH": "9"}) == Limits(7, 9)
    with pytest.raises(ConfigError, match="NOETL_MAX_DEPTH must be at most 200"):
        settings.limits({"NOETL_MAX_DEPTH": "5000"})
    with pytest.raises(ConfigError, match="NOETL_MAX_NODES must be positive"):
        settings.limits({"NOETL_MAX_NODES": "0"})


# -- JSON --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        '{"a": [1, {"b": "]]]"}], "c": "\\"[[[\\\\"}',
        '[[[["x"]]]]',
        '"[[[[[[[["',
        "[]",
        "3",
        '{"k": "\\u005b\\u005b"}',
    ],
)
def test_json_within_the_limit_reads_as_json_does(text: str) -> None:
    limits = Limits(max_depth=4)
    assert bounded.json_loads(text, "it", limits) == json.loads(text)
    assert bounded.json_loads(text.encode("utf-16"), "it", limits) == json.loads(text)


def test_json_past_the_limit_is_refused_naming_the_line() -> None:
    text = '{\n  "a": [\n    [[["x"]]]\n  ]\n}\n'
    with pytest.raises(InputLimitError) as info:
        bounded.json_loads(text, "the body", Limits(max_depth=4))
    assert info.value.message == "the body: nested deeper than 4 levels at line 3 (NOETL_MAX_DEPTH)"
    assert info.value.code == "input_limit"


@pytest.mark.parametrize(
    "text",
    [
        "[" * 1_000_000,
        "[" * DEEP + "]" * DEEP,
        '{"a":' * DEEP + "1" + "}" * DEEP,
        '"' + '\\"' * 500_000 + "\\",  # an unterminated string of escaped quotes
        '"' * 1_000_000,
        '["' + "[" * 500_000,
    ],
    ids=["open brackets", "deep list", "deep object", "escaped quotes", "quotes", "open string"],
)
def test_hostile_json_is_refused_or_malformed_quickly(text: str) -> None:
    with bounded_cost(seconds=3, megabytes=60), pytest.raises((InputLimitError, ValueError)):
        bounded.json_loads(text, "it")


def test_a_deep_value_is_measured_without_recursion() -> None:
    value: Any = 1
    for _ in range(100_000):
        value = {"k": [value]}
    with pytest.raises(InputLimitError, match=r"^the workload: nested deeper than 100 levels"):
        bounded.check_depth(value, "the workload")
    bounded.check_depth({"a": [[{"b": 1}]]}, "it", Limits(max_depth=4))


def test_fromjson_past_the_limit_is_a_template_error() -> None:
    names = {"s": "[" * DEEP + "]" * DEEP}
    with pytest.raises(TemplateError, match="fromjson: nested deeper than 100 levels"):
        templating.render("{{ s | fromjson }}", names, "step a: input.x")


def test_cloud_trigger_bodies_past_the_limit_are_refused() -> None:
    # (request bodies: the gateway's, tests/integration/test_gateway.py and test_serve.py)
    deep = b"[" * DEEP + b"]" * DEEP
    data = base64.b64encode(b'{"path": "p", "workload": ' + deep + b"}").decode()
    with pytest.raises(InputLimitError, match=r"^a trigger message: nested deeper"):
        cloud._trigger_of({"message": {"data": data}})
