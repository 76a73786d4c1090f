"""Shared by the first-look research benchmarks (`calibration.py`, `feature_levers.py`).

Both score the DreamBooth dev set's plain and stress splits once per gallery mode on the
cached grids (first look only), then read every variant at one operating point: the
threshold with the best plain weighted accuracy (all concepts in memory) that keeps plain
single-concept negative accuracy >= 97, with the stress split read at that same threshold.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: ``(split, mode, threshold) -> [positive, negative, precision, weighted]`` in %.
Measure = Callable[[str, str, float], np.ndarray]
HEADER = ("| variant | τ | plain all: pos / weighted | plain single: neg / precision | "
          "stress all: pos / weighted | stress single: neg / precision |\n|---|---|---|---|---|---|")


@dataclass
class DevSplit:
    """One split's photos, the trials drawn for it and every reference view they need."""

    photos: list[Any]
    readable: set[int]
    plans: list[Any]
    views: dict[tuple[int, str, str], Any]

    def test_rows(self, drawn: dict[str, list[int]]) -> list[int]:
        """The photos a trial scores: readable, showing some concept, neither a reference
        nor made from one."""
        from pekit.eval.photos import showing_rows

        return showing_rows(self.photos, self.readable, (i for ids in drawn.values() for i in ids))


def dev_split(split: str, data: Path, seeds: int, k: int, pipe: Any, cache: Any, *,
              patches: bool = False) -> DevSplit:
    """``split`` (``plain`` or ``stress``, made from ``data`` into the cache folder) with its
    photos embedded through ``cache``, ``seeds`` trials of ``k`` saliency references per
    concept, and their views (``patches``: keep `View.patches`)."""
    from pekit.eval.cache import default_cache_dir
    from pekit.eval.datasets import load_dataset
    from pekit.eval.photos import collect_photos, embed_photos
    from pekit.eval.references import plan_trials, plan_views

    if split == "plain":
        ds = load_dataset(f"folder:{data}")
    else:
        from pekit.eval.stress import make_stress_split

        ds = load_dataset(f"stress:{make_stress_split(data, default_cache_dir() / 'stress-split', reuse=True)}")
    photos, index = collect_photos(ds, progress=False)
    readable, _ = embed_photos(photos, pipe, cache, progress=False)
    cats = {c.name: c.category for c in ds.concepts}
    plans = plan_trials(ds, photos, index, readable, ["saliency"], [k], seeds, 0)
    views, _ = plan_views(plans, photos, pipe, cache, cats, {}, False, patches=patches)
    return DevSplit(photos, readable, plans, views)


def counted(scores: np.ndarray, positive: np.ndarray, threshold: float) -> list[float]:
    """positive, negative, precision, weighted of one trial's ``(photos, concepts)`` scores,
    counted as `pekit eval` counts them (per concept, mean over the concepts that define them)."""
    from pekit.eval.metrics import concept_mean, confusion, recognition_metrics

    counts = recognition_metrics(*confusion(scores, positive, ~positive, threshold))
    return [float(concept_mean(counts[k])) for k in ("positive", "negative", "precision", "weighted")]


def operating_row(name: str, thresholds: Iterable[float], measure: Measure, digits: int = 3) -> str:
    """The table row (`HEADER`) of a variant at its operating point."""
    best = None
    for thr in thresholds:
        single = measure("plain", "single", thr)
        if single[1] < 97.0:
            continue
        both = measure("plain", "all", thr)
        if best is None or both[3] > best[1][3]:
            best = (thr, both, single)
    if best is None:
        return f"| {name} | – | no threshold keeps single negative >= 97 | | | |"
    thr, pa, ps = best
    sa, ss = measure("stress", "all", thr), measure("stress", "single", thr)
    return (f"| {name} | {thr:.{digits}f} | {pa[0]:.1f} / {pa[3]:.1f} | {ps[1]:.1f} / {ps[2]:.1f} | "
            f"{sa[0]:.1f} / {sa[3]:.1f} | {ss[1]:.1f} / {ss[2]:.1f} |")
