"""Whole-object extent: grow a matched region to the object it belongs to.

The proposal that matches a concept best is often a *part* of the object (a dog's face,
its rear body): part regions are purer, so their mean embedding can beat the whole
object's. The LVLM is told "the entity in the red box is Bo", so the box must hold all of
Bo. After a match, `object_extent` grows the region over the patch grid:

1. every patch gets its similarity to the concept's part prototypes (best part);
2. the object's level is the 90th percentile of that similarity inside the matched
   region, the background's level the image median;
3. patches above the midpoint (``alpha`` = 0.5) between the two levels are "like the
   concept"; the connected components of those patches that touch the matched region are
   the object.

Everything is read from the one patch grid of the query: no extra backbone pass. A
neighbour is only absorbed when it is connected to the match *and* looks like the concept's
parts, which another object rarely does.

Example:
    >>> import numpy as np
    >>> parts = np.eye(4, dtype=np.float32)[:1]                  # one part: direction 0
    >>> unit = np.zeros((3, 4, 4), np.float32); unit[..., 1] = 1  # background: direction 1
    >>> unit[1, :3] = [1, 0, 0, 0]                                # the object: 3 patches in a row
    >>> seed = np.zeros((3, 4), np.float32); seed[1, 0] = 1      # matched only its first patch
    >>> object_extent(unit.reshape(-1, 4), parts, seed).astype(int)[1].tolist()
    [1, 1, 1, 0]
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["mask_xyxy", "object_extent", "part_similarity_map"]


def part_similarity_map(unit: np.ndarray, parts: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``(h, w)`` cosine of each unit patch feature to its best-matching part prototype.

    Args:
        unit: ``(h*w, d)`` L2-normalised patch features of the query grid.
        parts: ``(p, d)`` unit part prototypes of one concept.
    """
    if len(parts) == 0:
        return np.zeros(shape, np.float32)
    return (unit @ parts.T).max(1).reshape(shape).astype(np.float32)


def object_extent(unit: np.ndarray, parts: np.ndarray, seed: np.ndarray, *, alpha: float = 0.5,
                  similarity: np.ndarray | None = None) -> np.ndarray:
    """``(h, w)`` bool mask of the object a matched region belongs to.

    Args:
        unit: ``(h*w, d)`` unit patch features of the query grid.
        parts: ``(p, d)`` unit part prototypes of the matched concept.
        seed: ``(h, w)`` patch weights of the matched region (coverage in [0, 1]).
        alpha: where between the background level (0) and the object level (1) a patch
            starts to count as the concept's; lower grows more.
        similarity: the precomputed `part_similarity_map` (saves one matrix product).

    Returns:
        The connected components of concept-like patches touching the seed; the seed's
        core itself when nothing around it qualifies.
    """
    core = np.asarray(seed) > 0.5
    if not core.any():
        core = np.asarray(seed) >= np.max(seed)
    sim = part_similarity_map(unit, parts, core.shape) if similarity is None else similarity
    peak = float(np.percentile(sim[core], 90))
    background = float(np.median(sim))
    if peak <= background:
        return core
    like = sim >= background + alpha * (peak - background)
    labels, _ = ndimage.label(like)
    touching = np.unique(labels[core & like])
    touching = touching[touching > 0]
    if touching.size == 0:
        return core
    return np.isin(labels, touching)


def mask_xyxy(mask: np.ndarray, cell_size: tuple[float, float]) -> np.ndarray:
    """Box ``(4,)`` in image pixels around the patches of an ``(h, w)`` bool mask.

    >>> mask_xyxy(np.array([[0, 1], [0, 1]], bool), (10.0, 5.0)).tolist()
    [10.0, 0.0, 20.0, 10.0]
    """
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return np.zeros(4, np.float32)
    cw, ch = cell_size
    return np.array([xs.min() * cw, ys.min() * ch, (xs.max() + 1) * cw, (ys.max() + 1) * ch], np.float32)
