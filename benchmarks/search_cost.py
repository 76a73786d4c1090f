"""Where exact search stops being cheap: proposal x view matching cost against one pass.

    python benchmarks/search_cost.py [--sizes 10000,100000,300000] [--views 1] [--proposals 200]

`pekit.retrieve.candidates.first_look` compares every proposal embedding of a photo with every stored view
(`retrieve.match.similarity`: one ``(m, d) @ (d, V)`` product and a ``maximum.reduceat``
per concept) before anything else. This times exactly that function on random unit
vectors (its cost does not depend on the values) for growing galleries, interleaved with
one backbone pass of the offline preset (scikit-image's cat photo), with BLAS on one
thread (small galleries and `recognize_many`) and on every core (what `recognize` uses
above `pekit.recognizing.LARGE_GALLERY_VIEWS`, when the cores are free after the pass), and prints ratios.
An ANN index pays where this ratio approaches the budget left after the pass (10 % at
10^4 concepts, 50 % at 10^5).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000,300000")
    ap.add_argument("--views", type=int, default=1, help="views per concept")
    ap.add_argument("--proposals", type=int, default=200, help="proposals per photo (offline: ~150-250)")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)

    from skimage import data

    from pekit._threads import blas_threads
    from pekit._threads import cores as all_cores
    from pekit.pipeline import Pipeline
    from pekit.retrieve.match import Gallery, similarity
    from pekit.types import Concept

    pipe = Pipeline.from_preset("offline")
    photo = data.chelsea()
    pipe.encode(photo)  # warm up
    rng = np.random.default_rng(0)
    d = 384
    queries = rng.normal(size=(args.proposals, d)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    print(f"{args.proposals} proposals, {args.views} view(s) per concept, median of {args.repeat}\n")
    cores = all_cores()
    print(f"| concepts | views MB (float32) | pass ms | search ms, 1 thread | search / pass | "
          f"search ms, {cores} threads | search / pass |")
    print("|---|---|---|---|---|---|---|")
    for n in [int(s) for s in args.sizes.split(",")]:
        views = rng.normal(size=(n * args.views, d)).astype(np.float32)
        views /= np.linalg.norm(views, axis=1, keepdims=True)
        gallery = Gallery.from_concepts([Concept(f"c{i}", views[i * args.views:(i + 1) * args.views], id=i + 1)
                                         for i in range(n)])
        passes: list[float] = []
        searches: dict[int, list[float]] = {1: [], cores: []}
        for _ in range(args.repeat):
            start = time.perf_counter()
            pipe.encode(photo)
            passes.append(time.perf_counter() - start)
            for threads, times in searches.items():
                with blas_threads(threads):
                    start = time.perf_counter()
                    similarity(queries, gallery)
                    times.append(time.perf_counter() - start)
        p = statistics.median(passes) * 1e3
        s1, sn = (statistics.median(searches[t]) * 1e3 for t in (1, cores))
        print(f"| {n:,} | {views.nbytes / 2**20:,.0f} | {p:.0f} | {s1:.1f} | {s1 / p:.3f} | {sn:.1f} | {sn / p:.3f} |",
              flush=True)
        del gallery, views
    return 0


if __name__ == "__main__":
    sys.exit(main())
