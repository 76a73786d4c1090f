"""Reference photos and their views: which photos a concept is introduced with, and how.

`draw_references` draws a concept's ``k`` reference photos for a seed (nested in ``k``);
`reference_view` / `isolate` make one reference view under an extractor (`check_extractor`)
from a cached grid, as `Personalizer.introduce` makes it; `plan_trials` and `plan_views` do
both for every (extractor, k, seed) of a run. Shared by the recognition runner, the
feedback simulation and the answering runners (VQA, captions).

Example:
    >>> from pathlib import Path
    >>> from pekit.eval.datasets import ConceptData
    >>> draw_references(ConceptData("bo", "dog", (Path("a.jpg"), Path("b.jpg"))), 3, 0) is None
    True
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Callable, Hashable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from pekit.errors import InvalidInputError, NothingFoundError
from pekit.eval.cache import GridCache
from pekit.eval.datasets import ConceptData, Dataset
from pekit.eval.photos import Photo
from pekit.extract.boxes import check_box_on_photo
from pekit.images import load_image
from pekit.types import PatchGrid, whole_number

__all__ = ["DETECTOR_ALIASES", "Plan", "check_extractor", "check_seed", "detector_name", "draw_references", "isolate",
           "plan_trials", "plan_views", "reference_detector", "reference_view", "usable_references"]

DETECTOR_ALIASES = {"grounding-dino": "hf:IDEA-Research/grounding-dino-tiny",
                    "owlv2": "hf:google/owlv2-base-patch16-ensemble"}


def usable_references(concept: ConceptData, picture: Callable[[Path], Hashable | None]) -> ConceptData:
    """``concept`` with the reference photos that can be drawn: readable, and one path per
    picture (``picture(path)``: the photo's content id, None when it cannot be read), so a
    copy of a photo never counts as a second reference.

    >>> c = ConceptData("bo", "dog", (Path("a.jpg"), Path("copy.jpg"), Path("b.jpg"), Path("bad.jpg")))
    >>> ids = {"a.jpg": 1, "copy.jpg": 1, "b.jpg": 2}  # copy.jpg is a.jpg; bad.jpg cannot be read
    >>> [p.name for p in usable_references(c, lambda p: ids.get(p.name)).references]
    ['a.jpg', 'b.jpg']
    """
    seen: set[Hashable] = set()
    kept = []
    for path in concept.references:
        key = picture(path)
        if key is None or key in seen:
            continue
        seen.add(key)
        kept.append(path)
    return ConceptData(concept.name, concept.category, tuple(kept))


def draw_references(concept: ConceptData, k: int, seed: int, base_seed: int = 0) -> list[Path] | None:
    """``k`` reference photos of a concept for one seed (nested in ``k``), or ``None`` if too few.

    >>> c = ConceptData("bo", "dog", tuple(Path(f"{i}.jpg") for i in range(5)))
    >>> a, b = draw_references(c, 2, 0), draw_references(c, 3, 0)
    >>> b[:2] == a, draw_references(c, 6, 0)
    (True, None)
    """
    if k < 1:
        raise InvalidInputError(f"the number of references must be >= 1, got {k}")
    if len(concept.references) < k:
        return None
    rng = np.random.default_rng([base_seed, seed, zlib.crc32(concept.name.encode())])
    order = rng.permutation(len(concept.references))
    return [concept.references[i] for i in order[:k]]



def check_seed(seed: Any, name: str = "seed") -> int:
    """A base seed: a whole number >= 0 (the same seed gives the same reference draws).

    >>> check_seed(3)
    3
    """
    if not whole_number(seed) or seed < 0:
        raise InvalidInputError(f"{name} must be a whole number >= 0 (e.g. 0, the default), got {seed!r}")
    return int(seed)


def detector_name(extractor: str) -> str | None:
    """The detector backend an extractor names (`DETECTOR_ALIASES` or ``detector:<backend>``), else None.

    >>> detector_name("owlv2"), detector_name("saliency")
    ('hf:google/owlv2-base-patch16-ensemble', None)
    """
    if extractor in DETECTOR_ALIASES:
        return DETECTOR_ALIASES[extractor]
    if extractor.startswith("detector:"):
        return extractor[len("detector:"):]
    return None


def reference_detector(name: str, pipeline: Any) -> Any:
    """The detector ``name`` that a detector extractor draws references with, run where the
    pipeline's detector or torch backbone runs (a GPU when the preset put them there), else
    on ``"auto"``'s device."""
    from pekit.registry import create

    devices = [getattr(getattr(pipeline, part, None), "device", None) for part in ("detector", "backbone")]
    return create("detector", name, device=next((str(d) for d in devices if d is not None), "auto"))


def check_extractor(extractor: str) -> str:
    """Validate an extractor name: ``saliency``, ``box`` (the dataset's ground-truth box,
    as a user who draws one), ``full`` (the whole photo), ``grounding-dino``, ``owlv2`` or
    ``detector:<backend>``.

    >>> check_extractor("box")
    'box'
    """
    if extractor in ("saliency", "box", "full") or detector_name(extractor):
        return extractor
    raise InvalidInputError(f"unknown extractor '{extractor}'; choose from saliency, box, full, "
                            f"{', '.join(DETECTOR_ALIASES)}, detector:<backend name>")


def reference_view(pipeline: Any, grid: PatchGrid, *, extractor: str = "saliency", image: np.ndarray | None = None,
                   category: str = "", detector: Any = None, box: np.ndarray | None = None,
                   zoomed: PatchGrid | None = None) -> Any:
    """The reference view of one photo under an extractor (no extra backbone pass).

    ``saliency``: the pipeline's default isolation, as `Personalizer.introduce` makes it (the
    saliency map, or the preset's detector from ``category`` when it has one); ``box``: the
    ground-truth ``box`` of the photo (refined by saliency, as a user's drawn box is);
    ``full``: the whole photo as the region; detector extractors: the detector's best box
    for ``category``. ``image``: the photo, given to `Pipeline.reference` as `introduce`
    gives it (the view's colours; a black-and-white one's view then takes no part in colour;
    a given box is not segmented: the preset's segmenter only follows its detector).
    ``zoomed``: the photo's `Pipeline.zoom_out_grid` when the pipeline keeps zoomed-out views.
    """
    more: dict[str, Any] = {} if zoomed is None else {"zoomed": zoomed}
    if image is not None:  # as `introduce` gives it: a black-and-white photo's view then carries no colour
        more["image"] = image
    if extractor == "saliency":  # the library's default: with the preset's own detector, when it has one
        if getattr(pipeline, "detector", None) is not None and image is not None and category:
            more.update(category=category)
        return pipeline.reference(grid, **more)
    if extractor == "box":
        if box is None:
            raise InvalidInputError("extractor 'box' needs a ground-truth box for every reference photo "
                                    "(a boxes.csv beside the dataset's concept folders)")
        return pipeline.reference(grid, box=box, **more)
    if extractor == "full":
        return pipeline.reference(grid, mask=np.ones(grid.shape, bool), **more)
    if detector is None or image is None:
        raise InvalidInputError(f"extractor '{extractor}' needs a detector and the image")
    if not category:
        raise InvalidInputError(f"extractor '{extractor}' needs each concept's category (--categories file.csv)")
    found = detector.detect(image, [category])
    if len(found) == 0:
        raise NothingFoundError(f"the detector found no '{category}'")
    return pipeline.reference(grid, box=found.xyxy[int(np.argmax(found.score))], **more)


def isolate(pipeline: Any, cache: GridCache, sha1: str, path: Path, grid: PatchGrid, *, extractor: str = "saliency",
            category: str = "", detector: Any = None, box: np.ndarray | None = None) -> tuple[Any, bool]:
    """One reference photo's view (`reference_view`) with what the pipeline needs beside its
    grid: the photo itself (for a detector and its segmenter, the view's colour and whether it
    is black and white), and its zoomed-out pass (cached beside the grid) when the pipeline
    keeps zoomed-out views. Returns
    ``(view, whole)``: ``whole`` when no object was found and the whole photo stands in."""
    zoom = int(getattr(getattr(pipeline, "config", None), "reference_zoom_out", 0) or 0)
    image = load_image(path)  # what `introduce` has: the detector's input, the zoomed-out pass, grey or not
    zoomed = None
    if zoom >= 2 and image is not None:  # the zoomed-out pass, cached beside the photo's grid
        zoomed = cache.grid(f"{sha1}-zoom{zoom}{pipeline.zoom_out_mode}", partial(pipeline.zoom_out_grid, image))
    try:
        return reference_view(pipeline, grid, extractor=extractor, image=image, category=category, detector=detector,
                              box=box, zoomed=zoomed), False
    except NothingFoundError:
        return reference_view(pipeline, grid, extractor="full", image=image, zoomed=zoomed), True


Plan = tuple[str, int, int, dict[str, list[int]], list[str]]  # extractor, k, seed, drawn photo ids, skipped


def plan_trials(dataset: Dataset, photos: list[Photo], index: dict[Path, int], readable: set[int],
                extractors: list[str], refs: list[int], seeds: int, base_seed: int) -> list[Plan]:
    """The reference photos of every concept for every (extractor, k, seed)."""
    plans: list[Plan] = []
    for e in extractors:
        for k in refs:
            for s in range(seeds):
                drawn: dict[str, list[int]] = {}
                skipped = []
                for c in dataset.concepts:
                    usable = usable_references(c, lambda p: index[p] if index[p] in readable else None)
                    if e == "box":  # only photos with a ground-truth box can be box references
                        usable = ConceptData(c.name, c.category, tuple(p for p in usable.references
                                                                        if c.name in photos[index[p]].boxes))
                    paths = draw_references(usable, k, s, base_seed)
                    if paths is None:
                        skipped.append(c.name)
                    else:
                        drawn[c.name] = [index[p] for p in paths]
                plans.append((e, k, s, drawn, skipped))
    return plans


def plan_views(plans: list[Plan], photos: list[Photo], pipeline: Any, cache: GridCache,
               categories: dict[str, str], detectors: dict[str, Any],
               progress: bool, *, patches: bool = False,
               warnings: list[str] | None = None) -> tuple[dict[tuple[int, str, str], Any], int]:
    """Every reference view the plans need, once each (grids come from the cache: no backbone pass).

    Returns the views keyed by (photo index, extractor, concept) and how many fell back to
    the whole photo because no object was found. ``patches``: keep each view's object
    patches (`View.patches`, for `consistency`); dropped by default, as every view of a run
    is kept in memory. ``warnings``: gets a line for each ``boxes.csv`` box that does not
    lie on its photo (a typo there: that view falls back to the whole photo).
    """
    from tqdm.auto import tqdm

    needed = sorted({(idx, e, name) for e, _, _, drawn, _ in plans for name, ids in drawn.items() for idx in ids})
    views: dict[tuple[int, str, str], Any] = {}
    fallback = 0
    for idx, e, name in tqdm(needed, desc="references", unit="view", disable=None if progress else True):
        grid = cache.get(photos[idx].sha1)
        assert grid is not None
        box = photos[idx].boxes.get(name)
        if e == "box" and box is not None and warnings is not None:
            try:
                check_box_on_photo(box, *grid.image_size, photos[idx].path)
            except InvalidInputError as exc:
                warnings.append(f"boxes.csv, '{name}': {exc}")
        view, whole = isolate(pipeline, cache, photos[idx].sha1, photos[idx].path, grid, extractor=e,
                              category=categories[name], detector=detectors.get(e), box=photos[idx].boxes.get(name))
        fallback += whole
        if not patches and getattr(view, "patches", None) is not None:
            view = dataclasses.replace(view, patches=None)
        views[idx, e, name] = view
    return views, fallback
