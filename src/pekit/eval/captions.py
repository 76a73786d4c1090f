"""Personalized captioning benchmark (MyVLM's captions) through the full PeKit pipeline.

For each seed, every concept is introduced from ``k`` reference photos drawn from its
positives (all concepts in memory together). Each captioned photo that is not a reference
is recognized, the recognized concepts are drawn and named, and the LVLM writes a caption
(`pekit.answer.respond` without a question).

Metrics (per seed, then mean ± std over seeds): corpus BLEU-4 against the photo's
reference captions (sacrebleu), exact match after normalisation, and concept recall --
the share of captions that use the concept's name (MyVLM's recall; ``_`` matches a space).

Example:
    >>> run = run_captions(load_dataset("myvlm:/data/MyVLM"), build_pipeline("offline"),
    ...                    load_lvlm("openai:http://localhost:8000/v1#llava"), refs=4)  # doctest: +SKIP
    >>> caption_results(run)["rows"][0]["metrics"]["recall"]                          # doctest: +SKIP
    {'mean': 0.95, 'std': 0.0, 'seeds': [0.95]}
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from pekit.errors import InvalidInputError
from pekit.eval.answering import AnswerContext, CachedLVLM, reference_hashes, seed_memory
from pekit.eval.cache import AnswerCache, GridCache
from pekit.eval.datasets import Dataset
from pekit.eval.metrics import concept_recall, corpus_bleu, exact_match, mentions_name, seed_stats
from pekit.eval.report import clean_json, format_table, format_value
from pekit.images import load_image

log = logging.getLogger(__name__)

__all__ = ["CaptionRecord", "CaptionRun", "caption_markdown", "caption_results", "run_captions"]


@dataclass
class CaptionRecord:
    """One generated caption with its references."""

    seed: int
    concept: str
    image: str
    caption: str
    references: list[str]
    recognized: list[str]


@dataclass
class CaptionRun:
    dataset: Dataset
    records: list[CaptionRecord]
    refs: int
    seeds: int
    skipped: list[str]
    lvlm: str
    fingerprint: str
    timing: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def run_captions(dataset: Dataset, pipeline: Any, lvlm: Any, *, refs: int = 4, seeds: int = 1, seed: int = 0,
                 threshold: float | None = None, cache: GridCache | None = None, answers: AnswerCache | None = None,
                 progress: bool = True, **generation: Any) -> CaptionRun:
    """Caption every captioned photo of ``dataset`` (see the module docstring).

    Args:
        lvlm: any object with ``generate(image, prompt, **kw) -> str``.
        refs: reference photos per concept; ``seeds``/``seed``: draws, as in recognition.
        threshold: recognition threshold (default: the pipeline's).
        cache, answers: grid and answer caches (in memory when ``None``).
        generation: ``max_new_tokens``, ``temperature``... passed to the LVLM.
    """
    from tqdm.auto import tqdm

    from pekit.answer.respond import respond

    if not dataset.captions:
        raise InvalidInputError(f"{dataset.spec} has no reference captions; captioning needs the myvlm layout "
                                "with data_concept_embedding/<concept>/captions.json")
    start = time.perf_counter()
    ctx = AnswerContext(pipeline, cache or GridCache(None, pipeline.fingerprint, memory_items=256))
    model = CachedLVLM(lvlm, answers)
    names = [c.name for c in dataset.concepts]
    labels = sorted({c.category for c in dataset.concepts if c.category})
    generation.setdefault("temperature", 0.0)
    records: list[CaptionRecord] = []
    skipped: list[str] = []
    misses0 = ctx.cache.misses
    for s in range(seeds):
        gallery, refs_used, skipped = seed_memory(dataset, ctx, k=refs, seed=s, base_seed=seed)
        ref_hashes = reference_hashes(ctx, refs_used)
        items = [c for c in dataset.captions if c.concept in refs_used and ctx.sha1(c.image) not in ref_hashes]
        for item in tqdm(items, desc=f"captions seed {s}", unit="photo", disable=None if progress else True):
            image = load_image(item.image)
            grid = ctx.grid(item.image, image)
            dets = pipeline.recognize(grid, gallery, threshold=threshold, image=image, labels=labels)
            ans = respond(model, image, dets, known_names=names, **generation)
            records.append(CaptionRecord(s, item.concept, str(item.image), ans.text, list(item.references),
                                         [str(n) for n in dets.name]))
    warnings = list(dataset.warnings)
    if skipped:
        warnings.append(f"skipped {len(skipped)} concept(s) with fewer than {refs} photos: {', '.join(skipped)}")
    timing = {"total_s": round(time.perf_counter() - start, 2), "backbone_passes": ctx.cache.misses - misses0,
              "lvlm_calls": model.calls, "lvlm_cached": model.hits}
    return CaptionRun(dataset, records, refs, seeds, skipped, model.name, pipeline.fingerprint, timing, warnings)


def caption_results(run: CaptionRun, config: dict[str, Any] | None = None) -> dict[str, Any]:
    """JSON-ready results: BLEU, exact match and concept recall (mean ± std over seeds), per concept recall."""
    from pekit import __version__

    per_seed: dict[str, list[float]] = {"bleu": [], "exact_match": [], "recall": [], "recognized": []}
    concepts: dict[str, list[float]] = {}
    for s in range(run.seeds):
        recs = [r for r in run.records if r.seed == s]
        if not recs:
            continue
        hyps, refs = [r.caption for r in recs], [r.references for r in recs]
        per_seed["bleu"].append(corpus_bleu(hyps, refs) / 100.0)
        per_seed["exact_match"].append(exact_match(hyps, refs))
        per_seed["recall"].append(concept_recall(hyps, [r.concept for r in recs]))
        per_seed["recognized"].append(sum(r.concept in r.recognized for r in recs) / len(recs))
        for name in sorted({r.concept for r in recs}):
            sub = [r for r in recs if r.concept == name]
            concepts.setdefault(name, []).append(sum(mentions_name(r.caption, name) for r in sub) / len(sub))
    metrics = {k: seed_stats(v) for k, v in per_seed.items()}
    return clean_json({
        "task": "captions", "pekit": __version__,
        "dataset": {"spec": run.dataset.spec, "layout": run.dataset.layout,
                    "captioned_photos": len(run.dataset.captions)},
        "config": {**(config or {}), "refs": run.refs, "seeds": run.seeds, "lvlm": run.lvlm,
                   "fingerprint": run.fingerprint},
        "rows": [{"label": "all", "captions": len(run.records) // max(run.seeds, 1), "metrics": metrics}],
        "per_concept": {n: seed_stats(v, keep_seeds=False) for n, v in concepts.items()},
        "skipped": run.skipped, "warnings": run.warnings, "timing": run.timing,
        "captions": [r.__dict__ for r in run.records],
    })


def caption_table(results: dict[str, Any]) -> str:
    row = results["rows"][0]
    m = row["metrics"]
    return format_table(["k", "captions", "BLEU", "exact match", "concept recall", "concept recognized"],
                        [[results["config"]["refs"], row["captions"], format_value(m["bleu"]),
                          format_value(m["exact_match"]), format_value(m["recall"]), format_value(m["recognized"])]])


def caption_markdown(results: dict[str, Any]) -> str:
    cfg = results["config"]
    body = [[n, format_value(v)] for n, v in results["per_concept"].items()]
    parts = [f"# Captions: {results['dataset']['spec']}",
             f"LVLM `{cfg['lvlm']}`, backbone `{cfg['fingerprint']}`, {cfg['refs']} reference(s) per concept, "
             f"{cfg['seeds']} seed(s). Values in % (BLEU-4 on a 0-100 scale), mean ± std over seeds.",
             caption_table(results),
             "BLEU = sacrebleu corpus BLEU-4 against each photo's reference captions; exact match = caption equal "
             "to a reference after lower-casing and removing punctuation; concept recall = share of captions "
             "that use the concept's name.",
             "## Concept recall per concept", format_table(["concept", "recall"], body)]
    if results.get("warnings"):
        parts += ["## Warnings", "\n".join(f"- {w}" for w in results["warnings"])]
    parts.append("Timing: " + ", ".join(f"{k} = {v}" for k, v in results.get("timing", {}).items()))
    return "\n\n".join(parts) + "\n"
