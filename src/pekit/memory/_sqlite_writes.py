"""The write path of `pekit.memory.sqlite.SqliteMemory`: add, replace, update, modify and
remove, each one ``BEGIN IMMEDIATE ... COMMIT`` transaction, and the rows they write.

`SqliteWrites` is a mixin: `SqliteMemory` gives it the transactions (`SqliteWrites._transaction`)
and the read that `SqliteWrites.modify` changes (`SqliteWrites._find`); `delete_concept` is
shared with ``repair``.
"""

from __future__ import annotations

import dataclasses
import logging
import sqlite3
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

import numpy as np

from pekit.errors import (  # named by the docstrings' Raises: (the API page links them)
    BackboneMismatchError,  # noqa: F401
    ConceptNotFoundError,  # noqa: F401
    DuplicateConceptError,  # noqa: F401
    InvalidInputError,  # noqa: F401
)
from pekit.memory._codec import dump_meta, name_key, to_blob
from pekit.memory._fingerprints import upgraded_backbone
from pekit.memory._rows import stored_settings
from pekit.memory._store import UNSEEN, Row, numbered, read_meta
from pekit.types import Concept

if TYPE_CHECKING:  # checked as the StoreBase it is mixed into; at run time a plain class
    from pekit.memory._store import StoreBase as _Store
else:  # abstract methods enforced, as StoreBase's are
    _Store = ABC

__all__ = ["SqliteWrites", "delete_concept"]

logger = logging.getLogger("pekit.memory.sqlite")  # logs as the store it is part of


def delete_concept(conn: sqlite3.Connection, cid: int) -> None:
    """Delete concept ``cid`` with its views, parts and images, inside an open write transaction."""
    for table in ("views", "parts", "images"):
        conn.execute(f"DELETE FROM {table} WHERE concept_id = ?", (cid,))
    conn.execute("DELETE FROM concepts WHERE id = ?", (cid,))


class SqliteWrites(_Store):
    """The writes of `SqliteMemory` (see the module); its reads stay in `pekit.memory.sqlite`."""

    @abstractmethod
    def _transaction(self, action: str, *, write: bool) -> AbstractContextManager[sqlite3.Connection]:
        """One transaction on the file, named by ``action`` in its errors."""

    @abstractmethod
    def _find(self, conn: sqlite3.Connection, namespace: str, name: str) -> Concept:
        """The concept called ``name``, or else the one whose name equals it ignoring case."""

    # ---- writes ----------------------------------------------------------------------
    def _check_backbone(self, conn: sqlite3.Connection, concept: Concept) -> None:
        """Record the backbone on the first add (or into an empty store); refuse another one."""
        meta, dim = read_meta(conn), concept.dim
        empty = conn.execute("SELECT NOT EXISTS (SELECT 1 FROM concepts)").fetchone()[0]
        if not empty:
            stored_settings(conn, self.uri)  # a meta table that lost them: refused, never overwritten
        if "backbone" not in meta or empty:
            conn.executemany(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                [("backbone", concept.backbone), ("dim", str(dim))],
            )
            return
        self._refuse_other_space(concept, meta["backbone"], meta["dim"], dim_differs=dim != int(meta["dim"]))
        upgraded = upgraded_backbone(meta["backbone"], concept.backbone)
        if upgraded is not None:  # recorded by its weights from now on: other weights are refused
            conn.execute("UPDATE meta SET value = ? WHERE key = 'backbone'", (upgraded,))

    def _write_vectors(self, conn: sqlite3.Connection, cid: int, views: np.ndarray,
                       parts: np.ndarray | None, negatives: np.ndarray | None = None) -> None:
        conn.execute("DELETE FROM views WHERE concept_id = ?", (cid,))
        conn.execute("DELETE FROM parts WHERE concept_id = ?", (cid,))
        rows = [(cid, idx, to_blob(row)) for idx, row in numbered(views, negatives)]
        conn.executemany("INSERT INTO views (concept_id, idx, vector) VALUES (?, ?, ?)", rows)
        if parts is not None:
            conn.execute(
                "INSERT INTO parts (concept_id, rows, vectors) VALUES (?, ?, ?)",
                (cid, len(parts), to_blob(parts)),
            )

    def add(
        self, concept: Concept, *, replace: bool = False, images: Sequence[bytes] | None = None
    ) -> Concept:
        """Insert ``concept`` (or, with ``replace``, overwrite the one of that name, keeping its id).

        Returns a copy with ``id``, ``created`` and ``updated`` set and vectors normalised;
        ``concept`` itself is not modified. ``images`` (encoded photo bytes) are kept only
        when the store was opened with ``store_images=True``.

        Raises:
            DuplicateConceptError: the name exists in the namespace and ``replace`` is False.
            BackboneMismatchError: ``concept.backbone`` differs from the store's.
            InvalidInputError: bad name, shapes or values.
        """
        c = self._prepared(concept)
        with self._transaction(f"add concept {c.name!r}", write=True) as conn:
            return self._add(conn, c, replace, images)

    def add_many(self, concepts: Sequence[Concept], *, replace: bool = False) -> list[Concept]:
        """`add` every concept in one transaction: all of them are stored, or (on any error)
        none. Bulk imports run at disk speed instead of one commit per concept.

        >>> from pekit.memory import SqliteMemory
        >>> m = SqliteMemory(":memory:")
        >>> " ".join(c.name for c in m.add_many([Concept(n, np.eye(1, 4)) for n in ("a", "b")]))
        'a b'
        """
        prepared = [self._prepared(c) for c in concepts]
        with self._transaction(f"add {len(prepared)} concepts", write=True) as conn:
            # one scan of each namespace's names, not one per concept
            known: dict[str, dict[str, Row]] = {}
            for ns in {c.namespace for c in prepared}:
                rows = conn.execute("SELECT id, created, name FROM concepts WHERE namespace = ?", (ns,))
                known[ns] = {name_key(n): (int(i), float(t), str(n)) for i, t, n in rows}
            out = []
            for c in prepared:
                stored = self._add(conn, c, replace, None, known[c.namespace].get(name_key(c.name)))
                known[c.namespace][name_key(c.name)] = (stored.id, stored.created, stored.name)
                out.append(stored)
            return out

    def _add(self, conn: sqlite3.Connection, c: Concept, replace: bool, images: Sequence[bytes] | None,
             found: Row | None = UNSEEN) -> Concept:
        """Insert or replace one prepared concept inside an open write transaction.

        ``found``: ``(id, created, name)`` of the stored concept of the same name (or None)
        when the caller looked it up already.
        """
        row = self._check_add(conn, c, replace, found)
        now = time.time()
        values = (c.category, c.context, c.threshold, now, dump_meta(c.meta))
        if row is not None:
            cid, created = row[0], row[1]
            conn.execute(
                "UPDATE concepts SET category = ?, context = ?, threshold = ?, updated = ?, meta = ?, "
                "name = ? WHERE id = ?", (*values, c.name, cid),
            )
            conn.execute("DELETE FROM images WHERE concept_id = ?", (cid,))
        else:
            created = c.created or now
            cur = conn.execute(
                "INSERT INTO concepts (namespace, name, category, context, threshold, updated, meta, "
                "created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (c.namespace, c.name, *values, created),
            )
            cid = int(cur.lastrowid or 0)
        self._write_vectors(conn, cid, c.views, c.parts, c.negatives)
        if images and self.store_images:
            conn.executemany(
                "INSERT INTO images (concept_id, idx, data) VALUES (?, ?, ?)",
                [(cid, i, sqlite3.Binary(bytes(data))) for i, data in enumerate(images)],
            )
        elif images:
            logger.debug("not storing %d images of %r (store_images=False)", len(images), c.name)
        return dataclasses.replace(c, id=cid, created=created, updated=now)

    def update(self, concept: Concept) -> Concept:
        """Write back the fields of a stored concept (found by ``id`` within its namespace, else by
        namespace and name: a concept can never be written through another namespace).

        Everything but ``created`` and the stored images is replaced; renaming is allowed.

        Raises:
            ConceptNotFoundError: no such concept.
            DuplicateConceptError: the new name is taken in the namespace.
            BackboneMismatchError: ``concept.backbone`` differs from the store's.
        """
        c = self._prepared(concept)
        with self._transaction(f"update concept {c.name!r}", write=True) as conn:
            return self._update(conn, c)

    def modify(self, name: str, change: Callable[[Concept], Concept], *, namespace: str = "default",
               drop_images: bool = False) -> Concept:
        """Read the concept called ``name`` (ignoring case), write back ``change(concept)``:
        both in one write transaction, so no other writer's change to it is lost in between
        (two ``add-view`` at once keep both views).

        ``change`` gets the stored concept and returns the new one (same id and namespace); if
        it raises, nothing is written and the error passes through. ``drop_images``: the
        concept's stored photos are deleted in the same transaction.

        Raises:
            ConceptNotFoundError: no such concept.
            DuplicateConceptError, BackboneMismatchError: as `update`.
        """
        name, namespace = self._key(name, namespace)
        with self._transaction(f"change concept {name!r}", write=True) as conn:
            stored = self._find(conn, namespace, name)
            written = self._update(conn, self._changed(stored, change))
            if drop_images:
                conn.execute("DELETE FROM images WHERE concept_id = ?", (stored.id,))
            return written

    def _update(self, conn: sqlite3.Connection, c: Concept) -> Concept:
        """Write a prepared concept over the stored one, inside an open write transaction."""
        if c.id >= 0:  # an id is looked up only inside the concept's namespace: no cross-owner writes
            row = conn.execute("SELECT id, created, name FROM concepts WHERE id = ? AND namespace = ?",
                               (c.id, c.namespace)).fetchone()
        else:
            sql = "SELECT id, created, name FROM concepts WHERE namespace = ? AND name = ?"
            row = conn.execute(sql, (c.namespace, c.name)).fetchone()
        cid, created = self._check_update(conn, c, row)
        now = time.time()
        conn.execute(
            "UPDATE concepts SET namespace = ?, name = ?, category = ?, context = ?, threshold = ?, "
            "updated = ?, meta = ? WHERE id = ?",
            (c.namespace, c.name, c.category, c.context, c.threshold, now, dump_meta(c.meta), cid),
        )
        self._write_vectors(conn, cid, c.views, c.parts, c.negatives)
        return dataclasses.replace(c, id=cid, created=created, updated=now)

    def remove(self, name: str, *, namespace: str = "default") -> str:
        """Delete a concept with its views, parts and images (the name as stored, else ignoring
        case); returns its name as stored. `ConceptNotFoundError` if absent."""
        name, namespace = self._key(name, namespace)
        with self._transaction(f"remove concept {name!r}", write=True) as conn:
            row = self._same_name(conn, namespace, name)  # the exact name first, then ignoring case
            if row is None:
                raise self._not_found(conn, namespace, name)
            delete_concept(conn, row[0])
            return row[2]
