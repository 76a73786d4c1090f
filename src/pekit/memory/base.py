"""The memory protocol: where concepts (names, context, view embeddings) live."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from pekit.types import Concept

__all__ = ["ConceptSummary", "MemoryStore"]


@dataclass(frozen=True)
class ConceptSummary:
    """What listing a concept needs, without its vectors (see `MemoryStore.summaries`).

    Attributes:
        id: store-assigned id.
        namespace: owner of the concept.
        name: what the user calls it ("Bo").
        category: its class ("dog"); may be empty.
        context: text for the LVLM; may be empty.
        views: number of stored view embeddings.
        threshold: calibrated threshold, or None for the global one.
        created: creation time, seconds since the epoch.
        updated: time of the last write, seconds since the epoch.
        kind: ``"object"`` or ``"person"`` (recognized by face; `pekit.faces`).
        corrections: how many corrections (`Personalizer.correct`: "that was not it") the
            concept holds; `correct --undo` takes back the last.
    """

    id: int
    namespace: str
    name: str
    category: str
    context: str
    views: int
    threshold: float | None
    created: float
    updated: float
    kind: str = "object"
    corrections: int = 0


@runtime_checkable
class MemoryStore(Protocol):
    """A concept store. Implementations: `SqliteMemory` (embedded file, default) and
    `PgvectorMemory` (PostgreSQL + pgvector, ``postgresql://`` URIs), tested by one
    conformance suite (``tests/memory/test_conformance.py``).

    Every method takes ``namespace`` (the user / owner); names are unique per namespace.
    All vectors in one store come from one backbone (``backbone`` fingerprint): adding a
    concept from another backbone raises `BackboneMismatchError`.
    """

    uri: str

    @property
    def backbone(self) -> str | None:
        """Fingerprint of the backbone whose vectors the store holds (None while empty)."""
        ...

    def add(self, concept: Concept, *, replace: bool = False) -> Concept:
        """Insert (or, with ``replace``, overwrite) a concept; returns it with ``id`` set.

        Raises `DuplicateConceptError` if the name exists and ``replace`` is False.
        """
        ...

    def get(self, name: str, *, namespace: str = "default") -> Concept:
        """The concept called ``name`` (else the one whose name equals it ignoring case, as `add`
        compares names); `ConceptNotFoundError` (listing known names) if absent."""
        ...

    def concepts(self, *, namespace: str = "default") -> list[Concept]:
        """All concepts of a namespace, ordered by id."""
        ...

    def summaries(self, *, namespace: str = "default") -> list[ConceptSummary]:
        """Names, categories, context and view counts of a namespace, ordered by id.

        Reads no vectors: listing 10,000 concepts costs milliseconds, not a gigabyte.
        """
        ...

    def stamps(self, *, namespace: str = "default") -> dict[int, tuple[str, float]]:
        """``id -> (name, updated)`` of every concept of a namespace, reading no vectors: what a
        cache needs to see which concepts changed since it read them."""
        ...

    def generation(self, namespace: str = "default") -> int:
        """A counter of writes to ``namespace``: it changes whenever a concept of the
        namespace is added, updated or removed, by this object or by any other connection
        or process. Caches of a namespace (the matching gallery) key on it; reading it is
        one small query. Writes to other namespaces leave it unchanged.
        """
        ...

    def matchable(self, *, namespace: str = "default") -> list[Concept]:
        """All concepts of a namespace as `concepts` returns them, but with ``parts=None``:
        what matching keeps in RAM (views, negatives, thresholds, meta). Part prototypes,
        ~97 % of a concept's bytes, are fetched for the few concepts that can win (`parts`).
        """
        ...

    def parts(self, ids: Sequence[int], *, namespace: str = "default") -> dict[int, np.ndarray]:
        """Part prototypes ``(m, d) float32`` of the concepts with these ids, keyed by id.

        Only concepts of ``namespace`` are returned (an id of another namespace, or an
        unknown id, is silently absent), so a caller can never read another owner's data.
        Concepts without parts are absent too.
        """
        ...

    def search(self, queries: Any, *, namespace: str = "default", k: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` stored views most similar (cosine) to each query, within ``namespace`` only.

        ``queries`` is ``(q, d)`` (or one ``(d,)`` vector). Returns ``(ids (q, k) int64,
        scores (q, k) float32)``: the concept id of each found view (a concept with several
        views may appear more than once) and its cosine similarity, best first, padded with
        id -1 and score -inf when the namespace holds fewer than ``k`` views.
        """
        ...

    def remove(self, name: str, *, namespace: str = "default") -> str:
        """Delete a concept (its name compared ignoring case); returns its name as stored.
        `ConceptNotFoundError` if absent."""
        ...

    def update(self, concept: Concept) -> Concept:
        """Write back changed fields (threshold, context, views...) of a stored concept."""
        ...

    def modify(self, name: str, change: Callable[[Concept], Concept], *, namespace: str = "default",
               drop_images: bool = False) -> Concept:
        """Read a concept, write back ``change(concept)``, in one write transaction (no lost update
        when two writers change the same concept); nothing is written if ``change`` raises.
        ``drop_images``: its stored photos are deleted too (a concept introduced anew)."""
        ...

    def count(self, namespace: str | None = None) -> int:
        """Number of concepts (in one namespace, or in all)."""
        ...

    def namespaces(self) -> list[str]: ...

    def close(self) -> None: ...

    def __enter__(self) -> MemoryStore: ...

    def __exit__(self, *exc: object) -> None: ...
