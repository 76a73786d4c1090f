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

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pekit.errors import InvalidInputError
from pekit.eval.cache import GridCache
from pekit.eval.datasets import Dataset
from pekit.eval.photos import Photo, PhotoScans, collect_photos, crop_memo, embed_photos, has_detector, needs_photo
from pekit.eval.photos import showing_rows as showing_rows
from pekit.eval.references import DETECTOR_ALIASES as DETECTOR_ALIASES
from pekit.eval.references import Plan as Plan
from pekit.eval.references import (
    check_extractor,
    check_seed,
    detector_name,
    draw_references,
    isolate,
    plan_trials,
    plan_views,
    reference_detector,
    reference_view,
    usable_references,
)
from pekit.extract.views import concept_from_views
from pekit.images import load_image
from pekit.pipeline import NO_SCORE
from pekit.retrieve.match import Gallery
from pekit.types import check_threshold

log = logging.getLogger(__name__)

__all__ = ["STRANGERS", "Photo", "RecognitionRun", "Trial", "check_extractor", "check_gallery", "check_seed",
           "check_threshold", "collect_photos", "draw_references", "embed_photos", "isolate", "reference_view",
           "run_recognition", "usable_references"]

# the photos and reference views live in pekit.eval.photos / pekit.eval.references; every
# public name is still importable from here


@dataclass
class Trial:
    """One (extractor, k, gallery mode, seed): the concepts and the score matrix of its test photos.

    Attributes:
        gallery: ``all`` (every concept in memory together), ``single`` (each concept
            alone: no competitor to lose to), ``strangers`` (every concept but the ones the
            photo shows: the photo is of something never introduced, so any name is wrong;
            those columns stay `NO_SCORE`) or ``"N"`` (each concept in a random gallery of N
            concepts).
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


#: gallery mode: every concept in memory except the ones the photo shows (open-set: any name is wrong)
STRANGERS = "strangers"


def check_gallery(gallery: str | int) -> str:
    """Validate a gallery mode: ``all``, ``single``, ``strangers`` or a gallery size N >= 2.

    >>> check_gallery("single"), check_gallery(8), check_gallery("Strangers")
    ('single', '8', 'strangers')
    """
    text = str(gallery).strip().lower()
    if text in ("all", "single", STRANGERS):
        return text
    if text.isascii() and text.isdigit() and int(text) >= 2:
        return str(int(text))
    raise InvalidInputError(f"unknown gallery mode '{gallery}'; use all, single, strangers, or a gallery size "
                            "N >= 2 (e.g. --gallery all,single,strangers,8)")


def _random_galleries(c: int, n: int, seed: list[int]) -> list[np.ndarray]:
    """For each of ``c`` concepts, a random gallery of ``min(n, c)`` concept indices holding it (first)."""
    rng = np.random.default_rng([*seed, n, 7])
    out = []
    for k in range(c):
        others = np.delete(np.arange(c), k)
        out.append(np.concatenate([[k], rng.choice(others, size=min(n, c) - 1, replace=False)]).astype(np.int64))
    return out


def _match_subsets(pipeline: Any, scans: PhotoScans, cats: list[str], gallery: Gallery,
                   subsets: list[np.ndarray], image: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Each concept's score when it shares memory with its own gallery (``subsets[k]``, the
    concept first: `_random_galleries`, or itself alone): what that user's memory gives it,
    the second look included (with the ``image``; every member is scored, so the crops are
    the ones that user's photo would get). ``scans``: the photo's scan for each memory, whose
    detector (if any) is prompted with its members' categories (``cats``: each column's)."""
    scores = np.full(len(gallery), NO_SCORE, np.float32)
    boxes = np.zeros((len(gallery), 4), np.float32)
    scan = None
    for k, members in enumerate(subsets):
        scan, labels = scans(cats[int(j)] for j in members)
        for cand in pipeline.candidates(scan, gallery.subset(members), image=image, labels=labels):
            if cand.concept == 0 and (scores[k] == NO_SCORE or cand.score > scores[k]):
                scores[k], boxes[k] = cand.score, cand.xyxy
    found = scores != NO_SCORE
    if found.any() and hasattr(pipeline, "drawn_boxes"):
        boxes[found] = pipeline.drawn_boxes(boxes[found], scan)  # as `Pipeline.match` draws them (one grid)
    return scores, boxes


def _match_strangers(pipeline: Any, scans: PhotoScans, cats: list[str], gallery: Gallery, names: list[str],
                     owners: Any, image: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Scores and boxes of a photo against every concept of ``gallery`` but the ones it shows
    (``owners``): one user's memory that holds everything except what is in the photo. The
    owners' columns stay `NO_SCORE`."""
    scores = np.full(len(gallery), NO_SCORE, np.float32)
    boxes = np.zeros((len(gallery), 4), np.float32)
    members = np.asarray([j for j, name in enumerate(names) if name not in owners], np.int64)
    if members.size:
        scan, labels = scans(cats[int(j)] for j in members)
        got, where, _ = pipeline.match(scan, gallery.subset(members), image=image, labels=labels)
        scores[members], boxes[members] = got, where
    return scores, boxes


def _shared_references(dataset: Dataset, photos: list[Photo], index: dict[Path, int]) -> list[str]:
    """A warning for photos (the same bytes) that are reference candidates of several concepts:
    a photo copied into the wrong folder is then a reference of one and a positive of the other."""
    holders: dict[int, list[str]] = {}
    for c in dataset.concepts:
        for p in c.references:
            names = holders.setdefault(index[p], [])
            if c.name not in names:
                names.append(c.name)
    shared = [(photos[i].path, names) for i, names in holders.items() if len(names) > 1]
    if not shared:
        return []
    shown = "; ".join(f"{path.name} ({', '.join(names)})" for path, names in shared[:3])
    return [f"{len(shared)} photo(s) are in the folders of several concepts (the same file content), so each counts "
            f"as a photo of all of them: {shown}{' ...' if len(shared) > 3 else ''}; remove the wrong copies"]


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
            to lose to, what a user with one dog has), ``strangers`` (every concept but the
            photo's own: how often something never introduced gets one of your names), or
            random galleries of ``N``.
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
    warnings = list(dataset.warnings) + unreadable + _shared_references(dataset, photos, index)
    categories_seen = [c.category for c in dataset.concepts]
    if len(categories_seen) > 1 and len(set(categories_seen)) == len(categories_seen):
        warnings.append("every concept has a category of its own, so no same-category negative accuracy (another "
                        "dog for a dog) can be reported: give the classes with --categories FILE.csv "
                        "(concept,class)")
    embed_s = time.perf_counter() - t0
    categories = {c.name: c.category for c in dataset.concepts}
    detectors: dict[str, Any] = {}
    for e in extractors:
        name = detector_name(e)
        if name:
            detectors[e] = reference_detector(name, pipeline)

    if "box" in extractors and not any(p.boxes for p in photos):
        where = ("add a boxes.csv (subject,file,x0,y0,x1,y1) beside the concept folders"
                 if dataset.layout == "folder" else
                 f"the {dataset.layout} layout has no boxes (a folder: dataset with a boxes.csv, or the stress "
                 "split, has them)")
        raise InvalidInputError(f"extractor 'box' needs a ground-truth box for every reference photo, but "
                                f"{dataset.spec} has none: {where}; or use --extractor saliency")
    plans = plan_trials(dataset, photos, index, readable, extractors, refs, seeds, seed)
    if not any(p[3] for p in plans):  # a k that fits no concept is skipped (warned below); none fitting, nothing to run
        raise InvalidInputError(f"--refs {','.join(map(str, refs))}: every concept has fewer usable photos than that "
                                "to draw references from, so nothing can be evaluated; use a smaller --refs")
    for k in refs:
        said: set[tuple[str, ...]] = set()  # the same concepts skipped by two extractors: said once
        for e in extractors:
            short = next(p[4] for p in plans if p[1] == k and p[0] == e)
            if not short or (e != "box" and tuple(short) in said):
                continue
            if e != "box":
                said.add(tuple(short))
            where = f"k={k}" + (f", extractor {e}" if e == "box" and len(extractors) > 1 else "")
            photos_ = "photos with a box in boxes.csv" if e == "box" else "photos"
            warnings.append(f"{where}: skipped {len(short)} concept(s) with fewer than {k} {photos_}: "
                            f"{', '.join(short)}")
    if "box" in extractors and len(extractors) > 1:
        unboxed = sorted({c.name for c in dataset.concepts for p in c.references
                          if c.name not in photos[index[p]].boxes})
        if unboxed:
            warnings.append(f"extractor box draws references only from photos with a box, so where a concept has "
                            f"photos without one ({', '.join(unboxed[:5])}{' ...' if len(unboxed) > 5 else ''}), "
                            "its box rows compare other draws than the other extractors' rows")
    views, fallback = plan_views(plans, photos, pipeline, cache, categories, detectors, progress, warnings=warnings)
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
                and not (photos[i].sources & ref_paths)] if names else []  # no concept in memory: no test
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
    for k in refs:  # concepts drawn, but every photo of theirs a reference: a row of n/a, said why
        mine = [t for t in trials if t.k == k]
        if any(t.concepts for t in mine) and not any(len(t.photos) for t in mine):
            warnings.append(f"k={k}: no photo is left to test (the concepts' photos are all drawn as references), "
                            "so nothing was measured at this k; use a smaller --refs")

    # -- score every test photo once per trial (one scan per photo, per category set with a detector) --
    t0 = time.perf_counter()
    position = [{int(i): r for r, i in enumerate(tr.photos)} for tr in trials]
    # a detector is prompted with the categories of the memory it serves: all of them, one
    # concept's alone, a random gallery's, or every one but the photo's own concepts' (each
    # user's photo scanned for its own memory)
    detector = has_detector(pipeline)
    needs_image = needs_photo(pipeline)
    looks: dict[str, int] = {}  # crop passes per gallery mode
    scored: dict[str, int] = {}  # photos scored per gallery mode
    with crop_memo(pipeline):  # a crop or tile embedded once for every trial that shares the photo
        for idx in tqdm(sorted(tests), desc="matching", unit="photo", disable=None if progress else True):
            grid = cache.get(photos[idx].sha1)
            assert grid is not None
            image = load_image(photos[idx].path) if needs_image else None
            scan_of = PhotoScans(pipeline, grid, image)
            for t in tests[idx]:
                trial, row = trials[t], position[t][idx]
                before = getattr(pipeline, "second_look_passes", 0)
                tiles_before = getattr(pipeline, "tiled_look_passes", 0)
                cats = [categories[name] for name in trial.concepts]  # the gallery's columns' categories
                if trial.gallery == "all":
                    scan, labels = scan_of(cats)
                    scores, boxes, _ = pipeline.match(scan, galleries_[t], image=image, labels=labels)
                elif trial.gallery == STRANGERS:
                    scores, boxes = _match_strangers(pipeline, scan_of, cats, galleries_[t], trial.concepts,
                                                     photos[idx].owners, image)
                elif trial.gallery == "single" and not detector:  # one call scores each concept alone
                    scan, _ = scan_of(cats)
                    scores, boxes, _ = pipeline.match(scan, galleries_[t], image=image, competitive=False)
                else:
                    alone = [np.array([j]) for j in range(len(cats))]
                    scores, boxes = _match_subsets(pipeline, scan_of, cats, galleries_[t],
                                                   alone if trial.gallery == "single" else subsets[t] or [], image)
                trial.scores[row] = scores
                assert trial.boxes is not None
                trial.boxes[row] = boxes
                crops = getattr(pipeline, "second_look_passes", 0) - before
                # one call scores every concept alone, but each of those users' photos would be tiled for it
                tiles = (getattr(pipeline, "tiled_look_passes", 0) - tiles_before) * (
                    len(trial.concepts) if trial.gallery == "single" and not detector else 1)
                looks[trial.gallery] = looks.get(trial.gallery, 0) + crops + tiles
                # alone or in its own random gallery, every concept is its own user: photos x concepts calls
                scored[trial.gallery] = scored.get(trial.gallery, 0) + (1 if trial.gallery in ("all", STRANGERS)
                                                                        else len(trial.concepts))
    match_s = time.perf_counter() - t0
    for w in warnings[len(dataset.warnings):]:
        log.warning(w)
    timing = {"total_s": round(time.perf_counter() - start, 2), "embed_s": round(embed_s, 2),
              "match_s": round(match_s, 2), "backbone_passes": cache.misses - misses0,
              "photos": len(photos), "matches": int(sum(len(v) for v in tests.values())),
              # backbone passes a user's recognize would run per photo (1 + tiles + crops), by gallery mode
              "passes_per_image": {m: round(1 + looks.get(m, 0) / max(n, 1), 3) for m, n in scored.items()}}
    return RecognitionRun(dataset, photos, trials, thr, pipeline.fingerprint, categories, timing, warnings)
