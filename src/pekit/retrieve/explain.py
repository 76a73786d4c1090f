"""Explain a match: where in the photo the concept's parts are found, and which view won.

`explain_figure` draws, for each detection, the photo with a heat map of the patch
similarity to the concept's part prototypes (`part_similarity_map`, the same map the
extent step grows the box on), the detection's box, and a caption naming the reference view
that matched best (its file name and cosine). pekit stores no reference photos by default,
so the view is named rather than shown. Everything comes from the query's one patch grid.

Example:
    >>> img = explain_figure(image, grid, dets, gallery)            # doctest: +SKIP
    >>> img.shape                                                   # doctest: +SKIP
    (960, 640, 3)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from pekit.embed.pooling import unit_patches
from pekit.retrieve.extent import part_similarity_map
from pekit.retrieve.match import Gallery
from pekit.types import Detections, PatchGrid

__all__ = ["MAX_SIDE", "explain_figure", "heat_colours"]

# a perceptual dark-to-bright ramp (inferno-like): value 0 -> black-purple, 1 -> pale yellow
_RAMP = np.array([[0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99], [212, 72, 66], [245, 125, 21],
                  [250, 193, 39], [252, 255, 164]], np.float32)


def heat_colours(values: np.ndarray) -> np.ndarray:
    """``(...)`` values in [0, 1] -> ``(..., 3) uint8`` colours of a dark-to-bright ramp.

    >>> heat_colours(np.array([0.0, 1.0])).tolist()
    [[0, 0, 4], [252, 255, 164]]
    """
    v = np.clip(np.asarray(values, np.float32), 0, 1) * (len(_RAMP) - 1)
    lo = np.floor(v).astype(int)
    hi = np.minimum(lo + 1, len(_RAMP) - 1)
    t = (v - lo)[..., None]
    return np.round(_RAMP[lo] * (1 - t) + _RAMP[hi] * t).astype(np.uint8)


def _panel(image: np.ndarray, simmap: np.ndarray | None, box: np.ndarray, caption: str) -> np.ndarray:
    """The photo under a heat map of ``simmap`` (the plain photo when None), the box, and a
    caption strip below."""
    h, w = image.shape[:2]
    blend = Image.fromarray(image)
    if simmap is not None:
        lo, hi = float(np.median(simmap)), float(simmap.max())
        norm = (simmap - lo) / max(hi - lo, 1e-6)
        heat = Image.fromarray(heat_colours(norm)).resize((w, h), Image.Resampling.BILINEAR)
        blend = Image.blend(blend, heat, 0.55)
    draw = ImageDraw.Draw(blend)
    x0, y0, x1, y1 = (float(v) for v in box)
    if x1 - x0 >= 2 and y1 - y0 >= 2:
        draw.rectangle([x0, y0, x1 - 1, y1 - 1], outline=(0, 255, 255), width=max(2, w // 200))
    from pekit.prompt.fonts import FontStack

    font = FontStack.default(max(12, w // 40))
    lines = _wrapped(caption, lambda text: font.size(text)[0], w - 12)
    th = max(font.size(line)[1] for line in lines) + 4
    strip = Image.new("RGB", (w, th * len(lines) + 8), (20, 20, 20))
    pen = ImageDraw.Draw(strip)
    for i, line in enumerate(lines):
        font.draw(pen, (6, 6 + i * th), line, (255, 255, 255))
    out = Image.new("RGB", (w, h + strip.height))
    out.paste(blend, (0, 0))
    out.paste(strip, (0, h))
    return np.asarray(out)


def _wrapped(caption: str, width_of: Callable[[str], float], width: float) -> list[str]:
    """``caption`` in lines no wider than ``width``: its ``" | "`` parts kept together on a
    line where they fit, a part wider than a line broken at spaces (a word wider than a
    line stays whole).

    >>> _wrapped("Bo 0.74 | best view 1/2 01.jpg | bright = like Bo's parts", len, 24)
    ['Bo 0.74', 'best view 1/2 01.jpg', "bright = like Bo's parts"]
    >>> _wrapped("Bo 0.74 | best view 1/2", len, 80), _wrapped("a b c", len, 3)
    (['Bo 0.74 | best view 1/2'], ['a b', 'c'])
    """
    lines: list[str] = []
    for part in caption.split(" | "):
        pieces = [""]
        for word in part.split(" "):
            trial = f"{pieces[-1]} {word}" if pieces[-1] else word
            if pieces[-1] and width_of(trial) > width:
                pieces.append(word)
            else:
                pieces[-1] = trial
        if lines and len(pieces) == 1 and width_of(f"{lines[-1]} | {pieces[0]}") <= width:
            lines[-1] = f"{lines[-1]} | {pieces[0]}"
        else:
            lines.extend(pieces)
    return lines or [""]


def view_labels(references: Sequence[str]) -> list[str]:
    """Each reference photo named by the shortest end of its path that no other one shares
    (``IMG_0001.jpg`` in two folders: ``a/IMG_0001.jpg``, ``b/IMG_0001.jpg``).

    >>> view_labels(["dog2/01.jpg", "people/kit/01.jpg", "dog2/00.jpg"])
    ['dog2/01.jpg', 'kit/01.jpg', '00.jpg']
    >>> view_labels(["/home/u/x/01.jpg", "/home/u/x/01.jpg"])  # one path twice: all of it
    ['/home/u/x/01.jpg', '/home/u/x/01.jpg']
    """
    parts = [Path(str(r)).parts or (str(r),) for r in references]
    out = []
    for i, mine in enumerate(parts):
        for n in range(1, len(mine) + 1):
            tail = mine[-n:]
            if all(other[-n:] != tail for j, other in enumerate(parts) if j != i):
                break
        out.append(str(Path(*tail)))
    return out


#: the long side of an explanation's panels: a heat map over patches needs no more, and a
#: 48 MP photo drawn at full size took 16 s and 1.8 GB for one detection
MAX_SIDE = 2048


def explain_figure(image: np.ndarray, grid: PatchGrid | None, detections: Detections, gallery: Gallery, *,
                   references: Sequence[Sequence[str]] | None = None, max_side: int = MAX_SIDE,
                   by_face: Mapping[int, str] | None = None) -> np.ndarray:
    """One panel per detection, stacked vertically: ``(H', W, 3) uint8``.

    Args:
        image: the ``(H, W, 3)`` photo the detections are in.
        grid: its patch grid (None when no detection is of the gallery).
        detections: from `Pipeline.recognize` (with ``embedding``).
        gallery: the gallery they were matched against.
        references: per gallery concept, the names of its reference photos (view order).
        max_side: a larger photo is drawn shrunk to this long side (its boxes with it).
        by_face: ``concept id -> name`` of the people among the detections: recognized by
            face (`pekit.faces`), not by patches, so their panel shows the box, no heat map.

    With no detection, one panel says so over the plain photo. A detection of neither the
    gallery nor ``by_face`` (forgotten since) gets no panel.
    """
    h, w = image.shape[:2]
    shrink = min(1.0, max_side / max(h, w))
    if shrink < 1.0:
        size = (max(1, round(w * shrink)), max(1, round(h * shrink)))
        image = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))
    unit = unit_patches(grid) if grid is not None else None
    index = {int(i): k for k, i in enumerate(gallery.ids)}
    people = dict(by_face or {})
    panels = []
    for d in detections:
        cid, score = int(np.asarray(d.concept_id)[0]), float(np.asarray(d.score)[0])
        if cid in people:
            caption = f"{np.asarray(d.name)[0]} {score:.2f} | a person: recognized by face, no patch heat map"
            panels.append(_panel(image, None, d.xyxy[0] * shrink, caption))
            continue
        k = index.get(cid)
        if k is None or unit is None or grid is None:
            continue
        parts = gallery.parts[k]
        views = gallery.views[gallery.owner == k]
        simmap = part_similarity_map(unit, parts if parts is not None else views, grid.shape)
        cos = views @ d.embedding[0] if d.embedding is not None else np.zeros(len(views))
        best = int(np.argmax(cos))
        names = view_labels(references[k]) if references is not None and k < len(references) else []
        known = best < len(names) and len(names) == len(views)  # a name per view (not one lost to an old meta)
        view = f"{best + 1}/{len(views)}" + (f" {names[best]}" if known else "")
        name = np.asarray(d.name)[0]
        caption = f"{name} {score:.2f} | best view {view} (cos {float(cos[best]):.2f}) | bright = like {name}'s parts"
        panels.append(_panel(image, simmap, d.xyxy[0] * shrink, caption))
    if not panels:
        panels.append(_panel(image, None, np.zeros(4), "none of your concepts found"))
    width = max(p.shape[1] for p in panels)
    padded = [np.pad(p, ((0, 0), (0, width - p.shape[1]), (0, 0))) for p in panels]
    return np.concatenate(padded, axis=0)
