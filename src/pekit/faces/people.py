"""Person concepts in a `Personalizer`: introduced, recognized and added to by face.

What `Personalizer.introduce` (``kind="person"``), `Personalizer.recognize` and
`Personalizer.add_view` do for a person: one face per reference photo (a box picks one of
several) gives a face vector, stored in ``Concept.meta["faces"]`` beside a backbone view of
the face region; a query photo's faces are matched by Euclidean distance within the face
tolerance (`FACE_TOLERANCE`, or the Personalizer's ``face_tolerance``). Each function takes
the `Personalizer` first and uses its face model, pipeline and memory; nothing here is
imported until a person is met.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from pekit._guards import stamped
from pekit.errors import BackboneMismatchError, InvalidInputError, NothingFoundError, PekitError
from pekit.extract.boxes import check_box_on_photo, reference_boxes
from pekit.extract.views import ADDED_VIEWS, SAME_PICTURES, with_view
from pekit.faces import (
    FACE_TOLERANCE,
    PERSON,
    FaceGallery,
    distances,
    face_reference,
    face_spec_hint,
    match_faces,
    stored_faces,
)
from pekit.images import ImageInput, describe, load_image, source_name, thumbprint
from pekit.introducing import copies, lookalike_bar, write_introduced
from pekit.types import Concept, Detections

if TYPE_CHECKING:
    from pekit.personalizer import Personalizer

# the warnings are the facade's (`introduce`, `add_view`): they keep its logger
log = logging.getLogger("pekit.personalizer")

__all__ = ["add_face", "closest_person", "face_tolerance", "face_view", "introduce_person", "recognize_faces"]


def introduce_person(p: Personalizer, name: str, refs: Sequence[ImageInput], *, category: str, context: str,
                     boxes: Sequence[Any] | None, replace: bool, start: float, old: Concept | None,
                     given: tuple[str | None, str | None]) -> Concept:
    """Person concept: face vectors in ``meta`` + backbone views of the face regions
    (``old``: the concept it replaces; ``given``: the category and context passed)."""
    model = p.faces.fingerprint
    same = name.casefold()
    stale = [c for c in p.galleries.get(p.namespace).others
             if c.meta.get("face_model", "") != model and c.name.casefold() != same]
    if stale:  # one face model per namespace: recognize compares every person's faces at once
        names = ", ".join(f"'{c.name}'" for c in stale)
        theirs = stale[0].meta.get("face_model", "")
        if not replace:
            raise BackboneMismatchError(
                f"{names} in this memory {'was' if len(stale) == 1 else 'were'} introduced with face model "
                f"'{theirs}', but this Personalizer uses '{model}': faces from different models cannot be "
                f"compared. To move to this model, re-introduce {'it' if len(stale) == 1 else 'each of them'} "
                f"with it (--replace) first; otherwise {face_spec_hint(theirs)}, or use another memory file "
                "or namespace"
            )
        log.warning("'%s' now uses face model '%s'; %s still use '%s': recognize refuses the persons of this "
                    "namespace until each is re-introduced with this model (--replace)", name, model, names, theirs)
    vectors, face_boxes, views = [], [], []
    for src, box in zip(refs, reference_boxes(refs, boxes), strict=True):
        vector, xyxy, view = face_view(p, src, box)
        vectors.append(vector)
        face_boxes.append(xyxy)
        views.append(view)
    twins = copies(name, refs, boxes, views)
    tolerance = face_tolerance(p)
    apart = [(i, j, float(np.linalg.norm(vectors[i] - vectors[j]))) for i in range(len(vectors))
             for j in range(i + 1, len(vectors))]
    for i, j, distance in apart:
        if distance > tolerance:  # further apart than one person's faces stay
            log.warning("'%s': the faces of photos %d and %d (%s, %s) are %.2f apart, more than the %.2f within "
                        "which faces are one person: are both of %s? (a --box picks the right face in a group)",
                        name, i + 1, j + 1, describe(refs[i]), describe(refs[j]), distance, tolerance, name)
    concept = Concept(
        name=name, views=np.stack([v.embedding for v in views]),
        parts=np.concatenate([v.parts for v in views]), category=category.strip() or PERSON,
        context=context.strip(), namespace=p.namespace, backbone=p.pipeline.fingerprint,
        meta={"kind": PERSON, "face_model": p.faces.fingerprint,
              "faces": [[float(x) for x in v] for v in vectors],
              "references": [source_name(s) for s in refs],
              "boxes": [[round(float(x), 1) for x in b] for b in face_boxes],
              **({SAME_PICTURES: [[i + 1, j + 1] for i, j in twins]} if twins else {}),
              "seconds": round(time.perf_counter() - start, 3)},
    )
    stored = write_introduced(p, concept, old, PERSON, *given, replace)
    try:
        alike = closest_person(p, stored.name)
    except PekitError:  # another person's record is damaged: recognize names it; the write stands
        alike = None
    if alike is not None and alike[1] >= lookalike_bar(p, stored):
        log.warning("'%s' looks much like '%s', already in memory (their faces are %.2f apart, within the %.2f "
                    "that makes one person): if they are the same person, keep one name (`pekit forget`); a "
                    "photo of either may be given either name", stored.name, alike[0], 1.0 - alike[1], tolerance)
    return stored


def closest_person(p: Personalizer, name: str) -> tuple[str, float] | None:
    """The other person (of the same face model) whose stored faces come closest to those of
    the person ``name``, as ``(their name, 1 − the face distance)`` (a person's score), or
    None: ``name`` is not a person, or nobody else is. Loads no face model."""
    persons = p.galleries.get(p.namespace).others
    me = next((c for c in persons if c.name == name), None)
    if me is None:
        return None
    model = str(me.meta.get("face_model", ""))
    mine = stored_faces(me, None, model)
    others = [c for c in persons if c.name != name and c.meta.get("face_model", "") == model]
    if not others or not mine.size:
        return None
    gallery = FaceGallery.from_concepts(others, model, mine.shape[1])
    if not len(gallery):
        return None
    nearest = distances(mine, gallery).min(axis=0)  # per other person
    j = int(np.argmin(nearest))
    return gallery.names[j], round(1.0 - float(nearest[j]), 3)


def face_view(p: Personalizer, src: ImageInput, box: np.ndarray | None, *,
              adding: bool = False) -> tuple[np.ndarray, np.ndarray, Any]:
    """A person's reference photo: its one face (in ``box``) as ``(face vector, face box,
    backbone view of the face region)``; errors name the photo and what to do in
    `introduce`, or in `add_view` (``adding``)."""
    image = load_image(src)
    if box is not None:
        check_box_on_photo(box, image.shape[1], image.shape[0], src)
    try:
        vector, xyxy = face_reference(p.faces, image, box=box)
    except (NothingFoundError, InvalidInputError) as exc:
        if isinstance(exc, NothingFoundError):
            hint = "" if adding or "no face" not in str(exc) else ", or --kind object (kind='object') for a thing"
        else:
            hint = f" to {'add' if adding else 'introduce'} ({'box' if adding else 'boxes'}= in Python)"
        raise type(exc)(f"{describe(src)}: {exc}{hint}") from exc
    view = p.pipeline.reference(p.pipeline.encode(image), box=xyxy)  # matched by face
    return vector, xyxy, dataclasses.replace(view, thumbprint=thumbprint(image))  # (copies are warned of)


def face_tolerance(p: Personalizer) -> float:
    """Face distance within which a face is a stored person (`face_tolerance`, else the model's)."""
    if p.face_tolerance is not None:
        return float(p.face_tolerance)
    return float(getattr(p.faces, "tolerance", FACE_TOLERANCE))


def recognize_faces(p: Personalizer, img: np.ndarray, persons: list[Concept]) -> Detections:
    """The stored ``persons`` whose faces are in ``img`` (``(H, W, 3) uint8``), by face distance."""
    gallery = FaceGallery.from_concepts(persons, p.faces.fingerprint, getattr(p.faces, "dim", None))
    faces = p.faces.detect(img)
    if len(faces) == 0:
        return Detections.empty()
    return match_faces(faces, p.faces.embed(img, faces.xyxy), gallery, tolerance=face_tolerance(p))


def add_face(p: Personalizer, concept: Concept, image: ImageInput, *, box: Any, mask: Any) -> Concept:
    """`add_view` of a person: one more face vector (what recognizes a person), by the
    rules of `introduce` (one face, or the one face in ``box``), and its backbone view."""
    if mask is not None:
        raise InvalidInputError("a person is found by face: pass a box (--box) to pick one, not a mask")
    model, stored = p.faces.fingerprint, concept.meta.get("face_model", "")
    if stored != model:
        raise BackboneMismatchError(
            f"'{concept.name}' was introduced with face model '{stored}', but this Personalizer uses '{model}': "
            f"faces from different models cannot be compared; {face_spec_hint(stored)}, or re-introduce "
            f"'{concept.name}' with this model (--replace)")
    vector, xyxy, view = face_view(p, image, None if box is None else reference_boxes([image], [box])[0], adding=True)
    reference = source_name(image)
    known = stored_faces(concept, len(vector), model)
    if len(known):  # as `introduce` warns of two photos whose faces are not one person's
        nearest, tolerance = float(np.linalg.norm(known - vector, axis=1).min()), face_tolerance(p)
        if nearest > tolerance:
            log.warning("'%s': the face in %s is %.2f from the nearest of its %d face(s), more than the %.2f "
                        "within which faces are one person: is it %s? Added all the same; if not, take it back "
                        "(pekit add-view --undo '%s'; Personalizer.undo_view)", concept.name, describe(image),
                        nearest, len(known), tolerance, concept.name, concept.name)

    def add(now: Concept) -> Concept:
        more = with_view(now, view, reference=reference)
        meta = dict(more.meta)
        meta["faces"] = [*now.meta.get("faces", []), [float(x) for x in vector]]
        meta[ADDED_VIEWS] = [*meta[ADDED_VIEWS][:-1], {**meta[ADDED_VIEWS][-1], "face": True}]  # undo_view drops it
        # the face's box, as `introduce` records a person's
        meta["boxes"] = [*now.meta.get("boxes", []), [round(float(x), 1) for x in xyxy]]
        return stamped(p, dataclasses.replace(more, meta=meta))

    return p.memory.modify(concept.name, add, namespace=p.namespace)
