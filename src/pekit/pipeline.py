"""The recognition pipeline: one backbone pass per image, every region pooled from it.

`Pipeline` ties the paper's stages together for one configuration:

* `encode` runs the backbone once -> `PatchGrid` (features + saliency);
* `reference` isolates the object in a reference grid (view extraction, stage 1) and
  returns its view embedding and part embeddings;
* `recognize` proposes regions in a query grid, matches them against a `Gallery`,
  verifies the best candidates at patch level and assigns names (retrieval, stage 2).

`Personalizer` (introduce / recognize / ask) and the evaluation runner both use it, so the
benchmark measures exactly what users run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from pekit.embed.base import Backbone
from pekit.embed.pooling import box_weights, l2_normalize, mask_weights, pool
from pekit.errors import NothingFoundError
from pekit.extract.saliency import grid_saliency, object_weights
from pekit.presets import RecognitionConfig
from pekit.retrieve.match import Gallery, part_scores, similarity
from pekit.retrieve.nms import nms
from pekit.retrieve.proposals import Proposals, box_proposals, saliency_proposals, window_proposals
from pekit.types import Detections, PatchGrid

log = logging.getLogger(__name__)

__all__ = ["Pipeline", "View"]


@dataclass
class View:
    """One reference view: ``embedding (d,)``, ``parts (p, d)``, its box and patch weights."""

    embedding: np.ndarray
    parts: np.ndarray
    xyxy: np.ndarray
    weights: np.ndarray


def _weights_box(grid: PatchGrid, weights: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(weights > 0)
    cw, ch = grid.cell_size
    return np.array([xs.min() * cw, ys.min() * ch, (xs.max() + 1) * cw, (ys.max() + 1) * ch], np.float32)


def summarize_parts(patches: np.ndarray, max_parts: int, seed: int = 0) -> np.ndarray:
    """At most ``max_parts`` unit prototypes of ``(n, d)`` unit patch features (k-means)."""
    if len(patches) <= max_parts:
        return patches.astype(np.float32)
    from scipy.cluster.vq import kmeans2

    centroids, _ = kmeans2(patches.astype(np.float64), max_parts, minit="++", seed=seed, iter=10)
    return l2_normalize(centroids.astype(np.float32))


class Pipeline:
    """Backbone + extraction + proposals + matching for one `RecognitionConfig`.

    Args:
        backbone: a `Backbone` (``embed(image) -> PatchGrid``).
        config: thresholds, proposal sources and verification settings.
        detector: optional open-vocabulary detector (``detect(image, labels) -> Detections``)
            used for reference extraction from the category and for query proposals.
        segmenter: optional box-to-mask model (``segment(image, boxes) -> masks``).
    """

    def __init__(self, backbone: Backbone, config: RecognitionConfig | None = None, *,
                 detector: object | None = None, segmenter: object | None = None) -> None:
        self.backbone = backbone
        self.config = config or RecognitionConfig()
        self.detector = detector
        self.segmenter = segmenter

    @property
    def fingerprint(self) -> str:
        return self.backbone.fingerprint

    # -- one pass ---------------------------------------------------------------------
    def encode(self, image: np.ndarray) -> PatchGrid:
        """Run the backbone once (with saliency when the backbone has it)."""
        if not (isinstance(image, np.ndarray) and image.ndim == 3 and image.dtype == np.uint8):
            from pekit.images import load_image

            image = load_image(image)
        try:
            return self.backbone.embed(image, saliency=True)  # type: ignore[call-arg]
        except TypeError:
            return self.backbone.embed(image)

    def _unit_patches(self, grid: PatchGrid) -> np.ndarray:
        return l2_normalize(grid.features.reshape(-1, grid.dim))

    # -- stage 1: views -----------------------------------------------------------------
    def reference(self, grid: PatchGrid, *, box: np.ndarray | None = None, mask: np.ndarray | None = None,
                  image: np.ndarray | None = None, category: str = "") -> View:
        """Isolate the object in a reference grid and embed it (no extra backbone pass).

        Order of preference: the user's mask, the user's box (refined by saliency), the
        detector from ``category`` (+ segmenter), the saliency map.
        """
        cfg = self.config
        if mask is None and box is None and self.detector is not None and category and image is not None:
            found = self.detector.detect(image, [category])  # type: ignore[attr-defined]
            if len(found) == 0:
                raise NothingFoundError(
                    f"the detector found no '{category}' in this reference photo; pass a box around it "
                    "or check the category"
                )
            box = found.xyxy[int(np.argmax(found.score))]
            if self.segmenter is not None:
                mask = self.segmenter.segment(image, box[None])[0]  # type: ignore[attr-defined]
        weights = object_weights(grid, box=box, mask=mask, level=cfg.reference_level)
        embedding = pool(grid, weights[None])[0]
        patches = self._unit_patches(grid)[weights.reshape(-1) > 0.5]
        if len(patches) == 0:
            patches = embedding[None]
        parts = summarize_parts(patches, cfg.max_parts)
        return View(embedding, parts, _weights_box(grid, weights), weights)

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
            found = self.detector.detect(image, sorted(set(labels)))  # type: ignore[attr-defined]
            if len(found):
                items.append(box_proposals(grid, found.xyxy))
        if not items or not any(len(p) for p in items):
            items.append(window_proposals(grid, scales=cfg.window_scales))
        return Proposals.concat(items, grid.shape)

    def candidates(self, grid: PatchGrid, gallery: Gallery, *, per_concept: int = 1,
                   image: np.ndarray | None = None, labels: list[str] | None = None,
                   ) -> list[tuple[int, float, np.ndarray]]:
        """Scored regions per concept: ``[(concept index, final score, xyxy (4,)), ...]``.

        Up to ``per_concept`` non-overlapping regions per concept (best first), each only
        among the proposals the concept wins (competitive assignment), each verified at
        patch level. No threshold is applied.
        """
        cfg = self.config
        c = len(gallery)
        if c == 0:
            return []
        props = self.proposals(grid, image=image, labels=labels)
        sims = similarity(pool(grid, props.weights), gallery)
        if cfg.competitive and c > 1:
            best = sims.argmax(1)
            ordered = np.sort(sims, 1)
            ok = (ordered[:, -1] - ordered[:, -2]) >= cfg.margin
            allowed = np.zeros_like(sims, dtype=bool)
            allowed[np.arange(len(sims)), best] = ok
        else:
            allowed = np.ones_like(sims, dtype=bool)
        unit = self._unit_patches(grid) if cfg.verify_weight > 0 else None
        out: list[tuple[int, float, np.ndarray]] = []
        for k in range(c):
            rows = np.nonzero(allowed[:, k])[0]
            if rows.size == 0:
                continue
            rows = rows[np.argsort(-sims[rows, k], kind="stable")]
            if per_concept > 1:
                rows = rows[nms(props.xyxy[rows], sims[rows, k], iou=0.3)]
            for p in rows[:per_concept]:
                score = float(sims[p, k])
                parts = gallery.parts[k]
                if unit is not None and parts is not None and len(parts):
                    region = unit[props.weights[p].reshape(-1) > 0.5]
                    score = (1 - cfg.verify_weight) * score + cfg.verify_weight * part_scores(region, parts)
                out.append((k, score, props.xyxy[p]))
        return out

    def match(self, grid: PatchGrid, gallery: Gallery, *, image: np.ndarray | None = None,
              labels: list[str] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Best candidate per concept: ``(scores (C,), xyxy (C, 4), found (C,) bool)``.

        A concept with no candidate gets score -1 and ``found`` False. Scores are final
        (after verification), so thresholding them gives what `recognize` returns (before
        NMS across concepts); the evaluation sweeps thresholds over them without
        re-embedding.
        """
        c = len(gallery)
        scores = np.full(c, -1.0, np.float32)
        boxes = np.zeros((c, 4), np.float32)
        found = np.zeros(c, bool)
        for k, score, xyxy in self.candidates(grid, gallery, image=image, labels=labels):
            scores[k], boxes[k], found[k] = score, xyxy, True
        return scores, boxes, found

    def recognize(self, grid: PatchGrid, gallery: Gallery, *, threshold: float | None = None,
                  image: np.ndarray | None = None, labels: list[str] | None = None) -> Detections:
        """Named detections of the gallery's concepts in one query grid, best first.

        Each concept appears at most ``config.max_per_concept`` times (default once).
        """
        cands = self.candidates(grid, gallery, per_concept=self.config.max_per_concept, image=image,
                                labels=labels)
        thr = self.config.threshold if threshold is None else float(threshold)
        per = np.where(np.isnan(gallery.thresholds), thr, gallery.thresholds) if threshold is None \
            else np.full(len(gallery), thr, np.float32)
        hits = [(k, s, b) for k, s, b in cands if s >= per[k]]
        if not hits:
            return Detections.empty()
        owner = np.array([k for k, _, _ in hits], np.int64)
        scores = np.array([s for _, s, _ in hits], np.float32)
        boxes = np.stack([b for _, _, b in hits]).astype(np.float32)
        kept = nms(boxes, scores, iou=self.config.nms_iou)
        return Detections(
            xyxy=boxes[kept], score=scores[kept], concept_id=gallery.ids[owner[kept]],
            name=np.array([gallery.names[k] for k in owner[kept]], dtype=object),
            embedding=pool(grid, box_weights(grid, boxes[kept])),
        )

    def region_embedding(self, grid: PatchGrid, *, xyxy: np.ndarray | None = None,
                         mask: np.ndarray | None = None) -> np.ndarray:
        """Pool one region (box or mask) of a grid: ``(d,)`` unit vector."""
        weights = mask_weights(grid, mask) if mask is not None else box_weights(grid, np.asarray(xyxy))
        return pool(grid, weights)[0]
