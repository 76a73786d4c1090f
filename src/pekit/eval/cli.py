"""``pekit eval``: reproduce the paper's tables with one command.

    pekit eval recognition --dataset myvlm:/data/MyVLM --refs 4 --seeds 5 --preset offline --out report/
    pekit eval recognition --dataset folder:../shared/data/dreambooth --refs 1,2,3,4 --sweep-threshold
    pekit eval vqa --dataset yollava:/data/yollava --lvlm openai:http://localhost:8000/v1#llava
    pekit eval captions --dataset myvlm:/data/MyVLM --lvlm hf:llava-hf/llava-1.5-7b-hf
    pekit eval ablate --dataset folder:../shared/data/dreambooth --refs 1,2,3,4,5 --extractor saliency,box

Each writes ``<out>/results.json``, ``<out>/README.md`` (and PNG plots for recognition)
and prints the table. Photos are embedded once per backbone and cached (``--cache``), so
an interrupted run resumes where it stopped.

Example:
    >>> import argparse
    >>> parser = argparse.ArgumentParser(prog="pekit"); sub = parser.add_subparsers(dest="command")
    >>> _ = add_eval_parser(sub)
    >>> args = parser.parse_args(["eval", "recognition", "--dataset", "folder:db", "--refs", "1-3"])
    >>> args.eval_task, args.refs
    ('recognition', [1, 2, 3])
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from pekit.cli_args import lvlm_option
from pekit.errors import InvalidInputError, OutputError, require

log = logging.getLogger(__name__)

__all__ = ["add_eval_parser", "run_eval"]

TASKS = ("recognition", "ablate", "vqa", "captions")
#: the largest number ``--refs`` / ``--top-k`` take: far more reference photos than any dataset
#: has per concept (a k over a concept's photos skips it), and it keeps ``1-N`` ranges small
MAX_K = 1000


def _int_list(text: str) -> list[int]:
    """``"1,2,4"`` or ``"1-4"`` -> sorted unique positive ints (at most `MAX_K`)."""
    out: set[int] = set()
    try:
        for part in text.replace(" ", "").split(","):
            if not part:
                continue
            lo, sep, hi = part.partition("-")
            first, last = (int(lo), int(hi)) if sep else (int(lo), int(lo))
            if max(first, last) > MAX_K:  # checked before a range is expanded
                raise argparse.ArgumentTypeError(f"expected numbers from 1 to {MAX_K} (photos per concept or "
                                                 f"retrieval cut-offs), got '{text}'")
            out.update(range(first, last + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers like 1,2,4 or 1-4, got '{text}'") from None
    if not out or min(out) < 1:
        raise argparse.ArgumentTypeError(f"expected positive numbers like 1,2,4 or 1-4, got '{text}'")
    return sorted(out)


def _names(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _common(p: argparse.ArgumentParser, *, refs_default: str, one_k: bool = False) -> None:
    p.add_argument("--dataset", required=True, metavar="LAYOUT:PATH",
                   help="folder:PATH, myvlm:PATH, yollava:PATH, thisismy:PATH or stress:PATH (the stress split "
                        "`python -m pekit.eval.stress` makes; a bare path is auto-detected)")
    p.add_argument("--preset", default="offline",
                   help="offline (default), offline-thorough, offline-fast, cpu or paper")
    p.add_argument("--refs", type=_int_list, default=_int_list(refs_default), metavar="K",
                   help=f"reference photos per concept, one number (default: {refs_default})" if one_k else
                   f"reference photos per concept, e.g. 4 or 1,2,3,4 or 1-4 (default: {refs_default})")
    p.add_argument("--seeds", type=int, default=None,
                   help="reference draws to average over (default: 5 for recognition/ablate, 1 for vqa/captions)")
    p.add_argument("--seed", type=int, default=0, help="base seed: the same seed gives the same draws (default 0)")
    p.add_argument("--threshold", type=float, help="recognition threshold τ (default: the preset's)")
    p.add_argument("--out", default="report", metavar="DIR", help="report folder (default: report/)")
    p.add_argument("--cache", metavar="DIR", help="cache folder for patch grids and answers "
                   "(default: the user cache dir, e.g. ~/.cache/pekit/eval)")
    p.add_argument("--no-cache", action="store_true", help="keep nothing on disk (not resumable)")
    p.add_argument("--categories", metavar="CSV", help="concept,class table (default: classes.csv or the name)")
    p.add_argument("--concepts", type=_names, metavar="A,B", help="evaluate only these concepts")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _galleries(text: str) -> list[str]:
    from pekit.eval.recognition import check_gallery

    try:
        return [check_gallery(t) for t in _names(text)] or ["all"]
    except InvalidInputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _gallery_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--gallery", type=_galleries, default=["all"], metavar="MODES",
                   help="who else is in memory: all (every concept, the paper's protocol), single (each "
                        "concept alone), strangers (every concept but the photo's own: is something never "
                        "introduced given one of your names?), N (random galleries of N concepts); several: "
                        "all,single,8 (default: all)")


def add_eval_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``eval`` (with ``recognition``, ``ablate``, ``vqa``, ``captions``) to a subparsers object."""
    ev = subparsers.add_parser("eval", help="benchmarks: recognition, vqa, captions, ablate",
                               description="Reproduce the paper's tables on the public dataset layouts.")
    tasks = ev.add_subparsers(dest="eval_task", required=True, metavar="TASK")

    p = tasks.add_parser("recognition", help="positive/negative accuracy, precision over k and seeds")
    _common(p, refs_default="1")
    _gallery_option(p)
    p.add_argument("--extractor", type=_names, default=["saliency"], metavar="E1,E2",
                   help="how references are isolated: saliency (the preset's own way, as introduce does: "
                        "its saliency map, or its detector from the category), box (the dataset's boxes.csv, as "
                        "a user's drawn box), full (whole photo), grounding-dino, owlv2, detector:<backend> "
                        "(default: saliency)")
    p.add_argument("--sweep-threshold", action="store_true", help="also print weighted accuracy vs threshold")

    p = tasks.add_parser("ablate", help="reference extractors x number of references, with memory retrieval P/R")
    _common(p, refs_default="1,2,3,4,5")
    _gallery_option(p)
    p.add_argument("--extractor", type=_names, default=["saliency"], metavar="E1,E2",
                   help="saliency, box (the dataset's boxes), full (whole photo), grounding-dino, owlv2, "
                        "detector:<backend> (default: saliency)")
    p.add_argument("--top-k", type=_int_list, default=[1, 3], metavar="K", help="retrieval cut-offs (default: 1,3)")
    p.add_argument("--sweep-threshold", action="store_true", help="also print weighted accuracy vs threshold")

    for task, what in (("vqa", "multiple-choice VQA accuracy (Yo'LLaVA)"),
                       ("captions", "BLEU, exact match, concept recall (MyVLM)")):
        p = tasks.add_parser(task, help=what)
        _common(p, refs_default="4", one_k=True)
        p.add_argument("--lvlm", help="hf:<id or dir> or openai:<base url>#<model> (needed: the offline "
                       "presets have no LVLM; a preset that names one is the default)")
        p.add_argument("--lvlm-option", action="append", type=lvlm_option, metavar="KEY=VALUE",
                       help="an option of the LVLM, e.g. timeout=300, retries=5 (openai:); repeatable")
        p.add_argument("--max-new-tokens", type=int, default=None)
        p.add_argument("--fresh-answers", action="store_true",
                       help="ask the LVLM again instead of reusing the answers cached under its name (a model "
                            "re-served or retrained under the same name); patch grids stay cached")
    return ev


def _build_pipeline(preset: str) -> Any:
    from pekit.pipeline import Pipeline

    return Pipeline.from_preset(preset)


def _cache_root(args: argparse.Namespace) -> Path | None:
    from pekit.eval.cache import default_cache_dir

    if args.no_cache:
        return None
    return Path(args.cache).expanduser() if args.cache else default_cache_dir()


def _caches(args: argparse.Namespace, fingerprint: str) -> tuple[Any, Any]:
    from pekit.eval.cache import AnswerCache, GridCache

    root = _cache_root(args)
    if root is None:
        return GridCache(None, fingerprint, memory_items=1 << 30), AnswerCache(None)
    try:
        return GridCache(root / "grids", fingerprint), AnswerCache(root)
    except OSError as exc:
        raise OutputError.writing(root, exc, what="the cache folder", verb="create",
                                  hint="pass --cache another folder") from exc


def _check_folder(path: Path, option: str, default: str = "") -> None:
    """Refuse, before any work, a folder option naming a file (or a path under one) or a
    place that cannot be written; the folder itself is made later, when it is written."""
    given = f"{option} '{path}'" if not default else f"the {default} '{path}'"
    hint = f"pass {option} a folder path (made if missing)" + (", or --no-cache" if option == "--cache" else "")
    existing = path
    while not os.path.lexists(existing) and existing.parent != existing:
        existing = existing.parent
    if not os.path.isdir(existing):
        where = "is a file" if existing == path else f"is inside '{existing}', which is a file"
        raise OutputError(f"{given} {where}, not a folder; {hint}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"{given} cannot be written: no permission to write in '{existing}'; {hint}")


def _outside_dataset(args: argparse.Namespace, root: Path) -> None:
    """Refuse an ``--out`` or ``--cache`` inside the dataset folder: the report's images (and
    the cache's files) would be read as photos of a new concept on the next run."""
    data = Path(root).expanduser().resolve()
    for option, value in (("--out", args.out), ("--cache", _cache_root(args))):
        if value is None:
            continue
        target = Path(value).expanduser().resolve()
        if target == data or data in target.parents:
            raise InvalidInputError(f"{option} '{value}' is inside the dataset folder '{root}': its files would be "
                                    f"read as photos on the next run; pass a folder outside it, e.g. "
                                    f"{option} {data.parent / ('report' if option == '--out' else 'cache')}")


def _check_args(args: argparse.Namespace, task: str) -> None:
    """Every option checked before the dataset is read or a model loaded."""
    from pekit.eval.recognition import check_seed, check_threshold

    if args.seeds is not None and args.seeds < 1:
        raise InvalidInputError(f"--seeds must be >= 1, got {args.seeds}")
    check_seed(args.seed, "--seed")
    check_threshold(args.threshold, "--threshold")
    if task in ("ablate", "recognition"):
        from pekit.eval.recognition import check_extractor

        args.extractor = [check_extractor(e) for e in args.extractor]
    if task in ("vqa", "captions"):
        if len(args.refs) != 1:
            raise InvalidInputError(f"eval {task} takes one number of references, got {args.refs}")
        if args.max_new_tokens is not None and args.max_new_tokens < 1:
            raise InvalidInputError(f"--max-new-tokens must be >= 1 (the longest answer in tokens), got "
                                    f"{args.max_new_tokens}")
    if task in ("recognition", "captions"):  # its plots / BLEU: said now, not after the whole run
        require("matplotlib" if task == "recognition" else "sacrebleu", "eval")
    _check_folder(Path(args.out).expanduser(), "--out")
    root = _cache_root(args)
    if root is not None:
        _check_folder(root, "--cache", "" if args.cache else "default cache folder")


def _config(args: argparse.Namespace, pipeline: Any) -> dict[str, Any]:
    from dataclasses import asdict, is_dataclass

    cfg = pipeline.config
    return {"preset": args.preset, "refs": args.refs, "seeds": args.seeds, "seed": args.seed,
            "recognition": asdict(cfg) if is_dataclass(cfg) and not isinstance(cfg, type) else {},
            "command": "pekit eval " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["eval"] else None}


def _recognition(args: argparse.Namespace, dataset: Any, pipeline: Any, start: float) -> int:
    from pekit.eval.recognition import run_recognition
    from pekit.eval.report import (
        plot_refs,
        plot_sweep,
        recognition_markdown,
        recognition_results,
        recognition_table,
        report_dir,
        sweep_table,
        write_report,
    )

    args.seeds = args.seeds or 5
    extractors = getattr(args, "extractor", ["saliency"])
    cache, _ = _caches(args, pipeline.fingerprint)
    galleries = getattr(args, "gallery", ["all"])
    run = run_recognition(dataset, pipeline, refs=args.refs, seeds=args.seeds, seed=args.seed, extractors=extractors,
                          galleries=galleries, cache=cache, threshold=args.threshold, progress=not args.quiet)
    top_k = getattr(args, "top_k", ())
    drawn = [t.k for t in run.trials if t.concepts and max(top_k or [0]) >= len(t.concepts)]
    if drawn:  # P@K over K >= the memory: every concept is retrieved
        print(f"pekit eval: note: --top-k {max(top_k)} reaches every concept in memory at k={min(drawn)} "
              f"(concepts with fewer photos are skipped there), so its precision/recall retrieve the whole memory",
              file=sys.stderr)
    results = recognition_results(run, threshold=args.threshold, top_k=top_k,
                                  config={**_config(args, pipeline), "extractors": extractors,
                                          "galleries": galleries})
    out = report_dir(args.out)
    _replacing(out, set(REPORT_FILES))
    plots = [plot_sweep(results, out / "sweep.png"), plot_refs(results, out / "refs.png")]
    results["timing"]["wall_s"] = round(time.perf_counter() - start, 2)
    write_report(out, results, recognition_markdown(results, plots=[str(p) for p in plots]))
    print(recognition_table(results))
    if args.sweep_threshold:
        print()
        print(sweep_table(results))
    print(f"\nreport: {out}/README.md, results.json, sweep.png, refs.png "
          f"(wall time {results['timing']['wall_s']:.1f} s)", file=sys.stderr)
    return 0


def _answering(args: argparse.Namespace, dataset: Any, pipeline: Any, start: float) -> int:
    from pekit.answer import load_lvlm
    from pekit.eval.report import write_report
    from pekit.presets import get_preset

    name = args.lvlm or get_preset(args.preset).lvlm
    if name == "none":
        raise InvalidInputError(f"eval {args.eval_task} needs an LVLM: pass --lvlm hf:<model id> or "
                                "--lvlm openai:<base url>#<model>")
    lvlm = load_lvlm(name, **dict(args.lvlm_option or []))
    args.seeds = args.seeds or 1
    cache, answers = _caches(args, pipeline.fingerprint)
    answers.fresh = bool(args.fresh_answers)  # asked again; the new answers replace the cached ones
    generation = {"max_new_tokens": args.max_new_tokens} if args.max_new_tokens is not None else {}
    kwargs = dict(refs=args.refs[0], seeds=args.seeds, seed=args.seed, threshold=args.threshold, cache=cache,
                  answers=answers, progress=not args.quiet, **generation)
    if args.eval_task == "vqa":
        from pekit.eval.vqa import run_vqa, vqa_markdown, vqa_results, vqa_table

        results = vqa_results(run_vqa(dataset, pipeline, lvlm, **kwargs), _config(args, pipeline))
        markdown, table = vqa_markdown, vqa_table
    else:
        from pekit.eval.captions import caption_markdown, caption_results, caption_table, run_captions

        results = caption_results(run_captions(dataset, pipeline, lvlm, **kwargs), _config(args, pipeline))
        markdown, table = caption_markdown, caption_table
    results["timing"]["wall_s"] = round(time.perf_counter() - start, 2)
    _replacing(Path(args.out).expanduser(), {"README.md", "results.json"})
    out = write_report(args.out, results, markdown(results))
    print(table(results))
    print(f"\nreport: {out}/README.md, results.json (wall time {results['timing']['wall_s']:.1f} s)", file=sys.stderr)
    return 0


#: the files a report folder holds (`pekit.eval.report`)
REPORT_FILES = ("README.md", "results.json", "sweep.png", "refs.png")


def _replacing(out: Path, writes: set[str]) -> None:
    """Before a report is written into ``out``: say that an earlier one there is replaced, and
    remove its files that this report does not write (a recognition run's plots beside a VQA
    report would read as this run's)."""
    earlier = [name for name in REPORT_FILES if (out / name).is_file()]
    if not (out / "results.json").is_file():  # no pekit report there: nothing of the user's is removed
        if "README.md" in earlier:
            print(f"pekit eval: note: {out / 'README.md'} is replaced by the report", file=sys.stderr)
        return
    print(f"pekit eval: note: replacing the report in {out} ({', '.join(earlier)})", file=sys.stderr)
    for name in earlier:
        if name not in writes:
            try:
                (out / name).unlink()
            except OSError:  # (the report is still written; a stale plot stays, named above)
                pass


def run_eval(args: argparse.Namespace) -> int:
    """Run the ``pekit eval <task>`` parsed into ``args``; returns the exit code.

    Errors are raised as `pekit.errors.PekitError` subclasses (the main CLI prints them).
    """
    from pekit.eval.datasets import load_dataset

    start = time.perf_counter()
    task = getattr(args, "eval_task", None)
    if task not in TASKS:
        raise InvalidInputError(f"unknown eval task '{task}'; choose from {', '.join(TASKS)}")
    _check_args(args, task)
    dataset = load_dataset(args.dataset, categories=args.categories, concepts=args.concepts)
    _outside_dataset(args, dataset.root)
    pipeline = _build_pipeline(args.preset)
    if task in ("recognition", "ablate"):
        return _recognition(args, dataset, pipeline, start)
    return _answering(args, dataset, pipeline, start)
