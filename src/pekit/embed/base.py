"""The backbone protocol: one image in, one `PatchGrid` out."""

from __future__ import annotations

import math
from typing import Any, Protocol, runtime_checkable

import numpy as np

from pekit.errors import InvalidInputError
from pekit.types import PatchGrid, whole_number


@runtime_checkable
class Backbone(Protocol):
    """A patch-feature extractor.

    ``fingerprint`` identifies the weights *and* the feature recipe (layer, resolution);
    the memory refuses to compare vectors with different fingerprints.
    """

    name: str
    fingerprint: str
    dim: int

    def embed(self, image: np.ndarray, *, saliency: bool = True) -> PatchGrid:
        """``(H, W, 3) uint8`` RGB -> `PatchGrid` from exactly one forward pass.

        ``saliency``: also return the class-agnostic objectness map of the same pass when
        the backbone has one (backbones without a saliency head ignore it and return
        ``PatchGrid.saliency = None``).
        """
        ...


@runtime_checkable
class ParallelBackbone(Backbone, Protocol):
    """A backbone that can split the cores between several passes at a time (for batches)."""

    def for_workers(self, workers: int) -> Backbone:
        """A copy for ``workers`` concurrent passes (same weights and fingerprint)."""
        ...


@runtime_checkable
class ScalableBackbone(Backbone, Protocol):
    """A backbone that can run the same weights at another input size (zoomed-out views)."""

    resolution: int  # input size in px: a square photo's side, another shape's of the same area (`input_size`)

    def at_resolution(self, resolution: int) -> Backbone:
        """A copy whose input is ``resolution`` px (`input_size`; same weights and
        fingerprint: its vectors are compared with the original's)."""
        ...


IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


def check_rgb(image: Any, backbone: str) -> np.ndarray:
    """``image`` if it is an ``(H, W, 3) uint8`` RGB array, else `InvalidInputError` saying how
    to get one (`pekit.images.load_image` reads any photo, greyscale, RGBA or float)."""
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        shape, dtype = getattr(image, "shape", None), getattr(image, "dtype", type(image).__name__)
        raise InvalidInputError(f"{backbone} takes an (H, W, 3) uint8 RGB array, but got shape {shape} and dtype "
                                f"{dtype}; convert it with pekit.images.load_image")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise InvalidInputError(f"{backbone} got an empty image of shape {image.shape}")
    return image


def check_recipe(layer: Any, resolution: Any) -> None:
    """`InvalidInputError` unless ``layer`` and ``resolution`` are whole numbers (a string from
    a config file, ``"7"``, is the usual slip)."""
    for key, value in (("layer", layer), ("resolution", resolution)):
        if not whole_number(value):
            raise InvalidInputError(f"{key} must be a whole number, e.g. {key}={7 if key == 'layer' else 448}, "
                                    f"got {value!r}")


#: the longest input side, as a multiple of ``resolution``: a panorama past 16:1 gets fewer patches
MAX_ASPECT_SIDE = 4


def input_scale(width: float, height: float, resolution: float = 1.0) -> float:
    """How much `input_size` scales a ``width`` x ``height`` photo (before rounding to
    patches): to about ``resolution ** 2`` pixels, the long side at most `MAX_ASPECT_SIDE` x
    ``resolution``. Its ratio for two sizes is how much larger one pass sees things than the
    other (`pekit.retrieve.second_look.magnification`).

    >>> input_scale(896, 896, 448), input_scale(4000, 100, 448)
    (0.5, 0.448)
    """
    width, height = max(float(width), 1.0), max(float(height), 1.0)
    return min(resolution / math.sqrt(width * height), MAX_ASPECT_SIDE * resolution / max(width, height))


def input_size(width: int, height: int, resolution: int, patch: int = 14) -> tuple[int, int]:
    """Network input ``(W, H)``: about ``resolution ** 2`` pixels whatever the photo's shape
    (aspect kept, sides multiples of ``patch``, the long side at most `MAX_ASPECT_SIDE` x
    ``resolution``). A pass costs the same for every photo, and a panorama is not squeezed
    into a strip of patches: sized by its long side, a 4000 x 500 photo got 32 x 4 patches
    and a dog in it 4 x 4 (score 0.39; 0.55 and the right box now, with 90 x 11).

    >>> input_size(640, 640, 448), input_size(640, 480, 448), input_size(4000, 500, 448)
    ((448, 448), (518, 392), (1274, 154))
    """
    scale = input_scale(width, height, resolution)
    w = max(patch, round(width * scale / patch) * patch)
    h = max(patch, round(height * scale / patch) * patch)
    return w, h


def preprocess(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize to ``size`` (W, H) with bicubic filtering and normalise -> ``(1, 3, H, W) float32``."""
    from PIL import Image

    img = Image.fromarray(image).resize(size, Image.Resampling.BICUBIC)
    x = (np.asarray(img, np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])
