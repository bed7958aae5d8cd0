"""The function artifact: a lock generated from pyproject.toml that a test keeps fresh,
and a deployable folder and zip made only of what a function needs."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from noetl_core.devtools import package

pytestmark = pytest.mark.unit


def test_the_lock_matches_pyproject() -> None:
    assert package.lock_problems() == [], "run `make lock` and commit functions/requirements.txt"


def test_a_changed_pyproject_makes_the_lock_stale(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    text = (package.ROOT / "pyproject.toml").read_text()
    pyproject.write_text(text.replace('"croniter>=2",', '"croniter>=2",\n  "tabulate>=0.9",'))
    problems = package.lock_problems(pyproject=pyproject)
    assert any("not generated from the current pyproject.toml" in p for p in problems)
    assert any("pins no tabulate" in p for p in problems)


def test_a_pin_outside_the_declared_range_is_named(tmp_path: Path) -> None:
    lock = tmp_path / "requirements.txt"
    lock.write_text(
        "\n".join(
            "croniter==1.0.0" if line.startswith("croniter==") else line
            for line in package.LOCK.read_text().splitlines()
        )
    )
    assert package.lock_problems(lock) == [f"{lock} pins croniter==1.0.0, outside croniter>=2"]


def test_the_lock_pins_what_the_functions_import() -> None:
    pins = dict(package.pinned(package.LOCK.read_text()))
    for name in ("croniter", "psycopg", "duckdb", "functions-framework", "google-cloud-tasks"):
        assert name in pins


def test_the_artifact_holds_main_the_core_without_devtools_and_the_lock(tmp_path: Path) -> None:
    artifact = package.build(tmp_path)
    names = sorted(p.relative_to(artifact.folder).as_posix() for p in artifact.folder.rglob("*"))
    assert "main.py" in names and "noetl_core/cloud.py" in names
    assert not [n for n in names if "devtools" in n or n.endswith(".pyc")]
    assert artifact.requirements.read_text() == package.LOCK.read_text()
    with zipfile.ZipFile(artifact.zip) as archive:
        assert sorted(archive.namelist()) == sorted(
            n for n in names if (artifact.folder / n).is_file()
        )
        assert archive.read("main.py") == (package.ROOT / "functions" / "main.py").read_bytes()
    again = package.build(tmp_path)
    assert again.zip == artifact.zip  # same content, same name
    assert [p.name for p in tmp_path.glob("function-*.zip")] == [artifact.zip.name]


def test_a_stale_lock_stops_the_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stale = tmp_path / "requirements.txt"
    stale.write_text("# inputs: sha256:" + "0" * 64 + "\ncroniter==7.0.0\n")
    monkeypatch.setattr(package, "LOCK", stale)
    with pytest.raises(package.PackageError, match="not generated from the current"):
        package.build(tmp_path / "dist")
    assert not (tmp_path / "dist" / "function").exists()
