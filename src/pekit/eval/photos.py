"""The photos of an evaluation: each unique photo once (by content hash), its grid embedded once.

A dataset lists photos by role (reference candidates, positives, its own negatives);
`collect_photos` merges a photo's roles when the same picture appears more than once, and
`embed_photos` runs one backbone pass per photo not yet in the `GridCache`. The recognition
runner, the feedback simulation and the answering runners share them.

Example:
    >>> from pekit.eval.datasets import load_dataset                       # doctest: +SKIP
    >>> photos, index = collect_photos(load_dataset("folder:../shared/data/dreambooth"))  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pekit.errors import ImageError
from pekit.eval.cache import GridCache, file_sha1
from pekit.eval.datasets import Dataset

__all__ = ["Photo", "PhotoScans", "collect_photos", "crop_memo", "embed_photos", "has_detector", "looks_again",
           "needs_photo", "showing_rows"]


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
        shared: it shows a concept besides its owners, not named (`ConceptData.shared`): it
            is no concept's negative.
    """

    path: Path
    sha1: str
    owners: frozenset[str] = frozenset()
    negative_of: dict[str, str] = field(default_factory=dict)
    testable: bool = False
    boxes: dict[str, np.ndarray] = field(default_factory=dict)
    sources: frozenset[Path] = frozenset()
    shared: bool = False


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
    for c in dataset.concepts:
        for path in c.shared:
            photos[index[path]].shared = True
    return photos, index


def showing_rows(photos: list[Photo], readable: set[int], ref_ids: Iterable[int],
                 ref_paths: set[Path] | None = None) -> list[int]:
    """Sorted indices of the readable photos that show some concept and are neither one of
    ``ref_ids`` nor made from a reference (``ref_paths``, default: the paths of ``ref_ids``)."""
    ids = set(ref_ids)
    refs = {photos[i].path for i in ids} if ref_paths is None else ref_paths
    return [i for i in sorted(readable - ids) if photos[i].testable and photos[i].owners
            and not (photos[i].sources & refs)]



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


class PhotoScans:
    """One photo's scans (proposals pooled once), by the memory they serve: with a detector,
    one per set of categories it is prompted with (that memory's, as `recognize` prompts
    it); without one, a single scan for every memory."""

    def __init__(self, pipeline: Any, grid: Any, image: np.ndarray | None) -> None:
        self.pipeline, self.grid, self.image = pipeline, grid, image
        self.detector = has_detector(pipeline)
        self.scans: dict[tuple[str, ...] | None, Any] = {}

    def __call__(self, categories: Iterable[str]) -> tuple[Any, list[str] | None]:
        """The scan for a memory of these ``categories`` and the labels its detector is given."""
        key = tuple(sorted(set(categories))) if self.detector else None
        labels = list(key) if key else None
        if key not in self.scans:
            p = self.pipeline
            self.scans[key] = p.scan(self.grid, image=self.image, labels=labels) if hasattr(p, "scan") else self.grid
        return self.scans[key], labels


def has_detector(pipeline: Any) -> bool:
    """Whether ``pipeline`` proposes with a detector (prompted with the memory's categories)."""
    return getattr(pipeline, "detector", None) is not None


def needs_photo(pipeline: Any) -> bool:
    """Whether scoring a photo needs the photo itself, not only its grid: a detector's boxes,
    the second look's crops and the tiled look's tiles come from it."""
    return has_detector(pipeline) or looks_again(pipeline)


def looks_again(pipeline: Any) -> bool:
    """Whether ``pipeline`` looks at a photo again (the second look's crops, the tiled look's
    tiles): they are cut from the photo, so scoring needs the photo, not only its grid."""
    config = getattr(pipeline, "config", None)
    return bool(getattr(config, "second_look", False)) or getattr(config, "tiled_look", 0) >= 2


@contextlib.contextmanager
def crop_memo(pipeline: Any) -> Iterator[None]:
    """While the block runs, the passes of a pipeline that looks again (`looks_again`) are
    memoised (`Pipeline.crop_grids`) across every scoring of the same photo (galleries,
    trials, corrections); the memo is let go after."""
    memo = looks_again(pipeline)
    if memo:
        pipeline.crop_grids = {}
    try:
        yield
    finally:
        if memo:
            pipeline.crop_grids = None
