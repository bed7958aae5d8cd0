"""Jinja2 templating for playbooks: sandboxed, read-only, type-preserving, lazily hydrated.

- Templates read values and never change them: Jinja's immutable sandbox refuses the
  methods that modify a list, dict or set (`append`, `update`, `pop`, ...), so what a
  template reads (workload, ctx, cached step results, shared by every block of the
  process) is the same for the next block and for `noetl replay`. A refused call is a
  `TemplateError` naming the template.
- A string that is exactly one `{{ expr }}` renders to the expression's value with its
  type (list, dict, number, bool); any other string renders to a string.
- A mapping's keys win over its methods (`{{ page.items }}` reads the key `items`).
- Undefined names and attributes chain (`a.b.c` on nothing is undefined, not an error)
  and fall through to `| default(...)`.
- Extra filters: `tojson`, `fromjson`, `b64encode`, `b64decode`.
- `names()` finds the names a template reads (from Jinja's AST), so a block loads only
  the step results it needs.
- Jinja2 is imported on the first template that needs it: a plain `{{ a.b.c }}` (the
  commonest template) is read, checked and rendered without it.
- Step results are wrapped in `ResultView`: `.data` on a result without a `data` key is
  the result itself, `._ref` is its payload reference, and a stored result is loaded on
  first access.
"""

from __future__ import annotations

import base64
import json
import re
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from . import bounded
from .errors import KeychainError, TemplateError

if TYPE_CHECKING:
    from jinja2.sandbox import ImmutableSandboxedEnvironment

_SINGLE = re.compile(r"^\s*\{\{(?P<expr>.*)\}\}\s*$", re.DOTALL)
_FALSY_STRINGS = {"", "false", "0", "none", "null", "no", "off"}


class ResultView:
    """A step's result as templates see it; loads a stored result on first access."""

    __slots__ = ("_loaded", "_loader", "_lock", "_ref", "_selected", "_value")

    def __init__(
        self,
        value: Any = None,
        *,
        ref: dict[str, Any] | None = None,
        loader: Callable[[], Any] | None = None,
        selected: dict[str, Any] | None = None,
    ):
        self._value = value
        self._ref = ref
        self._loader = loader
        self._loaded = loader is None
        self._selected = selected or {}
        self._lock = threading.Lock()

    @property
    def value(self) -> Any:
        if not self._loaded:
            with self._lock:
                if not self._loaded and self._loader is not None:
                    self._value = self._loader()
                    self._loaded = True
        return self._value

    def __getitem__(self, key: Any) -> Any:
        if key == "_ref" and self._ref is not None:
            return self._ref
        if isinstance(key, str) and key in self._selected:
            return self._selected[key]
        if key == "data":
            value = self.value
            if isinstance(value, Mapping) and "data" in value:
                return value["data"]
            return value
        if key == "body":  # upstream's name of an http answer's `data`
            value = self.value
            if isinstance(value, Mapping) and "body" not in value and "status_code" in value:
                return value.get("data")
        return child(self.value, key)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return self[name]
        except (KeyError, IndexError, TypeError, AttributeError):
            raise AttributeError(name) from None

    def __iter__(self) -> Iterator[Any]:
        return iter(self.value)

    def __len__(self) -> int:
        return len(self.value)

    def __contains__(self, item: Any) -> bool:
        return item in self.value

    def __bool__(self) -> bool:
        return bool(self.value)

    def __eq__(self, other: object) -> bool:
        return bool(self.value == unwrap(other))

    def __hash__(self) -> int:
        return id(self)

    def __str__(self) -> str:
        value = self.value
        return value if isinstance(value, str) else json.dumps(plain(value), default=str)

    def __repr__(self) -> str:
        return f"ResultView({self._value!r}, ref={self._ref!r})"


def child(value: Any, key: Any) -> Any:
    """A key or index of a result's value. Its attributes and methods are not reached
    here but through the sandbox (`Environment.getattr`), which refuses the ones that
    would modify the value."""
    if isinstance(value, Mapping) or (isinstance(value, list | tuple) and isinstance(key, int)):
        return value[key]
    raise KeyError(key)


def unwrap(value: Any) -> Any:
    """Replace every ResultView inside `value` with the plain value it stands for."""
    if isinstance(value, ResultView):
        return unwrap(value.value)
    if isinstance(value, Mapping):  # dicts, and lazy scopes such as ctx
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


def plain(value: Any) -> Any:
    """A JSON-ready copy: views unwrapped, Undefined as None, tuples as lists."""
    if isinstance(value, ResultView):
        return plain(value.value)
    if _undefined(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def _tojson(value: Any, indent: int | None = None) -> str:
    return json.dumps(plain(value), default=str, indent=indent, sort_keys=False)


def _fromjson(value: Any) -> Any:
    if value is None or _undefined(value):
        return None
    return bounded.json_loads(str(value), "fromjson")


def _b64encode(value: Any) -> str:
    raw = value if isinstance(value, bytes) else str(value).encode()
    return base64.b64encode(raw).decode("ascii")


def _b64decode(value: Any) -> str:
    return base64.b64decode(str(value)).decode()


def _undefined(value: Any) -> bool:
    """A Jinja undefined (only Jinja makes them: if it is not imported, there are none)."""
    if value is _MISSING:
        return True
    jinja2 = sys.modules.get("jinja2")
    return jinja2 is not None and isinstance(value, jinja2.Undefined)


_MISSING: Any = type("Missing", (), {"__repr__": lambda self: "<undefined>"})()


MAX_REPEAT = 1 << 20  # items of a string or list that `*` may make
MAX_POWER_BITS = 1 << 13  # bits of an integer `**` may make (str and JSON write it)


def _bounded_product(operator: str, left: Any, right: Any) -> Any:
    """`left * right` or `left ** right`, refused when the result would be huge: these are
    the operators with which a short template (`'x' * 10**10`, `9 ** 9 ** 9`) would take
    a worker's memory, or minutes of its time."""
    if operator == "**":
        if isinstance(left, int) and isinstance(right, int) and right > 0:
            bits = abs(left).bit_length() * right
            if bits > MAX_POWER_BITS:
                raise OverflowError(f"** would make a {bits}-bit integer, over {MAX_POWER_BITS}")
        return left**right
    for items, times in ((left, right), (right, left)):
        sized = isinstance(items, str | list | tuple) and isinstance(times, int)
        if sized and len(items) * times > MAX_REPEAT:
            raise OverflowError(f"* would make {len(items) * times} items, over {MAX_REPEAT}")
    return left * right


@lru_cache(maxsize=1)
def environment() -> ImmutableSandboxedEnvironment:
    """The immutable sandbox, built (and Jinja imported) on first use."""
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class Environment(ImmutableSandboxedEnvironment):
        """Keys of a mapping win over its methods: `{{ page.items }}` is the `items` key.
        A result's other attributes are its value's, under the sandbox's rules. `*` and
        `**` are bounded (`_bounded_product`)."""

        intercepted_binops = frozenset({"*", "**"})

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            return _bounded_product(operator, left, right)

        def getattr(self, obj: Any, attribute: str) -> Any:
            if isinstance(obj, Mapping | ResultView):
                try:
                    return obj[attribute]
                except (KeyError, IndexError, TypeError, AttributeError):
                    pass
            if isinstance(obj, ResultView):
                return super().getattr(obj.value, attribute)
            return super().getattr(obj, attribute)

    env = Environment(
        undefined=jinja2.ChainableUndefined, autoescape=False, keep_trailing_newline=True
    )
    env.filters.update(
        tojson=_tojson, fromjson=_fromjson, b64encode=_b64encode, b64decode=_b64decode
    )
    return env


def is_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def _single_expression(source: str) -> str | None:
    match = _SINGLE.match(source)
    if match is None:
        return None
    expr = match.group("expr")
    if "{{" in expr or "}}" in expr or "{%" in expr:
        return None
    return expr


_PATH = re.compile(r"^\s*\{\{\s*([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\s*\}\}\s*$")
# Names Jinja defines itself: a path starting with one is left to Jinja.
_JINJA_GLOBALS = frozenset({"range", "dict", "lipsum", "cycler", "joiner", "namespace"})


def _plain_path(source: str) -> tuple[str, ...] | None:
    """The parts of `{{ a.b.c }}`, when the template is only that (no `_`-led part, which
    the sandbox guards, and no Jinja global)."""
    path = _PATH.match(source)
    if path is None:
        return None
    parts = tuple(path.group(1).split("."))
    if any(p.startswith("_") for p in parts) or parts[0] in _JINJA_GLOBALS:
        return None
    return parts


def _lookup(parts: tuple[str, ...]) -> Callable[[dict[str, Any]], Any]:
    """`{{ a.b.c }}` without a Jinja context: the lookups Jinja's sandbox makes (keys
    before attributes, undefined chains). Mappings and results are read here; anything
    else (an attribute of an object, a missing key that may be a method) goes to Jinja."""

    def run(ctx: dict[str, Any]) -> Any:
        if parts[0] not in ctx:
            return _MISSING
        value = ctx[parts[0]]
        for part in parts[1:]:
            if value is _MISSING:
                return _MISSING
            if isinstance(value, Mapping | ResultView):
                try:
                    value = value[part]
                    continue
                except (KeyError, IndexError, TypeError, AttributeError):
                    pass
            value = environment().getattr(value, part)
        return value

    return run


@lru_cache(maxsize=4096)
def _compiled(source: str) -> Callable[[dict[str, Any]], Any]:
    parts = _plain_path(source)
    if parts is not None:
        return _lookup(parts)
    env = environment()
    expr = _single_expression(source)
    with _reading(source):
        if expr is not None:
            compiled = env.compile_expression(expr, undefined_to_none=False)
            return lambda ctx: compiled(**ctx)
        template = env.from_string(source)
        return lambda ctx: template.render(ctx)


@lru_cache(maxsize=4096)
def _names(source: str) -> frozenset[str]:
    parts = _plain_path(source)
    if parts is not None:
        return frozenset(parts[:1])
    import jinja2.meta

    with _reading(source):
        return frozenset(jinja2.meta.find_undeclared_variables(environment().parse(source)))


@lru_cache(maxsize=4096)
def reads(source: str) -> frozenset[tuple[str, ...]]:
    """What a template reads from outside: `(name,)` for each free name, and `(name,
    key)` for each `name.key` / `name['key']` of one (`workload.message`)."""
    parts = _plain_path(source)
    if parts is not None:
        return frozenset({parts[:1], parts[:2]})
    import jinja2.meta
    from jinja2 import nodes

    with _reading(source):
        tree = environment().parse(source)
    free = jinja2.meta.find_undeclared_variables(tree)
    found: set[tuple[str, ...]] = {(name,) for name in free}
    for node in tree.find_all(nodes.Getattr):
        if isinstance(node.node, nodes.Name) and node.node.name in free:
            found.add((node.node.name, node.attr))
    for item in tree.find_all(nodes.Getitem):
        key, base = item.arg, item.node
        named = isinstance(base, nodes.Name) and base.name in free
        if named and isinstance(key, nodes.Const) and isinstance(key.value, str):
            found.add((getattr(base, "name", ""), key.value))
    return frozenset(found)


@contextmanager
def _reading(source: str) -> Iterator[None]:
    """Jinja's parsing and compiling errors as TemplateErrors. Its parser and code
    generator recurse once per nested bracket or chained operator: a template nested
    thousands deep ends there in a RecursionError, which leaves nothing half-built."""
    import jinja2

    try:
        yield
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"template syntax error: {exc.message} in {source!r}") from None
    except RecursionError:
        raise TemplateError(f"template nested too deeply to read: {source!r}") from None


def check(value: Any) -> list[tuple[tuple[str | int, ...], str]]:
    """Syntax problems of every template inside `value`, as (path, message)."""
    problems: list[tuple[tuple[str | int, ...], str]] = []
    for sub, source in walk_templates(value):
        try:
            _compiled(source)
        except TemplateError as exc:
            problems.append((sub, exc.message))
    return problems


def walk_templates(
    value: Any, path: tuple[str | int, ...] = ()
) -> Iterator[tuple[tuple[str | int, ...], str]]:
    if isinstance(value, str):
        if is_template(value):
            yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from walk_templates(item, (*path, str(key)))
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield from walk_templates(item, (*path, i))


def names(*values: Any) -> set[str]:
    """Every name the templates inside `values` read."""
    found: set[str] = set()
    for value in values:
        for _, source in walk_templates(value):
            found |= _names(source)
    return found


def render(value: Any, context: Mapping[str, Any], where: str = "") -> Any:
    """Render every template inside `value`; non-template values pass through."""
    if isinstance(value, str):
        if not is_template(value):
            return value
        try:
            result = _compiled(value)(context if isinstance(context, dict) else dict(context))
        except TemplateError as exc:
            raise TemplateError(f"{where}: {exc.message}" if where else exc.message) from None
        except KeychainError as exc:  # stays a keychain error: its code and retryable hold
            message = f"{where}: {exc.message}" if where else exc.message
            raise KeychainError(message, code=exc.code, retryable=exc.retryable) from None
        except Exception as exc:
            raise TemplateError(f"{where + ': ' if where else ''}{_failure(value, exc)}") from None
        if _undefined(result):
            return None
        return unwrap(result)
    if isinstance(value, dict):
        return {
            k: render(v, context, f"{where}.{k}" if where else str(k)) for k, v in value.items()
        }
    if isinstance(value, list):
        return [render(v, context, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def _failure(source: str, exc: Exception) -> str:
    """Why a template failed; a refusal of the sandbox says what templates may do."""
    from jinja2.exceptions import SecurityError

    if isinstance(exc, SecurityError):
        return (
            f"template {source!r} was refused: {exc} (templates read values; they cannot "
            "change them or reach Python internals)"
        )
    return f"template {source!r} failed: {type(exc).__name__}: {exc}"


def truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in _FALSY_STRINGS
    return bool(value)


def condition(when: str | bool | None, context: Mapping[str, Any], where: str = "") -> bool:
    """Evaluate a `when:`; a string without braces is read as one expression."""
    if when is None:
        return True
    if isinstance(when, bool):
        return when
    source = when if is_template(when) else "{{ " + when + " }}"
    return truthy(render(source, context, where))


def condition_names(when: str | bool | None) -> set[str]:
    if not isinstance(when, str):
        return set()
    return names(when if is_template(when) else "{{ " + when + " }}")
