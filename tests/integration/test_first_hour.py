"""The first hour with `noetl`: help and version, `last`, graphs, validation warnings,
logs, status tables, events, versions, verbs without `list`, fired schedules, and the
throwaway Postgres helper's secrets."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from noetl_core import cli, schedules
from noetl_core.runtime.block import Runtime

from ..conftest import EXAMPLES, ROOT
from .test_cli_errors import HELLO, _env, noetl, playbook

pytestmark = pytest.mark.integration

TYPO = """
    apiVersion: noetl.io/v2
    kind: Playbook
    metadata: {name: typo}
    workload:
      message: hi
    keychain:
      - {name: token, kind: static, map: {value: x}}
    workflow:
      - step: start
        tool:
          kind: python
          input: {m: "{{ workload.mesage }}", n: "{{ strat }}", k: "{{ keychain.tokn.value }}"}
          code: "result = m"
        set: {ctx.total: 1}
        next:
          arcs:
            - step: second
              when: ctx.totl > 0
      - step: second
        tool: {kind: noop}
    """

FAILS = """
    apiVersion: noetl.io/v2
    kind: Playbook
    metadata: {name: fails}
    workflow:
      - step: start
        tool: {kind: python, code: "print('hello from start')\\nresult = 1"}
        next: compute
      - step: compute
        tool: {kind: python, code: "print('about to fail')\\nraise ValueError('bad value')"}
    """


# -- help, version, no verb -----------------------------------------------------------


def test_noetl_alone_prints_help_not_an_error(tmp_path: Path) -> None:
    done = noetl(tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: noetl")
    assert "graph" in done.stdout and "logs" in done.stdout
    assert "Traceback" not in done.stderr


def test_version(tmp_path: Path) -> None:
    done = noetl(tmp_path, "--version")
    assert done.returncode == 0
    assert re.fullmatch(r"noetl \S+\n", done.stdout), done.stdout


def test_every_argument_of_every_verb_has_help() -> None:
    top = cli.parser()
    verbs = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction))
    missing = [
        f"{verb} {action.dest}"
        for verb, sub in verbs.choices.items()
        for action in sub._actions
        if not isinstance(action, argparse._HelpAction) and not action.help
    ]
    assert missing == []
    run = verbs.choices["run"].format_usage()
    assert run.rstrip().endswith("playbook"), run  # not `target`, which --target is


# -- `last` ---------------------------------------------------------------------------------


def test_last_names_the_most_recent_execution(tmp_path: Path) -> None:
    done = noetl(tmp_path, "status", "last")
    assert done.returncode == 1
    assert done.stderr.startswith("noetl: no execution under this NOETL_HOME yet")
    noetl(tmp_path, "run", HELLO, "--json")
    second = json.loads(noetl(tmp_path, "run", HELLO, "--json").stdout)["execution_id"]
    for verb in ("status", "events", "replay", "logs"):
        done = noetl(tmp_path, verb, "last")
        assert done.returncode == 0, (verb, done.stderr)
    status = noetl(tmp_path, "status", "last").stdout.splitlines()
    assert status[0] == f"execution {second}: completed"


# -- graphs ---------------------------------------------------------------------------------


def test_graph_as_mermaid_marks_arcs_loops_and_sub_playbooks(tmp_path: Path) -> None:
    done = noetl(tmp_path, "graph", "playbooks/examples/fan_out_join.yaml")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "flowchart TD"
    assert any(re.fullmatch(r'  s0 -->\|"base < 0"\| s\d', line) for line in lines), lines
    assert any("{{" in line and "join" in line for line in lines)  # a join's hexagon

    loops = noetl(tmp_path, "graph", "playbooks/examples/loops.yaml").stdout
    assert "loop n in numbers (sequential)" in loops
    child = noetl(tmp_path, "graph", "playbooks/examples/sub_playbook.yaml").stdout
    assert re.search(r'\[\["[^"]*playbook: ', child), child


def test_graph_as_dot_of_a_catalog_path(tmp_path: Path) -> None:
    assert noetl(tmp_path, "register", "playbooks/examples").returncode == 0
    done = noetl(tmp_path, "graph", "examples/fan_out_join@v1", "--format", "dot")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith('digraph "examples/fan_out_join" {')
    assert '"start" -> "negate" [label="base < 0"];' in done.stdout
    assert done.stdout.rstrip().endswith("}")


def test_validate_graph_prints_the_graph_after_ok(tmp_path: Path) -> None:
    done = noetl(tmp_path, "validate", "--graph", HELLO)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"ok: {HELLO}")
    assert lines[1] == "flowchart TD"


# -- validation warnings --------------------------------------------------------------------


def test_validate_warns_about_names_nothing_defines(tmp_path: Path) -> None:
    file = playbook(tmp_path, "typo", TYPO)
    done = noetl(tmp_path, "validate", str(file))
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"ok: {file} (typo, 2 steps, 4 warnings)\n"
    warnings = done.stderr.splitlines()
    assert len(warnings) == 4, warnings
    assert all(w.startswith(f"warning: {file}:") for w in warnings)
    said = "\n".join(warnings)
    assert "`workload.mesage`" in said and "did you mean 'message'?" in said
    assert "'strat' is not a step" in said and "did you mean 'start'?" in said
    assert "`keychain.tokn`" in said and "did you mean 'token'?" in said
    assert "`ctx.totl`" in said and "did you mean 'total'?" in said

    strict = noetl(tmp_path, "validate", "--strict", str(file))
    assert strict.returncode == 1
    assert strict.stdout == ""
    assert all(line.startswith("error: ") for line in strict.stderr.splitlines())


def test_run_warns_before_it_starts(tmp_path: Path) -> None:
    file = playbook(tmp_path, "typo", TYPO)
    done = noetl(tmp_path, "run", str(file))  # it fails: `ctx.totl > 0` compares nothing
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 4
    assert "did you mean 'message'?" in warnings[0]
    assert done.stderr.index("warning: ") < done.stderr.index("execution ")
    quiet = noetl(tmp_path, "run", str(file), "--json")
    assert "warning" not in quiet.stderr


def test_validate_strict_accepts_every_example(tmp_path: Path) -> None:
    files = sorted(str(f.relative_to(ROOT)) for f in EXAMPLES.rglob("*.yaml"))
    done = noetl(tmp_path, "validate", "--strict", *files)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


# -- logs, status, events -------------------------------------------------------------------


def test_logs_show_what_steps_printed_and_their_errors(tmp_path: Path) -> None:
    file = playbook(tmp_path, "fails", FAILS)
    assert noetl(tmp_path, "run", str(file)).returncode == 1
    logs = noetl(tmp_path, "logs", "last")
    assert logs.returncode == 0, logs.stderr
    assert logs.stdout.splitlines() == [
        "== start (attempt 1, ok) ==",
        "hello from start",
        "== compute (attempt 1, error) ==",
        "about to fail",  # printed before the exception: kept
        "error: step compute: ValueError at code line 2: bad value",
        "  line 2: raise ValueError('bad value')",
    ]
    one = noetl(tmp_path, "logs", "last", "compute")
    assert one.stdout.splitlines()[0] == "== compute (attempt 1, error) =="
    assert "hello from start" not in one.stdout
    unknown = noetl(tmp_path, "logs", "last", "nope")
    assert unknown.returncode == 1
    assert "has no step 'nope' (steps: compute, start)" in unknown.stderr


def test_status_of_a_failed_run_shows_its_error_and_no_result(tmp_path: Path) -> None:
    file = playbook(tmp_path, "fails", FAILS)
    run = noetl(tmp_path, "run", str(file))
    assert "result:" not in run.stdout
    status = noetl(tmp_path, "status", "last")
    lines = status.stdout.splitlines()
    assert lines[0].endswith(": failed")
    header = lines.index("steps:") + 1
    assert lines[header].split() == ["step", "status", "runs", "attempts", "duration"]
    assert re.fullmatch(r"  start\s+ok\s+1\s+1\s+[\d.]+ ms", lines[header + 1])
    assert re.fullmatch(r"  compute\s+failed\s+1\s+1\s+[\d.]+ ms", lines[header + 2])
    assert "error: step compute: ValueError at code line 2: bad value" in lines
    assert not any(line.startswith("result:") for line in lines)


def test_status_of_a_completed_run_shows_its_result(tmp_path: Path) -> None:
    noetl(tmp_path, "run", HELLO, "--set", "name=Ada")
    out = noetl(tmp_path, "status", "last").stdout
    assert json.loads(out.split("result:\n", 1)[1]) == {"text": "HELLO, ADA!", "length": 11}
    assert re.search(r"^  greet\s+ok\s+1\s+1\s+[\d.]+ ms$", out, re.MULTILINE), out


def test_events_have_a_header_and_mark_what_is_cut(tmp_path: Path) -> None:
    long = playbook(
        tmp_path,
        "long",
        """
        apiVersion: noetl.io/v2
        kind: Playbook
        metadata: {name: long}
        workflow:
          - step: a_step_with_a_name_longer_than_twenty
            tool: {kind: python, code: "result = 'x' * 500"}
        """,
    )
    assert noetl(tmp_path, "run", str(long)).returncode == 0
    lines = noetl(tmp_path, "events", "last").stdout.splitlines()
    assert lines[0].split()[:5] == ["#", "since", "start", "event", "step"]
    assert "…" in lines[0]  # the header explains the mark
    done = next(line for line in lines if "call.done" in line)
    assert "a_step_with_a_name_…" in done
    assert done.rstrip().endswith("…")
    assert len(noetl(tmp_path, "events", "last", "--json").stdout.splitlines()) == len(lines) - 1


# -- catalog versions, verbs without `list`, cancel -----------------------------------------


def test_versions_as_catalog_prints_them_and_verbs_without_list(tmp_path: Path) -> None:
    assert noetl(tmp_path, "register", "playbooks/examples").returncode == 0
    listed = noetl(tmp_path, "catalog")
    assert listed.returncode == 0
    assert "examples/hello_world  latest v1  (1 version)" in listed.stdout.splitlines()
    assert noetl(tmp_path, "catalog", "list").stdout == listed.stdout
    for given in ("v1", "1", "latest"):
        run = noetl(tmp_path, "run", f"examples/hello_world@{given}", "--json")
        assert run.returncode == 0, (given, run.stderr)
    bad = noetl(tmp_path, "run", "examples/hello_world@vx")
    assert bad.returncode == 1
    assert bad.stderr.strip() == (
        "noetl: catalog version 'vx' is not a number (give 3, v3 or latest)"
    )
    schedules_ = noetl(tmp_path, "schedules")
    assert schedules_.returncode == 0
    assert schedules_.stdout.startswith("examples/scheduled_report  '* * * * *' UTC  next ")
    assert noetl(tmp_path, "credentials").returncode == 0


def test_empty_listings_say_how_to_fill_them(tmp_path: Path) -> None:
    for verb, hint in (
        ("catalog", "`noetl register FILE|DIR`"),
        ("schedules", "`metadata.schedule`"),
        ("credentials", "`noetl register credential -f FILE`"),
    ):
        done = noetl(tmp_path, verb)
        assert (done.returncode, done.stdout) == (0, ""), verb
        assert done.stderr.startswith("noetl: ") and hint in done.stderr, done.stderr


def test_cancel_a_finished_execution_says_so(tmp_path: Path) -> None:
    execution_id = json.loads(noetl(tmp_path, "run", HELLO, "--json").stdout)["execution_id"]
    done = noetl(tmp_path, "cancel", "last")
    assert done.returncode == 1
    assert done.stdout == ""
    assert re.fullmatch(
        rf"noetl: execution {execution_id} already ended \(completed at [\d: -]+ UTC\): "
        r"there is nothing to cancel\n",
        done.stderr,
    ), done.stderr


# -- serve: a line per fired schedule -------------------------------------------------------


def test_the_scheduler_says_each_firing(rt: Runtime) -> None:
    rt.catalog.register(EXAMPLES / "scheduled_report.yaml")
    said: list[str] = []
    noon = dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.UTC)
    scheduler = schedules.Scheduler(rt, log=said.append)
    scheduler.run_once(noon)
    scheduler.run_once(noon + dt.timedelta(minutes=1, seconds=1))
    assert said == [
        "schedule examples/scheduled_report '* * * * *' fired for 2026-11-29T12:01:00+00:00: "
        f"execution {scheduler.fired[0]} started"
    ]
    assert rt.wait(scheduler.fired[0], 10) is not None


# -- the throwaway Postgres helper ----------------------------------------------------------


def test_postgres_helper_without_its_driver_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from noetl_core.devtools import postgres

    monkeypatch.setitem(sys.modules, "psycopg", None)  # `import psycopg` raises ImportError
    assert postgres.main([]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "pip install -e '.[postgres,duckdb]'" in err


def test_postgres_helper_never_prints_the_password(tmp_path: Path) -> None:
    pytest.importorskip("psycopg")
    from noetl_core.devtools.postgres import PostgresUnavailable, find_binaries

    try:
        find_binaries()
    except PostgresUnavailable as exc:
        pytest.skip(str(exc))
    home = tmp_path / "home"
    credential = home / "pg_local.json"
    home.mkdir()
    credential.write_text('{"stale": "from a server long gone"}')
    proc = subprocess.Popen(
        [sys.executable, "-m", "noetl_core.devtools.postgres", "--password", "pw-never-shown"],
        cwd=ROOT,
        env=_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        printed = ""
        while not printed.rstrip().endswith("}"):
            line = proc.stdout.readline()
            assert line, proc.stderr.read() if proc.stderr else ""
            printed += line
        info = json.loads(printed)
        assert info["credential_file"] == str(credential)
        assert json.loads(credential.read_text())["data"]["db_password"] == "pw-never-shown"
        assert credential.stat().st_mode & 0o777 == 0o600
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert "pw-never-shown" not in printed + out + err
    assert not credential.exists()  # gone with its server


def test_a_prefix_two_executions_share_is_named_ambiguous(tmp_path: Path) -> None:
    """Ids begin with their start time, so executions started together share a prefix:
    such a prefix names none of them, and the answer lists the candidates."""
    ids = [json.loads(noetl(tmp_path, "run", HELLO, "--json").stdout)["execution_id"] for _ in "ab"]
    shared = next(n for n in range(19, 0, -1) if ids[0][:n] == ids[1][:n])
    assert shared >= 8  # the same second
    done = noetl(tmp_path, "status", ids[0][:shared])
    assert done.returncode == 1 and done.stdout == ""
    assert f"{ids[0][:shared]!r} matches several executions: " in done.stderr
    assert ids[0] in done.stderr and ids[1] in done.stderr
    unique = noetl(tmp_path, "status", ids[1][: shared + 1])  # one digit more: just one
    assert unique.returncode == 0 and unique.stdout.startswith(f"execution {ids[1]}: completed")
