"""Evaluation metrics as pure functions, defined as the personalization papers define them.

Recognition (MyVLM, Yo'LLaVA, PeKit): per concept ``c`` over the test photos of one seed,
with "recognized" meaning ``score >= threshold``:

* positive accuracy (recall) = TP / (TP + FN) over photos that contain ``c``;
* negative accuracy (specificity) = TN / (TN + FP) over photos that do not;
* precision = TP / (TP + FP);
* weighted accuracy = (positive + negative) / 2.

Each is computed per concept, averaged over concepts (a concept where a metric is
undefined -- no positives, no negatives, nothing recognized for precision -- is left out of
that metric's average), then reported as mean ± std (population std, ddof=0) over seeds.

Retrieval of the memory (ablations): per photo containing at least one memory concept,
precision@k = |top-k ∩ true| / k and recall@k = |top-k ∩ true| / |true|, averaged over photos.

VQA: accuracy = correct / all questions (an unparsable answer counts as wrong and is
reported). Captions: corpus BLEU-4 (sacrebleu, default tokenizer), exact match after
normalisation, and concept recall = share of captions that use the concept's name.

Example:
    >>> import numpy as np
    >>> scores = np.array([[0.9, 0.1], [0.4, 0.8], [0.7, 0.2]])
    >>> pos = np.array([[1, 0], [0, 1], [0, 0]], bool)
    >>> counts = confusion(scores, pos, ~pos, 0.5)
    >>> {k: v.tolist() for k, v in recognition_metrics(*counts).items()}["negative"]
    [0.5, 1.0]
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import Any

import numpy as np

from pekit.errors import InvalidInputError, require

__all__ = [
    "choice_accuracy",
    "concept_mean",
    "concept_recall",
    "confusion",
    "corpus_bleu",
    "exact_match",
    "mean_std",
    "mentions_name",
    "normalize_text",
    "recognition_metrics",
    "retrieval_at_k",
    "safe_ratio",
    "seed_stats",
]


def safe_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` elementwise, NaN where ``den == 0``.

    >>> safe_ratio(np.array([1, 0]), np.array([2, 0])).tolist()
    [0.5, nan]
    """
    num = np.asarray(num, np.float64)
    den = np.asarray(den, np.float64)
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def confusion(scores: np.ndarray, positive: np.ndarray, negative: np.ndarray,
              threshold: float | np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-concept counts ``(tp, fn, tn, fp)`` at one or several thresholds.

    Args:
        scores: ``(n, C)`` final score of each concept in each photo (-1 = no candidate).
        positive: ``(n, C)`` bool, photo ``i`` contains concept ``c``.
        negative: ``(n, C)`` bool, photo ``i`` is a negative of concept ``c`` (photos that are
            neither -- e.g. another split -- are not counted).
        threshold: a scalar -> counts of shape ``(C,)``; a ``(T,)`` array -> ``(T, C)``.

    Example:
        >>> s = np.array([[0.9], [0.3], [0.6]]); p = np.array([[1], [1], [0]], bool)
        >>> [c.tolist() for c in confusion(s, p, ~p, 0.5)]
        [[1], [1], [0], [1]]
    """
    scores = np.asarray(scores, np.float64)
    positive = np.asarray(positive, bool)
    negative = np.asarray(negative, bool)
    if scores.ndim != 2 or positive.shape != scores.shape or negative.shape != scores.shape:
        raise InvalidInputError(f"scores, positive and negative must share a (n, C) shape, got "
                                f"{scores.shape}, {positive.shape}, {negative.shape}")
    thr = np.asarray(threshold, np.float64)
    hit = scores[None] >= thr.reshape(-1, 1, 1)  # (T, n, C)
    tp = (hit & positive).sum(1)
    fp = (hit & negative).sum(1)
    fn = positive.sum(0)[None] - tp
    tn = negative.sum(0)[None] - fp
    if thr.ndim == 0:
        return tp[0], fn[0], tn[0], fp[0]
    return tp, fn, tn, fp


def recognition_metrics(tp: np.ndarray, fn: np.ndarray, tn: np.ndarray, fp: np.ndarray) -> dict[str, np.ndarray]:
    """Positive/negative accuracy, precision and weighted accuracy per concept (NaN = undefined).

    >>> m = recognition_metrics(np.array([3]), np.array([1]), np.array([8]), np.array([2]))
    >>> [round(float(m[k][0]), 3) for k in ("positive", "negative", "precision", "weighted")]
    [0.75, 0.8, 0.6, 0.775]
    """
    positive = safe_ratio(tp, tp + fn)
    negative = safe_ratio(tn, tn + fp)
    return {
        "positive": positive,
        "negative": negative,
        "precision": safe_ratio(tp, tp + fp),
        "weighted": (positive + negative) / 2,
    }


def concept_mean(values: np.ndarray, axis: int = -1) -> np.ndarray | float:
    """Mean over concepts ignoring NaN (undefined); NaN when no concept defines it.

    >>> concept_mean(np.array([1.0, np.nan, 0.5]))
    0.75
    """
    values = np.asarray(values, np.float64)
    count = np.isfinite(values).sum(axis)
    total = np.where(np.isfinite(values), values, 0.0).sum(axis)
    out = safe_ratio(total, count)
    return float(out) if np.ndim(out) == 0 else out


def mean_std(values: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """Mean and population std (ddof=0) over seeds, ignoring NaN; ``(nan, nan)`` if none.

    >>> mean_std([0.5, 0.7, np.nan])
    (0.6, 0.1)
    """
    arr = np.asarray(values, np.float64).reshape(-1)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return float("nan"), float("nan")
    return round(float(arr.mean()), 12), round(float(arr.std()), 12)


def seed_stats(values: Sequence[float], *, keep_seeds: bool = True) -> dict[str, Any]:
    """``{"mean", "std", "seeds"}`` of per-seed values (see `mean_std`; undefined = NaN).

    >>> seed_stats([0.5, 0.7])
    {'mean': 0.6, 'std': 0.1, 'seeds': [0.5, 0.7]}
    """
    mean, std = mean_std(values)
    out: dict[str, Any] = {"mean": mean, "std": std}
    if keep_seeds:
        out["seeds"] = [float(v) if not np.isfinite(v) else round(float(v), 6) for v in values]
    return out


def retrieval_at_k(scores: np.ndarray, positive: np.ndarray, k: int = 1) -> tuple[float, float]:
    """Precision@k and recall@k of the memory, averaged over photos with >= 1 true concept.

    Concepts are ranked by score per photo (ties keep the memory's order).

    >>> s = np.array([[0.9, 0.8, 0.1], [0.2, 0.3, 0.9], [0.5, 0.4, 0.3]])
    >>> p = np.array([[0, 1, 0], [0, 0, 1], [0, 0, 0]], bool)
    >>> retrieval_at_k(s, p, 1), retrieval_at_k(s, p, 2)
    ((0.5, 0.5), (0.5, 1.0))
    """
    scores = np.asarray(scores, np.float64)
    positive = np.asarray(positive, bool)
    if k < 1:
        raise InvalidInputError(f"k must be >= 1, got {k}")
    rows = positive.any(1)
    if scores.ndim != 2 or not rows.any():
        return float("nan"), float("nan")
    s, p = scores[rows], positive[rows]
    k_eff = min(k, s.shape[1])
    top = np.argsort(-s, axis=1, kind="stable")[:, :k_eff]
    hits = np.take_along_axis(p, top, 1).sum(1)
    return float(np.mean(hits / k)), float(np.mean(hits / p.sum(1)))


def choice_accuracy(predicted: Sequence[str | None], correct: Sequence[str]) -> dict[str, float | int]:
    """Multiple-choice accuracy; ``None`` predictions are unparsable answers (counted wrong).

    >>> choice_accuracy(["A", None, "b", "A"], ["A", "B", "B", "B"])
    {'accuracy': 0.5, 'correct': 2, 'total': 4, 'unparsable': 1}
    """
    if len(predicted) != len(correct):
        raise InvalidInputError(f"got {len(predicted)} predictions for {len(correct)} questions")
    pairs = zip(predicted, correct, strict=True)
    right = sum(p is not None and p.strip().upper() == c.strip().upper() for p, c in pairs)
    total = len(correct)
    return {"accuracy": right / total if total else float("nan"), "correct": right, "total": total,
            "unparsable": sum(p is None for p in predicted)}


def normalize_text(text: str) -> str:
    """Lower-case, accents and punctuation removed, whitespace collapsed (for exact match).
    The letters of every script are kept, but every combining mark goes with the accents:
    a Devanagari virama, a Japanese voicing mark (so かき and かぎ compare equal).

    >>> normalize_text("  Bo is  sleeping, on the sofa! ")
    'bo is sleeping on the sofa'
    >>> normalize_text("Ωmega Café"), normalize_text("日本の犬") == normalize_text("中国の猫")
    ('ωmega cafe', False)
    """
    text = "".join(ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch))
    return " ".join(re.sub(r"[^\w\s]|_", " ", text.lower()).split())


def exact_match(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """Share of hypotheses equal to one of their references after `normalize_text`.

    >>> exact_match(["Bo sleeps.", "A cat"], [["bo sleeps", "Bo naps"], ["a dog"]])
    0.5
    """
    if len(hypotheses) != len(references):
        raise InvalidInputError(f"got {len(hypotheses)} captions for {len(references)} reference sets")
    if not hypotheses:
        return float("nan")
    pairs = zip(hypotheses, references, strict=True)
    hits = [normalize_text(h) in {normalize_text(r) for r in refs} for h, refs in pairs]
    return float(np.mean(hits))


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """Corpus BLEU-4 in [0, 100] with sacrebleu's defaults; references per hypothesis may vary.

    >>> round(corpus_bleu(["the cat sat on the mat"], [["the cat sat on the mat"]]), 6)
    100.0
    """
    if len(hypotheses) != len(references):
        raise InvalidInputError(f"got {len(hypotheses)} captions for {len(references)} reference sets")
    if not hypotheses:
        return float("nan")
    sacrebleu = require("sacrebleu", "eval")
    width = max(len(r) for r in references)
    if width == 0:
        raise InvalidInputError("every caption needs at least one reference caption")
    streams = [[refs[i] if i < len(refs) else None for refs in references] for i in range(width)]
    return float(sacrebleu.corpus_bleu(list(hypotheses), streams).score)


def _name_variants(name: str) -> list[str]:
    base = name.strip()
    return list(dict.fromkeys(v for v in (base, re.sub(r"[_\-]+", " ", base)) if v))


def mentions_name(text: str, name: str) -> bool:
    """Whether ``text`` uses ``name`` as a whole word (case-insensitive; ``_`` ~ space).

    >>> mentions_name("Small penguin stands on a rock", "small_penguin"), mentions_name("Bob", "Bo")
    (True, False)
    """
    return any(re.search(r"(?<!\w)" + re.escape(v) + r"(?!\w)", text, re.IGNORECASE) for v in _name_variants(name))


def concept_recall(captions: Sequence[str], names: Sequence[str]) -> float:
    """Share of captions that use their concept's name (MyVLM's recall).

    >>> concept_recall(["Bo on a sofa", "a dog on a sofa"], ["Bo", "Bo"])
    0.5
    """
    if len(captions) != len(names):
        raise InvalidInputError(f"got {len(captions)} captions for {len(names)} names")
    if not captions:
        return float("nan")
    return float(np.mean([mentions_name(c, n) for c, n in zip(captions, names, strict=True)]))
