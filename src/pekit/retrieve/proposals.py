"""Candidate regions in a query image, as patch-weight maps over ONE grid.

Every proposal is a ``(h, w)`` weight map over the patch grid plus its box in image
pixels. Embeddings are pooled from the same grid (`pekit.embed.pool`), so proposals never
re-run the backbone.

Offline, class-agnostic sources:

* ``saliency``: connected components of the saliency map at several relative levels, as
  masks and as their bounding boxes;
* ``windows``: a multi-scale sliding-window set (objects the saliency map misses, several
  objects in one photo);
* ``detector``: boxes from an open-vocabulary detector (given by the caller).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from pekit.embed.pooling import box_weights
from pekit.types import PatchGrid

__all__ = ["Proposals", "box_proposals", "saliency_proposals", "window_proposals"]


@dataclass
class Proposals:
    """``m`` candidate regions: ``weights (m, h, w)`` over the grid, ``xyxy (m, 4)`` in pixels."""

    weights: np.ndarray
    xyxy: np.ndarray

    def __len__(self) -> int:
        return len(self.xyxy)

    @classmethod
    def concat(cls, items: list[Proposals], shape: tuple[int, int]) -> Proposals:
        items = [p for p in items if len(p)]
        if not items:
            return cls(np.zeros((0, *shape), np.float32), np.zeros((0, 4), np.float32))
        return cls(np.concatenate([p.weights for p in items]), np.concatenate([p.xyxy for p in items]))


def _cells_to_xyxy(grid: PatchGrid, y0: int, x0: int, y1: int, x1: int) -> list[float]:
    cw, ch = grid.cell_size
    return [x0 * cw, y0 * ch, x1 * cw, y1 * ch]


def window_proposals(
    grid: PatchGrid, *, scales: tuple[float, ...] = (0.35, 0.5, 0.7, 1.0), stride: float = 0.5
) -> Proposals:
    """Square-ish windows covering ``scale`` of each grid side, moved by ``stride`` x size."""
    h, w = grid.shape
    cells: set[tuple[int, int, int, int]] = set()
    for s in scales:
        bh, bw = min(h, max(1, round(h * s))), min(w, max(1, round(w * s)))
        sy, sx = max(1, int(bh * stride)), max(1, int(bw * stride))
        for y in [*range(0, h - bh + 1, sy), h - bh]:
            for x in [*range(0, w - bw + 1, sx), w - bw]:
                cells.add((y, x, y + bh, x + bw))
    ordered = sorted(cells)
    weights = np.zeros((len(ordered), h, w), np.float32)
    for i, (y0, x0, y1, x1) in enumerate(ordered):
        weights[i, y0:y1, x0:x1] = 1.0
    xyxy = np.array([_cells_to_xyxy(grid, *c) for c in ordered], np.float32).reshape(-1, 4)
    return Proposals(weights, xyxy)


def saliency_proposals(
    saliency: np.ndarray, grid: PatchGrid, *, levels: tuple[float, ...] = (0.3, 0.5, 0.7),
    min_patches: int = 2,
) -> Proposals:
    """Connected salient regions at several relative levels: each as a mask and as its box.

    Args:
        saliency: ``(h, w)`` saliency on the patch grid (`extract.grid_saliency`).
    """
    lo, hi = float(saliency.min()), float(saliency.max())
    weights: list[np.ndarray] = []
    boxes: list[list[float]] = []
    if hi - lo < 1e-3:
        return Proposals.concat([], grid.shape)
    for level in levels:
        labels, _ = ndimage.label(saliency > lo + level * (hi - lo))
        for k, sl in enumerate(ndimage.find_objects(labels), start=1):
            if sl is None:
                continue
            component = labels == k
            if component.sum() < min_patches:
                continue
            box = np.zeros_like(component, np.float32)
            box[sl] = 1.0
            weights += [component.astype(np.float32), box]
            xyxy = _cells_to_xyxy(grid, sl[0].start, sl[1].start, sl[0].stop, sl[1].stop)
            boxes += [xyxy, xyxy]
    if not weights:
        return Proposals.concat([], grid.shape)
    return Proposals(np.stack(weights), np.array(boxes, np.float32))


def box_proposals(grid: PatchGrid, xyxy: np.ndarray) -> Proposals:
    """Proposals from given boxes (e.g. a detector's), in image pixels."""
    xyxy = np.asarray(xyxy, np.float32).reshape(-1, 4)
    return Proposals(box_weights(grid, xyxy), xyxy)
