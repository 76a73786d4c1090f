"""The server-backed memory: concepts in PostgreSQL, views in a pgvector ``vector(d)`` column.

The same `MemoryStore` protocol as the embedded `SqliteMemory`, for many users and worker
processes sharing one server: every row carries its ``namespace`` and every query filters on
it (an id of another namespace is never found, read, changed or removed); each write is one
transaction; the schema is versioned (`pekit.memory._pg_schema`); all vectors come from the
backbone recorded by the first add. Chosen by URI: ``open_memory("postgresql://host/db")``.

Search (`PgvectorMemory.search`) runs in the server: exact (pgvector's ``<#>`` over the
namespace's rows, found through a b-tree on ``namespace``) for namespaces below
`ANN_MIN_VIEWS` views, and an HNSW index *of that namespace only* (a partial index) above,
so one user's search never scans, or waits on, the other users' views.

Example (needs a PostgreSQL server with pgvector):
    >>> with open_memory("postgresql://localhost/pekit") as memory:   # doctest: +SKIP
    ...     memory.add(Concept("Bo", views, backbone="dinov2-s14")).id
    1
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from pekit.errors import (  # those marked F401 are named by the docstrings' Raises: (the API page links them)
    BackboneMismatchError,  # noqa: F401
    ConceptNotFoundError,  # noqa: F401
    DuplicateConceptError,
    InvalidInputError,  # noqa: F401
    MemoryFileError,  # noqa: F401
)
from pekit.memory._codec import clean_namespace, concept_ids, dump_meta, from_blob, name_key, to_blob
from pekit.memory._pg_index import PgIndex
from pekit.memory._pg_schema import record_backbone
from pekit.memory._pgconn import PgConnection, stack_vectors
from pekit.memory._search import check_queries, exact_search, no_results
from pekit.memory._store import Row, StoreBase, numbered, read_meta, split_views
from pekit.memory.base import ConceptSummary
from pekit.types import Concept

__all__ = ["ANN_MIN_VIEWS", "EF_SEARCH", "PgvectorMemory"]

# Below this many views an exact scan of the namespace takes <= ~5 ms (about 1 us a view,
# benchmarks/memory_scale.py); above it the namespace gets its own HNSW index.
ANN_MIN_VIEWS = 5_000
EF_SEARCH = 400  # recall@1 1.000 on the 10^5-view album of benchmarks/memory_scale.py (100: 0.938)
_COLUMNS = "id, namespace, name, category, context, threshold, created, updated, meta"


class PgvectorMemory(PgIndex, StoreBase):
    """`MemoryStore` on a PostgreSQL database with the pgvector extension.

    Args:
        uri: ``postgresql://[user[:password]@]host[:port]/database[?schema=name]`` (libpq
            options such as ``sslmode=require`` or ``host=/socket/dir`` pass through).
        schema: PostgreSQL schema of the tables (else the URI's ``schema=``, else ``pekit``),
            so several memories can share a database.
        read_only: reads work, writes raise `MemoryStoreError`; nothing is created.
        store_images: keep the encoded reference photos passed to `add`.
        timeout: seconds to wait to connect and for another writer's locks.
        must_exist: a database without pekit tables is a `MemoryFileError` (else the first
            writable open creates them, and pgvector if the user may).
        skip_damaged: accepted for symmetry with `SqliteMemory`; the server's types
            (``vector(d)``, ``json``) keep damaged rows from being written at all.
        ann: search namespaces of `ANN_MIN_VIEWS` views or more through an HNSW index of
            each such namespace in the server (approximate; no vectors in this process)
            instead of exactly here (the default: see `search`).

    Safe to share between threads (one connection behind a lock); any number of processes
    may open the same database.
    """

    _db: PgConnection
    _called = "memory"
    # PgIndex: the server's query and the HNSW index (`search` picks one); StoreBase: read_only, close

    def __init__(self, uri: str, *, schema: str | None = None, read_only: bool = False,
                 store_images: bool = False, timeout: float = 5.0, must_exist: bool = False,
                 skip_damaged: bool = False, ann: bool = False) -> None:
        db = PgConnection(uri, schema=schema, read_only=bool(read_only), timeout=float(timeout),
                          must_exist=bool(must_exist))
        super().__init__(db, store_images=store_images, skip_damaged=skip_damaged)
        self.schema = self._db.schema
        self.ann = bool(ann)
        self._indexed = set()  # (both: see PgIndex)
        self._sizes = {}

    # ---- reads -----------------------------------------------------------------------
    def _load(self, cur: Any, namespace: str, *, name: str | None = None, parts: bool = True) -> list[Concept]:
        """Concepts of ``namespace`` (one, with ``name``), ordered by id, with their vectors."""
        sql = f"SELECT {_COLUMNS} FROM concepts WHERE namespace = %s" + (" AND name = %s" if name else "")
        rows = cur.execute(sql + " ORDER BY id", (namespace, name) if name else (namespace,)).fetchall()
        if not rows:
            return []
        backbone = read_meta(cur).get("backbone", "")
        where, params = "namespace = %s", [namespace]
        if name:
            where, params = "namespace = %s AND concept_id = %s", [namespace, rows[0][0]]
        sql = f"SELECT concept_id, idx, embedding FROM views WHERE {where} ORDER BY concept_id, idx"
        views, negatives = split_views(cur.execute(sql, params))
        blobs: dict[int, tuple[int, bytes]] = {}
        if parts:
            sql = f"SELECT concept_id, rows, vectors FROM parts WHERE {where}"
            blobs = {cid: (n, bytes(b)) for cid, n, b in cur.execute(sql, params)}
        out = []
        for cid, ns, cname, category, context, threshold, created, updated, meta in rows:
            part = blobs.get(cid)
            negs = negatives.get(cid)
            out.append(Concept(
                id=int(cid), namespace=ns, name=cname, category=category, context=context, threshold=threshold,
                created=created, updated=updated, meta=meta, backbone=backbone, views=stack_vectors(views[cid]),
                parts=None if part is None else from_blob(part[1], dim=len(views[cid][0])),
                negatives=None if not negs else stack_vectors(negs),
            ))
        return out

    def get(self, name: str, *, namespace: str = "default") -> Concept:
        """The concept called ``name``; `ConceptNotFoundError` (with the known names) if absent."""
        name, namespace = self._key(name, namespace)
        with self._db.transaction(f"read concept {name!r}", write=False) as cur:
            return self._find(cur, namespace, name)

    def _find(self, cur: Any, namespace: str, name: str) -> Concept:
        """The concept called ``name``, or else the one whose name equals it ignoring case."""
        found = self._load(cur, namespace, name=name)
        if not found:
            row = cur.execute("SELECT name FROM concepts WHERE namespace = %s AND name_key = %s",
                              (namespace, name_key(name))).fetchone()
            found = self._load(cur, namespace, name=str(row[0])) if row else []
        if not found:
            raise self._not_found(cur, namespace, name)
        return found[0]

    def concepts(self, *, namespace: str = "default") -> list[Concept]:
        """All concepts of a namespace, ordered by id."""
        namespace = clean_namespace(namespace)
        with self._db.transaction("list concepts", write=False) as cur:
            return self._load(cur, namespace)

    def matchable(self, *, namespace: str = "default") -> list[Concept]:
        """`concepts` without part prototypes (``parts=None``): what matching keeps in RAM."""
        namespace = clean_namespace(namespace)
        with self._db.transaction("list concepts", write=False) as cur:
            return self._load(cur, namespace, parts=False)

    def parts(self, ids: Sequence[int], *, namespace: str = "default") -> dict[int, np.ndarray]:
        """Part prototypes ``(m, d) float32`` of the concepts ``ids`` *of this namespace*, by id."""
        namespace = clean_namespace(namespace)
        wanted = concept_ids(ids)
        if not wanted:
            return {}
        with self._db.transaction("read parts", write=False) as cur:
            dim = int(read_meta(cur).get("dim", 0) or 0)
            sql = "SELECT concept_id, vectors FROM parts WHERE namespace = %s AND concept_id = ANY(%s)"
            return {int(cid): from_blob(bytes(b), dim=dim) for cid, b in cur.execute(sql, (namespace, wanted))}

    def summaries(self, *, namespace: str = "default") -> list[ConceptSummary]:
        """Names, categories, context and view counts of a namespace, ordered by id; reads no vectors."""
        namespace = clean_namespace(namespace)
        with self._db.transaction("list concepts", write=False) as cur:
            sql = ("SELECT c.id, c.name, c.category, c.context, c.threshold, c.created, c.updated, "
                   "(SELECT COUNT(*) FROM views v WHERE v.namespace = c.namespace AND v.concept_id = c.id "
                   "AND v.idx >= 0), COALESCE(c.meta ->> 'kind', 'object'), "
                   "CASE WHEN json_typeof(c.meta -> 'corrections') = 'array' "
                   "THEN json_array_length(c.meta -> 'corrections') ELSE 0 END FROM concepts c WHERE c.namespace = %s "
                   "ORDER BY c.id")
            rows = cur.execute(sql, (namespace,)).fetchall()
        return [ConceptSummary(id=int(cid), namespace=namespace, name=name, category=category, context=context,
                               views=int(n), threshold=threshold, created=created, updated=updated, kind=str(kind),
                               corrections=int(corrections))
                for cid, name, category, context, threshold, created, updated, n, kind, corrections in rows]

    def stamps(self, *, namespace: str = "default") -> dict[int, tuple[str, float]]:
        """``id -> (name, updated)`` of every concept of a namespace (no vectors): what a cache
        needs to see what changed."""
        namespace = clean_namespace(namespace)
        with self._db.transaction("list concepts", write=False) as cur:
            sql = "SELECT id, name, updated FROM concepts WHERE namespace = %s"
            return {int(i): (str(n), float(u)) for i, n, u in cur.execute(sql, (namespace,))}

    def generation(self, namespace: str = "default") -> int:
        """Write counter of ``namespace`` (bumped by a trigger in every writing transaction)."""
        namespace = clean_namespace(namespace)
        with self._db.transaction("read the generation", write=False) as cur:
            row = cur.execute("SELECT value FROM generations WHERE namespace = %s", (namespace,)).fetchone()
        return 0 if row is None else int(row[0])

    def _names(self, cur: Any, namespace: str) -> list[str]:
        return [r[0] for r in cur.execute("SELECT name FROM concepts WHERE namespace = %s ORDER BY id", (namespace,))]

    def count(self, namespace: str | None = None) -> int:
        """Number of concepts in ``namespace`` (all namespaces when None)."""
        with self._db.transaction("count concepts", write=False) as cur:
            if namespace is None:
                return int(cur.execute("SELECT COUNT(*) FROM concepts").fetchone()[0])
            namespace = clean_namespace(namespace)
            return int(cur.execute("SELECT COUNT(*) FROM concepts WHERE namespace = %s", (namespace,)).fetchone()[0])

    def images(self, name: str, *, namespace: str = "default") -> list[bytes]:
        """Encoded reference photos kept for a concept (empty unless added with ``store_images``)."""
        cid = self.get(name, namespace=namespace).id
        with self._db.transaction(f"read images of {name!r}", write=False) as cur:
            sql = "SELECT data FROM images WHERE namespace = %s AND concept_id = %s ORDER BY idx"
            return [bytes(r[0]) for r in cur.execute(sql, (clean_namespace(namespace), cid))]

    # ---- search ----------------------------------------------------------------------
    def search(self, queries: Any, *, namespace: str = "default", k: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` stored views most similar (cosine) to each query, within ``namespace`` only.

        Returns ``(ids (q, k) int64, scores (q, k) float32)``: the concept id of each found
        view (a concept may appear more than once) and its cosine similarity, best first,
        padded with id -1 and score -inf. ``queries`` is ``(q, d)`` or one ``(d,)`` vector.

        A namespace below `ANN_MIN_VIEWS` views is scanned exactly in the server (pgvector's
        ``<#>``, found through the b-tree on ``namespace``). A larger one is searched exactly
        in this process over its views, fetched once per `generation` (numpy), or, with
        ``ann=True``, through its own HNSW index in the server (built by the first search
        that finds it missing, then kept up to date by the adds).
        """
        namespace = clean_namespace(namespace)
        build = False
        with self._db.transaction("search views", write=False) as cur:
            row = cur.execute("SELECT (SELECT value FROM meta WHERE key = 'dim'), "
                              "(SELECT value FROM generations WHERE namespace = %s)", (namespace,)).fetchone()
            dim = None if row[0] is None else int(row[0])
            q, k = check_queries(queries, k, dim)
            if dim is None:
                return no_results(len(q), k)
            generation = int(row[1] or 0)
            large = self._views_in(cur, namespace, generation) >= ANN_MIN_VIEWS
            if large and not self.ann:
                owners, views = self._cached_views(cur, namespace, generation)
            elif large and not self._has_index(cur, namespace):
                build = not self.read_only
            if not large or (self.ann and not build):
                indexed = large and namespace in self._indexed
                return self._query(cur, namespace, q, k, ef_search=EF_SEARCH if indexed else None)
        if build:  # outside the read transaction: CREATE INDEX CONCURRENTLY needs its own
            self.build_index(namespace)
            return self.search(q, namespace=namespace, k=k)
        return exact_search(views, owners, q, k=k)

    # ---- writes ----------------------------------------------------------------------
    def _check_backbone(self, cur: Any, concept: Concept) -> None:
        """Record the backbone on the first add (or into an empty store); refuse another one.

        Writers hold a shared advisory lock; changing the backbone takes it exclusively, so no
        add of the old backbone can slip in while the store switches (`record_backbone`).
        """
        meta = record_backbone(cur, self.schema, self.uri, concept.backbone, concept.dim)
        if meta is not None:
            self._refuse_other_space(concept, meta["backbone"], meta["dim"],
                                     dim_differs=str(concept.dim) != meta["dim"])

    def _write_vectors(self, cur: Any, cid: int, c: Concept) -> None:
        cur.execute("DELETE FROM views WHERE concept_id = %s", (cid,))
        cur.execute("DELETE FROM parts WHERE concept_id = %s", (cid,))
        rows = [(cid, c.namespace, idx, v) for idx, v in numbered(c.views, c.negatives)]
        cur.executemany("INSERT INTO views (concept_id, namespace, idx, embedding) VALUES (%s, %s, %s, %b)", rows)
        if c.parts is not None:
            cur.execute("INSERT INTO parts (concept_id, namespace, rows, vectors) VALUES (%s, %s, %s, %s)",
                        (cid, c.namespace, len(c.parts), to_blob(c.parts)))

    def _same_name(self, cur: Any, namespace: str, name: str, exclude: int = -1) -> Row | None:
        """``(id, created, stored name)`` of the concept whose name equals ``name`` ignoring case (locked)."""
        sql = "SELECT id, created, name FROM concepts WHERE namespace = %s AND name_key = %s AND id <> %s FOR UPDATE"
        row = cur.execute(sql, (namespace, name_key(name), exclude)).fetchone()
        return None if row is None else (int(row[0]), float(row[1]), str(row[2]))

    def add(self, concept: Concept, *, replace: bool = False, images: Sequence[bytes] | None = None) -> Concept:
        """Insert ``concept`` (or, with ``replace``, overwrite the one of that name, keeping its id).

        Returns a copy with ``id``, ``created`` and ``updated`` set and vectors normalised.

        Raises:
            DuplicateConceptError: the name exists in the namespace (ignoring case) and ``replace`` is False.
            BackboneMismatchError: ``concept.backbone`` differs from the store's.
            InvalidInputError: bad name, shapes or values.
        """
        return self._add_all([self._prepared(concept)], replace, images)[0]

    def add_many(self, concepts: Sequence[Concept], *, replace: bool = False) -> list[Concept]:
        """`add` every concept in one transaction: all of them are stored, or (on any error) none."""
        return self._add_all([self._prepared(c) for c in concepts], replace, None)

    def _add_all(self, prepared: list[Concept], replace: bool, images: Sequence[bytes] | None) -> list[Concept]:
        unique = self._db._psycopg.errors.UniqueViolation
        action = f"add concept {prepared[0].name!r}" if len(prepared) == 1 else f"add {len(prepared)} concepts"
        try:
            with self._db.transaction(action, write=True) as cur:
                return [self._add(cur, c, replace, images) for c in prepared]
        except unique:  # another process added the same name between our check and insert
            if replace:
                return self._add_all(prepared, replace, images)
            raise DuplicateConceptError(
                f"a concept named {prepared[0].name!r} (or another of these {len(prepared)}) was just added "
                f"to namespace {prepared[0].namespace!r} by another process; pass replace=True to overwrite it"
            ) from None

    def _add(self, cur: Any, c: Concept, replace: bool, images: Sequence[bytes] | None) -> Concept:
        """Insert or replace one prepared concept inside an open write transaction."""
        row = self._check_add(cur, c, replace)
        now = time.time()
        values = (c.name, name_key(c.name), c.category, c.context, c.threshold, now, dump_meta(c.meta))
        if row is not None:
            cid, created = row[0], row[1]
            cur.execute("UPDATE concepts SET name = %s, name_key = %s, category = %s, context = %s, "
                        "threshold = %s, updated = %s, meta = %s::json WHERE id = %s AND namespace = %s",
                        (*values, cid, c.namespace))
            cur.execute("DELETE FROM images WHERE concept_id = %s", (cid,))
        else:
            created = c.created or now
            cid = int(cur.execute(
                "INSERT INTO concepts (name, name_key, category, context, threshold, updated, meta, "
                "namespace, created) VALUES (%s, %s, %s, %s, %s, %s, %s::json, %s, %s) RETURNING id",
                (*values, c.namespace, created)).fetchone()[0])
        self._write_vectors(cur, cid, c)
        if images and self.store_images:
            cur.executemany("INSERT INTO images (concept_id, namespace, idx, data) VALUES (%s, %s, %s, %s)",
                            [(cid, c.namespace, i, bytes(data)) for i, data in enumerate(images)])
        return dataclasses.replace(c, id=cid, created=created, updated=now)

    def update(self, concept: Concept) -> Concept:
        """Write back the fields of a stored concept (found by ``id`` *within its namespace*, else by name).

        Everything but ``created`` and the stored images is replaced; renaming is allowed;
        an id of another namespace is not found (the store never moves concepts between owners).

        Raises:
            ConceptNotFoundError: no such concept in ``concept.namespace``.
            DuplicateConceptError: the new name is taken in the namespace.
            BackboneMismatchError: ``concept.backbone`` differs from the store's.
        """
        c = self._prepared(concept)
        return self._write(f"update concept {c.name!r}", c.namespace, lambda cur: self._update(cur, c))

    def modify(self, name: str, change: Callable[[Concept], Concept], *, namespace: str = "default",
               drop_images: bool = False) -> Concept:
        """`MemoryStore.modify`: read the concept called ``name`` (ignoring case) and write back
        ``change(concept)`` in one write transaction, its row locked (``SELECT ... FOR UPDATE``)
        so concurrent writers queue; nothing is written if ``change`` raises. ``drop_images``:
        its stored photos are deleted in the same transaction."""
        name, namespace = self._key(name, namespace)

        def read_change_write(cur: Any) -> Concept:
            locked = self._same_name(cur, namespace, name)  # SELECT ... FOR UPDATE: writers queue here
            if locked is None:
                raise self._not_found(cur, namespace, name)
            stored = self._find(cur, namespace, locked[2])  # READ COMMITTED: read after the lock
            written = self._update(cur, self._changed(stored, change))
            if drop_images:
                cur.execute("DELETE FROM images WHERE concept_id = %s", (stored.id,))
            return written

        return self._write(f"change concept {name!r}", namespace, read_change_write)

    def _write(self, action: str, namespace: str, work: Callable[[Any], Concept]) -> Concept:
        try:
            with self._db.transaction(action, write=True) as cur:
                return work(cur)
        except self._db._psycopg.errors.UniqueViolation:
            raise DuplicateConceptError(
                f"cannot {action}: another process just took its new name in namespace "
                f"{namespace!r}; choose another name"
            ) from None

    def _update(self, cur: Any, c: Concept) -> Concept:
        """Write a prepared concept over the stored one, inside an open write transaction."""
        if c.id >= 0:
            sql = "SELECT id, created, name FROM concepts WHERE id = %s AND namespace = %s FOR UPDATE"
            row = cur.execute(sql, (c.id, c.namespace)).fetchone()
        else:
            sql = "SELECT id, created, name FROM concepts WHERE namespace = %s AND name = %s FOR UPDATE"
            row = cur.execute(sql, (c.namespace, c.name)).fetchone()
        cid, created = self._check_update(cur, c, row)
        now = time.time()
        cur.execute("UPDATE concepts SET name = %s, name_key = %s, category = %s, context = %s, threshold = %s, "
                    "updated = %s, meta = %s::json WHERE id = %s AND namespace = %s",
                    (c.name, name_key(c.name), c.category, c.context, c.threshold, now, dump_meta(c.meta), cid,
                     c.namespace))
        self._write_vectors(cur, cid, c)
        return dataclasses.replace(c, id=cid, created=created, updated=now)

    def remove(self, name: str, *, namespace: str = "default") -> str:
        """Delete a concept with its views, parts and images (its name compared ignoring case);
        returns its name as stored. `ConceptNotFoundError` if absent."""
        name, namespace = self._key(name, namespace)
        with self._db.transaction(f"remove concept {name!r}", write=True) as cur:
            row = cur.execute("DELETE FROM concepts WHERE namespace = %s AND name_key = %s RETURNING id, name",
                              (namespace, name_key(name))).fetchone()
            if row is None:
                raise self._not_found(cur, namespace, name)
            return str(row[1])
