"""What both memory stores do alike, whatever their database: the checks made before a
concept is written and the errors they raise, the meta reads, the per-namespace caches,
the way views and negatives share one table, and the lifecycle.

`StoreBase` is the base of `SqliteMemory` and `PgvectorMemory`; each keeps its own SQL and
gives this class its database (``_db``: ``transaction``, ``read_only``, ``close``) and three
queries (`StoreBase._names`, `StoreBase._same_name`, `StoreBase._check_backbone`).

Example:
    >>> import numpy as np
    >>> views, negatives = np.eye(2, 4), np.eye(1, 4, 3)
    >>> [idx for idx, _ in numbered(views, negatives)]
    [0, 1, -1]
"""

from __future__ import annotations

import dataclasses
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from typing import Any, ClassVar, Protocol, TypeVar

import numpy as np

from pekit.errors import BackboneMismatchError, ConceptNotFoundError, DuplicateConceptError, InvalidInputError
from pekit.memory._codec import (
    check_new_name,
    check_storable,
    check_threshold,
    clean_name,
    clean_namespace,
    dump_meta,
    meta_records_problem,
    not_found_message,
    unit_rows,
)
from pekit.memory._fingerprints import same_backbone
from pekit.types import Concept

__all__ = ["UNSEEN", "Row", "StoreBase", "cached", "numbered", "read_meta", "split_views"]

Row = tuple[int, float, str]  # ``(id, created, stored name)`` of a stored concept
UNSEEN: Row = (-1, 0.0, "")  # "not looked up yet" (None: looked up, and no such concept)

_S = TypeVar("_S", bound="StoreBase")
_T = TypeVar("_T")


class _Database(Protocol):
    label: str
    read_only: bool

    def transaction(self, action: str, *, write: bool) -> AbstractContextManager[Any]: ...

    def close(self) -> None: ...


def _show(backbone: str) -> str:
    return repr(backbone) if backbone else "'' (no fingerprint)"


def cached(cache: dict[str, tuple[int, _T]], namespace: str, generation: int, compute: Callable[[], _T]) -> _T:
    """``compute()`` for ``namespace``, kept in ``cache`` until its write counter (``generation``) moves.

    >>> cache: dict = {}
    >>> cached(cache, "alice", 3, lambda: "fetched"), cached(cache, "alice", 3, lambda: "again")
    ('fetched', 'fetched')
    """
    known = cache.get(namespace)
    if known is None or known[0] != generation:
        known = cache[namespace] = (generation, compute())
    return known[1]


def numbered(views: np.ndarray, negatives: np.ndarray | None) -> list[tuple[int, np.ndarray]]:
    """``(idx, vector)`` rows as the ``views`` table keeps them: views at 0, 1, ...; negatives at -1, -2, ..."""
    return [*enumerate(views), *((-1 - i, v) for i, v in enumerate([] if negatives is None else negatives))]


def split_views(rows: Iterable[tuple[int, int, _T]]) -> tuple[dict[int, list[_T]], dict[int, list[_T]]]:
    """Inverse of `numbered`: ``(concept id, idx, vector)`` rows ordered by id and idx -> ``(views,
    negatives)``, each keyed by concept id and in the order they were given to the store."""
    views: dict[int, list[_T]] = {}
    negatives: dict[int, list[_T]] = {}
    for cid, idx, vector in rows:
        (views if idx >= 0 else negatives).setdefault(cid, []).append(vector)
    for stored in negatives.values():
        stored.reverse()  # stored at -n ... -1
    return views, negatives


def read_meta(conn: Any) -> dict[str, str]:
    """The store's ``meta`` table (``backbone``, ``dim``...) as a dict: one query, the same SQL in
    both stores (a SQLite connection or a psycopg cursor)."""
    return dict(conn.execute("SELECT key, value FROM meta").fetchall())


class StoreBase(ABC):
    """The parts of a `MemoryStore` that do not depend on the database (see the module)."""

    #: what messages call the store: ``"memory file"`` (SQLite) or ``"memory"`` (a server)
    _called: ClassVar[str]

    def __init__(self, db: _Database, *, store_images: bool, skip_damaged: bool) -> None:
        self._db = db
        self.uri = db.label
        self.store_images = bool(store_images)
        self.skip_damaged = bool(skip_damaged)
        # search: namespace -> (generation, (concept id of each view, views))
        self._views: dict[str, tuple[int, tuple[np.ndarray, np.ndarray]]] = {}

    # ---- what each store answers with its own SQL ------------------------------------
    @abstractmethod
    def _names(self, conn: Any, namespace: str) -> list[str]:
        """Names of ``namespace``'s concepts, ordered by id."""

    @abstractmethod
    def _same_name(self, conn: Any, namespace: str, name: str, exclude: int = -1) -> Row | None:
        """``(id, created, stored name)`` of the concept whose name equals ``name`` ignoring case."""

    @abstractmethod
    def _check_backbone(self, conn: Any, concept: Concept) -> None:
        """Record the backbone on the first add (or into an empty store); refuse another one."""

    # ---- reads -----------------------------------------------------------------------
    @property
    def read_only(self) -> bool:
        """True when opened with ``read_only=True`` (or, for a SQLite file, ``mode=ro``)."""
        return self._db.read_only

    @property
    def backbone(self) -> str | None:
        """Fingerprint of the backbone whose vectors the store holds (None while empty)."""
        with self._db.transaction("read the backbone", write=False) as conn:
            return read_meta(conn).get("backbone")

    @property
    def dim(self) -> int | None:
        """Width ``d`` of the stored vectors (None while empty)."""
        with self._db.transaction("read the dimension", write=False) as conn:
            value = read_meta(conn).get("dim")
        return None if value is None else int(value)

    def names(self, *, namespace: str = "default") -> list[str]:
        """Names of a namespace's concepts, ordered by id (reads no vectors)."""
        namespace = clean_namespace(namespace)
        with self._db.transaction("list names", write=False) as conn:
            return self._names(conn, namespace)

    def namespaces(self) -> list[str]:
        """Namespaces holding at least one concept, sorted."""
        with self._db.transaction("list namespaces", write=False) as conn:
            return [r[0] for r in conn.execute("SELECT DISTINCT namespace FROM concepts ORDER BY namespace")]

    def _not_found(self, conn: Any, namespace: str, name: str) -> ConceptNotFoundError:
        return ConceptNotFoundError(not_found_message(name, namespace, self._names(conn, namespace)))

    # ---- checks before a write -------------------------------------------------------
    @staticmethod
    def _key(name: str, namespace: str) -> tuple[str, str]:
        return clean_name(name), clean_namespace(namespace)

    @classmethod
    def _prepared(cls, concept: Concept) -> Concept:
        """Validated copy: clean name/namespace, unit-norm float32 vectors, checked fields."""
        name, namespace = cls._key(concept.name, concept.namespace)
        meta = json.loads(dump_meta(concept.meta))
        problem = meta_records_problem(meta)
        if problem:  # read back, it would be a damaged concept
            raise InvalidInputError(f"concept meta: {problem}; pekit reads that record back, so it keeps its shape")
        views = unit_rows(concept.views, what="views")
        d = views.shape[1]
        parts = None if concept.parts is None else unit_rows(concept.parts, what="parts", dim=d)
        negatives = None if concept.negatives is None else unit_rows(concept.negatives, what="negatives", dim=d)
        return dataclasses.replace(
            concept, name=name, namespace=namespace, views=views, parts=parts, negatives=negatives,
            threshold=check_threshold(concept.threshold), meta=meta,
            backbone=check_storable(concept.backbone or "", "backbone fingerprint"),
            category=check_storable(concept.category, "category"), context=check_storable(concept.context, "context"),
        )

    @classmethod
    def _changed(cls, stored: Concept, change: Callable[[Concept], Concept]) -> Concept:
        """``change(stored)`` prepared for writing over ``stored``: same id, same namespace."""
        return cls._prepared(dataclasses.replace(change(stored), id=stored.id, namespace=stored.namespace))

    def _refuse_other_space(self, concept: Concept, backbone: str, dim: str, *, dim_differs: bool) -> None:
        """`BackboneMismatchError` when ``concept`` was embedded by another backbone than the stored
        ``backbone``; `InvalidInputError` when its views' width differs from the stored ``dim``
        (``dim_differs``: each store compares the width as it records it)."""
        if not same_backbone(concept.backbone, backbone):
            raise BackboneMismatchError(
                f"{self._called} {self.uri} holds vectors from backbone {_show(backbone)}, but concept "
                f"{concept.name!r} was embedded with {_show(concept.backbone)}; vectors from different "
                f"backbones cannot be compared. Use a different {self._called} for this backbone, or "
                f"re-introduce {concept.name!r} with backbone {_show(backbone)}"
            )
        if dim_differs:
            raise InvalidInputError(
                f"views of {concept.name!r} have {concept.dim} dimensions but {self._called} {self.uri} holds "
                f"{dim}-dimensional vectors from the same backbone; check how they were computed"
            )

    def _check_add(self, conn: Any, c: Concept, replace: bool, found: Row | None = UNSEEN) -> Row | None:
        """The checks of adding prepared ``c`` in an open write transaction (backbone, a new name,
        a taken name without ``replace``); returns the stored concept of that name, or None.

        ``found``: that concept (or None) when the caller looked it up already.
        """
        self._check_backbone(conn, c)
        row = self._same_name(conn, c.namespace, c.name) if found == UNSEEN else found
        if row is None or row[2] != c.name:
            check_new_name(c.name)  # a new name; one stored by an earlier version may be longer
        if row is not None and not replace:
            same = "" if row[2] == c.name else f" (names are compared ignoring case: '{row[2]}' exists)"
            raise DuplicateConceptError(
                f"a concept named {c.name!r} already exists in namespace {c.namespace!r}{same}; pass "
                "replace=True (CLI: --replace) to overwrite it, or choose another name"
            )
        return row

    def _check_update(self, conn: Any, c: Concept, row: Row | None) -> tuple[int, float]:
        """The checks of writing prepared ``c`` over the stored concept ``row`` (None: not
        found) in an open write transaction; returns its ``(id, created)``."""
        if row is None:
            what = f"with id {c.id}" if c.id >= 0 else f"named {c.name!r}"
            raise ConceptNotFoundError(
                f"no concept {what} in namespace {c.namespace!r} to update; use add() to store a new concept"
            )
        cid, created = int(row[0]), float(row[1])
        if row[2] != c.name:
            check_new_name(c.name)  # a rename
        self._check_backbone(conn, c)
        if self._same_name(conn, c.namespace, c.name, exclude=cid):
            raise DuplicateConceptError(
                f"cannot rename {row[2]!r} to {c.name!r}: that name is taken in namespace "
                f"{c.namespace!r}; remove the other concept first or choose another name"
            )
        return cid, created

    # ---- lifecycle -------------------------------------------------------------------
    def close(self) -> None:
        """Close the store (the SQLite file, or the connection to the server); further calls
        raise `MemoryStoreError`. Safe to call twice."""
        self._db.close()
        self._views.clear()

    def __enter__(self: _S) -> _S:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        mode = ", read_only=True" if self._db.read_only else ""
        store = next(c for c in type(self).__mro__ if StoreBase in c.__bases__)  # SqliteMemory, even for a subclass
        return f"{store.__name__}({self.uri!r}{mode})"
