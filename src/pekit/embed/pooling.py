"""Region pooling: many regions, ONE patch grid.

A region is a box (``xyxy`` in image pixels) or a mask (``(H, W)`` bool in image pixels).
Each patch gets a weight = the fraction of its cell covered by the region; the embedding is
the weighted mean of patch features, L2-normalised. Boxes use an integral image, so pooling
hundreds of proposals costs a few milliseconds.
"""

from __future__ import annotations

import numpy as np

from pekit.errors import InvalidInputError
from pekit.types import PatchGrid

__all__ = ["box_weights", "l2_normalize", "mask_weights", "pool", "pool_boxes", "pool_masks", "unit_patches"]


def l2_normalize(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Unit-length vectors along ``axis`` (zero vectors stay zero)."""
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=axis, keepdims=True), 1e-12)


def unit_patches(grid: PatchGrid) -> np.ndarray:
    """``(h*w, d)`` unit patch features of a grid, row-major (what part-level scores compare)."""
    return l2_normalize(grid.features.reshape(-1, grid.dim))


def _coverage_1d(lo: np.ndarray, hi: np.ndarray, n: int, size: float) -> np.ndarray:
    """``(m, n)`` fraction of each of ``n`` equal cells over ``[0, size)`` inside ``[lo, hi)``."""
    edges = np.linspace(0.0, size, n + 1, dtype=np.float64)
    start = np.maximum(edges[None, :-1], lo[:, None])
    stop = np.minimum(edges[None, 1:], hi[:, None])
    return np.clip(stop - start, 0.0, None) / (size / n)


def box_weights(grid: PatchGrid, xyxy: np.ndarray) -> np.ndarray:
    """``(m, h, w)`` patch weights (cell coverage in [0, 1]) of ``m`` boxes."""
    xyxy = np.asarray(xyxy, np.float64).reshape(-1, 4)
    h, w = grid.shape
    width, height = grid.image_size
    wx = _coverage_1d(xyxy[:, 0], xyxy[:, 2], w, width)
    wy = _coverage_1d(xyxy[:, 1], xyxy[:, 3], h, height)
    return (wy[:, :, None] * wx[:, None, :]).astype(np.float32)


def mask_weights(grid: PatchGrid, masks: np.ndarray) -> np.ndarray:
    """``(m, h, w)`` fraction of each patch cell covered by each ``(H, W)`` mask.

    Masks of any resolution are accepted; they are area-averaged onto the grid.
    """
    masks = np.asarray(masks)
    if masks.ndim == 2:
        masks = masks[None]
    if masks.ndim != 3:
        raise InvalidInputError(f"masks must have shape (m, H, W) or (H, W), got {masks.shape}")
    h, w = grid.shape
    out = np.empty((len(masks), h, w), np.float32)
    for k, m in enumerate(masks.astype(np.float32)):
        mh, mw = m.shape
        ys = np.linspace(0, mh, h + 1).round().astype(int)
        xs = np.linspace(0, mw, w + 1).round().astype(int)
        # area average via cumulative sums; cells of zero size fall back to nearest pixel
        c = np.pad(m.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
        ys1, xs1 = np.maximum(ys[1:], ys[:-1] + 1), np.maximum(xs[1:], xs[:-1] + 1)
        ys0, xs0 = np.minimum(ys[:-1], mh - 1), np.minimum(xs[:-1], mw - 1)
        ys1, xs1 = np.minimum(ys1, mh), np.minimum(xs1, mw)
        total = c[ys1][:, xs1] - c[ys0][:, xs1] - c[ys1][:, xs0] + c[ys0][:, xs0]
        area = (ys1 - ys0)[:, None] * (xs1 - xs0)[None, :]
        out[k] = total / np.maximum(area, 1)
    return out


def pool(grid: PatchGrid, weights: np.ndarray) -> np.ndarray:
    """Weighted means of patch features: ``(m, h, w)`` weights -> ``(m, d)`` unit vectors.

    Regions with zero total weight get a zero vector (similarity 0 to everything).
    """
    weights = np.asarray(weights, np.float32)
    if weights.ndim == 2:
        weights = weights[None]
    h, w = grid.shape
    if weights.shape[1:] != (h, w):
        raise InvalidInputError(f"weights must have shape (m, {h}, {w}), got {weights.shape}")
    flat = weights.reshape(len(weights), -1)
    sums = flat.sum(1, keepdims=True)
    feats = grid.features.reshape(h * w, -1)
    means = (flat @ feats) / np.maximum(sums, 1e-6)
    return l2_normalize(means)


def pool_boxes(grid: PatchGrid, xyxy: np.ndarray) -> np.ndarray:
    """``(m, 4)`` boxes in image pixels -> ``(m, d)`` L2-normalised embeddings."""
    return pool(grid, box_weights(grid, xyxy))


def pool_masks(grid: PatchGrid, masks: np.ndarray) -> np.ndarray:
    """``(m, H, W)`` masks -> ``(m, d)`` L2-normalised embeddings."""
    return pool(grid, mask_weights(grid, masks))
