"""Exact nearest-view search over a namespace's stacked views (numpy; used by `SqliteMemory.search`
and as the reference the PostgreSQL store's index is measured against).

Example:
    >>> import numpy as np
    >>> views, ids = np.eye(3, dtype=np.float32), np.array([7, 7, 9])
    >>> found, scores = exact_search(views, ids, np.array([[0.0, 0.6, 0.8]], np.float32), k=2)
    >>> found.tolist(), [round(float(s), 2) for s in scores[0]]
    ([[9, 7]], [0.8, 0.6])
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pekit.errors import InvalidInputError
from pekit.memory._codec import unit_rows
from pekit.types import whole_number

__all__ = ["MAX_K", "check_queries", "exact_search", "no_results"]

#: most results per query: the answer is ``(q, k)`` whatever is stored (padded), so ``k`` is bounded
MAX_K = 1_000_000


def check_queries(queries: Any, k: Any, dim: int | None) -> tuple[np.ndarray, int]:
    """``(q, d)`` unit float32 queries (one ``(d,)`` vector becomes one row) and a checked ``k``."""
    a = np.asarray(queries, dtype=np.float32)
    if a.ndim == 1:
        a = a[None]
    if not whole_number(k) or k < 1:
        raise InvalidInputError(f"k (results per query) must be a positive integer, but got {k!r}")
    if k > MAX_K:
        raise InvalidInputError(f"k (results per query) is at most {MAX_K:,} (the answer is padded to k per "
                                f"query), but got {k:,}; ask for as many as you will read")
    return unit_rows(a, what="queries", dim=dim), int(k)


def no_results(q: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, scores)`` of ``q`` queries with nothing found: ids -1, scores -inf."""
    return np.full((q, k), -1, np.int64), np.full((q, k), -np.inf, np.float32)


def exact_search(views: np.ndarray, ids: np.ndarray, queries: np.ndarray, *, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` views most similar (cosine) to each query: ``(ids (q, k) int64, scores (q, k) float32)``.

    ``views (N, d)`` and ``queries (q, d)`` are unit rows; ``ids (N,)`` gives each view's concept
    id (a concept with several views may appear more than once). Best first; when ``N < k``
    the rest is padded with id -1 and score -inf.
    """
    found, scores = no_results(len(queries), k)
    if len(views) == 0 or len(queries) == 0:
        return found, scores
    sims = queries @ views.T  # (q, N)
    top = min(k, len(views))
    part = np.argpartition(-sims, top - 1, axis=1)[:, :top] if top < len(views) else np.tile(
        np.arange(len(views)), (len(queries), 1))
    best = np.take_along_axis(sims, part, axis=1)
    order = np.argsort(-best, axis=1, kind="stable")
    rows = np.take_along_axis(part, order, axis=1)
    found[:, :top] = ids[rows]
    scores[:, :top] = np.take_along_axis(best, order, axis=1)
    return found, scores
