"""Property-based tests (hypothesis) of the loader and templating against random and
hostile input: every outcome is a value or a NoetlError (never another exception), in
bounded time and memory. Derandomized, with a deadline per example, so CI sees the same
examples on every run."""

from __future__ import annotations

import contextlib
import string
import time
import tracemalloc
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from noetl_core import bounded, templating
from noetl_core.errors import InputLimitError, PlaybookError, TemplateError
from noetl_core.playbook import LoadedPlaybook, load_text, yamlsrc

pytestmark = pytest.mark.unit

FAST = settings(
    derandomize=True,
    deadline=5000,  # ms per example: a hang fails, a slow shared machine does not
    max_examples=150,
    suppress_health_check=[HealthCheck.too_slow],
)

# -- the loader --------------------------------------------------------------------------

YAML_CHARS = string.ascii_letters[:6] + string.digits[:3] + " \n\t-:?[]{},&*!|>'\"#%@`\\~.<="
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=12),
    st.sampled_from(["{{ x }}", "{{ ctx.a.b }}", "{% if x %}1{% endif %}", "{{", "end"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=8), st.integers()), inner, max_size=4),
    ),
    max_leaves=25,
)
TOOL_KINDS = ["noop", "python", "http", "playbook", "workbook", "wait", "duckdb", "nope"]
tools = st.one_of(
    values,
    st.fixed_dictionaries(
        {"kind": st.sampled_from(TOOL_KINDS)},
        optional={"code": values, "path": values, "url": values, "input": values},
    ),
)
steps = st.one_of(
    values,
    st.fixed_dictionaries(
        {"step": st.one_of(st.sampled_from(["start", "a", "b", "end"]), values)},
        optional={
            "tool": tools,
            "next": st.one_of(values, st.lists(st.sampled_from(["a", "b", "end", "zz"]))),
            "set": values,
            "loop": st.one_of(values, st.fixed_dictionaries({"in": values, "iterator": values})),
            "args": values,
            "spec": values,
        },
    ),
)
playbooks = st.fixed_dictionaries(
    {},
    optional={
        "apiVersion": st.sampled_from(["noetl.io/v2", "noetl.io/v10", "v1"]),
        "kind": st.sampled_from(["Playbook", "Other"]),
        "metadata": st.one_of(values, st.fixed_dictionaries({"name": values, "path": values})),
        "workload": values,
        "workflow": st.one_of(values, st.lists(steps, max_size=4)),
        "workbook": values,
        "keychain": values,
        "executor": values,
    },
)


def loads_or_refuses(text: str) -> None:
    try:
        loaded = load_text(text, "random.yaml")
    except PlaybookError as exc:
        assert exc.problems and all(loc.file == "random.yaml" for loc, _ in exc.problems)
    else:
        assert isinstance(loaded, LoadedPlaybook)


@FAST
@given(st.text(alphabet=YAML_CHARS, max_size=200))
def test_random_text_loads_or_is_a_playbook_error(text: str) -> None:
    loads_or_refuses(text)


@FAST
@given(playbooks, st.integers(min_value=0, max_value=3), st.data())
def test_random_playbook_structures_load_or_are_playbook_errors(
    doc: dict[str, Any], cuts: int, data: st.DataObject
) -> None:
    text = yaml.safe_dump(doc, sort_keys=False)
    for _ in range(cuts):  # and some damaged texts of it
        at = data.draw(st.integers(min_value=0, max_value=len(text)))
        text = (
            text[:at]
            + data.draw(st.sampled_from(["", ":", "- ", "[", "&a ", "*a", "\t"]))
            + text[at + 1 :]
        )
    loads_or_refuses(text)


@FAST
@given(playbooks)
def test_a_playbook_loads_the_same_with_and_without_libyaml(doc: dict[str, Any]) -> None:
    text = yaml.safe_dump(doc, sort_keys=False)
    outcomes = []
    for loader in (yamlsrc.FAST_LOADER, None):
        saved, yamlsrc.FAST_LOADER = yamlsrc.FAST_LOADER, loader
        try:
            outcomes.append(("ok", load_text(text, "pb.yaml").playbook))
        except PlaybookError as exc:
            outcomes.append(("error", exc.message))
        finally:
            yamlsrc.FAST_LOADER = saved
    assert outcomes[0] == outcomes[1]


# -- hostile input: refused within a time and memory bound --------------------------------


def refused_within(call: Any, seconds: float, megabytes: float) -> None:
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises((PlaybookError, InputLimitError)):
            call()
    finally:
        took = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert took < seconds and peak < megabytes * 1e6, (took, peak)


HOSTILE = settings(FAST, max_examples=30)


@HOSTILE
@given(
    st.integers(min_value=2, max_value=12),
    st.integers(min_value=6, max_value=40),
    st.booleans(),
)
def test_alias_bombs_are_refused_quickly_in_bounded_memory(
    fan_out: int, levels: int, mappings: bool
) -> None:
    def node(i: int) -> str:
        items = [f"*a{i - 1}" if i else '"lol"'] * fan_out
        if mappings:
            return "{" + ", ".join(f"k{j}: {item}" for j, item in enumerate(items)) + "}"
        return "[" + ", ".join(items) + "]"

    text = "".join(f"a{i}: &a{i} {node(i)}\n" for i in range(levels))
    if fan_out**levels < 100_000:
        return  # not a bomb: within the budget it may load
    refused_within(lambda: load_text(text, "bomb.yaml"), seconds=2, megabytes=20)


@HOSTILE
@given(
    st.integers(min_value=101, max_value=50_000),
    st.sampled_from(["flow list", "flow map", "block list", "block map", "json"]),
)
def test_deep_nesting_is_refused_quickly_in_bounded_memory(depth: int, shape: str) -> None:
    if shape == "flow list":
        text = "w: " + "[" * depth + "]" * depth
    elif shape == "flow map":
        text = "w: " + "{a: " * depth + "1" + "}" * depth
    elif shape == "block list":
        text = "w:\n  " + "- " * depth + "x"
    elif shape == "block map":
        depth = min(depth, 400)  # indentation makes the text quadratic in the depth
        text = "".join(f"{' ' * i}k:\n" for i in range(depth)) + " " * depth + "x: 1"
    else:
        text = '{"a": ' * depth + "1" + "}" * depth
        refused_within(lambda: bounded.json_loads(text, "it"), seconds=2, megabytes=20)
        return
    refused_within(lambda: load_text(text + "\n", "deep.yaml"), seconds=2, megabytes=20)


# -- templating ----------------------------------------------------------------------------

TEMPLATE_PARTS = [
    "{{",
    "}}",
    "{%",
    "%}",
    "{#",
    "#}",
    " ",
    "x",
    "ctx",
    "rows",
    "cfg",
    ".",
    "[0]",
    "['a']",
    "(",
    ")",
    "|",
    "default(1)",
    "length",
    "tojson",
    "fromjson",
    "upper",
    "+",
    "-",
    "*",
    "/",
    "//",
    "%",
    "~",
    "==",
    "and",
    "not",
    "if",
    "else",
    "for",
    "in",
    "endfor",
    "endif",
    "set",
    "=",
    "'s'",
    "1",
    "0",
    "None",
    "[1, 2]",
    "{'a': 1}",
    "append(1)",
    "update({})",
    "pop()",
    "__class__",
    "_x",
    "range(3)",
    "loop.index",
    ",",
    ":",
    "\n",
    '"',
    "'",
]
templates = st.lists(st.sampled_from(TEMPLATE_PARTS), max_size=14).map("".join)


def names() -> dict[str, Any]:
    return {
        "x": 3,
        "ctx": {"a": {"b": [1, 2]}, "s": "[1]"},
        "rows": [{"a": 1}, {"a": 2}],
        "cfg": {"a": 1},
        "step": templating.ResultView({"data": [1, 2]}),
    }


@FAST
@given(st.one_of(templates, st.text(max_size=40)))
def test_random_templates_render_or_are_template_errors(source: str) -> None:
    given_names = names()
    try:
        templating.render({"t": source}, given_names, "step s: input")
    except TemplateError as exc:
        assert exc.message.startswith("step s: input.t: ")
    try:
        found = templating.names(source)
    except TemplateError:
        pass
    else:
        assert isinstance(found, set)
    assert all(isinstance(message, str) for _, message in templating.check({"t": source}))
    assert templating.unwrap(given_names) == templating.unwrap(names())  # nothing changed


@HOSTILE
@given(
    st.integers(min_value=500, max_value=5_000),
    st.sampled_from(["[", "(", "+1", "-x", "|upper", "{% if x %}", "{'a': "]),
)
def test_deeply_nested_templates_are_template_errors(depth: int, part: str) -> None:
    closing = {"[": "]", "(": ")", "{% if x %}": "{% endif %}", "{'a': ": "}"}.get(part, "")
    if part.startswith("{%"):
        source = part * depth + "1" + closing * depth
    else:
        source = "{{ " + ("1" if part in ("+1", "-x", "|upper") else "") + part * depth
        source += ("1" if closing else "") + closing * depth + " }}"
    start = time.perf_counter()
    problems = templating.check({"t": source})
    assert time.perf_counter() - start < 5
    assert len(problems) <= 1
    with contextlib.suppress(TemplateError):
        templating.render(source, names(), "step s: input")


@HOSTILE
@given(
    st.sampled_from(["'x'", "[0]", "'ab'", "9", "x", "2"]),
    st.sampled_from(["*", "**"]),
    st.integers(min_value=0, max_value=10**15),
)
def test_huge_products_are_refused_not_computed(left: str, operator: str, right: int) -> None:
    source = f"{{{{ {left} {operator} {right} }}}}"
    start = time.perf_counter()
    try:
        value = templating.render(source, names())
    except TemplateError as exc:
        assert "over" in exc.message or "unsupported operand" in exc.message
    else:
        assert len(str(value)) <= 1 << 21
    assert time.perf_counter() - start < 5
