"""Stage 1, view extraction: `ViewExtractor`, the part of `pekit.pipeline.Pipeline` that
isolates the object in a reference photo's one pass and embeds it.

`ViewExtractor.reference` finds the object on the reference grid (the user's mask, the
user's box refined by saliency, the detector from the category (+ segmenter), or the
saliency map) and returns its `View` (embedding + parts, `pekit.extract.views`); with
``reference_zoom_out`` the view gets a zoomed-out twin from one more, smaller pass
(`zoom_out_grid`). Stage 2 (`pekit.pipeline.Pipeline`) builds on it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pekit.embed.base import Backbone, ScalableBackbone
from pekit.embed.colour import achromatic
from pekit.embed.encoder import Encoder, as_rgb
from pekit.errors import BackendError, NothingFoundError
from pekit.extract.base import Detector, Segmenter
from pekit.extract.saliency import object_weights
from pekit.extract.views import View, tiled_image, view_from_weights, zoomed_view
from pekit.presets import RecognitionConfig
from pekit.types import Detections, PatchGrid

__all__ = ["ViewExtractor", "check_detected"]


class ViewExtractor(Encoder):
    """An `Encoder` with the optional models that find an object in a reference photo.

    Args:
        backbone: a `Backbone` (``embed(image, saliency=...) -> PatchGrid``).
        config: the recognition settings (``reference_level``, ``max_parts``,
            ``reference_zoom_out``...).
        detector: optional open-vocabulary `Detector`: the object from its category.
        segmenter: optional box-to-mask `Segmenter`.
    """

    def __init__(self, backbone: Backbone, config: RecognitionConfig | None = None, *,
                 detector: Detector | None = None, segmenter: Segmenter | None = None) -> None:
        super().__init__(backbone, config)
        self.detector = detector
        self.segmenter = segmenter

    def reference(self, grid: PatchGrid, *, box: np.ndarray | None = None, mask: np.ndarray | None = None,
                  image: np.ndarray | None = None, category: str = "",
                  zoomed: PatchGrid | None = None) -> View:
        """Isolate the object in a reference grid and embed it.

        Order of preference: the user's mask, the user's box (refined by saliency), the
        detector from ``category`` (+ segmenter), the saliency map. With
        ``config.reference_zoom_out`` and the ``image`` (or its ``zoomed`` grid,
        `zoom_out_grid`), the view also gets its zoomed-out twin (`zoomed_view`: one more
        backbone pass unless ``zoomed`` is given); otherwise no extra pass is run.
        """
        cfg = self.config
        if mask is None and box is None and self.detector is not None and category and image is not None:
            found = self.detector.detect(image, [category])
            if not isinstance(found, Detections):
                raise BackendError(f"the detector {type(self.detector).__name__} returned {type(found).__name__}, "
                                   "not a pekit.types.Detections")
            if len(found) == 0:
                raise NothingFoundError(
                    f"the detector found no '{category}' in this reference photo; pass a box around it "
                    "or check the category"
                )
            box = found.xyxy[int(np.argmax(np.asarray(found.score)))]
            check_detected(box, grid, type(self.detector).__name__, category)
            if self.segmenter is not None:
                mask = self.segmenter.segment(image, box[None])[0]
                if not np.asarray(mask).any():
                    raise BackendError(f"the segmenter {type(self.segmenter).__name__} gave an empty mask for the "
                                       f"'{category}' the detector boxed at {[round(float(v)) for v in box]}")
        if mask is None and box is None and grid.saliency is None:
            raise NothingFoundError(
                "this backbone gives no saliency map, so a reference photo needs a box or a mask around the "
                "object" + (f", or a category (e.g. category='dog'; CLI: --category dog) for the detector "
                            f"{type(self.detector).__name__} to find it" if self.detector is not None else
                            ", or a preset with a detector and a category")
            )
        if image is not None:
            grid = self.with_colours(grid, image, always=True)
        weights = object_weights(grid, box=box, mask=mask, level=cfg.reference_level)
        view = view_from_weights(grid, weights, max_parts=cfg.max_parts)
        if image is not None:
            view.achromatic = achromatic(as_rgb(image))
        if cfg.reference_zoom_out >= 2 and (zoomed is not None or image is not None):
            view.zoomed = self.zoomed_view(view, zoomed if zoomed is not None else self.zoom_out_grid(image))
        return view

    def zoom_out_image(self, image: Any) -> np.ndarray:
        """The photo shrunk ``config.reference_zoom_out`` times per side and tiled n x n back to
        about its size: every copy of the object is n times smaller, in its own context
        (what `zoom_out_grid` embeds for a backbone that cannot change its input size)."""
        return tiled_image(as_rgb(image), self._zoom_factor)

    def zoom_out_grid(self, image: Any) -> PatchGrid:
        """One features-only pass that sees the photo's object n = ``reference_zoom_out``
        times smaller: the photo at 1/n of the backbone's input size when it can change it
        (`ScalableBackbone`: about 1/n² of the tokens, so a fraction of a pass), else the
        n x n tiling of `zoom_out_image` at full size. Either way the object spans 1/n of
        the patches per side, and `zoomed_view` reads the grid with the photo's mask tiled
        n x n (a grid of one copy is its own 1 x 1 tiling)."""
        backbone = self.backbone
        if isinstance(backbone, ScalableBackbone):  # zoom_out_mode "res"
            resolution = max(56, int(backbone.resolution) // self._zoom_factor)
            return self._embed(backbone.at_resolution(resolution), as_rgb(image), False)
        return self.encode(self.zoom_out_image(image), saliency=False)

    @property
    def zoom_out_mode(self) -> str:
        """How `zoom_out_grid` sees the object smaller: ``"res"`` (the photo at a smaller
        input size) or ``"tiled"`` (the n x n tiling at full size); caches key on it."""
        return "res" if isinstance(self.backbone, ScalableBackbone) else "tiled"

    @property
    def _zoom_factor(self) -> int:
        return max(2, int(self.config.reference_zoom_out))

    def zoomed_view(self, view: View, zoomed: PatchGrid) -> View | None:
        """``view``'s object in the `zoom_out_grid` of its photo: the object's patch mask
        tiled like the photo, pooled and summarised into parts (None if it covers fewer
        than 2 patches there)."""
        return zoomed_view(view, zoomed, factor=self._zoom_factor, max_parts=self.config.max_parts)


def check_detected(box: np.ndarray, grid: PatchGrid, detector: str, category: str) -> None:
    """The detector's box for ``category``, checked as a user's box is: on the photo and over a
    few patches (a detector returning boxes in 0-1 units, not pixels, boxes one corner patch)."""
    from pekit.extract.boxes import MIN_BOX_PATCHES

    box = np.asarray(box, np.float64)
    shown = [round(float(v), 1) for v in box.reshape(-1)]
    if box.shape != (4,) or not np.isfinite(box).all() or box[2] <= box[0] or box[3] <= box[1]:
        raise BackendError(f"the detector {detector} boxed the '{category}' at {shown}: not an x0, y0, x1, y1 "
                           "box in pixels")
    width, height = grid.image_size
    cw, ch = grid.cell_size
    w = min(box[2], width) - max(box[0], 0.0)
    h = min(box[3], height) - max(box[1], 0.0)
    covered = max(w, 0.0) / cw * max(h, 0.0) / ch
    if np.abs(box).max() <= 1.5 and max(width, height) > 16:
        raise BackendError(f"the detector {detector} boxed the '{category}' at {shown} on the {width}x{height} "
                           "photo: its boxes look like 0-1 fractions; a detector must give them in pixels")
    if w <= 0 or h <= 0:
        raise BackendError(f"the detector {detector} boxed the '{category}' at {shown}, outside the "
                           f"{width}x{height} photo")
    if covered < MIN_BOX_PATCHES:
        raise NothingFoundError(f"the '{category}' the detector found covers {covered:.1f} patch(es) of this "
                                f"{width}x{height} photo, too few to describe it: use a photo where it is larger "
                                "(or crop this one), or pass a box")
