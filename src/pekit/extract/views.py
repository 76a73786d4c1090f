"""Reference views (stage 1's output): the object's region on a patch grid -> embedding + parts.

A concept keeps, per reference photo, one *view*: the mean of the object's patch features
(the global match, as in the paper) and up to ``max_parts`` *part* prototypes (k-means of
the object's unit patch features: what patch-level verification compares a query region
with). A view may carry a *zoomed-out* twin, the same object seen n times smaller (one
more, cheaper backbone pass), whose parts form a second part group of the concept.

Everything here works on grids already computed: no backbone pass. `pekit.pipeline.Pipeline`
decides *where* the object is (user mask or box, detector + segmenter, saliency) and runs
the passes; `view_from_weights` turns that region into a `View`, and `concept_from_views`
/ `merge_parts` assemble views into a `Concept`.

Example:
    >>> from pekit.types import PatchGrid
    >>> grid = PatchGrid(np.random.default_rng(0).normal(size=(4, 4, 8)).astype(np.float32), (56, 56))
    >>> weights = np.zeros((4, 4), np.float32); weights[1:3, 1:3] = 1
    >>> view = view_from_weights(grid, weights, max_parts=2)
    >>> view.embedding.shape, view.parts.shape, view.xyxy.tolist()
    ((8,), (2, 8), [14.0, 14.0, 42.0, 42.0])
    >>> concept_from_views("bo", [view]).parts.shape
    (2, 8)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from pekit.embed.colour import colour_agreement, encode_colour, region_colour
from pekit.embed.pooling import l2_normalize, mask_weights, pool, unit_patches
from pekit.retrieve.extent import mask_xyxy
from pekit.retrieve.match import COLOURS, PART_GROUPS, concept_colours, group_agreement, part_groups
from pekit.types import Concept, PatchGrid

__all__ = ["ADDED_VIEWS", "CONSISTENCY", "SAME_PICTURES", "View", "concept_from_views", "consistency", "merge_parts",
           "summarize_parts", "tiled_image", "view_agreement", "view_from_weights", "with_colours", "with_part_groups",
           "with_view", "zoomed_view"]

#: ``Concept.meta`` key: how well the reference photos recognize one another at introduction
#: (`consistency`; only with two photos or more; `with_view` removes it, as the photos it was
#: measured on are not kept).
CONSISTENCY = "consistency"
#: ``Concept.meta`` key: one record per view added by `with_view` (its reference, the parts it
#: added per group, what it replaced), oldest first, so that `without_view` takes one back.
ADDED_VIEWS = "added_views"
#: ``Concept.meta`` key: pairs of its photos (1-based) that are the same picture (`pekit.images.same_pictures`)
SAME_PICTURES = "same_pictures"


@dataclass
class View:
    """One reference view: ``embedding (d,)``, ``parts (p, d)``, its box and patch weights.

    ``zoomed``: the same object seen smaller (`zoomed_view`), whose parts are kept as a
    second group of the concept's parts, or None. ``patches``: the object's unit patch
    features the parts summarise (kept while the views are assembled, for `consistency`;
    never stored), or None. ``colour``: the object's ``(BINS,)`` colour histogram
    (`pekit.embed.colour`) when its grid has patch colours, or None; ``achromatic``: the
    photo is black and white (`pekit.embed.colour.achromatic`). ``thumbprint``: the
    photo's `pekit.images.thumbprint` (to notice the same photo given twice; never stored),
    or None.
    """

    embedding: np.ndarray
    parts: np.ndarray
    xyxy: np.ndarray
    weights: np.ndarray
    zoomed: View | None = None
    patches: np.ndarray | None = None
    colour: np.ndarray | None = None
    thumbprint: np.ndarray | None = None
    achromatic: bool = False


def summarize_parts(patches: np.ndarray, max_parts: int, seed: int = 0) -> np.ndarray:
    """At most ``max_parts`` unit prototypes of ``(n, d)`` unit patch features (k-means)."""
    if len(patches) <= max_parts:
        return patches.astype(np.float32)
    from scipy.cluster.vq import kmeans2

    centroids, _ = kmeans2(patches.astype(np.float64), max_parts, minit="++", seed=seed, iter=10)
    return l2_normalize(centroids.astype(np.float32))


def view_from_weights(grid: PatchGrid, weights: np.ndarray, *, max_parts: int) -> View:
    """The view of the object whose ``(h, w)`` patch ``weights`` are given: the weighted
    mean of its patch features and the parts of the patches weighted above one half (the
    embedding itself when none is)."""
    embedding = pool(grid, weights[None])[0]
    patches = unit_patches(grid)[weights.reshape(-1) > 0.5]
    if len(patches) == 0:
        patches = embedding[None]
    colour = None
    if grid.colours is not None:
        colour = region_colour(grid.colours, weights > 0.5 if (weights > 0.5).any() else weights > 0)
    return View(embedding, summarize_parts(patches, max_parts), mask_xyxy(weights > 0, grid.cell_size), weights,
                patches=patches, colour=colour)


def tiled_image(rgb: np.ndarray, n: int) -> np.ndarray:
    """The photo shrunk ``n`` times per side and tiled ``n x n`` back to about its size:
    every copy of the object is n times smaller, in its own context (how a backbone that
    cannot change its input size sees the object zoomed out)."""
    from PIL import Image

    height, width = rgb.shape[:2]
    small = np.asarray(Image.fromarray(rgb).resize((max(1, width // n), max(1, height // n)),
                                                   Image.Resampling.BILINEAR))
    return np.ascontiguousarray(np.tile(small, (n, n, 1)))


def zoomed_view(view: View, zoomed: PatchGrid, *, factor: int, max_parts: int) -> View | None:
    """``view``'s object in a grid of its photo seen ``factor`` times smaller: either one
    shrunk copy (a backbone at 1/n input size) or the `tiled_image` at full size. The
    object's patch mask is tiled like the photo, pooled and summarised into parts (None if
    it covers fewer than 2 patches there)."""
    h, w = view.weights.shape
    gh, gw = zoomed.shape
    n = 1 if gh * 1.5 < h or gw * 1.5 < w else factor  # one shrunk copy, or an n x n tiling
    weights = mask_weights(zoomed, np.tile(view.weights > 0.5, (n, n)))[0]
    keep = weights.reshape(-1) > 0.5
    if keep.sum() < 2:
        return None
    parts = summarize_parts(unit_patches(zoomed)[keep], max_parts)
    return View(pool(zoomed, weights[None])[0], parts, view.xyxy, weights)


def concept_from_views(name: str, views: Sequence[Any], **fields: Any) -> Concept:
    """A `Concept` from reference views (`View`): their embeddings and parts.

    The parts of views seen smaller (``View.zoomed``) follow the others as a second part
    group (``meta["part_groups"]``, see `merge_parts`); the views' colours, when every
    view has one, are kept in ``meta["colours"]`` (`with_colours`). A view of a
    black-and-white photo (``View.achromatic``) records None there: it holds no colour
    evidence, so a colour photo of the concept is not held to its greys, and a grey
    look-alike does not agree with it. A concept whose views are all such has no colour
    term until a colour view is added (`with_view`).

    >>> from types import SimpleNamespace as V
    >>> c = concept_from_views("bo", [V(embedding=np.ones(4), parts=np.ones((2, 4)))], category="dog")
    >>> c.views.shape, c.parts.shape
    ((1, 4), (2, 4))
    """
    parts, groups = merge_parts(None, None, views)
    meta = with_colours(with_part_groups(fields.pop("meta", None) or {}, groups), views)
    return Concept(name, views=np.stack([v.embedding for v in views]), parts=parts, meta=meta, **fields)


def with_view(concept: Concept, view: View, *, reference: str) -> Concept:
    """``concept`` with one more reference view (`Personalizer.add_view`): its embedding, its
    parts in their groups (`merge_parts`), its colour (`with_colours`), ``reference`` (the
    photo, as shown to the user) and the view's box appended to ``meta``. The recorded
    `CONSISTENCY` is dropped: it was measured on the photos of the introduction, which are
    not kept, so it is now unknown. What was added is recorded in `ADDED_VIEWS`, so that
    `without_view` can take it back exactly.

    >>> from types import SimpleNamespace as V
    >>> bo = concept_from_views("bo", [V(embedding=np.ones(4), parts=np.ones((2, 4)))], meta={"consistency": 0.7})
    >>> more = with_view(bo, V(embedding=np.zeros(4), parts=np.ones((3, 4)), xyxy=np.ones(4)), reference="c.jpg")
    >>> more.views.shape, more.parts.shape, more.meta["references"], "consistency" in more.meta
    ((2, 4), (5, 4), ['c.jpg'], False)
    >>> back = without_view(more)
    >>> back.views.shape, back.parts.shape, back.meta == bo.meta
    ((1, 4), (2, 4), True)
    """
    before = part_groups(concept)
    parts, groups = merge_parts(concept.parts, before, [view])
    meta = with_part_groups(concept.meta, groups)
    if COLOURS in meta:  # one colour (or None) per view, or none (a concept stored without them stays so)
        meta = with_colours(meta, [view])
    # the parts it added to each group (full size, zoomed out), and what it dropped
    record: dict[str, Any] = {"reference": reference,
                              "parts": [n - (before[i] if i < len(before) else 0) for i, n in enumerate(groups)]}
    for key in (CONSISTENCY, COLOURS):
        if key in concept.meta and (key == CONSISTENCY or key not in meta):  # the consistency; colours it dropped
            record[key] = concept.meta[key]
    meta.pop(CONSISTENCY, None)
    meta["references"] = [*meta.get("references", []), reference]
    meta["boxes"] = [*meta.get("boxes", []), [round(float(x), 1) for x in view.xyxy]]
    meta[ADDED_VIEWS] = [*meta.get(ADDED_VIEWS, []), record]
    return replace(concept, views=np.concatenate([concept.views, view.embedding[None]]), parts=parts, meta=meta)


def without_view(concept: Concept) -> Concept:
    """``concept`` without its last view added by `with_view` (`Personalizer.undo_view`): its
    embedding, parts, colour, reference, box (and a person's face) removed, and what the
    addition dropped (the recorded `CONSISTENCY`) restored; views added earlier, and
    corrections, stay.

    Raises:
        InvalidInputError: no view was added since the concept was introduced (nothing changed).
    """
    from pekit.errors import InvalidInputError

    added = list(concept.meta.get(ADDED_VIEWS, []))
    last = added[-1] if added and isinstance(added[-1], dict) else None
    counts = last.get("parts") if last else None
    if (last is None or len(concept.views) < 2 or concept.parts is None or not isinstance(counts, list)
            or not all(isinstance(n, int) and n >= 0 for n in counts)):
        raise InvalidInputError(f"'{concept.name}' has no added view to take back (only views added with add-view "
                                "since it was introduced can be); the memory was not changed")
    groups = part_groups(concept) or [len(concept.parts)]
    if len(counts) != len(groups) or any(n > g for n, g in zip(counts, groups, strict=True)):
        raise InvalidInputError(f"the added views of '{concept.name}' do not match its parts (edited outside "
                                "pekit?); introduce it again with --replace; the memory was not changed")
    starts = np.cumsum([0, *groups])
    keep = [concept.parts[a:b - n] for a, b, n in zip(starts[:-1], starts[1:], counts, strict=True)]
    sizes = [len(k) for i, k in enumerate(keep) if i == 0 or len(k)]  # a zoomed-out group it alone made goes
    parts = np.concatenate(keep) if sum(sizes) else None  # a concept stored without parts had none
    meta = with_part_groups(concept.meta, sizes)
    colours = meta.get(COLOURS)
    if COLOURS in last:  # the view had none, so the concept lost them all: they come back
        meta[COLOURS] = last[COLOURS]
    elif isinstance(colours, list) and len(colours) == len(concept.views):
        meta[COLOURS] = colours[:-1]
    for key in ("references", "boxes", "faces"):  # (and a list it alone began goes: one stored without it)
        if key == "faces" and not last.get("face"):
            continue
        if isinstance(meta.get(key), list) and meta[key]:
            meta[key] = meta[key][:-1]
            if not meta[key]:  # it was the only one (a concept stored without its introduction's)
                del meta[key]
    if CONSISTENCY in last:
        meta[CONSISTENCY] = last[CONSISTENCY]
    meta[ADDED_VIEWS] = added[:-1]
    if not meta[ADDED_VIEWS]:
        del meta[ADDED_VIEWS]
    return replace(concept, views=concept.views[:-1], parts=parts, meta=meta)


def with_part_groups(meta: dict[str, Any], groups: list[int]) -> dict[str, Any]:
    """A copy of ``meta`` that records ``groups`` (`PART_GROUPS`) when there are several."""
    out = {k: v for k, v in meta.items() if k != PART_GROUPS}
    if len(groups) > 1:
        out[PART_GROUPS] = groups
    return out


def with_colours(meta: dict[str, Any], views: Sequence[Any]) -> dict[str, Any]:
    """A copy of a concept's ``meta`` whose `COLOURS` gain those of more ``views``
    (`encode_colour`; None for a view of a black-and-white photo, ``View.achromatic``);
    without any when the concept's views or a new colour one have none (a concept stored
    before colours were kept: its colour term then stays neutral). ``meta`` counts its
    views in ``meta["colours"]``; a concept being assembled passes ``{}``.

    >>> from types import SimpleNamespace as V
    >>> [len(t) for t in with_colours({}, [V(colour=np.full(196, 1 / 196))])["colours"]]
    [264]
    >>> with_colours({}, [V(colour=np.full(196, 1 / 196), achromatic=True)])
    {'colours': [None]}
    >>> with_colours({"colours": ["..."]}, [V(colour=None)])
    {}
    """
    out = {k: v for k, v in meta.items() if k != COLOURS}
    old = meta.get(COLOURS, [])
    grey = [bool(getattr(v, "achromatic", False)) for v in views]
    new = [None if g else getattr(v, "colour", None) for v, g in zip(views, grey, strict=True)]
    if not isinstance(old, list) or any(c is None and not g for c, g in zip(new, grey, strict=True)):
        return out
    out[COLOURS] = old + [None if c is None else encode_colour(c) for c in new]
    return out


def view_agreement(concept: Concept, view: View, *, verify_weight: float = 1.0, colour_weight: float = 0.0,
                   colour_neutral: float = 0.85) -> float | None:
    """How well a new ``view`` (`Personalizer.add_view`) is recognized by the stored ``concept``:
    the score `consistency` gives each reference view against the others, here against all of
    the concept's views (their parts in their groups, their colours). Well under the threshold,
    the photo is probably not of that concept. None when it cannot be measured (no patches of
    the view, or no parts stored).

    >>> rng = np.random.default_rng(0)
    >>> a, b = (l2_normalize(rng.normal(size=(12, 64)).astype(np.float32)) for _ in "ab")
    >>> bo = Concept("bo", a.mean(0)[None], parts=a)
    >>> round(view_agreement(bo, View(a.mean(0), a, np.zeros(4), np.ones((3, 4)), patches=a)), 3)
    1.0
    >>> view_agreement(bo, View(b.mean(0), b, np.zeros(4), np.ones((3, 4)), patches=b)) < 0.5
    True
    """
    if verify_weight > 0 and (view.patches is None or not len(view.patches) or concept.parts is None
                              or not len(concept.parts)):
        return None
    parts = None if concept.parts is None else np.asarray(concept.parts, np.float32)
    return _agreement(view, np.asarray(concept.views, np.float32), parts, part_groups(concept),
                      None if view.achromatic else view.colour, concept_colours(concept),
                      verify_weight=verify_weight, colour_weight=colour_weight, colour_neutral=colour_neutral)


def _agreement(view: View, embeddings: np.ndarray, parts: np.ndarray | None, groups: list[int], colour: Any,
               colours: np.ndarray | None, *, verify_weight: float, colour_weight: float,
               colour_neutral: float) -> float:
    """The recognition score of ``view``'s object region against reference views: their
    ``(v, d)`` embeddings (the best cosine, weighted ``1 - verify_weight``), their parts in
    ``groups`` (part agreement of the view's patches, weighted ``verify_weight``), and, when
    both have them, ``colour`` against their ``(v, BINS)`` ``colours`` (`colour_agreement`
    less ``colour_neutral``, weighted ``colour_weight``). At most 1: colour can lift the same
    picture past a whole match. What `consistency` and `view_agreement` measure."""
    score = 0.0
    if verify_weight < 1:
        score += (1 - verify_weight) * float((l2_normalize(embeddings) @ l2_normalize(view.embedding)).max())
    if verify_weight > 0 and parts is not None:
        score += verify_weight * group_agreement(np.asarray(view.patches, np.float32) @ parts.T, groups)
    if colour_weight > 0 and colour is not None and colours is not None and len(colours):
        score += colour_weight * (colour_agreement(colour, colours) - colour_neutral)
    return min(score, 1.0)


def merge_parts(parts: np.ndarray | None, groups: list[int] | None,
                views: Sequence[Any]) -> tuple[np.ndarray, list[int]]:
    """``parts`` (grouped by ``groups``: full-size first, then zoomed-out) with the parts of
    more ``views`` added to their groups: ``(parts, group sizes)``."""
    old = np.zeros((0, views[0].parts.shape[1] if views else 0), np.float32) if parts is None else parts
    sizes = list(groups) if groups else [len(old)]
    old_full, old_zoom = old[:sizes[0]], old[sizes[0]:]
    zoomed = [v.zoomed.parts for v in views if getattr(v, "zoomed", None) is not None]
    full = np.concatenate([old_full, *[v.parts for v in views]]).astype(np.float32)
    zoom = np.concatenate([old_zoom, *zoomed]).astype(np.float32)
    if len(zoom) == 0:
        return full, [len(full)]
    return np.concatenate([full, zoom]), [len(full), len(zoom)]


def consistency(views: Sequence[View], *, verify_weight: float = 1.0, colour_weight: float = 0.0,
                colour_neutral: float = 0.85) -> float | None:
    """How well a concept's reference views recognize one another: the mean, over its
    views, of the score of the view's object region against the *other* views
    (leave-one-out: what a photo like that one scores against the concept introduced
    without it). The score is the recognition score of `pekit.retrieve.candidates.region_score`
    on the view's own region: ``(1 - verify_weight)`` x the best cosine of its embedding to
    the other views + ``verify_weight`` x the part agreement of its object patches with
    their parts, + ``colour_weight`` x (the best colour agreement of its object with the
    other views' - ``colour_neutral``) when every view has a colour (the colour term of the
    score; a view of a black-and-white photo, ``View.achromatic``, neither gets nor gives
    one, as in recognition). Well below the recognition threshold, the photos do not recognize one
    another and recognition will miss the object in photos unlike each of them: more views
    from other angles help. Each view's score counts at most 1 (the colour term lifts the
    same picture, given twice, a little past it). None with fewer than two views, or (with
    ``verify_weight`` > 0) views without their patches (``View.patches``).

    >>> rng = np.random.default_rng(0)
    >>> def view(p): return View(p.mean(0), p, np.zeros(4), np.ones((3, 4)), patches=p)
    >>> a, b = (l2_normalize(rng.normal(size=(12, 64)).astype(np.float32)) for _ in "ab")
    >>> round(consistency([view(a), view(a)]), 3)      # the same object twice
    1.0
    >>> consistency([view(a), view(b)]) < 0.5          # two unrelated things
    True
    >>> consistency([view(a)]) is None
    True
    """
    if len(views) < 2:
        return None
    if verify_weight > 0 and any(v.patches is None or len(v.patches) == 0 for v in views):
        return None
    # a black-and-white photo is not compared by colour (as a query of it would not be)
    grey = [bool(getattr(v, "achromatic", False)) for v in views]
    colours = [None if g else getattr(v, "colour", None) for v, g in zip(views, grey, strict=True)]
    # a view with no colour that is not grey: stored before colours were kept, no colour term
    coloured = all(c is not None or g for c, g in zip(colours, grey, strict=True))
    scores = []
    for i, view in enumerate(views):
        others = [v for j, v in enumerate(views) if j != i]
        parts, groups = merge_parts(None, None, others) if verify_weight > 0 else (None, [])
        theirs = [c for j, c in enumerate(colours) if j != i and c is not None]
        scores.append(_agreement(view, np.stack([v.embedding for v in others]), parts, groups,
                                 colours[i] if coloured else None, np.stack(theirs) if theirs else None,
                                 verify_weight=verify_weight, colour_weight=colour_weight,
                                 colour_neutral=colour_neutral))
    return float(np.mean(scores))
