"""Ablation of the offline recipe on the DreamBooth development set (k references, 5 seeds).

Each row changes one choice of the `offline` preset and runs the same evaluation code path
as ``pekit eval recognition``, with all concepts in memory and with each concept alone;
the table gives, at the preset's fixed threshold (0.60): weighted and same-category
negative accuracy (all), positive/negative accuracy and precision (single), the share of
correct hits whose box reaches IoU 0.5 with the drawn box, and the oracle threshold of the
all-concepts run (chosen on the test photos: an upper bound).

    python benchmarks/ablation.py [--refs 2] [--rows default,noextent,...] [--cache DIR]

Rows: default, noextent (matched region, not grown), nosalientbox (the box not completed from
the saliency map), noregion (no region-level
competition), noseeds (a concept that wins no proposal gets no region), noalso (no part
seed beside won proposals), nocolour (no colour term), nocolourcomp (colour in the score,
not in region competition), noothers (a second-look crop re-scores only the concept
that triggered it), nocore (a candidate whose crop would not magnify it gets no crop,
instead of one around its most concept-like patch), corebelow (that crop also for a large
candidate under the threshold), nocontested (a small region another concept wins at the
region level gets no crop), onelook (one crop per photo, not two), noskip (crops also for
candidates already named with confidence or lying on one), noseen (a crop also for a
candidate inside an earlier crop that saw it about as magnified), nozoom (no zoomed-out reference
views), global+parts (the score of the first release: 0.5 global + 0.5 parts), globalonly,
salonly, winonly; and, with a backbone pass per photo each, layer5, layer9, final, res336,
nocenter. Exits 0 with a message when the dataset is absent.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from _data import add_data_argument, missing

ROWS: dict[str, dict[str, Any]] = {
    "default": {},
    "noextent": {"extent": False},
    "nosalientbox": {"salient_box": False},
    "noregion": {"region_competition": False},
    "noseeds": {"part_seeds": False},
    "noalso": {"part_seeds_also": False},
    "nocolour": {"colour_weight": 0.0},
    "nocolourcomp": {"colour_competition": False},
    "noothers": {"second_look_others": False},
    "nocore": {"second_look_core": False},
    "corebelow": {"second_look_core_below": True},
    "nocontested": {"second_look_contested": False},
    "onelook": {"second_looks": 1},
    "noskip": {"second_look_skip_named": False},
    "noseen": {"second_look_seen": False},
    "nozoom": {"reference_zoom_out": 0},
    "global+parts": {"verify_weight": 0.5},
    "globalonly": {"verify_weight": 0.0},
    "salonly": {"proposals": ("saliency",)},
    "winonly": {"proposals": ("windows",)},
    "layer5": {"backbone_options": {"layer": 5, "resolution": 448}},
    "layer9": {"backbone_options": {"layer": 9, "resolution": 448}},
    "final": {"backbone_options": {"layer": -1, "resolution": 448}},
    "res336": {"backbone_options": {"layer": 7, "resolution": 336}},
    "nocenter": {"backbone_options": {"layer": 7, "resolution": 448, "center": False}},
}
#: rows that reuse the default grids (no new backbone pass): the default of ``--rows``
CHEAP = ("default", "noextent", "nosalientbox", "noregion", "noseeds", "noalso", "nocolour", "nocolourcomp", "noothers",
         "nocore", "corebelow", "nocontested", "onelook", "noskip", "noseen", "nozoom", "global+parts", "globalonly",
         "salonly", "winonly")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_argument(ap)
    ap.add_argument("--refs", type=int, default=2)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--rows", default=",".join(CHEAP),
                    help=f"rows to run (default: those that reuse the cached grids); all: {','.join(ROWS)}")
    ap.add_argument("--cache", help="grid cache folder (default: the user cache dir)")
    args = ap.parse_args(argv)
    names = [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = [n for n in names if n not in ROWS]
    if unknown:  # before any row runs: a typo at the end of --rows would cost the rows before it
        print(f"unknown row(s) {', '.join(unknown)}; choose from {', '.join(ROWS)}")
        return 2
    if missing(args.data):
        return 0
    from pekit.eval.cache import GridCache, default_cache_dir
    from pekit.eval.datasets import load_dataset
    from pekit.eval.recognition import run_recognition
    from pekit.eval.summary import summarize, sweep
    from pekit.pipeline import Pipeline

    dataset = load_dataset(f"folder:{args.data}")
    cache_dir = Path(args.cache or default_cache_dir()) / "grids"
    print(f"ablation on {args.data} (k={args.refs}, {args.seeds} seeds, τ fixed at the preset's); values in %")
    print("| row | all: weighted | all: same-cat. | single: positive | single: negative | single: precision "
          "| box IoU≥0.5 | oracle τ (all) | seconds |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in names:
        start = time.perf_counter()
        pipeline = Pipeline.from_preset("offline", **ROWS[name])
        run = run_recognition(dataset, pipeline, refs=(args.refs,), seeds=args.seeds, galleries=("all", "single"),
                              cache=GridCache(cache_dir, pipeline.fingerprint), progress=False)
        rows = {r["gallery"]: r["metrics"] for r in summarize(run)}
        best = next(iter(sweep(run)["best"].values()))

        def pct(mode: str, metric: str, rows: dict[str, Any] = rows) -> str:
            value = rows[mode].get(metric, {}).get("mean")
            return "n/a" if value is None else f"{100 * value:.1f}"

        print(f"| {name} | {pct('all', 'weighted')} | {pct('all', 'same category')} | {pct('single', 'positive')} | "
              f"{pct('single', 'negative')} | {pct('single', 'precision')} | {pct('all', 'box iou>=0.5')} | "
              f"{best['threshold']:.2f} | {time.perf_counter() - start:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
