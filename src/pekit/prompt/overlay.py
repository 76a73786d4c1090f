"""Visual prompting: draw one distinctly coloured, labelled box per recognized concept.

The colour of each concept comes from `colour_assignment`, which the prompt templates use
too, so the words in the prompt ("the entity in the red box") and the pixels cannot
disagree. Colours have plain English names every LVLM knows; the first ones are the most
distinct, also for colour-blind readers (red / blue / yellow are told apart under the
common deficiencies; green comes after them).

Example:
    >>> import numpy as np
    >>> from pekit.types import Detections
    >>> dets = Detections(xyxy=[[10, 10, 50, 40]], score=[0.9], name=["Bo"])
    >>> colour_assignment(dets)
    {'Bo': 'red'}
    >>> out = annotate(np.zeros((64, 64, 3), np.uint8), dets)
    >>> out.shape, out.dtype.name
    ((64, 64, 3), 'uint8')
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

import numpy as np
from PIL import Image, ImageDraw

from pekit.errors import InvalidInputError
from pekit.prompt.fonts import FontStack
from pekit.types import Detections

log = logging.getLogger(__name__)

__all__ = ["PALETTE", "Colour", "annotate", "colour_assignment", "colour_rgb", "on_photo", "stable_colours"]

Colour = tuple[str, tuple[int, int, int]]

#: ``(name, RGB)`` in the order colours are handed out. Saturated, high-contrast, named
#: with words LVLMs know; the first three stay distinct under deuteranopia/protanopia.
PALETTE: tuple[Colour, ...] = (
    ("red", (230, 25, 25)),
    ("blue", (20, 90, 255)),
    ("yellow", (255, 225, 0)),
    ("green", (0, 180, 60)),
    ("purple", (150, 40, 210)),
    ("orange", (255, 130, 0)),
    ("cyan", (0, 215, 230)),
    ("pink", (255, 100, 190)),
    ("white", (255, 255, 255)),
    ("brown", (140, 80, 30)),
    ("black", (0, 0, 0)),
    ("gray", (128, 128, 128)),
)
_UNMATCHED_RGB = (160, 160, 160)

ImageT = TypeVar("ImageT", np.ndarray, Image.Image)


def _palette(palette: Sequence[Colour] | Sequence[str] | None) -> tuple[Colour, ...]:
    """Normalise ``palette``: ``None`` -> `PALETTE`; names pick from `PALETTE`; pairs are used as is."""
    if palette is None:
        return PALETTE
    known = dict(PALETTE)
    out: list[Colour] = []
    for item in palette:
        if isinstance(item, str):
            if item.lower() not in known:
                raise InvalidInputError(
                    f"unknown colour '{item}'; choose from {', '.join(known)} or pass (name, (r, g, b)) pairs"
                )
            out.append((item.lower(), known[item.lower()]))
        else:
            name, rgb = item
            if len(rgb) != 3 or not all(0 <= int(c) <= 255 for c in rgb):
                raise InvalidInputError(f"colour '{name}' must have an (r, g, b) value in 0..255, got {rgb}")
            out.append((str(name), (int(rgb[0]), int(rgb[1]), int(rgb[2]))))
    names = [n for n, _ in out]
    if not out or len(set(names)) != len(names):
        raise InvalidInputError(f"palette must hold at least one colour and unique names, got {names}")
    return tuple(out)


def colour_rgb(name: str, palette: Sequence[Colour] | Sequence[str] | None = None) -> tuple[int, int, int]:
    """RGB value of a palette colour by name.

    >>> colour_rgb("blue")
    (20, 90, 255)
    """
    table = dict(_palette(palette))
    if name not in table:
        raise InvalidInputError(f"unknown colour '{name}'; choose from {', '.join(table)}")
    return table[name]


def colour_assignment(
    detections: Detections, *, palette: Sequence[Colour] | Sequence[str] | None = None, warn: bool = True,
    avoid: Iterable[str] = (),
) -> dict[str, str]:
    """Map each recognized concept name to a colour name, ``{name: colour}``.

    Concepts are ordered by their best score (ties: first appearance), so the most
    confident one gets the first palette colour; a concept drawn twice keeps one colour.
    A colour that is also a recognized name is skipped ("the entity in the red box is
    called Blue" would mislead the LVLM), and so is one of ``avoid`` (the user's other names
    the question mentions: "Is Red here too?" beside a red box). Unmatched detections (name
    ``""``) get none.
    With more concepts than colours the least confident ones are left out (and not drawn),
    with a warning (``warn``), so that every colour in the prompt names exactly one concept
    (`respond` tells the LVLM they are in the photo, unmarked).

    >>> d = Detections(xyxy=[[0, 0, 5, 5]] * 3, score=[0.5, 0.9, 0.7], name=["Bo", "Mochi", "Bo"])
    >>> colour_assignment(d)
    {'Mochi': 'red', 'Bo': 'blue'}
    """
    colours = _palette(palette)
    assert detections.name is not None and detections.score is not None  # filled by Detections
    best: dict[str, tuple[float, int]] = {}
    for i, (name, score) in enumerate(zip(detections.name, detections.score, strict=True)):
        name = str(name or "").strip()
        if not name:
            continue
        if name not in best or float(score) > best[name][0]:
            best[name] = (float(score), best.get(name, (0.0, i))[1])
    order = sorted(best, key=lambda n: (-best[n][0], best[n][1]))
    colours = _free(colours, [*order, *avoid])
    if len(order) > len(colours):
        if warn:
            log.warning("%d concepts recognized but only %d distinct colours; not drawing: %s",
                        len(order), len(colours), ", ".join(order[len(colours):]))
        order = order[: len(colours)]
    return {name: colours[i][0] for i, name in enumerate(order)}


def stable_colours(names: Sequence[str], *, palette: Sequence[Colour] | Sequence[str] | None = None,
                   avoid: Iterable[str] = ()) -> dict[str, str]:
    """One colour per name for a whole clip, ``{name: colour}``: ``names`` in the order they
    earn one (first appearance), skipping colours that are also one of the names or of
    ``avoid``, as `colour_assignment` does for one photo. Names after the palette runs out
    get none (they are not drawn, and the timeline says so).

    >>> stable_colours(["Bo", "Blue", "Mochi"]), stable_colours(["Bo"], avoid=["Red"])
    ({'Bo': 'red', 'Blue': 'yellow', 'Mochi': 'green'}, {'Bo': 'blue'})
    """
    order = [n for n in dict.fromkeys(str(n or "").strip() for n in names) if n]
    colours = _free(_palette(palette), [*order, *avoid])
    return {name: colours[i][0] for i, name in enumerate(order[: len(colours)])}


def _free(colours: tuple[Colour, ...], names: Sequence[str]) -> tuple[Colour, ...]:
    """``colours`` without those that are also one of ``names`` (ignoring case): "the entity in
    the red box is called Blue" would send the LVLM to the wrong box. All of them if none is left."""
    taken = {n.casefold() for n in names}
    return tuple(c for c in colours if c[0].casefold() not in taken) or colours


def on_photo(detections: Detections, width: int, height: int) -> Detections:
    """The detections whose box overlaps a ``width`` x ``height`` photo (all of them, as a rule):
    a box wholly off it is neither drawn nor named.

    >>> on_photo(Detections(xyxy=[[0, 0, 5, 5], [20, 0, 30, 5]], name=["Bo", "Rex"]), 10, 10).name.tolist()
    ['Bo']
    """
    if not len(detections):
        return detections
    xyxy = np.asarray(detections.xyxy, np.float64)
    keep = (xyxy[:, 2] > 0) & (xyxy[:, 3] > 0) & (xyxy[:, 0] < width) & (xyxy[:, 1] < height)
    return detections if keep.all() else detections[keep]


def _text_rgb(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black on light backgrounds, white on dark ones (relative luminance)."""
    luminance = 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2]
    return (0, 0, 0) if luminance > 140 else (255, 255, 255)


def _to_pil(image: Any) -> Image.Image:
    if isinstance(image, Image.Image):  # upright (EXIF) and on white, as recognize saw it; a copy
        from pekit.images import load_image

        return Image.fromarray(load_image(image))
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise InvalidInputError(
                f"image must be an (H, W, 3) uint8 RGB array, but got shape {image.shape} dtype "
                f"{image.dtype}; convert it with pekit.images.load_image"
            )
        if image.shape[0] == 0 or image.shape[1] == 0:
            raise InvalidInputError(f"image must not be empty, but got shape {image.shape}")
        return Image.fromarray(np.ascontiguousarray(image))
    raise InvalidInputError(f"image must be a numpy array or a PIL image, but got {type(image).__name__}")


def annotate(
    image: ImageT,
    detections: Detections,
    *,
    palette: Sequence[Colour] | Sequence[str] | None = None,
    thickness: int | None = None,
    labels: bool = True,
    unmatched: bool = False,
    avoid: Iterable[str] = (),
) -> ImageT:
    """Draw each recognized concept's box in its colour with a ``"name 0.87"`` label.

    Args:
        image: ``(H, W, 3) uint8`` RGB array or a PIL image; never modified.
        detections: boxes in image pixels; names come from ``detections.name``.
        palette: colour names from `PALETTE` or ``(name, (r, g, b))`` pairs; default `PALETTE`.
        thickness: line width in pixels; default scales with the image (~0.7% of the short side, >= 2).
        labels: draw the name and score on a filled tag above (or inside) each box.
        unmatched: also draw unmatched proposals (name ``""``) in thin gray, unlabelled.
        avoid: names whose colour is not used (`colour_assignment`).

    Returns:
        A new image of the same type as ``image`` (numpy in -> numpy out, PIL in -> PIL RGB
        out; a PIL image is first turned upright by its EXIF orientation and laid on white
        where transparent, as `pekit.images.load_image` does for recognition, so that the
        boxes land on the pixels they were found on).

    Example:
        >>> from PIL import Image
        >>> dets = Detections(xyxy=[[2, 2, 30, 30]], name=["Bo"])
        >>> annotate(Image.new("RGB", (40, 40)), dets).size
        (40, 40)
    """
    if not isinstance(detections, Detections):
        raise InvalidInputError(f"detections must be a pekit Detections, but got {type(detections).__name__}")
    canvas = _to_pil(image)
    width, height = canvas.size
    short = min(width, height)
    if thickness is None:
        thickness = max(2, round(short / 150))
    if int(thickness) < 1:
        raise InvalidInputError(f"thickness must be >= 1 pixel, got {thickness}")
    thickness = int(thickness)
    table = dict(_palette(palette))
    detections = on_photo(detections, width, height)  # a box wholly off the photo is not drawn in a corner
    assigned = colour_assignment(detections, palette=palette, avoid=avoid)
    names, scores = detections.name, detections.score
    assert names is not None and scores is not None  # filled by Detections
    draw = ImageDraw.Draw(canvas)
    font = FontStack.default(max(10, min(48, round(short / 28))))  # names in any script (see fonts.py)

    def clamp_box(i: int) -> tuple[int, int, int, int]:
        x0, y0, x1, y1 = (float(v) for v in detections.xyxy[i])
        x0 = int(np.clip(round(x0), 0, width - 1))
        y0 = int(np.clip(round(y0), 0, height - 1))
        x1 = int(np.clip(round(x1) - 1, x0, width - 1))
        y1 = int(np.clip(round(y1) - 1, y0, height - 1))
        return x0, y0, x1, y1

    order = sorted(range(len(detections)), key=lambda i: float(scores[i]))  # best on top
    if unmatched:
        for i in order:
            if not str(names[i] or "").strip():
                draw.rectangle(clamp_box(i), outline=_UNMATCHED_RGB, width=max(1, thickness // 2))
    tags: list[tuple[int, str, tuple[int, int, int, int]]] = []
    for i in order:
        name = str(names[i] or "").strip()
        if name not in assigned:
            continue
        box = clamp_box(i)
        draw.rectangle(box, outline=table[assigned[name]], width=thickness)
        tags.append((i, name, box))
    if labels:
        for i, name, (x0, y0, _x1, _y1) in tags:
            rgb = table[assigned[name]]
            text = f"{' '.join(name.split())} {float(scores[i]):.2f}"  # one line, whatever the name holds
            text_w, text_h = font.size(text)
            pad = max(2, thickness)
            tw, th = text_w + 2 * pad, text_h + 2 * pad
            tx = int(np.clip(x0, 0, max(0, width - tw)))
            ty = y0 - th if y0 - th >= 0 else y0  # above the box, else inside its top edge
            ty = int(np.clip(ty, 0, max(0, height - th)))
            draw.rectangle((tx, ty, tx + tw - 1, ty + th - 1), fill=rgb)
            font.draw(draw, (tx + pad, ty + pad), text, fill=_text_rgb(rgb))
    if isinstance(image, Image.Image):
        return canvas
    return np.asarray(canvas, dtype=np.uint8).copy()
