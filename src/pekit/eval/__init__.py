"""Benchmarks: dataset loaders, metrics, runners and reports (``pekit eval``).

* `load_dataset` reads the published layouts (``folder:``, ``myvlm:``, ``yollava:``,
  ``thisismy:``);
* `run_recognition` scores every non-reference photo once per (extractor, k, seed) with
  one backbone pass per photo for the whole run (plus the second look's crops); `summarize` / `sweep` aggregate it;
* `run_vqa` / `run_captions` run the answer stage with any LVLM;
* `pekit.eval.report` writes ``results.json``, ``README.md`` and plots.

Example:
    >>> from pekit.eval import load_dataset, run_recognition, summarize        # doctest: +SKIP
    >>> from pekit.personalizer import build_pipeline                          # doctest: +SKIP
    >>> run = run_recognition(load_dataset("folder:../shared/data/dreambooth"),
    ...                       build_pipeline("offline"), refs=(1, 2), seeds=5)  # doctest: +SKIP
    >>> [r["metrics"]["weighted"]["mean"] for r in summarize(run)]             # doctest: +SKIP
    [0.83, 0.88]
"""

from __future__ import annotations

from typing import Any

_LAZY = {
    "load_dataset": "pekit.eval.datasets",
    "Dataset": "pekit.eval.datasets",
    "ConceptData": "pekit.eval.datasets",
    "run_recognition": "pekit.eval.recognition",
    "RecognitionRun": "pekit.eval.recognition",
    "summarize": "pekit.eval.summary",
    "sweep": "pekit.eval.summary",
    "per_concept": "pekit.eval.summary",
    "run_vqa": "pekit.eval.vqa",
    "run_captions": "pekit.eval.captions",
    "GridCache": "pekit.eval.cache",
    "AnswerCache": "pekit.eval.cache",
    "recognition_results": "pekit.eval.report",
    "write_report": "pekit.eval.report",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'pekit.eval' has no attribute '{name}'")


def __dir__() -> list[str]:
    return __all__
