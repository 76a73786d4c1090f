"""Stage 2 of a `Personalizer`: a photo, a stream of photos or a clip -> named detections.

What `Personalizer.recognize`, `recognize_many` and `recognize_video` run (and `ask` and
`caption` before they answer): objects through the backbone pipeline (one pass, every
proposal pooled from it, the second look where the preset has one), persons through the face
model when the memory holds one, merged best first; a stream overlaps decoding and the next
passes with this photo's matching (`Pipeline.encode_many`), and a clip's samples are matched
down to a weak margin so that near-threshold frames extend tracks. `explain` draws what a
photo's detections matched (`Personalizer.explain`); `check_photos` refuses what
`recognize_many` cannot take. Each function takes the `Personalizer` first.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from pekit._guards import check_backbone
from pekit.errors import ConceptNotFoundError, ImageError, InvalidInputError, MissingDependencyError
from pekit.images import ImageInput, NamedImage, is_stream, load_image
from pekit.retrieve.cache import NamespaceGallery
from pekit.retrieve.match import Gallery, thresholds_or
from pekit.types import Concept, Detections, PatchGrid

if TYPE_CHECKING:
    from pekit.personalizer import Personalizer

log = logging.getLogger(__name__)

__all__ = ["LARGE_GALLERY_VIEWS", "check_photos", "explain", "recognize_in", "recognize_stream", "told_empty",
           "video_steps"]

LARGE_GALLERY_VIEWS = 20_000  # above this, the proposal x view product is worth the BLAS threads
_EMPTY_TOLD = "memory_counted"  # kept with the models: the empty memory is warned of once
_NO_FACES = "faces_missing"  # and people that cannot be recognized here (no [faces] extra), once


def told_empty(p: Personalizer) -> None:
    """The user has been told that ``p``'s memory is empty (the CLI's note says it in its own
    words), so `recognize_in` does not warn of it again."""
    p._models[_EMPTY_TOLD] = True


def recognize_in(p: Personalizer, img: np.ndarray, entry: NamespaceGallery, threshold: float | None,
                 timings: dict[str, float] | None = None, *, grid: PatchGrid | None = None,
                 blas: int | None = None, margin: float = 0.0) -> Detections:
    """`recognize` against a namespace's cached gallery (`GalleryCache.get`).

    Objects go through the backbone pipeline, persons through the face model (run only
    when the memory holds a person); the results merge into one `Detections`, best
    first. ``timings`` (if given) accumulates seconds under ``backbone`` and ``faces``.
    """
    objects, persons = entry.gallery, entry.others
    if not entry.count and _EMPTY_TOLD not in p._models:
        p._models[_EMPTY_TOLD] = True  # once for the siblings too (a service's users), emptied or not
        if not p.memory.count():
            log.warning("the memory '%s' holds no concepts at all, so nothing can be recognized: introduce "
                        "one first, or check the memory path (open_memory(path, must_exist=True) refuses a "
                        "missing file)", p.memory.uri)
    found: list[Detections] = []
    if len(objects):
        t0 = time.perf_counter()
        check_backbone(p)
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

        try:
            found.append(recognize_faces(p, img, persons))
        except MissingDependencyError as exc:  # no face model here: the things are still found, and said
            if _NO_FACES not in p._models:
                p._models[_NO_FACES] = True
                names = ", ".join(f"'{c.name}'" for c in persons[:5]) + (" ..." if len(persons) > 5 else "")
                log.warning("the memory holds %d person(s) (%s), recognized by face, but %s; recognizing things "
                            "only", len(persons), names, str(exc).removeprefix("this feature needs "))
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
    check_backbone(p)
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


def check_photos(images: Any) -> None:
    """Refuse, with what to do, what `recognize_many` cannot take as a stream of photos: one
    photo (a path, bytes, an array of one image, a file object) or something not iterable."""
    if images is None or isinstance(images, (str, os.PathLike, bytes, bytearray, memoryview, NamedImage)) or \
            is_stream(images) or (isinstance(images, np.ndarray) and images.ndim < 4) or \
            not isinstance(images, Iterable):
        raise InvalidInputError("recognize_many takes an iterable of photos (paths, arrays, PIL images...) or "
                                f"a folder's path, got {type(images).__name__}; for one photo use recognize")


def explain(p: Personalizer, image: ImageInput, detections: Detections | None = None) -> np.ndarray:
    """`Personalizer.explain`: per detection, the patch similarity heat map over the photo and
    the reference view it matched best, ``(H', W, 3) uint8`` (`pekit.retrieve.explain`);
    ``detections`` from `recognize` on the same image, recognized again when None (objects
    and persons, as `recognize`). A person, recognized by face, gets a panel with its box and
    no heat map; a photo with people only costs no backbone pass."""
    from pekit.faces import PERSON, concept_kind
    from pekit.retrieve.explain import explain_figure

    if detections is not None and not isinstance(detections, Detections):
        raise InvalidInputError(f"detections must be what recognize returned (Detections) or None, "
                                f"got {type(detections).__name__}")
    img = load_image(image)
    entry = p.galleries.get(p.namespace)  # what `recognize` matches: objects (persons match by face)
    grid = None

    def encoded() -> PatchGrid:
        check_backbone(p)  # another backbone's parts would give a meaningless map
        return p.pipeline.encode(img, saliency=p.pipeline.query_saliency)

    if detections is None:
        grid = encoded() if len(entry.gallery) else None
        detections = recognize_in(p, img, entry, None, grid=grid)
    # the detected things, objects with their parts (a large namespace's gallery loads parts lazily)
    objects, people = [], {}
    ids = [int(i) if i >= 0 else None for i in np.asarray(detections.concept_id).tolist()] \
        if detections.concept_id is not None else [None] * len(detections)
    listed: dict[int, Concept] | None = None
    for name, cid in dict.fromkeys(zip((str(n) for n in np.asarray(detections.name).tolist()), ids, strict=True)):
        try:
            concept = p.get(name) if name else None
        except ConceptNotFoundError:
            concept = None
        if cid is not None and (concept is None or concept.id != cid):  # renamed (or another took its name) since
            listed = {c.id: c for c in p.concepts()} if listed is None else listed
            concept = listed.get(cid)
        if concept is None:  # forgotten since it was recognized
            continue
        if concept_kind(concept) == PERSON:
            people[concept.id] = concept.name
        else:
            objects.append(concept)
    if objects and grid is None:
        grid = encoded()
    if grid is not None and detections.embedding is None and len(detections):
        detections.embedding = np.stack([p.pipeline.region_embedding(grid, xyxy=b) for b in detections.xyxy])
    refs = [[str(r) for r in c.meta.get("references", [])] for c in objects]
    return explain_figure(img, grid, detections, Gallery.from_concepts(objects), references=refs,
                          by_face=people)
