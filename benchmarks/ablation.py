"""Ablation of the offline recipe on the DreamBooth development set (k references, 5 seeds).

Each row changes one choice of the `offline` preset and runs the same evaluation code path
as ``pekit eval recognition``; the table gives weighted and same-category negative accuracy
at the preset's fixed threshold (0.60) and at the oracle threshold chosen on the test photos
(an upper bound that shows whether a change helps at *some* threshold).

    python benchmarks/ablation.py [--refs 2] [--rows default,layer5,...] [--cache DIR]

Rows: default, layer5, layer9, layer11, final, res336, res518, nocenter, noverify,
salonly, winonly. Grids are cached per backbone recipe, so recognition-only rows reuse
the default grids. Exits 0 with a message when the dataset is absent.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "dreambooth"

ROWS: dict[str, dict[str, Any]] = {
    "default": {},
    "layer5": {"backbone_options": {"layer": 5, "resolution": 448}},
    "layer9": {"backbone_options": {"layer": 9, "resolution": 448}},
    "layer11": {"backbone_options": {"layer": 11, "resolution": 448}},
    "final": {"backbone_options": {"layer": -1, "resolution": 448}},
    "res336": {"backbone_options": {"layer": 7, "resolution": 336}},
    "res518": {"backbone_options": {"layer": 7, "resolution": 518}},
    "nocenter": {"backbone_options": {"layer": 7, "resolution": 448, "center": False}},
    "noverify": {"verify_weight": 0.0},
    "salonly": {"proposals": ("saliency",)},
    "winonly": {"proposals": ("windows",)},
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("PEKIT_DREAMBOOTH", DEFAULT_DATA)))
    ap.add_argument("--refs", type=int, default=2)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--rows", default=",".join(ROWS))
    ap.add_argument("--cache", help="grid cache folder (default: the user cache dir)")
    args = ap.parse_args(argv)
    if not args.data.is_dir():
        print(f"dataset not found at {args.data}; nothing to benchmark (pass --data DIR)")
        return 0
    from pekit.eval.cache import GridCache, default_cache_dir
    from pekit.eval.datasets import load_dataset
    from pekit.eval.recognition import run_recognition
    from pekit.eval.summary import summarize, sweep
    from pekit.personalizer import build_pipeline

    dataset = load_dataset(f"folder:{args.data}")
    cache_dir = args.cache or default_cache_dir()
    print(f"ablation on {args.data} (k={args.refs}, {args.seeds} seeds); values in %")
    print(f"{'row':<10} {'weighted@0.60':>14} {'same@0.60':>10} {'oracle tau':>10} {'weighted':>9} "
          f"{'same':>7} {'seconds':>8}")
    for name in [r.strip() for r in args.rows.split(",") if r.strip()]:
        if name not in ROWS:
            print(f"unknown row '{name}'; choose from {', '.join(ROWS)}")
            return 2
        start = time.perf_counter()
        pipeline = build_pipeline("offline", **ROWS[name])
        run = run_recognition(dataset, pipeline, refs=(args.refs,), seeds=args.seeds,
                              cache=GridCache(cache_dir, pipeline.fingerprint), progress=False)
        fixed = summarize(run)[0]["metrics"]
        curves = sweep(run)
        best = next(iter(curves["best"].values()))
        oracle = summarize(run, threshold=best["threshold"])[0]["metrics"]
        pct = {f"{tag}:{metric}": 100 * values[metric]["mean"]
               for tag, values in (("fixed", fixed), ("oracle", oracle)) for metric in ("weighted", "same category")}
        print(f"{name:<10} {pct['fixed:weighted']:14.1f} {pct['fixed:same category']:10.1f} "
              f"{best['threshold']:10.2f} {pct['oracle:weighted']:9.1f} {pct['oracle:same category']:7.1f} "
              f"{time.perf_counter() - start:8.0f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
