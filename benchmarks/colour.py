"""How the colour term of the `offline` score was chosen, on the DreamBooth dev set.

The block-7 tokens of the offline backbone match texture and shape far more than colour.
This benchmark measures how much a region's colour (`pekit.embed.colour`: a soft CIELAB
histogram of its patches, compared with each reference view's by the Bhattacharyya
coefficient) tells a concept's own object from everything else, on both splits, first
look only (no second look, so every variant sees the same regions; the same operating-point
rule and counting as `benchmarks/calibration.py`):

1. the likelihood ratio of the colour agreement c between positives and impostors (each
   concept alone, candidates with a part score >= 0.5): where it crosses 1 is the neutral
   point of the term (``colour_neutral``; c above it is evidence *for* the concept);
2. scores s + w (c - neutral) for a few weights and neutral points, each read at its own
   best threshold under the rule (best plain all weighted with plain single negative >= 97).

    python benchmarks/colour.py            # ../shared/data/dreambooth; ~5 min on 2 cores
    python benchmarks/colour.py --seeds 2  # quicker

Exits 0 with a message when the dataset folder is absent.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

import numpy as np
from _data import add_data_argument, missing

K = 2
VARIANTS = [(0.0, 0.85), (0.1, 0.85), (0.2, 0.8), (0.2, 0.85), (0.3, 0.85), (0.3, 0.87)]


def collect(split: str, data: Path, seeds: int) -> list[dict[str, Any]]:
    """Per trial: the positives and, per (mode, photo row, concept), the raw part score and
    the colour agreement of the first-look candidate."""
    from _firstlook import dev_split

    from pekit.embed.colour import colour_agreement, region_colour
    from pekit.eval.cache import GridCache, default_cache_dir
    from pekit.extract.views import concept_from_views
    from pekit.pipeline import Pipeline
    from pekit.retrieve.match import Gallery, concept_colours

    # colours on (so grids and views carry them), scored without them: the raw part score
    pipe = Pipeline.from_preset("offline", second_look=False, colour_weight=0.2)
    raw = Pipeline(pipe.backbone, dataclasses.replace(pipe.config, colour_weight=0.0))
    cache = GridCache(default_cache_dir() / "grids", pipe.fingerprint)
    dev = dev_split(split, data, seeds, K, pipe, cache)
    trials = []
    for e, _, seed, drawn, _ in dev.plans:
        names = list(drawn)
        concepts = [concept_from_views(n, [dev.views[i, e, n] for i in drawn[n]]) for n in names]
        gallery = Gallery.from_concepts(concepts)
        colours = [concept_colours(c) for c in concepts]
        rows = dev.test_rows(drawn)
        stats: dict[tuple[str, int, int], tuple[float, float]] = {}
        for row, i in enumerate(rows):
            grid = cache.get(dev.photos[i].sha1)
            scan = raw.scan(grid)
            for mode in ("single", "all"):
                for cand in raw.candidates(scan, gallery, competitive=mode == "all"):
                    views = colours[cand.concept]
                    c = colour_agreement(region_colour(grid.colours, cand.region), views) if views is not None else 0.85
                    stats[mode, row, cand.concept] = (cand.score, c)
        positive = np.array([[n in dev.photos[i].owners for n in names] for i in rows])
        trials.append({"positive": positive, "stats": stats})
        print(f"  {split} seed {seed}: {len(rows)} photos", flush=True)
    return trials


def metrics(trials: list[dict[str, Any]], mode: str, w: float, neutral: float, threshold: float) -> np.ndarray:
    from _firstlook import counted

    out = []
    for t in trials:
        scores = np.full(t["positive"].shape, -np.inf)
        for (m, row, c), (s, colour) in t["stats"].items():
            if m == mode:
                scores[row, c] = s + w * (colour - neutral)
        out.append(counted(scores, t["positive"], threshold))
    return 100 * np.mean(out, 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_argument(parser)
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args(argv)
    if missing(args.data):
        return 0
    from _firstlook import HEADER, operating_row
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="blas"):
        runs = {split: collect(split, args.data, args.seeds) for split in ("plain", "stress")}
    print(f"\nk = {K}, {args.seeds} seeds, first look; each concept alone, candidates with part score >= 0.5:\n")
    print("| colour agreement | plain: positives / impostors / ratio | stress: positives / impostors / ratio |")
    print("|---|---|---|")
    edges = [0.0, 0.7, 0.8, 0.84, 0.86, 0.88, 0.9, 0.94, 0.96, 1.01]
    cells: dict[str, list[str]] = {}
    for split, trials in runs.items():
        pos, neg = ([c for t in trials for (m, r, k), (s, c) in t["stats"].items()
                     if m == "single" and s >= 0.5 and t["positive"][r, k] == want] for want in (True, False))
        hp, _ = np.histogram(pos, edges)
        hn, _ = np.histogram(neg, edges)
        fp, fn = hp / max(len(pos), 1), hn / max(len(neg), 1)
        cells[split] = [f"{a} / {b} / {x / y:.2f}" if y > 0 else f"{a} / {b} / –"
                        for a, b, x, y in zip(hp, hn, fp, fn, strict=True)]
    for i in range(len(edges) - 1):
        print(f"| {edges[i]:.2f}–{min(edges[i + 1], 1.0):.2f} | {cells['plain'][i]} | {cells['stress'][i]} |")
    print(f"\n{HEADER}")
    for w, neutral in VARIANTS:
        def measure(split: str, mode: str, thr: float, w: float = w, neutral: float = neutral) -> np.ndarray:
            return metrics(runs[split], mode, w, neutral, thr)

        name = "parts only" if w == 0 else f"s + {w} (c - {neutral})"
        print(operating_row(name, np.linspace(0.5, 0.7, 81), measure), flush=True)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
