"""The embedded memory: every concept of every namespace in one SQLite file (stdlib only).

Each write (add, replace, update, modify, remove) is one ``BEGIN IMMEDIATE ... COMMIT``
transaction, so a crash mid-write keeps everything committed before it and never leaves
half a concept. Vectors are stored as little-endian float32 blobs, L2-normalised on write;
all of them come from the one backbone recorded by the first add. See `pekit.memory._schema`
for the tables.

Example:
    >>> import numpy as np
    >>> from pekit.types import Concept
    >>> with SqliteMemory(":memory:") as memory:
    ...     bo = memory.add(Concept("Bo", np.eye(2, 8), category="dog", backbone="toy"))
    ...     memory.get("Bo").views.shape, memory.names()
    ((2, 8), ['Bo'])
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np

from pekit.errors import (  # those marked F401 are named by the docstrings' Raises: (the API page links them)
    ConceptNotFoundError,  # noqa: F401
    MemoryFileError,
    MemoryStoreError,
)
from pekit.memory._codec import clean_namespace, concept_ids, name_key, printable
from pekit.memory._db import SqliteFile
from pekit.memory._rows import (
    COLUMNS,
    RECORDS,
    DamagedRowError,
    decode_concept,
    decode_vectors,
    find_damaged,
    records_problem,
    stored_settings,
    threshold_problem,
)
from pekit.memory._schema import has_generations
from pekit.memory._search import check_queries, exact_search
from pekit.memory._sqlite_writes import SqliteWrites, delete_concept
from pekit.memory._store import Row, StoreBase, cached, split_views
from pekit.memory.base import ConceptSummary
from pekit.types import Concept

__all__ = ["SqliteMemory"]

logger = logging.getLogger(__name__)


class SqliteMemory(SqliteWrites, StoreBase):
    """`MemoryStore` on one SQLite file; ``":memory:"`` keeps it in this process only.

    Args:
        path: file to open; a missing one (and its folders) is created by the first write,
            never by reads; ``":memory:"`` (or ``"memory://"``) for a store that lives in
            this process only.
        read_only: open with ``mode=ro``: reads work, writes raise `MemoryStoreError`.
        store_images: keep the encoded reference photos passed to `add` (off by default:
            only embeddings are stored).
        timeout: seconds to wait for another process's write lock before giving up.
        must_exist: a missing file is a `MemoryFileError` naming the path (for paths a
            user typed: a typo should not silently give an empty memory).
        skip_damaged: reads leave out concepts whose stored rows cannot be decoded (with a
            warning) instead of raising `MemoryFileError`; `repair` removes them.

    Safe to share between threads (one connection behind a lock); several processes may
    open the same file.

    Example:
        >>> memory = SqliteMemory(":memory:")
        >>> memory.count(), memory.backbone
        (0, None)
    """

    _db: SqliteFile
    _called = "memory file"
    # the writes (add, add_many, update, modify, remove) are SqliteWrites'; close is StoreBase's

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        read_only: bool = False,
        store_images: bool = False,
        timeout: float = 5.0,
        must_exist: bool = False,
        skip_damaged: bool = False,
    ) -> None:
        raw = os.fspath(path)
        file = None if raw in (":memory:", "memory://") else Path(raw).expanduser().absolute()
        db = SqliteFile(file, read_only=bool(read_only), timeout=float(timeout), must_exist=bool(must_exist))
        super().__init__(db, store_images=store_images, skip_damaged=skip_damaged)

    def _transaction(self, action: str, *, write: bool) -> AbstractContextManager[sqlite3.Connection]:
        return self._db.transaction(action, write=write)

    # ---- checks (backbone, dim and read_only are StoreBase's) --------------------------
    def check_writable(self, action: str) -> None:
        """`MemoryStoreError` when a write (``action``, e.g. ``"introduce 'Bo'"``) would be
        refused: opened read-only, or the file's permissions let nobody (or not this user)
        write it. Cheap: callers ask before spending backbone passes."""
        refused = self._db.unwritable(action)
        if refused:
            raise MemoryStoreError(refused)

    # ---- reads -----------------------------------------------------------------------
    def _load(self, conn: sqlite3.Connection, where: str, params: Sequence[Any], *,
              with_parts: bool = True) -> list[Concept]:
        """Concepts matching ``where`` (on table alias ``c``), ordered by id, with vectors
        (part prototypes only ``with_parts``)."""
        sql = f"SELECT {COLUMNS} FROM concepts c WHERE {where} ORDER BY c.id"
        rows = conn.execute(sql, params).fetchall()
        if not rows:
            return []
        dim, backbone = stored_settings(conn, self.uri)
        views, negatives = split_views(conn.execute(
            f"SELECT v.concept_id, v.idx, v.vector FROM views v JOIN concepts c ON c.id = v.concept_id "
            f"WHERE {where} ORDER BY v.concept_id, v.idx",
            params,
        ))
        parts = dict(conn.execute(
            f"SELECT p.concept_id, p.vectors FROM parts p JOIN concepts c ON c.id = p.concept_id WHERE {where}",
            params,
        ).fetchall()) if with_parts else {}
        out = []
        for row in rows:
            try:
                out.append(decode_concept(row, views.get(row[0]), parts.get(row[0]), dim, backbone,
                                          negatives.get(row[0], [])))
            except DamagedRowError as exc:
                self._damaged(row[0], row[1], row[2], str(exc))
        return out

    def _damaged(self, cid: Any, ns: Any, name: Any, problem: str) -> None:
        """Raise `MemoryFileError` for a damaged concept, or log and go on with ``skip_damaged``."""
        if not self.skip_damaged:
            raise MemoryFileError(
                f"concept '{printable(str(name))}' (id {cid}, namespace '{printable(str(ns))}') in memory "
                f"file {self.uri} is damaged: {problem}; run `pekit repair --memory {self.uri}` to remove "
                "the damaged concepts (then introduce them again), or pass --skip-damaged "
                "(skip_damaged=True) to read around them"
            ) from None
        logger.warning("skipping damaged concept %r (id %s) in %s: %s", name, cid, self.uri, problem)

    def damaged(self) -> list[dict[str, Any]]:
        """Concepts whose stored rows cannot be read: ``[{"id", "namespace", "name", "problem"}]``."""
        with self._transaction("check the concepts", write=False) as conn:
            return find_damaged(conn, self.uri)

    def repair(self, *, dry_run: bool = False) -> list[dict[str, Any]]:
        """Remove every concept whose stored rows cannot be read; returns what was (or, with
        ``dry_run``, would be) removed: ``[{"id", "namespace", "name", "problem"}]``.

        The rest of the memory is untouched; removed concepts must be introduced again.
        """
        if self._db.pending:  # no file yet: nothing to repair, and nothing to create
            return []
        with self._transaction("repair the memory", write=not dry_run) as conn:
            found = find_damaged(conn, self.uri)
            if not dry_run:
                for item in found:
                    delete_concept(conn, item["id"])
        return found

    def _names(self, conn: sqlite3.Connection, namespace: str) -> list[str]:
        sql = "SELECT name FROM concepts WHERE namespace = ? ORDER BY id"
        return [r[0] for r in conn.execute(sql, (namespace,))]

    def _same_name(self, conn: sqlite3.Connection, namespace: str, name: str, exclude: int = -1) -> Row | None:
        """``(id, created, stored name)`` of the concept whose name equals ``name`` ignoring case."""
        key = name_key(name)
        sql = "SELECT id, created, name FROM concepts WHERE namespace = ? AND id != ? ORDER BY name != ?, id"
        for cid, created, stored in conn.execute(sql, (namespace, exclude, name)):
            if stored == name or name_key(stored) == key:
                return int(cid), float(created), str(stored)
        return None

    def get(self, name: str, *, namespace: str = "default") -> Concept:
        """The concept called ``name``; `ConceptNotFoundError` (with the known names) if absent.

        >>> SqliteMemory(":memory:").get("Bo")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        pekit.errors.ConceptNotFoundError: no concept named 'Bo' in namespace 'default'; ...
        """
        name, namespace = self._key(name, namespace)
        with self._transaction(f"read concept {name!r}", write=False) as conn:
            return self._find(conn, namespace, name)

    def _find(self, conn: sqlite3.Connection, namespace: str, name: str) -> Concept:
        """The concept called ``name``, or else the one whose name equals it ignoring case."""
        found = self._load(conn, "c.namespace = ? AND c.name = ?", (namespace, name))
        if not found:
            same = self._same_name(conn, namespace, name)
            found = self._load(conn, "c.id = ?", (same[0],)) if same else []
        if not found:
            raise self._not_found(conn, namespace, name)
        return found[0]

    def concepts(self, *, namespace: str = "default") -> list[Concept]:
        """All concepts of a namespace, ordered by id."""
        namespace = clean_namespace(namespace)
        with self._transaction("list concepts", write=False) as conn:
            return self._load(conn, "c.namespace = ?", (namespace,))

    def matchable(self, *, namespace: str = "default") -> list[Concept]:
        """All concepts of a namespace without their part prototypes (``parts=None``).

        What matching keeps in RAM; `parts` fetches the prototypes of the few that can win.
        """
        namespace = clean_namespace(namespace)
        with self._transaction("list concepts", write=False) as conn:
            return self._load(conn, "c.namespace = ?", (namespace,), with_parts=False)

    def parts(self, ids: Sequence[int], *, namespace: str = "default") -> dict[int, np.ndarray]:
        """Part prototypes of the concepts ``ids`` of ``namespace``, keyed by id.

        Ids of other namespaces, unknown ids and concepts without parts are absent.

        >>> SqliteMemory(":memory:").parts([1, 2])
        {}
        """
        namespace = clean_namespace(namespace)
        wanted = concept_ids(ids)
        out: dict[int, np.ndarray] = {}
        if not wanted:
            return out
        with self._transaction("read part prototypes", write=False) as conn:
            if not conn.execute("SELECT EXISTS (SELECT 1 FROM concepts)").fetchone()[0]:
                return out
            dim = stored_settings(conn, self.uri)[0]
            for start in range(0, len(wanted), 500):  # SQLite caps bound parameters
                chunk = wanted[start:start + 500]
                sql = (f"SELECT c.id, c.name, p.vectors FROM parts p JOIN concepts c ON c.id = p.concept_id "
                       f"WHERE c.namespace = ? AND c.id IN ({', '.join('?' * len(chunk))})")
                for cid, name, blob in conn.execute(sql, (namespace, *chunk)):
                    try:
                        out[int(cid)] = decode_vectors(blob, dim, "parts")
                    except DamagedRowError as exc:
                        self._damaged(cid, namespace, name, str(exc))
        return out

    def stamps(self, *, namespace: str = "default") -> dict[int, tuple[str, float]]:
        """``id -> (name, updated)`` of every concept of a namespace: one scan of the small
        ``concepts`` table (no vectors, no checks), what a cache needs to see what changed."""
        namespace = clean_namespace(namespace)
        with self._transaction("list concepts", write=False) as conn:
            sql = "SELECT id, name, updated FROM concepts WHERE namespace = ?"
            return {int(i): (str(n), float(u)) for i, n, u in conn.execute(sql, (namespace,))}

    def generation(self, namespace: str = "default") -> int:
        """Write counter of ``namespace``: changes on every add, update or remove there, by
        any connection or process (triggers in the file keep it); other namespaces' writes
        leave it alone.

        >>> m = SqliteMemory(":memory:")
        >>> g = m.generation()
        >>> _ = m.add(Concept("Bo", views=np.ones((1, 4), np.float32)))
        >>> m.generation() != g
        True
        """
        namespace = clean_namespace(namespace)
        with self._transaction("read the write counter", write=False) as conn:
            # another file at the path (it was removed and made again) counts anew: its counter must
            # not pass for the old file's, whose ids it reuses
            epoch = self._db.epoch << 40
            if has_generations(conn):
                row = conn.execute("SELECT value FROM generations WHERE namespace = ?", (namespace,)).fetchone()
                if row is None or isinstance(row[0], int):
                    return epoch + (0 if row is None else row[0])
                # a counter edited outside pekit ('x'): it is only a cache key, so the digest below
                # stands in (the next write counts on from 1: SQLite adds 1 to text as to 0)
            # a file only ever opened read-only by this version: a digest of the rows stands in
            row = conn.execute("SELECT COUNT(*), COALESCE(MAX(updated), 0), COALESCE(SUM(id), 0) FROM concepts "
                               "WHERE namespace = ?", (namespace,)).fetchone()
            return epoch + (hash(tuple(row)) & 0xFFFFFFFFFF)

    def count(self, namespace: str | None = None) -> int:
        """Number of concepts in ``namespace`` (all namespaces when None)."""
        with self._transaction("count concepts", write=False) as conn:
            if namespace is None:
                return int(conn.execute("SELECT COUNT(*) FROM concepts").fetchone()[0])
            namespace = clean_namespace(namespace)
            sql = "SELECT COUNT(*) FROM concepts WHERE namespace = ?"
            return int(conn.execute(sql, (namespace,)).fetchone()[0])

    def summaries(self, *, namespace: str = "default") -> list[ConceptSummary]:
        """Names, categories, context and view counts of a namespace, ordered by id; no vectors.

        The view counts come from one range scan of the ``views`` table (sequential, so
        faster than a lookup per concept); no part or image blob is decoded, but their
        sizes, the meta JSON and the records of it that pekit reads back (`RECORDS`, not
        the colours) are checked, so a damaged concept is reported as `concepts` would
        (`MemoryFileError`, or skipped with ``skip_damaged``).

        >>> import numpy as np
        >>> with SqliteMemory(":memory:") as memory:
        ...     _ = memory.add(Concept("Bo", np.eye(2, 8), category="dog", backbone="toy"))
        ...     first = memory.summaries()[0]
        >>> first.name, first.category, first.views
        ('Bo', 'dog', 2)
        """
        namespace = clean_namespace(namespace)
        with self._transaction("list concepts", write=False) as conn:
            sql = ("SELECT id, name, category, context, threshold, created, updated, "
                   "CASE WHEN json_valid(meta) THEN json_type(meta) = 'object' ELSE 0 END, "
                   "CASE WHEN json_valid(meta) AND json_type(meta) = 'object' "
                   "THEN COALESCE(json_extract(meta, '$.kind'), 'object') ELSE 'object' END, "
                   "CASE WHEN json_valid(meta) AND json_type(meta, '$.corrections') = 'array' "
                   "THEN json_array_length(meta, '$.corrections') ELSE 0 END, "
                   f"CASE WHEN json_valid(meta) AND json_type(meta) = 'object' THEN {RECORDS} END FROM concepts "
                   "WHERE namespace = ? ORDER BY id")
            rows = conn.execute(sql, (namespace,)).fetchall()
            if not rows:
                return []
            dim = stored_settings(conn, self.uri)[0]
            sql = ("SELECT concept_id, SUM(idx >= 0), SUM(length(vector) != ?) FROM views "
                   "WHERE concept_id BETWEEN ? AND ? GROUP BY concept_id")
            counts = {cid: (n, bad) for cid, n, bad in conn.execute(sql, (4 * dim, rows[0][0], rows[-1][0]))}
            sql = ("SELECT concept_id FROM parts WHERE concept_id BETWEEN ? AND ? AND length(vectors) != rows * ?")
            bad_parts = {r[0] for r in conn.execute(sql, (rows[0][0], rows[-1][0], 4 * dim))}
        out = []
        for cid, name, category, context, threshold, created, updated, meta_ok, kind, corrections, records in rows:
            n, bad = counts.get(cid, (0, 0))
            problem = ("its meta is not a JSON object" if not meta_ok else "it has no views" if not n
                       else f"a view blob is not {4 * dim} bytes" if bad else "its parts blob has the wrong size"
                       if cid in bad_parts else threshold_problem(threshold) or records_problem(records))
            if problem:
                self._damaged(cid, namespace, name, problem)
                continue
            out.append(ConceptSummary(id=cid, namespace=namespace, name=name, category=category, context=context,
                                      views=int(n), threshold=threshold, created=created, updated=updated,
                                      kind=str(kind), corrections=int(corrections)))
        return out

    def images(self, name: str, *, namespace: str = "default") -> list[bytes]:
        """Encoded reference photos kept for a concept (empty unless added with ``store_images``)."""
        cid = self.get(name, namespace=namespace).id
        with self._transaction(f"read images of {name!r}", write=False) as conn:
            sql = "SELECT data FROM images WHERE concept_id = ? ORDER BY idx"
            return [bytes(r[0]) for r in conn.execute(sql, (cid,))]

    def search(self, queries: Any, *, namespace: str = "default", k: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` stored views most similar (cosine) to each query, within ``namespace`` only.

        Returns ``(ids (q, k) int64, scores (q, k) float32)``: the concept id of each found
        view and its cosine similarity, best first, padded with id -1 and score -inf. Exact:
        one matrix product over the namespace's views, kept in RAM until its `generation` moves.

        >>> with SqliteMemory(":memory:") as memory:
        ...     _ = memory.add(Concept("Bo", np.eye(2, 8), backbone="toy"))
        ...     memory.search(np.eye(1, 8), k=2)[0].tolist()
        [[1, 1]]
        """
        namespace = clean_namespace(namespace)

        def stacked() -> tuple[np.ndarray, np.ndarray]:
            concepts = self.matchable(namespace=namespace)
            ids = np.repeat(np.array([c.id for c in concepts], np.int64), [len(c.views) for c in concepts])
            return ids, np.concatenate([c.views for c in concepts]) if concepts else np.zeros((0, 0), np.float32)

        ids, views = cached(self._views, namespace, self.generation(namespace), stacked)
        q, k = check_queries(queries, k, views.shape[1] if len(ids) else None)
        return exact_search(views, ids, q, k=k)
