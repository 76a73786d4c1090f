"""Box geometry: IoU and greedy non-maximum suppression."""

from __future__ import annotations

import numpy as np
import pytest

from pekit.retrieve.nms import box_iou, nms


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ([0, 0, 10, 10], [0, 0, 10, 10], 1.0),  # identical
        ([0, 0, 10, 10], [20, 20, 30, 30], 0.0),  # disjoint
        ([0, 0, 10, 10], [10, 0, 20, 10], 0.0),  # touching edges
        ([0, 0, 10, 10], [5, 0, 15, 10], 50 / 150),  # half overlap
        ([0, 0, 10, 10], [2, 2, 7, 7], 25 / 100),  # contained
        ([0, 0, 2, 2], [1, 1, 3, 3], 1 / 7),
        ([0, 0, 0, 0], [0, 0, 0, 0], 0.0),  # empty boxes: no overlap, no NaN
        ([0.5, 0.5, 1.5, 1.5], [0, 0, 1, 1], 0.25 / 1.75),  # fractional
    ],
)
def test_box_iou_table(a: list, b: list, expected: float) -> None:
    out = box_iou(np.array([a]), np.array([b]))
    assert out.shape == (1, 1) and out.dtype == np.float32
    assert out[0, 0] == pytest.approx(expected, abs=1e-6)
    assert box_iou(np.array([b]), np.array([a]))[0, 0] == pytest.approx(expected, abs=1e-6)  # symmetric


def test_box_iou_matrix_shape() -> None:
    a = np.array([[0, 0, 10, 10], [0, 0, 5, 5], [50, 50, 60, 60]])
    b = np.array([[0, 0, 10, 10], [100, 100, 110, 110]])
    out = box_iou(a, b)
    assert out.shape == (3, 2)
    np.testing.assert_allclose(out, [[1, 0], [0.25, 0], [0, 0]], atol=1e-6)
    assert box_iou(np.zeros((0, 4)), b).shape == (0, 2)


@pytest.mark.parametrize(
    ("boxes", "scores", "iou", "expected"),
    [
        ([], [], 0.5, []),
        ([[0, 0, 10, 10]], [0.3], 0.5, [0]),
        ([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], [0.9, 0.8, 0.7], 0.5, [0, 2]),
        ([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], [0.5, 0.8, 0.7], 0.5, [1, 2]),  # highest first
        ([[0, 0, 10, 10], [5, 0, 15, 10]], [0.9, 0.8], 0.3, [0]),  # IoU 1/3 > 0.3: suppressed
        ([[0, 0, 10, 10], [5, 0, 15, 10]], [0.9, 0.8], 0.5, [0, 1]),  # IoU 1/3 <= 0.5: kept
        ([[0, 0, 10, 10], [0, 0, 10, 10]], [0.5, 0.5], 0.5, [0]),  # ties keep the first
        ([[0, 0, 10, 10], [0, 0, 10, 10]], [0.5, 0.5], 1.0, [0, 1]),  # iou=1 keeps duplicates
    ],
)
def test_nms_table(boxes: list, scores: list, iou: float, expected: list) -> None:
    keep = nms(np.array(boxes, np.float32).reshape(-1, 4), np.array(scores), iou=iou)
    assert keep.dtype == np.int64
    assert keep.tolist() == expected


def test_nms_chain_is_greedy() -> None:
    # A suppresses B, so C (overlapping only B) survives
    boxes = np.array([[0, 0, 10, 10], [6, 0, 16, 10], [12, 0, 22, 10]])
    assert nms(boxes, np.array([0.9, 0.8, 0.7]), iou=0.2).tolist() == [0, 2]
