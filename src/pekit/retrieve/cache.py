"""One matching gallery per namespace, kept between calls and rebuilt only after a write.

`Personalizer.recognize` used to re-read the whole namespace, part prototypes included, on
every call: 1.6 s at 10,000 concepts and ~105 KB of RAM per concept. A `GalleryCache`
reads a namespace once (`MemoryStore.matchable`: views, negatives, thresholds; no parts),
keeps the flattened `Gallery`, and rebuilds it only when the store's write counter
(`MemoryStore.generation`) moves, which any writer, in any process, bumps.

Part prototypes are ~97 % of a concept's bytes. A small namespace (at most ``eager``
concepts) keeps them all in RAM and matches exactly as a `Gallery.from_concepts` does.
A larger one keeps none: the pipeline verifies only the concepts that can win
(`RecognitionConfig.shortlist`, 32 of them) and fetches their prototypes from the store
(`MemoryStore.parts`) through a bounded LRU of float16 copies.

Example:
    >>> import numpy as np
    >>> from pekit.memory import SqliteMemory
    >>> from pekit.types import Concept
    >>> memory = SqliteMemory(":memory:")
    >>> cache = GalleryCache(memory)
    >>> _ = memory.add(Concept("Bo", views=np.eye(1, 8, dtype=np.float32)))
    >>> cache.get("default").gallery.names
    ['Bo']
    >>> cache.get("default") is cache.get("default")      # no write: the same object
    True
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pekit.errors import ConceptNotFoundError
from pekit.retrieve.match import Gallery
from pekit.types import Concept

__all__ = ["EAGER_CONCEPTS", "PART_CACHE_CONCEPTS", "GalleryCache", "NamespaceGallery"]

EAGER_CONCEPTS = 64          # up to this many concepts, all part prototypes stay in RAM
PART_CACHE_CONCEPTS = 2048   # part prototypes of this many concepts kept (float16) in a lazy namespace


class _PartLRU(OrderedDict):
    """A lazy namespace's LRU of part prototypes, shared by its successive entries. A write
    drops the changed ids (`GalleryCache._patch`) and records when (``dropped``, by
    ``epoch``): a fetch that began before then does not put the old parts back. The record
    is needed only while such a fetch runs: it is cleared whenever none is running
    (``fetching``), so a long-lived service that keeps changing concepts does not grow it."""

    def __init__(self) -> None:
        super().__init__()
        self.epoch = 0
        self.dropped: dict[int, int] = {}
        self.fetching = 0


@dataclass
class NamespaceGallery:
    """What matching needs of one namespace.

    Attributes:
        gallery: the concepts that ``select`` accepted (objects), flattened.
        others: the concepts it did not (persons, matched by face), as full `Concept`s.
        generation: the store's write counter the gallery was read at.
        count: number of concepts in the namespace.
        categories: the distinct categories of the gallery's concepts (detector labels).
    """

    gallery: Gallery
    others: list[Concept]
    generation: int
    count: int
    categories: list[str] = field(default_factory=list)
    stamps: dict[int, float] = field(default_factory=dict, repr=False)  # id -> updated (lazy namespaces)
    _parts: _PartLRU = field(default_factory=_PartLRU, repr=False)
    category_of: dict[int, str] = field(default_factory=dict, repr=False)  # id -> category (gallery concepts)


class GalleryCache:
    """Per-namespace `Gallery` of a store, invalidated by the store's write counter.

    Args:
        memory: a `MemoryStore`.
        select: which concepts go into the gallery (default all); the rest are `others`.
        eager: namespaces with at most this many concepts keep every part prototype in RAM.
        max_namespaces: namespaces kept (least recently used dropped first): a service
            serving many users holds only the active ones.
        part_cache: concepts whose part prototypes a lazy namespace keeps.

    Thread-safe: one cache may serve concurrent requests.
    """

    def __init__(self, memory: Any, *, select: Callable[[Concept], bool] | None = None,
                 eager: int = EAGER_CONCEPTS, max_namespaces: int = 64,
                 part_cache: int = PART_CACHE_CONCEPTS) -> None:
        self.memory = memory
        self.select = select
        self.eager = int(eager)
        self.max_namespaces = max(1, int(max_namespaces))
        self.part_cache = max(1, int(part_cache))
        self._entries: OrderedDict[str, NamespaceGallery] = OrderedDict()
        self._lock = threading.RLock()
        self._reading: dict[str, threading.Lock] = {}  # one read of a namespace at a time
        self.builds = 0  # how many times a namespace was read in full: for tests and benchmarks
        self.patches = 0  # how many times a large namespace was refreshed from its changes only

    def get(self, namespace: str = "default") -> NamespaceGallery:
        """The namespace's gallery, re-read only if the store changed since the last call.
        Threads that find it stale at once wait for one read instead of each reading it."""
        generation = self.memory.generation(namespace)
        entry = self._current(namespace, generation)
        if entry is not None:
            return entry
        with self._lock:
            reading = self._reading.setdefault(namespace, threading.Lock())
        with reading:
            generation = self.memory.generation(namespace)  # as of now: a write may have come while waiting
            entry = self._current(namespace, generation)  # another thread read it meanwhile
            if entry is not None:
                return entry
            built = self._build(namespace, generation)
            with self._lock:
                self._entries[namespace] = built
                self._entries.move_to_end(namespace)
                while len(self._entries) > self.max_namespaces:
                    self._reading.pop(self._entries.popitem(last=False)[0], None)
        return built

    def _current(self, namespace: str, generation: int) -> NamespaceGallery | None:
        """The kept entry of ``namespace`` if it was read at ``generation``."""
        with self._lock:
            entry = self._entries.get(namespace)
            if entry is not None and entry.generation == generation:
                self._entries.move_to_end(namespace)
                return entry
        return None

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def _build(self, namespace: str, generation: int) -> NamespaceGallery:
        with self._lock:
            old = self._entries.get(namespace)
        if old is not None and old.gallery.fetch is not None:
            patched = self._patch(namespace, generation, old)
            if patched is not None:
                return patched
        self.builds += 1
        count = self.memory.count(namespace)
        eager = count <= self.eager
        concepts = self.memory.concepts(namespace=namespace) if eager else \
            self.memory.matchable(namespace=namespace)
        chosen = [c for c in concepts if self.select is None or self.select(c)]
        others = [c for c in concepts if self.select is not None and not self.select(c)]
        categories = list(dict.fromkeys(c.category for c in chosen if _label(c.category)))
        entry = NamespaceGallery(Gallery.from_concepts([]), others, generation, len(concepts), categories,
                                 {} if eager else {c.id: c.updated for c in concepts},
                                 category_of={c.id: c.category for c in chosen})
        fetch = None if eager else self._fetcher(namespace, entry)
        entry.gallery = Gallery.from_concepts(chosen, fetch=fetch)
        return entry

    def _patch(self, namespace: str, generation: int, old: NamespaceGallery) -> NamespaceGallery | None:
        """Refresh a large namespace after a few writes without re-reading all of it: the
        listing (no vectors) says which concepts changed (``updated``) or went; only those
        are read. None when too much changed (a full read is then cheaper)."""
        listing: dict[int, tuple[str, float]] = self.memory.stamps(namespace=namespace)  # no vectors read
        now = {i: u for i, (_, u) in listing.items()}
        changed = [i for i, u in now.items() if old.stamps.get(i) != u]
        removed = {i for i in old.stamps if i not in now} | set(changed)
        if len(changed) + len(removed) > max(32, len(listing) // 20) or len(listing) <= self.eager:
            return None
        try:
            fresh = sorted((self.memory.get(listing[i][0], namespace=namespace) for i in changed), key=lambda c: c.id)
        except ConceptNotFoundError:  # forgotten or renamed since the listing: read it all
            return None
        if [c.id for c in fresh] != sorted(changed):  # a name taken by another concept since the listing
            return None
        chosen = [c for c in fresh if self.select is None or self.select(c)]
        others = [c for c in old.others if c.id not in removed] + \
            [c for c in fresh if self.select is not None and not self.select(c)]
        with self._lock:
            lru = old._parts
            lru.epoch += 1
            for i in removed:
                lru.pop(i, None)
                lru.dropped[i] = lru.epoch
        # a category no concept holds any more is no detector label any more
        category_of = {i: c for i, c in old.category_of.items() if i not in removed}
        category_of.update({c.id: c.category for c in chosen})
        categories = list(dict.fromkeys(c for _, c in sorted(category_of.items()) if _label(c)))
        entry = NamespaceGallery(old.gallery.replaced(removed, chosen), others, generation, len(listing),
                                 categories, now, lru, category_of)
        self.patches += 1
        return entry

    def _fetcher(self, namespace: str, entry: NamespaceGallery) -> Callable[[Sequence[int]], dict[int, np.ndarray]]:
        """``ids -> {id: parts}`` through the entry's LRU of float16 copies."""
        lru = entry._parts
        lock = self._lock  # the one lock of the cache: `_patch` trims the same LRU

        def fetch(ids: Sequence[int]) -> dict[int, np.ndarray]:
            out: dict[int, np.ndarray] = {}
            with lock:
                began = lru.epoch
                missing = []
                for i in ids:
                    if i in lru:
                        lru.move_to_end(i)
                        out[i] = lru[i]
                    else:
                        missing.append(i)
                if not missing:
                    return {i: p.astype(np.float32) for i, p in out.items() if p.size}
                lru.fetching += 1
            try:
                got = self.memory.parts(missing, namespace=namespace)
                with lock:
                    for i in missing:  # no parts stored: remember that too
                        out[i] = got[i].astype(np.float16) if i in got else np.zeros((0, 0), np.float16)
                        if lru.dropped.get(i, -1) <= began:  # not changed by a write since this fetch began
                            lru[i] = out[i]
                    while len(lru) > self.part_cache:
                        lru.popitem(last=False)
            finally:
                with lock:
                    lru.fetching -= 1
                    if not lru.fetching:  # no fetch older than a recorded write is left
                        lru.dropped.clear()
            return {i: p.astype(np.float32) for i, p in out.items() if p.size}

        return fetch


def _label(category: str) -> bool:
    """Whether a concept's category can be a detector's label: a word in it (``"..."`` or
    ``"!!"`` names nothing, and a detector refuses an empty phrase)."""
    return any(ch.isalnum() for ch in category or "")
