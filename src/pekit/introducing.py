"""Stage 1 of a `Personalizer`: reference photos -> views -> a stored concept.

What `Personalizer.introduce` and `Personalizer.views` run: every photo is read and checked
before the first backbone pass, each gets one pass (and the zoomed-out one the preset keeps),
its object region is chosen on that pass's grid (box, mask or saliency), and the views
become one `Concept` with its consistency, copies of one picture warned about, and a name
that neither exists (unless replacing) nor looks like a stored one. A person's photos go to
`pekit.faces.people.introduce_person`. `update` changes what is told about a concept (context,
category; no pass). Each function takes the `Personalizer` first.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from pekit._guards import check_backbone, check_writable, low_agreement
from pekit.errors import ConceptNotFoundError, InvalidInputError, NothingFoundError
from pekit.extract.boxes import (
    MIN_BOX_SIDE,
    check_box_on_grid,
    check_mask,
    check_mask_on_grid,
    reference_boxes,
    reference_masks,
)
from pekit.extract.views import CONSISTENCY, SAME_PICTURES, View, concept_from_views, consistency
from pekit.images import ImageInput, describe, image_list, load_image, same_pictures, source_name, thumbprint
from pekit.memory import MAX_CATEGORY_LENGTH, MAX_CONTEXT_LENGTH, check_new_name, clean_name, clean_prose, lookalike_key
from pekit.types import Concept

if TYPE_CHECKING:
    from pekit.personalizer import Personalizer

# the warnings are the facade's (`introduce`): they keep its logger
log = logging.getLogger("pekit.personalizer")

__all__ = ["clean_category", "clean_context", "copies", "introduce", "lookalike_bar", "most_alike",
           "reference_views", "update", "write_introduced"]


#: `views` keeps the reference photos it decoded for the passes up to this many pixels in all.
_KEPT_PIXELS = 64_000_000

#: How to pass the box a reference photo needs, added to the error of a photo in which nothing
#: was found: `introduce` (and `views`) take a box per photo, `add_view` its one box.
_BOXES_HINT = ("; a box per photo: boxes=[...] / --box x0,y0,x1,y1, one per photo, in order; or introduce it from "
               "the other photos and add this one with its box later (add_view / pekit add-view NAME PHOTO "
               "--box x0,y0,x1,y1)")
_BOX_HINT = "; its box: box=[x0, y0, x1, y1] / --box x0,y0,x1,y1"


def clean_category(text: Any) -> str:
    """A category as stored: one line, no control characters, at most `MAX_CATEGORY_LENGTH`."""
    return clean_prose(text, "category", limit=MAX_CATEGORY_LENGTH, lines=False, example="dog")


def clean_context(text: Any) -> str:
    """A context as stored (said to the LVLM): no control characters, at most `MAX_CONTEXT_LENGTH`."""
    return clean_prose(text, "context", limit=MAX_CONTEXT_LENGTH, example="my parents' dog")


def copies(name: str, refs: Sequence[ImageInput], boxes: Sequence[Any] | None, views: Sequence[Any]) -> list[
        tuple[int, int]]:
    """The pairs ``(i, j)`` of reference photos that are the same picture (or a copy of it),
    by the views' `thumbprint` s, warned of; two boxes on one photo that pick different
    parts of it (or faces of a group photo) are two views on purpose, not a copy."""
    prints = [v.thumbprint for v in views if v.thumbprint is not None]
    given = reference_boxes(refs, boxes)
    twins = [(i, j) for i, j in (same_pictures(prints) if len(prints) == len(views) else [])
             if not _other_parts(given, i, j)]
    for i, j in twins:
        log.warning("'%s': photos %d and %d (%s, %s) are the same picture (or a copy of it): a copy adds "
                    "nothing to what pekit knows of it; photos from other angles or places do", name, i + 1,
                    j + 1, describe(refs[i]), describe(refs[j]))
    return twins


def _other_parts(boxes: Sequence[Any] | None, i: int, j: int) -> bool:
    """Whether the boxes given for photos ``i`` and ``j`` (the same picture) pick different
    parts of it (IoU under 0.9): two views of one photo on purpose, not a copy."""
    if boxes is None or boxes[i] is None or boxes[j] is None:
        return False
    from pekit.retrieve.nms import box_iou

    a, b = (np.asarray(boxes[k], np.float32).reshape(1, 4) for k in (i, j))
    return float(box_iou(a, b)[0, 0]) < 0.9


def _kept(old: Concept | None, kind: str, category: str | None, context: str | None) -> tuple[str, str]:
    """The category and context of a concept introduced over ``old`` (None: a new one):
    those given, else ``old``'s; its category is not kept when it said what the concept no
    longer is ("person" for an object)."""
    from pekit.faces import PERSON, concept_kind

    kept = old.category if old is not None and not (concept_kind(old) != kind and old.category == PERSON) else ""
    return ((kept if old is not None and category is None else category or "").strip(),
            (old.context if old is not None and context is None else context or "").strip())


def reference_views(p: Personalizer, images: Sequence[ImageInput], *, category: str = "",
                    boxes: Sequence[Any] | None = None, masks: Sequence[Any] | None = None,
                    adding: bool = False) -> list[View]:
    """`Personalizer.views`; a photo in which nothing was found (no box, no mask given) raises
    `NothingFoundError` saying how to pass its box: to `introduce` (``boxes=``), or to
    `add_view` (``adding``: ``box=``)."""
    box_list = reference_boxes(images, boxes)
    mask_list = reference_masks(masks, len(images))
    for i, (box, mask) in enumerate(zip(box_list, mask_list, strict=True)):
        if box is not None and mask is not None:
            raise InvalidInputError(f"photo {i + 1} got both a box and a mask; give one (a mask outlines the "
                                    "object, a box only frames it)")
    # every photo read and checked before the first pass: a bad second photo costs no pass. The
    # decoded photos are kept for the passes up to a budget (twenty 48 MP photos would be 3 GB);
    # past it a photo is decoded again when its turn comes
    loaded: list[tuple[np.ndarray | None, Any]] = []
    kept = 0
    for src, mask in zip(images, mask_list, strict=True):
        image = load_image(src)
        if min(image.shape[:2]) < MIN_BOX_SIDE:
            raise InvalidInputError(f"{describe(src)} is {image.shape[1]} x {image.shape[0]} pixels: too small to "
                                    f"show an object; a reference photo needs at least {MIN_BOX_SIDE} pixels on "
                                    "each side (a few hundred is best)")
        checked = None if mask is None else check_mask(mask, image.shape[1], image.shape[0], src)
        kept += image.shape[0] * image.shape[1]
        loaded.append((image if kept <= _KEPT_PIXELS else None, checked))
    out = []
    for src, box, (decoded, mask) in zip(images, box_list, loaded, strict=True):
        image = decoded if decoded is not None else load_image(src)
        grid = p.pipeline.encode(image)
        if box is not None:
            check_box_on_grid(box, grid, src)
        if mask is not None:
            check_mask_on_grid(mask, grid, src)
        try:
            view = p.pipeline.reference(grid, box=box, mask=mask, image=image, category=category)
        except NothingFoundError as exc:
            hint = "" if box is not None or mask is not None else _BOX_HINT if adding else _BOXES_HINT
            raise NothingFoundError(f"{describe(src)}: {exc}{hint}") from exc
        out.append(dataclasses.replace(view, thumbprint=thumbprint(image)))
    return out


def introduce(p: Personalizer, name: str, images: ImageInput | Sequence[ImageInput], *, category: str | None = None,
              context: str | None = None, boxes: Sequence[Any] | None = None,
              masks: Sequence[Any] | None = None, replace: bool = False, kind: str = "object") -> Concept:
    """`Personalizer.introduce`: a concept from one or more reference photos, stored (see
    there for the arguments)."""
    from pekit.faces import PERSON, check_kind

    kind = check_kind(kind)
    # every check that costs nothing runs before the backbone passes
    new_category = None if category is None else clean_category(category)
    new_context = None if context is None else clean_context(context)
    if kind == PERSON and masks is not None:
        raise InvalidInputError("a person is found by face: pass boxes (--box) to pick one, not masks")
    name = check_new_name(clean_name(name))
    refs = image_list(images)
    if boxes is not None and not isinstance(boxes, (list, tuple, np.ndarray)):
        boxes = list(boxes)  # a generator is read twice below (the views, the recorded boxes)
    if len(refs) == 0:
        raise InvalidInputError(f"introduce '{name}' needs at least one reference image")
    old = _same_name(p, name)
    if old is None:
        _check_lookalike(p, name)
    if old is not None and not replace:
        from pekit.errors import DuplicateConceptError

        same = "" if old.name == name else f" (names are compared ignoring case: '{old.name}' exists)"
        raise DuplicateConceptError(
            f"a concept named '{name}' already exists{same}; pass replace=True (CLI: --replace) "
            "to overwrite it, or choose another name"
        )
    category, context = _kept(old, kind, new_category, new_context)
    check_backbone(p)
    check_writable(p, f"introduce '{name.strip()}'")  # fail before spending backbone passes
    start = time.perf_counter()
    if kind == PERSON:
        from pekit.faces.people import introduce_person

        person = introduce_person(p, name, refs, category=category, context=context, boxes=boxes,
                                  replace=replace, start=start, old=old, given=(new_category, new_context))
        return person if old is not None else _first_of_lookalikes(p, person)
    views = p.views(refs, category=category, boxes=boxes, masks=masks)
    # do the photos recognize one another? (None for one photo)
    cfg = p.pipeline.config
    agreement = consistency(views, verify_weight=cfg.verify_weight, colour_weight=cfg.colour_weight,
                            colour_neutral=cfg.colour_neutral)
    twins = copies(name, refs, boxes, views)
    concept = concept_from_views(
        name, views, category=category, context=context, namespace=p.namespace,
        backbone=p.pipeline.fingerprint,
        meta={"references": [source_name(s) for s in refs],
              "boxes": [[round(float(x), 1) for x in v.xyxy] for v in views],
              **({} if agreement is None else {CONSISTENCY: round(agreement, 3)}),
              **({SAME_PICTURES: [[i + 1, j + 1] for i, j in twins]} if twins else {}),
              "seconds": round(time.perf_counter() - start, 3)},
    )
    if agreement is not None and low_agreement(p, agreement, None):
        log.warning("'%s': its %d photos match one another at only %.3f (recognition threshold %.2f): new "
                    "photos of it that look unlike these may be missed; more photos (other angles, other "
                    "places: `add_view`, `pekit add-view`) help", name, len(views), agreement,
                    p.pipeline.config.threshold)
    stored = write_introduced(p, concept, old, kind, new_category, new_context, replace)
    alike = _closest_to(p, stored.name)
    if alike is not None and alike[1] >= lookalike_bar(p, stored):
        log.warning("'%s' looks much like '%s', already in memory (their parts agree at %.3f; recognition "
                    "threshold %.2f): a %s like them that you never introduced may be named either; when one "
                    "is, a correction (`correct`, `pekit correct PHOTO --not NAME`) keeps it from happening again",
                    stored.name, alike[0], alike[1], cfg.threshold, stored.category or "thing")
    return stored if old is not None else _first_of_lookalikes(p, stored)


def most_alike(p: Personalizer, name: str) -> tuple[str, float] | None:
    """`Personalizer.most_alike`: the other object in memory whose reference views ``name``'s
    parts agree with best, and how well (`pekit.retrieve.match.closest_parts`); for a person,
    the other person whose faces come closest, as 1 − the face distance (a person's score);
    or None."""
    return _closest_to(p, p.get(name).name)


def lookalike_bar(p: Personalizer, concept: Concept) -> float:
    """The `most_alike` agreement at which two things may take each other's name (and
    `introduce` warns): the recognition threshold, or for a person 1 − the face tolerance
    (a person's score is 1 − the face distance)."""
    from pekit.faces import PERSON, concept_kind

    if concept_kind(concept) == PERSON:
        from pekit.faces.people import face_tolerance

        return 1.0 - face_tolerance(p)
    return float(p.pipeline.config.threshold)


def _closest_to(p: Personalizer, name: str) -> tuple[str, float] | None:
    """`most_alike` of the concept stored under exactly ``name``."""
    from pekit.retrieve.match import closest_parts

    gallery = p.gallery()
    if name not in gallery.names:  # a person (matched by face, not by parts), or forgotten meanwhile
        from pekit.faces.people import closest_person

        return closest_person(p, name)
    agreement, j = closest_parts(gallery, gallery.names.index(name), limit=2 * p.pipeline.config.shortlist)
    return None if j < 0 else (gallery.names[j], round(float(agreement), 3))


def write_introduced(p: Personalizer, concept: Concept, old: Concept | None, kind: str, category: str | None,
                     context: str | None, replace: bool) -> Concept:
    """Store an introduced concept. Over an existing one, the category and context not
    given (None) are the stored concept's *as the write happens*: an `update` made during
    the backbone passes is kept, not undone by what was read before them."""
    if old is None or not replace:
        return p.memory.add(concept, replace=replace)

    from pekit.faces import PERSON

    dropped: list[str] = []

    def keep(now: Concept) -> Concept:
        cat, ctx = _kept(now, kind, category, context)
        dropped[:] = _dropped(now)  # as the write finds it
        return dataclasses.replace(concept, category=cat or (PERSON if kind == PERSON else ""), context=ctx)

    try:  # replaced whole, as add(replace=True) does: its stored photos too
        stored = p.memory.modify(old.name, keep, namespace=p.namespace, drop_images=True)
    except ConceptNotFoundError:  # forgotten meanwhile: what was read before the passes is kept
        return p.memory.add(concept, replace=True)
    if dropped:  # a new start, said: the user may have wanted only a photo taken back (add-view --undo)
        log.warning("'%s' was replaced from the photos given: its %s are gone with the old views", old.name,
                    " and ".join(dropped))
    return stored


def _dropped(concept: Concept) -> list[str]:
    """What replacing ``concept`` drops beside its views: its corrections, photos added since."""
    from pekit.extract.views import ADDED_VIEWS
    from pekit.feedback import CORRECTIONS

    return [f"{len(concept.meta[key])} {what}" for key, what in ((CORRECTIONS, "correction(s)"),
                                                                  (ADDED_VIEWS, "photo(s) added with add-view"))
            if isinstance(concept.meta.get(key), list) and concept.meta[key]]


def _same_name(p: Personalizer, name: str) -> Concept | None:
    """The stored concept whose name equals ``name`` ignoring case and normalisation, or None."""
    try:
        return p.get(name)  # the store compares names as it stores them (`name_key`)
    except ConceptNotFoundError:
        return None


def _check_lookalike(p: Personalizer, name: str, *, renamed: str | None = None) -> None:
    """Refuse a new name that looks like a stored one (full-width letters, compatibility
    forms, runs of spaces: ``'Ｂｏ'`` beside ``'Bo'``): the two could not be told apart on a
    photo. ``renamed``: the stored concept that is to take ``name`` (it may look like it)."""
    from pekit.memory import name_key

    key = lookalike_key(name)
    skip = {name_key(name), name_key(renamed or "")}  # itself; the same name, which the store refuses in its words
    names = getattr(p.memory, "names", None)  # both stores have it; a store of one's own may not
    listed = names(namespace=p.namespace) if names is not None else [
        c.name for c in p.memory.summaries(namespace=p.namespace)]
    for stored in listed:
        if lookalike_key(stored) == key and (renamed is None or name_key(stored) not in skip):
            from pekit.errors import DuplicateConceptError

            raise DuplicateConceptError(f"'{name}' looks the same as the stored concept '{stored}' (the same "
                                        "letters in another form); use that name, or choose another one")


def _first_of_lookalikes(p: Personalizer, stored: Concept) -> Concept:
    """``stored``, a new name just written, unless a look-alike of it was written meanwhile
    by another process (two workers introducing 'Bo' and 'Ｂｏ' at once both pass
    `_check_lookalike` before their passes): the later of the two, by id, takes itself
    back and raises `DuplicateConceptError`, so one of them is stored, whichever runs
    this check first."""
    key = lookalike_key(stored.name)
    earlier = [name for cid, (name, _) in sorted(p.memory.stamps(namespace=p.namespace).items())
               if cid < stored.id and lookalike_key(name) == key]
    if not earlier:
        return stored
    from pekit.errors import DuplicateConceptError

    p.memory.remove(stored.name, namespace=p.namespace)
    raise DuplicateConceptError(f"'{stored.name}' looks the same as '{earlier[0]}', which was introduced meanwhile "
                                "(by another process or thread); use that name, or choose another one (the memory "
                                f"keeps '{earlier[0]}' only)")


def update(p: Personalizer, name: str, *, context: str | None = None, category: str | None = None,
           rename: str | None = None) -> Concept:
    """`Personalizer.update`: ``name``'s context, category or name changed (None keeps one) in
    one read-and-write transaction; nothing is written when nothing changes."""
    from pekit.memory import clean_name

    changes: dict[str, Any] = {}
    if rename is not None:
        changes["name"] = clean_name(rename)
    if context is not None:
        changes["context"] = clean_context(context)
    if category is not None:
        changes["category"] = clean_category(category)
    concept = p.get(name)
    if all(getattr(concept, k) == v for k, v in changes.items()):
        return concept
    check_writable(p, f"change '{concept.name}'")
    if "name" in changes and lookalike_key(changes["name"]) != lookalike_key(concept.name):
        _check_lookalike(p, changes["name"], renamed=concept.name)  # 'Max' renamed 'Ｂｏ' beside 'Bo': refused
    return p.memory.modify(concept.name, lambda now: dataclasses.replace(now, **changes), namespace=p.namespace)
