"""Feedback benchmark: a user corrects the first 1-3 false positives per concept, then the rest is scored.

Each concept alone in memory (the open-set case), offline preset, its fixed threshold;
see `pekit.eval.feedback` for the protocol. Photos are embedded once and cached.

    python benchmarks/feedback.py                       # ../shared/data/dreambooth, k = 2, 5 seeds
    python benchmarks/feedback.py --refs 1 --seeds 3

Exits 0 with a message when the dataset folder is absent.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from _data import add_data_argument, missing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_argument(parser)
    parser.add_argument("--refs", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--corrections", type=int, default=3)
    parser.add_argument("--cache", help="grid cache folder (default: the user cache dir)")
    args = parser.parse_args(argv)
    if missing(args.data):
        return 0
    from pekit.eval.cache import GridCache, default_cache_dir
    from pekit.eval.datasets import load_dataset
    from pekit.eval.feedback import run_feedback
    from pekit.pipeline import Pipeline

    start = time.perf_counter()
    pipeline = Pipeline.from_preset("offline")
    root = Path(args.cache) if args.cache else default_cache_dir()
    table = run_feedback(load_dataset(f"folder:{args.data}"), pipeline, k=args.refs, seeds=args.seeds,
                         corrections=args.corrections, cache=GridCache(root / "grids", pipeline.fingerprint),
                         progress=False)
    print(f"single concept in memory, k = {args.refs}, {args.seeds} seeds, τ = {pipeline.config.threshold}")
    print("| corrections | made / concept | positive | negative | precision | weighted |")
    print("|---|---|---|---|---|---|")
    for n, m in table.items():
        print(f"| {n} | {m['corrected']:.2f} | {100 * m['positive']:.1f} | {100 * m['negative']:.1f} | "
              f"{100 * m['precision']:.1f} | {100 * m['weighted']:.1f} |")
    print(f"\ntotal wall time: {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
