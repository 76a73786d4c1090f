"""Aggregate a `RecognitionRun` into tables: per concept -> mean over concepts -> mean ± std over seeds.

Everything here reads the stored score matrices; changing the threshold or sweeping it
re-embeds nothing. Undefined values are NaN here (``None`` once written as JSON).

Example:
    >>> rows = summarize(run)                                  # doctest: +SKIP
    >>> rows[0]["k"], rows[0]["metrics"]["positive"]["mean"]   # doctest: +SKIP
    (1, 0.87)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from pekit.eval.metrics import (
    concept_mean,
    confusion,
    mean_std,
    recognition_metrics,
    retrieval_at_k,
    safe_ratio,
    seed_stats,
)
from pekit.eval.recognition import STRANGERS, RecognitionRun, Trial

__all__ = ["BOX_COVER", "BOX_HIT", "BOX_MEDIAN", "METRICS", "NAMED", "box_covers", "box_ious", "group_label",
           "per_concept", "stranger_named", "summarize", "sweep", "trial_masks", "trial_metrics"]

#: Main recognition metrics, in table order.
METRICS = ("positive", "negative", "precision", "weighted")
SAME = "same category"
BOX_HIT = "box iou>=0.5"
BOX_MEDIAN = "box iou median"
#: share of correct hits whose box covers at least 90 % of the ground-truth box
BOX_COVER = "box holds>=0.9"
OTHER = "other concepts"
#: ``strangers`` gallery: share of the photos that get any name (every name wrong: the
#: photo's own concepts are not in that memory)
NAMED = "stranger named"
#: metrics a ``strangers`` gallery cannot have: no photo's own concept is in its memory
_NO_POSITIVES = ("positive", "precision", "weighted")


def group_label(extractor: str, k: int, gallery: str = "all", *, with_extractor: bool = True) -> str:
    """``"saliency/k=2"`` (or ``"k=2"``), with ``/single`` or ``/N`` for other gallery modes.

    >>> group_label("saliency", 2), group_label("box", 1, "single")
    ('saliency/k=2', 'box/k=1/single')
    """
    label = f"{extractor}/k={k}" if with_extractor else f"k={k}"
    return label if gallery == "all" else f"{label}/{gallery}"


def _hit_boxes(run: RecognitionRun, trial: Trial, threshold: float | None) -> tuple[np.ndarray, np.ndarray]:
    """``(n, 4)`` drawn boxes and ``(n, 4)`` ground-truth boxes of every correct hit (score >=
    threshold on a photo of the concept that has a ground-truth box for it)."""
    thr = run.threshold if threshold is None else float(threshold)
    found, truth = [], []
    if trial.boxes is not None:
        for row, idx in enumerate(trial.photos):
            photo = run.photos[int(idx)]
            for col, name in enumerate(trial.concepts):
                gt = photo.boxes.get(name)
                if gt is not None and name in photo.owners and trial.scores[row, col] >= thr:
                    found.append(trial.boxes[row, col])
                    truth.append(gt)
    return np.asarray(found, np.float64).reshape(-1, 4), np.asarray(truth, np.float64).reshape(-1, 4)


def _box_overlaps(run: RecognitionRun, trial: Trial, threshold: float | None) -> tuple[np.ndarray, np.ndarray]:
    """``(IoU, share of the ground truth covered)`` of every correct hit's box (`_hit_boxes`)."""
    from pekit.retrieve.nms import box_area, box_iou, overlap

    found, truth = _hit_boxes(run, trial, threshold)
    ious = np.diagonal(box_iou(found, truth)).astype(np.float64)  # each hit against its own truth
    covers = np.asarray([overlap(list(f), list(t)) / max(box_area(list(t)), 1e-9)
                         for f, t in zip(found, truth, strict=True)], np.float64)
    return ious, covers


def box_ious(run: RecognitionRun, trial: Trial, threshold: float | None = None) -> np.ndarray:
    """IoU with the ground-truth box of every correct hit (score >= threshold on a photo of
    the concept that has a ground-truth box for it).

    Returns an empty array when the trial stored no boxes or the dataset has none.
    """
    return _box_overlaps(run, trial, threshold)[0]


def box_covers(run: RecognitionRun, trial: Trial, threshold: float | None = None) -> np.ndarray:
    """How much of its ground-truth box the box of every correct hit covers (intersection
    over the ground truth's area): whether the box holds the object, which the prompt tells
    the LVLM it does, whatever else it holds. Empty as `box_ious` is."""
    return _box_overlaps(run, trial, threshold)[1]


def stranger_named(run: RecognitionRun, trial: Trial, threshold: float | np.ndarray | None = None) -> Any:
    """Share of a trial's photos that get any name at ``threshold``: in a ``strangers`` trial
    every name is wrong (what a photo shows is not in that memory; a dataset negative shows
    none of the concepts); a `Photo.shared` one is left out. NaN for a trial without photos.
    An array of thresholds gives an array of shares (a sweep)."""
    thr = np.asarray(run.threshold if threshold is None else threshold, np.float64)
    # a photo that shows an unnamed second concept (`Photo.shared`) may rightly get that name
    rows = [r for r, idx in enumerate(trial.photos) if not run.photos[int(idx)].shared]
    if not rows:
        return float("nan") if thr.ndim == 0 else np.full(thr.shape, np.nan)
    scores = np.asarray(trial.scores, np.float64).reshape(len(trial.photos), -1)[rows]
    best = scores.max(axis=1, initial=-np.inf)
    shares = (best[:, None] >= thr.reshape(1, -1)).mean(axis=0)
    return float(shares[0]) if thr.ndim == 0 else shares


def trial_masks(run: RecognitionRun, trial: Trial) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """``positive (n, C)``, ``negative (n, C)`` and negative subsets by name, for one trial.

    Subsets: ``other concepts`` (photos of other concepts), ``same category`` (of those, the
    ones of a concept sharing ``c``'s category) and each dataset split (``Negative (Hard)``...).
    """
    n, c = trial.scores.shape
    strangers = trial.gallery == STRANGERS  # the photo's own concepts were not in memory: no positives
    positive = np.zeros((n, c), bool)
    subsets: dict[str, np.ndarray] = {OTHER: np.zeros((n, c), bool), "same category": np.zeros((n, c), bool)}
    for row, idx in enumerate(trial.photos):
        photo = run.photos[int(idx)]
        owner_cats = {run.categories.get(o, "") for o in photo.owners}
        for col, name in enumerate(trial.concepts):
            if name in photo.owners:
                positive[row, col] = not strangers
                continue
            if photo.owners and not photo.shared:  # (a shared photo may show this concept too)
                subsets[OTHER][row, col] = True
                cat = run.categories.get(name, "")
                subsets["same category"][row, col] = bool(cat) and cat in owner_cats
            split = photo.negative_of.get(name)
            if split is not None:
                subsets.setdefault(split, np.zeros((n, c), bool))[row, col] = True
    negative = np.zeros((n, c), bool)
    for key, mask in subsets.items():
        if key != "same category":
            negative |= mask
    return positive, negative, subsets


def trial_metrics(run: RecognitionRun, trial: Trial, threshold: float | None = None) -> dict[str, np.ndarray]:
    """Per-concept metrics of one trial: `METRICS`, ``same category`` (negative accuracy on
    photos of other concepts of the same category) and ``negative: <split>`` per dataset split."""
    thr = run.threshold if threshold is None else float(threshold)
    positive, negative, subsets = trial_masks(run, trial)
    out = recognition_metrics(*confusion(trial.scores, positive, negative, thr))
    if trial.gallery == STRANGERS:
        for name in _NO_POSITIVES:
            del out[name]
    none = np.zeros_like(positive)
    for name, mask in subsets.items():
        if name == OTHER or not mask.any():
            continue
        _, _, tn, fp = confusion(trial.scores, none, mask, thr)
        out[SAME if name == SAME else f"negative: {name}"] = safe_ratio(tn, tn + fp)
    return out


def summarize(run: RecognitionRun, threshold: float | None = None, *,
              top_k: Sequence[int] = ()) -> list[dict[str, Any]]:
    """One row per (extractor, k): each metric's mean ± std over seeds (of concept means).

    Args:
        run: the benchmark run.
        threshold: reporting threshold (default: the run's).
        top_k: also report memory retrieval precision/recall at these k (``P@1``, ``R@1``...).

    Returns:
        ``[{"extractor", "k", "label", "seeds", "concepts", "skipped", "test_photos",
        "metrics": {name: {"mean", "std", "seeds": [...]}}}]``.
    """
    rows = []
    for (extractor, k, gallery), trials in run.groups().items():
        per_seed: dict[str, list[float]] = {}
        for trial in trials:
            values = {name: concept_mean(v) for name, v in trial_metrics(run, trial, threshold).items()}
            if trial.gallery == STRANGERS:
                values[NAMED] = stranger_named(run, trial, threshold)
            ious, covers = _box_overlaps(run, trial, threshold)
            if ious.size:
                values[BOX_HIT] = float((ious >= 0.5).mean())
                values[BOX_MEDIAN] = float(np.median(ious))
                values[BOX_COVER] = float((covers >= 0.9).mean())
            for kk in top_k:
                positive, _, _ = trial_masks(run, trial)
                values[f"P@{kk}"], values[f"R@{kk}"] = retrieval_at_k(trial.scores, positive, kk)
            for name, v in values.items():
                per_seed.setdefault(name, []).append(float(v))
        metrics = {name: seed_stats(vals) for name, vals in per_seed.items()}
        rows.append({
            "extractor": extractor, "k": k, "gallery": gallery, "label": group_label(extractor, k, gallery),
            "seeds": len(trials),
            "concepts": len(trials[0].concepts), "skipped": list(trials[0].skipped),
            "test_photos": int(np.mean([len(t.photos) for t in trials])), "metrics": metrics,
        })
    return rows


def _rounded(value: float) -> float:
    return float(value) if not np.isfinite(value) else round(float(value), 6)


def per_concept(run: RecognitionRun, threshold: float | None = None) -> dict[str, dict[str, dict[str, float]]]:
    """``{group label: {concept: {metric: mean over seeds}}}`` (NaN where undefined)."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for (extractor, k, gallery), trials in run.groups().items():
        acc: dict[str, dict[str, list[float]]] = {}
        for trial in trials:
            for name, values in trial_metrics(run, trial, threshold).items():
                for concept, v in zip(trial.concepts, values, strict=True):
                    acc.setdefault(concept, {}).setdefault(name, []).append(float(v))
        out[group_label(extractor, k, gallery)] = {
            concept: {name: _rounded(mean_std(vals)[0]) for name, vals in metrics.items()}
            for concept, metrics in sorted(acc.items())
        }
    return out


def sweep(run: RecognitionRun, thresholds: Sequence[float] | np.ndarray | None = None) -> dict[str, Any]:
    """Metric curves over thresholds for each (extractor, k), from the stored score matrices.

    Returns:
        ``{"thresholds": [...], "curves": {label: {metric: [...]}}, "best": {label:
        {"threshold", "weighted", "plateau"}}}`` where ``best`` is the threshold maximising
        weighted accuracy (an oracle: chosen on the test photos themselves): the middle of the
        first run of thresholds that reach the maximum (``plateau``: its first and last), so
        the choice does not sit on the edge where the accuracy starts to fall. A
        ``strangers`` group has no positives: its curves are ``negative`` and
        ``stranger named`` (`stranger_named`), and it has no ``best``.
    """
    thr = np.round(np.arange(0.0, 1.0 + 1e-9, 0.01), 4) if thresholds is None else np.asarray(thresholds, np.float64)
    curves: dict[str, dict[str, list[float]]] = {}
    best: dict[str, dict[str, Any]] = {}
    for (extractor, k, gallery), trials in run.groups().items():
        label = group_label(extractor, k, gallery)
        seeds: dict[str, list[np.ndarray]] = {m: [] for m in METRICS}
        for trial in trials:
            positive, negative, _ = trial_masks(run, trial)
            metrics = recognition_metrics(*confusion(trial.scores, positive, negative, thr))
            for m in METRICS:
                seeds[m].append(np.asarray(concept_mean(metrics[m], axis=-1), np.float64).reshape(len(thr)))
        if gallery == STRANGERS:  # no positives in that memory: negative accuracy and the share named, no best τ
            seeds = {"negative": seeds["negative"], NAMED: [stranger_named(run, t, thr) for t in trials]}
        means = {m: concept_mean(np.stack(v, 1), axis=1) for m, v in seeds.items()}
        curves[label] = {m: [_rounded(x) for x in np.atleast_1d(v)] for m, v in means.items()}
        if gallery == STRANGERS:
            continue
        weighted = np.atleast_1d(np.asarray(means["weighted"], np.float64))
        if np.all(np.isnan(weighted)):
            continue  # no concept could be scored: no best threshold to report
        first = last = int(np.nanargmax(weighted))
        while last + 1 < len(thr) and weighted[last + 1] >= weighted[first] - 1e-9:
            last += 1  # thresholds on either side of a plateau's midpoint do the same
        i = (first + last) // 2
        best[label] = {"threshold": float(thr[i]), "weighted": round(float(weighted[i]), 6),
                       "plateau": [float(thr[first]), float(thr[last])]}
    return {"thresholds": [float(t) for t in thr], "curves": curves, "best": best}
