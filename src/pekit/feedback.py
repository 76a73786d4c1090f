"""Corrections, the user's own lever: "that was not Bo", and taking it back.

A correction turns the wrongly named region into *negative parts* of the concept
(``Concept.negatives``): from then on a region whose patches agree with them at least as
well as with the concept's own parts is not given its name (`pekit.retrieve.candidates`).
Each correction is recorded in ``meta["corrections"]`` with the photo, the box, the score
and how many negative rows it added, so that the last one can be taken back exactly.

`corrected` and `uncorrected` are pure steps ``Concept -> Concept``; `correct` (which finds
the region with the same look as `recognize`) and `undo_correction` store what they return,
and `add_view` stores one more positive view (`pekit.extract.views.with_view`; a person's:
`pekit.faces.people.add_face`), which `undo_view` takes back (`without_view`). Those four take
the `Personalizer` first and are what its methods of the same names run. (The simulated user
of the evaluation: `pekit.eval.feedback`.)

Example:
    >>> import numpy as np
    >>> from pekit.types import Concept
    >>> bo = Concept("Bo", views=np.ones((1, 4), np.float32))
    >>> once = corrected(bo, np.ones((3, 4), np.float32), image="park.jpg", box=[1, 2, 30, 40], score=0.63)
    >>> once.negatives.shape, once.meta["corrections"][0]["negatives"]
    ((3, 4), 3)
    >>> uncorrected(once).negatives is None
    True
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from pekit._guards import check_backbone, check_writable, low_agreement, stamped
from pekit.embed.pooling import l2_normalize
from pekit.errors import InvalidInputError, NothingFoundError
from pekit.extract.boxes import check_box_on_photo, reference_boxes
from pekit.extract.views import summarize_parts, view_agreement, with_view, without_view
from pekit.images import ImageInput, describe, load_image, source_name
from pekit.introducing import reference_views
from pekit.types import Concept, check_threshold

if TYPE_CHECKING:
    from pekit.personalizer import Personalizer

# the warnings are the facade's (`add_view`): they keep its logger
log = logging.getLogger("pekit.personalizer")

__all__ = ["CORRECTIONS", "add_view", "correct", "corrected", "uncorrected", "undo_correction", "undo_view"]

#: ``Concept.meta`` key: one record per correction, oldest first.
CORRECTIONS = "corrections"
#: the cosine from which a new view is one a concept already has (`add_view` warns)
SAME_VIEW = 0.999


def corrected(concept: Concept, negative: np.ndarray, *, image: str, box: Any, score: float) -> Concept:
    """``concept`` with ``negative`` (``(n, d)`` part prototypes of the region wrongly named
    after it) appended to its negatives, and the correction recorded (``image``: the photo as
    shown to the user; ``box`` and ``score``: the wrong detection's)."""
    stacked = negative if concept.negatives is None else np.concatenate([concept.negatives, negative])
    meta = dict(concept.meta)
    meta[CORRECTIONS] = [*meta.get(CORRECTIONS, []),
                         {"image": image, "box": [round(float(v), 1) for v in box], "score": round(float(score), 4),
                          "negatives": len(negative)}]
    return replace(concept, negatives=stacked, meta=meta)


def uncorrected(concept: Concept) -> Concept:
    """``concept`` without its last correction: that correction's negative rows and record
    removed, the earlier ones kept. A correction stored by an older pekit (without its row
    count) is taken back whole when it is the only one.

    Raises:
        InvalidInputError: no correction to undo, or several older ones that cannot be told
            apart (nothing is changed).
    """
    done = list(concept.meta.get(CORRECTIONS, []))
    stored = concept.negatives  # None, never empty (`Concept` drops an empty array)
    if not done or stored is None:
        raise InvalidInputError(f"'{concept.name}' has no correction to undo; the memory was not changed")
    rows = len(stored)
    last = done[-1].get("negatives") if isinstance(done[-1], dict) else None
    if not isinstance(last, int) or not 0 < last <= rows:
        if len(done) > 1:  # stored before corrections recorded their size: cannot split them
            raise InvalidInputError(
                f"the corrections of '{concept.name}' were stored by an older pekit without their sizes, so the "
                f"last one cannot be told apart; introduce it again with --replace (replace=True) to start "
                "over (the memory was not changed)")
        last = rows
    meta = dict(concept.meta)
    meta[CORRECTIONS] = done[:-1]
    return replace(concept, negatives=stored[:rows - last] if rows > last else None, meta=meta)


def _boxes_text(boxes: np.ndarray) -> str:
    """Boxes as a user reads (and types) them: ``40,60,420,500; 500,80,620,300``."""
    return "; ".join(",".join(str(round(float(v))) for v in b) for b in np.asarray(boxes).reshape(-1, 4))


def correct(p: Personalizer, image: ImageInput, name: str, *, box: Any = None,
            threshold: float | None = None) -> Concept:
    """`Personalizer.correct`: the region recognized as ``name`` in ``image`` stored as a
    negative view of ``name`` (see there)."""
    from pekit.faces import PERSON, concept_kind

    threshold = check_threshold(threshold)  # before the backbone pass, as recognize does
    concept = p.get(name)
    if concept_kind(concept) == PERSON:
        raise InvalidInputError(
            f"'{concept.name}' is a person, recognized by face, which a correction does not change; if someone "
            f"else is taken for {concept.name}, introduce that person too (the nearer face wins), or match "
            "faces more strictly (a face tolerance under the face model's own, e.g. 0.5 for dlib's 0.6: "
            "--face-tolerance 0.5 on recognize, ask and caption; Personalizer(face_tolerance=0.5)); the memory was "
            "not changed")
    img = load_image(image)
    if box is not None:
        box = reference_boxes([image], [box])[0]
        check_box_on_photo(box, img.shape[1], img.shape[0], image)
    check_backbone(p)
    check_writable(p, f"correct '{concept.name}'")
    entry = p.galleries.get(p.namespace)
    gallery = entry.gallery  # what `recognize` matches against
    k = next((i for i, cid in enumerate(np.asarray(gallery.ids).tolist()) if cid == concept.id), -1)
    grid = p.pipeline.encode(img, saliency=p.pipeline.query_saliency)
    scan, named = p.pipeline.named(grid, gallery, threshold=threshold, image=img, labels=entry.categories)
    hits = [c for c in named if c.concept == k]
    shown = p.pipeline.drawn_boxes(np.stack([c.xyxy for c in hits]), scan) if hits else np.zeros((0, 4))
    if not hits:
        raise NothingFoundError(
            f"'{concept.name}' was not recognized in {describe(image)}"
            f"{'' if threshold is None else f' at threshold {float(threshold):g}'}, so there is nothing to "
            "correct; the memory was not changed (shown with another --threshold or --preset? pass the same "
            "here)")
    if box is not None:
        from pekit.retrieve.nms import box_iou

        overlap = box_iou(shown, np.asarray(box)[None])[:, 0]
        if not overlap.max() > 0:
            raise NothingFoundError(
                f"no detection of '{concept.name}' in {describe(image)} overlaps the box "
                f"{[round(float(v), 1) for v in box]} (it was found at {_boxes_text(shown)}); the memory was "
                "not changed")
        pick = int(np.argmax(overlap))
    elif len(hits) > 1:
        raise InvalidInputError(
            f"'{concept.name}' was recognized {len(hits)} times in {describe(image)} ({_boxes_text(shown)}); say "
            "which one was wrong with box=[x0, y0, x1, y1] (CLI: --box X0,Y0,X1,Y1); the memory was not changed")
    else:
        pick = 0
    wrong = hits[pick]
    negative = summarize_parts(scan.unit[wrong.region.reshape(-1)], p.pipeline.config.max_parts)
    # read, change and write in one transaction: a correction or view added meanwhile stays
    return p.memory.modify(concept.name, lambda now: stamped(p, corrected(
        now, negative, image=source_name(image), box=shown[pick], score=wrong.score)), namespace=p.namespace)


def undo_correction(p: Personalizer, name: str) -> Concept:
    """`Personalizer.undo_correction`: the last correction of ``name`` taken back (`uncorrected`)."""
    concept = p.get(name)
    check_writable(p, f"undo a correction of '{concept.name}'")
    return p.memory.modify(concept.name, uncorrected, namespace=p.namespace)


def add_view(p: Personalizer, name: str, image: ImageInput, *, box: Any = None, mask: Any = None) -> Concept:
    """`Personalizer.add_view`: one more reference view of ``name`` (see there)."""
    from pekit.faces import PERSON, concept_kind

    concept = p.get(name)
    check_backbone(p)
    check_writable(p, f"add a view to '{concept.name}'")
    if concept_kind(concept) == PERSON:
        from pekit.faces.people import add_face

        return add_face(p, concept, image, box=box, mask=mask)
    view = reference_views(p, [image], category=concept.category, boxes=None if box is None else [box],
                           masks=None if mask is None else [mask], adding=True)[0]
    cfg = p.pipeline.config
    agreement = view_agreement(concept, view, verify_weight=cfg.verify_weight, colour_weight=cfg.colour_weight,
                               colour_neutral=cfg.colour_neutral)
    if agreement is not None and low_agreement(p, agreement, concept.threshold):  # as introduce warns of its photos
        log.warning("'%s': %s matches its other photos at only %.3f (recognition threshold %.2f): is it a photo "
                    "of %s? Added all the same; if it is not, take it back (pekit add-view --undo '%s'; "
                    "Personalizer.undo_view)", concept.name, describe(image), agreement,
                    cfg.threshold if concept.threshold is None else concept.threshold, concept.name, concept.name)
    reference = source_name(image)
    if _same_view(view.embedding, concept.views):  # as introduce warns of a copy among its photos
        log.warning("'%s': %s gives the view it already has from one of its photos (the same picture?); a copy "
                    "adds nothing (added all the same; Personalizer.undo_view, or pekit add-view --undo '%s', "
                    "takes it back)", concept.name, describe(image), concept.name)
    return p.memory.modify(concept.name, lambda now: stamped(p, with_view(now, view, reference=reference)),
                           namespace=p.namespace)


def _same_view(embedding: np.ndarray, views: np.ndarray) -> bool:
    """Whether ``embedding`` is one of ``views`` (cosine 0.999 or more): the same object region
    of the same picture, embedded again. A photo's path says nothing (uploads are all called
    ``blob``, two folders each hold a ``00.jpg``), and its pixels are not kept."""
    e = l2_normalize(np.ravel(embedding))
    return bool(len(views) and float(np.max(np.asarray(views, np.float32) @ e)) >= SAME_VIEW)


def undo_view(p: Personalizer, name: str) -> Concept:
    """`Personalizer.undo_view`: the last view added to ``name`` taken back (`without_view`)."""
    concept = p.get(name)
    check_writable(p, f"take back a view of '{concept.name}'")
    return p.memory.modify(concept.name, without_view, namespace=p.namespace)
