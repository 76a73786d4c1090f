"""Image operations of the stress split: paste a shrunk, feather-edged object; downscale.

Pure functions on ``(H, W, 3) uint8`` arrays and xyxy pixel boxes; nothing is written.

Example:
    >>> img, box = downscale(np.zeros((480, 640, 3), np.uint8), (64, 48, 640, 480))
    >>> img.shape
    (240, 320, 3)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from pekit.errors import InvalidInputError
from pekit.eval.datasets import Box
from pekit.retrieve.nms import box_area, overlap

__all__ = ["Placement", "box_area", "composite", "downscale", "overlap", "visible_box"]


@dataclass(frozen=True)
class Placement:
    """Where a composite put the object: ``box`` (object, xyxy px), ``rect`` (the pasted
    feathered rectangle, xyxy int px), ``area_fraction`` of the frame the box covers, ``scale``."""

    box: Box
    rect: tuple[int, int, int, int]
    area_fraction: float
    scale: float


def visible_box(box: Box, cover: Sequence[float]) -> Box | None:
    """The part of ``box`` left visible by an opaque rectangle ``cover``, as far as a box can say.

    A cover spanning the box's full height (width) trims it from the side it covers; a cover
    inside or over a corner leaves the extent unchanged; a cover hiding all of it gives ``None``.

    >>> visible_box((0, 0, 10, 10), (6, -1, 20, 11))
    (0.0, 0.0, 6.0, 10.0)
    >>> visible_box((0, 0, 10, 10), (2, 2, 4, 4)), visible_box((0, 0, 10, 10), (-1, -1, 11, 11))
    ((0.0, 0.0, 10.0, 10.0), None)
    """
    x0, y0, x1, y1 = (float(v) for v in box)
    cx0, cy0, cx1, cy1 = (float(v) for v in cover)
    if cx0 <= x0 and cx1 >= x1 and cy0 <= y0 and cy1 >= y1:
        return None
    if cy0 <= y0 and cy1 >= y1:        # spans the height: trim left or right
        if cx0 <= x0 < cx1:
            x0 = cx1
        elif cx0 < x1 <= cx1:
            x1 = cx0
    if cx0 <= x0 and cx1 >= x1:        # spans the width: trim top or bottom
        if cy0 <= y0 < cy1:
            y0 = cy1
        elif cy0 < y1 <= cy1:
            y1 = cy0
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def composite(background: np.ndarray, photo: np.ndarray, box: Box, rng: np.random.Generator, *,
              area: tuple[float, float] = (0.03, 0.20), margin: float = 0.06, feather: float = 0.04,
              avoid: Box | None = None, candidates: int = 48) -> tuple[np.ndarray, Placement]:
    """Paste the object in ``box`` of ``photo`` into ``background``, shrunk, with a soft edge.

    Args:
        background: ``(H, W, 3) uint8`` frame to paste into (not modified).
        photo: ``(h, w, 3) uint8`` source photo; ``box`` its object, xyxy px.
        rng: drawing the area fraction and the position.
        area: range of the fraction of the frame the pasted box covers (log-uniform); the
            object is never enlarged beyond the low end.
        margin: the cut-out extends the box by this share of its width/height on each side.
        feather: the alpha ramp's width as a share of the pasted rectangle's short side
            (kept inside the margin, so the object box itself is pasted opaque).
        avoid: a box of ``background`` to cover as little as possible (``candidates`` random
            positions plus the four corners; the least overlap wins).

    Returns:
        The new ``(H, W, 3) uint8`` frame and the `Placement` (object box in the frame).
    """
    fh, fw = background.shape[:2]
    h, w = photo.shape[:2]
    x0, y0, x1, y1 = (float(v) for v in box)
    bw, bh = x1 - x0, y1 - y0
    mx, my = margin * bw, margin * bh
    cx0, cy0 = max(math.floor(x0 - mx), 0), max(math.floor(y0 - my), 0)
    cx1, cy1 = min(math.ceil(x1 + mx), w), min(math.ceil(y1 + my), h)
    cw, ch = cx1 - cx0, cy1 - cy0
    if bw <= 0 or bh <= 0 or cw <= 0 or ch <= 0:
        raise InvalidInputError(f"the box {box} is empty or outside the {w}x{h} photo")
    natural = bw * bh / (fw * fh)
    fit = min(fw / cw, fh / ch) ** 2 * natural
    lo, hi = area
    hi = min(hi, max(lo, natural), fit)
    lo = min(lo, hi)
    frac = float(math.exp(rng.uniform(math.log(lo), math.log(hi)))) if hi > lo else hi
    s = math.sqrt(frac / natural)
    nw, nh = min(max(round(cw * s), 1), fw), min(max(round(ch * s), 1), fh)
    sx, sy = nw / cw, nh / ch
    crop = Image.fromarray(np.ascontiguousarray(photo[cy0:cy1, cx0:cx1]))
    patch = np.asarray(crop.resize((nw, nh), Image.Resampling.LANCZOS), dtype=np.float32)

    xs = rng.integers(0, fw - nw + 1, candidates)
    ys = rng.integers(0, fh - nh + 1, candidates)
    spots = [*zip(xs.tolist(), ys.tolist(), strict=True), (0, 0), (fw - nw, 0), (0, fh - nh), (fw - nw, fh - nh)]
    if avoid is not None:
        costs = [overlap((px, py, px + nw, py + nh), avoid) for px, py in spots]
        px, py = spots[int(np.argmin(costs))]
    else:
        px, py = spots[0]

    edge = max(min(feather * min(nw, nh), mx * sx, my * sy), 1.0)
    ramp_x = np.clip(np.minimum(np.arange(nw) + 0.5, nw - np.arange(nw) - 0.5) / edge, 0.0, 1.0)
    ramp_y = np.clip(np.minimum(np.arange(nh) + 0.5, nh - np.arange(nh) - 0.5) / edge, 0.0, 1.0)
    alpha = (ramp_y[:, None] * ramp_x[None, :])[:, :, None].astype(np.float32)
    out = background.copy()
    region = out[py:py + nh, px:px + nw].astype(np.float32)
    out[py:py + nh, px:px + nw] = np.clip(region * (1.0 - alpha) + patch * alpha + 0.5, 0, 255).astype(np.uint8)
    placed = (px + (x0 - cx0) * sx, py + (y0 - cy0) * sy, px + (x1 - cx0) * sx, py + (y1 - cy0) * sy)
    placed = (max(placed[0], 0.0), max(placed[1], 0.0), min(placed[2], float(fw)), min(placed[3], float(fh)))
    return out, Placement(placed, (px, py, px + nw, py + nh), box_area(placed) / (fw * fh), math.sqrt(sx * sy))


def downscale(photo: np.ndarray, box: Box, *, long_side: int = 320) -> tuple[np.ndarray, Box]:
    """``photo`` resized to ``long_side`` px on its long side (never enlarged) and its box scaled.

    >>> img, b = downscale(np.zeros((480, 640, 3), np.uint8), (64, 48, 640, 480))
    >>> img.shape, b
    ((240, 320, 3), (32.0, 24.0, 320.0, 240.0))
    """
    h, w = photo.shape[:2]
    s = min(long_side / max(h, w), 1.0)
    nw, nh = max(round(w * s), 1), max(round(h * s), 1)
    small = np.asarray(Image.fromarray(photo).resize((nw, nh), Image.Resampling.LANCZOS)) if s < 1.0 else photo
    sx, sy = nw / w, nh / h
    return np.ascontiguousarray(small), (box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy)
