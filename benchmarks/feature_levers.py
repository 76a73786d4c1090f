"""Feature and score-shape levers on the DreamBooth dev set, plain and stress splits.

What it answers: the remaining misses are regions whose part agreement with their own concept
is below that of look-alikes (a white poodle scores higher against a white wolf plushie's parts
than against its own). Does a change in *what is compared* separate them better: a different
feature transform learned from generic photos, a different part model, or a different shape of
the score and of region-level competition? Every variant re-runs the first look (no second
look, so all see comparable regions) over the cached grids for k = 2, 5 seeds, saliency
references, with each concept alone and with all concepts in memory, and is read at its own
threshold: the one that maximises plain weighted accuracy with all concepts in memory while
plain single-concept negative accuracy stays >= 97 (as `benchmarks/calibration.py`); the
stress split is read at that same threshold.

Variants:

* ``raw``: the offline recipe (chamfer agreement ``0.5 (region->parts + parts->region)``).
* ``groups per view``: each reference view's parts scored as a group of its own (best view),
  instead of all views' parts pooled.
* ``16 / 64 parts``: parts kept per view (default 32).
* ``chamfer 0.3 / 0.7``: weight of the region->parts half (default 0.5).
* ``margin +0.02``: region-level competition vetoes only when a rival leads by 0.02.
* ``global in competition``: competition on part agreement + 0.5 x the region's global cosine.
* ``transport``: the agreement replaced by an optimal-transport similarity (balanced
  Sinkhorn between the region's patches and each part group, uniform masses, temperature
  0.05; as DeepEMD does for few-shot matching): every part must take an equal share of the
  region, so one texture cannot match many parts.
* ``cross-view parts 75 %``: keep the 75 % of each view's parts best supported by the other view.
* ``whiten A / B``: tokens PCA-whitened (exponent 1, shrinkage 0.5 x the mean eigenvalue) with a
  covariance of generic photos' tokens: A = the scikit-image photos of the shipped token mean
  (four of them are also stress scenes), B = the same without those four, plus matplotlib's
  ``grace_hopper``.
* ``context 3x3``: each unit token concatenated with 0.5 x the mean of its 3 x 3 neighbours.
* ``image centring``: each photo's mean token x 0.5 subtracted from its tokens.

    python benchmarks/feature_levers.py                     # ~45 min on 2 cores (transport: ~10)
    python benchmarks/feature_levers.py --variants raw,whiten\\ A --seeds 2

Exits 0 with a message when the dataset folder is absent.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from _data import add_data_argument, missing

K = 2
#: the generic photos of `tools/make_token_stats.py` (the shipped token mean) that the
#: scikit-image wheel holds (its others need a download)
GENERIC_A = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina",
             "camera", "coins", "moon", "page", "text", "brick", "grass", "gravel")
STRESS_SCENES = ("astronaut", "chelsea", "coffee", "rocket")


@dataclasses.dataclass
class Variant:
    """A lever: how grids, concepts and scores change (None: as the offline recipe)."""

    grid: Callable[[np.ndarray], np.ndarray] | None = None       # (h, w, d) features -> features
    concept: Callable[[str, list[Any]], Any] | None = None        # (name, views) -> Concept
    max_parts: int | None = None
    chamfer: float = 0.5
    margin: float = 0.0
    global_weight: float = 0.0
    transport: float = 0.0                                        # > 0: Sinkhorn temperature


def _generic_photos(names: tuple[str, ...], extra: bool) -> list[np.ndarray]:
    from skimage import data as samples

    from pekit.images import load_image

    out = [load_image(getattr(samples, n)()) for n in names]
    if extra:
        import matplotlib

        out.append(load_image(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"))
    return out


def whitening(photos: list[np.ndarray], *, shrink: float = 0.5, power: float = 1.0) -> np.ndarray:
    """``(d, d)`` PCA-whitening of the offline tokens of ``photos`` (each whole, mirrored and
    three random crops), eigenvalues shrunk towards their mean."""
    from pekit.pipeline import Pipeline

    pipe = Pipeline.from_preset("offline")
    rng = np.random.default_rng(0)
    tokens = []
    for image in photos:
        h, w = image.shape[:2]
        crops = [image, np.ascontiguousarray(image[:, ::-1])]
        for _ in range(3):
            s = rng.uniform(0.4, 0.7)
            ch, cw = int(h * s), int(w * s)
            y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
            crops.append(np.ascontiguousarray(image[y:y + ch, x:x + cw]))
        for crop in crops:
            grid = pipe.encode(crop, saliency=False)
            tokens.append(grid.features.reshape(-1, grid.dim).astype(np.float64))
    lam, vectors = np.linalg.eigh(np.cov(np.concatenate(tokens), rowvar=False))
    lam = np.maximum(lam, 0) + shrink * lam.mean()
    return ((vectors * (lam / lam.mean()) ** (-power / 2)) @ vectors.T).astype(np.float32)


def _context(features: np.ndarray, weight: float = 0.5) -> np.ndarray:
    from scipy.ndimage import uniform_filter

    unit = features / (np.linalg.norm(features, axis=-1, keepdims=True) + 1e-6)
    return np.concatenate([unit, weight * uniform_filter(unit, size=(3, 3, 1), mode="nearest")], -1)


def transport_similarity(sims: np.ndarray, temperature: float, iterations: int = 60) -> float:
    """Transport-weighted mean of ``sims`` ``(r, p)`` under the entropic optimal plan with
    uniform marginals (Sinkhorn)."""
    r, p = sims.shape
    kernel = np.exp((sims - sims.max()) / temperature)
    a, b, v = np.full(r, 1.0 / r), np.full(p, 1.0 / p), np.ones(p)
    for _ in range(iterations):
        u = a / (kernel @ v + 1e-300)
        v = b / (kernel.T @ u + 1e-300)
    return float(((u[:, None] * kernel * v[None]) * sims).sum())


def _cross_view(keep: float) -> Callable[[str, list[Any]], Any]:
    """Concepts whose views keep the ``keep`` share of their parts best matched in the other views."""
    from pekit.extract.views import concept_from_views

    def build(name: str, views: list[Any]) -> Any:
        if len(views) < 2:
            return concept_from_views(name, views)

        def pruned(parts: np.ndarray, others: list[np.ndarray]) -> np.ndarray:
            support = (parts @ np.concatenate(others).T).max(1)
            return parts[support >= np.quantile(support, 1 - keep)]

        out = []
        for v in views:
            zoomed = v.zoomed
            if zoomed is not None:
                others = [w.zoomed.parts for w in views if w is not v and w.zoomed is not None]
                zoomed = dataclasses.replace(zoomed, parts=pruned(zoomed.parts, others)) if others else zoomed
            out.append(dataclasses.replace(v, parts=pruned(v.parts, [w.parts for w in views if w is not v]),
                                           zoomed=zoomed))
        return concept_from_views(name, out)
    return build


def _per_view(name: str, views: list[Any]) -> Any:
    """A concept whose parts form one group per view (and per zoomed-out view)."""
    from pekit.extract.views import concept_from_views, with_part_groups
    from pekit.types import Concept

    base = concept_from_views(name, views)
    groups = [len(v.parts) for v in views] + [len(v.zoomed.parts) for v in views if v.zoomed is not None]
    return Concept(name, views=base.views, parts=base.parts, meta=with_part_groups({}, groups))


def variants(selected: list[str] | None) -> dict[str, Callable[[], Variant]]:
    table: dict[str, Callable[[], Variant]] = {
        "raw": Variant,
        "groups per view": lambda: Variant(concept=_per_view),
        "16 parts": lambda: Variant(max_parts=16),
        "64 parts": lambda: Variant(max_parts=64),
        "chamfer 0.3": lambda: Variant(chamfer=0.3),
        "chamfer 0.7": lambda: Variant(chamfer=0.7),
        "margin +0.02": lambda: Variant(margin=0.02),
        "global in competition": lambda: Variant(global_weight=0.5),
        "transport": lambda: Variant(transport=0.05),
        "cross-view parts 75 %": lambda: Variant(concept=_cross_view(0.75)),
        "whiten A": lambda: _whitened(GENERIC_A, False),
        "whiten B": lambda: _whitened(tuple(n for n in GENERIC_A if n not in STRESS_SCENES), True),
        "context 3x3": lambda: Variant(grid=_context),
        "image centring": lambda: Variant(grid=lambda f: f - 0.5 * f.reshape(-1, f.shape[-1]).mean(0)),
    }
    if selected:
        unknown = [s for s in selected if s not in table]
        if unknown:
            raise SystemExit(f"unknown variant(s) {unknown}; choose from {list(table)}")
        return {s: table[s] for s in selected}
    return table


def _whitened(names: tuple[str, ...], extra: bool) -> Variant:
    matrix = whitening(_generic_photos(names, extra))
    return Variant(grid=lambda f: (f.reshape(-1, f.shape[-1]) @ matrix).reshape(f.shape))


def collect(split: str, data: Path, seeds: int, variant: Variant) -> list[dict[str, Any]]:
    """Per trial: names, positives and, per (mode, row, concept) candidate, both halves of its
    part agreement and its global cosine with every concept (region competition applied later)."""
    from _firstlook import dev_split

    from pekit.embed.pooling import pool
    from pekit.eval.cache import GridCache, default_cache_dir
    from pekit.extract.views import concept_from_views
    from pekit.pipeline import Pipeline
    from pekit.retrieve.match import Gallery, similarity

    overrides: dict[str, Any] = {"second_look": False, "region_competition": False}
    if variant.max_parts:
        overrides["max_parts"] = variant.max_parts
    pipe = Pipeline.from_preset("offline", **overrides)
    transform = variant.grid
    memo: dict[str, Any] = {}

    class Cache(GridCache):  # the variant's feature transform on every cached grid, once each
        def get(self, sha1: str) -> Any:
            grid = super().get(sha1)
            if grid is None or transform is None:
                return grid
            if sha1 not in memo:
                memo[sha1] = dataclasses.replace(grid, features=transform(grid.features.astype(np.float32)))
            return memo[sha1]

        def grid(self, sha1: str, compute: Any) -> Any:  # a grid computed now is transformed as well
            made = super().grid(sha1, compute)
            return made if transform is None else (self.get(sha1) or made)

    cache = Cache(default_cache_dir() / "grids", pipe.fingerprint)
    dev = dev_split(split, data, seeds, K, pipe, cache)
    photos, views = dev.photos, dev.views
    build = variant.concept or (lambda n, vs: concept_from_views(n, vs))
    trials = []
    for e, _, _, drawn, _ in dev.plans:
        names = list(drawn)
        gallery = Gallery.from_concepts([build(n, [views[i, e, n] for i in drawn[n]]) for n in names])
        starts, sizes, owner = gallery.part_segments()
        rows = dev.test_rows(drawn)
        stats = {}
        for row, i in enumerate(rows):
            scan = pipe.scan(cache.get(photos[i].sha1))
            for mode in ("single", "all"):
                for cand in pipe.candidates(scan, gallery, competitive=mode == "all"):
                    sims = scan.part_sims(gallery)[cand.region.reshape(-1)]
                    to_parts = np.maximum.reduceat(sims, starts, axis=1).mean(0)
                    to_region = np.add.reduceat(sims.max(0), starts) / sizes
                    cosine = similarity(pool(scan.grid, cand.region.astype(np.float32)[None]), gallery)[0]
                    if variant.transport:  # every concept's (for competition), or the candidate's alone
                        moved = np.full(len(names), -1.0)
                        for start, size, k in zip(starts, sizes, owner, strict=True):
                            if mode == "all" or k == cand.concept:
                                moved[k] = max(moved[k], transport_similarity(
                                    sims[:, start:start + size].astype(np.float64), variant.transport))
                        to_parts = to_region = moved[owner]  # the agreement below is then the transport score
                    stats[mode, row, cand.concept] = (to_parts, to_region, cosine)
        trials.append({"names": names, "owner": owner, "stats": stats,
                       "positive": np.array([[n in photos[i].owners for n in names] for i in rows])})
    return trials


def metrics(trials: list[dict[str, Any]], variant: Variant, mode: str, threshold: float) -> np.ndarray:
    """positive, negative, precision, weighted (%) as `pekit eval` counts them."""
    from _firstlook import counted

    w = variant.chamfer
    out = []
    for t in trials:
        pos = t["positive"]
        scores = np.full(pos.shape, -np.inf)
        for (m, row, c), (to_parts, to_region, cosine) in t["stats"].items():
            if m != mode:
                continue
            agreement = np.full(pos.shape[1], -1.0)
            np.maximum.at(agreement, t["owner"], w * to_parts + (1 - w) * to_region)
            rank = agreement + variant.global_weight * cosine
            if m == "all" and np.delete(rank, c).max() > rank[c] + variant.margin:
                continue  # region-level competition: a rival's parts agree better
            scores[row, c] = agreement[c]
        out.append(counted(scores, pos, threshold))
    return 100 * np.mean(out, 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_argument(parser)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--variants", help="comma-separated names (default: all)")
    args = parser.parse_args(argv)
    if missing(args.data):
        return 0
    from _firstlook import HEADER, operating_row
    from threadpoolctl import threadpool_limits

    table = variants([s.strip() for s in args.variants.split(",")] if args.variants else None)
    print(f"k = {K}, {args.seeds} seeds, first look only; threshold: best plain all weighted with plain single "
          "negative >= 97\n")
    print(HEADER, flush=True)
    for name, make in table.items():
        variant = make()
        with threadpool_limits(1, user_api="blas"):
            runs = {split: collect(split, args.data, args.seeds, variant) for split in ("plain", "stress")}

        def measure(split: str, mode: str, thr: float, runs: dict = runs, variant: Variant = variant) -> np.ndarray:
            return metrics(runs[split], variant, mode, thr)

        print(operating_row(name, np.linspace(0.2, 0.8, 241), measure, digits=4), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
