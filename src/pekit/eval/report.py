"""Reports: ``results.json``, a Markdown ``README.md`` and PNG plots in one folder.

``results.json`` holds every number (per seed, per concept, the threshold sweep) plus the
settings and timings that produced them; ``README.md`` is the human table; plots are
``sweep.png`` (positive / negative accuracy and precision vs threshold) and ``refs.png``
(accuracy vs number of references).

Example:
    >>> print(format_value({"mean": 0.8731, "std": 0.0123}))
    87.3 ± 1.2
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from pekit._files import atomic_write
from pekit.errors import OutputError, require

__all__ = ["METRIC_DOC", "clean_json", "format_table", "format_value", "plot_refs", "plot_sweep",
           "recognition_markdown", "recognition_results", "recognition_table", "report_dir", "sweep_table",
           "write_report"]

METRIC_DOC = """\
**Metrics** (per concept, then averaged over concepts, then mean ± std over seeds; a concept
where a metric is undefined is left out of that average):
positive accuracy = recall = TP / (TP + FN) over photos of the concept that are not its references;
negative accuracy = specificity = TN / (TN + FP) over the other concepts' non-reference photos plus the
dataset's own negatives of the concept; precision = TP / (TP + FP); weighted = (positive + negative) / 2;
same-category = negative accuracy on photos of other concepts with the same category.
Gallery `strangers` (every concept in memory but the ones the photo shows, so any name is wrong): only
negative metrics, and strangers named = share of the photos that get any name.
Boxes (datasets with ground-truth boxes; correct hits only): box IoU≥0.5 = share of hits whose box
overlaps the true one at IoU >= 0.5, box IoU median, box holds ≥90 % = share of hits whose box covers
at least 90 % of the true box (the object is inside what the LVLM is told is it).
A concept is recognized in a photo iff its final score (`Pipeline.match`) is >= the threshold τ."""

_NAMES = {"positive": "positive acc.", "negative": "negative acc.", "precision": "precision",
          "weighted": "weighted", "same category": "same-category neg. acc.",
          "box iou>=0.5": "box IoU≥0.5", "box iou median": "box IoU median (%)",
          "box holds>=0.9": "box holds ≥90 %", "stranger named": "strangers named"}


def clean_json(obj: Any) -> Any:
    """JSON-safe copy: NaN/inf -> None, numpy scalars/arrays -> Python, paths -> str.

    >>> clean_json({"a": float("nan"), "b": (1, 2.5)})
    {'a': None, 'b': [1, 2.5]}
    """
    if isinstance(obj, dict):
        return {str(k): clean_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean_json(v) for v in obj]
    if hasattr(obj, "tolist"):
        return clean_json(obj.tolist())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return obj


def format_value(value: dict[str, Any] | float | None, *, percent: bool = True) -> str:
    """``{"mean", "std"}`` or a number as ``"87.3 ± 1.2"`` (percent); ``n/a`` when undefined.

    >>> format_value({"mean": None, "std": None}), format_value(0.5)
    ('n/a', '50.0')
    """
    mean, std = (value.get("mean"), value.get("std")) if isinstance(value, dict) else (value, None)
    if mean is None or (isinstance(mean, float) and not math.isfinite(mean)):
        return "n/a"
    scale = 100.0 if percent else 1.0
    text = f"{mean * scale:.1f}"
    if std is not None and isinstance(std, (int, float)) and math.isfinite(std):
        text += f" ± {std * scale:.1f}"
    return text


def format_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table.

    >>> print(format_table(["k", "acc"], [[1, "90.0"]]))
    | k | acc |
    |---|---|
    | 1 | 90.0 |
    """
    lines = ["| " + " | ".join(str(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def recognition_results(run: Any, *, threshold: float | None = None, top_k: Sequence[int] = (),
                        config: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything about a recognition run as a JSON-ready dict (see the module docstring)."""
    from pekit import __version__
    from pekit.eval.summary import per_concept, summarize, sweep

    thr = run.threshold if threshold is None else float(threshold)
    ds = run.dataset
    return clean_json({
        "task": "recognition",
        "pekit": __version__,
        "dataset": {"spec": ds.spec, "layout": ds.layout, "root": str(ds.root), "concepts": len(ds.concepts),
                    "photos": len(run.photos)},
        "config": {**(config or {}), "threshold": thr, "fingerprint": run.fingerprint},
        "rows": summarize(run, thr, top_k=top_k),
        "per_concept": per_concept(run, thr),
        "sweep": sweep(run),
        "references": {f"{t.extractor}/k={t.k}/seed={t.seed}": t.references for t in run.trials
                       if t.gallery == run.trials[0].gallery},
        "warnings": run.warnings,
        "timing": run.timing,
    })


def _metric_columns(rows: list[dict[str, Any]]) -> list[str]:
    names = [m for m in ("positive", "negative", "precision", "weighted", "same category", "stranger named",
                         "box iou>=0.5", "box iou median", "box holds>=0.9")
             if any(m in r["metrics"] for r in rows)]
    names += sorted({m for r in rows for m in r["metrics"] if m.startswith("negative: ")})
    names += sorted({m for r in rows for m in r["metrics"] if m[:2] in ("P@", "R@")}, key=lambda m: (m[2:], m))
    return names


def recognition_table(results: dict[str, Any]) -> str:
    """The main table: one row per (extractor, k, gallery mode)."""
    rows = results["rows"]
    metrics = _metric_columns(rows)
    extractors = {r["extractor"] for r in rows}
    modes = {r.get("gallery", "all") for r in rows}
    header = (["extractor"] if len(extractors) > 1 else []) + (["gallery"] if len(modes) > 1 else [])
    header += ["k", "concepts", "test photos"]
    header += [_NAMES.get(m, m) for m in metrics] + ["skipped"]
    body = []
    for r in rows:
        cells = [r["extractor"]] if len(extractors) > 1 else []
        cells += [r.get("gallery", "all")] if len(modes) > 1 else []
        cells += [r["k"], r["concepts"], r["test_photos"]]
        cells += [format_value(r["metrics"].get(m, {})) for m in metrics]
        cells.append(len(r["skipped"]) if r["skipped"] else "-")
        body.append(cells)
    return format_table(header, body)


def sweep_table(results: dict[str, Any], step: float = 0.05) -> str:
    """Weighted accuracy vs threshold (every ``step``) for each (extractor, k, gallery); for a
    ``strangers`` gallery, the share of photos named."""
    sw = results["sweep"]
    thr = sw["thresholds"]
    picks = [i for i, t in enumerate(thr) if abs(t / step - round(t / step)) < 1e-6]
    labels = list(sw["curves"])
    shown = {lb: "weighted" if "weighted" in sw["curves"][lb] else "stranger named" for lb in labels}
    body = [[f"{thr[i]:.2f}", *(format_value(sw["curves"][lb][shown[lb]][i]) for lb in labels)] for i in picks]
    return format_table(["τ", *(f"{_NAMES[shown[lb]]} {lb}" for lb in labels)], body)


_GALLERY_WORDS = ("all: every concept in memory together; single: each alone; strangers: every concept but the "
                  "photo's own; N: random galleries of N")


def _plateau(best: dict[str, Any]) -> str:
    """`` (all of 0.58–0.63 do as well)`` when the best threshold is the middle of a plateau."""
    lo, hi = best.get("plateau", (best["threshold"],) * 2)
    return f" (all of {lo:.2f}–{hi:.2f} do as well)" if hi > lo else ""


def recognition_markdown(results: dict[str, Any], *, plots: Sequence[str] = ()) -> str:
    """The README of a recognition report."""
    cfg, ds, timing = results["config"], results["dataset"], results.get("timing", {})
    seeds = results["rows"][0]["seeds"] if results["rows"] else 0
    parts = [
        f"# Recognition: {ds['spec']}",
        f"{ds['concepts']} concepts, {ds['photos']} photos ({ds['layout']} layout). Preset `{cfg.get('preset', '?')}`, "
        f"backbone `{cfg['fingerprint']}`, threshold τ = {cfg['threshold']:.2f}, {seeds} seed(s) "
        f"(base seed {cfg.get('seed', 0)}), gallery {', '.join(map(str, cfg.get('galleries', ['all'])))} "
        f"({_GALLERY_WORDS}), references by {', '.join(cfg.get('extractors', ['saliency']))}. "
        "Values in %, mean ± std over seeds.",
        recognition_table(results),
    ]
    skipped = {r["label"]: r["skipped"] for r in results["rows"] if r["skipped"]}
    if skipped:
        parts.append("Skipped (fewer photos than k): " + "; ".join(f"{k}: {', '.join(v)}" for k, v in skipped.items()))
    best = results["sweep"]["best"]
    if best:
        parts.append("Best threshold by weighted accuracy (oracle, chosen on the test photos): " + "; ".join(
            f"{lb}: τ = {b['threshold']:.2f}{_plateau(b)} ({format_value(b['weighted'])})" for lb, b in best.items()))
    parts += [f"![{Path(p).stem}]({Path(p).name})" for p in plots]
    parts += ["## Threshold sweep (weighted accuracy; strangers named)", sweep_table(results)]
    labels = [lb for lb, values in results["per_concept"].items()  # a strangers memory has no weighted accuracy
              if any(v.get("weighted") is not None for v in values.values())]
    concepts = sorted({c for lb in labels for c in results["per_concept"][lb]})
    body = [[c, *(format_value(results["per_concept"][lb].get(c, {}).get("weighted")) for lb in labels)]
            for c in concepts]
    parts += ["## Weighted accuracy per concept", format_table(["concept", *labels], body)]
    if results.get("warnings"):
        parts += ["## Warnings", "\n".join(f"- {w}" for w in results["warnings"])]
    if timing:
        shown = {k: (", ".join(f"{g} {n}" for g, n in v.items()) if isinstance(v, dict) else v)
                 for k, v in timing.items()}  # passes per test photo by gallery mode (references not counted)
        parts.append("Timing: " + ", ".join(f"{k} = {v}" for k, v in shown.items()))
    parts.append(METRIC_DOC)
    return "\n\n".join(parts) + "\n"


def _figure(ncols: int) -> tuple[Any, Any]:
    require("matplotlib", "eval")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.2 * ncols, 3.4), layout="constrained")
    return fig, fig.subplots(1, ncols, squeeze=False)[0]


def plot_sweep(results: dict[str, Any], path: str | os.PathLike) -> Path:
    """``sweep.png``: positive accuracy, negative accuracy and precision vs τ, one line per (extractor, k)."""
    sw = results["sweep"]
    fig, axes = _figure(3)
    for ax, metric in zip(axes, ("positive", "negative", "precision"), strict=True):
        for label, curves in sw["curves"].items():
            if metric not in curves:
                continue  # a strangers memory has negative accuracy only
            ys = [float("nan") if v is None else v * 100 for v in curves[metric]]
            ax.plot(sw["thresholds"], ys, label=label)
        ax.axvline(results["config"]["threshold"], color="grey", linestyle="--", linewidth=1)
        ax.set(xlabel="threshold τ", ylabel=f"{_NAMES[metric]} (%)", ylim=(0, 101), title=_NAMES[metric])
        ax.grid(alpha=0.3)
    if axes[1].get_legend_handles_labels()[0]:  # every group has a negative accuracy curve (none: nothing tested)
        axes[1].legend(fontsize=7)
    _atomic_write(Path(path), lambda fh: fig.savefig(fh, format=_image_format(path), dpi=110))
    return Path(path)


def plot_refs(results: dict[str, Any], path: str | os.PathLike) -> Path:
    """``refs.png``: accuracy vs number of references (error bars: std over seeds)."""
    rows = results["rows"]
    fig, axes = _figure(1)
    ax = axes[0]
    extractors = list(dict.fromkeys(r["extractor"] for r in rows))
    modes = list(dict.fromkeys(r.get("gallery", "all") for r in rows))
    lines = [(e, g) for e in extractors for g in modes]  # one line per (extractor, gallery mode)
    series = [(e, g, m) for e, g in lines for m in (("positive", "negative", "weighted") if len(lines) == 1
                                                    else ("weighted",))]
    for extractor, mode, metric in series:
        sel = sorted((r for r in rows if r["extractor"] == extractor and r.get("gallery", "all") == mode
                      and r["metrics"].get(metric, {}).get("mean") is not None), key=lambda r: r["k"])
        if not sel:
            continue  # e.g. a strangers memory: no positives, so no weighted accuracy
        ks = [r["k"] for r in sel]
        ys = [r["metrics"][metric]["mean"] * 100 for r in sel]
        es = [(r["metrics"][metric]["std"] or 0) * 100 for r in sel]
        name = ", ".join([extractor] * (len(extractors) > 1) + [f"gallery {mode}"] * (len(modes) > 1))
        label = f"{name} ({_NAMES[metric]})" if name else _NAMES[metric]
        ax.errorbar(ks, ys, yerr=es, marker="o", capsize=3, label=label)
    ax.set(xlabel="references per concept (k)", ylabel="accuracy (%)", ylim=(0, 101))
    ax.set_xticks(sorted({r["k"] for r in rows}))
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    _atomic_write(Path(path), lambda fh: fig.savefig(fh, format=_image_format(path), dpi=110))
    return Path(path)


def _write_error(path: str | os.PathLike, exc: OSError, *, what: str = "the report file") -> OutputError:
    """A clear error for ``exc`` raised writing ``path``: the file, the cause and what to do."""
    error = OutputError.writing(path, exc, what=what, hint="pass --out a folder")
    return OutputError(f"{error} and run again (a previous version of that file is left whole)")


def _image_format(path: str | os.PathLike) -> str:
    """The figure format a file name asks for (``.png``, ``.svg``, ``.pdf``...); PNG without one."""
    return Path(path).suffix.lstrip(".").lower() or "png"


def _write_bytes(fh: IO[bytes], data: bytes) -> None:
    fh.write(data)


def _atomic_write(path: Path, write: Callable[[IO[bytes]], Any]) -> None:
    """`pekit._files.atomic_write`, with an `OSError` (a full disk) as an `OutputError`
    naming the file and the cause."""
    try:
        atomic_write(path, write)
    except OSError as exc:
        raise _write_error(path, exc) from exc


def _atomic_text(path: Path, text: str) -> None:
    data = text.encode("utf-8")
    _atomic_write(path, lambda fh: _write_bytes(fh, data))


def report_dir(out_dir: str | os.PathLike) -> Path:
    """``out_dir`` (``~`` expanded), created if missing; `OutputError` when it cannot be."""
    out = Path(out_dir).expanduser()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _write_error(out, exc, what="the report folder") from exc
    return out


def write_report(out_dir: str | os.PathLike, results: dict[str, Any], markdown: str) -> Path:
    """Write ``results.json`` and ``README.md`` into ``out_dir`` (created); returns the folder.

    Raises:
        OutputError: a file cannot be written (full disk, no permission); the message
            names it, and a previous report's files are left whole.
    """
    out = report_dir(out_dir)
    _atomic_text(out / "results.json", json.dumps(clean_json(results), indent=2, ensure_ascii=False) + "\n")
    _atomic_text(out / "README.md", markdown)
    return out
