"""Stage 2 of a `Personalizer`: a photo, a stream of photos or a clip -> named detections.

What `Personalizer.recognize`, `recognize_many` and `recognize_video` run (and `ask` and
`caption` before they answer): objects through the backbone pipeline (one pass, every
proposal pooled from it, the second look where the preset has one), persons through the face
model when the memory holds one, merged best first; a stream overlaps decoding and the next
passes with this photo's matching (`Pipeline.encode_many`), and a clip's samples are matched
down to a weak margin so that near-threshold frames extend tracks. Each function takes the
`Personalizer` first.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from pekit.errors import ImageError
from pekit.images import ImageInput, load_image
from pekit.retrieve.cache import NamespaceGallery
from pekit.retrieve.match import thresholds_or
from pekit.types import Detections, PatchGrid

if TYPE_CHECKING:
    from pekit.personalizer import Personalizer

log = logging.getLogger(__name__)

__all__ = ["LARGE_GALLERY_VIEWS", "recognize_in", "recognize_stream", "video_steps"]

LARGE_GALLERY_VIEWS = 20_000  # above this, the proposal x view product is worth the BLAS threads


def recognize_in(p: Personalizer, img: np.ndarray, entry: NamespaceGallery, threshold: float | None,
                 timings: dict[str, float] | None = None, *, grid: PatchGrid | None = None,
                 blas: int | None = None, margin: float = 0.0) -> Detections:
    """`recognize` against a namespace's cached gallery (`GalleryCache.get`).

    Objects go through the backbone pipeline, persons through the face model (run only
    when the memory holds a person); the results merge into one `Detections`, best
    first. ``timings`` (if given) accumulates seconds under ``backbone`` and ``faces``.
    """
    objects, persons = entry.gallery, entry.others
    if not entry.count and "memory_counted" not in p._models:
        p._models["memory_counted"] = True  # once for the siblings too (a service's users), emptied or not
        if not p.memory.count():
            log.warning("the memory '%s' holds no concepts at all, so nothing can be recognized: introduce "
                        "one first, or check the memory path (open_memory(path, must_exist=True) refuses a "
                        "missing file)", p.memory.uri)
    found: list[Detections] = []
    if len(objects):
        t0 = time.perf_counter()
        p._check_backbone()
        if grid is None:
            grid = p.pipeline.encode(img, saliency=p.pipeline.query_saliency)
        labels = entry.categories
        from pekit._threads import blas_threads, cores

        if blas is None:  # after the pass the cores are free: big galleries use them all
            blas = 1 if len(objects.views) < LARGE_GALLERY_VIEWS else cores()
        with blas_threads(blas):  # small products: one thread (a BLAS pool would only wait)
            found.append(p.pipeline.recognize(grid, objects, threshold=threshold, image=img, labels=labels,
                                              margin=margin))
        if timings is not None:
            timings["backbone"] = timings.get("backbone", 0.0) + time.perf_counter() - t0
    if persons:
        t0 = time.perf_counter()
        from pekit.faces.people import recognize_faces

        found.append(recognize_faces(p, img, persons))
        if timings is not None:
            timings["faces"] = timings.get("faces", 0.0) + time.perf_counter() - t0
    if not found:
        return Detections.empty()
    if len(found) == 1:
        return found[0]
    merged = Detections.merge(found)
    return merged[np.argsort(-np.asarray(merged.score), kind="stable")] if len(merged) else merged


def recognize_stream(p: Personalizer, images: Iterable[ImageInput], *, threshold: float | None = None,
                     workers: int | None = None, skip_bad: bool = False) -> Iterator[Any]:
    """``(rgb, detections)`` per photo: `recognize_many` for callers that draw on the photo.
    With ``skip_bad`` an unreadable photo gives ``(None, its ImageError)`` and the rest go on.
    Each photo is matched against the namespace as it is when its turn comes."""
    entry = p.galleries.get(p.namespace)
    if not len(entry.gallery):  # persons only (or nothing): no backbone pass to overlap
        for image in images:
            try:
                img = load_image(image)
            except ImageError as exc:
                if not skip_bad:
                    raise
                yield None, exc
                continue
            yield img, recognize_in(p, img, p.galleries.get(p.namespace), threshold)
        return
    p._check_backbone()
    for result in p.pipeline.encode_many(images, saliency=p.pipeline.query_saliency, workers=workers):
        if isinstance(result, ImageError):
            if not skip_bad:
                raise result
            yield None, result
            continue
        img, grid = result
        entry = p.galleries.get(p.namespace)  # a write meanwhile (forget, correct) counts from now
        yield img, recognize_in(p, img, entry, threshold, grid=grid, blas=1)  # next passes are running


def video_steps(p: Personalizer, entry: Any, threshold: float | None) -> tuple[Any, Any]:
    """Per-sample recognition for a clip and its ``confirm`` (see `pekit.video.recognize_video`).

    Objects are recognized down to `pekit.video.WEAK_MARGIN` under their thresholds
    (the looks steered by the thresholds, as for a photo); ``confirm`` marks the
    detections at or above their own threshold strong (faces: all, matched at the usual
    tolerance), so near-threshold frames only extend tracks.
    """
    from pekit.video import WEAK_MARGIN

    objects = entry.gallery
    own: dict[int, float] = {}
    if len(objects):
        per = np.full(len(objects), threshold, np.float64) if threshold is not None else thresholds_or(
            objects.thresholds, p.pipeline.config.threshold)
        own = dict(zip(np.asarray(objects.ids).tolist(), per.tolist(), strict=True))

    def step(image: np.ndarray, timings: dict[str, float]) -> Detections:
        return recognize_in(p, image, entry, threshold, timings, margin=WEAK_MARGIN)

    def confirm(dets: Detections) -> np.ndarray:
        return np.array([float(s) >= own.get(int(k), -np.inf) - 1e-6
                         for k, s in zip(np.asarray(dets.concept_id), np.asarray(dets.score), strict=True)], bool)

    return step, confirm
