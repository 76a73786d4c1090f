"""Reference boxes a user draws (``--box x0,y0,x1,y1``), checked before they are used.

A box must be four finite numbers with ``x1 > x0`` and ``y1 > y0`` and at least
`MIN_BOX_SIDE` pixels on each side (`reference_boxes`: before any backbone pass), lie at
least partly on its photo (`check_box_on_photo`: once the photo is read) and cover at least
`MIN_BOX_PATCHES` patches of the backbone's grid (`check_box_on_grid`: right after that
photo's pass), since under that its pooled embedding is noise; so must a mask's marked
pixels (`check_mask_on_grid`). Each refusal is an
`InvalidInputError` that names the box and what to draw instead (and, once it is read, the
photo and its size); nothing is stored.

Example:
    >>> reference_boxes(["a.jpg", "b.jpg"], [[10, 10, 200, 180], None])[1] is None
    True
    >>> check_box_on_photo([10, 10, 200, 180], 640, 480, "a.jpg")
    (190.0, 170.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from pekit.errors import InvalidInputError
from pekit.images import describe

__all__ = ["MIN_BOX_PATCHES", "MIN_BOX_SIDE", "check_box_on_grid", "check_box_on_photo", "check_mask",
           "check_mask_on_grid", "reference_boxes", "reference_masks"]

#: A reference box must be at least this many pixels wide and high ...
MIN_BOX_SIDE = 8
#: ... and cover at least this many patches of the backbone grid (else its embedding is noise).
MIN_BOX_PATCHES = 2
#: A box coordinate's magnitude limit (pixels): far past any photo's side.
MAX_COORDINATE = 1e7


def _box_numbers(box: Any) -> np.ndarray:
    """``box``'s four numbers as float64 (an empty array when it is not four plain numbers:
    reported by the caller like any malformed box). ``True``, a nested list and a number too
    large for a float are not coordinates: numpy would take them as 1, flatten the list or
    raise `OverflowError`."""
    if isinstance(box, np.ndarray):
        values = list(box.reshape(-1)) if box.size == 4 else []
    else:
        values = list(box) if isinstance(box, (list, tuple)) else []
    if len(values) != 4 or not all(isinstance(v, (int, float, np.integer, np.floating))
                                   and not isinstance(v, (bool, np.bool_)) for v in values):
        return np.zeros(0, np.float64)
    try:
        return np.asarray(values, np.float64)
    except OverflowError:  # an int beyond float range: not finite, reported as such
        return np.full(4, np.inf)


def reference_boxes(images: Sequence[Any], boxes: Sequence[Any] | None) -> list[np.ndarray | None]:
    """One ``(4,)`` float box or None per image (all None without ``boxes``); refuses a count
    that does not match ``images``, a malformed box and one under `MIN_BOX_SIDE` pixels."""
    if boxes is None:
        return [None] * len(images)
    if len(boxes) != len(images):
        flat = len(boxes) == 4 and all(isinstance(v, (int, float, np.number)) for v in boxes)
        hint = (f"; for one photo pass a list of one box, boxes=[[{', '.join(str(v) for v in boxes)}]]"
                if flat and len(images) == 1 else "")
        raise InvalidInputError(f"got {len(boxes)} boxes for {len(images)} images; give one box (or None) "
                                f"per image{hint}")
    out: list[np.ndarray | None] = []
    for b in boxes:
        if b is None:
            out.append(None)
            continue
        arr = _box_numbers(b)
        shown = repr(b) if len(repr(b)) <= 80 else repr(b)[:77] + "..."
        if arr.shape != (4,):
            raise InvalidInputError(f"a box must be four numbers [x0, y0, x1, y1] in pixels, got {shown}")
        if not np.all(np.isfinite(arr)):
            raise InvalidInputError(f"a box must be four finite pixel coordinates [x0, y0, x1, y1], got {shown}")
        if not np.all(np.abs(arr) < MAX_COORDINATE):  # (no photo is that large: a slip, e.g. a missing comma)
            raise InvalidInputError(f"a box's coordinates are pixels of the photo, under {MAX_COORDINATE:,.0f} in "
                                    f"size; got {shown}")
        if arr[2] <= arr[0] or arr[3] <= arr[1]:
            raise InvalidInputError(f"a box must be [x0, y0, x1, y1] with x1 > x0 and y1 > y0, got {shown}")
        arr = arr.astype(np.float32)
        if min(arr[2] - arr[0], arr[3] - arr[1]) < MIN_BOX_SIDE:
            raise InvalidInputError(
                f"the box {[round(float(v), 1) for v in arr]} is {arr[2] - arr[0]:g} x {arr[3] - arr[1]:g} pixels; "
                f"a box around the object must be at least {MIN_BOX_SIDE} x {MIN_BOX_SIDE} pixels"
            )
        out.append(arr)
    return out


def check_box_on_photo(box: Any, width: int, height: int, source: Any) -> tuple[float, float]:
    """The width and height of ``box``'s part inside a ``width`` x ``height`` photo; refuses a
    box that lies wholly outside it, or whose part inside is under `MIN_BOX_SIDE` on a side
    (an object's or a person's reference box)."""
    w = min(float(box[2]), width) - max(float(box[0]), 0.0)
    h = min(float(box[3]), height) - max(float(box[1]), 0.0)
    if w <= 0 or h <= 0:
        raise InvalidInputError(
            f"{describe(source)}: the box {[round(float(v), 1) for v in box]} lies outside the {width}x{height} "
            f"photo; give x0,y0,x1,y1 in its pixels (x from 0 to {width}, y from 0 to {height})"
        )
    if min(w, h) < MIN_BOX_SIDE:
        shown = [round(float(v), 1) for v in box]
        inside = w == float(box[2]) - float(box[0]) and h == float(box[3]) - float(box[1])
        where = (f"the box {shown} is {w:g} x {h:g} pixels" if inside else
                 f"only {w:g} x {h:g} pixels of the box {shown} lie inside the {width}x{height} photo")
        raise InvalidInputError(
            f"{describe(source)}: {where}; a box around the object must hold at least {MIN_BOX_SIDE} x "
            f"{MIN_BOX_SIDE} pixels of it (x from 0 to {width}, y from 0 to {height})"
        )
    return w, h


def check_box_on_grid(box: np.ndarray, grid: Any, source: Any) -> None:
    """Refuse a box that lies off the photo of ``grid`` (a `PatchGrid`) or covers under
    `MIN_BOX_PATCHES` of its patches."""
    width, height = grid.image_size
    cw, ch = grid.cell_size
    w, h = check_box_on_photo(box, width, height, source)
    covered = w / cw * h / ch
    if covered < MIN_BOX_PATCHES:
        raise InvalidInputError(
            f"{describe(source)}: the box {[round(float(v), 1) for v in box]} covers {covered:.1f} patch(es) of "
            f"the {width}x{height} photo; the backbone sees it in patches of {cw:.0f}x{ch:.0f} pixels, so draw "
            f"a box covering at least {MIN_BOX_PATCHES} of them (e.g. {round(cw * 2)}x{round(ch)} pixels or more)"
        )


def check_mask(mask: Any, width: int, height: int, source: Any) -> np.ndarray:
    """A user's object mask for a ``width`` x ``height`` photo, checked: ``(h, w)`` bool, or
    float weights in [0, 1] (a soft mask), of the photo's size or another size of the same
    shape (it is area-averaged onto the patch grid either way).

    Refuses another aspect ratio (a mask made for another photo, or an ``(H, W, 3)`` image),
    values that are not finite numbers (or floats outside [0, 1]), and a mask that marks fewer
    than ``MIN_BOX_SIDE ** 2`` of the photo's pixels (its embedding would be noise, as for a
    tiny box). Integer masks (0/1, 0/255) are read as nonzero = object.

    >>> check_mask(np.ones((20, 30)), 30, 20, "a.jpg").shape
    (20, 30)
    """
    try:
        arr = np.asarray(mask)
        numeric = arr.dtype == bool or np.issubdtype(arr.dtype, np.number)
    except (TypeError, ValueError):
        arr, numeric = np.zeros(0), False
    same_shape = numeric and arr.ndim == 2 and min(arr.shape) > 0 and \
        abs(arr.shape[0] / arr.shape[1] / (height / width) - 1) < 0.02
    if not same_shape:
        got = f"shape {arr.shape}" if numeric else type(mask).__name__
        raise InvalidInputError(
            f"{describe(source)}: a mask must be an (H, W) array of True/False (or 0-1 weights) with its photo's "
            f"shape, ({height}, {width}) here; got {got}"
        )
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)) or arr.min() < 0 or arr.max() > 1:
            raise InvalidInputError(f"{describe(source)}: a float mask must hold weights from 0 to 1 (no NaN); "
                                    "or pass True/False")
        arr = arr.astype(np.float32)
    else:
        arr = arr != 0
    marked = float(np.count_nonzero(arr)) * (height * width) / arr.size  # in the photo's pixels
    if marked < MIN_BOX_SIDE * MIN_BOX_SIDE:
        raise InvalidInputError(
            f"{describe(source)}: the mask marks {marked:.0f} pixel(s) of the photo; mark the whole object "
            f"(at least {MIN_BOX_SIDE * MIN_BOX_SIDE} pixels)"
        )
    return arr


def check_mask_on_grid(mask: np.ndarray, grid: Any, source: Any) -> None:
    """Refuse a mask (checked by `check_mask`) whose marked pixels add up to under
    `MIN_BOX_PATCHES` patches of ``grid`` (a `PatchGrid` of its photo), as `check_box_on_grid`
    refuses a box: its pooled embedding would be noise. ``MIN_BOX_SIDE ** 2`` pixels is a
    fraction of a patch on a photo of a few hundred pixels, and less on a larger one."""
    arr = np.asarray(mask)
    width, height = grid.image_size
    cw, ch = grid.cell_size
    rows, cols = grid.shape
    covered = float(np.count_nonzero(arr)) / arr.size * rows * cols  # marked share of the photo, in patches
    if covered < MIN_BOX_PATCHES:
        raise InvalidInputError(
            f"{describe(source)}: the mask marks {covered:.1f} patch(es) of the {width}x{height} photo; the backbone "
            f"sees it in patches of {cw:.0f}x{ch:.0f} pixels, so mark the whole object, at least {MIN_BOX_PATCHES} "
            f"of them (e.g. {round(cw * 2)}x{round(ch)} pixels or more)"
        )


def reference_masks(masks: Any, count: int) -> list[Any]:
    """One mask (or None) per image (all None without ``masks``); a bare ``(H, W)`` mask
    for one photo is that photo's. Refuses a count that does not match (each mask is checked
    against its photo by `check_mask`).

    >>> [m is None for m in reference_masks(None, 2)], len(reference_masks(np.ones((4, 4)), 1))
    ([True, True], 1)
    """
    if masks is None:
        return [None] * count
    if isinstance(masks, np.ndarray) and masks.ndim == 2:
        if count == 1:
            return [masks]
        raise InvalidInputError(f"got one (H, W) mask for {count} images; give a list with one mask (or None) per "
                                "image")
    out = list(masks)
    if len(out) != count:
        raise InvalidInputError(f"got {len(out)} masks for {count} images; give a list with one mask (or None) per "
                                "image, e.g. masks=[mask] for one photo")
    return out
