"""Shared pieces of the answer-stage benchmarks (VQA, captions).

* `seed_memory`: the gallery of every concept from ``k`` reference photos drawn for a seed
  (the same draws as the recognition benchmark);
* `CachedLVLM`: wraps any LVLM so answers are cached on disk (resumable runs; the LVLM is
  the expensive part there);
* `AnswerContext`: the grid cache, photo hashes and images of one run;
* `AnswerRun`, `run_answers`, `answer_results`, `answer_markdown`: the run loop (seeds,
  memory, recognition, `pekit.answer.respond`, timing, skipped concepts) and the
  results/markdown scaffolding shared by `pekit.eval.vqa` and `pekit.eval.captions`.

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
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import numpy as np

from pekit.errors import ImageError, InvalidInputError
from pekit.eval.cache import AnswerCache, GridCache, file_sha1
from pekit.eval.datasets import ConceptData, Dataset
from pekit.eval.metrics import seed_stats
from pekit.eval.references import check_seed, draw_references, isolate, usable_references
from pekit.eval.report import clean_json, format_table, format_value
from pekit.extract.views import concept_from_views
from pekit.images import load_image
from pekit.retrieve.match import Gallery
from pekit.types import PatchGrid, check_threshold

log = logging.getLogger(__name__)

__all__ = ["AnswerContext", "AnswerRun", "CachedLVLM", "answer_markdown", "answer_results", "run_answers",
           "seed_memory"]


class _Item(Protocol):
    """A benchmark item: a photo of ``concept``."""

    @property
    def concept(self) -> str: ...
    @property
    def image(self) -> Path: ...


class _Record(Protocol):
    """One answer of a run."""

    @property
    def seed(self) -> int: ...
    @property
    def concept(self) -> str: ...
    @property
    def recognized(self) -> list[str]: ...


ItemT = TypeVar("ItemT", bound=_Item)
RecT = TypeVar("RecT")
RunT = TypeVar("RunT", bound="AnswerRun[Any]")


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
    unreadable: dict[Path, str] = field(default_factory=dict)

    def sha1(self, path: Path) -> str:
        if path not in self.hashes:
            self.hashes[path] = file_sha1(path)
        return self.hashes[path]

    def picture(self, path: Path) -> str | None:
        """The photo's content hash, or None (with a warning, once) when it cannot be read as
        a photo: a reference candidate that is skipped, as `pekit eval recognition` skips it."""
        if path not in self.unreadable:
            try:
                self.grid(path)
                return self.sha1(path)
            except (ImageError, OSError) as exc:
                self.unreadable[path] = f"skipped an unreadable photo: {exc}"
        return None

    def grid(self, path: Path, image: np.ndarray | None = None) -> PatchGrid:
        grid = self.cache.grid(self.sha1(path), lambda: self.pipeline.encode(
            image if image is not None else load_image(path)))
        return self.cache.coloured(self.sha1(path), grid, self.pipeline, image if image is not None else path)


def seed_memory(dataset: Dataset, ctx: AnswerContext, *, k: int, seed: int,
                base_seed: int = 0) -> tuple[Gallery, dict[str, list[Path]], list[str], int]:
    """Every concept with at least ``k`` readable reference photos (one per picture), in
    memory together, each view made as `pekit eval recognition` and the library make it
    (`pekit.eval.references.isolate`: the preset's detector from the category when it has
    one, the zoomed-out view when it keeps them).

    Returns ``(gallery, references per concept, skipped concepts, views that fell back to the
    whole photo)``.
    """
    concepts, refs, skipped, whole = [], {}, [], 0
    for c in dataset.concepts:
        paths = draw_references(usable_references(c, ctx.picture), k, seed, base_seed)
        if paths is None:
            skipped.append(c.name)
            continue
        views = []
        for p in paths:
            view, fell_back = isolate(ctx.pipeline, ctx.cache, ctx.sha1(p), p, ctx.grid(p), category=c.category)
            views.append(view)
            whole += fell_back
        refs[c.name] = paths
        concepts.append(concept_from_views(c.name, views, category=c.category))
    return Gallery.from_concepts(concepts), refs, skipped, whole


def reference_hashes(ctx: AnswerContext, refs: dict[str, list[Path]]) -> set[str]:
    """Content hashes of every reference photo (so they are never used as test photos)."""
    return {ctx.sha1(p) for paths in refs.values() for p in paths}


def concept_lookup(dataset: Dataset) -> dict[str, ConceptData]:
    return {c.name: c for c in dataset.concepts}


@dataclass
class AnswerRun(Generic[RecT]):
    """The records of one answer-stage run, with what produced them."""

    dataset: Dataset
    records: list[RecT]
    refs: int
    seeds: int
    skipped: list[str]
    lvlm: str
    fingerprint: str
    timing: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def run_answers(run_type: type[RunT], dataset: Dataset, pipeline: Any, lvlm: Any, items: Sequence[ItemT],
                record: Callable[[int, ItemT, Callable[..., Any], list[str]], Any], *, task: str, unit: str,
                refs: int, seeds: int, seed: int, threshold: float | None, cache: GridCache | None,
                answers: AnswerCache | None, progress: bool, generation: dict[str, Any]) -> RunT:
    """The run loop shared by the answer-stage benchmarks.

    For each seed, every concept is put in memory from ``refs`` reference photos (`seed_memory`);
    each item of a concept in memory whose photo is not a reference is recognized (one backbone
    pass, cached) and ``record(seed, item, ask, recognized)`` makes its record, where
    ``ask(**kw)`` calls `pekit.answer.respond` on the photo and its detections (``kw``: the
    question and options, if any) and ``recognized`` lists the names found.
    """
    from tqdm.auto import tqdm

    from pekit.answer.respond import respond

    start = time.perf_counter()
    threshold = check_threshold(threshold)
    seed = check_seed(seed)
    ctx = AnswerContext(pipeline, cache or GridCache(None, pipeline.fingerprint, memory_items=256))
    model = CachedLVLM(lvlm, answers)
    names = [c.name for c in dataset.concepts]
    labels = sorted({c.category for c in dataset.concepts if c.category})
    generation.setdefault("temperature", 0.0)
    records: list[Any] = []
    warnings = list(dataset.warnings)
    skipped: list[str] = []
    whole = 0
    misses0 = ctx.cache.misses
    for s in range(seeds):
        gallery, refs_used, skipped, fell_back = seed_memory(dataset, ctx, k=refs, seed=s, base_seed=seed)
        whole += fell_back
        if not refs_used:
            counts = ", ".join(sorted({str(len(c.references)) for c in dataset.concepts}, key=int))
            raise InvalidInputError(f"no concept has {refs} readable reference photo(s) to draw: lower --refs "
                                    f"(the concepts have {counts})")
        ref_hashes = reference_hashes(ctx, refs_used)
        todo = [i for i in items if i.concept in refs_used and ctx.sha1(i.image) not in ref_hashes]
        for item in tqdm(todo, desc=f"{task} seed {s}", unit=unit, disable=None if progress else True):
            image = load_image(item.image)
            grid = ctx.grid(item.image, image)
            dets = pipeline.recognize(grid, gallery, threshold=threshold, image=image, labels=labels)

            def ask(*, _image: np.ndarray = image, _dets: Any = dets, **kw: Any) -> Any:
                return respond(model, _image, _dets, known_names=names, **kw, **generation)

            records.append(record(s, item, ask, [str(n) for n in dets.name]))
    warnings += list(ctx.unreadable.values())
    if skipped:
        warnings.append(f"skipped {len(skipped)} concept(s) with fewer than {refs} photos: {', '.join(skipped)}")
    if whole:
        warnings.append(f"{whole} reference view(s) found no object and used the whole photo")
    for w in warnings[len(dataset.warnings):]:
        log.warning(w)
    timing = {"total_s": round(time.perf_counter() - start, 2), "backbone_passes": ctx.cache.misses - misses0,
              "lvlm_calls": model.calls, "lvlm_cached": model.hits}
    return run_type(dataset, records, refs, seeds, skipped, model.name, pipeline.fingerprint, timing, warnings)


def _per_seed(records: int, seeds: int) -> float | int:
    """Records per seed: a whole number when every seed tested as many, else the mean to one
    decimal (each seed's references leave other test photos).

    >>> _per_seed(12, 3), _per_seed(14, 3)
    (4, 4.7)
    """
    mean = records / max(seeds, 1)
    return int(mean) if mean.is_integer() else round(mean, 1)


RecP = TypeVar("RecP", bound=_Record)


def answer_results(run: AnswerRun[RecP], config: dict[str, Any] | None, *, task: str, dataset_counts: dict[str, int],
                   count: str, metrics: Sequence[str], seed_metrics: Callable[[list[RecP]], dict[str, float]],
                   concept_metric: Callable[[str, list[RecP]], float], records: str,
                   row: dict[str, Any] | None = None) -> dict[str, Any]:
    """JSON-ready results of an answer-stage run.

    Per seed: ``seed_metrics(records)`` (the keys in ``metrics``) and the share of records whose
    concept was recognized; per concept: ``concept_metric(name, records)``. Each is then given as
    mean ± std over seeds. ``count`` names the row's per-seed record count, ``row`` adds to the row,
    ``records`` names the list of records.
    """
    from pekit import __version__

    per_seed: dict[str, list[float]] = {k: [] for k in (*metrics, "recognized")}
    concepts: dict[str, list[float]] = {}
    for s in range(run.seeds):
        recs = [r for r in run.records if r.seed == s]
        if not recs:
            continue
        for k, v in seed_metrics(recs).items():
            per_seed[k].append(v)
        per_seed["recognized"].append(sum(r.concept in r.recognized for r in recs) / len(recs))
        for name in sorted({r.concept for r in recs}):
            concepts.setdefault(name, []).append(concept_metric(name, [r for r in recs if r.concept == name]))
    stats = {k: seed_stats(v) for k, v in per_seed.items()}
    return clean_json({
        "task": task, "pekit": __version__,
        "dataset": {"spec": run.dataset.spec, "layout": run.dataset.layout, **dataset_counts},
        "config": {**(config or {}), "refs": run.refs, "seeds": run.seeds, "lvlm": run.lvlm,
                   "fingerprint": run.fingerprint},
        "rows": [{"label": "all", count: _per_seed(len(run.records), run.seeds), **(row or {}), "metrics": stats}],
        "per_concept": {n: seed_stats(v, keep_seeds=False) for n, v in concepts.items()},
        "skipped": run.skipped, "warnings": run.warnings, "timing": run.timing,
        records: [r.__dict__ for r in run.records],
    })


def answer_markdown(results: dict[str, Any], *, title: str, values: str, table: str, notes: str,
                    per_concept: str, metric: str) -> str:
    """Markdown report of `answer_results`: header, ``table``, ``notes``, the per-concept ``metric``."""
    cfg = results["config"]
    body = [[n, format_value(v)] for n, v in results["per_concept"].items()]
    parts = [f"# {title}: {results['dataset']['spec']}",
             f"LVLM `{cfg['lvlm']}`, backbone `{cfg['fingerprint']}`, {cfg['refs']} reference(s) per concept, "
             f"{cfg['seeds']} seed(s). {values}, mean ± std over seeds.",
             table, notes,
             f"## {per_concept}", format_table(["concept", metric], body)]
    if results.get("warnings"):
        parts += ["## Warnings", "\n".join(f"- {w}" for w in results["warnings"])]
    parts.append("Timing: " + ", ".join(f"{k} = {v}" for k, v in results.get("timing", {}).items()))
    return "\n\n".join(parts) + "\n"
