"""The typed records the playbook model is built from (`noetl_core/playbook/schema.py`)."""

from __future__ import annotations

from typing import Any, Literal

import pytest

from noetl_core.playbook.schema import Invalid, Record, field


class Inner(Record):
    n: int = field(default=1, ge=1)


class Loose(Record):
    extra_allowed = True
    name: str


class Outer(Record):
    name: str
    mode: Literal["a", "b"] = "a"
    when: str | bool | None = None
    inner: Inner = field(default_factory=Inner)
    items: list[Inner] = field(default_factory=list, min_length=0)
    in_: str | list[Any] = field(alias="in", default="x")
    tags: dict[str, Any] | None = None
    loose: Loose | list[Loose] | None = None


def problems(data: Any) -> list[tuple[tuple[str | int, ...], str]]:
    with pytest.raises(Invalid) as caught:
        Outer.validate(data)
    return caught.value.problems


def test_defaults_aliases_and_nested_records() -> None:
    made = Outer.validate({"name": "x", "in": [1, 2], "items": [{"n": 3}, {}]})
    assert made.in_ == [1, 2]
    assert made.inner == Inner.validate({})
    assert [i.n for i in made.items] == [3, 1]
    assert made.model_extra is None


def test_every_problem_is_reported_with_its_path() -> None:
    got = problems({"mode": "c", "bogus": 1, "items": [{"n": 0}, {"n": "many"}], "tags": {1: 2}})
    assert ((("name",), "required field is missing")) in got
    assert (("mode",), "expected 'a' or 'b', got 'c'") in got
    assert (("bogus",), "unknown field (not part of noetl.io/v2)") in got
    assert (("items", 0, "n"), "Input should be greater than or equal to 1 (got 0)") in got
    assert (("items", 1, "n"), "Input should be a valid integer (got 'many')") in got
    assert (("tags", 1), "Input should be a valid string (got 1)") in got
    assert len(got) == 6


def test_scalars_convert_the_lenient_way_and_unions_keep_the_shape_given() -> None:
    made = Outer.validate({"name": "x", "inner": {"n": "4"}, "when": True})
    assert made.inner.n == 4 and made.when is True
    assert Outer.validate({"name": "x", "when": "{{ a }}"}).when == "{{ a }}"
    listed = Outer.validate({"name": "x", "loose": [{"name": "a", "k": 1}]}).loose
    assert isinstance(listed, list) and listed[0].k == 1
    assert problems({"name": "x", "loose": [{"k": 1}]}) == [
        (("loose", 0, "name"), "required field is missing")
    ]
    assert problems({"name": "x", "loose": 3}) == [
        (
            ("loose",),
            "Input should be a valid dictionary or a valid list or None (got 3)",
        )
    ]
    assert problems({"name": 5}) == [(("name",), "Input should be a valid string (got 5)")]


def test_records_are_frozen_and_keep_unknown_keys_only_when_open() -> None:
    loose = Loose.validate({"name": "n", "code": "x = 1"})
    assert loose.model_extra == {"code": "x = 1"} and loose.code == "x = 1"
    with pytest.raises(AttributeError):
        loose.name = "m"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        _ = loose.missing
    assert Loose(name="n", code="x = 1") == loose
    assert Outer(name="x", inner=Inner(n=2)).inner.n == 2
