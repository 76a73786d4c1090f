"""Shared pieces of the answer-stage benchmarks (VQA, captions).

* `seed_memory`: the gallery of every concept from ``k`` reference photos drawn for a seed
  (the same draws as the recognition benchmark);
* `CachedLVLM`: wraps any LVLM so answers are cached on disk (resumable runs; the LVLM is
  the expensive part there);
* `AnswerContext`: the grid cache, photo hashes and images of one run.

Example:
    >>> class Echo:
    ...     name = "echo"
    ...     def generate(self, image, prompt, **kw): return prompt.upper()
    >>> import numpy as np
    >>> lvlm = CachedLVLM(Echo())
    >>> lvlm.generate(np.zeros((2, 2, 3), np.uint8), "hi"), lvlm.calls
    ('HI', 1)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pekit.errors import NothingFoundError
from pekit.eval.cache import AnswerCache, GridCache, file_sha1
from pekit.eval.datasets import ConceptData, Dataset
from pekit.eval.recognition import draw_references, reference_view
from pekit.images import load_image
from pekit.retrieve.match import Gallery
from pekit.types import Concept, PatchGrid

log = logging.getLogger(__name__)

__all__ = ["AnswerContext", "CachedLVLM", "seed_memory"]


class CachedLVLM:
    """An LVLM whose answers are cached by (backend name, prompt, image, options)."""

    def __init__(self, lvlm: Any, cache: AnswerCache | None = None) -> None:
        self.lvlm = lvlm
        self.name = str(getattr(lvlm, "name", type(lvlm).__name__))
        self.cache = cache or AnswerCache(None)
        self.calls = 0
        self.hits = 0

    def generate(self, image: np.ndarray, prompt: str, **options: Any) -> str:
        key = self.cache.key(self.name, prompt, np.ascontiguousarray(image).tobytes(), shape=image.shape, **options)
        text = self.cache.get(key)
        if text is not None:
            self.hits += 1
            return text
        self.calls += 1
        text = self.lvlm.generate(image, prompt, **options)
        self.cache.put(key, text)
        return text


@dataclass
class AnswerContext:
    """Grids (one backbone pass per photo, cached) and file hashes of one run."""

    pipeline: Any
    cache: GridCache
    hashes: dict[Path, str] = field(default_factory=dict)

    def sha1(self, path: Path) -> str:
        if path not in self.hashes:
            self.hashes[path] = file_sha1(path)
        return self.hashes[path]

    def grid(self, path: Path, image: np.ndarray | None = None) -> PatchGrid:
        return self.cache.grid(self.sha1(path), lambda: self.pipeline.encode(
            image if image is not None else load_image(path)))


def seed_memory(dataset: Dataset, ctx: AnswerContext, *, k: int, seed: int,
                base_seed: int = 0) -> tuple[Gallery, dict[str, list[Path]], list[str]]:
    """Every concept with at least ``k`` reference photos, in memory together.

    Returns ``(gallery, references per concept, skipped concepts)``.
    """
    concepts, refs, skipped = [], {}, []
    for c in dataset.concepts:
        paths = draw_references(c, k, seed, base_seed)
        if paths is None:
            skipped.append(c.name)
            continue
        views = []
        for p in paths:
            grid = ctx.grid(p)
            try:
                views.append(reference_view(ctx.pipeline, grid))
            except NothingFoundError:
                views.append(reference_view(ctx.pipeline, grid, extractor="full"))
        refs[c.name] = paths
        concepts.append(Concept(c.name, views=np.stack([v.embedding for v in views]),
                                parts=np.concatenate([v.parts for v in views]), category=c.category))
    return Gallery.from_concepts(concepts), refs, skipped


def reference_hashes(ctx: AnswerContext, refs: dict[str, list[Path]]) -> set[str]:
    """Content hashes of every reference photo (so they are never used as test photos)."""
    return {ctx.sha1(p) for paths in refs.values() for p in paths}


def concept_lookup(dataset: Dataset) -> dict[str, ConceptData]:
    return {c.name: c for c in dataset.concepts}
