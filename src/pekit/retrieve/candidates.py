"""Stage 2's matching on one pass: a query `Scan` against a `Gallery` -> candidates per concept.

`first_look` is what recognition does with one backbone pass of a photo:

* **assignment**: every proposal goes to the concept whose views its pooled embedding is
  closest to (`winners`, competitive mode); a concept is matched only on the proposals it
  wins, or, if it wins none, on a region seeded at its most part-like patch (`peak_seed`;
  with ``part_seeds_also``, that seed's region also replaces the won proposal's when it
  shares no patch with it and scores higher: a small object away from a look-alike);
* **extent**: the matched region is grown to the whole object (`object_extent`);
* **verification**: the region is scored by its symmetric patch-level agreement with the
  concept's parts (`region_score`; `part_agreement`), plus, with ``colour_weight``, how
  close its colours are to the concept's views' (`colour_term`);
* **vetoes**: region-level competition (another concept's parts agree better) and the
  user's corrections (a negative view agrees at least as well). With ``contested``, a small
  region that competition vetoes is kept, marked `Candidate.contested`, for the second
  look to decide on a magnified crop.

No threshold is applied here; `pekit.retrieve.second_look` re-scores near-threshold and
small candidates on a crop, and `Pipeline.recognize` thresholds them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from pekit.embed.colour import region_colour
from pekit.embed.pooling import pool
from pekit.presets import RecognitionConfig
from pekit.retrieve.extent import mask_xyxy, object_extent
from pekit.retrieve.match import Gallery, part_agreement, part_scores, similarity
from pekit.retrieve.nms import nms
from pekit.retrieve.proposals import Proposals
from pekit.types import PatchGrid

__all__ = ["NO_SCORE", "Candidate", "Scan", "agreement", "colour_term", "first_look", "global_score", "peak_seed",
           "region_score", "seed_floor", "shortlist", "winners"]

#: Score of a concept that has no candidate region in an image (below any threshold).
NO_SCORE = -1e9


@dataclass
class Scan:
    """A query grid made ready for matching (no backbone pass: all pooled from ``grid``).

    Attributes:
        grid: the image's `PatchGrid`.
        proposals: candidate regions over the grid.
        embeddings: ``(m, d)`` unit embeddings of the proposals.
        unit: ``(h*w, d)`` unit patch features (for part-level scores and extents).
    """

    grid: PatchGrid
    proposals: Proposals
    embeddings: np.ndarray
    unit: np.ndarray
    _part_sims: tuple[Gallery, np.ndarray] | None = None

    def concept_part_sims(self, gallery: Gallery, k: int) -> np.ndarray:
        """``(h*w, p_k)``: the columns of `part_sims` that belong to concept ``k``."""
        _, offsets = gallery.parts_matrix()
        return self.part_sims(gallery)[:, offsets[k]:offsets[k + 1]]

    def part_sims(self, gallery: Gallery) -> np.ndarray:
        """``(h*w, P)`` cosine of every patch to every part of ``gallery`` (one product, cached)."""
        if self._part_sims is None or self._part_sims[0] is not gallery:
            flat, _ = gallery.parts_matrix()
            self._part_sims = (gallery, self.unit @ flat.T)
        return self._part_sims[1]


@dataclass
class Candidate:
    """A concept's best region in one image (before the threshold).

    Attributes:
        concept: index of the concept in the gallery.
        score: the region's score (`region_score`; what the threshold applies to).
        xyxy: ``(4,)`` box of the object's extent in image pixels.
        region: ``(h, w)`` bool patch mask of the object's extent.
        peak: ``(row, col)`` of the region's most concept-like patch (the patch most like
            one of the concept's parts), when known.
        contested: another concept's parts agree better with the region (region-level
            competition lost): not a name, only a reason for a second look.
    """

    concept: int
    score: float
    xyxy: np.ndarray
    region: np.ndarray
    peak: tuple[int, int] | None = None
    contested: bool = False


def peak_seed(simmap: np.ndarray) -> np.ndarray:
    """``(h, w)`` weights: the 3 x 3 patches around the most concept-like patch."""
    y, x = np.unravel_index(int(np.argmax(simmap)), simmap.shape)
    seed = np.zeros(simmap.shape, np.float32)
    seed[max(0, y - 1):y + 2, max(0, x - 1):x + 2] = 1.0
    return seed


def agreement(scan: Scan, gallery: Gallery, region: np.ndarray) -> np.ndarray:
    """``(C,)`` every concept's part agreement with a ``(h, w)`` bool region (`part_agreement`)."""
    starts, sizes, owner = gallery.part_segments()
    return part_agreement(scan.part_sims(gallery)[region.reshape(-1)], starts, sizes, owner, len(gallery))


def colour_term(config: RecognitionConfig, scan: Scan, gallery: Gallery, region: np.ndarray) -> np.ndarray | None:
    """``(C,)``: what colour adds to every concept's score on a ``(h, w)`` bool region,
    ``colour_weight * (agreement - colour_neutral)`` (`pekit.embed.colour`; 0 for a concept
    without colours), or None when colour is off or the scan's grid has no patch colours."""
    if config.colour_weight <= 0 or scan.grid.colours is None:
        return None
    roots, owner = gallery.colour_matrix()
    out = np.zeros(len(gallery), np.float32)
    if len(owner) and roots.shape[1] == scan.grid.colours.shape[-1]:
        agree = np.full(len(gallery), config.colour_neutral, np.float32)
        agree[owner] = -np.inf  # concepts with colours: the best of their views
        np.maximum.at(agree, owner, roots @ np.sqrt(region_colour(scan.grid.colours, region)))
        out = config.colour_weight * (agree - config.colour_neutral)
    return out.astype(np.float32)


def global_score(scan: Scan, gallery: Gallery, k: int, region: np.ndarray) -> float:
    """Cosine of the region's mean embedding to concept ``k``'s best view."""
    embedding = pool(scan.grid, region.astype(np.float32)[None])[0]
    views = gallery.views[gallery.owner == k]
    return float((views @ embedding).max()) if len(views) else -1.0


def region_score(config: RecognitionConfig, scan: Scan, gallery: Gallery, k: int, region: np.ndarray,
                 agreement_: np.ndarray | None = None, colour_: np.ndarray | None = None) -> float:
    """Score of concept ``k`` on a ``(h, w)`` bool region of the scan.

    ``(1 - verify_weight) * global + verify_weight * parts``: the cosine of the region's
    mean embedding to the concept's best view (category-level evidence: it already
    chose the region and the winning concept), and the symmetric patch-level agreement
    with its part prototypes (`part_scores`; instance-level evidence); plus the colour
    term (`colour_term`) when colour is compared. ``agreement_`` / ``colour_``: the
    region's `agreement` / `colour_term` for every concept, when already computed.
    """
    w = config.verify_weight
    _, offsets = gallery.parts_matrix()
    if colour_ is None:
        colour_ = colour_term(config, scan, gallery, region)
    extra = 0.0 if colour_ is None else float(colour_[k])
    if w == 0 or offsets[k + 1] == offsets[k]:  # no verification, or no parts: the global score is all
        return global_score(scan, gallery, k, region) + extra
    if agreement_ is None:
        agreement_ = agreement(scan, gallery, region)
    parts_score = float(agreement_[k])
    base = parts_score if w == 1 else (1 - w) * global_score(scan, gallery, k, region) + w * parts_score
    return base + extra


def winners(config: RecognitionConfig, sims: np.ndarray, compete: bool) -> np.ndarray:
    """``(m, C)`` bool: proposal ``i`` may be named after concept ``k`` (competitive assignment)."""
    if compete and sims.shape[1] > 1 and config.proposal_competition:
        best = sims.argmax(1)
        ordered = np.partition(sims, -2, axis=1)
        ok = (ordered[:, -1] - ordered[:, -2]) >= config.margin
        allowed = np.zeros_like(sims, dtype=bool)
        allowed[np.arange(len(sims)), best] = ok
        return allowed
    return np.ones_like(sims, dtype=bool)


def shortlist(config: RecognitionConfig, sims: np.ndarray, allowed: np.ndarray, compete: bool,
              concepts: np.ndarray | None) -> np.ndarray:
    """Sorted gallery indices of at most ``config.shortlist`` concepts that can win:
    proposal winners by their best similarity, then the closest runners-up (rivals for
    region-level competition); plus ``concepts`` if given. ``allowed``: `winners` of ``sims``."""
    limit = config.shortlist
    best = sims.max(0) if len(sims) else np.full(sims.shape[1], -1.0, np.float32)
    won = np.asarray(allowed.any(0)) if compete else np.ones(sims.shape[1], bool)
    order = np.argsort(-best, kind="stable")
    winning = order[won[order]][: max(1, (3 * limit) // 4)]
    rivals = order[~np.isin(order, winning)][: limit - len(winning)]
    keep = np.union1d(winning, rivals)
    if concepts is not None:
        keep = np.union1d(keep, np.asarray(concepts, np.int64))
    return keep.astype(np.int64)


def seed_floor(config: RecognitionConfig, gallery: Gallery, k: int) -> float:
    """The score below which a seeded region of concept ``k`` could not be named (its
    threshold, lowered by the second-look band, whose candidates may sit below it)."""
    own = float(gallery.thresholds[k])
    floor = config.threshold if np.isnan(own) else min(config.threshold, own)
    if config.second_look:
        floor -= config.second_look_band
    return floor - 1e-4


def first_look(config: RecognitionConfig, scan: Scan, gallery: Gallery, *, per_concept: int = 1,
               competitive: bool | None = None, concepts: np.ndarray | None = None,
               contested: bool = False) -> list[Candidate]:
    """Scored regions per concept on one pass, best first within each concept. No threshold.

    Up to ``per_concept`` non-overlapping regions per concept, each only among the
    proposals the concept wins (competitive assignment, unless ``competitive=False``
    or the gallery has one concept) or seeded at its most part-like patch (when it wins
    none, or with ``part_seeds_also`` where no won region is), each grown to the object's extent, scored and
    vetoed by region-level competition or negative views. ``concepts``: only score these
    gallery indices (the others still compete for proposals). A large (or lazily loaded)
    gallery is verified only for the concepts that can win (`shortlist`). ``contested``: keep
    a small region (under ``config.second_look_small`` of the grid) that region-level
    competition vetoes, marked `Candidate.contested` (only for `second_look`, which drops
    it unless its crop finds the concept).
    """
    if len(gallery) == 0:
        return []
    sims = similarity(scan.embeddings, gallery)
    compete = config.competitive if competitive is None else competitive
    if len(gallery) <= 2 * config.shortlist and gallery.fetch is None:
        return _scored(config, scan, gallery, sims, per_concept, compete, concepts, contested=contested)
    allowed = winners(config, sims, compete)  # competition for proposals: over the whole gallery
    keep = shortlist(config, sims, allowed, compete, concepts)
    local = None if concepts is None else np.searchsorted(keep, np.asarray(concepts, np.int64))
    found = _scored(config, scan, gallery.subset(keep), sims[:, keep], per_concept, compete, local,
                    allowed=allowed[:, keep], contested=contested)
    return [dataclasses.replace(cand, concept=int(keep[cand.concept])) for cand in found]


def _scored(config: RecognitionConfig, scan: Scan, gallery: Gallery, sims: np.ndarray, per_concept: int,
            compete: bool, concepts: np.ndarray | None, allowed: np.ndarray | None = None,
            contested: bool = False) -> list[Candidate]:
    """`first_look` over a gallery small enough to verify every concept."""
    cfg = config
    c = len(gallery)
    props = scan.proposals
    allowed = winners(cfg, sims, compete) if allowed is None else allowed
    negatives = gallery.negatives or [None] * c
    coloured = np.zeros(c, bool)  # concepts whose views have colours (decoded only when colour counts)
    if cfg.colour_weight > 0 and scan.grid.colours is not None:
        coloured[gallery.colour_matrix()[1]] = True
    out: list[Candidate] = []
    for k in range(c) if concepts is None else [int(i) for i in concepts]:
        neg = negatives[k]
        rows = np.nonzero(allowed[:, k])[0]
        parts = gallery.parts[k]
        simmap = None
        seeds: list[np.ndarray] = []
        if rows.size:
            rows = rows[np.argsort(-sims[rows, k], kind="stable")]
            if per_concept > 1:
                rows = rows[nms(props.xyxy[rows], sims[rows, k], iou=0.3)]
            seeds = [props.weights[p] for p in rows[:per_concept]]
        peak = -1  # index in ``seeds`` of the part seed, if any
        if (cfg.part_seeds and parts is not None and len(parts)
                and (not rows.size or cfg.part_seeds_also)):
            # no proposal is this concept's (a small object inside larger windows), or, with
            # part_seeds_also, the ones it won may be a look-alike: seed a region at the patch
            # most like its parts, grown below; competition still applies
            sims_k = scan.concept_part_sims(gallery, k)
            # the part agreement of any region is at most the mean of (best patch-part
            # cosine, mean over parts of their best patch anywhere): below the floor,
            # no region of this image can be named k, so none is grown
            bound = max(0.5 * (float(g.max()) + float(g.max(0).mean()))  # the best part group's
                        for g in np.split(sims_k, np.cumsum(gallery.groups_of(k))[:-1], axis=1))
            if cfg.colour_weight > 0 and scan.grid.colours is not None and coloured[k]:
                bound += cfg.colour_weight * (1.0 - cfg.colour_neutral)  # the most colour can add
            if cfg.verify_weight < 1 or bound >= seed_floor(cfg, gallery, k):
                simmap = sims_k.max(1).reshape(scan.grid.shape)
                peak = len(seeds)
                seeds.append(peak_seed(simmap))
        mine_out: list[Candidate] = []
        grown: list[np.ndarray] = []
        for i, seed in enumerate(seeds):
            region = seed > 0.5
            if cfg.extent and parts is not None and len(parts):
                if simmap is None:
                    simmap = scan.concept_part_sims(gallery, k).max(1).reshape(scan.grid.shape)
                region = object_extent(scan.unit, parts, seed, alpha=cfg.extent_alpha, similarity=simmap)
            if not region.any():
                region = seed >= seed.max()
            if i == peak and any((region & other).any() for other in grown):
                continue  # the part seed fell on an object a proposal already grew: that one speaks for it
            grown.append(region)
            every = agreement(scan, gallery, region)  # every concept's, computed once
            colour = colour_term(cfg, scan, gallery, region)
            score = region_score(cfg, scan, gallery, k, region, every, colour)
            mine = float(every[k])
            if neg is not None and len(neg) and part_scores(scan.unit[region.reshape(-1)], neg) >= mine:
                continue  # the user said a region like this one is not k (`Personalizer.correct`)
            rivals = every + colour if colour is not None and cfg.colour_competition else every
            lost = compete and c > 1 and cfg.region_competition and np.delete(rivals, k).max() > rivals[k]
            if lost and not (contested and region.mean() < cfg.second_look_small):
                continue  # region-level competition: another concept agrees better
            at = None  # the region's most concept-like patch, when the similarity map was needed
            if simmap is not None:
                y, x = np.unravel_index(int(np.argmax(np.where(region, simmap, -np.inf))), region.shape)
                at = (int(y), int(x))
            mine_out.append(Candidate(k, score, mask_xyxy(region, scan.grid.cell_size), region, at, bool(lost)))
        if peak > 0 and len(mine_out) > per_concept:  # proposals' regions and a part seed's elsewhere: the best
            mine_out = sorted(mine_out, key=lambda cand: (cand.contested, -cand.score))[:per_concept]
        out.extend(mine_out)
    return out
