"""One backbone pass per image: `Encoder`, the part of `pekit.pipeline.Pipeline` that runs it.

`Encoder.encode` turns a photo into a `PatchGrid` (patch features, the saliency map when
the backbone has one and it is asked for, patch colours when the config compares colour);
`encode_many` streams many photos through `pekit.embed.stream.encode_stream`. Every grid a
backbone returns is checked where a plugged-in backbone goes wrong (`checked_grid`).
Stage 1 (`pekit.extract.reference.ViewExtractor`) and stage 2 (`pekit.pipeline.Pipeline`)
build on it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from pekit.embed.base import Backbone
from pekit.embed.colour import achromatic, patch_colours
from pekit.embed.stream import encode_stream
from pekit.errors import BackendError, ImageError
from pekit.presets import RecognitionConfig
from pekit.types import PatchGrid

__all__ = ["Encoder", "as_rgb", "checked_grid"]


def as_rgb(image: Any) -> np.ndarray:
    """An ``(H, W, 3) uint8`` RGB array from anything `pekit.images.load_image` reads, read
    as it reads it (RGBA composited on white, other dtypes scaled, the pixel limit), so a
    photo is the same pixels in `recognize`, `recognize_many` and `introduce`; `ImageError`
    names what is wrong otherwise."""
    from pekit.images import load_image

    return load_image(image)


class Encoder:
    """A backbone and the `RecognitionConfig` that says what a pass must carry.

    Args:
        backbone: a `Backbone` (``embed(image, saliency=...) -> PatchGrid``).
        config: the recognition settings (``colour_weight``: patch colours; ``proposals``:
            whether a query needs the saliency map).
    """

    def __init__(self, backbone: Backbone, config: RecognitionConfig | None = None) -> None:
        self.backbone = backbone
        self.config = config or RecognitionConfig()
        self._takes_saliency: bool | None = None

    @property
    def fingerprint(self) -> str:
        """The backbone's fingerprint: what a memory's vectors and the eval caches are keyed on."""
        return self.backbone.fingerprint

    @property
    def query_saliency(self) -> bool:
        """Whether recognizing needs the saliency map: only saliency proposals use it (the
        saliency decoder is ~40 % of the offline pass, so a query encoded without it is
        that much cheaper). Reference views always use it."""
        return "saliency" in self.config.proposals

    def encode(self, image: Any, *, saliency: bool = True) -> PatchGrid:
        """Run the backbone once (with saliency when the backbone has it and ``saliency``).

        ``image``: an ``(H, W, 3) uint8`` array, or anything `pekit.images.load_image`
        reads (path, bytes, PIL image; RGBA and grey are converted). ``saliency=False``
        (e.g. ``saliency=pipeline.query_saliency`` for a query) skips the saliency head.
        """
        return self._encoded(self.backbone, as_rgb(image), saliency)

    def with_colours(self, grid: PatchGrid, image: Any, *, always: bool = False) -> PatchGrid:
        """``grid`` with its patches' colours (`pekit.embed.colour.patch_colours`) when the
        config compares colour (``colour_weight`` > 0, or ``always``: a reference view keeps
        its colour whatever the preset, so a concept keeps one colour per view) and it has
        none yet, else ``grid``. ``image``: the photo the grid was computed from (anything
        `encode` takes). A black-and-white query photo gets none (`achromatic`): it holds no
        colour evidence, so its regions are not compared by colour (a reference view keeps
        its colour and says it is achromatic: `reference`, `concept_from_views`)."""
        if (self.config.colour_weight <= 0 and not always) or grid.colours is not None:
            return grid
        rgb = as_rgb(image)
        if not always and achromatic(rgb):
            return grid
        return dataclasses.replace(grid, colours=patch_colours(rgb, grid.shape))

    def _encoded(self, backbone: Backbone, rgb: np.ndarray, saliency: bool) -> PatchGrid:
        """`encode`'s pass of an ``(H, W, 3) uint8`` photo on ``backbone`` (this one, or a stream's
        worker): its checked grid with the patch colours the config compares."""
        return self.with_colours(self._embed(backbone, rgb, saliency), rgb)

    def _embed(self, backbone: Backbone, image: np.ndarray, saliency: bool) -> PatchGrid:
        if self._takes_saliency is None:  # a backbone written before `saliency` joined the protocol
            import inspect

            try:
                params = inspect.signature(backbone.embed).parameters
                self._takes_saliency = "saliency" in params or any(
                    p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
            except (TypeError, ValueError):
                self._takes_saliency = True
        grid = backbone.embed(image, saliency=saliency) if self._takes_saliency else backbone.embed(image)
        return checked_grid(grid, backbone)

    def encode_many(self, images: Iterable[Any], *, saliency: bool | Sequence[bool] = True,
                    workers: int | None = None) -> Iterator[tuple[np.ndarray, PatchGrid] | ImageError]:
        """`encode` a stream of images, in order, overlapping decoding and passes
        (`pekit.embed.stream.encode_stream`).

        Yields ``(rgb, grid)`` per image, or the `ImageError` of an image that cannot be
        read (the stream goes on; raise it to stop). When ``images`` itself raises (a
        generator that fails), the images it gave before are yielded first, then its error.
        One thread decodes ahead while
        ``workers`` passes run at a time; a backbone with ``for_workers`` (the ONNX one)
        splits the cores between them, others run one pass at a time. The caller's work
        on a result (matching, drawing) overlaps the next passes. At most ``2 * workers``
        decoded images wait in memory.

        Args:
            images: paths, bytes, PIL images or arrays (anything `encode` takes).
            saliency: one flag for all, or one per image (e.g. only reference photos).
            workers: passes at a time; default: up to 4, one per core (one for a
                backbone without ``for_workers``).
        """
        return encode_stream(images, self._encoded, self.backbone, saliency=saliency, workers=workers, decode=as_rgb)


def checked_grid(grid: Any, backbone: Any) -> PatchGrid:
    """A backbone's pass, checked where a plugged-in backbone goes wrong: the wrong type,
    another width than it declares, or values that are not numbers (a float16 overflow)."""
    name = getattr(backbone, "fingerprint", type(backbone).__name__)
    if not isinstance(grid, PatchGrid):
        raise BackendError(f"the backbone {name} returned {type(grid).__name__}, not a pekit.types.PatchGrid; "
                           "its embed(image) must return PatchGrid(features=(h, w, d) array, ...)")
    dim = getattr(backbone, "dim", None)
    if isinstance(dim, int) and grid.features.shape[-1] != dim:
        raise BackendError(f"the backbone {name} declares dim={dim} but returned {grid.features.shape[-1]}-wide "
                           "patch features; make its dim attribute match what embed returns")
    if not np.isfinite(grid.features).all():
        raise BackendError(f"the backbone {name} returned patch features that are not finite numbers (NaN or "
                           "inf; a float16 model can overflow): run it in float32")
    return grid

