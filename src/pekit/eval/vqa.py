"""Personalized VQA benchmark (Yo'LLaVA's A/B questions) through the full PeKit pipeline.

For each seed, every concept is introduced from ``k`` reference photos drawn from its
``train/`` folder (all concepts in memory together). For each question, the test photo is
recognized (one backbone pass, cached), the recognized concepts are drawn and named
(`pekit.answer.respond`) and the LVLM answers; the letter is read with
`pekit.prompt.parse_choice`.

Accuracy = correct / all questions (Yo'LLaVA reports it over all questions); answers whose
letter cannot be read count as wrong and are reported as ``unparsable``. Questions about
a concept skipped for having fewer than ``k`` photos are left out (reported).

Example:
    >>> run = run_vqa(load_dataset("yollava:/data/yollava"), build_pipeline("offline"),
    ...               load_lvlm("openai:http://localhost:8000/v1#llava"), refs=4)  # doctest: +SKIP
    >>> vqa_results(run)["rows"][0]["metrics"]["accuracy"]                           # doctest: +SKIP
    {'mean': 0.91, 'std': 0.0, 'seeds': [0.91]}
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
from pekit.eval.metrics import choice_accuracy, seed_stats
from pekit.eval.report import clean_json, format_table, format_value
from pekit.images import load_image

log = logging.getLogger(__name__)

__all__ = ["VQARecord", "VQARun", "run_vqa", "vqa_markdown", "vqa_results"]


@dataclass
class VQARecord:
    """One answered question."""

    seed: int
    concept: str
    image: str
    question: str
    options: dict[str, str]
    answer: str
    prediction: str | None
    text: str
    recognized: list[str]


@dataclass
class VQARun:
    dataset: Dataset
    records: list[VQARecord]
    refs: int
    seeds: int
    skipped: list[str]
    lvlm: str
    fingerprint: str
    timing: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def run_vqa(dataset: Dataset, pipeline: Any, lvlm: Any, *, refs: int = 4, seeds: int = 1, seed: int = 0,
            threshold: float | None = None, cache: GridCache | None = None, answers: AnswerCache | None = None,
            progress: bool = True, **generation: Any) -> VQARun:
    """Answer every multiple-choice question of ``dataset`` (see the module docstring).

    Args:
        lvlm: any object with ``generate(image, prompt, **kw) -> str`` (`pekit.answer.load_lvlm`).
        refs: reference photos per concept; ``seeds``/``seed``: draws, as in recognition.
        threshold: recognition threshold (default: the pipeline's).
        cache, answers: grid and answer caches (in memory when ``None``).
        generation: ``max_new_tokens``, ``temperature``... passed to the LVLM.
    """
    from tqdm.auto import tqdm

    from pekit.answer.respond import respond

    if not dataset.vqa:
        raise InvalidInputError(f"{dataset.spec} has no multiple-choice questions; VQA needs the yollava layout "
                                "with yollava-visual-qa.json")
    start = time.perf_counter()
    ctx = AnswerContext(pipeline, cache or GridCache(None, pipeline.fingerprint, memory_items=256))
    model = CachedLVLM(lvlm, answers)
    names = [c.name for c in dataset.concepts]
    labels = sorted({c.category for c in dataset.concepts if c.category})
    generation.setdefault("temperature", 0.0)
    records: list[VQARecord] = []
    warnings = list(dataset.warnings)
    skipped: list[str] = []
    misses0 = ctx.cache.misses
    for s in range(seeds):
        gallery, refs_used, skipped = seed_memory(dataset, ctx, k=refs, seed=s, base_seed=seed)
        ref_hashes = reference_hashes(ctx, refs_used)
        items = [q for q in dataset.vqa if q.concept in refs_used and ctx.sha1(q.image) not in ref_hashes]
        for q in tqdm(items, desc=f"vqa seed {s}", unit="question", disable=None if progress else True):
            image = load_image(q.image)
            grid = ctx.grid(q.image, image)
            dets = pipeline.recognize(grid, gallery, threshold=threshold, image=image, labels=labels)
            ans = respond(model, image, dets, question=q.question, options=q.options, known_names=names,
                          **generation)
            records.append(VQARecord(s, q.concept, str(q.image), q.question, q.options, q.answer, ans.choice,
                                     ans.text, [str(n) for n in dets.name]))
    if skipped:
        warnings.append(f"skipped {len(skipped)} concept(s) with fewer than {refs} photos: {', '.join(skipped)}")
    timing = {"total_s": round(time.perf_counter() - start, 2), "backbone_passes": ctx.cache.misses - misses0,
              "lvlm_calls": model.calls, "lvlm_cached": model.hits}
    return VQARun(dataset, records, refs, seeds, skipped, model.name, pipeline.fingerprint, timing, warnings)


def vqa_results(run: VQARun, config: dict[str, Any] | None = None) -> dict[str, Any]:
    """JSON-ready results: overall and per-concept accuracy (mean ± std over seeds), unparsable counts."""
    from pekit import __version__

    per_seed: dict[str, list[float]] = {"accuracy": [], "recognized": []}
    unparsable = 0
    concepts: dict[str, list[float]] = {}
    for s in range(run.seeds):
        recs = [r for r in run.records if r.seed == s]
        if not recs:
            continue
        acc = choice_accuracy([r.prediction for r in recs], [r.answer for r in recs])
        per_seed["accuracy"].append(float(acc["accuracy"]))
        per_seed["recognized"].append(sum(r.concept in r.recognized for r in recs) / len(recs))
        unparsable += int(acc["unparsable"])
        for name in sorted({r.concept for r in recs}):
            sub = [r for r in recs if r.concept == name]
            concepts.setdefault(name, []).append(
                float(choice_accuracy([r.prediction for r in sub], [r.answer for r in sub])["accuracy"]))
    metrics = {k: seed_stats(v) for k, v in per_seed.items()}
    return clean_json({
        "task": "vqa", "pekit": __version__,
        "dataset": {"spec": run.dataset.spec, "layout": run.dataset.layout, "questions": len(run.dataset.vqa)},
        "config": {**(config or {}), "refs": run.refs, "seeds": run.seeds, "lvlm": run.lvlm,
                   "fingerprint": run.fingerprint},
        "rows": [{"label": "all", "questions": len(run.records) // max(run.seeds, 1), "unparsable": unparsable,
                  "metrics": metrics}],
        "per_concept": {n: seed_stats(v, keep_seeds=False) for n, v in concepts.items()},
        "skipped": run.skipped, "warnings": run.warnings, "timing": run.timing,
        "answers": [r.__dict__ for r in run.records],
    })


def vqa_table(results: dict[str, Any]) -> str:
    row = results["rows"][0]
    return format_table(["k", "questions", "accuracy", "concept recognized", "unparsable answers"],
                        [[results["config"]["refs"], row["questions"], format_value(row["metrics"]["accuracy"]),
                          format_value(row["metrics"]["recognized"]), row["unparsable"]]])


def vqa_markdown(results: dict[str, Any]) -> str:
    cfg = results["config"]
    body = [[n, format_value(v)] for n, v in results["per_concept"].items()]
    parts = [f"# VQA: {results['dataset']['spec']}",
             f"LVLM `{cfg['lvlm']}`, backbone `{cfg['fingerprint']}`, {cfg['refs']} reference(s) per concept, "
             f"{cfg['seeds']} seed(s). Values in %, mean ± std over seeds.",
             vqa_table(results),
             "Accuracy = correct answers / all questions; an answer whose letter cannot be read counts as wrong "
             "(unparsable answers are totalled over seeds). \"Concept recognized\" = share of questions whose "
             "concept was found in the photo.",
             "## Accuracy per concept", format_table(["concept", "accuracy"], body)]
    if results.get("warnings"):
        parts += ["## Warnings", "\n".join(f"- {w}" for w in results["warnings"])]
    parts.append("Timing: " + ", ".join(f"{k} = {v}" for k, v in results.get("timing", {}).items()))
    return "\n\n".join(parts) + "\n"
