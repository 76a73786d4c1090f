"""Colour per patch: a soft CIELAB histogram on the backbone's grid (no backbone pass).

The offline backbone's block-7 tokens match texture and shape far more than absolute
colour: a white poodle's fur agrees with a grey-and-white husky plushie's, a brown clay
teapot with a brown backpack. People's things are often told apart by exactly that
("my *red* mug"), so recognition also compares the colour of a region with the colour of
the object in each reference view (`RecognitionConfig.colour_weight`).

Each patch of the grid gets a histogram over ``4 x 7 x 7`` soft CIELAB bins (lightness
coarse and wide, so shading and exposure move little; the two chroma axes finer). A
region's colour is the mean histogram of its patches (`region_colour`) and two colours
are compared by the Bhattacharyya coefficient (`colour_agreement`): 1 for the same
distribution, near 0 for disjoint ones. A view's colour is a 196-value summary of the
object, not the photo: like the embeddings, it is all that is kept, as 264 characters of
text in the concept's metadata (`encode_colour`: the square roots of the bins, 8 bits each).

Example:
    >>> red = np.zeros((28, 28, 3), np.uint8); red[..., 0] = 200
    >>> blue = np.zeros((28, 28, 3), np.uint8); blue[..., 2] = 200
    >>> r, b = (patch_colours(x, (2, 2)) for x in (red, blue))
    >>> r.shape
    (2, 2, 196)
    >>> mask = np.ones((2, 2), bool)
    >>> round(colour_agreement(region_colour(r, mask), region_colour(r, mask)[None]), 3)
    1.0
    >>> colour_agreement(region_colour(r, mask), region_colour(b, mask)[None]) < 0.2
    True
"""

from __future__ import annotations

import numpy as np

__all__ = ["BINS", "achromatic", "colour_agreement", "decode_colour", "encode_colour", "patch_colours",
           "region_colour", "to_lab"]

#: chroma (CIELAB) under which 99.9 % of a photo's pixels lie when it is black and white: a
#: grey JPEG stays under 0.1; the least colourful development photo reaches 8.7 at 99 %
ACHROMATIC_CHROMA = 3.0

_L = np.array([20.0, 45.0, 70.0, 92.0], np.float32)
_AB = np.linspace(-45.0, 45.0, 7).astype(np.float32)
_SIGMA_L, _SIGMA_AB = 15.0, 9.0
#: Length of a colour histogram.
BINS = len(_L) * len(_AB) * len(_AB)
_SAMPLES = 4  # pixels per patch side the histogram is taken over


def to_lab(rgb: np.ndarray) -> np.ndarray:
    """``(..., 3)`` sRGB in ``[0, 255]`` -> CIELAB (D65): L in ``[0, 100]``, a and b about ``[-128, 127]``."""
    c = np.asarray(rgb, np.float32) / 255.0
    c = np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)
    xyz = c @ np.array([[0.4124, 0.2126, 0.0193], [0.3576, 0.7152, 0.1192], [0.1805, 0.0722, 0.9505]], np.float32)
    xyz /= np.array([0.95047, 1.0, 1.08883], np.float32)
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16.0 / 116.0)
    return np.stack([116.0 * f[..., 1] - 16.0, 500.0 * (f[..., 0] - f[..., 1]),
                     200.0 * (f[..., 1] - f[..., 2])], -1).astype(np.float32)


def _soft(values: np.ndarray, centres: np.ndarray, sigma: float) -> np.ndarray:
    w = np.exp(-0.5 * ((values[..., None] - centres) / sigma) ** 2)
    return w / np.maximum(w.sum(-1, keepdims=True), 1e-12)


def patch_colours(rgb: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``(h, w, BINS) float32``: the soft CIELAB histogram of each patch of an ``(h, w)``
    grid over the ``(H, W, 3) uint8`` photo (each patch area-averaged to 4 x 4 pixels)."""
    from PIL import Image

    h, w = (int(v) for v in shape)
    s = _SAMPLES
    small = np.asarray(Image.fromarray(np.ascontiguousarray(rgb[..., :3], dtype=np.uint8)).resize(
        (w * s, h * s), Image.Resampling.BOX))
    lab = to_lab(small).reshape(h, s, w, s, 3).transpose(0, 2, 1, 3, 4).reshape(h, w, s * s, 3)
    hist = np.einsum("hwpi,hwpj,hwpk->hwijk", _soft(lab[..., 0], _L, _SIGMA_L),
                     _soft(lab[..., 1], _AB, _SIGMA_AB), _soft(lab[..., 2], _AB, _SIGMA_AB))
    return (hist.reshape(h, w, BINS) / (s * s)).astype(np.float32)


def achromatic(rgb: np.ndarray) -> bool:
    """Whether an ``(H, W, 3) uint8`` photo is black and white (99.9 % of it, at 64 x 64,
    under `ACHROMATIC_CHROMA`): it holds no colour evidence, so a query's colour is not
    compared (a grey photo of a red mug is not a grey mug). A small red mug on a grey desk
    (0.5 % of the photo) is colour enough.

    >>> achromatic(np.full((8, 8, 3), 128, np.uint8)), achromatic(np.full((8, 8, 3), [200, 40, 40], np.uint8))
    (True, False)
    """
    from PIL import Image

    step = max(1, max(rgb.shape[:2]) // 512)  # a 48 MP photo is sampled, not copied whole (0.27 s -> 0.03 s)
    small = np.asarray(Image.fromarray(np.ascontiguousarray(rgb[::step, ::step, :3], dtype=np.uint8)).resize(
        (64, 64), Image.Resampling.BOX))
    lab = to_lab(small)
    return float(np.percentile(np.hypot(lab[..., 1], lab[..., 2]), 99.9)) < ACHROMATIC_CHROMA


def region_colour(colours: np.ndarray, region: np.ndarray) -> np.ndarray:
    """``(BINS,)``: the colour histogram (sums to 1) of the patches of a ``(h, w)`` region
    (weights or a bool mask) of `patch_colours`; uniform when the region is empty."""
    weights = np.asarray(region, np.float32)
    total = np.tensordot(weights, colours, axes=([0, 1], [0, 1]))
    mass = float(total.sum())
    return (total / mass).astype(np.float32) if mass > 0 else np.full(colours.shape[-1], 1.0 / colours.shape[-1],
                                                                         np.float32)


def colour_agreement(colour: np.ndarray, views: np.ndarray) -> float:
    """The Bhattacharyya coefficient of a region's colour with the closest of ``(v, BINS)``
    view colours (1: the same distribution; 0: disjoint)."""
    return float((np.sqrt(np.clip(views, 0.0, None)) @ np.sqrt(np.clip(colour, 0.0, None))).max())


def encode_colour(colour: np.ndarray) -> str:
    """A histogram as text for a concept's metadata: the square roots of its ``BINS`` bins
    at 8 bits, base64 (264 characters; `decode_colour` reads it back, Bhattacharyya
    agreements within about 0.005).

    >>> h = np.full(BINS, 1.0 / BINS, np.float32)
    >>> len(encode_colour(h)), round(colour_agreement(decode_colour(encode_colour(h)), h[None]), 3)
    (264, 1.0)
    """
    import base64

    roots = np.sqrt(np.clip(np.asarray(colour, np.float64).reshape(-1), 0.0, None))
    top = roots.max() if roots.size else 0.0
    q = np.round(255.0 * roots / top) if top > 0 else np.zeros_like(roots)
    return base64.b64encode(q.astype(np.uint8).tobytes()).decode("ascii")


def decode_colour(text: object) -> np.ndarray | None:
    """The ``(BINS,)`` histogram (sums to 1) of `encode_colour`'s text, or None for anything
    else (a damaged or hand-edited record: no colour, never an error or an inflated score).

    >>> decode_colour("not base64!") is None, decode_colour(3) is None
    (True, True)
    """
    import base64
    import binascii

    if not isinstance(text, str):
        return None
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return None
    if len(raw) != BINS:
        return None
    hist = (np.frombuffer(raw, np.uint8).astype(np.float32) / 255.0) ** 2
    total = float(hist.sum())
    return hist / total if total > 0 else None
