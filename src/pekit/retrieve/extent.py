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

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

__all__ = ["box_cells", "mask_xyxy", "object_extent", "part_similarity_map", "salient_boxes"]


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


def box_cells(box: Sequence[float] | np.ndarray, image_size: tuple[int, int],
              shape: tuple[int, ...]) -> tuple[slice, slice]:
    """``(rows, cols)``: the cells of a map of ``shape`` (over the whole photo of
    ``image_size = (width, height)``) that a pixel box ``(x0, y0, x1, y1)`` touches, rounded outward.

    >>> box_cells((10, 0, 30, 16), (64, 32), (4, 8))
    (slice(0, 2, None), slice(1, 4, None))
    """
    width, height = image_size
    sy, sx = height / shape[0], width / shape[1]
    x0, y0 = max(int(np.floor(box[0] / sx)), 0), max(int(np.floor(box[1] / sy)), 0)
    x1, y1 = max(int(np.ceil(box[2] / sx)), 0), max(int(np.ceil(box[3] / sy)), 0)
    return slice(y0, y1), slice(x0, x1)


def salient_boxes(xyxy: np.ndarray, saliency: np.ndarray, image_size: tuple[int, int], *, level: float = 0.5,
                  inside: float = 0.8, min_contrast: float = 0.2) -> np.ndarray:
    """``(n, 4)`` boxes ``xyxy``, each grown to the salient object it lies on: the box of the
    saliency map's connected component (above ``level`` of the map's range) that has the
    most pixels in it, united with it when at least ``inside`` of that component's pixels and
    half of its bounding box lie in it.

    The extent is read from patch similarity at 1/14 of the resolution, and the object's
    rim (paws on a rug, a mug's handle, an edge in shadow) is often under the midpoint: the
    box stops short of it. The saliency map is at the network's input resolution and
    outlines whole objects; requiring most of the component inside the box keeps a
    component that merges the object with a neighbour or the background from growing it.
    A flat map (range under ``min_contrast``) changes nothing. ``image_size``: the photo's
    ``(width, height)``; ``saliency``: ``(H', W')`` over the whole photo (labelled once for
    all the boxes).

    >>> sal = np.zeros((40, 40), np.float32); sal[5:36, 10:30] = 1   # an object, rows 5-35
    >>> salient_boxes(np.array([[10, 5, 30, 30], [10, 5, 14, 9]]), sal, (40, 40)).tolist()
    [[10.0, 5.0, 30.0, 36.0], [10.0, 5.0, 14.0, 9.0]]

    (the first box cut its feet off and gets them; the second, a small part, does not grow)
    """
    boxes = np.asarray(xyxy, np.float32).reshape(-1, 4).copy()
    sal = np.asarray(saliency, np.float32)
    lo, hi = (float(sal.min()), float(sal.max())) if sal.size else (0.0, 0.0)
    if not len(boxes) or hi - lo < min_contrast:
        return boxes
    labels, n = ndimage.label(sal > lo + level * (hi - lo))
    if n == 0:
        return boxes
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    spans = ndimage.find_objects(labels)  # each component's bounding slices
    width, height = image_size
    sy, sx = height / sal.shape[0], width / sal.shape[1]
    for box in boxes:
        ys, xs = box_cells(box, image_size, sal.shape)
        y0, y1, x0, x1 = ys.start, ys.stop, xs.start, xs.stop
        within = np.bincount(labels[ys, xs].ravel(), minlength=n + 1)
        within[0] = 0
        best = int(np.argmax(within))
        if within[best] == 0 or within[best] < inside * sizes[best]:
            continue
        rows, cols = spans[best - 1]
        inner = max(0, min(x1, cols.stop) - max(x0, cols.start)) * max(0, min(y1, rows.stop) - max(y0, rows.start))
        if inner < 0.5 * (cols.stop - cols.start) * (rows.stop - rows.start):
            continue  # a thin strand (a leash, a shelf's edge) would stretch the box far beyond the object
        box[:] = (min(box[0], cols.start * sx), min(box[1], rows.start * sy),
                  max(box[2], cols.stop * sx), max(box[3], rows.stop * sy))
    return boxes
