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
from dataclasses import dataclass
from typing import Any

from pekit.errors import InvalidInputError
from pekit.eval.answering import AnswerRun, answer_markdown, answer_results, run_answers
from pekit.eval.cache import AnswerCache, GridCache
from pekit.eval.datasets import CaptionItem, Dataset
from pekit.eval.metrics import concept_recall, corpus_bleu, exact_match, mentions_name
from pekit.eval.report import format_table, format_value

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
class CaptionRun(AnswerRun[CaptionRecord]):
    """The captions of a run (fields: `pekit.eval.answering.AnswerRun`)."""


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
    if not dataset.captions:
        raise InvalidInputError(f"{dataset.spec} has no reference captions; captioning needs the myvlm layout "
                                "with data_concept_embedding/<concept>/captions.json")

    def record(s: int, item: CaptionItem, ask: Any, recognized: list[str]) -> CaptionRecord:
        return CaptionRecord(s, item.concept, str(item.image), ask().text, list(item.references), recognized)

    return run_answers(CaptionRun, dataset, pipeline, lvlm, dataset.captions, record, task="captions", unit="photo",
                       refs=refs, seeds=seeds, seed=seed, threshold=threshold, cache=cache, answers=answers,
                       progress=progress, generation=generation)


def _caption_metrics(recs: list[CaptionRecord]) -> dict[str, float]:
    hyps, refs = [r.caption for r in recs], [r.references for r in recs]
    return {"bleu": corpus_bleu(hyps, refs) / 100.0, "exact_match": exact_match(hyps, refs),
            "recall": concept_recall(hyps, [r.concept for r in recs])}


def _recall(name: str, recs: list[CaptionRecord]) -> float:
    return sum(mentions_name(r.caption, name) for r in recs) / len(recs)


def caption_results(run: CaptionRun, config: dict[str, Any] | None = None) -> dict[str, Any]:
    """JSON-ready results: BLEU, exact match and concept recall (mean ± std over seeds), per concept recall."""
    return answer_results(run, config, task="captions", dataset_counts={"captioned_photos": len(run.dataset.captions)},
                          count="captions", metrics=["bleu", "exact_match", "recall"], seed_metrics=_caption_metrics,
                          concept_metric=_recall, records="captions")


def caption_table(results: dict[str, Any]) -> str:
    row = results["rows"][0]
    m = row["metrics"]
    return format_table(["k", "captions", "BLEU", "exact match", "concept recall", "concept recognized"],
                        [[results["config"]["refs"], row["captions"], format_value(m["bleu"]),
                          format_value(m["exact_match"]), format_value(m["recall"]), format_value(m["recognized"])]])


def caption_markdown(results: dict[str, Any]) -> str:
    return answer_markdown(
        results, title="Captions", values="Values in % (BLEU-4 on a 0-100 scale)", table=caption_table(results),
        notes="BLEU = sacrebleu corpus BLEU-4 against each photo's reference captions; exact match = caption equal "
              "to a reference after lower-casing and removing punctuation; concept recall = share of captions "
              "that use the concept's name.",
        per_concept="Concept recall per concept", metric="recall")
