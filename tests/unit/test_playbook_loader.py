"""Loading and validating playbooks: lenient forms in, canonical model out, and every
problem reported with file, YAML line and path (see docs/language.md)."""

from __future__ import annotations

import hashlib
import textwrap
from pathlib import Path

import pytest

from noetl_core.errors import PlaybookError, SourceLocation
from noetl_core.playbook import LoadedPlaybook, load_file, load_text
from noetl_core.tools import registry

pytestmark = pytest.mark.unit

EXAMPLES = Path(__file__).resolve().parents[2] / "playbooks" / "examples"
EXAMPLE_FILES = sorted(EXAMPLES.glob("*.yaml"))

HEAD = "apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {name: t}\n"


def pb(body: str) -> str:
    """The three header lines, then `body` (dedented). Body line 1 is file line 4."""
    return HEAD + textwrap.dedent(body)


def load(text: str) -> LoadedPlaybook:
    return load_text(text, "pb.yaml")


def fail(text: str) -> PlaybookError:
    with pytest.raises(PlaybookError) as info:
        load_text(text, "pb.yaml")
    return info.value


def one_problem(text: str) -> tuple[SourceLocation, str]:
    err = fail(text)
    assert len(err.problems) == 1, err.message
    return err.problems[0]


def line_with(text: str, needle: str) -> int:
    """The 1-based line of the only line of `text` containing `needle`."""
    hits = [n for n, line in enumerate(text.splitlines(), 1) if needle in line]
    assert len(hits) == 1, (needle, hits)
    return hits[0]


# ---------------------------------------------------------------------------- valid


def test_minimal_playbook_loads_into_the_canonical_model() -> None:
    text = pb("""\
        workflow:
          - step: start
            tool: {kind: noop}
        """)
    loaded = load(text)
    book = loaded.playbook
    assert book.api_version == "noetl.io/v2"
    assert book.kind == "Playbook"
    assert book.metadata.name == "t"
    assert [s.step for s in book.workflow] == ["start"]
    assert book.workflow[0].tool.kind == "noop"
    assert book.workflow[0].arcs == []
    assert book.workload == {}
    assert book.entry_step == "start"
    assert loaded.source == text
    assert loaded.file == "pb.yaml"
    assert loaded.digest == hashlib.sha256(text.encode()).hexdigest()
    assert loaded.path == "t"


def test_metadata_path_is_the_catalog_path_and_workload_is_kept() -> None:
    text = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: hello, path: examples/hello, version: 3, description: Say hi}
workload: {message: Hello, count: 2}
workflow:
  - step: start
    desc: the only step
    tool: {kind: noop}
"""
    loaded = load(text)
    assert loaded.path == "examples/hello"
    assert loaded.playbook.metadata.version == 3
    assert loaded.playbook.metadata.description == "Say hi"
    assert loaded.playbook.workload == {"message": "Hello", "count": 2}
    assert loaded.playbook.workflow[0].desc == "the only step"


def test_entry_step_is_executor_spec_entry_step_even_when_start_exists() -> None:
    text = pb("""\
        executor:
          spec: {entry_step: second}
        workflow:
          - step: start
            tool: {kind: noop}
          - step: second
            tool: {kind: noop}
        """)
    assert load(text).playbook.entry_step == "second"


def test_entry_step_is_start_when_not_given_even_if_start_is_not_first() -> None:
    text = pb("""\
        workflow:
          - step: first
            tool: {kind: noop}
          - step: start
            tool: {kind: noop}
        """)
    assert load(text).playbook.entry_step == "start"


def test_entry_step_is_the_first_step_without_executor_or_start() -> None:
    text = pb("""\
        workflow:
          - step: alpha
            tool: {kind: noop}
          - step: beta
            tool: {kind: noop}
        """)
    assert load(text).playbook.entry_step == "alpha"


def test_entry_step_naming_no_step_is_an_error_at_executor_spec_entry_step() -> None:
    text = pb("""\
        executor:
          spec: {entry_step: nowhere}
        workflow:
          - step: start
            tool: {kind: noop}
        """)
    loc, msg = one_problem(text)
    assert loc == SourceLocation("pb.yaml", 5, "executor.spec.entry_step")
    assert "'nowhere'" in msg and "not a step" in msg


# ----------------------------------------------------------------------------- YAML


def test_yaml_syntax_error_names_file_and_line() -> None:
    text = pb("""\
        workflow:
          - step: a
           tool: {kind: noop}
        """)
    err = fail(text)
    assert err.problems == [(SourceLocation("pb.yaml", 6, ""), err.problems[0][1])]
    assert err.problems[0][1].startswith("YAML syntax:")
    assert err.message.startswith("pb.yaml:6: YAML syntax:")
    assert err.code == "invalid_playbook"


def test_yaml_mapping_value_in_a_plain_scalar_is_a_syntax_error_on_its_line() -> None:
    text = pb("""\
        workflow:
          - step: a
            tool: {kind: noop}
            desc: a: b
        """)
    loc, msg = one_problem(text)
    assert loc == SourceLocation("pb.yaml", 7, "")
    assert "mapping values are not allowed" in msg


def test_yaml_tab_indentation_is_a_syntax_error_on_its_line() -> None:
    text = pb("workflow:\n  - step: a\n\ttool: {kind: noop}\n")
    loc, msg = one_problem(text)
    assert loc == SourceLocation("pb.yaml", 6, "")
    assert "YAML syntax" in msg and "\\t" in msg


def test_several_yaml_documents_are_rejected_at_the_second_document() -> None:
    text = pb("""\
        workflow:
          - step: a
            tool: {kind: noop}
        ---
        other: 1
        """)
    loc, msg = one_problem(text)
    assert loc == SourceLocation("pb.yaml", 7, "")
    assert "another document" in msg


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_empty_file_is_rejected_naming_the_file(text: str) -> None:
    loc, msg = one_problem(text)
    assert loc == SourceLocation("pb.yaml", None, "")
    assert "empty" in msg and "mapping" in msg
    assert fail(text).message.startswith("pb.yaml: ")


def test_an_empty_yaml_document_is_reported_as_empty() -> None:
    loc, msg = one_problem("---\n")
    assert loc == SourceLocation("pb.yaml", 2, "")
    assert msg.startswith("the file is empty")


@pytest.mark.parametrize(
    ("text", "type_name"),
    [("- a\n- b\n", "list"), ("hello\n", "str"), ("42\n", "int")],
)
def test_top_level_must_be_a_mapping(text: str, type_name: str) -> None:
    loc, msg = one_problem(text)
    assert loc == SourceLocation("pb.yaml", 1, "")
    assert msg == f"a playbook must be a mapping, got {type_name}"


def test_duplicate_key_is_rejected_with_its_path() -> None:
    text = pb("""\
        workflow:
          - step: a
            tool: {kind: noop}
            step: b
        """)
    loc, msg = one_problem(text)
    assert loc.file == "pb.yaml"
    assert loc.path == "workflow[0].step"
    assert msg == "duplicate key 'step' in this mapping"


def test_duplicate_key_reports_the_line_of_the_duplicate() -> None:
    text = pb("""\
        workflow:
          - step: a
            tool: {kind: noop}
            step: b
        """)
    loc, _ = one_problem(text)
    assert loc.line == line_with(text, "step: b") == 7


def test_duplicate_root_key_reports_the_line_of_the_duplicate() -> None:
    text = pb("""\
        kind: Playbook
        workflow:
          - step: a
            tool: {kind: noop}
        """)
    loc, _ = one_problem(text)
    assert loc == SourceLocation("pb.yaml", 4, "kind")


# --------------------------------------------------------------------------- schema


def test_missing_metadata_name_names_file_line_and_path() -> None:
    text = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {path: x/y}
workflow:
  - step: a
    tool: {kind: noop}
"""
    err = fail(text)
    assert err.problems == [
        (SourceLocation("pb.yaml", 3, "metadata.name"), "required field is missing")
    ]
    assert err.message == "pb.yaml:3: metadata.name: required field is missing"


def test_missing_metadata_is_reported_at_the_root() -> None:
    text = (
        "apiVersion: noetl.io/v2\nkind: Playbook\nworkflow:\n  - step: a\n    tool: {kind: noop}\n"
    )
    loc, msg = one_problem(text)
    assert loc == SourceLocation("pb.yaml", 1, "metadata")
    assert msg == "required field is missing"


def test_metadata_name_must_be_a_string() -> None:
    text = (
        HEAD.replace("{name: t}", "{name: 5}") + "workflow:\n  - step: a\n    tool: {kind: noop}\n"
    )
    loc, msg = one_problem(text)
    assert loc == SourceLocation("pb.yaml", 3, "metadata.name")
    assert "string" in msg


def test_wrong_api_version_says_what_was_expected() -> None:
    text = (
        HEAD.replace("noetl.io/v2", "noetl.io/v1")
        + "workflow:\n  - step: a\n    tool: {kind: noop}\n"
    )
    err = fail(text)
    (loc, msg) = err.problems[0]
    assert len(err.problems) == 1
    assert loc == SourceLocation("pb.yaml", 1, "apiVersion")
    assert "'noetl.io/v2'" in msg and "'noetl.io/v1'" in msg
    assert err.message.startswith("pb.yaml:1: apiVersion: expected")


def test_wrong_kind_says_what_was_expected() -> None:
    text = (
        HEAD.replace("kind: Playbook", "kind: Workflow")
        + "workflow:\n  - step: a\n    tool: {kind: noop}\n"
    )
    loc, msg = one_problem(text)
    assert loc == SourceLocation("pb.yaml", 2, "kind")
    assert msg == "expected 'Playbook', got 'Workflow'"


def test_empty_workflow_is_rejected() -> None:
    loc, msg = one_problem(pb("workflow: []\n"))
    assert loc == SourceLocation("pb.yaml", 4, "workflow")
    assert "at least 1 item" in msg


def test_missing_workflow_is_rejected() -> None:
    loc, msg = one_problem(HEAD)
    assert loc == SourceLocation("pb.yaml", 1, "workflow")
    assert msg == "required field is missing"


def test_workflow_must_be_a_list() -> None:
    loc, msg = one_problem(pb("workflow: {a: 1}\n"))
    assert loc == SourceLocation("pb.yaml", 4, "workflow")
    assert "valid list" in msg


def test_a_step_must_be_a_mapping() -> None:
    loc, msg = one_problem(pb("workflow:\n  - just_a_name\n"))
    assert loc == SourceLocation("pb.yaml", 5, "workflow[0]")
    assert "dictionary" in msg


def test_unknown_field_on_a_step_names_file_line_and_path() -> None:
    text = pb("""\
        workflow:
          - step: a
            tool: {kind: noop}
          - step: b
            tool: {kind: noop}
            colour: red
        """)
    err = fail(text)
    assert err.problems == [
        (
            SourceLocation("pb.yaml", 9, "workflow[1].colour"),
            "unknown field (not part of noetl.io/v2)",
        )
    ]
    assert err.message == "pb.yaml:9: workflow[1].colour: unknown field (not part of noetl.io/v2)"


def test_unknown_root_field_is_rejected() -> None:
    text = pb("""\
        stuff: 1
        workflow:
          - step: a
            tool: {kind: noop}
        """)
    loc, msg = one_problem(text)
    assert loc == SourceLocation("pb.yaml", 4, "stuff")
    assert "unknown field" in msg


def test_step_without_tool_is_rejected() -> None:
    text = pb("""\
        workflow:
          - step: a
            desc: routing only
        """)
    loc, msg = one_problem(text)
    assert loc == SourceLocation("pb.yaml", 5, "workflow[0].tool")
    assert msg == "required field is missing"


def test_step_without_name_is_rejected() -> None:
    text = pb("""\
        workflow:
          - tool: {kind: noop}
        """)
    loc, msg = one_problem(text)
    assert loc == SourceLocation("pb.yaml", 5, "workflow[0].step")
    assert msg == "required field is missing"


@pytest.mark.parametrize("name", ["../../../../x", "a/b", "two words", ".hidden", "-x", "x" * 129])
def test_a_step_name_outside_the_character_set_is_refused_with_its_line(name: str) -> None:
    text = pb(f"""\
        workflow:
          - step: start
            tool: {{kind: noop}}
            next: ['{name}']
          - step: '{name}'
            tool: {{kind: noop}}
        """)
    loc, msg = one_problem(text)
    assert loc == SourceLocation("pb.yaml", 8, "workflow[1].step")
    assert msg == (
        f"step name {name!r} is not allowed: use letters, digits, _ - . (not first: - .), "
        "at most 128 characters"
    )


@pytest.mark.parametrize("name", ["workload", "ctx", "keychain", "args", "error", "range"])
def test_a_step_named_like_a_template_name_is_refused(name: str) -> None:
    text = pb(f"""\
        workflow:
          - step: {name}
            tool: {{kind: noop}}
        """)
    loc, msg = one_problem(text)
    assert loc == SourceLocation("pb.yaml", 5, "workflow[0].step")
    assert msg.startswith(f"step name {name!r} is reserved: templates read it as ")
    assert msg.endswith("; rename the step")


def test_step_names_with_dashes_dots_and_digits_are_accepted() -> None:
    text = pb("""\
        workflow:
          - step: fetch-page.v2
            tool: {kind: noop}
            next: [2nd_step]
          - step: 2nd_step
            tool: {kind: noop}
        """)
    assert [s.step for s in load(text).playbook.workflow] == ["fetch-page.v2", "2nd_step"]


def test_a_pipeline_task_name_is_checked_like_a_step_name() -> None:
    text = pb("""\
        workflow:
          - step: start
            tool:
              - ctx: {kind: noop}
              - name: ../up
                kind: noop
        """)
    err = fail(text)
    assert [(loc.line, loc.path) for loc, _ in err.problems] == [
        (7, "workflow[0].tool[0].name"),
        (8, "workflow[0].tool[1].name"),
    ]
    assert "task name 'ctx' is reserved" in err.problems[0][1]
    assert "task name '../up' is not allowed" in err.problems[1][1]


def test_unknown_next_mode_is_rejected() -> None:
    text = pb("""\
        workflow:
          - step: a
            tool: {kind: noop}
            next:
              spec: {mode: all}
              arcs: [{step: a}]
        """)
    loc, msg = one_problem(text)
    assert loc == SourceLocation("pb.yaml", 8, "workflow[0].next.spec.mode")
    assert "'exclusive' or 'inclusive'" in msg and "'all'" in msg


def test_several_problems_are_all_reported_each_with_its_place() -> None:
    text = pb("""\
        workflow:
          - step: a
            tool: {kind: ftp}
            next: zz
          - step: a
            tool: {kind: noop}
        """)
    err = fail(text)
    places = {(loc.line, loc.path) for loc, _ in err.problems}
    assert places == {
        (8, "workflow[1].step"),
        (7, "workflow[0].next.arcs[0].step"),
        (6, "workflow[0].tool.kind"),
    }
    assert len(err.message.splitlines()) == 3


# ----------------------------------------------------------------------------- arcs


def test_arc_to_unknown_step_points_at_the_arc() -> None:
    text = pb("""\
        workflow:
          - step: a
            tool: {kind: noop}
            next: b
          - step: b
            tool: {kind: noop}
            next:
              arcs:
                - step: a
                - step: nope
                  when: "{{ true }}"
        """)
    loc, msg = one_problem(text)
    assert loc == SourceLocation("pb.yaml", 13, "workflow[1].next.arcs[1].step")
    assert loc.line == line_with(text, "step: nope")
    assert msg == "arc to unknown step 'nope' (steps: a, b)"


def test_arc_to_end_without_an_end_step_is_accepted() -> None:
    text = pb("""\
        workflow:
          - step: a
            tool: {kind: noop}
            next:
              arcs:
                - {step: end, when: "{{ done }}"}
                - {step: a}
        """)
    book = load(text).playbook
    assert [arc.step for arc in book.workflow[0].arcs] == ["end", "a"]
    assert [s.step for s in book.workflow] == ["a"]


def test_arc_to_a_real_end_step_is_accepted() -> None:
    text = pb("""\
        workflow:
          - step: a
            tool: {kind: noop}
            next: end
          - step: end
            tool: {kind: noop}
        """)
    book = load(text).playbook
    assert book.workflow[0].arcs[0].step == "end"
    assert book.step_named("end").tool.kind == "noop"


def test_arc_with_unknown_field_is_rejected() -> None:
    text = pb("""\
        workflow:
          - step: a
            tool: {kind: noop}
            next:
              arcs:
                - {step: a, whenn: "{{ x }}"}
        """)
    loc, msg = one_problem(text)
    assert loc == SourceLocation("pb.yaml", 9, "workflow[0].next.arcs[0].whenn")
    assert "unknown field" in msg


def test_duplicate_step_names_are_rejected_at_the_second_one() -> None:
    text = pb("""\
        workflow:
          - step: a
            tool: {kind: noop}
          - step: b
            tool: {kind: noop}
          - step: a
            tool: {kind: noop}
        """)
    loc, msg = one_problem(text)
    assert loc == SourceLocation("pb.yaml", 9, "workflow[2].step")
    assert "'a'" in msg and "twice" in msg and "unique" in msg


# ---------------------------------------------------------------------------- tools


def test_unknown_tool_kind_lists_the_known_kinds() -> None:
    text = pb("""\
        workflow:
          - step: a
            tool:
              kind: ftp
        """)
    loc, msg = one_problem(text)
    assert loc == SourceLocation("pb.yaml", 7, "workflow[0].tool.kind")
    assert "unknown tool kind 'ftp'" in msg
    for kind in registry.KINDS:
        assert kind in msg
    assert (
        "known: artifact, duckdb, http, noop, playbook, postgres, python, shell, transfer, wait, workbook"
        in msg
    )


def test_the_data_tools_are_known_kinds() -> None:
    text = pb("""\
        workflow:
          - step: a
            tool: {kind: http, url: "https://x"}
            next: b
          - step: b
            tool: {kind: postgres, auth: pg, query: "select 1"}
            next: c
          - step: c
            tool: {kind: duckdb, query: "select 1"}
        """)
    assert [s.tool.kind for s in load_text(text, "pb.yaml").playbook.workflow] == [
        "http",
        "postgres",
        "duckdb",
    ]


def test_noop_takes_no_fields() -> None:
    text = pb("""\
        workflow:
          - step: a
            tool: {kind: noop, url: x}
        """)
    loc, msg = one_problem(text)
    assert loc == SourceLocation("pb.yaml", 6, "workflow[0].tool.url")
    assert "noop" in msg and "'url'" in msg


def test_python_tool_without_code_is_rejected() -> None:
    text = pb("""\
        workflow:
          - step: a
            tool: {kind: python, input: {x: 1}}
        """)
    loc, msg = one_problem(text)
    assert loc == SourceLocation("pb.yaml", 6, "workflow[0].tool.code")
    assert "`python` needs `code`" in msg


def test_python_code_must_be_a_string() -> None:
    text = pb("""\
        workflow:
          - step: a
            tool: {kind: python, code: {a: 1}}
        """)
    loc, msg = one_problem(text)
    assert loc == SourceLocation("pb.yaml", 6, "workflow[0].tool.code")
    assert "must be a string" in msg and "dict" in msg


def test_python_syntax_error_names_the_code_line() -> None:
    text = pb("""\
        workflow:
          - step: a
            tool:
              kind: python
              code: |
                x = 1
                y = (
        """)
    loc, msg = one_problem(text)
    assert loc == SourceLocation("pb.yaml", line_with(text, "code: |"), "workflow[0].tool.code")
    assert loc.line == 8
    assert "Python syntax error at code line 2" in msg
    assert "never closed" in msg


def test_python_code_with_a_top_level_return_is_accepted() -> None:
    text = pb("""\
        workflow:
          - step: a
            tool: {kind: python, code: "return 5"}
        """)
    assert load(text).playbook.workflow[0].tool.fields()["code"] == "return 5"


def test_python_script_source_is_accepted_instead_of_code() -> None:
    text = pb("""\
        workflow:
          - step: a
            tool:
              kind: python
              script: {source: {type: inline, code: "result = 1"}}
              libs: {j: json}
        """)
    fields = load(text).playbook.workflow[0].tool.fields()
    assert fields["script"]["source"]["type"] == "inline"
    assert fields["libs"] == {"j": "json"}


def test_python_script_source_type_must_be_known() -> None:
    text = pb("""\
        workflow:
          - step: a
            tool:
              kind: python
              script: {source: {type: s3}}
        """)
    loc, msg = one_problem(text)
    assert loc == SourceLocation("pb.yaml", 8, "workflow[0].tool.script.source.type")
    assert "inline, file or gcs" in msg


def test_python_libs_must_be_a_mapping_or_a_package_list() -> None:
    text = pb("""\
        workflow:
          - step: a
            tool:
              kind: python
              code: "result = 1"
              libs: json
        """)
    loc, msg = one_problem(text)
    assert loc == SourceLocation("pb.yaml", 9, "workflow[0].tool.libs")
    assert "alias" in msg


def test_playbook_tool_needs_a_path() -> None:
    loc, msg = one_problem(pb("workflow:\n  - step: a\n    tool: {kind: playbook}\n"))
    assert loc == SourceLocation("pb.yaml", 6, "workflow[0].tool.path")
    assert "`playbook` needs `path`" in msg


def test_artifact_tool_knows_only_get() -> None:
    loc, msg = one_problem(pb("workflow:\n  - step: a\n    tool: {kind: artifact, action: put}\n"))
    assert loc == SourceLocation("pb.yaml", 6, "workflow[0].tool.action")
    assert "'put'" in msg and "get" in msg


# ------------------------------------------------------------------------ templates


def test_template_syntax_error_in_step_input_points_into_the_input() -> None:
    text = pb("""\
        workflow:
          - step: a
            tool: {kind: noop}
            input:
              ok: "{{ workload.x }}"
              bad: "{{ x + }}"
        """)
    loc, msg = one_problem(text)
    assert loc == SourceLocation("pb.yaml", 9, "workflow[0].input.bad")
    assert loc.line == line_with(text, "bad:")
    assert "template syntax error" in msg and "{{ x + }}" in msg


def test_template_syntax_error_in_tool_input_points_into_the_tool_input() -> None:
    text = pb("""\
        workflow:
          - step: a
            tool:
              kind: python
              input:
                ok: "{{ 1 }}"
                bad: "{{ x + }}"
              code: "result = 1"
        """)
    loc, msg = one_problem(text)
    assert loc == SourceLocation("pb.yaml", 10, "workflow[0].tool.input.bad")
    assert "template syntax error" in msg


def test_template_syntax_error_in_a_block_tag_is_reported() -> None:
    text = pb("""\
        workflow:
          - step: a
            tool: {kind: noop}
            input:
              x: "{% if x %}yes"
        """)
    loc, msg = one_problem(text)
    assert loc == SourceLocation("pb.yaml", 8, "workflow[0].input.x")
    assert "endif" in msg


def test_template_syntax_error_in_an_arc_condition_is_reported() -> None:
    text = pb("""\
        workflow:
          - step: a
            tool: {kind: noop}
            next:
              arcs:
                - {step: a, when: "{{ x == }}"}
        """)
    loc, msg = one_problem(text)
    assert loc == SourceLocation("pb.yaml", 9, "workflow[0].next.arcs[0].when")
    assert "template syntax error" in msg


def test_template_syntax_error_in_a_dotted_set_key_reports_its_line() -> None:
    text = pb("""\
        workflow:
          - step: a
            tool: {kind: noop}
            set:
              ctx.a: "{{ 1 }}"
              ctx.b: "{{ x + }}"
        """)
    loc, _ = one_problem(text)
    assert loc == SourceLocation("pb.yaml", line_with(text, "ctx.b"), "workflow[0].set.ctx.b")


def test_template_syntax_error_under_a_numeric_string_key_reports_key_and_line() -> None:
    text = pb("""\
        workflow:
          - step: a
            tool: {kind: noop}
            input:
              x: 1
              "10": "{{ x + }}"
        """)
    loc, _ = one_problem(text)
    assert loc.line == line_with(text, '"10"')
    assert loc.path != "workflow[0].input[10]"


def test_python_code_with_double_braces_is_not_checked_as_a_template() -> None:
    text = pb("""\
        workflow:
          - step: a
            tool:
              kind: python
              input: {key: k}
              code: |
                result = f"{{{key}}}"
        """)
    assert load(text).playbook.workflow[0].tool.fields()["code"] == 'result = f"{{{key}}}"\n'


# -------------------------------------------------------------------- lenient forms


def test_next_as_a_single_name() -> None:
    text = pb("""\
        workflow:
          - step: a
            tool: {kind: noop}
            next: b
          - step: b
            tool: {kind: noop}
        """)
    step = load(text).playbook.workflow[0]
    assert step.next is not None
    assert step.next.spec.mode == "exclusive"
    assert [(arc.step, arc.when, arc.set) for arc in step.arcs] == [("b", None, None)]


def test_next_as_a_single_unknown_name_points_at_the_next_line() -> None:
    text = pb("""\
        workflow:
          - step: a
            tool: {kind: noop}
            next: zz
        """)
    loc, msg = one_problem(text)
    assert loc == SourceLocation("pb.yaml", 7, "workflow[0].next.arcs[0].step")
    assert "'zz'" in msg


def test_next_as_a_list_of_names() -> None:
    text = pb("""\
        workflow:
          - step: a
            tool: {kind: noop}
            next: [b, end]
          - step: b
            tool: {kind: noop}
        """)
    assert [arc.step for arc in load(text).playbook.workflow[0].arcs] == ["b", "end"]


def test_next_as_a_list_of_names_reports_the_unknown_names_line() -> None:
    text = pb("""\
        workflow:
          - step: a
            tool: {kind: noop}
            next:
              - b
              - zz
          - step: b
            tool: {kind: noop}
        """)
    loc, msg = one_problem(text)
    assert loc == SourceLocation("pb.yaml", 9, "workflow[0].next.arcs[1].step")
    assert msg == "arc to unknown step 'zz' (steps: a, b)"


def test_next_as_a_list_of_step_when_mappings() -> None:
    text = pb("""\
        workflow:
          - step: a
            tool: {kind: noop}
            next:
              - step: b
                when: "{{ a.data.go }}"
                set: {ctx.went: true}
              - step: end
          - step: b
            tool: {kind: noop}
        """)
    arcs = load(text).playbook.workflow[0].arcs
    assert [(arc.step, arc.when) for arc in arcs] == [("b", "{{ a.data.go }}"), ("end", None)]
    assert arcs[0].set == {"ctx.went": True}


def test_next_as_a_list_of_mappings_reports_the_unknown_steps_line() -> None:
    text = pb("""\
        workflow:
          - step: a
            tool: {kind: noop}
            next:
              - step: b
                when: "{{ x }}"
              - step: zz
          - step: b
            tool: {kind: noop}
        """)
    loc, _ = one_problem(text)
    assert loc == SourceLocation("pb.yaml", 10, "workflow[0].next.arcs[1].step")


def test_next_as_a_single_step_mapping() -> None:
    text = pb("""\
        workflow:
          - step: a
            tool: {kind: noop}
            next: {step: b, when: "{{ 1 }}"}
          - step: b
            tool: {kind: noop}
        """)
    arcs = load(text).playbook.workflow[0].arcs
    assert [(arc.step, arc.when) for arc in arcs] == [("b", "{{ 1 }}")]


def test_next_as_a_single_step_mapping_reports_the_unknown_steps_line() -> None:
    text = pb("""\
        workflow:
          - step: a
            tool: {kind: noop}
            next:
              step: zz
        """)
    loc, _ = one_problem(text)
    assert loc == SourceLocation("pb.yaml", 8, "workflow[0].next.arcs[0].step")


def test_next_canonical_form_with_inclusive_mode() -> None:
    text = pb("""\
        workflow:
          - step: a
            tool: {kind: noop}
            next:
              spec: {mode: inclusive}
              arcs: [{step: b}, {step: c}]
          - step: b
            tool: {kind: noop}
          - step: c
            tool: {kind: noop}
        """)
    step = load(text).playbook.workflow[0]
    assert step.next is not None and step.next.spec.mode == "inclusive"
    assert [arc.step for arc in step.arcs] == ["b", "c"]


def test_next_list_item_condition_error_reports_the_when_line() -> None:
    text = pb("""\
        workflow:
          - step: a
            tool: {kind: noop}
            next:
              - step: a
                when: "{{ x == }}"
        """)
    loc, _ = one_problem(text)
    assert loc == SourceLocation("pb.yaml", 9, "workflow[0].next.arcs[0].when")


def test_next_list_item_unknown_field_reports_its_line() -> None:
    text = pb("""\
        workflow:
          - step: a
            tool: {kind: noop}
            next:
              - step: a
                whenn: "{{ x }}"
        """)
    loc, _ = one_problem(text)
    assert loc == SourceLocation("pb.yaml", 9, "workflow[0].next.arcs[0].whenn")


def test_next_single_mapping_condition_error_reports_the_when_line() -> None:
    text = pb("""\
        workflow:
          - step: a
            tool: {kind: noop}
            next:
              step: a
              when: "{{ x == }}"
        """)
    loc, _ = one_problem(text)
    assert loc == SourceLocation("pb.yaml", 9, "workflow[0].next.arcs[0].when")


def test_args_is_an_alias_of_input() -> None:
    text = pb("""\
        workflow:
          - step: a
            args: {x: 1, y: "{{ workload.y }}"}
            tool: {kind: noop}
        """)
    step = load(text).playbook.workflow[0]
    assert step.input == {"x": 1, "y": "{{ workload.y }}"}


def test_args_and_input_together_are_an_error() -> None:
    text = pb("""\
        workflow:
          - step: a
            input: {x: 1}
            args: {x: 2}
            tool: {kind: noop}
        """)
    loc, msg = one_problem(text)
    assert loc == SourceLocation("pb.yaml", 7, "workflow[0].args")
    assert "alias of `input`" in msg and "only one" in msg


def test_args_on_a_pipeline_task_is_an_alias_of_input() -> None:
    text = pb("""\
        workflow:
          - step: a
            tool:
              - kind: noop
                args: {x: 1}
        """)
    task = load(text).playbook.workflow[0].tool
    assert isinstance(task, list)
    assert task[0].input == {"x": 1}


def test_template_error_inside_args_reports_the_keys_line() -> None:
    text = pb("""\
        workflow:
          - step: a
            tool: {kind: noop}
            args:
              ok: "{{ 1 }}"
              bad: "{{ x + }}"
        """)
    loc, _ = one_problem(text)
    assert loc == SourceLocation("pb.yaml", 9, "workflow[0].input.bad")


def test_tool_fields_under_spec_are_lifted_and_policy_stays() -> None:
    text = pb("""\
        workflow:
          - step: a
            tool:
              kind: python
              spec:
                code: "result = 1"
                input: {x: 1}
                policy:
                  rules:
                    - when: "{{ output.status == 'error' }}"
                      then: {do: retry, attempts: 2, backoff: linear, delay: 0.5}
        """)
    tool = load(text).playbook.workflow[0].tool
    assert not isinstance(tool, list)
    assert tool.fields() == {"code": "result = 1", "input": {"x": 1}}
    assert tool.policy is not None
    rule = tool.policy.rules[0]
    assert rule.when == "{{ output.status == 'error' }}"
    assert (rule.then.do, rule.then.attempts, rule.then.backoff, rule.then.delay) == (
        "retry",
        2,
        "linear",
        0.5,
    )
    assert rule.is_else is False


def test_lifted_spec_field_errors_point_at_the_spec_line() -> None:
    text = pb("""\
        workflow:
          - step: a
            tool:
              kind: python
              spec:
                timeout: 3
                code: "x = ("
        """)
    loc, msg = one_problem(text)
    assert loc == SourceLocation("pb.yaml", 10, "workflow[0].tool.code")
    assert "code line 1" in msg


def test_a_field_both_under_spec_and_on_the_tool_is_an_error() -> None:
    text = pb("""\
        workflow:
          - step: a
            tool:
              kind: python
              code: "result = 1"
              spec:
                code: "result = 2"
        """)
    loc, msg = one_problem(text)
    assert loc == SourceLocation("pb.yaml", 10, "workflow[0].tool.spec.code")
    assert msg == "`code` is given both here and on the tool"


def test_template_error_inside_a_lifted_spec_field_reports_the_keys_line() -> None:
    text = pb("""\
        workflow:
          - step: a
            tool:
              kind: python
              spec:
                input:
                  ok: "{{ 1 }}"
                  bad: "{{ x + }}"
                code: "result = 1"
        """)
    loc, _ = one_problem(text)
    assert loc == SourceLocation("pb.yaml", 11, "workflow[0].tool.input.bad")


def test_unnamed_pipeline_tasks_are_named_by_position() -> None:
    text = pb("""\
        workflow:
          - step: a
            tool:
              - kind: noop
              - name: two
                kind: noop
              - kind: python
                code: "result = _prev"
        """)
    step = load(text).playbook.workflow[0]
    assert step.is_pipeline
    assert isinstance(step.tool, list)
    assert [t.name for t in step.tool] == ["task_0", "two", "task_2"]
    assert [t.kind for t in step.tool] == ["noop", "noop", "python"]


def test_jump_to_an_unnamed_tasks_generated_name_is_accepted() -> None:
    text = pb("""\
        workflow:
          - step: a
            tool:
              - kind: noop
              - kind: noop
                spec:
                  policy:
                    rules:
                      - then: {do: jump, to: task_0}
        """)
    tool = load(text).playbook.workflow[0].tool
    assert isinstance(tool, list)
    assert tool[1].policy is not None and tool[1].policy.rules[0].then.to == "task_0"


def test_output_select_becomes_output_select_and_store_is_accepted() -> None:
    text = pb("""\
        workflow:
          - step: a
            tool: {kind: noop}
            output_select: [status, count]
            store: {kind: auto}
        """)
    step = load(text).playbook.workflow[0]
    assert step.output is not None
    assert step.output.select == ["status", "count"]


def test_store_beside_output_select_goes_into_output_store() -> None:
    text = pb("""\
        workflow:
          - step: a
            tool: {kind: noop}
            output_select: [status, data.id]
            store: {kind: payload, ttl: 1h}
        """)
    output = load(text).playbook.workflow[0].output
    assert output is not None and output.mode == "payload"
    assert output.selection() == [("status", ("status",)), ("id", ("data", "id"))]


def test_a_tools_output_and_its_spec_output_are_the_steps() -> None:
    for where in ("output: {store: {kind: kv}}", "spec: {output: {store: {kind: kv}}}"):
        text = pb(f"""\
            workflow:
              - step: a
                tool: {{kind: noop, {where}}}
            """)
        step = load(text).playbook.workflow[0]
        assert step.output is not None and step.output.mode == "payload"
        assert "output" not in step.tool.fields()  # type: ignore[union-attr]


def test_output_on_the_tool_and_the_step_is_an_error() -> None:
    text = pb("""\
        workflow:
          - step: a
            tool: {kind: noop, output: {store: {kind: inline}}}
            output: {store: {kind: payload}}
        """)
    loc, msg = one_problem(text)
    assert loc == SourceLocation("pb.yaml", 6, "workflow[0].tool.output")
    assert "given both" in msg


def test_a_pipelines_last_task_output_governs_the_steps_result() -> None:
    text = pb("""\
        workflow:
          - step: a
            tool:
              - one: {kind: noop}
              - two: {kind: noop, output: {output_select: [n], store: {kind: eventlog}}}
        """)
    step = load(text).playbook.workflow[0]
    assert step.result_output is not None and step.result_output.mode == "inline"
    assert step.result_output.select == ["n"]


def test_output_and_output_select_together_are_an_error() -> None:
    text = pb("""\
        workflow:
          - step: a
            tool: {kind: noop}
            output: {select: [a]}
            output_select: [a, b]
        """)
    loc, msg = one_problem(text)
    assert loc == SourceLocation("pb.yaml", 8, "workflow[0].output_select")
    assert "`output`" in msg and "`output_select`" in msg


def test_output_select_must_be_a_list() -> None:
    text = pb("""\
        workflow:
          - step: a
            tool: {kind: noop}
            output_select: 5
        """)
    loc, msg = one_problem(text)
    assert loc == SourceLocation("pb.yaml", 7, "workflow[0].output.select")
    assert "valid list" in msg


def test_policy_else_rule_becomes_a_rule_with_is_else() -> None:
    text = pb("""\
        workflow:
          - step: a
            tool:
              kind: noop
              spec:
                policy:
                  rules:
                    - when: "{{ output.status == 'error' }}"
                      then: {do: fail}
                    - else: {then: {do: continue, set: {ctx.last: "{{ output.data }}"}}}
        """)
    tool = load(text).playbook.workflow[0].tool
    assert not isinstance(tool, list) and tool.policy is not None
    first, last = tool.policy.rules
    assert (first.is_else, first.then.do) == (False, "fail")
    assert last.is_else is True
    assert last.when is None
    assert last.then.do == "continue"
    assert last.then.set == {"ctx.last": "{{ output.data }}"}


def test_policy_else_that_is_not_last_is_an_error() -> None:
    text = pb("""\
        workflow:
          - step: a
            tool:
              kind: noop
              spec:
                policy:
                  rules:
                    - else: {then: {do: continue}}
                    - when: "{{ true }}"
                      then: {do: fail}
        """)
    loc, msg = one_problem(text)
    assert loc == SourceLocation("pb.yaml", 11, "workflow[0].tool.spec.policy.rules[0]")
    assert msg == "`else` must be the last rule"


def test_template_error_inside_an_else_rule_reports_its_line() -> None:
    text = pb("""\
        workflow:
          - step: a
            tool:
              kind: noop
              spec:
                policy:
                  rules:
                    - else:
                        then:
                          do: continue
                          set: {ctx.x: "{{ x + }}"}
        """)
    loc, _ = one_problem(text)
    assert loc.path == "workflow[0].tool.spec.policy.rules[0].then.set.ctx.x"
    assert loc.line == line_with(text, "ctx.x") == 14


def test_unknown_policy_action_lists_the_actions() -> None:
    text = pb("""\
        workflow:
          - step: a
            tool:
              kind: noop
              spec:
                policy:
                  rules:
                    - then: {do: explode}
        """)
    loc, msg = one_problem(text)
    assert loc == SourceLocation("pb.yaml", 11, "workflow[0].tool.spec.policy.rules[0].then.do")
    assert "'continue', 'retry', 'fail', 'break' or 'jump'" in msg and "'explode'" in msg


def test_retry_attempts_must_be_positive() -> None:
    text = pb("""\
        workflow:
          - step: a
            tool:
              kind: noop
              spec:
                policy:
                  rules:
                    - then: {do: retry, attempts: 0}
        """)
    loc, msg = one_problem(text)
    assert loc == SourceLocation(
        "pb.yaml", 11, "workflow[0].tool.spec.policy.rules[0].then.attempts"
    )
    assert "greater than or equal to 1" in msg


# ------------------------------------------------------------------- retired v1 forms


def test_retired_step_case_names_next_arcs() -> None:
    text = pb("""\
        workflow:
          - step: a
            tool: {kind: noop}
            case: [{when: "{{ x }}", then: [b]}]
        """)
    loc, msg = one_problem(text)
    assert loc == SourceLocation("pb.yaml", 7, "workflow[0].case")
    assert "retired" in msg and "`next" in msg and "arcs" in msg


def test_retired_block_case_is_reported_on_the_case_line() -> None:
    text = pb("""\
        workflow:
          - step: a
            tool: {kind: noop}
            case:
              - when: "{{ x }}"
                then: [b]
        """)
    loc, _ = one_problem(text)
    assert loc == SourceLocation("pb.yaml", line_with(text, "case:"), "workflow[0].case")
    assert loc.line == 7


def test_missing_field_of_a_block_mapping_is_reported_on_the_mappings_key_line() -> None:
    text = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata:
  path: x/y
workflow:
  - step: a
    tool: {kind: noop}
"""
    loc, _ = one_problem(text)
    assert loc == SourceLocation("pb.yaml", 3, "metadata.name")


def test_retired_step_type_names_tool() -> None:
    text = pb("""\
        workflow:
          - step: a
            type: python
            code: "result = 1"
        """)
    loc, msg = one_problem(text)
    assert loc == SourceLocation("pb.yaml", 6, "workflow[0].type")
    assert "retired" in msg and "`tool: {kind: ...}`" in msg


def test_retired_root_vars_names_workload_and_set() -> None:
    text = pb("""\
        vars: {a: 1}
        workflow:
          - step: a
            tool: {kind: noop}
        """)
    loc, msg = one_problem(text)
    assert loc == SourceLocation("pb.yaml", 4, "vars")
    assert "retired" in msg and "`workload:`" in msg and "`set:" in msg


def test_retired_forms_are_all_reported_together() -> None:
    text = pb("""\
        vars: {a: 1}
        workflow:
          - step: a
            tool: {kind: noop}
            case: []
          - step: b
            type: workbook
        """)
    err = fail(text)
    assert sorted((loc.line, loc.path) for loc, _ in err.problems) == [
        (4, "vars"),
        (8, "workflow[0].case"),
        (10, "workflow[1].type"),
    ]


# ---------------------------------------------------------------- workbook, pipeline


def test_workbook_tool_runs_an_existing_entry() -> None:
    text = pb("""\
        workbook:
          - name: task_a
            tool: {kind: python, code: "result = 1"}
        workflow:
          - step: a
            tool: {kind: workbook, name: task_a}
        """)
    book = load(text).playbook
    entry = book.workbook_entry("task_a")
    assert entry is not None and entry.tool.kind == "python"
    assert book.workbook_entry("missing") is None


def test_workbook_tool_naming_a_missing_entry_is_an_error() -> None:
    text = pb("""\
        workbook:
          - name: task_a
            tool: {kind: noop}
        workflow:
          - step: a
            tool:
              kind: workbook
              name: task_b
        """)
    loc, msg = one_problem(text)
    assert loc == SourceLocation("pb.yaml", 11, "workflow[0].tool.name")
    assert msg == "no workbook entry named 'task_b'"


def test_workbook_tool_without_name_is_an_error() -> None:
    loc, msg = one_problem(pb("workflow:\n  - step: a\n    tool: {kind: workbook}\n"))
    assert loc == SourceLocation("pb.yaml", 6, "workflow[0].tool.name")
    assert "`workbook` needs `name`" in msg


def test_workbook_tool_with_a_templated_name_is_not_checked_at_load() -> None:
    text = pb("""\
        workflow:
          - step: a
            tool: {kind: workbook, name: "{{ which }}"}
        """)
    assert load(text).playbook.workflow[0].tool.fields() == {"name": "{{ which }}"}


def test_duplicate_workbook_names_are_reported() -> None:
    text = pb("""\
        workbook:
          - name: w
            tool: {kind: noop}
          - name: w
            tool: {kind: noop}
        workflow:
          - step: a
            tool: {kind: workbook, name: w}
        """)
    err = fail(text)
    assert [(loc.line, loc.path) for loc, _ in err.problems] == [
        (5, "workbook[0].name"),
        (7, "workbook[1].name"),
    ]
    assert all("'w' is used twice" in msg for _, msg in err.problems)


def test_workbook_entry_tools_are_validated() -> None:
    text = pb("""\
        workbook:
          - name: w
            tool: {kind: ftp}
        workflow:
          - step: a
            tool: {kind: workbook, name: w}
        """)
    loc, msg = one_problem(text)
    assert loc == SourceLocation("pb.yaml", 6, "workbook[0].tool.kind")
    assert "unknown tool kind 'ftp'" in msg


def test_pipeline_jump_to_an_unknown_task_is_an_error() -> None:
    text = pb("""\
        workflow:
          - step: a
            tool:
              - name: one
                kind: noop
              - name: two
                kind: noop
                spec:
                  policy:
                    rules:
                      - when: "{{ true }}"
                        then: {do: jump, to: three}
        """)
    loc, msg = one_problem(text)
    assert loc == SourceLocation("pb.yaml", 15, "workflow[0].tool[1].spec.policy.rules[0].then.to")
    assert msg == "jump to unknown task 'three'"


def test_pipeline_jump_to_a_known_task_is_accepted() -> None:
    text = pb("""\
        workflow:
          - step: a
            tool:
              - name: one
                kind: noop
              - name: two
                kind: noop
                spec:
                  policy:
                    rules:
                      - when: "{{ true }}"
                        then: {do: jump, to: one}
        """)
    tool = load(text).playbook.workflow[0].tool
    assert isinstance(tool, list)
    assert tool[1].policy is not None
    assert (tool[1].policy.rules[0].then.do, tool[1].policy.rules[0].then.to) == ("jump", "one")


def test_jump_outside_a_pipeline_is_an_error() -> None:
    text = pb("""\
        workflow:
          - step: a
            tool:
              kind: noop
              spec:
                policy:
                  rules:
                    - when: "{{ true }}"
                      then: {do: jump, to: x}
        """)
    loc, msg = one_problem(text)
    assert loc == SourceLocation("pb.yaml", 12, "workflow[0].tool.spec.policy.rules[0].then.do")
    assert "`jump`" in msg and "pipeline" in msg


def test_jump_in_a_workbook_entry_is_outside_a_pipeline() -> None:
    text = pb("""\
        workbook:
          - name: w
            tool:
              kind: noop
              spec: {policy: {rules: [{then: {do: jump, to: x}}]}}
        workflow:
          - step: a
            tool: {kind: workbook, name: w}
        """)
    loc, msg = one_problem(text)
    assert loc.path == "workbook[0].tool.spec.policy.rules[0].then.do"
    assert loc.line == 8
    assert "pipeline" in msg


def test_empty_pipeline_is_an_error() -> None:
    loc, msg = one_problem(pb("workflow:\n  - step: a\n    tool: []\n"))
    assert loc == SourceLocation("pb.yaml", 6, "workflow[0].tool")
    assert "at least one task" in msg


def test_duplicate_task_names_are_reported() -> None:
    text = pb("""\
        workflow:
          - step: a
            tool:
              - {name: x, kind: noop}
              - {name: x, kind: noop}
        """)
    err = fail(text)
    assert [(loc.line, loc.path) for loc, _ in err.problems] == [
        (7, "workflow[0].tool[0].name"),
        (8, "workflow[0].tool[1].name"),
    ]
    assert all(msg == "task name 'x' is used twice" for _, msg in err.problems)


def test_pipeline_task_kinds_are_validated() -> None:
    text = pb("""\
        workflow:
          - step: a
            tool:
              - {name: x, kind: noop}
              - {name: y, kind: ftp}
        """)
    loc, msg = one_problem(text)
    assert loc == SourceLocation("pb.yaml", 8, "workflow[0].tool[1].kind")
    assert "unknown tool kind 'ftp'" in msg


# ---------------------------------------------------------------------------- loops


def test_valid_loop_is_loaded() -> None:
    text = pb("""\
        workflow:
          - step: a
            loop:
              in: "{{ workload.users }}"
              iterator: user
              spec: {mode: parallel, max_in_flight: 3}
            tool: {kind: noop}
        """)
    loop = load(text).playbook.workflow[0].loop
    assert loop is not None
    assert (loop.in_, loop.iterator, loop.spec.mode, loop.width) == (
        "{{ workload.users }}",
        "user",
        "parallel",
        3,
    )


def test_loop_defaults_are_sequential_with_iterator_item() -> None:
    text = pb("""\
        workflow:
          - step: a
            loop: {in: [1, 2, 3]}
            tool: {kind: noop}
        """)
    loop = load(text).playbook.workflow[0].loop
    assert loop is not None
    assert (loop.in_, loop.iterator, loop.spec.mode, loop.width) == (
        [1, 2, 3],
        "item",
        "sequential",
        1,
    )


@pytest.mark.parametrize("iterator", ["my-item", "1st", "a b", "x.y"])
def test_loop_with_an_invalid_iterator_name_is_an_error(iterator: str) -> None:
    text = pb(f"""\
        workflow:
          - step: a
            loop:
              in: "{{{{ items }}}}"
              iterator: "{iterator}"
            tool: {{kind: noop}}
        """)
    loc, msg = one_problem(text)
    assert loc == SourceLocation("pb.yaml", 8, "workflow[0].loop.iterator")
    assert msg == f"iterator {iterator!r} is not a valid name"


def test_loop_max_in_flight_zero_is_rejected() -> None:
    text = pb("""\
        workflow:
          - step: a
            loop:
              in: [1]
              spec:
                mode: parallel
                max_in_flight: 0
            tool: {kind: noop}
        """)
    loc, msg = one_problem(text)
    assert loc == SourceLocation("pb.yaml", 10, "workflow[0].loop.spec.max_in_flight")
    assert "greater than or equal to 1" in msg and "0" in msg


def test_loop_without_in_is_rejected() -> None:
    text = pb("""\
        workflow:
          - step: a
            loop: {iterator: x}
            tool: {kind: noop}
        """)
    loc, msg = one_problem(text)
    assert loc == SourceLocation("pb.yaml", 6, "workflow[0].loop.in")
    assert msg.startswith("required field is missing: a loop needs `in`")


def test_loop_with_an_unknown_mode_is_rejected() -> None:
    text = pb("""\
        workflow:
          - step: a
            loop:
              in: [1]
              spec: {mode: random}
            tool: {kind: noop}
        """)
    loc, msg = one_problem(text)
    assert loc == SourceLocation("pb.yaml", 8, "workflow[0].loop.spec.mode")
    assert "'sequential', 'parallel' or 'cursor'" in msg and "'random'" in msg


# ------------------------------------------------------------------------- examples


def test_there_are_examples_to_load() -> None:
    assert len(EXAMPLE_FILES) >= 1


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_every_example_loads(path: Path) -> None:
    loaded = load_file(path)
    assert loaded.file == str(path)
    assert loaded.source == path.read_text(encoding="utf-8")
    assert loaded.playbook.workflow
    assert loaded.playbook.entry_step in {s.step for s in loaded.playbook.workflow}
    assert loaded.path == (loaded.playbook.metadata.path or loaded.playbook.metadata.name)


def test_load_file_of_a_missing_file_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(PlaybookError) as info:
        load_file(missing)
    ((loc, msg),) = info.value.problems
    assert loc == SourceLocation(str(missing), None, "")
    assert msg.startswith("cannot read")


def test_load_file_reports_problems_with_the_files_name(tmp_path: Path) -> None:
    file = tmp_path / "bad.yaml"
    file.write_text(pb("workflow: []\n"), encoding="utf-8")
    with pytest.raises(PlaybookError) as info:
        load_file(file)
    assert info.value.problems[0][0] == SourceLocation(str(file), 4, "workflow")
    assert info.value.message.startswith(f"{file}:4: workflow: ")
