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
from dataclasses import dataclass
from typing import Any

from pekit.errors import InvalidInputError
from pekit.eval.answering import AnswerRun, answer_markdown, answer_results, run_answers
from pekit.eval.cache import AnswerCache, GridCache
from pekit.eval.datasets import Dataset, VQAItem
from pekit.eval.metrics import choice_accuracy
from pekit.eval.report import format_table, format_value

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
class VQARun(AnswerRun[VQARecord]):
    """The answered questions of a run (fields: `pekit.eval.answering.AnswerRun`)."""


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
    if not dataset.vqa:
        raise InvalidInputError(f"{dataset.spec} has no multiple-choice questions; VQA needs the yollava layout "
                                "with yollava-visual-qa.json")

    def record(s: int, q: VQAItem, ask: Any, recognized: list[str]) -> VQARecord:
        ans = ask(question=q.question, options=q.options)
        return VQARecord(s, q.concept, str(q.image), q.question, q.options, q.answer, ans.choice, ans.text,
                         recognized)

    return run_answers(VQARun, dataset, pipeline, lvlm, dataset.vqa, record, task="vqa", unit="question",
                       refs=refs, seeds=seeds, seed=seed, threshold=threshold, cache=cache, answers=answers,
                       progress=progress, generation=generation)


def _accuracy(recs: list[VQARecord]) -> float:
    return float(choice_accuracy([r.prediction for r in recs], [r.answer for r in recs])["accuracy"])


def vqa_results(run: VQARun, config: dict[str, Any] | None = None) -> dict[str, Any]:
    """JSON-ready results: overall and per-concept accuracy (mean ± std over seeds), unparsable counts."""
    # unparsable answers (no letter read), totalled over seeds
    unparsable = sum(r.prediction is None for r in run.records if r.seed in range(run.seeds))
    return answer_results(run, config, task="vqa", dataset_counts={"questions": len(run.dataset.vqa)},
                          count="questions", metrics=["accuracy"],
                          seed_metrics=lambda recs: {"accuracy": _accuracy(recs)},
                          concept_metric=lambda name, recs: _accuracy(recs), records="answers",
                          row={"unparsable": unparsable})


def vqa_table(results: dict[str, Any]) -> str:
    row = results["rows"][0]
    return format_table(["k", "questions", "accuracy", "concept recognized", "unparsable answers"],
                        [[results["config"]["refs"], row["questions"], format_value(row["metrics"]["accuracy"]),
                          format_value(row["metrics"]["recognized"]), row["unparsable"]]])


def vqa_markdown(results: dict[str, Any]) -> str:
    return answer_markdown(
        results, title="VQA", values="Values in %", table=vqa_table(results),
        notes="Accuracy = correct answers / all questions; an answer whose letter cannot be read counts as wrong "
              "(unparsable answers are totalled over seeds). \"Concept recognized\" = share of questions whose "
              "concept was found in the photo.",
        per_concept="Accuracy per concept", metric="accuracy")
