"""Class-agnostic reference views from the saliency map of the same backbone pass.

The offline backbone returns an objectness map with its patch grid. A reference view keeps
the patches of the most salient connected region (optionally inside a user box), so the
view embedding describes the object, not the table it stands on.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from pekit.embed.pooling import box_weights, mask_weights
from pekit.errors import NothingFoundError
from pekit.types import PatchGrid

__all__ = ["grid_saliency", "object_weights"]


def grid_saliency(grid: PatchGrid) -> np.ndarray:
    """The grid's saliency map area-averaged onto the patch grid: ``(h, w)`` in [0, 1]."""
    if grid.saliency is None:
        raise NothingFoundError(
            "this backbone gives no saliency map; pass a box or mask for each reference, "
            "or a category with a preset that has a detector"
        )
    return mask_weights(grid, grid.saliency[None])[0]


def largest_component(mask: np.ndarray, score: np.ndarray | None = None) -> np.ndarray:
    """Keep the connected component with the largest area (or summed ``score``)."""
    labels, n = ndimage.label(mask)
    if n <= 1:
        return mask
    weights = ndimage.sum(mask if score is None else score, labels, range(1, n + 1))
    return labels == (int(np.argmax(weights)) + 1)


def object_weights(
    grid: PatchGrid,
    *,
    box: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    level: float = 0.7,
    min_contrast: float = 0.2,
    min_patches: int = 2,
) -> np.ndarray:
    """``(h, w)`` patch weights of the object in a reference image.

    Args:
        grid: the image's patch grid (with saliency unless ``mask`` is given).
        box: optional ``(4,)`` xyxy user box: the object is searched inside it only; with
            no saliency map the box itself is the region.
        mask: optional ``(H, W)`` user mask: used as is (area coverage per patch).
        level: relative saliency level in [0, 1] between the map's min and max (inside the
            box) above which a patch belongs to the object; higher keeps a tighter core.
        min_contrast: saliency max - min (inside the box) below which nothing stands out
            (blank, noise or gradient images give a uniformly high map with contrast
            below 0.1; real photos measured at least 0.58).
        min_patches: fewer object patches than this raises `NothingFoundError`.

    Raises:
        NothingFoundError: nothing salient found (flat image, or box without an object).
    """
    if mask is not None:
        weights = mask_weights(grid, mask)[0]
        if (weights > 0).sum() == 0:
            raise NothingFoundError("the reference mask is empty; draw it over the object")
        return weights
    inside = None
    if box is not None:
        inside = box_weights(grid, np.asarray(box, np.float32)[None])[0]
        if inside.sum() <= 0:
            raise NothingFoundError(f"the box {np.asarray(box).tolist()} lies outside the image")
        if grid.saliency is None:
            return inside
    sal = grid_saliency(grid)
    region = sal if inside is None else np.where(inside > 0.5, sal, np.nan)
    if np.isnan(region).all():  # no patch is half inside the box: the box itself
        return inside if inside is not None else np.zeros(sal.shape, np.float32)
    lo, hi = np.nanmin(region), np.nanmax(region)
    if not np.isfinite(hi) or hi - lo < min_contrast or hi < 0.3:
        if inside is not None:
            return inside  # nothing stands out inside the box: trust the user's box
        raise NothingFoundError(  # how to pass the box is the caller's to say (introduce: boxes=, add_view: box=)
            "no object stands out in this reference photo; pass a box around it, or use a photo where it is "
            "the main subject"
        )
    fg = np.nan_to_num(region, nan=-1.0) > lo + level * (hi - lo)
    fg = largest_component(fg, np.where(fg, sal, 0.0))
    if fg.sum() < min_patches:
        if inside is not None:
            return inside
        raise NothingFoundError("the object found in this reference photo is too small; pass a box around it")
    return fg.astype(np.float32)
