"""Payload keys come from playbook names, so each part is one segment whatever it holds:
no key leaves `executions/<id>/`, even for a name validation would have refused."""

from __future__ import annotations

import posixpath

import pytest

from noetl_core.runtime import payloads

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "name", ["../../../../x", "..", ".", "a/../../b", "/etc/passwd", "a\\..\\b", "x y%2F"]
)
def test_no_name_makes_a_key_outside_its_execution(name: str) -> None:
    key = payloads.key("E1", name, "c1", 1, "result")
    assert posixpath.normpath(key) == key
    assert key.startswith("executions/E1/")
    assert key.count("/") == 5, key  # executions, id, name, command, attempt, result


def test_ordinary_names_are_kept_as_they_are() -> None:
    assert payloads.key("E1", "fetch-page.v2", "c1", 2, "result") == (
        "executions/E1/fetch-page.v2/c1/2/result"
    )


def test_distinct_names_make_distinct_keys() -> None:
    names = ["..", "%2E%2E", ".", "a/b", "a%2Fb", "a b"]
    assert len({payloads.key("E", n) for n in names}) == len(names)


def test_an_empty_part_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        payloads.key("E", "")
