"""docs/settings.md is the settings table of `noetl_core/settings.py`, and that table
names every variable `settings.load` reads."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from noetl_core import settings

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def test_docs_settings_page_is_generated_from_the_module() -> None:
    page = (ROOT / "docs" / "settings.md").read_text(encoding="utf-8")
    assert page == settings.markdown(), (
        "docs/settings.md is stale: run `python -m noetl_core.settings > docs/settings.md`"
    )


def test_every_variable_read_is_in_the_table() -> None:
    source = Path(settings.__file__).read_text(encoding="utf-8")
    load = source[source.index("def load(") : source.index("LOCAL_PROJECT =")]
    read = set(re.findall(r'(?:source\.get\(|_int\(source, )"([A-Z_]+)"', load))
    assert len(read) > 30
    listed = {m for row in settings.table() for m in re.findall(r"`([A-Z_]+)`", row)}
    assert read - listed == set()


def test_readme_links_the_docs() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for page in ("docs/cloud.md", "docs/language.md", "docs/settings.md"):
        assert f"]({page})" in readme, page
    language = (ROOT / "docs" / "language.md").read_text(encoding="utf-8")
    assert "team's language page" not in language
