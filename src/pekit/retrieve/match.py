"""Matching proposals against memory: cosine similarity and patch-level verification.

Pure functions over arrays; the `Gallery` is the memory flattened for matching.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pekit.embed.colour import decode_colour
from pekit.types import Concept

__all__ = ["COLOURS", "PART_GROUPS", "Gallery", "closest_parts", "concept_colours", "part_agreement", "part_groups",
           "part_scores", "similarity", "thresholds_or"]

#: ``Concept.meta`` key: sizes of the consecutive groups of ``Concept.parts`` (the parts of
#: full-size views, then of zoomed-out views), each scored on its own (`part_agreement`).
PART_GROUPS = "part_groups"
#: ``Concept.meta`` key of the colour histogram of each view, as text (`pekit.embed.colour.encode_colour`).
COLOURS = "colours"


def _valid_groups(groups: object, n: int) -> list[int]:
    if isinstance(groups, (list, tuple)) and groups and all(isinstance(g, int) and g >= 0 for g in groups) \
            and sum(groups) == n:
        return [int(g) for g in groups if g > 0] or [n]
    return [n]


def _recorded(concept: Concept, key: str) -> Any:
    """What a concept's ``meta`` records under ``key`` (validated where it is used), or None."""
    return concept.meta.get(key) if isinstance(concept.meta, dict) else None


def _decoded_colours(rows: Any, views: int) -> np.ndarray | None:
    if not isinstance(rows, list) or len(rows) != views or not rows:
        return None
    decoded = [decode_colour(row) for row in rows if row is not None]  # None: a black-and-white view
    if not decoded or any(d is None for d in decoded):
        return None
    return np.stack(decoded)  # type: ignore[arg-type]


def concept_colours(concept: Concept) -> np.ndarray | None:
    """``(v, BINS)`` colour histograms of a concept's views that have one (`COLOURS`,
    `decode_colour`; a view of a black-and-white photo records None and is left out), or
    None when it has none, or its record is not one entry per view, each None or a valid
    histogram (a damaged or hand-edited record is ignored: no colour term, never an error)."""
    return _decoded_colours(_recorded(concept, COLOURS), len(concept.views))


def part_groups(concept: Concept) -> list[int]:
    """A concept's part group sizes (one group when none are recorded, or when they do
    not add up to its parts)."""
    return _valid_groups(_recorded(concept, PART_GROUPS), 0 if concept.parts is None else len(concept.parts))


@dataclass
class Gallery:
    """Concepts flattened for matching.

    Attributes:
        names: ``C`` concept names; ``ids``: ``(C,)`` concept ids.
        views: ``(N, d)`` all view embeddings; ``owner``: ``(N,)`` concept index of each view.
        thresholds: ``(C,)`` per-concept thresholds (NaN = use the global one).
        parts: per concept ``(m_c, d)`` part embeddings or None.
        negatives: per concept ``(n_c, d)`` negative views (regions the user said are not
            it) or None.
        groups: per concept the recorded sizes of its part groups (`PART_GROUPS`) or None;
            checked against the parts when they are used (`groups_of`).
        colours: per concept the recorded colours of its views (`COLOURS`, as stored) or
            None; decoded and checked only when a gallery is scored (`colour_matrix`), so a
            large namespace's lazy gallery decodes only its shortlisted subsets.
        fetch: for a gallery built from a store without part prototypes in RAM
            (`pekit.retrieve.GalleryCache` on a large namespace): ``ids -> {id: (m, d)}``,
            called by `subset` for the concepts that can win; ``parts`` are then all None
            until fetched. None: ``parts`` are complete.
    """

    names: list[str]
    ids: np.ndarray
    views: np.ndarray
    owner: np.ndarray
    thresholds: np.ndarray
    parts: list[np.ndarray | None]
    negatives: list[np.ndarray | None] | None = None
    fetch: Callable[[Sequence[int]], dict[int, np.ndarray]] | None = None
    groups: list[Any] | None = None  # raw recorded values: `groups_of` validates them
    colours: list[Any] | None = None  # raw recorded values: `colour_matrix` decodes them

    def __post_init__(self) -> None:
        if self.negatives is None:
            self.negatives = [None] * len(self.names)
        if self.groups is None:
            self.groups = [None] * len(self.names)
        if self.colours is None:
            self.colours = [None] * len(self.names)
        self._parts_flat: tuple[np.ndarray, np.ndarray] | None = None
        self._segments: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._view_starts: np.ndarray | None = None
        self._colours_flat: tuple[np.ndarray, np.ndarray] | None = None
        self._one: Gallery | None = None  # `one_threshold`
        self._closest: dict[tuple[int, int], tuple[float, int]] = {}  # `closest_parts`, by (concept, limit)

    def colour_matrix(self) -> tuple[np.ndarray, np.ndarray]:
        """The square roots of every concept's view colours stacked, ``(V, BINS)``, and the
        concept of each row, ``(V,)`` (concepts without colours have no rows), built once:
        a region's Bhattacharyya agreement with all of them is one product."""
        if self._colours_flat is None:
            counts = np.bincount(self.owner, minlength=len(self)) if len(self.owner) else np.zeros(len(self), int)
            decoded = [_decoded_colours(raw, int(counts[k])) for k, raw in enumerate(self.colours or [])]
            rows = [(k, c) for k, c in enumerate(decoded) if c is not None]
            if not rows:
                self._colours_flat = (np.zeros((0, 0), np.float32), np.zeros(0, np.int64))
            else:
                stacked = np.clip(np.concatenate([c for _, c in rows]), 0, None)
                self._colours_flat = (np.sqrt(stacked).astype(np.float32),
                                      np.concatenate([np.full(len(c), k, np.int64) for k, c in rows]))
        return self._colours_flat

    def view_starts(self) -> np.ndarray | None:
        """First view row of each concept when every concept's views are contiguous and in
        concept order (how `from_concepts` and `subset` build them), else None."""
        if self._view_starts is None:
            owner = self.owner
            ok = len(owner) > 0 and owner[0] == 0 and bool(np.all(np.diff(owner) >= 0)) \
                and int(owner[-1]) == len(self) - 1 and len(np.unique(owner)) == len(self)
            self._view_starts = np.searchsorted(owner, np.arange(len(self))) if ok else np.zeros(0, np.int64)
        return self._view_starts if len(self._view_starts) else None

    def groups_of(self, k: int) -> list[int]:
        """Sizes of concept ``k``'s part groups (one group unless a valid split is recorded)."""
        part = self.parts[k]
        return _valid_groups((self.groups or [None] * len(self))[k], 0 if part is None else len(part))

    def part_segments(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The rows of `parts_matrix` per part group of each concept that has parts:
        ``starts``, ``sizes``, ``owner`` (a concept has one segment per part group)."""
        if self._segments is None:
            _, offsets = self.parts_matrix()
            starts: list[int] = []
            sizes: list[int] = []
            owner: list[int] = []
            for k in np.nonzero(np.diff(offsets) > 0)[0]:
                at = int(offsets[k])
                for size in self.groups_of(int(k)):
                    starts.append(at)
                    sizes.append(size)
                    owner.append(int(k))
                    at += size
            self._segments = (np.array(starts, np.int64), np.array(sizes, np.int64), np.array(owner, np.int64))
        return self._segments

    def parts_matrix(self) -> tuple[np.ndarray, np.ndarray]:
        """All concepts' part prototypes stacked: ``(P, d)`` and ``(C + 1,)`` row offsets
        (concept ``k`` owns rows ``offsets[k]:offsets[k + 1]``), built once per gallery."""
        if self._parts_flat is None:
            if self.fetch is not None:  # complete the parts first (every concept: costly on a big gallery)
                return self.subset(np.arange(len(self))).parts_matrix()
            blocks = [p if p is not None else np.zeros((0, self.views.shape[1]), np.float32) for p in self.parts]
            offsets = np.cumsum([0, *(len(b) for b in blocks)]).astype(np.int64)
            flat = np.concatenate(blocks).astype(np.float32) if blocks else np.zeros((0, 0), np.float32)
            self._parts_flat = (flat, offsets)
        return self._parts_flat

    def __len__(self) -> int:
        return len(self.names)

    @classmethod
    def from_concepts(cls, concepts: list[Concept], *,
                      fetch: Callable[[Sequence[int]], dict[int, np.ndarray]] | None = None) -> Gallery:
        """The gallery of ``concepts``; with ``fetch``, their ``parts`` are not used (see ``fetch``)."""
        if not concepts:
            return cls([], np.zeros(0, np.int64), np.zeros((0, 0), np.float32),
                       np.zeros(0, np.int64), np.zeros(0, np.float32), [])
        views = np.concatenate([c.views for c in concepts]).astype(np.float32)
        owner = np.concatenate([np.full(len(c.views), i) for i, c in enumerate(concepts)])
        thr = np.array([np.nan if c.threshold is None else c.threshold for c in concepts], np.float32)
        return cls([c.name for c in concepts], np.array([c.id for c in concepts], np.int64),
                   views, owner.astype(np.int64), thr,
                   [None if fetch is not None else c.parts for c in concepts],
                   [c.negatives for c in concepts], fetch,
                   [_recorded(c, PART_GROUPS) for c in concepts], [_recorded(c, COLOURS) for c in concepts])

    def one_threshold(self) -> Gallery:
        """This gallery with no concept's own threshold (each falls back to the caller's): what
        a threshold given for one call means, every concept at it. Itself when no concept has
        one (the usual case), else a copy made once, sharing the flattened arrays."""
        if np.isnan(self.thresholds).all():
            return self
        one = self._one
        if one is None:  # made whole before it is shared: another thread sees None or the finished copy
            one = copy.copy(self)
            one.thresholds = np.full(len(self.names), np.nan, np.float32)
            one._one = one
            self._one = one
        return one

    def replaced(self, remove: set[int], add: list[Concept]) -> Gallery:
        """A copy without the concepts whose ids are in ``remove``, with ``add`` appended
        (their parts are kept unless the gallery is lazy). Nothing is fetched: this is how
        `pekit.retrieve.cache.GalleryCache` refreshes a large namespace after a few writes.
        """
        keep = [k for k in range(len(self)) if int(self.ids[k]) not in remove]
        mask = np.isin(self.owner, keep)
        remap = np.full(len(self), -1, np.int64)
        remap[keep] = np.arange(len(keep))
        negatives = self.negatives or [None] * len(self)
        groups = self.groups or [None] * len(self)
        colours = self.colours or [None] * len(self)
        d = self.views.shape[1] if self.views.size else (add[0].views.shape[1] if add else 0)
        views = [self.views[mask].reshape(-1, d)] + [c.views.astype(np.float32) for c in add]
        owner = [remap[self.owner[mask]]] + [np.full(len(c.views), len(keep) + i, np.int64) for i, c in enumerate(add)]
        thr = [self.thresholds[keep]] + [np.array([np.nan if c.threshold is None else c.threshold], np.float32)
                                          for c in add]
        lazy = self.fetch is not None
        return Gallery([self.names[k] for k in keep] + [c.name for c in add],
                       np.array([int(self.ids[k]) for k in keep] + [c.id for c in add], np.int64),
                       np.concatenate(views).astype(np.float32), np.concatenate(owner).astype(np.int64),
                       np.concatenate(thr).astype(np.float32),
                       [self.parts[k] for k in keep] + [None if lazy else c.parts for c in add],
                       [negatives[k] for k in keep] + [c.negatives for c in add], self.fetch,
                       [groups[k] for k in keep] + [_recorded(c, PART_GROUPS) for c in add],
                       [colours[k] for k in keep] + [_recorded(c, COLOURS) for c in add])

    def subset(self, indices: np.ndarray | list[int]) -> Gallery:
        """The gallery of the concepts at ``indices`` (in that order).

        >>> g = Gallery.from_concepts([Concept("a", np.eye(1, 4)), Concept("b", np.eye(1, 4, 1))])
        >>> g.subset([1]).names
        ['b']
        """
        idx = np.asarray(indices, np.int64).reshape(-1)
        remap = np.full(len(self), -1, np.int64)
        remap[idx] = np.arange(len(idx))
        keep = np.isin(self.owner, idx)
        negatives = self.negatives or [None] * len(self)
        parts = [self.parts[i] for i in idx]
        if self.fetch is not None:  # a lazy gallery: the subset gets its parts from the store
            fetched = self.fetch([int(self.ids[i]) for i in idx])
            parts = [fetched.get(int(self.ids[i])) for i in idx]
        groups = self.groups or [None] * len(self)
        colours = self.colours or [None] * len(self)
        return Gallery([self.names[i] for i in idx], self.ids[idx], self.views[keep], remap[self.owner[keep]],
                       self.thresholds[idx], parts, [negatives[i] for i in idx], groups=[groups[i] for i in idx],
                       colours=[colours[i] for i in idx])


def part_agreement(sims: np.ndarray, starts: np.ndarray, sizes: np.ndarray, owner: np.ndarray,
                   concepts: int) -> np.ndarray:
    """Every concept's symmetric patch-level agreement with one region: ``(C,)``.

    `part_scores` for all concepts at once. ``sims``: ``(r, P)`` cosine of the region's
    ``r`` unit patches to all ``P`` parts, grouped by concept (``starts``/``sizes``/``owner``
    from `Gallery.part_segments`): ``0.5 * (mean over the region's patches of their best
    part + mean over the concept's parts of their best patch)``. -1 where a concept has no
    parts or the region is empty.
    """
    out = np.full(concepts, -1.0, np.float32)
    if sims.size == 0 or len(starts) == 0:
        return out
    best_part = np.maximum.reduceat(sims, starts, axis=1).mean(0)        # region -> view parts
    best_patch = np.add.reduceat(sims.max(0), starts) / sizes            # view parts -> region
    np.maximum.at(out, owner, (0.5 * (best_part + best_patch)).astype(np.float32))
    return out


def group_agreement(sims: np.ndarray, groups: list[int]) -> float:
    """`part_agreement` of one region with one concept whose parts come in ``groups``
    (sizes, in order; `PART_GROUPS`): the best group's. ``sims``: ``(r, sum(groups))``."""
    starts = np.cumsum([0, *groups[:-1]]).astype(np.int64)
    return float(part_agreement(sims, starts, np.array(groups, np.int64), np.zeros(len(groups), np.int64), 1)[0])


def closest_parts(gallery: Gallery, k: int, *, limit: int = 64) -> tuple[float, int]:
    """The other concept whose reference views concept ``k``'s parts agree with best, and how
    well: the best `part_agreement` of ``k``'s parts with another concept's part group (one
    of its views, or a zoomed-out copy) taken as a region, in the units of a region's score,
    over the ``limit`` concepts whose views are closest to ``k``'s (a large, lazily read
    gallery fetches only their parts). ``(-1.0, -1)`` when ``k`` has no parts or nothing
    else in memory has any. Kept on the gallery (a memory's gallery lives until its next write).

    Concepts whose parts agree with another thing in memory above the threshold (two corgis,
    two grey plushies) are the ones a thing of that kind that was never introduced gets named
    after (docs/results.md: at k = 2 on the development set, 44 % of the concepts took 91 % of
    such wrong names).

    >>> rng = np.random.default_rng(0)
    >>> parts = [p / np.linalg.norm(p, axis=1, keepdims=True) for p in rng.normal(size=(2, 4, 8))]
    >>> g = Gallery.from_concepts([Concept("a", parts[0][:1], parts=parts[0]),
    ...                            Concept("b", parts[1][:1], parts=parts[1]),
    ...                            Concept("a again", parts[0][:1], parts=parts[0][::-1].copy())])
    >>> agreement, j = closest_parts(g, 0)
    >>> round(agreement, 3), g.names[j]
    (1.0, 'a again')
    """
    key = (int(k), int(limit))
    if key not in gallery._closest:
        gallery._closest[key] = _closest_parts(gallery, int(k), int(limit))
    return gallery._closest[key]


def _closest_parts(gallery: Gallery, k: int, limit: int) -> tuple[float, int]:
    """`closest_parts`, computed."""
    others = np.delete(np.arange(len(gallery)), k)
    if len(others) > limit:  # the closest by their views (no parts needed)
        sims = similarity(gallery.views[gallery.owner == k], gallery).max(0)
        others = others[np.argsort(-sims[others], kind="stable")[:limit]]
    local = gallery.subset(np.concatenate([[k], others]).astype(np.int64))
    mine = local.parts[0]
    best, at_best = -1.0, -1
    if mine is None or not len(mine):
        return best, at_best
    groups = local.groups_of(0)
    for j in range(1, len(local)):
        theirs = local.parts[j]
        if theirs is None or not len(theirs):
            continue
        at = 0
        for size in local.groups_of(j):  # each of its views (or zoomed-out copies) as a region
            agreement = group_agreement(theirs[at:at + size] @ mine.T, groups)
            if agreement > best:
                best, at_best = agreement, int(others[j - 1])
            at += size
    return best, at_best


def similarity(embeddings: np.ndarray, gallery: Gallery) -> np.ndarray:
    """``(m, d)`` unit embeddings -> ``(m, C)`` best cosine over each concept's views."""
    m, c = len(embeddings), len(gallery)
    if m == 0 or c == 0:
        return np.zeros((m, c), np.float32)
    sims = embeddings @ gallery.views.T
    starts = gallery.view_starts()
    if starts is not None and len(gallery.views) == c:  # one view per concept, in order: done
        return sims.astype(np.float32, copy=False)
    if starts is not None:  # each concept's views are contiguous (as built): one pass
        return np.maximum.reduceat(sims, starts, axis=1).astype(np.float32, copy=False)
    out = np.full((m, c), -1.0, np.float32)
    np.maximum.at(out.T, gallery.owner, sims.T)
    return out


def part_scores(region: np.ndarray, parts: np.ndarray) -> float:
    """Patch-level agreement of a region with a concept's parts, in [-1, 1].

    ``region``: ``(r, d)`` unit patch features inside the proposal; ``parts``: ``(p, d)``
    unit part embeddings of the concept. The score averages both directions of best
    matches (a symmetric chamfer similarity): every part should be found in the region and
    every region patch should look like some part. Instance details (texture, markings)
    that a mean over the whole object blurs survive at this level.
    """
    if len(region) == 0 or len(parts) == 0:
        return -1.0
    s = parts @ region.T
    return float(0.5 * (s.max(1).mean() + s.max(0).mean()))


def thresholds_or(thresholds: np.ndarray, default: float) -> np.ndarray:
    """Each concept's own threshold (`Gallery.thresholds`), ``default`` where it has none (NaN)."""
    return np.where(np.isnan(thresholds), default, thresholds)
