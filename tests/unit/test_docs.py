"""docs/architecture.md against the code: every path it cites exists, every backticked
`module.name` it cites is defined, its sequence diagram is there, and the import rules
it states hold (read from the source with `ast`, nothing imported)."""

from __future__ import annotations

import ast
import builtins
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest

from ..conftest import ROOT

pytestmark = pytest.mark.unit

DOC = ROOT / "docs" / "architecture.md"
PACKAGES = ("noetl_core", "emulators", "bench")  # where a cited name may be defined
EXTENSIONS = ("py", "json", "md", "toml", "tf", "txt", "yaml")
TOP = ("noetl_core", "tests", "emulators", "infra", "bench", "functions", "docs", "playbooks")


def text() -> str:
    return DOC.read_text(encoding="utf-8")


def prose() -> str:
    """The document without its fenced blocks (the mermaid diagram cites no code)."""
    return re.sub(r"^```.*?^```", "", text(), flags=re.M | re.S)


def spans() -> list[str]:
    """The contents of every inline code span."""
    return re.findall(r"`([^`\n]+)`", prose())


# -- paths -----------------------------------------------------------------------------

FILE = re.compile(
    r"(?<![\w./:<>-])((?:[A-Za-z0-9_.-]+/)+[A-Za-z0-9_.-]+\.(?:"
    + "|".join(EXTENSIONS)
    + r"))(?![\w/<>])"
)
FOLDER = re.compile(r"(?<![\w./:<>-])((?:" + "|".join(TOP) + r")(?:/[A-Za-z0-9_.-]+)*/)(?![\w<>])")


def cited_files() -> list[str]:
    return sorted(set(FILE.findall(text())))


def cited_folders() -> list[str]:
    return sorted(set(FOLDER.findall(text())))


def test_the_document_cites_source_files() -> None:
    assert len([p for p in cited_files() if p.endswith(".py")]) >= 30


@pytest.mark.parametrize("path", cited_files())
def test_every_cited_file_exists(path: str) -> None:
    """A path is from the repository's root, or from `noetl_core/` (as `runtime/ports.py`)."""
    assert (ROOT / path).is_file() or (ROOT / "noetl_core" / path).is_file(), path


@pytest.mark.parametrize("path", cited_folders())
def test_every_cited_folder_exists(path: str) -> None:
    assert (ROOT / path).is_dir(), path


# -- names -----------------------------------------------------------------------------


@dataclass
class Klass:
    bases: list[str]
    members: set[str] = field(default_factory=set)


@dataclass
class Index:
    modules: dict[str, set[str]]  # dotted module name -> its top-level names
    classes: dict[str, list[Klass]]  # class name -> every class of that name
    files: set[str]  # every file name (`block.py`)


def _module_files() -> Iterator[tuple[str, Path]]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            yield ".".join(parts), path
    yield "functions.main", ROOT / "functions" / "main.py"


def _class(node: ast.ClassDef) -> Klass:
    found = Klass([b.id if isinstance(b, ast.Name) else ast.unparse(b) for b in node.bases])
    for item in node.body:
        if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            found.members.add(item.name)
        elif isinstance(item, ast.Assign):
            found.members.update(t.id for t in item.targets if isinstance(t, ast.Name))
        elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
            found.members.add(item.target.id)
    for sub in ast.walk(node):  # attributes set on self in any method
        if (
            isinstance(sub, ast.Attribute)
            and isinstance(sub.ctx, ast.Store)
            and isinstance(sub.value, ast.Name)
            and sub.value.id == "self"
        ):
            found.members.add(sub.attr)
    return found


@cache
def index() -> Index:
    modules: dict[str, set[str]] = {}
    classes: dict[str, list[Klass]] = {}
    files = {p.name for p in ROOT.iterdir() if p.is_file()}
    files |= {p.name for top in TOP for p in (ROOT / top).rglob("*") if p.is_file()}
    for name, path in _module_files():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names: set[str] = set()
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Assign):
                names.update(t.id for t in node.targets if isinstance(t, ast.Name))
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names.add(node.target.id)
            elif isinstance(node, ast.Import | ast.ImportFrom):
                names.update(a.asname or a.name.split(".")[0] for a in node.names)
        modules[name] = names
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                classes.setdefault(node.name, []).append(_class(node))
    return Index(modules, classes, files)


def _members(name: str, seen: frozenset[str] = frozenset()) -> set[str]:
    """A class's members with those of its bases defined here (by name)."""
    found: set[str] = set()
    for klass in index().classes.get(name, []):
        found |= klass.members
        for base in klass.bases:
            if base not in seen:
                found |= _members(base, seen | {name})
    return found


def _resolves(parts: list[str]) -> bool:
    ix = index()
    first, rest = parts[0], parts[1:]
    starts: list[tuple[str, str]] = [
        ("module", m) for m in ix.modules if m == first or m.endswith("." + first)
    ]
    starts += [("class", first)] if first in ix.classes else []
    for kind, where in starts:
        for i, part in enumerate(rest):
            last = i == len(rest) - 1
            if kind == "module" and f"{where}.{part}" in ix.modules:
                where = f"{where}.{part}"
            elif kind == "module" and part in ix.modules[where]:
                if part in ix.classes:
                    kind, where = "class", part
                elif not last:
                    break
            elif kind == "class" and part in _members(where):
                if not last:
                    break
            else:
                break
        else:
            return True
    return False


DOTTED = re.compile(r"^([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+)(?:\(\))?$")


def cited_names() -> list[str]:
    """Backticked dotted names whose first part is a module or a class of the code (the
    others, such as `loop.done` or `output.select`, are words of the language)."""
    ix = index()
    known = {m.rsplit(".", 1)[-1] for m in ix.modules} | set(ix.classes)
    found = set()
    for span in spans():
        matched = DOTTED.match(span.strip())
        if matched is None:
            continue
        name = matched[1]
        if name.rsplit(".", 1)[-1] in EXTENSIONS or name.split(".")[0] in known:
            found.add(name)
    return sorted(found)


def test_the_document_cites_code_names() -> None:
    assert len(cited_names()) >= 40


@pytest.mark.parametrize("name", cited_names())
def test_every_cited_name_exists(name: str) -> None:
    if name.rsplit(".", 1)[-1] in EXTENSIONS:  # a file named alone, such as `block.py`
        assert name in index().files, name
        return
    assert _resolves(name.split(".")), f"`{name}` names nothing in {', '.join(PACKAGES)}"


CAMEL = re.compile(r"^[A-Z][A-Za-z0-9]*[a-z][A-Za-z0-9]*$")


def cited_classes() -> list[str]:
    """Backticked CamelCase words: classes (or other top-level names) of the code."""
    return sorted({s for s in spans() if CAMEL.match(s)})


@pytest.mark.parametrize("name", cited_classes())
def test_every_cited_class_exists(name: str) -> None:
    ix = index()
    defined = name in ix.classes or any(name in names for names in ix.modules.values())
    assert defined or hasattr(builtins, name), name


def test_the_resolver_refuses_what_does_not_exist() -> None:
    assert _resolves(["claims", "claim_first"])
    assert _resolves(["Runtime", "execution"])  # inherited from ExecutionCache
    assert _resolves(["noetl_core", "tools", "registry", "KINDS"])
    assert not _resolves(["claims", "claim_last"])
    assert not _resolves(["Runtime", "no_such_method"])
    assert not _resolves(["settle", "settle", "deeper"])


# -- the diagram -----------------------------------------------------------------------

PARTICIPANTS = {
    "Gateway/CLI",
    "Bus (Pub/Sub)",
    "Worker",
    "Log (Firestore)",
    "Payloads (GCS)",
    "Timer (Cloud Tasks)",
}
ARROW = re.compile(r"^(\w+)\s*(->>|-->>|->|-->|-x|--x|-\)|--\))\s*(\w+)\s*:\s*\S.*$")
NOTE = re.compile(r"^Note (?:over|left of|right of) (\w+)(?:\s*,\s*(\w+))?\s*:\s*\S.*$")
OPENERS = ("alt", "opt", "loop", "par", "critical", "break", "rect")


def diagram() -> list[str]:
    blocks = re.findall(r"^```mermaid\n(.*?)^```", text(), flags=re.M | re.S)
    assert len(blocks) == 1, "one ```mermaid block"
    return [line.strip() for line in blocks[0].splitlines() if line.strip()]


def test_the_sequence_diagram_is_there_and_well_formed() -> None:
    lines = diagram()
    assert lines[0] == "sequenceDiagram"
    aliases: dict[str, str] = {}
    open_blocks: list[str] = []
    arrows = 0
    for line in lines[1:]:
        assert ";" not in line and "#" not in line, f"mermaid ends a statement at ; or #: {line}"
        if line == "autonumber":
            continue
        declared = re.match(r"^participant (\w+) as (.+)$", line)
        if declared:
            aliases[declared[1]] = declared[2].strip()
            continue
        keyword = line.split(" ", 1)[0]
        if keyword in OPENERS:
            open_blocks.append(keyword)
            continue
        if keyword == "else":
            assert open_blocks and open_blocks[-1] == "alt", line
            continue
        if keyword == "and":
            assert open_blocks and open_blocks[-1] == "par", line
            continue
        if line == "end":
            assert open_blocks, "an `end` with no block open"
            open_blocks.pop()
            continue
        arrow, note = ARROW.match(line), NOTE.match(line)
        if arrow is not None:
            who = [arrow[1], arrow[3]]
        else:
            assert note is not None, f"not a sequence-diagram statement: {line}"
            who = [n for n in (note[1], note[2]) if n]
        assert all(w in aliases for w in who), f"undeclared participant in: {line}"
        arrows += bool(arrow)
    assert open_blocks == []
    assert set(aliases.values()) == PARTICIPANTS
    assert arrows >= 10


# -- the import rules the document states ------------------------------------------------


def imports_of(folder: str) -> dict[str, set[str]]:
    """Module file -> every module it imports, relative imports made absolute (lazy ones
    inside functions and TYPE_CHECKING ones included)."""
    out: dict[str, set[str]] = {}
    for path in sorted((ROOT / "noetl_core" / folder).rglob("*.py")):
        package = list(path.relative_to(ROOT).parent.parts)
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = package[: len(package) - node.level + 1] if node.level else []
                module = ".".join([*base, *([node.module] if node.module else [])])
                found.add(module)
                found.update(f"{module}.{a.name}" for a in node.names)
        out[str(path.relative_to(ROOT))] = found
    return out


def ours(names: set[str]) -> set[str]:
    return {n for n in names if n == "noetl_core" or n.startswith("noetl_core.")}


def test_the_engine_imports_nothing_that_does_io() -> None:
    allowed_here = ("noetl_core.engine", "noetl_core.ids", "noetl_core.errors")
    allowed = ("noetl_core.templating", "noetl_core.playbook.model", *allowed_here)
    stdlib = {"__future__", "typing", "collections", "collections.abc", "dataclasses"}
    stdlib |= {"functools", "json", "hashlib", "copy", "itertools", "math", "re", "heapq"}
    for path, names in imports_of("engine").items():
        mine = {n for n in ours(names) if n != "noetl_core"}
        stray = {n for n in mine if not n.startswith(allowed)}
        # `from .. import ids, templating` reads as noetl_core.<name>
        assert stray == set(), f"{path}: {sorted(stray)}"
        outside = {n for n in names - ours(names) if n.split(".")[0] not in stdlib}
        assert outside == set(), f"{path}: {sorted(outside)}"


def test_the_runtime_imports_no_backend() -> None:
    allowed = ("noetl_core.adapters.schedule_jobs", "noetl_core.adapters.locks")
    for path, names in imports_of("runtime").items():
        adapters = [n for n in names if n.startswith("noetl_core.adapters")]
        assert [n for n in adapters if not n.startswith(allowed)] == [], path
        for outer in ("gateway", "cli", "serve", "view", "cloud", "embedded"):
            assert not any(n.startswith(f"noetl_core.{outer}") for n in names), (path, outer)


def test_adapters_and_tools_import_no_runtime_gateway_or_cli() -> None:
    outer = ("gateway", "cli", "serve", "view", "cloud", "embedded", "runtime.block")
    for folder, also in (("adapters", ("tools",)), ("tools", ("runtime", "adapters", "engine"))):
        for path, names in imports_of(folder).items():
            banned = tuple(f"noetl_core.{o}" for o in (*outer, *also))
            assert [n for n in names if n.startswith(banned)] == [], path
