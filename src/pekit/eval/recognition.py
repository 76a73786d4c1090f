"""The recognition benchmark: one backbone pass per photo, every seed, k and threshold.

Protocol (PeKit, following MyVLM / Yo'LLaVA):

* for each seed and number of references ``k``, every concept draws ``k`` reference photos
  (nested: the ``k``-draw extends the ``k-1``-draw); a concept with fewer than ``k`` photos
  to draw from is skipped (reported);
* all concepts are in memory together: one `Gallery` per (extractor, k, seed) built from each
  concept's reference views;
* every photo that is not a reference in that trial is scored once against the gallery
  (`Pipeline.match`), giving a ``(photos x concepts)`` score matrix per trial;
* concept ``c`` is recognized in a photo iff its score ``>= threshold``. Positives of ``c``:
  its non-reference photos; negatives: the other concepts' non-reference photos plus the
  dataset's own negatives of ``c`` (MyVLM ``negatives/``, This-Is-My-Img Negative/Fake).

Thresholds are swept over the stored matrices: nothing is re-embedded. Photos are embedded
once for the whole run (cached on disk by `GridCache`, so a crashed run resumes).

Example:
    >>> from pekit.eval.datasets import load_dataset                       # doctest: +SKIP
    >>> from pekit.personalizer import build_pipeline                      # doctest: +SKIP
    >>> run = run_recognition(load_dataset("folder:../shared/data/dreambooth"),
    ...                       build_pipeline("offline"), refs=(1, 2), seeds=5)  # doctest: +SKIP
    >>> summarize(run)[0]["metrics"]["weighted"]                             # doctest: +SKIP
    {'mean': 0.83, 'std': 0.01, 'seeds': [...]}
"""

from __future__ import annotations

import dataclasses
import logging
import time
import zlib
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from pekit.errors import ImageError, InvalidInputError, NothingFoundError
from pekit.eval.cache import GridCache, file_sha1
from pekit.eval.datasets import ConceptData, Dataset
from pekit.extract.views import concept_from_views
from pekit.images import load_image
from pekit.pipeline import NO_SCORE
from pekit.retrieve.match import Gallery
from pekit.types import PatchGrid, check_threshold

log = logging.getLogger(__name__)

__all__ = ["Photo", "RecognitionRun", "Trial", "check_extractor", "check_gallery", "check_seed", "check_threshold",
           "collect_photos", "draw_references", "embed_photos", "isolate", "reference_view", "run_recognition",
           "usable_references"]

DETECTOR_ALIASES = {"grounding-dino": "hf:IDEA-Research/grounding-dino-tiny",
                    "owlv2": "hf:google/owlv2-base-patch16-ensemble"}


@dataclass
class Photo:
    """A unique photo (by content hash) and its role for each concept.

    Attributes:
        owners: concepts shown in the photo.
        negative_of: concept -> dataset split for the dataset's own negatives.
        testable: False for photos that are only reference candidates of a dataset with a
            separate test split (Yo'LLaVA ``train/``, This-Is-My-Img reference images).
        boxes: concept -> ground-truth ``(4,)`` xyxy box of that concept in this photo.
        sources: for derived photos (stress composites), the original photos they were
            made from: a trial whose references include one of them skips this photo.
    """

    path: Path
    sha1: str
    owners: frozenset[str] = frozenset()
    negative_of: dict[str, str] = field(default_factory=dict)
    testable: bool = False
    boxes: dict[str, np.ndarray] = field(default_factory=dict)
    sources: frozenset[Path] = frozenset()


@dataclass
class Trial:
    """One (extractor, k, gallery mode, seed): the concepts and the score matrix of its test photos.

    Attributes:
        gallery: ``all`` (every concept in memory together), ``single`` (each concept
            alone: no competitor to lose to) or ``"N"`` (each concept in a random
            gallery of N concepts).
        concepts: gallery concepts, the columns of ``scores``.
        skipped: concepts with fewer than ``k`` photos to draw references from.
        references: concept -> reference photo paths drawn in this trial.
        photos: ``(n,)`` indices into `RecognitionRun.photos` (the rows of ``scores``).
        scores: ``(n, C)`` final scores from `Pipeline.match` (`NO_SCORE` = no candidate).
        boxes: ``(n, C, 4)`` the box each score belongs to.
    """

    extractor: str
    k: int
    seed: int
    concepts: list[str]
    skipped: list[str]
    references: dict[str, list[str]]
    photos: np.ndarray
    scores: np.ndarray
    gallery: str = "all"
    boxes: np.ndarray | None = None


@dataclass
class RecognitionRun:
    """Everything a report needs: photos, trials (score matrices), settings and timings."""

    dataset: Dataset
    photos: list[Photo]
    trials: list[Trial]
    threshold: float
    fingerprint: str
    categories: dict[str, str]
    timing: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def groups(self) -> dict[tuple[str, int, str], list[Trial]]:
        """Trials grouped by ``(extractor, k, gallery)`` in run order."""
        out: dict[tuple[str, int, str], list[Trial]] = {}
        for t in self.trials:
            out.setdefault((t.extractor, t.k, t.gallery), []).append(t)
        return out


def collect_photos(dataset: Dataset, *, progress: bool = True) -> tuple[list[Photo], dict[Path, int]]:
    """Unique photos of a dataset (duplicates by content merge their roles) and a path index."""
    from tqdm.auto import tqdm

    photos: list[Photo] = []
    by_hash: dict[str, int] = {}
    index: dict[Path, int] = {}
    roles: list[tuple[Path, str | None, tuple[str, str] | None, bool]] = []
    for c in dataset.concepts:
        roles += [(p, c.name, None, c.holdout) for p in c.references]
        roles += [(p, c.name, None, True) for p in c.positives]
        roles += [(p, None, (c.name, split), True) for p, split in c.negatives]
    for path, owner, neg, testable in tqdm(roles, desc="hashing", unit="photo", disable=None if progress else True):
        if path not in index:
            sha = file_sha1(path)
            if sha not in by_hash:
                by_hash[sha] = len(photos)
                photos.append(Photo(path, sha))
            index[path] = by_hash[sha]
        photo = photos[index[path]]
        photo.testable = photo.testable or testable
        if owner is not None:
            concept = dataset.concept(owner)
            if path in concept.boxes:
                photo.boxes[owner] = np.asarray(concept.boxes[path], np.float32)
            if path in concept.sources:
                photo.sources = photo.sources | frozenset(concept.sources[path])
        if owner is not None:
            photo.owners = photo.owners | {owner}
        if neg is not None:
            photo.negative_of.setdefault(*neg)
    return photos, index


def showing_rows(photos: list[Photo], readable: set[int], ref_ids: Iterable[int],
                 ref_paths: set[Path] | None = None) -> list[int]:
    """Sorted indices of the readable photos that show some concept and are neither one of
    ``ref_ids`` nor made from a reference (``ref_paths``, default: the paths of ``ref_ids``)."""
    ids = set(ref_ids)
    refs = {photos[i].path for i in ids} if ref_paths is None else ref_paths
    return [i for i in sorted(readable - ids) if photos[i].testable and photos[i].owners
            and not (photos[i].sources & refs)]


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


def embed_photos(photos: list[Photo], pipeline: Any, cache: GridCache, *,
                 progress: bool = True) -> tuple[set[int], list[str]]:
    """One backbone pass per photo not yet cached (`Pipeline.encode_many`: decoding and
    passes overlap, whole photos run in parallel).

    Returns the indices of the readable photos and one warning per unreadable one.
    """
    from tqdm.auto import tqdm

    readable, warnings = set(), []
    todo = []
    for i, photo in enumerate(photos):
        grid = cache.get(photo.sha1)
        if grid is None:
            todo.append(i)
            continue
        cache.hits += 1
        readable.add(i)
        cache.coloured(photo.sha1, grid, pipeline, photo.path)  # cached before colours were kept
    bar = tqdm(total=len(todo), desc="embedding", unit="photo", disable=None if progress else True)
    with bar:
        for i, result in zip(todo, pipeline.encode_many(photos[i].path for i in todo), strict=True):
            if isinstance(result, ImageError):
                warnings.append(f"unreadable photo skipped: {result}")
            else:
                cache.misses += 1
                cache.put(photos[i].sha1, result[1])
                readable.add(i)
            bar.update()
    return readable, warnings


def _detector_name(extractor: str) -> str | None:
    if extractor in DETECTOR_ALIASES:
        return DETECTOR_ALIASES[extractor]
    if extractor.startswith("detector:"):
        return extractor[len("detector:"):]
    return None


def check_extractor(extractor: str) -> str:
    """Validate an extractor name: ``saliency``, ``box`` (the dataset's ground-truth box,
    as a user who draws one), ``full`` (the whole photo), ``grounding-dino``, ``owlv2`` or
    ``detector:<backend>``.

    >>> check_extractor("box")
    'box'
    """
    if extractor in ("saliency", "box", "full") or _detector_name(extractor):
        return extractor
    raise InvalidInputError(f"unknown extractor '{extractor}'; choose from saliency, box, full, "
                            f"{', '.join(DETECTOR_ALIASES)}, detector:<backend name>")


def check_gallery(gallery: str | int) -> str:
    """Validate a gallery mode: ``all``, ``single`` or a gallery size N >= 2.

    >>> check_gallery("single"), check_gallery(8)
    ('single', '8')
    """
    text = str(gallery).strip().lower()
    if text in ("all", "single"):
        return text
    if text.isascii() and text.isdigit() and int(text) >= 2:
        return str(int(text))
    raise InvalidInputError(f"unknown gallery mode '{gallery}'; use all, single, or a gallery size N >= 2 "
                            "(e.g. --gallery all,single,8)")


def check_seed(seed: Any, name: str = "seed") -> int:
    """A base seed: a whole number >= 0 (the same seed gives the same reference draws).

    >>> check_seed(3)
    3
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InvalidInputError(f"{name} must be a whole number >= 0 (e.g. 0, the default), got {seed!r}")
    return int(seed)


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


Plan = tuple[str, int, int, dict[str, list[int]], list[str]]  # extractor, k, seed, drawn photo ids, skipped


def _plan_trials(dataset: Dataset, photos: list[Photo], index: dict[Path, int], readable: set[int],
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


def _reference_views(plans: list[Plan], photos: list[Photo], pipeline: Any, cache: GridCache,
                     categories: dict[str, str], detectors: dict[str, Any],
                     progress: bool, *, patches: bool = False) -> tuple[dict[tuple[int, str, str], Any], int]:
    """Every reference view the plans need, once each (grids come from the cache: no backbone pass).

    Returns the views keyed by (photo index, extractor, concept) and how many fell back to
    the whole photo because no object was found. ``patches``: keep each view's object
    patches (`View.patches`, for `consistency`); dropped by default, as every view of a run
    is kept in memory.
    """
    from tqdm.auto import tqdm

    needed = sorted({(idx, e, name) for e, _, _, drawn, _ in plans for name, ids in drawn.items() for idx in ids})
    views: dict[tuple[int, str, str], Any] = {}
    fallback = 0
    for idx, e, name in tqdm(needed, desc="references", unit="view", disable=None if progress else True):
        grid = cache.get(photos[idx].sha1)
        assert grid is not None
        view, whole = isolate(pipeline, cache, photos[idx].sha1, photos[idx].path, grid, extractor=e,
                              category=categories[name], detector=detectors.get(e), box=photos[idx].boxes.get(name))
        fallback += whole
        if not patches and getattr(view, "patches", None) is not None:
            view = dataclasses.replace(view, patches=None)
        views[idx, e, name] = view
    return views, fallback


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


def _random_galleries(c: int, n: int, seed: list[int]) -> list[np.ndarray]:
    """For each of ``c`` concepts, a random gallery of ``min(n, c)`` concept indices holding it (first)."""
    rng = np.random.default_rng([*seed, n, 7])
    out = []
    for k in range(c):
        others = np.delete(np.arange(c), k)
        out.append(np.concatenate([[k], rng.choice(others, size=min(n, c) - 1, replace=False)]).astype(np.int64))
    return out


def _match_subsets(pipeline: Any, scan: Any, gallery: Gallery, subsets: list[np.ndarray],
                   image: np.ndarray | None = None, labels: list[str] | None = None,
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Each concept's score when it shares memory with its own random gallery (`_random_galleries`):
    what that user's memory gives it, the second look included (with the ``image``; every
    member is scored, so the crops are the ones that user's photo would get)."""
    scores = np.full(len(gallery), NO_SCORE, np.float32)
    boxes = np.zeros((len(gallery), 4), np.float32)
    for k, members in enumerate(subsets):
        for cand in pipeline.candidates(scan, gallery.subset(members), image=image, labels=labels):
            if cand.concept == 0 and (scores[k] == NO_SCORE or cand.score > scores[k]):
                scores[k], boxes[k] = cand.score, cand.xyxy
    found = scores != NO_SCORE
    if found.any() and hasattr(pipeline, "drawn_boxes"):
        boxes[found] = pipeline.drawn_boxes(boxes[found], scan)  # as `Pipeline.match` draws them
    return scores, boxes


def run_recognition(
    dataset: Dataset,
    pipeline: Any,
    *,
    refs: Sequence[int] = (1,),
    seeds: int = 1,
    seed: int = 0,
    extractors: Sequence[str] = ("saliency",),
    galleries: Sequence[str | int] = ("all",),
    cache: GridCache | None = None,
    threshold: float | None = None,
    progress: bool = True,
) -> RecognitionRun:
    """Run the recognition benchmark (see the module docstring) and keep every score matrix.

    Args:
        dataset: from `pekit.eval.datasets.load_dataset`.
        pipeline: a `Pipeline` (or any object with ``fingerprint``, ``config.threshold``,
            ``encode``, ``reference``, ``match``).
        refs: numbers of reference photos per concept, e.g. ``(1, 2, 3, 4)``.
        seeds: how many reference draws; ``seed``: the base seed (same seed, same draws).
        extractors: reference extractors to compare (`check_extractor`).
        galleries: gallery modes to compare (`check_gallery`): ``all`` concepts in memory
            together (the paper's protocol), each concept ``single`` (alone: no competitor
            to lose to, what a user with one dog has), or random galleries of ``N``.
        cache: grid cache (default: in memory only -- pass a `GridCache` with a folder to resume).
        threshold: the fixed reporting threshold (default: the pipeline's).

    Returns:
        `RecognitionRun`; summarize it with `pekit.eval.summary.summarize`.
    """
    from tqdm.auto import tqdm

    start = time.perf_counter()
    if seeds < 1:
        raise InvalidInputError(f"seeds must be >= 1, got {seeds}")
    seed = check_seed(seed)
    threshold = check_threshold(threshold)
    refs = sorted({int(k) for k in refs})
    if not refs or refs[0] < 1:
        raise InvalidInputError(f"refs must be positive integers, got {refs}")
    extractors = list(dict.fromkeys(check_extractor(e) for e in extractors))
    cache = cache or GridCache(None, pipeline.fingerprint, memory_items=1 << 30)
    thr = float(pipeline.config.threshold if threshold is None else threshold)
    photos, index = collect_photos(dataset, progress=progress)
    misses0 = cache.misses
    t0 = time.perf_counter()
    readable, unreadable = embed_photos(photos, pipeline, cache, progress=progress)
    warnings = list(dataset.warnings) + unreadable
    categories_seen = [c.category for c in dataset.concepts]
    if len(categories_seen) > 1 and len(set(categories_seen)) == len(categories_seen):
        warnings.append("every concept has a category of its own, so no same-category negative accuracy (another "
                        "dog for a dog) can be reported: give the classes with --categories FILE.csv "
                        "(concept,class)")
    embed_s = time.perf_counter() - t0
    categories = {c.name: c.category for c in dataset.concepts}
    detectors: dict[str, Any] = {}
    for e in extractors:
        name = _detector_name(e)
        if name:
            from pekit.registry import create

            detectors[e] = create("detector", name)

    if "box" in extractors and not any(p.boxes for p in photos):
        where = ("add a boxes.csv (subject,file,x0,y0,x1,y1) beside the concept folders"
                 if dataset.layout == "folder" else
                 f"the {dataset.layout} layout has no boxes (a folder: dataset with a boxes.csv, or the stress "
                 "split, has them)")
        raise InvalidInputError(f"extractor 'box' needs a ground-truth box for every reference photo, but "
                                f"{dataset.spec} has none: {where}; or use --extractor saliency")
    plans = _plan_trials(dataset, photos, index, readable, extractors, refs, seeds, seed)
    if not any(p[3] for p in plans):  # a k that fits no concept is skipped (warned below); none fitting, nothing to run
        raise InvalidInputError(f"--refs {','.join(map(str, refs))}: every concept has fewer usable photos than that "
                                "to draw references from, so nothing can be evaluated; use a smaller --refs")
    for k in refs:
        short = next(p[4] for p in plans if p[1] == k)
        if short:
            warnings.append(f"k={k}: skipped {len(short)} concept(s) with fewer than {k} photos: {', '.join(short)}")
    views, fallback = _reference_views(plans, photos, pipeline, cache, categories, detectors, progress)
    if fallback:
        warnings.append(f"{fallback} reference view(s): no object found; the whole photo was used")

    # -- galleries and test sets ----------------------------------------------------------
    modes = list(dict.fromkeys(check_gallery(g) for g in galleries))
    for mode in modes:
        if mode.isdigit() and int(mode) >= len(dataset.concepts):
            warnings.append(f"gallery {mode}: the dataset has {len(dataset.concepts)} concepts, so every gallery of "
                            f"{mode} holds them all (the same as 'all')")
    trials: list[Trial] = []
    galleries_: list[Gallery] = []
    subsets: list[list[np.ndarray] | None] = []
    tests: dict[int, list[int]] = {}
    for e, k, s, drawn, skipped in plans:
        names = list(drawn)
        concepts = [concept_from_views(name, [views[i, e, name] for i in drawn[name]], category=categories[name])
                    for name in names]
        gallery = Gallery.from_concepts(concepts)
        ref_ids = {i for ids in drawn.values() for i in ids}
        ref_paths = {photos[i].path for i in ref_ids}
        # a photo counts if it shows some concept (positive or other-concept negative) or is
        # a dataset negative of a concept in memory, and was not made from a reference photo
        rows = [i for i in sorted(readable - ref_ids) if photos[i].testable
                and (photos[i].owners or any(n in photos[i].negative_of for n in names))
                and not (photos[i].sources & ref_paths)]
        chosen = {n: [str(photos[i].path) for i in ids] for n, ids in drawn.items()}
        for mode in modes:
            t = len(trials)
            for i in rows:
                tests.setdefault(i, []).append(t)
            trials.append(Trial(e, k, s, names, skipped, chosen, np.asarray(rows, np.int64),
                                np.full((len(rows), len(names)), NO_SCORE, np.float32), gallery=mode,
                                boxes=np.zeros((len(rows), len(names), 4), np.float32)))
            galleries_.append(gallery)
            subsets.append(_random_galleries(len(names), int(mode), [seed, s, k]) if mode.isdigit() else None)

    # -- score every test photo once per trial (one scan per photo for all trials) ----------
    t0 = time.perf_counter()
    position = [{int(i): r for r, i in enumerate(tr.photos)} for tr in trials]
    needs_image = getattr(pipeline, "detector", None) is not None
    labels = sorted(set(categories.values())) if needs_image else None
    config = getattr(pipeline, "config", None)
    from_photo = bool(getattr(config, "second_look", False)) or getattr(config, "tiled_look", 0) >= 2
    if from_photo:  # crops and tiles are embedded from the photo; memoised across the trials that share it
        needs_image = True
        pipeline.crop_grids = {}
    looks: dict[str, int] = {}  # crop passes per gallery mode
    scored: dict[str, int] = {}  # photos scored per gallery mode
    for idx in tqdm(sorted(tests), desc="matching", unit="photo", disable=None if progress else True):
        grid = cache.get(photos[idx].sha1)
        assert grid is not None
        image = load_image(photos[idx].path) if needs_image else None
        scan = pipeline.scan(grid, image=image, labels=labels) if hasattr(pipeline, "scan") else grid
        for t in tests[idx]:
            trial, row = trials[t], position[t][idx]
            before = getattr(pipeline, "second_look_passes", 0)
            tiles_before = getattr(pipeline, "tiled_look_passes", 0)
            if trial.gallery == "all":
                scores, boxes, _ = pipeline.match(scan, galleries_[t], image=image, labels=labels)
            elif trial.gallery == "single":
                scores, boxes, _ = pipeline.match(scan, galleries_[t], image=image, labels=labels, competitive=False)
            else:
                scores, boxes = _match_subsets(pipeline, scan, galleries_[t], subsets[t] or [], image, labels)
            trial.scores[row] = scores
            assert trial.boxes is not None
            trial.boxes[row] = boxes
            crops = getattr(pipeline, "second_look_passes", 0) - before
            # one call scores every concept alone, but each of those users' photos would be tiled for it
            tiles = (getattr(pipeline, "tiled_look_passes", 0) - tiles_before) * (
                len(trial.concepts) if trial.gallery == "single" else 1)
            looks[trial.gallery] = looks.get(trial.gallery, 0) + crops + tiles
            # alone or in its own random gallery, every concept is its own user: photos x concepts calls
            scored[trial.gallery] = scored.get(trial.gallery, 0) + (1 if trial.gallery == "all"
                                                                    else len(trial.concepts))
    match_s = time.perf_counter() - t0
    if from_photo:
        pipeline.crop_grids = None
    for w in warnings[len(dataset.warnings):]:
        log.warning(w)
    timing = {"total_s": round(time.perf_counter() - start, 2), "embed_s": round(embed_s, 2),
              "match_s": round(match_s, 2), "backbone_passes": cache.misses - misses0,
              "photos": len(photos), "matches": int(sum(len(v) for v in tests.values())),
              # backbone passes a user's recognize would run per photo (1 + tiles + crops), by gallery mode
              "passes_per_image": {m: round(1 + looks.get(m, 0) / max(n, 1), 3) for m, n in scored.items()}}
    return RecognitionRun(dataset, photos, trials, thr, pipeline.fingerprint, categories, timing, warnings)
