"""Metric functions against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pekit.errors import InvalidInputError
from pekit.eval.metrics import (
    choice_accuracy,
    concept_mean,
    concept_recall,
    confusion,
    corpus_bleu,
    exact_match,
    mean_std,
    mentions_name,
    normalize_text,
    recognition_metrics,
    retrieval_at_k,
    safe_ratio,
    seed_stats,
)

nan = float("nan")


def same(a, b) -> bool:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return a.shape == b.shape and bool(np.all((np.isnan(a) & np.isnan(b)) | np.isclose(a, b)))


# 4 photos x 3 concepts. Concept 0: 2 positives, 2 negatives; concept 1: no positives;
# concept 2: no negatives (every photo is a positive or not counted).
SCORES = np.array([[0.9, 0.2, 0.7],
                   [0.5, 0.8, 0.65],
                   [0.7, 0.1, 0.3],
                   [0.2, 0.6, -1.0]])
POS = np.array([[1, 0, 1],
                [1, 0, 1],
                [0, 0, 0],
                [0, 0, 1]], bool)
NEG = np.array([[0, 1, 0],
                [0, 1, 0],
                [1, 1, 0],
                [1, 1, 0]], bool)


def test_confusion_counts_by_hand():
    tp, fn, tn, fp = confusion(SCORES, POS, NEG, 0.6)
    # concept 0: pos rows 0 (0.9 hit), 1 (0.5 miss); neg rows 2 (0.7 FP), 3 (0.2 TN)
    # concept 1: neg rows 0..3 -> 0.2, 0.8 (FP), 0.1, 0.6 (FP, >= is a hit)
    # concept 2: pos rows 0 (0.7), 1 (0.65), 3 (-1 = no candidate); no negatives
    assert tp.tolist() == [1, 0, 2]
    assert fn.tolist() == [1, 0, 1]
    assert tn.tolist() == [1, 2, 0]
    assert fp.tolist() == [1, 2, 0]


def test_recognition_metrics_undefined_cases():
    m = recognition_metrics(*confusion(SCORES, POS, NEG, 0.6))
    assert same(m["positive"], [0.5, nan, 2 / 3])     # concept 1 has no positives
    assert same(m["negative"], [0.5, 0.5, nan])       # concept 2 has an empty negative set
    assert same(m["precision"], [0.5, 0.0, 1.0])      # concept 1: 0 TP / 2 predicted
    assert same(m["weighted"], [0.5, nan, nan])
    assert concept_mean(m["positive"]) == pytest.approx((0.5 + 2 / 3) / 2)
    assert concept_mean(m["weighted"]) == pytest.approx(0.5)


def test_confusion_sweep_matches_single_thresholds():
    thr = np.array([0.0, 0.6, 0.95])
    swept = confusion(SCORES, POS, NEG, thr)
    for t, value in enumerate(thr):
        for a, b in zip(swept, confusion(SCORES, POS, NEG, float(value)), strict=True):
            assert a[t].tolist() == b.tolist()
    tp, _, _, fp = swept
    assert tp[2].tolist() == [0, 0, 0] and fp[2].tolist() == [0, 0, 0]   # nothing recognized at 0.95
    assert same(recognition_metrics(*[c[2] for c in swept])["precision"], [nan, nan, nan])


def test_confusion_rejects_bad_shapes():
    with pytest.raises(InvalidInputError, match="shape"):
        confusion(SCORES, POS[:2], NEG, 0.5)


@pytest.mark.parametrize(("values", "expected"), [
    ([1.0, 0.5], 0.75),
    ([np.nan, 0.25], 0.25),
    ([np.nan, np.nan], nan),
    ([], nan),
])
def test_concept_mean(values, expected):
    assert same(concept_mean(np.array(values)), expected)


@pytest.mark.parametrize(("values", "expected"), [
    ([0.5, 0.7], (0.6, 0.1)),
    ([0.8], (0.8, 0.0)),
    ([0.2, nan, 0.4], (0.3, 0.1)),
    ([nan], (nan, nan)),
])
def test_mean_std_over_seeds(values, expected):
    assert same(mean_std(values), expected)


def test_seed_stats_keeps_undefined_seeds_as_none():
    out = seed_stats([0.5, nan])
    assert out["mean"] == 0.5 and out["std"] == 0.0 and out["seeds"][0] == 0.5 and np.isnan(out["seeds"][1])


def test_safe_ratio():
    assert same(safe_ratio(np.array([1, 2, 0]), np.array([4, 0, 0])), [0.25, nan, nan])


def test_retrieval_at_k_by_hand():
    scores = np.array([[0.9, 0.8, 0.1],
                       [0.2, 0.3, 0.9],
                       [0.6, 0.5, 0.4],
                       [0.0, 0.0, 0.0]])
    pos = np.array([[0, 1, 0],
                    [0, 0, 1],
                    [1, 1, 0],     # two concepts in one photo
                    [0, 0, 0]], bool)  # no concept: not counted
    p1, r1 = retrieval_at_k(scores, pos, 1)
    assert p1 == pytest.approx((0 + 1 + 1) / 3) and r1 == pytest.approx((0 + 1 + 0.5) / 3)
    p2, r2 = retrieval_at_k(scores, pos, 2)
    assert p2 == pytest.approx((0.5 + 0.5 + 1) / 3) and r2 == pytest.approx(1.0)
    assert same(retrieval_at_k(scores, np.zeros_like(pos), 1), (nan, nan))
    with pytest.raises(InvalidInputError):
        retrieval_at_k(scores, pos, 0)


def test_choice_accuracy_counts_unparsable_as_wrong():
    out = choice_accuracy(["A", None, "b", "B", None], ["A", "A", "B", "A", "B"])
    assert out == {"accuracy": 0.4, "correct": 2, "total": 5, "unparsable": 2}
    assert math.isnan(choice_accuracy([], [])["accuracy"])
    with pytest.raises(InvalidInputError):
        choice_accuracy(["A"], [])


@pytest.mark.parametrize(("text", "name", "expected"), [
    ("Bo is on the sofa.", "Bo", True),
    ("bo's ball", "Bo", True),
    ("Bob is on the sofa.", "Bo", False),
    ("The small penguin on a shelf", "small_penguin", True),
    ("small_penguin on a shelf", "small_penguin", True),
    ("a penguin", "small_penguin", False),
])
def test_mentions_name(text, name, expected):
    assert mentions_name(text, name) is expected


def test_concept_recall_and_exact_match():
    assert concept_recall(["Bo sleeps", "a dog", "BO runs", "Mochi"], ["Bo", "Bo", "Bo", "Mochi"]) == 0.75
    refs = [["bo sleeps"], ["a dog", "A  cat"], ["y"]]
    assert exact_match(["Bo sleeps.", "A cat!", "x"], refs) == pytest.approx(2 / 3)
    assert normalize_text("Café, au-lait!") == "cafe au lait"
    assert math.isnan(exact_match([], []))


def test_corpus_bleu_hand_values():
    assert corpus_bleu(["the cat sat on the mat"], [["the cat sat on the mat"]]) == pytest.approx(100.0)
    assert corpus_bleu(["a b c d"], [["w x y z"]]) == pytest.approx(0.0)
    # several references, of different counts per caption, are allowed
    two = corpus_bleu(["the cat sat on the mat", "a dog runs in the park"],
                      [["the cat sat on the mat"], ["a dog runs in the park", "a dog is running"]])
    assert two == pytest.approx(100.0)
    with pytest.raises(InvalidInputError):
        corpus_bleu(["a"], [])
