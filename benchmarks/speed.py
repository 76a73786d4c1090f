"""Speed benchmark: recognition and introduction cost in backbone passes.

    python benchmarks/speed.py [--images 20] [--concepts 10] [--preset offline]

For each of N query images (median over them) it times, on the same image:
  * one backbone pass (`pipeline.encode`, the same pass recognition runs), and
  * `Personalizer.recognize` (load + pass + proposals + matching + verification)
against a memory of C concepts, and prints the ratio (target <= 1.15) and the backbone passes
each recognize ran (the first look plus second-look crops and tiles), counted and weighted by
what they cost: a crop's or tile's pass without the saliency head (`look_saliency` "photo" or
"none") is timed on the same photo (every pass gets about as many pixels). It also times
`introduce` with k = 1..3 views against k passes (target <= 1.15 x k), and the zoomed-out
reference pass that introducing adds (`RecognitionConfig.reference_zoom_out`) against a pass.
Photos come from ../shared/data/dreambooth when present, else scikit-image samples.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from pekit import Personalizer
from pekit.images import load_image

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "dreambooth"


def photos(queries: int, concepts: int) -> tuple[list[np.ndarray], list[list[np.ndarray]]]:
    """``queries`` photos spread over the subjects, and two reference photos of one subject per
    concept (photos of two subjects would make a concept that matches nothing, and warn)."""
    if DATA.is_dir():
        subjects = [sorted(d.glob("*.jpg")) for d in sorted(DATA.iterdir()) if d.is_dir()]
        refs = [[load_image(f) for f in files[:2]] for files in subjects[:concepts]]
        rest = [f for files in subjects for f in files[2:]]
        step = max(1, len(rest) // queries)
        return [load_image(f) for f in rest[::step][:queries]], refs
    from skimage import data

    samples = [data.chelsea(), data.astronaut(), data.coffee(), data.rocket(), data.cat()]
    refs = [[samples[i % len(samples)], np.ascontiguousarray(samples[i % len(samples)][:, ::-1])]
            for i in range(concepts)]
    return [samples[i % len(samples)] for i in range(queries)], refs


def clock(fn, repeat: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=20, help="query photos timed (default: 20)")
    ap.add_argument("--concepts", type=int, default=10, help="concepts in memory, two photos each (default: 10)")
    ap.add_argument("--preset", default="offline", help="recognition preset (default: offline)")
    args = ap.parse_args(argv)
    if args.images < 1 or args.concepts < 1:
        ap.error("--images and --concepts must be at least 1")

    queries, per_concept = photos(args.images, args.concepts)
    refs = [img for pair in per_concept for img in pair]
    p = Personalizer(args.preset, memory="memory://")
    pipe = p.pipeline
    pipe.encode(queries[0])  # warm up (session creation)
    for i, pair in enumerate(per_concept):
        p.introduce(f"concept{i}", pair)

    def passes() -> int:  # backbone passes run so far beyond each photo's first (crops, tiles)
        return pipe.second_look_passes + pipe.tiled_look_passes

    first = pipe.query_saliency  # the saliency head on the photo's pass (only saliency proposals need it)
    crop_saliency = first and pipe.config.look_saliency == "pass"  # and on a crop's or tile's pass
    rows = []
    for img in queries:
        t_pass = clock(lambda img=img: pipe.encode(img, saliency=first), repeat=2)
        t_look = clock(lambda img=img: pipe.encode(img, saliency=False), repeat=2) if first != crop_saliency else t_pass
        before = passes()
        t_rec = clock(lambda img=img: p.recognize(img), repeat=2)
        looks = (passes() - before) / 2  # the same photo twice: the same looks
        rows.append((img.shape[1], img.shape[0], t_pass, t_rec, t_rec / t_pass, 1 + looks, t_look / t_pass))
    print(f"recognize vs one backbone pass ({args.preset}, {args.concepts} concepts in memory, best of 2 each)")
    print(f"{'image':>10} {'pass s':>8} {'recognize s':>12} {'ratio':>6} {'passes':>7} {'look/pass':>10}")
    for w, h, tp, tr, r, n, c in rows:
        print(f"{w:>4}x{h:<5} {tp:8.3f} {tr:12.3f} {r:6.3f} {n:7.1f} {c:10.3f}")
    ratio = statistics.median(r[4] for r in rows)
    share = statistics.median(r[6] for r in rows)
    counted = statistics.mean(r[5] for r in rows)
    print(f"median ratio recognize / pass = {ratio:.3f} (target <= 1.15) over {len(rows)} images")
    print(f"backbone passes per photo = {counted:.3f} (the first look + second-look crops and tiles: pekit eval's "
          "passes_per_image)")
    cost = statistics.mean(1 + (n - 1) * c for *_, n, c in rows)  # each photo's looks at its own price
    print(f"a crop's or tile's pass / the photo's = {share:.3f} (median; look_saliency={pipe.config.look_saliency!r}),"
          f" so a photo costs {cost:.3f} of its first pass (budget 1.1 on plain photos, 1.5 on the stress split)")

    print("\nintroduce with k views vs k backbone passes")
    print(f"{'k':>2} {'k passes s':>11} {'introduce s':>12} {'ratio':>6}")
    worst = 0.0
    for k in range(1, min(3, len(refs)) + 1):  # with --concepts 1 there are two photos: k = 1, 2
        views = refs[:k]
        t_pass = sum(clock(lambda v=v: pipe.encode(v), repeat=2) for v in views)
        t_intro = clock(lambda views=views: p.introduce("probe", views, replace=True), repeat=2)
        worst = max(worst, t_intro / t_pass)
        print(f"{k:>2} {t_pass:11.3f} {t_intro:12.3f} {t_intro / t_pass:6.3f}")
    zoom = " plus the zoomed-out pass, about 0.15 of one per view" if pipe.config.reference_zoom_out >= 2 else ""
    print(f"worst introduce ratio = {worst:.3f} (target <= 1.15 for the passes{zoom})")
    if pipe.config.reference_zoom_out >= 2:  # the zoomed-out reference pass, part of introduce
        t_zoom = statistics.median(clock(lambda v=v: pipe.zoom_out_grid(v), repeat=2) for v in refs[:3])
        t_one = statistics.median(clock(lambda v=v: pipe.encode(v), repeat=2) for v in refs[:3])
        print(f"zoomed-out reference pass / pass = {t_zoom / t_one:.3f} (median of 3 photos)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
