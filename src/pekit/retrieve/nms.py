"""Box geometry helpers: IoU and non-maximum suppression (pure numpy)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["box_area", "box_iou", "nms", "overlap"]


def overlap(a: Sequence[float], b: Sequence[float]) -> float:
    """Area of the intersection of two xyxy boxes (0 when apart)."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return max(w, 0.0) * max(h, 0.0)


def box_area(b: Sequence[float]) -> float:
    """Area of one xyxy box (0 when empty)."""
    return max(b[2] - b[0], 0.0) * max(b[3] - b[1], 0.0)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(n, 4)`` x ``(m, 4)`` xyxy boxes -> ``(n, m)`` intersection over union.

    >>> print(box_iou(np.array([[0, 0, 2, 2]]), np.array([[1, 1, 3, 3]])).round(3))
    [[0.143]]
    """
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return (inter / np.maximum(union, 1e-9)).astype(np.float32)


def nms(xyxy: np.ndarray, score: np.ndarray, *, iou: float = 0.5) -> np.ndarray:
    """Indices of boxes kept by greedy non-maximum suppression, highest score first.

    >>> nms(np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]]), np.array([.9, .8, .7])).tolist()
    [0, 2]
    """
    order = np.argsort(-np.asarray(score), kind="stable")
    xyxy = np.asarray(xyxy, np.float64).reshape(-1, 4)
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        if order.size == 1:
            break
        overlaps = box_iou(xyxy[i : i + 1], xyxy[order[1:]])[0]
        order = order[1:][overlaps <= iou]
    return np.asarray(keep, np.int64)
