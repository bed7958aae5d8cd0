"""Templating: type preservation, undefined chaining, filters, names, result views, sandbox."""

from __future__ import annotations

from typing import Any

import pytest

from noetl_core import templating
from noetl_core.errors import TemplateError
from noetl_core.templating import ResultView

pytestmark = pytest.mark.unit


def render(source, **names):
    return templating.render(source, names)


# -- type preservation ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "names", "expected"),
    [
        ("{{ xs }}", {"xs": [1, 2, 3]}, [1, 2, 3]),
        ("{{ d }}", {"d": {"a": {"b": [1]}}}, {"a": {"b": [1]}}),
        ("{{ n + 1 }}", {"n": 41}, 42),
        ("{{ n > 1 }}", {"n": 2}, True),
        ("{{ n > 1 }}", {"n": 0}, False),
        ("{{ 1.5 * 2 }}", {}, 3.0),
        ("  {{ xs }}  ", {"xs": [1]}, [1]),
        ("{{ none_value }}", {"none_value": None}, None),
    ],
)
def test_single_expression_keeps_its_type(source, names, expected):
    value = templating.render(source, names)
    assert value == expected
    assert type(value) is type(expected)


def test_mixed_string_renders_to_str():
    assert render("n={{ xs }}", xs=[1, 2]) == "n=[1, 2]"
    assert render("{{ a }}{{ b }}", a=3, b=4) == "34"
    assert render("page {{ n }}", n=2) == "page 2"


def test_non_template_values_pass_through_unchanged():
    assert render("plain text") == "plain text"
    assert render(7) == 7
    assert render(None) is None


def test_nested_structures_render_each_leaf():
    value = templating.render(
        {"a": "{{ x }}", "b": ["{{ x + 1 }}", "id-{{ x }}"], "c": 5}, {"x": 1}
    )
    assert value == {"a": 1, "b": [2, "id-1"], "c": 5}


def test_workload_values_are_data_never_rendered_again():
    assert render("{{ x }}", x="{{ secret }}", secret="leaked") == "{{ secret }}"


# -- undefined -------------------------------------------------------------------------


def test_undefined_chains_and_renders_as_none():
    assert render("{{ nothing.here.at.all }}") is None
    assert render("{{ d.missing.deeper }}", d={"a": 1}) is None


def test_undefined_falls_through_to_default():
    assert render("{{ nothing.a.b | default(5) }}") == 5
    assert render("{{ d.missing | default('x') }}", d={}) == "x"
    assert render("{{ d.a | default('x') }}", d={"a": 1}) == 1


def test_undefined_in_mixed_string_is_empty():
    assert render("[{{ nothing.a }}]") == "[]"


# -- filters ---------------------------------------------------------------------------


def test_tojson_serialises_plain_values_and_views():
    assert render("{{ d | tojson }}", d={"a": [1, None, True]}) == '{"a": [1, null, true]}'
    assert render("{{ v | tojson }}", v=ResultView({"k": "v"})) == '{"k": "v"}'
    assert render("{{ missing | tojson }}") == "null"


def test_fromjson_parses_and_keeps_type():
    assert render("{{ s | fromjson }}", s='{"a": [1, 2]}') == {"a": [1, 2]}
    assert render("{{ (s | fromjson).a[1] }}", s='{"a": [1, 2]}') == 2
    assert render("{{ missing | fromjson }}") is None


def test_b64_round_trip():
    assert render("{{ s | b64encode }}", s="hello") == "aGVsbG8="
    assert render("{{ s | b64decode }}", s="aGVsbG8=") == "hello"
    assert render("{{ s | b64encode | b64decode }}", s="ü ok") == "ü ok"


# -- names -----------------------------------------------------------------------------


def test_names_finds_only_referenced_names():
    found = templating.names(
        {
            "a": "{{ fetch.data.items }}",
            "b": ["{% for row in rows %}{{ row.id }}{% endfor %}"],
            "c": "{{ x | default(y) }}",
            "d": "no template here {not_a_name}",
            "e": 5,
        }
    )
    assert found == {"fetch", "rows", "x", "y"}


def test_names_excludes_loop_and_set_locals():
    assert templating.names("{% set t = a %}{{ t }}{% for i in xs %}{{ i }}{% endfor %}") == {
        "a",
        "xs",
    }


def test_condition_names_reads_bare_expressions():
    assert templating.condition_names("a.b and c > 1") == {"a", "c"}
    assert templating.condition_names(True) == set()
    assert templating.condition_names(None) == set()


# -- result views ----------------------------------------------------------------------


def test_data_falls_back_to_the_result_itself():
    assert render("{{ s.data }}", s=ResultView({"a": 1})) == {"a": 1}
    assert render("{{ s.data.a }}", s=ResultView({"a": 1})) == 1
    assert render("{{ s.data }}", s=ResultView({"data": [3], "other": 1})) == [3]
    assert render("{{ s.data }}", s=ResultView([1, 2])) == [1, 2]


def test_view_renders_unwrapped_as_single_expression():
    value = render("{{ s }}", s=ResultView({"a": [1]}))
    assert value == {"a": [1]}
    assert type(value) is dict
    assert render("x {{ s }}", s=ResultView({"a": 1})) == 'x {"a": 1}'


def test_ref_defined_only_for_stored_results():
    ref = {"uri": "file:///x", "sha256": "abc"}
    stored = ResultView(ref=ref, loader=lambda: {"rows": []})
    assert render("{{ s._ref }}", s=stored) == ref
    assert render("{{ s._ref }}", s=ResultView({"a": 1})) is None
    assert render("{{ s._ref | default('inline') }}", s=ResultView({"a": 1})) == "inline"


def test_loader_called_only_on_access_and_once():
    calls = []

    def load():
        calls.append(1)
        return {"rows": [1, 2, 3]}

    view = ResultView(ref={"uri": "u"}, loader=load)
    names = {"s": view}
    assert templating.render("{{ s._ref }}", names) == {"uri": "u"}
    assert calls == []
    assert templating.render("{{ s.rows }}", names) == [1, 2, 3]
    assert calls == [1]
    assert templating.render("{{ s.rows | length }}", names) == 3
    assert calls == [1]


def test_selected_fields_are_read_without_loading():
    calls = []

    def load():
        calls.append(1)
        return {"count": 2, "rows": [1, 2]}

    view = ResultView(ref={"uri": "u"}, loader=load, selected={"count": 2})
    assert render("{{ s.count }}", s=view) == 2
    assert calls == []
    assert render("{{ s.rows }}", s=view) == [1, 2]
    assert calls == [1]


def test_unwrap_replaces_nested_views():
    value = {"a": [ResultView({"b": 1})], "c": ResultView(ResultView(2))}
    assert templating.unwrap(value) == {"a": [{"b": 1}], "c": 2}


# -- mapping keys vs methods -----------------------------------------------------------


def test_mapping_keys_win_over_dict_methods():
    assert render("{{ page.items }}", page={"items": [1, 2]}) == [1, 2]
    assert render("{{ page.keys }}", page={"keys": "k"}) == "k"
    assert render("{{ page.items }}", page=ResultView({"items": [9]})) == [9]


def test_dict_methods_still_work_without_a_key_of_that_name():
    assert render("{{ d.keys() | list }}", d={"a": 1, "b": 2}) == ["a", "b"]


# -- sandbox ---------------------------------------------------------------------------


def test_sandbox_hides_dunder_attributes():
    assert render("{{ ''.__class__ }}") is None
    assert render("{{ x.__class__.__mro__ }}", x="s") is None
    assert render("{{ v.__class__ }}", v=ResultView({"a": 1})) is None


def test_sandbox_blocks_escape_through_subclasses():
    with pytest.raises(TemplateError, match="unsafe"):
        templating.render("{{ x.__class__.__mro__[1].__subclasses__() }}", {"x": "s"})


def test_sandbox_blocks_unsafe_function_attributes():
    def f():
        return 1

    assert render("{{ f.__globals__ }}", f=f) is None
    assert render("{{ f.__code__.co_consts }}", f=f) is None
    assert render("{{ f() }}", f=f) == 1


@pytest.mark.parametrize(
    "source",
    [
        "{{ cfg.update({'a': 2}) }}",
        "{{ cfg.setdefault('b', 1) }}",
        "{{ cfg.pop('a') }}",
        "{{ cfg.clear() }}",
        "{{ rows.append(1) }}",
        "{{ rows.extend([1]) }}",
        "{{ rows.sort() }}",
        "{{ rows.pop() }}",
        "{{ (rows | first).update({'x': 0}) }}",
        "{{ nested.inner.rows.insert(0, 9) }}",
        "{{ view.append(1) }}",
        "{{ view.data.append(1) }}",
        "{{ record.rows.append(1) }}",
        "{{ cfg | attr('update') }}",
        "{% set _ = rows.reverse() %}done",
        "{% for r in rows %}{{ r.update({'x': 0}) }}{% endfor %}",
    ],
)
def test_templates_cannot_change_what_they_read(source: str) -> None:
    def names() -> dict[str, Any]:
        return {
            "cfg": {"a": 1},
            "rows": [{"x": 1}, {"x": 2}],
            "nested": {"inner": {"rows": [1]}},
            "view": ResultView([1, 2]),
            "record": ResultView({"rows": [1]}),
        }

    given = names()
    try:
        templating.render(source, given, "step s: set.ctx.x")
    except TemplateError as exc:
        assert exc.message.startswith("step s: set.ctx.x: template ")
        assert "was refused" in exc.message and "unsafe" in exc.message
    else:  # only `attr` answers (with nothing): the method is never handed out
        assert "attr" in source
    assert templating.unwrap(given) == templating.unwrap(names())


def test_reading_methods_of_a_result_still_work() -> None:
    assert render("{{ v.keys() | list }}", v=ResultView({"a": 1})) == ["a"]
    assert render("{{ v.index(2) }}", v=ResultView([1, 2])) == 1
    assert render("{{ v.upper() }}", v=ResultView("abc")) == "ABC"
    assert render("{{ v.copy() + [3] }}", v=ResultView([1, 2])) == [1, 2, 3]


# -- condition -------------------------------------------------------------------------


def test_condition_none_and_bools():
    assert templating.condition(None, {}) is True
    assert templating.condition(True, {}) is True
    assert templating.condition(False, {"x": 1}) is False


def test_condition_bare_expression_and_template():
    names = {"x": 2, "event": {"name": "call.error"}}
    assert templating.condition("x > 1", names) is True
    assert templating.condition("x < 1", names) is False
    assert templating.condition("{{ x > 1 }}", names) is True
    assert templating.condition("event.name == 'call.error'", names) is True


@pytest.mark.parametrize("text", ["", "false", "False", "0", "none", "None", "null", "no", "off"])
def test_condition_falsy_strings(text):
    assert templating.condition("{{ s }}", {"s": text}) is False
    assert templating.condition("{{ s }}", {"s": f"  {text.upper()}  "}) is False


@pytest.mark.parametrize("text", ["yes", "true", "1", "ok"])
def test_condition_truthy_strings(text):
    assert templating.condition("{{ s }}", {"s": text}) is True


def test_condition_falsy_values_and_undefined():
    assert templating.condition("{{ xs }}", {"xs": []}) is False
    assert templating.condition("{{ n }}", {"n": 0}) is False
    assert templating.condition("{{ missing.a }}", {}) is False
    assert templating.condition("missing", {}) is False


# -- errors ----------------------------------------------------------------------------


def test_render_error_names_the_path():
    with pytest.raises(TemplateError) as info:
        templating.render({"k": ["ok", "{{ 1 / 0 }}"]}, {}, "step a: input")
    assert info.value.message.startswith("step a: input.k[1]:")
    assert "ZeroDivisionError" in info.value.message
    assert info.value.code == "template_error"


def test_syntax_error_names_the_path():
    with pytest.raises(TemplateError) as info:
        templating.render({"url": "{{ x + }}"}, {"x": 1}, "step b: tool")
    assert info.value.message.startswith("step b: tool.url:")
    assert "syntax error" in info.value.message


def test_condition_error_names_the_path():
    with pytest.raises(TemplateError, match=r"^step a: next\.arcs\[0\]\.when: "):
        templating.condition("x >", {"x": 1}, "step a: next.arcs[0].when")


def test_a_plain_path_template_is_read_checked_and_rendered_without_jinja() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from noetl_core import templating as t\n"
        "assert t.render('{{ a.b }}', {'a': {'b': [1]}}) == [1]\n"
        "assert t.render('{{ missing.x }}', {}) is None\n"
        "assert t.names('{{ a.b.c }}') == {'a'} and t.check({'k': '{{ a.b }}'}) == []\n"
        "assert t.condition('a.b', {'a': {'b': True}})\n"
        "assert 'jinja2' not in sys.modules, 'jinja2 was imported'\n"
        "assert t.render('{{ a.b | default(2) }}', {}) == 2\n"
        "assert 'jinja2' in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("path", "context"),
    [
        ("a.b", {"a": {"b": 1}}),
        ("a.b.c", {"a": {"b": None}}),
        ("a.b", {}),
        ("a.items", {"a": {"items": 3}}),
        ("a.missing.deeper", {"a": {}}),
        ("a.data.x", {"a": ResultView({"data": {"x": 7}})}),
        ("a.data", {"a": ResultView([1, 2])}),
        ("a.0", {"a": [5, 6]}),
        ("a.upper", {"a": "text"}),
        ("a.real", {"a": 3}),
        ("range", {}),
    ],
)
def test_the_plain_path_reads_exactly_what_jinja_reads(path: str, context: dict[str, Any]) -> None:
    from noetl_core.templating import render

    fast = render("{{ " + path + " }}", context)
    slow = render("{{ (" + path + ") }}", context)  # not a plain path: Jinja evaluates it
    if callable(slow):
        assert callable(fast) and getattr(fast, "__name__", None) == slow.__name__
    else:
        assert fast == slow
