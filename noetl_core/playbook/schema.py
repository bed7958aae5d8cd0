"""Frozen, typed records validated from plain data (parsed YAML or JSON), every problem
reported with the path it is at.

A record class declares its fields as annotations, with `field(...)` for defaults,
aliases and bounds; `Record.validate(data)` builds it or raises `Invalid` listing every
problem found. Types understood: `Any`, `str`, `int`, `float`, `bool`, `None`, `Literal`,
unions, `list[T]`, `dict[str, T]` and records. Scalars convert the lenient way a YAML
author expects (`"3"` for an int, `1` for a float); a union takes the member whose shape
the value has (a mapping for a record, a list for a list) and reports only that member's
problems. `extra_allowed = True` keeps unknown keys in `model_extra` (readable as
attributes); otherwise an unknown key is a problem.

Built for the playbook model: it is imported by every command and by every worker's
first block, so it stays small and builds nothing at import time (each class reads its
annotations on its first validation).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Union, get_args, get_origin

Path = tuple[str | int, ...]
_MISSING: Any = object()


@dataclass(frozen=True)
class _Spec:
    default: Any = _MISSING
    default_factory: Callable[[], Any] | None = None
    alias: str | None = None
    ge: float | None = None
    min_length: int | None = None


def field(
    *,
    default: Any = _MISSING,
    default_factory: Callable[[], Any] | None = None,
    alias: str | None = None,
    ge: float | None = None,
    min_length: int | None = None,
) -> Any:
    return _Spec(default, default_factory, alias, ge, min_length)


class Invalid(Exception):
    def __init__(self, problems: list[tuple[Path, str]]):
        super().__init__(
            "; ".join(f"{'.'.join(map(str, p)) or '<root>'}: {m}" for p, m in problems)
        )
        self.problems = problems


@dataclass(frozen=True)
class _Field:
    name: str
    key: str  # the key in the data (the alias, if any)
    type: Any
    spec: _Spec


class Record:
    extra_allowed: ClassVar[bool] = False
    _fields: ClassVar[dict[str, _Field] | None] = None
    model_extra: dict[str, Any] | None

    # -- building ---------------------------------------------------------------------

    @classmethod
    def validate(cls, data: Any) -> typing.Self:
        problems: list[tuple[Path, str]] = []
        made = _convert(cls, data, (), problems)
        if problems:
            raise Invalid(problems)
        return typing.cast(typing.Self, made)

    @classmethod
    def _schema(cls) -> dict[str, _Field]:
        fields = cls.__dict__.get("_fields")
        if fields is None:
            hints = typing.get_type_hints(cls)
            fields = {}
            for name, tp in hints.items():
                if name.startswith("_") or get_origin(tp) is ClassVar or name == "model_extra":
                    continue
                raw = _class_default(cls, name)
                spec = raw if isinstance(raw, _Spec) else _Spec(default=raw)
                fields[name] = _Field(name, spec.alias or name, tp, spec)
            cls._fields = fields
        return fields

    @classmethod
    def _build(cls, data: dict[Any, Any], path: Path, problems: list[tuple[Path, str]]) -> Any:
        fields = cls._schema()
        values: dict[str, Any] = {}
        known: set[Any] = set()
        for f in fields.values():
            key = f.key if f.key in data else f.name if f.name in data else None
            if key is None:
                if f.spec.default_factory is not None:
                    values[f.name] = f.spec.default_factory()
                elif f.spec.default is not _MISSING:
                    values[f.name] = f.spec.default
                else:
                    problems.append(((*path, f.key), "required field is missing"))
                continue
            known.add(key)
            at = (*path, key)
            before = len(problems)
            value = _convert(f.type, data[key], at, problems)
            if len(problems) == before:
                _bounds(f.spec, value, at, problems)
            values[f.name] = value
        extra = {k: v for k, v in data.items() if k not in known}
        if extra and not cls.extra_allowed:
            for k in extra:
                problems.append(((*path, k), "unknown field (not part of noetl.io/v2)"))
        record = object.__new__(cls)
        for name, value in values.items():
            object.__setattr__(record, name, value)
        object.__setattr__(record, "model_extra", extra if cls.extra_allowed else None)
        return record

    # -- behaving like a frozen value --------------------------------------------------

    def __init__(self, **values: Any) -> None:
        made = type(self).validate(values)
        for name, value in vars(made).items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen")

    def __getattr__(self, name: str) -> Any:
        extra = self.__dict__.get("model_extra")
        if extra and name in extra:
            return extra[name]
        raise AttributeError(f"{type(self).__name__} has no field {name!r}")

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and vars(other) == vars(self)

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_") and v is not None
        )
        return f"{type(self).__name__}({shown})"


def _class_default(cls: type, name: str) -> Any:
    for klass in cls.__mro__:
        if name in klass.__dict__:
            return klass.__dict__[name]
    return _MISSING


def _bounds(spec: _Spec, value: Any, at: Path, problems: list[tuple[Path, str]]) -> None:
    if spec.ge is not None and isinstance(value, int | float) and value < spec.ge:
        ge = int(spec.ge) if float(spec.ge).is_integer() else spec.ge
        problems.append((at, f"Input should be greater than or equal to {ge} (got {value!r})"))
    if spec.min_length is not None and isinstance(value, list) and len(value) < spec.min_length:
        problems.append(
            (
                at,
                f"List should have at least {spec.min_length} item after validation, "
                f"not {len(value)}",
            )
        )


_TRUE = {"true", "yes", "on", "1", "t", "y"}
_FALSE = {"false", "no", "off", "0", "f", "n"}
_NAMES = {str: "string", int: "integer", float: "number", bool: "boolean"}


def _scalar(tp: type, value: Any) -> Any:
    """The value as `tp`, converting leniently; `_MISSING` if it cannot be."""
    if tp is str:
        return value if isinstance(value, str) else _MISSING
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        return _MISSING
    if tp is int:
        if isinstance(value, int):
            return int(value)
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                return _MISSING
        return _MISSING
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                return _MISSING
        return _MISSING
    raise TypeError(f"unsupported field type {tp!r}")


def _exact(tp: Any, value: Any) -> bool:
    """Whether the value already has the shape of `tp` (no conversion)."""
    origin = get_origin(tp)
    if tp is Any:
        return True
    if tp is type(None):
        return value is None
    if origin is Literal:
        return value in get_args(tp)
    if origin is list:
        return isinstance(value, list)
    if origin is dict or tp is dict:
        return isinstance(value, dict)
    if isinstance(tp, type) and issubclass(tp, Record):
        return isinstance(value, dict | tp)
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    return False


def _describe(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is list:
        return "a valid list"
    if origin is dict or tp is dict or (isinstance(tp, type) and issubclass(tp, Record)):
        return "a valid dictionary"
    if tp is type(None):
        return "None"
    if origin is Literal:
        return " or ".join(repr(a) for a in get_args(tp))
    return f"a valid {_NAMES.get(tp, getattr(tp, '__name__', str(tp)))}"


def _convert(tp: Any, value: Any, at: Path, problems: list[tuple[Path, str]]) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin is Union or origin is types.UnionType:
        members = get_args(tp)
        for member in members:
            if _exact(member, value):
                return _convert(member, value, at, problems)
        for member in members:
            if member in _NAMES and (got := _scalar(member, value)) is not _MISSING:
                return got
        wanted = " or ".join(_describe(m) for m in members)
        problems.append((at, f"Input should be {wanted} (got {value!r})"))
        return value
    if origin is Literal:
        allowed = get_args(tp)
        if value in allowed and any(type(value) is type(a) for a in allowed):
            return value
        names = [repr(a) for a in allowed]
        expected = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
        problems.append((at, f"expected {expected}, got {value!r}"))
        return value
    if tp is type(None):
        if value is not None:
            problems.append((at, f"Input should be None (got {value!r})"))
        return value
    if origin is list:
        if not isinstance(value, list):
            problems.append((at, f"Input should be a valid list (got {value!r})"))
            return value
        (item,) = get_args(tp) or (Any,)
        return [_convert(item, v, (*at, i), problems) for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            problems.append((at, f"Input should be a valid dictionary (got {value!r})"))
            return value
        args = get_args(tp)
        item = args[1] if len(args) == 2 else Any
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                problems.append(((*at, k), f"Input should be a valid string (got {k!r})"))
                continue
            out[k] = v if item is Any else _convert(item, v, (*at, k), problems)
        return out
    if isinstance(tp, type) and issubclass(tp, Record):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            problems.append((at, f"Input should be a valid dictionary (got {value!r})"))
            return value
        return tp._build(value, at, problems)
    got = _scalar(tp, value)
    if got is _MISSING:
        problems.append((at, f"Input should be {_describe(tp)} (got {value!r})"))
        return value
    return got
