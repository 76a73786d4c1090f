"""`GalleryCache`: one gallery per namespace, rebuilt only after a write; lazy parts at scale."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from pekit.memory import SqliteMemory
from pekit.retrieve.cache import GalleryCache
from pekit.types import Concept

D = 16


def unit(k: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(k, D)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def make(name: str, seed: int, namespace: str = "default", parts: bool = True) -> Concept:
    return Concept(name, unit(2, seed), namespace=namespace, backbone="toy",
                   parts=unit(3, seed + 1000) if parts else None)


@pytest.fixture
def memory(tmp_path: Path) -> SqliteMemory:
    with SqliteMemory(tmp_path / "m.db") as m:
        yield m


def test_the_gallery_is_read_once_and_rebuilt_after_each_write(memory: SqliteMemory) -> None:
    cache = GalleryCache(memory)
    memory.add(make("Bo", 1))
    first = cache.get()
    assert cache.get() is first and cache.builds == 1
    memory.add(make("Rex", 2))
    second = cache.get()
    assert second is not first and second.gallery.names == ["Bo", "Rex"] and cache.builds == 2
    memory.update(dataclasses.replace(memory.get("Rex"), threshold=0.9))
    assert cache.get().gallery.thresholds[1] == pytest.approx(0.9)
    memory.remove("Bo")
    assert cache.get().gallery.names == ["Rex"] and cache.builds == 4


def test_writes_to_another_namespace_keep_the_cache(memory: SqliteMemory) -> None:
    cache = GalleryCache(memory)
    memory.add(make("Bo", 1))
    entry = cache.get()
    memory.add(make("Mia", 2, namespace="alice"))
    assert cache.get() is entry and cache.get("alice").gallery.names == ["Mia"]


def test_a_write_by_another_connection_invalidates(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    with SqliteMemory(path) as reader, SqliteMemory(path) as writer:
        cache = GalleryCache(reader)
        writer.add(make("Bo", 1))
        assert cache.get().gallery.names == ["Bo"]
        writer.add(make("Rex", 2))  # as another worker process would
        assert cache.get().gallery.names == ["Bo", "Rex"]


def test_select_splits_objects_from_the_rest(memory: SqliteMemory) -> None:
    memory.add(make("Bo", 1))
    memory.add(dataclasses.replace(make("Lin", 2), meta={"kind": "person"}))
    entry = GalleryCache(memory, select=lambda c: c.meta.get("kind") != "person").get()
    assert entry.gallery.names == ["Bo"] and [c.name for c in entry.others] == ["Lin"]


def test_a_large_namespace_keeps_no_parts_and_fetches_them_per_subset(memory: SqliteMemory) -> None:
    for i in range(6):
        memory.add(make(f"c{i}", i, parts=i != 3))
    memory.add(make("other", 99, namespace="bob"))
    cache = GalleryCache(memory, eager=4, part_cache=2)
    g = cache.get().gallery
    assert g.fetch is not None and all(p is None for p in g.parts)
    sub = g.subset([1, 3, 5])
    assert sub.fetch is None and sub.names == ["c1", "c3", "c5"]
    assert np.allclose(sub.parts[0], memory.get("c1").parts, atol=2e-3)  # float16 copies
    assert sub.parts[1] is None  # stored without parts
    assert np.allclose(sub.parts[2], memory.get("c5").parts, atol=2e-3)
    again = g.subset([5, 1])  # served from the LRU (bounded at 2 concepts): same values
    assert np.array_equal(again.parts[0], sub.parts[2])
    # the full part matrix still works on a lazy gallery (every concept fetched)
    flat, offsets = g.parts_matrix()
    assert flat.shape == (15, D) and offsets.tolist() == [0, 3, 6, 9, 9, 12, 15]


def test_eager_namespace_matches_a_gallery_built_from_concepts(memory: SqliteMemory) -> None:
    for i in range(3):
        memory.add(make(f"c{i}", i))
    g = GalleryCache(memory).get().gallery
    assert g.fetch is None and all(np.array_equal(p, memory.get(f"c{i}").parts) for i, p in enumerate(g.parts))


def test_namespaces_beyond_the_bound_are_dropped_least_recent_first(memory: SqliteMemory) -> None:
    for ns in "abc":
        memory.add(make("Bo", ord(ns), namespace=ns))
    cache = GalleryCache(memory, max_namespaces=2)
    a = cache.get("a")
    cache.get("b")
    assert cache.get("a") is a  # a is now the most recent
    cache.get("c")                # drops b
    builds = cache.builds
    assert cache.get("a") is a and cache.builds == builds
    cache.get("b")
    assert cache.builds == builds + 1


def test_a_large_namespace_is_refreshed_from_its_changes_only(memory: SqliteMemory) -> None:
    memory.add_many([make(f"c{i}", i) for i in range(40)])
    cache = GalleryCache(memory, eager=4)
    first = cache.get().gallery
    assert first.subset([3]).parts[0] is not None  # c3's parts are fetched, so now cached
    memory.add(make("new", 100))
    memory.update(dataclasses.replace(memory.get("c3"), threshold=0.7, views=unit(3, 55), parts=unit(4, 56)))
    memory.remove("c5")
    entry = cache.get()
    assert cache.builds == 1 and cache.patches == 1  # no full re-read
    g = entry.gallery
    want = [f"c{i}" for i in range(40) if i not in (3, 5)] + ["c3", "new"]
    assert g.names == want and g.fetch is first.fetch
    k = g.names.index("c3")
    assert g.thresholds[k] == pytest.approx(0.7) and np.allclose(g.views[g.owner == k], unit(3, 55), atol=1e-6)
    assert np.allclose(g.views[g.owner == g.names.index("new")], memory.get("new").views)
    # parts still come from the store, and a changed concept's cached parts are not served again
    assert np.allclose(g.subset([k]).parts[0], unit(4, 56), atol=2e-3)
    # the patched gallery equals a fresh full read, concept by concept
    full = GalleryCache(memory, eager=4).get().gallery
    for name in full.names:
        a, b = full.names.index(name), g.names.index(name)
        assert np.array_equal(full.views[full.owner == a], g.views[g.owner == b])
        assert np.allclose(full.subset([a]).parts[0], g.subset([b]).parts[0], atol=2e-3)
    # many changes at once: a full read again
    memory.add_many([make(f"d{i}", 200 + i) for i in range(40)])
    assert cache.get().gallery.names[-1] == "d39" and cache.builds == 2


def test_a_large_namespace_drops_a_category_no_concept_holds_any_more(memory: SqliteMemory) -> None:
    """The detector is asked for the categories of the namespace's concepts: after a patch
    they are those a full read gives, not every category ever seen."""
    memory.add_many([dataclasses.replace(make(f"c{i}", i), category="toy") for i in range(40)])
    cache = GalleryCache(memory, eager=4)
    assert cache.get().categories == ["toy"]
    memory.update(dataclasses.replace(memory.get("c3"), category="dog"))
    assert cache.get().categories == ["toy", "dog"]
    memory.update(dataclasses.replace(memory.get("c3"), category="puppy"))
    memory.remove("c7")
    entry = cache.get()
    assert cache.builds == 1 and cache.patches == 2
    assert entry.categories == GalleryCache(memory, eager=4).get().categories == ["toy", "puppy"]


@pytest.mark.parametrize("eager", [100, 4])
def test_a_category_with_no_word_in_it_is_no_detector_label(memory: SqliteMemory, eager: int) -> None:
    """``update --category "..."`` must not make every recognize of a detector preset fail on
    the detector's "every label must be a non-empty string"."""
    memory.add_many([dataclasses.replace(make(f"c{i}", i), category="toy") for i in range(6)])
    memory.update(dataclasses.replace(memory.get("c1"), category="..."))
    memory.update(dataclasses.replace(memory.get("c2"), category="!!"))
    cache = GalleryCache(memory, eager=eager)
    assert cache.get().categories == ["toy"]
    memory.update(dataclasses.replace(memory.get("c3"), category=" . "))
    assert cache.get().categories == ["toy"]


# ---- concurrent use (from a thread-safety review) --------------------------------------------------
def test_a_concept_forgotten_between_the_listing_and_its_read_is_not_an_error(memory: SqliteMemory) -> None:
    """A write lands between `_patch`'s listing and its read of a changed concept: a full
    read instead of `ConceptNotFoundError` out of `recognize`."""
    memory.add_many([make(f"c{i}", i) for i in range(40)])
    cache = GalleryCache(memory, eager=4)
    cache.get()
    memory.update(dataclasses.replace(memory.get("c3"), context="changed"))
    listing = memory.stamps

    def stamps_then_forget(**kwargs: object) -> dict:
        out = listing(**kwargs)
        memory.remove("c3")  # another thread's forget, just after the listing
        return out

    memory.stamps = stamps_then_forget  # type: ignore[method-assign]
    entry = cache.get()
    del memory.stamps
    assert "c3" not in entry.gallery.names and len(entry.gallery.names) == 39 and cache.builds == 2
    assert cache.get() is not entry  # read at the generation before the forget: read again, patched
    assert cache.get().gallery.names == entry.gallery.names


def test_a_fetch_begun_before_a_write_does_not_put_the_old_parts_back(memory: SqliteMemory) -> None:
    memory.add_many([make(f"c{i}", i) for i in range(40)])
    cache = GalleryCache(memory, eager=4)
    old = cache.get().gallery
    k = old.names.index("c3")
    read_parts = memory.parts
    entries = []

    def parts_then_write(ids: list[int], **kwargs: object) -> dict:
        got = read_parts(ids, **kwargs)  # the old parts, read by a recognize on the old gallery...
        memory.update(dataclasses.replace(memory.get("c3"), parts=unit(4, 77)))  # ...while c3 changes
        entries.append(cache.get())  # and another call picks up the change
        return got

    memory.parts = parts_then_write  # type: ignore[method-assign]
    assert np.allclose(old.subset([k]).parts[0], unit(3, 1003), atol=2e-3)  # the old gallery: old parts
    del memory.parts
    new = entries[0].gallery
    assert cache.patches == 1 and new.fetch is old.fetch  # one LRU, shared
    assert np.allclose(new.subset([new.names.index("c3")]).parts[0], unit(4, 77), atol=2e-3)


def test_a_long_lived_cache_keeps_no_record_of_old_writes(memory: SqliteMemory) -> None:
    """The record of changed concepts guards only fetches still running: a service that keeps
    updating concepts does not grow it, and a fetch after the writes caches the new parts."""
    memory.add_many([make(f"c{i}", i) for i in range(40)])
    cache = GalleryCache(memory, eager=4)
    cache.get().gallery.subset([0, 1])
    for round_ in range(20):
        memory.update(dataclasses.replace(memory.get(f"c{round_}"), parts=unit(4, 500 + round_)))
        g = cache.get().gallery
        assert np.allclose(g.subset([g.names.index(f"c{round_}")]).parts[0], unit(4, 500 + round_), atol=2e-3)
    lru = cache.get()._parts
    assert cache.patches == 20 and lru.dropped == {} and lru.fetching == 0
    assert memory.get("c19").id in lru  # fetched after its write: cached


def test_threads_that_find_the_gallery_stale_wait_for_one_read(memory: SqliteMemory) -> None:
    import threading
    import time

    for i in range(6):
        memory.add(make(f"c{i}", i))
    cache = GalleryCache(memory)
    cache.get()
    memory.add(make("new", 100))
    read = memory.concepts

    def slow_concepts(**kwargs: object) -> list:
        time.sleep(0.3)  # a large namespace: the read takes a while
        return read(**kwargs)

    memory.concepts = slow_concepts  # type: ignore[method-assign]
    got: list = []
    threads = [threading.Thread(target=lambda: got.append(cache.get())) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert cache.builds == 2  # the first read and one after the write, not one per thread
    assert len({id(e) for e in got}) == 1 and got[0].gallery.names[-1] == "new"
