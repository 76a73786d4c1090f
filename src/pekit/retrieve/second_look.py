"""Stage 2's second look: small or near-threshold candidates re-scored on a magnified crop.

At 448 px a small object spans a few patches whose tokens mix in its surroundings, so its
first-look score is low. `second_look` picks the candidates worth another backbone pass
(bounded per image), crops each with context (`context_box`; or, when that crop would
hardly magnify it, around its most concept-like patch: `core_box`), and lets the caller
match the concept again on the crop's own pass (`Pipeline` encodes it and runs
`first_look`). Passes go where they can change a decision: not to a candidate already
named with confidence, nor to one whose best patch lies on such a candidate's object; a
crop around the core re-judges a name rather than rescue a large region under the
threshold; a small region that lost to another concept at a few patches (contested) may
earn a crop, and is named only if the crop finds it; no crop looks again at a place a crop
already saw about as magnified.

`tiled_look` (opt-in, ``offline-thorough``) looks before that at the whole photo magnified:
``n x n`` overlapping tiles, each one more pass matched against every concept, for the
small objects that the first pass gives no candidate at all (nothing for a second look to
aim at). A crop or tile whose long side is under `MIN_CROP_SIDE` pixels gets no pass: too few
pixels to be worth one.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from pekit.presets import RecognitionConfig
from pekit.retrieve.candidates import Candidate
from pekit.retrieve.match import thresholds_or
from pekit.retrieve.nms import box_area, box_iou, overlap

__all__ = ["MIN_CROP_SIDE", "Look", "context_box", "core_box", "magnification", "second_look", "tile_boxes",
           "tiled_look"]

#: Pixels the long side of a crop or tile must have to be worth a backbone pass (`core_box`,
#: `tiled_look`), and the side `context_box` widens a crop to where the photo allows.
MIN_CROP_SIDE = 64

#: ``(crop box (x0, y0, x1, y1), concept index) -> candidates on that crop`` (crop coordinates):
#: one backbone pass of the crop, matched against the same gallery (that concept's candidates,
#: and with ``second_look_others`` every other concept's too).
Look = Callable[[tuple[int, int, int, int], int], list[Candidate]]


def context_box(xyxy: np.ndarray, width: int, height: int, *, margin: float = 0.5,
                min_side: int = MIN_CROP_SIDE) -> tuple[int, int, int, int]:
    """``xyxy`` widened by ``margin`` of its size on each side (at least ``min_side`` px),
    clipped to the image: integer ``(x0, y0, x1, y1)``."""
    x0, y0, x1, y1 = (float(v) for v in xyxy)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    w = max((x1 - x0) * (1 + 2 * margin), min_side)
    h = max((y1 - y0) * (1 + 2 * margin), min_side)
    bx0, by0 = int(max(0, np.floor(cx - w / 2))), int(max(0, np.floor(cy - h / 2)))
    bx1, by1 = int(min(width, np.ceil(cx + w / 2))), int(min(height, np.ceil(cy + h / 2)))
    return bx0, by0, max(bx1, bx0 + 1), max(by1, by0 + 1)


def magnification(photo: tuple[float, float], crop: tuple[float, float]) -> float:
    """How many times larger a ``(w, h)`` crop's own pass sees the things in it than the
    ``(w, h)`` photo's pass did. Every pass gets about as many pixels
    (`pekit.embed.base.input_size`), so it is the square root of the area ratio (within
    the long-side cap): a thin strip of a square photo is magnified more than its long side
    says.

    >>> magnification((640, 640), (320, 320)), round(magnification((1000, 1000), (1000, 200)), 2)
    (2.0, 2.24)
    """
    from pekit.embed.base import input_scale

    return input_scale(*crop) / input_scale(*photo)


def core_box(peak: tuple[int, int], shape: tuple[int, ...], width: int, height: int, zoom: float, *,
             min_side: int = MIN_CROP_SIDE) -> tuple[int, int, int, int] | None:
    """The crop that magnifies ``zoom`` (> 1) times (its sides rounded to the pixel), centred
    as far as the photo allows on the patch ``peak`` of a ``shape`` grid over a ``width`` x
    ``height`` photo; None when that crop's long side would be under ``min_side`` px (a
    photo too small to magnify)."""
    if zoom <= 1 or max(width, height) / zoom < min_side:
        return None
    h, w = shape
    cw, ch = max(1, round(width / zoom)), max(1, round(height / zoom))
    cx, cy = (peak[1] + 0.5) * width / w, (peak[0] + 0.5) * height / h
    x0 = int(min(max(0, round(cx - cw / 2)), width - cw))
    y0 = int(min(max(0, round(cy - ch / 2)), height - ch))
    return x0, y0, x0 + cw, y0 + ch


def second_look(config: RecognitionConfig, found: list[Candidate], size: tuple[int, int], compete: bool,
                look: Look, *, per_concept: int = 1,
                thresholds: np.ndarray | None = None) -> tuple[list[Candidate], int]:
    """Re-score near-threshold or small candidates on a crop embedded at full resolution.

    A candidate whose score is within ``second_look_band`` of the threshold, or that
    covers less than ``second_look_small`` of the grid and is at most
    ``second_look_small_band`` below it, is looked at again, unless its crop would
    magnify it less than ``second_look_min_zoom`` (with ``second_look_core``, it is then
    looked at on the crop that magnifies that much, centred on its most concept-like
    patch, if it is at or above its threshold or small, or with ``second_look_core_below``:
    its region may have grown from a small object over its surroundings), or
    (with ``second_look_skip_named``) it is already named with confidence, or its most
    concept-like patch lies on the region of a candidate that is (another concept's only
    when concepts compete: that patch is explained). Its box, widened by half its size
    on each side for context, is cropped and embedded (one more backbone pass: the object
    now spans many patches), and the concept is matched there against the same gallery
    (the same competition; ``look``). The crop's score, box and region (moved to the
    photo's grid) replace the first ones; a crop where the concept wins no region keeps the
    first score. With ``second_look_others`` and several concepts competing, the crop is a
    magnified look at that part of the photo for *every* concept: another concept found on
    it (a small object beside the one that triggered the crop) replaces its first-look
    candidate when it scores higher there (or was contested), or becomes a candidate; no
    extra pass. A `Candidate.contested` region is looked at like any small candidate but
    never returned as it is: only what a crop finds replaces it. With
    ``second_look_seen``, a candidate whose box lies in a crop already taken for its
    concept (for any, with ``second_look_others``) is not cropped again unless its own crop
    would magnify it ``second_look_min_zoom`` times more than that one did.

    At most ``second_looks`` crops per image with several concepts competing, and per
    concept when each is scored alone (``compete=False``), closest to the threshold
    (relative to the band on its side) first, small candidates at or above the threshold
    before the rest, crops around a patch after crops of whole boxes.

    ``size``: the photo's ``(width, height)``; ``per_concept``: how many regions a concept
    may hold (as in `first_look`); ``thresholds``: ``(C,)`` per-concept thresholds (NaN: the
    global one; `Gallery.thresholds`), which the bands are read against. A candidate
    another concept's crop already re-scored is not looked at again. Returns the candidates
    (in ``found``'s order less the contested ones no crop confirmed, then the ones only a
    crop found) and the number of crops embedded.
    """
    cfg = config
    band = cfg.second_look_band
    above = band if cfg.second_look_above is None else cfg.second_look_above
    small_band = band if cfg.second_look_small_band is None else cfg.second_look_small_band
    width, height = size

    per = None if thresholds is None else thresholds_or(thresholds, cfg.threshold)

    def own(cand: Candidate) -> float:  # the threshold the candidate is named at
        return cfg.threshold if per is None else float(per[cand.concept])

    named = [c for c in found if not c.contested and c.score >= own(c) + above]  # named with confidence already
    ranked: list[tuple[bool, float, int, tuple[int, int, int, int]]] = []
    for i, cand in enumerate(found):
        thr = own(cand)
        share = float(cand.region.mean()) if cand.region.size else 0.0
        small = share < cfg.second_look_small and cand.score >= thr - small_band
        near = thr - band <= cand.score < thr + above
        if not (near or small):
            continue
        if cand.score < thr:
            gap = (thr - cand.score) / max(small_band if small else band, 1e-6)
        else:
            gap = 0.0 if small else (cand.score - thr) / max(above, 1e-6)
        if cfg.second_look_skip_named and _explained(cand, named, compete):
            continue  # its most concept-like patch is on an object already named
        box = context_box(cand.xyxy, width, height)
        core = magnification(size, (box[2] - box[0], box[3] - box[1])) < cfg.second_look_min_zoom
        if core:  # nearly the whole photo would see little new: around its core, or no crop
            # under τ, a partial view of a large region raises look-alikes as readily as the object
            rejudge = small or cand.score >= thr or cfg.second_look_core_below
            if not (cfg.second_look_core and rejudge and cand.peak is not None):
                continue
            around = core_box(cand.peak, cand.region.shape, width, height, cfg.second_look_min_zoom)
            if around is None:
                continue
            box = around
        ranked.append((core, gap, i, box))
    ranked.sort()
    used: dict[int, int] = {}
    out = list(found)
    looks = 0
    taken: list[tuple[int, tuple[int, int, int, int]]] = []  # (concept, crop box) of the crops so far
    for _, _, i, box in ranked:
        cand = found[i]
        key = -1 if compete else cand.concept  # one budget per image, or per concept alone
        if used.get(key, 0) >= cfg.second_looks or out[i] is not cand:
            continue  # out of crops, or already seen on a crop
        if cfg.second_look_seen and _seen(cand, box, taken, cfg.second_look_min_zoom,
                                          compete and cfg.second_look_others):
            continue  # a crop already saw it about as magnified, for its concept, and did not find it better
        taken.append((cand.concept, box))
        used[key] = used.get(key, 0) + 1
        looks += 1
        seen = look(box, cand.concept)
        mine = [c for c in seen if c.concept == cand.concept]
        if mine:
            out[i] = _in_photo(max(mine, key=lambda c: c.score), box, cand.region.shape, size)
        if cfg.second_look_others and compete:
            _add_others(out, [c for c in seen if c.concept != cand.concept], box, cand.region.shape, size,
                        per_concept)
    return _capped([c for c in out if not c.contested], per_concept), looks


def _capped(out: list[Candidate], most: int) -> list[Candidate]:
    """``out`` with at most ``most`` uncontested candidates per concept (its best), in order:
    a concept's contested region, which held none of its slots, may be replaced by what a
    crop or tile found after another region of that concept joined (`_add_others`)."""
    mine: dict[int, list[int]] = {}
    for j in sorted(range(len(out)), key=lambda j: -out[j].score):
        if not out[j].contested:
            mine.setdefault(out[j].concept, []).append(j)
    dropped = {j for js in mine.values() for j in js[most:]}
    return [c for j, c in enumerate(out) if j not in dropped]


def tile_boxes(width: int, height: int, n: int, cover: float) -> list[tuple[int, int, int, int]]:
    """``n x n`` tiles ``(x0, y0, x1, y1)`` over a ``width`` x ``height`` photo, each
    ``cover`` of its width and height, spread evenly from edge to edge (they overlap
    where ``n * cover > 1``), row by row. Each tile once, and none that is the whole photo:
    on a photo a pixel or two across, tiles coincide (a 1 x 1 photo's are all the photo,
    which the first look saw; a 4000 x 1 strip has two), and a repeat is a pass for nothing.
    The geometry only: `tiled_look` embeds none whose long side is under `MIN_CROP_SIDE`.

    >>> tile_boxes(100, 50, 2, 0.6)
    [(0, 0, 60, 30), (40, 0, 100, 30), (0, 20, 60, 50), (40, 20, 100, 50)]
    >>> tile_boxes(4000, 1, 2, 0.6), tile_boxes(1, 1, 2, 0.6)
    ([(0, 0, 2400, 1), (1600, 0, 4000, 1)], [])
    >>> tile_boxes(13, 15, 2, 0.6)[0]  # 8 x 9 pixels: too small for tiled_look to embed
    (0, 0, 8, 9)
    """
    tw, th = max(1, round(width * cover)), max(1, round(height * cover))
    xs = [round(i * (width - tw) / max(n - 1, 1)) for i in range(n)]
    ys = [round(i * (height - th) / max(n - 1, 1)) for i in range(n)]
    tiles = dict.fromkeys((x, y, x + tw, y + th) for y in ys for x in xs)
    return [t for t in tiles if t != (0, 0, width, height)]


def tiled_look(config: RecognitionConfig, found: list[Candidate], size: tuple[int, int], shape: tuple[int, ...],
               look: Callable[[tuple[int, int, int, int]], list[Candidate]], *,
               per_concept: int = 1) -> tuple[list[Candidate], int]:
    """The photo looked at again as ``config.tiled_look`` x ``config.tiled_look`` overlapping
    tiles (`tile_boxes`; none when it is under 2), magnified about ``1 / tiled_look_cover``
    times: ``look(tile)`` embeds a tile (one more backbone pass) and matches every concept
    there with the first look's competition. What a tile finds is moved to the photo
    (``size``: its ``(width, height)``; ``shape``: its patch grid) and merged with ``found``
    as a second look merges the other concepts its crop finds: it replaces the concept's
    candidate it overlaps (or, when the concept holds ``per_concept`` regions elsewhere,
    its weakest) if it scores higher or was contested, and otherwise joins them. A region
    that reaches a tile's edge inside the photo is dropped: it is cut there, a part of an
    object larger than the tiles' overlap, which the first look saw whole (the overlap holds
    every object up to ``2 * cover - 1`` of the photo's side whole in some tile). No tile
    whose long side is under `MIN_CROP_SIDE` pixels is embedded (the crops `core_box`
    refuses): a photo whose long side is under about ``MIN_CROP_SIDE / tiled_look_cover``
    pixels (106 at 0.6) gets no tile pass. Returns the candidates (contested ones kept for the
    second look) and the number of tiles embedded.

    >>> from pekit.presets import RecognitionConfig
    >>> thorough, tiles = RecognitionConfig(tiled_look=2, tiled_look_cover=0.6), []
    >>> tiled_look(thorough, [], (640, 480), (10, 10), lambda box: tiles.append(box) or [])
    ([], 4)
    >>> tiled_look(thorough, [], (13, 15), (1, 1), lambda box: tiles.append(box) or [])
    ([], 0)
    >>> len(tiles)
    4
    """
    n = config.tiled_look
    if n < 2:
        return list(found), 0
    out = list(found)
    width, height = size
    tiles = [box for box in tile_boxes(width, height, n, config.tiled_look_cover)
             if max(box[2] - box[0], box[3] - box[1]) >= MIN_CROP_SIDE]
    for box in tiles:
        whole = [c for c in look(box) if not _cut(c, box, width, height)]
        _add_others(out, whole, box, shape, size, per_concept)
    return _capped(out, per_concept), len(tiles)


def _cut(cand: Candidate, box: tuple[int, int, int, int], width: int, height: int) -> bool:
    """Whether ``cand``'s region (on the tile ``box``'s own grid) reaches an edge of the tile
    that lies inside the photo (the photo's own edges cut nothing)."""
    if not cand.region.any():
        return False
    rows, cols = np.nonzero(cand.region)
    h, w = cand.region.shape
    x0, y0, x1, y1 = box
    return bool((cols.min() == 0 and x0 > 0) or (cols.max() == w - 1 and x1 < width)
                or (rows.min() == 0 and y0 > 0) or (rows.max() == h - 1 and y1 < height))


def _seen(cand: Candidate, box: tuple[int, int, int, int], taken: list[tuple[int, tuple[int, int, int, int]]],
          zoom: float, any_concept: bool) -> bool:
    """Whether one of the crops ``taken`` (``(concept, crop box)``; of any concept when its
    pass was matched against all) holds at least 80 % of ``cand``'s box and is at most
    ``zoom`` times less magnified (`magnification`) than ``box``, the candidate's own crop."""
    own = (box[2] - box[0], box[3] - box[1])
    xyxy = [float(v) for v in cand.xyxy]
    area = max(box_area(xyxy), 1e-6)
    return any(overlap(xyxy, crop) / area >= 0.8 and magnification((crop[2] - crop[0], crop[3] - crop[1]), own) <= zoom
               for concept, crop in taken if any_concept or concept == cand.concept)


def _explained(cand: Candidate, named: list[Candidate], compete: bool) -> bool:
    """Whether ``cand`` is one of ``named``, or its most concept-like patch lies in the region
    of one of them (of its own concept only when concepts do not compete)."""
    peak = cand.peak
    return any(other is cand or (peak is not None and (compete or other.concept == cand.concept)
                                 and other.region.shape == cand.region.shape and bool(other.region[peak]))
               for other in named)


def _add_others(out: list[Candidate], seen: list[Candidate], box: tuple[int, int, int, int],
                shape: tuple[int, ...], size: tuple[int, int], most: int) -> None:
    """Other concepts the crop's pass found, moved to the photo: each replaces that
    concept's candidate in ``out`` that overlaps it (or, when the concept already has
    ``most`` candidates elsewhere, its weakest) if it scores higher, and otherwise joins
    ``out``."""
    for cand in sorted(seen, key=lambda c: -c.score):
        moved = _in_photo(cand, box, shape, size)
        same = [j for j, c in enumerate(out) if c.concept == cand.concept]
        if not same:
            out.append(moved)
            continue
        ious = box_iou(moved.xyxy[None], np.stack([out[j].xyxy for j in same]))[0]
        if ious.max() <= 0 and sum(not out[j].contested for j in same) < most:
            out.append(moved)  # a contested candidate holds no slot
            continue
        j = same[int(np.argmax(ious))] if ious.max() > 0 else min(
            same, key=lambda j: (not out[j].contested, out[j].score))
        if out[j].contested or out[j].score < moved.score:
            out[j] = moved


def _in_photo(cand: Candidate, box: tuple[int, int, int, int], shape: tuple[int, ...],
              size: tuple[int, int]) -> Candidate:
    """A candidate found on the crop ``box``, moved to the photo: its box in photo pixels,
    its region resampled onto the photo's ``shape`` patch grid (patch centres; at least the
    patch under the box's centre, so an object smaller than a patch keeps a region)."""
    x0, y0 = box[0], box[1]
    xyxy = cand.xyxy.astype(np.float32) + np.array([x0, y0, x0, y0], np.float32)
    h, w = shape
    width, height = size
    hc, wc = cand.region.shape
    rows = np.floor(((np.arange(h) + 0.5) * height / h - y0) / max(box[3] - y0, 1) * hc).astype(np.int64)
    cols = np.floor(((np.arange(w) + 0.5) * width / w - x0) / max(box[2] - x0, 1) * wc).astype(np.int64)
    ok_r, ok_c = (rows >= 0) & (rows < hc), (cols >= 0) & (cols < wc)
    region = np.zeros((h, w), bool)
    region[np.ix_(ok_r, ok_c)] = cand.region[np.ix_(rows[ok_r], cols[ok_c])]
    if not region.any():
        cx, cy = (xyxy[0] + xyxy[2]) / 2, (xyxy[1] + xyxy[3]) / 2
        region[min(int(cy / height * h), h - 1), min(int(cx / width * w), w - 1)] = True
    return Candidate(cand.concept, cand.score, xyxy, region)
