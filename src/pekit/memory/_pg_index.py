"""The per-namespace HNSW index of the PostgreSQL memory, and the searches
`pekit.memory.pgvector.PgvectorMemory.search` runs through it or around it.

`PgIndex` is a mixin of `PgvectorMemory`: the server's nearest-view query (exact, or through a
namespace's own partial HNSW index), a namespace's view count (what decides between them), its
views cached in this process (for the exact search here), and `PgIndex.build_index`. Which way
a search goes, and the tunables (``ANN_MIN_VIEWS``, ``EF_SEARCH``), stay in `pekit.memory.pgvector`.
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from pekit.memory._codec import clean_namespace
from pekit.memory._pgconn import PgConnection, stack_vectors
from pekit.memory._search import no_results
from pekit.memory._store import cached

if TYPE_CHECKING:  # checked as the StoreBase it is mixed into; at run time a plain class
    from pekit.memory._store import StoreBase as _Store
else:
    _Store = object

__all__ = ["PgIndex"]

logger = logging.getLogger("pekit.memory.pgvector")  # logs as the store it is part of


class PgIndex(_Store):
    """The search index machinery of `PgvectorMemory` (see the module)."""

    _db: PgConnection
    schema: str
    _indexed: set[str]  # namespaces whose HNSW index is known to be valid
    _sizes: dict[str, tuple[int, int]]  # namespace -> (generation, views)

    def _query(self, cur: Any, namespace: str, q: np.ndarray, k: int, *,
               ef_search: int | None) -> tuple[np.ndarray, np.ndarray]:
        """Nearest views in the server, one statement per query vector; through the namespace's
        HNSW index, searched with ``hnsw.ef_search`` of at least ``ef_search``, unless that is None."""
        sql = (f"SELECT concept_id, (embedding <#> %b) FROM views WHERE namespace = {self._literal(namespace)} "
               "AND idx >= 0 ORDER BY embedding <#> %b LIMIT %s")  # a literal: the partial index must match
        if ef_search is not None:  # the plan must be the index's, whatever the (possibly stale) statistics say
            cur.execute(f"SET LOCAL hnsw.ef_search = {max(ef_search, k)}")
            cur.execute("SET LOCAL enable_seqscan = off")
            cur.execute("SET LOCAL enable_sort = off")
        ids, scores = no_results(len(q), k)
        for i, vector in enumerate(q):
            found = cur.execute(sql, (vector, vector, k)).fetchall()
            if found:
                ids[i, :len(found)] = [r[0] for r in found]
                scores[i, :len(found)] = [-r[1] for r in found]
        return ids, scores

    def _views_in(self, cur: Any, namespace: str, generation: int) -> int:
        """Views of ``namespace`` (counted again only after a write to it)."""
        sql = "SELECT COUNT(*) FROM views WHERE namespace = %s AND idx >= 0"
        return cached(self._sizes, namespace, generation, lambda: int(cur.execute(sql, (namespace,)).fetchone()[0]))

    def _cached_views(self, cur: Any, namespace: str, generation: int) -> tuple[np.ndarray, np.ndarray]:
        """``(owners (N,), views (N, d))`` of ``namespace``, fetched again after a write."""

        def fetch() -> tuple[np.ndarray, np.ndarray]:
            sql = "SELECT concept_id, embedding FROM views WHERE namespace = %s AND idx >= 0 ORDER BY concept_id, idx"
            rows = cur.execute(sql, (namespace,)).fetchall()
            return np.array([r[0] for r in rows], np.int64), stack_vectors([r[1] for r in rows])

        return cached(self._views, namespace, generation, fetch)

    def _literal(self, namespace: str) -> str:
        from psycopg import sql

        return sql.Literal(namespace).as_string(self._db.connection())

    def _index_name(self, namespace: str) -> str:
        return "views_ann_" + hashlib.sha1(namespace.encode()).hexdigest()[:20]

    def _has_index(self, cur: Any, namespace: str) -> bool:
        """True when ``namespace``'s HNSW index exists and is valid (remembered once it is)."""
        if namespace not in self._indexed:
            row = cur.execute("SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                              "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relname = %s AND n.nspname = %s",
                              (self._index_name(namespace), self.schema)).fetchone()
            if row and row[0]:
                self._indexed.add(namespace)
        return namespace in self._indexed

    def build_index(self, namespace: str = "default") -> float:
        """Build (or rebuild, if a build was interrupted) the HNSW index of ``namespace``'s views.

        Runs ``CREATE INDEX CONCURRENTLY``: other namespaces (and this one) stay readable and
        writable meanwhile. Returns the seconds it took. `search` calls it when needed.
        """
        namespace = clean_namespace(namespace)
        name, lit = self._index_name(namespace), self._literal(namespace)
        start = time.perf_counter()
        logger.info("building the HNSW search index of namespace %r in %s", namespace, self.uri)
        with self._db.autocommit(f"index namespace {namespace!r}") as cur:
            cur.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {self.schema}.{name}")
            cur.execute("SET maintenance_work_mem = '512MB'")
            cur.execute(f"CREATE INDEX CONCURRENTLY {name} ON {self.schema}.views USING hnsw "
                        f"(embedding vector_ip_ops) WHERE namespace = {lit} AND idx >= 0")
            cur.execute("RESET maintenance_work_mem")
            cur.execute(f"ANALYZE {self.schema}.views")
        self._indexed.add(namespace)
        return time.perf_counter() - start
