"""Bad input through the `noetl` CLI: a clear message that says where, a non-zero exit,
and no half-written execution. Also the catalog, cancellation, and a replay that fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from ..conftest import EXAMPLES, ROOT

pytestmark = pytest.mark.integration

HELLO = "playbooks/examples/hello_world.yaml"


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOETL_")}
    env.update(NOETL_HOME=str(home), PYTHONUTF8="1")
    return env


def noetl(home: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`noetl ARGS` in a subprocess with NOETL_HOME=home, from the repository root."""
    return subprocess.run(
        [sys.executable, "-m", "noetl_core.cli", *args],
        cwd=ROOT,
        env=_env(home),
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=timeout,
    )


def playbook(tmp_path: Path, name: str, text: str) -> Path:
    file = tmp_path / f"{name}.yaml"
    file.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return file


def executions(home: Path) -> list[str]:
    """The rows of `noetl status` (the recent executions)."""
    done = noetl(home, "status")
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def run_failed(home: Path, file: Path) -> dict[str, Any]:
    done = noetl(home, "run", str(file), "--json")
    assert done.returncode == 1, done.stdout + done.stderr
    out: dict[str, Any] = json.loads(done.stdout)
    assert out["status"] == "failed"
    return out


# -- invalid playbooks: nothing starts ------------------------------------------------------

MALFORMED = """
    apiVersion: noetl.io/v2
    kind: Playbook
    metadata:
      name: malformed
    workflow:
      - step: start
        tool: {kind: noop
        next: end
    """

UNKNOWN_ARC = """
    apiVersion: noetl.io/v2
    kind: Playbook
    metadata:
      name: unknown_arc
    workflow:
      - step: start
        tool: {kind: noop}
        next:
          arcs:
            - {step: end}
            - {step: nowhere}
    """


def test_malformed_yaml_names_file_and_line_and_starts_nothing(tmp_path: Path) -> None:
    file = playbook(tmp_path, "malformed", MALFORMED)
    home = tmp_path / "home"
    done = noetl(home, "run", str(file))
    assert done.returncode == 1
    assert done.stdout == ""
    message = done.stderr.strip()
    assert "Traceback" not in message
    found = re.fullmatch(rf"noetl: {re.escape(str(file))}:(\d+): YAML syntax: .+", message)
    assert found is not None, message
    assert int(found[1]) in (7, 8)  # the unclosed flow mapping, or where YAML noticed it
    assert executions(home) == []


def test_arc_to_an_unknown_step_names_the_yaml_path_and_starts_nothing(tmp_path: Path) -> None:
    file = playbook(tmp_path, "unknown_arc", UNKNOWN_ARC)
    home = tmp_path / "home"
    done = noetl(home, "run", str(file))
    assert done.returncode == 1
    assert done.stdout == ""
    message = done.stderr.strip()
    assert message.startswith(f"noetl: {file}:11: workflow[0].next.arcs[1].step: ")
    assert "'nowhere'" in message
    assert "Traceback" not in message
    assert executions(home) == []


# -- failures at run time: recorded as failed ------------------------------------------------

TEMPLATE_ERROR = """
    apiVersion: noetl.io/v2
    kind: Playbook
    metadata:
      name: template_error
    workflow:
      - step: start
        tool: {kind: noop}
        next: compute
      - step: compute
        tool:
          kind: python
          input: {x: "EXPR"}
          code: "result = x"
        next: never
      - step: never
        tool: {kind: python, code: "result = 'should not run'"}
    """


@pytest.mark.parametrize(
    ("expr", "cause"),
    [
        ("{{ 1 / 0 }}", "ZeroDivisionError: division by zero"),
        ("{{ 3 | join(',') }}", "TypeError: 'int' object is not iterable"),
        ("{{ 'not json' | fromjson }}", "JSONDecodeError"),
    ],
    ids=["division_by_zero", "join_on_int", "fromjson_on_text"],
)
def test_template_error_at_run_time_fails_the_execution_at_its_step(
    tmp_path: Path, expr: str, cause: str
) -> None:
    file = playbook(tmp_path, "template_error", TEMPLATE_ERROR.replace("EXPR", expr))
    home = tmp_path / "home"
    assert noetl(home, "validate", str(file)).returncode == 0  # only the run can tell
    out = run_failed(home, file)
    error = out["error"]
    assert error["kind"] == "template"
    assert error["step"] == "compute"
    assert error["message"].startswith(f"step compute: tool.input.x: template {expr!r} failed: ")
    assert cause in error["message"]

    execution_id = out["execution_id"]
    status = noetl(home, "status", execution_id)
    assert status.returncode == 0
    lines = status.stdout.splitlines()
    assert lines[0] == f"execution {execution_id}: failed"
    assert f"error: {error['message']}" in lines
    assert any(
        re.fullmatch(r"  compute\s+failed\s+1\s+1\s+(?:[\d.]+ ms|-)", line) for line in lines
    )
    assert not any(line.strip().startswith("never") for line in lines)
    events = noetl(home, "events", execution_id)
    assert "playbook.failed" in events.stdout.splitlines()[-1]
    assert "step compute: tool.input.x" in events.stdout.splitlines()[-1]
    assert noetl(home, "replay", execution_id).returncode == 0


PYTHON_ERROR = """
    apiVersion: noetl.io/v2
    kind: Playbook
    metadata:
      name: python_error
    workflow:
      - step: start
        tool: {kind: noop}
        next: explode
      - step: explode
        tool:
          kind: python
          code: |
            x = 1
            raise ValueError("boom from explode")
    """


def test_python_exception_names_step_exception_and_code_line(tmp_path: Path) -> None:
    file = playbook(tmp_path, "python_error", PYTHON_ERROR)
    home = tmp_path / "home"
    done = noetl(home, "run", str(file))
    assert done.returncode == 1
    expected = "step explode: ValueError at code line 2: boom from explode"
    assert "status: failed" in done.stdout
    assert "  ✗ explode " in done.stderr
    assert f"error: {expected}" in done.stderr.splitlines()

    execution_id = executions(home)[0].split()[0]
    status = noetl(home, "status", execution_id)
    assert status.stdout.splitlines()[0] == f"execution {execution_id}: failed"
    assert f"error: {expected}" in status.stdout

    out = run_failed(home, file)
    assert out["error"]["message"] == expected
    assert out["error"]["code"] == "ValueError"
    assert out["error"]["step"] == "explode"


@pytest.mark.parametrize(
    ("code", "line"),
    [
        ('x = 1\nraise ValueError("boom")\n', 'line 2: raise ValueError("boom")'),
        ("x = 1\ny = x / 0\nreturn y\n", "line 2: y = x / 0"),
    ],
    ids=["script", "function_body"],
)
def test_python_error_traceback_shows_the_failing_code_line(
    tmp_path: Path, code: str, line: str
) -> None:
    source = {
        "apiVersion": "noetl.io/v2",
        "kind": "Playbook",
        "metadata": {"name": "traceback"},
        "workflow": [{"step": "explode", "tool": {"kind": "python", "code": code}}],
    }
    file = tmp_path / "traceback.yaml"
    file.write_text(json.dumps(source), encoding="utf-8")  # JSON is YAML
    out = run_failed(tmp_path / "home", file)
    assert "at code line 2" in out["error"]["message"]
    assert out["error"]["traceback"][-1] == line


# -- bad workloads: nothing starts -----------------------------------------------------------


@pytest.mark.parametrize(
    ("workload", "says"),
    [
        ("not json", "--workload is not JSON"),
        ("{'single': 'quotes'}", "--workload is not JSON"),
        ("[1, 2]", "--workload must be a JSON object, got list"),
        ('"text"', "--workload must be a JSON object, got str"),
        ("@list.json", "--workload must be a JSON object, got list"),
        ("@missing.json", "cannot read"),
    ],
    ids=["text", "python_dict", "list", "string", "file_with_list", "missing_file"],
)
def test_bad_workload_is_refused_before_anything_starts(
    tmp_path: Path, workload: str, says: str
) -> None:
    (tmp_path / "list.json").write_text("[1, 2]", encoding="utf-8")
    if workload.startswith("@"):
        workload = f"@{tmp_path / workload[1:]}"
    home = tmp_path / "home"
    done = noetl(home, "run", HELLO, "--workload", workload)
    assert done.returncode != 0
    assert done.stdout == ""
    message = done.stderr.strip()
    assert message.startswith("noetl: --workload ")
    assert says in message
    if says != "cannot read":
        assert "JSON" in message
    else:
        assert workload in message  # names the file it could not read
    assert "\n" not in message and "Traceback" not in message
    assert executions(home) == []


@pytest.mark.parametrize(
    ("setting", "says"),
    [("novalue", "expected key=value"), ("=1", "expected key=value")],
)
def test_bad_set_is_refused_before_anything_starts(tmp_path: Path, setting: str, says: str) -> None:
    done = noetl(tmp_path, "run", HELLO, "--set", setting)
    assert done.returncode == 1
    assert done.stderr.strip() == f"noetl: --set {setting!r}: {says}"
    assert executions(tmp_path) == []


# -- hostile input: one line, before anything is built -------------------------------------

DEEP = "[" * 10_000 + "]" * 10_000


def test_a_workload_nested_too_deep_is_refused_in_one_line(tmp_path: Path) -> None:
    deep_file = tmp_path / "deep.json"
    deep_file.write_text('{"a":\n' + DEEP + "}\n", encoding="utf-8")
    limit = "nested deeper than 100 levels"
    for args, says in [
        (["--workload", '{"a": ' + DEEP + "}"], f"--workload: {limit} at line 1"),
        (["--workload", f"@{deep_file}"], f"--workload @{deep_file}: {limit} at line 2"),
        (["--set", "a=" + DEEP], f"--set a: {limit} at line 1"),
        (["--set", ".".join(["k"] * 5000) + "=1"], f"the workload: {limit}"),
    ]:
        done = noetl(tmp_path, "run", HELLO, *args)
        assert done.returncode == 1
        assert done.stderr == f"noetl: {says} (NOETL_MAX_DEPTH)\n"
    assert executions(tmp_path) == []


def test_hostile_yaml_is_refused_in_one_line_naming_file_and_line(tmp_path: Path) -> None:
    from ..unit.test_hostile_input import alias_bomb

    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(alias_bomb(), encoding="utf-8")
    deep = tmp_path / "deep.yaml"
    deep.write_text("workload:\n  w: " + DEEP + "\n", encoding="utf-8")
    done = noetl(tmp_path, "validate", str(bomb))
    assert done.returncode == 1
    assert done.stderr == (
        f"{bomb}:6: YAML holds more than 100000 nodes, aliases expanded (NOETL_MAX_NODES)\n"
    )
    done = noetl(tmp_path, "run", str(deep))
    assert done.returncode == 1
    assert done.stderr == f"noetl: {deep}:2: YAML nested deeper than 100 levels (NOETL_MAX_DEPTH)\n"
    assert executions(tmp_path) == []


# -- validate ----------------------------------------------------------------------------


def test_validate_accepts_every_example(tmp_path: Path) -> None:
    files = sorted(str(f.relative_to(ROOT)) for f in EXAMPLES.glob("*.yaml"))
    done = noetl(tmp_path, "validate", *files)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    assert len(lines) == len(files)
    for file, line in zip(files, lines, strict=True):
        assert re.fullmatch(rf"ok: {re.escape(file)} \(\w+, \d+ steps?\)", line), line


@pytest.mark.parametrize(
    ("text", "where"),
    [
        (MALFORMED, r":\d+: YAML syntax: "),
        (UNKNOWN_ARC, r":11: workflow\[0\]\.next\.arcs\[1\]\.step: .*'nowhere'"),
        (
            """
            apiVersion: noetl.io/v2
            kind: Playbook
            metadata: {name: retired}
            workflow:
              - step: start
                type: python
                tool: {kind: noop}
            """,
            r":6: workflow\[0\]\.type: .*retired.*tool: \{kind: \.\.\.\}",
        ),
        (
            """
            apiVersion: noetl.io/v2
            kind: Playbook
            metadata: {name: no_filter}
            workflow:
              - step: start
                tool: {kind: python, input: {x: "{{ 5 | nosuchfilter }}"}, code: "result = x"}
            """,
            r":6: workflow\[0\]\.tool\.input\.x: template syntax error: .*nosuchfilter",
        ),
        (
            """
            apiVersion: noetl.io/v2
            kind: Playbook
            metadata: {name: empty}
            workflow: []
            """,
            r":4: workflow: ",
        ),
    ],
    ids=["malformed_yaml", "unknown_arc", "retired_type", "unknown_filter", "empty_workflow"],
)
def test_validate_rejects_a_bad_file_saying_where(tmp_path: Path, text: str, where: str) -> None:
    file = playbook(tmp_path, "bad", text)
    done = noetl(tmp_path, "validate", str(file))
    assert done.returncode == 1
    assert done.stdout == ""
    assert re.fullmatch(re.escape(str(file)) + where + r".*\n", done.stderr), done.stderr


def test_validate_reports_every_file_and_fails_if_any_is_bad(tmp_path: Path) -> None:
    bad = playbook(tmp_path, "unknown_arc", UNKNOWN_ARC)
    done = noetl(tmp_path, "validate", HELLO, str(bad), "playbooks/examples/loops.yaml")
    assert done.returncode == 1
    assert done.stdout.splitlines() == [
        f"ok: {HELLO} (hello_world, 3 steps)",
        "ok: playbooks/examples/loops.yaml (loops, 3 steps)",
    ]
    assert done.stderr.startswith(f"{bad}:11: workflow[0].next.arcs[1].step")


def test_validate_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    done = noetl(tmp_path, "validate", str(missing))
    assert done.returncode == 1
    assert str(missing) in done.stderr
    assert "No such file" in done.stderr


# -- unknown executions ---------------------------------------------------------------------


@pytest.mark.parametrize("verb", ["status", "events", "replay", "cancel"])
def test_unknown_execution_id(tmp_path: Path, verb: str) -> None:
    noetl(tmp_path, "run", HELLO, "--json")  # the log is not empty
    done = noetl(tmp_path, verb, "0123456789abcdef")
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.strip() == "noetl: no execution '0123456789abcdef' under this NOETL_HOME"
    assert len(executions(tmp_path)) == 1


def test_a_unique_prefix_names_an_execution(tmp_path: Path) -> None:
    execution_id = json.loads(noetl(tmp_path, "run", HELLO, "--json").stdout)["execution_id"]
    done = noetl(tmp_path, "status", execution_id[:-3])
    assert done.returncode == 0
    assert done.stdout.splitlines()[0] == f"execution {execution_id}: completed"


@pytest.mark.parametrize("target", ["missing.yaml", "./missing/hello.yaml"])
def test_run_a_missing_file_says_the_file_is_missing(tmp_path: Path, target: str) -> None:
    done = noetl(tmp_path, "run", target)
    assert done.returncode == 1
    assert target in done.stderr
    assert re.search(r"no such file|not found|does not exist", done.stderr, re.IGNORECASE), (
        done.stderr
    )


# -- the catalog ----------------------------------------------------------------------------


def test_register_a_directory_then_run_by_catalog_path(tmp_path: Path) -> None:
    done = noetl(tmp_path, "register", "playbooks/examples")
    assert done.returncode == 0, done.stderr
    names = sorted(
        f.relative_to(EXAMPLES).with_suffix("").as_posix() for f in EXAMPLES.rglob("*.yaml")
    )
    assert sorted(done.stdout.splitlines()) == sorted(f"registered: examples/{n} v1" for n in names)

    listing = noetl(tmp_path, "catalog", "list")
    assert listing.returncode == 0
    assert "examples/hello_world  latest v1  (1 version)" in listing.stdout.splitlines()
    assert len(listing.stdout.splitlines()) == len(names)

    run = noetl(tmp_path, "run", "examples/hello_world", "--json", "--set", "name=Cat")
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["status"] == "completed"
    assert out["result"] == {"text": "HELLO, CAT!", "length": 11}
    listed = executions(tmp_path)[0].split()
    assert listed[0] == out["execution_id"]
    assert listed[-1] == "examples/hello_world"

    pinned = noetl(tmp_path, "run", "examples/hello_world@1", "--json")
    assert pinned.returncode == 0, pinned.stderr
    assert json.loads(pinned.stdout)["result"] == {"text": "HELLO, WORLD!", "length": 13}


def test_register_a_folder_with_bad_files_registers_the_good_ones(tmp_path: Path) -> None:
    """Every valid playbook is registered; each invalid one is listed with its error
    (file, line, what is wrong); the exit code says something was refused."""
    folder = tmp_path / "mixed"
    (folder / "deeper").mkdir(parents=True)
    shutil.copy(EXAMPLES / "hello_world.yaml", folder / "a_hello.yaml")
    shutil.copy(EXAMPLES / "loops.yaml", folder / "deeper" / "z_loops.yaml")
    (folder / "m_bad_arc.yaml").write_text(
        "apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {name: bad, path: t/bad}\n"
        "workflow:\n  - step: start\n    tool: {kind: noop}\n    next: nowhere\n"
    )
    (folder / "n_not_yaml.yml").write_text("workflow: [unclosed\n")
    home = tmp_path / "home"
    done = noetl(home, "register", str(folder))
    assert done.returncode == 1, done.stdout + done.stderr
    assert sorted(done.stdout.splitlines()) == [
        "registered: examples/hello_world v1",
        "registered: examples/loops v1",
    ]
    errors = done.stderr.splitlines()
    assert any(
        e.startswith(f"invalid: {folder / 'm_bad_arc.yaml'}:") and "nowhere" in e for e in errors
    ), done.stderr
    assert any(e.startswith(f"invalid: {folder / 'n_not_yaml.yml'}:") for e in errors), errors
    assert "Traceback" not in done.stderr
    listing = noetl(home, "catalog", "list").stdout.splitlines()
    assert [line.split()[0] for line in listing] == ["examples/hello_world", "examples/loops"]
    empty = tmp_path / "empty"
    empty.mkdir()
    nothing = noetl(home, "register", str(empty))
    assert nothing.returncode == 1 and "no playbook files" in nothing.stderr


def test_registering_the_same_file_twice_adds_no_version(tmp_path: Path) -> None:
    first = noetl(tmp_path, "register", HELLO)
    assert first.stdout.strip() == "registered: examples/hello_world v1"
    again = noetl(tmp_path, "register", HELLO)
    assert again.returncode == 0
    assert again.stdout.strip() == "unchanged: examples/hello_world v1"
    tree = noetl(tmp_path, "register", "playbooks/examples")
    assert "unchanged: examples/hello_world v1" in tree.stdout.splitlines()
    listing = noetl(tmp_path, "catalog", "list").stdout.splitlines()
    assert "examples/hello_world  latest v1  (1 version)" in listing

    changed = tmp_path / "hello_world.yaml"
    changed.write_text(
        (ROOT / HELLO).read_text(encoding="utf-8").replace("message: Hello", "message: Howdy"),
        encoding="utf-8",
    )
    assert noetl(tmp_path, "register", str(changed)).stdout.strip() == (
        "registered: examples/hello_world v2"
    )
    listing = noetl(tmp_path, "catalog", "list").stdout.splitlines()
    assert "examples/hello_world  latest v2  (2 versions)" in listing
    latest = json.loads(noetl(tmp_path, "run", "examples/hello_world", "--json").stdout)
    assert latest["result"]["text"] == "HOWDY, WORLD!"


def test_run_an_unregistered_catalog_path(tmp_path: Path) -> None:
    done = noetl(tmp_path, "run", "examples/nope")
    assert done.returncode == 1
    assert "no playbook registered at catalog path 'examples/nope'" in done.stderr
    assert "noetl register" in done.stderr
    assert executions(tmp_path) == []


# -- cancel ---------------------------------------------------------------------------------

SLOW = """
    apiVersion: noetl.io/v2
    kind: Playbook
    metadata:
      name: slow
      path: tests/slow
    workload:
      items: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19]
    workflow:
      - step: start
        loop:
          in: "{{ items }}"
          iterator: item
          spec: {mode: sequential}
        tool:
          kind: python
          input: {item: "{{ item }}"}
          code: |
            import time
            time.sleep(0.25)
            result = item
        next: after
      - step: after
        tool: {kind: python, code: "result = 'after ran'"}
    """


def test_cancel_a_running_execution(tmp_path: Path) -> None:
    file = playbook(tmp_path, "slow", SLOW)
    home = tmp_path / "home"
    proc = subprocess.Popen(
        [sys.executable, "-m", "noetl_core.cli", "run", str(file)],
        cwd=ROOT,
        env=_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
    )
    try:
        execution_id = None
        deadline = time.monotonic() + 10
        while execution_id is None and time.monotonic() < deadline:
            if home.joinpath("events.sqlite").exists():
                rows = [r for r in executions(home) if r.endswith("tests/slow")]
                if rows:
                    assert rows[0].split()[3] == "running", rows[0]
                    execution_id = rows[0].split()[0]
            if execution_id is None:
                time.sleep(0.05)
        assert execution_id is not None, "the run never showed up in `noetl status`"

        cancel = noetl(home, "cancel", execution_id)
        assert cancel.returncode == 0, cancel.stderr
        assert cancel.stdout.strip() == f"cancel recorded for {execution_id}"

        stdout, stderr = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 1, stdout + stderr
    assert stdout.splitlines()[0] == "status: cancelled"
    assert f"  = {execution_id} cancelled" in stderr.splitlines()

    status = noetl(home, "status", execution_id)
    lines = status.stdout.splitlines()
    assert lines[0] == f"execution {execution_id}: cancelled"
    assert "error: cancelled by `noetl cancel`" in lines
    ran = re.search(r"^  start\s+\S+\s+(\d+)\s", status.stdout, re.MULTILINE)
    assert ran is not None, status.stdout
    assert int(ran[1]) < 20, "every iteration ran: the cancel came too late to mean anything"
    assert not any(line.strip().startswith("after") for line in lines)
    listed = next(r for r in executions(home) if r.startswith(execution_id))
    assert listed.split()[3] == "cancelled"

    events = noetl(home, "events", execution_id, "--json").stdout.splitlines()
    types = [json.loads(e)["type"] for e in events]
    assert types[-1] == "playbook.cancelled"
    assert "playbook.completed" not in types
    replay = noetl(home, "replay", execution_id)
    assert replay.returncode == 0, replay.stdout
    assert "state: cancelled" in replay.stdout


def test_cancel_a_finished_execution_changes_nothing(tmp_path: Path) -> None:
    execution_id = json.loads(noetl(tmp_path, "run", HELLO, "--json").stdout)["execution_id"]
    noetl(tmp_path, "cancel", execution_id)
    status = noetl(tmp_path, "status", execution_id)
    assert status.stdout.splitlines()[0] == f"execution {execution_id}: completed"
    assert noetl(tmp_path, "replay", execution_id).returncode == 0


# -- replay can fail ------------------------------------------------------------------------


def test_replay_reports_a_tampered_successor_frame(tmp_path: Path) -> None:
    run = noetl(tmp_path, "run", HELLO, "--json")
    execution_id = json.loads(run.stdout)["execution_id"]
    assert noetl(tmp_path, "replay", execution_id).returncode == 0

    with sqlite3.connect(tmp_path / "events.sqlite") as db:
        seq, data = db.execute(
            "SELECT seq, data FROM entries WHERE execution_id = ? AND kind = 'issue' "
            "AND step = 'shout'",
            (execution_id,),
        ).fetchone()
        entry = json.loads(data)
        frame = entry["body"]["command"]["frame"]
        assert frame["ctx"] is None and frame["results"] is not None
        frame["ctx"] = frame["results"]  # another version: the step results as ctx
        db.execute("UPDATE entries SET data = ? WHERE seq = ?", (json.dumps(entry), seq))
    db.close()

    done = noetl(tmp_path, "replay", execution_id)
    assert done.returncode == 1, done.stdout
    found = re.search(r"decisions checked: (\d+), reproduced: (\d+)", done.stdout)
    assert found is not None, done.stdout
    assert int(found[2]) == int(found[1]) - 1
    mismatches = [line for line in done.stdout.splitlines() if "MISMATCH" in line]
    assert len(mismatches) == 1
    assert "(done greet)" in mismatches[0]
    assert f"command {entry['command_id']} (shout): frame differs" in mismatches[0]


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


EMULATOR_VARS = ("FIRESTORE_EMULATOR_HOST", "PUBSUB_EMULATOR_HOST", "STORAGE_EMULATOR_HOST")


@pytest.mark.parametrize("stack", ["unset", "closed"])
def test_target_emulators_without_a_stack_says_so_in_one_line(tmp_path: Path, stack: str) -> None:
    """Without the stack's environment Google's clients look for credentials (a
    traceback); with it pointing at a closed port they retry for about a minute."""
    env = {k: v for k, v in _env(tmp_path / "home").items() if k not in EMULATOR_VARS}
    env["NOETL_PAYLOAD_URL"] = "gs://noetl-payloads/p"
    if stack == "closed":
        port = closed_port()
        env.update({name: f"127.0.0.1:{port}" for name in EMULATOR_VARS})
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "noetl_core.cli", "run", HELLO, "--target", "emulators"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    took = time.monotonic() - started
    assert done.returncode == 1
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1, done.stderr
    expected = "not set" if stack == "unset" else "nothing answers at FIRESTORE_EMULATOR_HOST"
    assert expected in done.stderr and "make emulators" in done.stderr, done.stderr
    assert took < 10, took
