"""Scope versions as persistent hash tries: reads, writes that share, merges, ctx."""

from __future__ import annotations

import json
from typing import Any

import pytest

from noetl_core.engine.scope import merge_value
from noetl_core.engine.versions import BIG, BUCKET, CtxScope, Tries, split_ref

pytestmark = pytest.mark.unit


class Store:
    """Nodes by the entry that carries them, as the event log would hold them."""

    def __init__(self) -> None:
        self.entries: dict[str, list[dict[str, Any]]] = {}
        self.reads = 0

    def read(self, ref: str) -> dict[str, Any]:
        self.reads += 1
        entry_id, pos = split_ref(ref)
        return self.entries[entry_id][pos]

    def batch(self, name: str) -> Tries:
        return Tries(self.read, name)

    def keep(self, tries: Tries) -> int:
        """Store a batch's nodes; the bytes they take."""
        self.entries[tries.head] = tries.nodes
        return len(json.dumps(tries.nodes))


def chain(store: Store, n: int) -> tuple[list[str | None], list[int]]:
    """A results version per step of an n-step chain; the bytes each step wrote."""
    roots: list[str | None] = [None]
    written = []
    for i in range(n):
        tries = store.batch(f"do{i}")
        roots.append(tries.put(roots[-1], f"s{i}", f"do{i}"))
        written.append(store.keep(tries))
    return roots, written


def test_every_version_reads_exactly_its_own_names() -> None:
    store = Store()
    roots, _ = chain(store, 300)
    reader = Tries(store.read)
    for k in (0, 1, 9, 150, 300):
        assert dict(reader.items(roots[k])) == {f"s{i}": f"do{i}" for i in range(k)}
    assert reader.get(roots[150], "s149") == "do149"
    assert reader.get(roots[150], "s150") is None
    assert not reader.contains(roots[150], "s200")


def test_a_new_version_writes_only_the_nodes_on_its_path() -> None:
    store = Store()
    _, written = chain(store, 5000)
    # bytes per step grow with the depth of the trie, not with the number of names
    early = sum(written[90:100]) / 10
    late = sum(written[4990:5000]) / 10
    assert late < 3 * early
    assert max(written) < 2500
    assert len(store.entries["do4999"]) <= 6


def test_leaves_split_and_stay_canonical() -> None:
    store = Store()
    forward, _ = chain(store, BUCKET * 20)
    tries = store.batch("backward")
    root = None
    for i in reversed(range(BUCKET * 20)):
        root = tries.put(root, f"s{i}", f"do{i}")
    store.keep(tries)

    def shape(ref: str | None) -> Any:
        node = store.read(ref) if ref else None
        if node is None:
            return None
        if "b" in node:
            return {slot: shape(child) for slot, child in node["b"].items()}
        return sorted(node["k"])

    assert shape(root) == shape(forward[-1])


def test_putting_an_equal_value_changes_nothing() -> None:
    store = Store()
    roots, _ = chain(store, 40)
    tries = store.batch("same")
    assert tries.put(roots[-1], "s3", "do3") == roots[-1]
    assert tries.nodes == []


def test_big_values_live_in_their_own_node_and_are_never_copied() -> None:
    store = Store()
    tries = store.batch("e0")
    big = "x" * (BIG * 40)
    root = tries.put(None, "big", big)
    root = tries.put(root, "n", 0)
    store.keep(tries)
    for i in range(1, 30):
        tries = store.batch(f"e{i}")
        root = tries.put(root, "n", i)
        assert store.keep(tries) < 300  # the big value is referenced, not rewritten
    reader = Tries(store.read)
    assert reader.get(root, "big") == big and reader.get(root, "n") == 29


def test_merge_applies_the_later_version_over_the_base() -> None:
    store = Store()
    roots, _ = chain(store, 100)
    base = roots[-1]
    left, right = store.batch("left"), store.batch("right")
    a = left.put(left.put(base, "a", "da"), "shared", "left")
    b = right.put(right.put(base, "b", "db"), "shared", "right")
    store.keep(left)
    store.keep(right)
    joined = store.batch("join")
    merged = joined.merge(a, b)
    store.keep(joined)
    got = dict(Tries(store.read).items(merged))
    assert got["a"] == "da" and got["b"] == "db" and got["shared"] == "right"
    assert len(got) == 103
    assert len(joined.nodes) <= 8  # shared subtrees are skipped
    assert joined.merge(a, None) == a and joined.merge(None, b) == b and joined.merge(a, a) == a


def test_merge_with_combine_merges_values_deeply() -> None:
    store = Store()
    t = store.batch("t")
    a = t.put(t.put(None, "m", {"p": 1}), "x", 1)
    b = t.put(t.put(None, "m", {"q": 2}), "x", 2)
    merged = t.merge(a, b, merge_value)
    assert dict(t.items(merged)) == {"m": {"p": 1, "q": 2}, "x": 2}


@pytest.mark.parametrize("sizes", [(3, 200), (200, 3), (150, 150)])
def test_merge_of_a_leaf_and_a_branch_either_way(sizes: tuple[int, int]) -> None:
    store = Store()
    t = store.batch("t")
    a = b = None
    for i in range(sizes[0]):
        a = t.put(a, f"k{i}", ("a", i))
    for i in range(sizes[1]):
        b = t.put(b, f"k{i * 2}", ("b", i))
    got = dict(t.items(t.merge(a, b)))
    expected = {f"k{i}": ["a", i] for i in range(sizes[0])}
    expected.update({f"k{i * 2}": ["b", i] for i in range(sizes[1])})
    assert {k: list(v) for k, v in got.items()} == expected


def test_a_read_only_version_cannot_be_changed() -> None:
    with pytest.raises(RuntimeError, match="read-only"):
        Tries(Store().read).put(None, "a", 1)


def test_ctx_scope_layers_workload_version_and_overlay() -> None:
    store = Store()
    t = store.batch("t")
    root = t.put(t.put(None, "page", {"next": 2}), "cursor", "c1")
    store.keep(t)
    ctx = CtxScope(Tries(store.read), root, {"page": {"size": 10}, "api": "u"}, merge=merge_value)
    assert ctx["page"] == {"size": 10, "next": 2}
    assert ctx["api"] == "u" and ctx["cursor"] == "c1"
    assert "missing" not in ctx
    with pytest.raises(KeyError):
        ctx["missing"]
    later = ctx.patched({"page": {"next": 3}, "new": True})
    assert later["page"] == {"size": 10, "next": 3} and later["new"] is True
    assert ctx["page"]["next"] == 2  # the earlier scope is unchanged
    assert later.to_dict() == {
        "page": {"size": 10, "next": 3},
        "api": "u",
        "cursor": "c1",
        "new": True,
    }
