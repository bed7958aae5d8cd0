"""Scope versions: immutable maps stored as persistent hash tries (pure).

A command's frame names two versions: `results` (step name -> id of the entry holding
that step's latest result) and `ctx` (top-level ctx key -> what `set` left for it on
this path; the workload lies under it). A version is the reference of its root node, or
None when it is empty, so a frame's size never depends on how many blocks ran before.

Nodes are small JSON mappings that travel inside the entry whose batch made them, as
`body.nodes`, and are addressed `<entry id>:<position>`. Entries are created once and
never updated, so a node never changes: any process may cache it forever, and replay,
which rebuilds a batch in the same order, makes the same references. A new version
writes only the nodes on the paths it changes, O(log names), and shares the rest.

Node shapes:
- leaf `{"k": {name: value}, "r": {name: ref}}`: at most BUCKET names; a value whose
  JSON exceeds BIG bytes lives in a node of its own, `{"v": value}`, referenced under
  `"r"`, so changing a neighbour never copies it;
- branch `{"b": {digit: ref}}`: children by the hex digit of the name's hash at the
  branch's depth. A branch always holds more than BUCKET names below it and a leaf at
  most BUCKET, so a version's shape depends only on its names.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from functools import lru_cache
from typing import Any

Ref = str | None
Node = dict[str, Any]
NodeReader = Callable[[str], Node]
Combine = Callable[[Any, Any], Any]

BUCKET = 8
BIG = 512
_MISSING = object()


@lru_cache(maxsize=1 << 16)
def _path(name: str) -> str:
    return hashlib.blake2b(name.encode(), digest_size=8).hexdigest()


def split_ref(ref: str) -> tuple[str, int]:
    """The entry a node lives in, and its position there."""
    entry_id, _, pos = ref.rpartition(":")
    return entry_id, int(pos)


def _is_big(value: Any) -> bool:
    if value is None or isinstance(value, bool | int | float):
        return False
    if isinstance(value, str):
        return len(value) > BIG
    return len(json.dumps(value, separators=(",", ":"), default=str)) > BIG


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and bool(a == b)


class Tries:
    """Reads versions through `read`; writes new nodes for the batch headed by `head`
    (they become `head.body.nodes`)."""

    def __init__(self, read: NodeReader, head: str = ""):
        self._read = read
        self.head = head
        self.nodes: list[Node] = []
        self._mine = head + ":"

    def node(self, ref: str) -> Node:
        if self.head and ref.startswith(self._mine):
            return self.nodes[int(ref[len(self._mine) :])]
        return self._read(ref)

    def _new(self, node: Node) -> str:
        if not self.head:
            raise RuntimeError("a read-only scope version cannot be changed")
        self.nodes.append(node)
        return f"{self.head}:{len(self.nodes) - 1}"

    # -- reads ------------------------------------------------------------------------

    def get(self, root: Ref, name: str, default: Any = None) -> Any:
        found = self._find(root, name, _path(name), 0)
        return default if found is _MISSING else found

    def _find(self, ref: Ref, name: str, path: str, depth: int) -> Any:
        while ref is not None:
            node = self.node(ref)
            branch = node.get("b")
            if branch is not None:
                ref, depth = branch.get(path[depth]), depth + 1
                continue
            small = node.get("k")
            if small and name in small:
                return small[name]
            big = node.get("r")
            if big and name in big:
                return self.node(big[name])["v"]
            return _MISSING
        return _MISSING

    def apart(self, root: Ref, name: str) -> str | None:
        """The node holding `name`'s value when it is big enough to live apart."""
        ref, path, depth = root, _path(name), 0
        while ref is not None:
            node = self.node(ref)
            if "b" not in node:
                found: str | None = (node.get("r") or {}).get(name)
                return found
            ref, depth = node["b"].get(path[depth]), depth + 1
        return None

    def contains(self, root: Ref, name: str) -> bool:
        return self._find(root, name, _path(name), 0) is not _MISSING

    def items(self, root: Ref) -> Iterator[tuple[str, Any]]:
        for name, value, big in self._raw(root):
            yield name, (self.node(big)["v"] if big is not None else value)

    def _raw(self, ref: Ref) -> Iterator[tuple[str, Any, str | None]]:
        """(name, value, None) or (name, None, ref of its value node), every name."""
        if ref is None:
            return
        node = self.node(ref)
        if "b" in node:
            for slot in sorted(node["b"]):
                yield from self._raw(node["b"][slot])
            return
        for name, value in (node.get("k") or {}).items():
            yield name, value, None
        for name, big in (node.get("r") or {}).items():
            yield name, None, big

    # -- writes -----------------------------------------------------------------------

    def put(self, root: Ref, name: str, value: Any) -> str:
        return self._put(root, name, _path(name), 0, value, None)

    def update(self, root: Ref, patch: Mapping[str, Any], combine: Combine) -> Ref:
        """`root` with each key of `patch` set to `combine(old, new)` (old: the value
        there, or the missing marker `MISSING`)."""
        for name, value in patch.items():
            old = self.get(root, name, MISSING)
            root = self.put(root, name, combine(old, value))
        return root

    def _put(self, ref: Ref, name: str, path: str, depth: int, value: Any, big: str | None) -> str:
        if ref is None:
            return self._leaf({}, {}, name, value, big, depth)
        node = self.node(ref)
        branch = node.get("b")
        if branch is not None:
            slot = path[depth]
            child = branch.get(slot)
            made = self._put(child, name, path, depth + 1, value, big)
            return ref if made == child else self._new({"b": {**branch, slot: made}})
        small, bigs = node.get("k") or {}, node.get("r") or {}
        if big is None and name in small and _same(small[name], value):
            return ref
        if big is not None and bigs.get(name) == big:
            return ref
        small = {k: v for k, v in small.items() if k != name}
        bigs = {k: v for k, v in bigs.items() if k != name}
        return self._leaf(small, bigs, name, value, big, depth)

    def _leaf(
        self,
        small: dict[str, Any],
        bigs: dict[str, str],
        name: str,
        value: Any,
        big: str | None,
        depth: int,
    ) -> str:
        if big is None and _is_big(value):
            big = self._new({"v": value})
        if big is not None:
            bigs[name] = big
        else:
            small[name] = value
        return self._build(small, bigs, depth)

    def _build(self, small: dict[str, Any], bigs: dict[str, str], depth: int) -> str:
        if len(small) + len(bigs) <= BUCKET or depth >= 16:
            node: Node = {"k": small}
            if bigs:
                node["r"] = bigs
            return self._new(node)
        groups: dict[str, tuple[dict[str, Any], dict[str, str]]] = {}
        for name, value in small.items():
            groups.setdefault(_path(name)[depth], ({}, {}))[0][name] = value
        for name, ref in bigs.items():
            groups.setdefault(_path(name)[depth], ({}, {}))[1][name] = ref
        children = {slot: self._build(s, b, depth + 1) for slot, (s, b) in sorted(groups.items())}
        return self._new({"b": children})

    def merge(self, base: Ref, later: Ref, combine: Combine | None = None) -> Ref:
        """`base` with every name of `later` applied over it: `combine(old, new)` where
        both have it (None: `later` wins). Shared subtrees are skipped, so merging two
        versions of one ancestor costs what they changed, not their size."""
        return self._merge(base, later, combine, 0)

    def _merge(self, a: Ref, b: Ref, combine: Combine | None, depth: int) -> Ref:
        if b is None or a == b:
            return a
        if a is None:
            return b
        na, nb = self.node(a), self.node(b)
        if "b" in na and "b" in nb:
            slots, changed = {}, False
            for slot in sorted(set(na["b"]) | set(nb["b"])):
                old = na["b"].get(slot)
                made = self._merge(old, nb["b"].get(slot), combine, depth + 1)
                if made is not None:
                    slots[slot] = made
                changed = changed or made != old
            return self._new({"b": slots}) if changed else a
        if "b" not in nb:  # apply b's few names onto a
            return self._apply(a, self._raw(b), combine, depth, later_wins=True)
        return self._apply(b, self._raw(a), combine, depth, later_wins=False)

    def _apply(
        self,
        onto: str,
        entries: Iterator[tuple[str, Any, str | None]],
        combine: Combine | None,
        depth: int,
        later_wins: bool,
    ) -> str:
        for name, value, big in list(entries):
            path = _path(name)
            there = self._find(onto, name, path, depth)
            if there is _MISSING:
                onto = self._put(onto, name, path, depth, value, big)
                continue
            if combine is None and later_wins:
                onto = self._put(onto, name, path, depth, value, big)
                continue
            if combine is None:  # `onto` is the later version: it wins as it is
                continue
            mine = self.node(big)["v"] if big is not None else value
            old, new = (there, mine) if later_wins else (mine, there)
            onto = self._put(onto, name, path, depth, combine(old, new), None)
        return onto


MISSING: Any = _MISSING


class CtxScope(Mapping[str, Any]):
    """`ctx` as templates see it: the workload, under the version's values, under an
    overlay of this block's own `set`; each key read (and merged) on first access."""

    def __init__(
        self,
        tries: Tries,
        root: Ref,
        workload: Mapping[str, Any],
        overlay: Mapping[str, Any] | None = None,
        merge: Combine | None = None,
    ):
        self._tries = tries
        self.root = root
        self._workload = workload
        self._overlay = overlay or {}
        self._merge = merge or _replace
        self._seen: dict[str, Any] = {}

    def __getitem__(self, key: str) -> Any:
        if key in self._seen:
            return self._seen[key]
        value: Any = MISSING
        for layer in (
            self._workload.get(key, MISSING),
            self._tries.get(self.root, key, MISSING),
            self._overlay.get(key, MISSING),
        ):
            if layer is not MISSING:
                value = layer if value is MISSING else self._merge(value, layer)
        if value is MISSING:
            raise KeyError(key)
        self._seen[key] = value
        return value

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        try:
            self[key]
        except KeyError:
            return False
        return True

    def __iter__(self) -> Iterator[str]:
        names = dict.fromkeys(self._workload)
        names.update(dict.fromkeys(name for name, _, _ in self._tries._raw(self.root)))
        names.update(dict.fromkeys(self._overlay))
        return iter(names)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def patched(self, patch: Mapping[str, Any]) -> CtxScope:
        overlay = self._merge(dict(self._overlay), dict(patch)) if patch else self._overlay
        return CtxScope(self._tries, self.root, self._workload, overlay, self._merge)

    def to_dict(self) -> dict[str, Any]:
        return {key: self[key] for key in self}

    def __repr__(self) -> str:
        return f"CtxScope({self.root!r})"


def _replace(old: Any, new: Any) -> Any:
    return new
