"""Feedback benchmark: how much do a user's corrections (`Personalizer.correct`) help?

Protocol (each concept alone in memory, the hard open-set case):

* per seed, every concept draws ``k`` references (`draw_references`), and its test photos
  are split by a seeded permutation into a *held-in pool* (half) and the *rest*;
* a simulated user walks the pool in order and corrects the first ``n`` false positives
  (a photo without the concept that it is recognized in): each wrong region becomes a
  negative view of the concept (its part prototypes), exactly as ``pekit correct PHOTO
  --not NAME`` stores it;
* the rest is scored with 0, 1, ..., ``n`` corrections; positive/negative accuracy,
  precision and weighted accuracy are averaged over concepts, then over seeds.

Reference views are made as `introduce` makes them (`isolate`: the photo, its zoomed-out
pass, the whole photo when nothing stands out). Test photos are embedded once (the
`GridCache`) and, with a pipeline that looks twice (``second_look``, ``tiled_look``),
found and scored as `recognize` finds them: from the photo, the crops' passes included
(memoised per photo and crop: a crop the same concept needs again after a correction is
not embedded twice); a pipeline with a detector proposes on them too, prompted with the
one category this user has in memory. So the simulated user corrects the region
`Personalizer.correct` would pick, and the rest is scored as the user would see it.

Example:
    >>> table = run_feedback(load_dataset("folder:../shared/data/dreambooth"),
    ...                      Pipeline.from_preset(), k=2, seeds=3)          # doctest: +SKIP
    >>> table[3]["negative"]                                                 # doctest: +SKIP
    0.99
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import numpy as np

from pekit.eval.cache import GridCache
from pekit.eval.datasets import Dataset
from pekit.eval.metrics import confusion, recognition_metrics
from pekit.eval.photos import PhotoScans, collect_photos, crop_memo, embed_photos, needs_photo, showing_rows
from pekit.eval.references import draw_references, isolate
from pekit.extract.views import concept_from_views, summarize_parts
from pekit.images import load_image
from pekit.retrieve.match import Gallery

__all__ = ["run_feedback"]


def run_feedback(dataset: Dataset, pipeline: Any, *, k: int = 2, seeds: int = 5, seed: int = 0,
                 corrections: int = 3, cache: GridCache | None = None, threshold: float | None = None,
                 progress: bool = True) -> dict[int, dict[str, float]]:
    """Metrics on the rest after ``0..corrections`` corrections: ``{n: {metric: mean}}``.

    Also ``{n: {"corrected": mean corrections actually made per concept}}`` (a concept
    with fewer false positives in its pool gets fewer).
    """
    from tqdm.auto import tqdm

    thr = float(pipeline.config.threshold if threshold is None else threshold)
    cache = cache or GridCache(None, pipeline.fingerprint, memory_items=1 << 30)
    photos, index = collect_photos(dataset, progress=progress)
    readable, _ = embed_photos(photos, pipeline, cache, progress=progress)
    scans: dict[int, PhotoScans] = {}  # by photo, then by the category a detector is prompted with
    made: dict[tuple[int, str], Any] = {}  # reference views by photo and category
    from_photo = needs_photo(pipeline)

    def scan(i: int, category: str) -> tuple[Any, list[str] | None]:  # for a memory of that one category
        if i not in scans:
            grid = cache.get(photos[i].sha1)
            assert grid is not None
            scans[i] = PhotoScans(pipeline, grid, image(i))
        return scans[i]([category])

    @functools.lru_cache(maxsize=256)  # each concept walks the test photos in turn: decoded once for the crops
    def image(i: int) -> np.ndarray | None:
        return load_image(photos[i].path) if from_photo else None

    def found(i: int, gallery: Gallery, category: str) -> list[Any]:  # what `recognize` finds for this one concept
        grid_scan, labels = scan(i, category)
        return looker.candidates(grid_scan, gallery, competitive=False, image=image(i), labels=labels)

    per: dict[int, dict[str, list[float]]] = {n: {} for n in range(corrections + 1)}
    jobs = [(s, c) for s in range(seeds) for c in dataset.concepts]
    with crop_memo(pipeline):  # each crop embedded once, however many corrections re-score it
        # a threshold given for the run steers the looks as `recognize(threshold=...)` does
        looker = pipeline if threshold is None or not hasattr(pipeline, "at_threshold") else pipeline.at_threshold(thr)
        for s, c in tqdm(jobs, desc="feedback", unit="concept", disable=None if progress else True):
            refs = draw_references(c, k, s, seed)
            if refs is None:
                continue
            ref_ids = [index[p] for p in refs if index[p] in readable]
            ref_paths = set(refs)
            for i in ref_ids:  # a photo drawn again by another seed keeps its view: decoded and isolated once
                if (i, c.category) not in made:
                    grid = cache.get(photos[i].sha1)
                    assert grid is not None  # embedded above
                    made[i, c.category] = isolate(pipeline, cache, photos[i].sha1, photos[i].path, grid,
                                                  category=c.category)[0]
            views = [made[i, c.category] for i in ref_ids]
            concept = concept_from_views(c.name, views, category=c.category)
            rows = [i for i in showing_rows(photos, readable, ref_ids, ref_paths)  # a shared photo: no negative
                    if c.name in photos[i].owners or not photos[i].shared]
            order = np.random.default_rng([seed, s, k, len(c.name), 11]).permutation(len(rows))
            pool_rows = [rows[j] for j in order[: len(rows) // 2]]
            rest = [rows[j] for j in order[len(rows) // 2:]]
            negatives: list[np.ndarray] = []
            gallery = Gallery.from_concepts([concept])
            for i in pool_rows:
                if len(negatives) >= corrections:
                    break
                if c.name in photos[i].owners:
                    continue
                wrong = max(found(i, gallery, c.category), key=lambda cand: cand.score, default=None)
                if wrong is not None and wrong.score >= thr:  # what `Personalizer.correct` stores: its parts
                    negatives.append(summarize_parts(scan(i, c.category)[0].unit[wrong.region.reshape(-1)],
                                                     pipeline.config.max_parts))
            positive = np.array([c.name in photos[i].owners for i in rest])
            for n in range(corrections + 1):
                used = np.concatenate(negatives[:n]) if n and negatives else None
                g = Gallery.from_concepts([dataclasses.replace(concept, negatives=used)])
                scores = np.array([max([cand.score for cand in found(i, g, c.category)], default=-np.inf)
                                   for i in rest])
                counts = confusion(scores[:, None], positive[:, None], ~positive[:, None], thr)
                for name, value in recognition_metrics(*counts).items():
                    if name != "weighted":  # the weighted mean is taken of the averaged accuracies below
                        per[n].setdefault(name, []).append(float(value[0]))
                per[n].setdefault("corrected", []).append(float(min(n, len(negatives))))

    out: dict[int, dict[str, float]] = {}
    for n, metrics in per.items():
        out[n] = {name: float(np.nanmean(values)) if values else float("nan") for name, values in metrics.items()}
        if "positive" in out[n]:
            out[n]["weighted"] = (out[n]["positive"] + out[n]["negative"]) / 2
    return out
