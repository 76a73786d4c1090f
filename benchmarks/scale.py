"""Scale benchmark: warm `recognize` against 10 .. 100,000 concepts, as a ratio to one pass.

    python benchmarks/scale.py [--sizes 10,1000,10000] [--queries 8] [--parts 64]

Builds one memory file per size under a temp dir: 10 real concepts introduced from photos
(../shared/data/dreambooth when present, else scikit-image samples) plus synthetic ones
made from them (their views and part prototypes perturbed and renormalised, so they are
plausible look-alikes that compete, not random vectors that never win). For each size it
reports, in one process and interleaved with the backbone pass on the same photos:

* add throughput (concepts/s) while building the file;
* the first recognize after opening (reads the namespace into the gallery cache);
* warm recognize (median over the queries) and its ratio to one pass (targets: <= 1.1 at
  10,000 concepts, <= 1.5 at 100,000);
* agreement: share of queries whose named real concepts equal those found with only the 10
  real concepts in memory (what the shortlist must not change);
* RSS after the warm calls (target <= 2 GB at 100,000) and the file size.

BLAS threads around matching are what `Personalizer.recognize` sets: one, or every core
above `pekit.recognizing.LARGE_GALLERY_VIEWS` (the cores are free after the pass).
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from pekit import Personalizer
from pekit.images import load_image
from pekit.memory import SqliteMemory
from pekit.types import Concept

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "dreambooth"


def rss_mb() -> float:
    """Resident set size now (Linux /proc; falls back to the peak from getrusage)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def subjects(n: int) -> list[tuple[str, list[np.ndarray], list[np.ndarray]]]:
    """``n`` (name, two reference photos, query photos) tuples."""
    if DATA.is_dir():
        out = []
        for folder in sorted(p for p in DATA.iterdir() if p.is_dir())[:n]:
            files = sorted(folder.glob("*.jpg"))
            out.append((folder.name, [load_image(f) for f in files[:2]], [load_image(f) for f in files[2:4]]))
        return out
    from skimage import data

    samples = [data.chelsea(), data.astronaut(), data.coffee(), data.rocket(), data.cat()]
    return [(f"sample{i}", [samples[i % 5], samples[i % 5][:, ::-1].copy()], [samples[i % 5]]) for i in range(n)]


def unit(a: np.ndarray) -> np.ndarray:
    return (a / np.linalg.norm(a, axis=-1, keepdims=True)).astype(np.float32)


def fill(memory: SqliteMemory, real: list[Concept], total: int, parts: int, seed: int = 0) -> float:
    """Add ``total - len(real)`` synthetic look-alikes; returns concepts added per second."""
    rng = np.random.default_rng(seed)
    d = real[0].views.shape[1]
    start = time.perf_counter()
    n = total - len(real)
    batch: list[Concept] = []
    for i in range(n):
        base = real[i % len(real)]
        noise = rng.uniform(0.6, 1.6)  # distance from the real concept: some are close rivals
        views = unit(base.views + noise * rng.normal(size=base.views.shape).astype(np.float32) / np.sqrt(d) * 4)
        src = base.parts if base.parts is not None else base.views
        picked = src[rng.integers(0, len(src), parts)]
        batch.append(Concept(f"synthetic{i}", views, category=base.category, backbone=base.backbone,
                             parts=unit(picked + noise * rng.normal(size=picked.shape).astype(np.float32)
                                        / np.sqrt(d) * 4)))
        if len(batch) == 1000 or i == n - 1:
            memory.add_many(batch)
            batch = []
    return n / max(time.perf_counter() - start, 1e-9)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10,1000,10000")
    ap.add_argument("--queries", type=int, default=8)
    ap.add_argument("--parts", type=int, default=64, help="part prototypes per synthetic concept")
    ap.add_argument("--preset", default="offline")
    args = ap.parse_args(argv)
    sizes = sorted({int(s) for s in args.sizes.split(",")})

    tmp = Path(tempfile.mkdtemp(prefix="pekit-scale-"))
    base = Personalizer(args.preset, memory=tmp / "real.db")
    subs = subjects(10)
    for name, refs, _ in subs:
        base.introduce(name, refs)
    real = base.concepts()
    queries = [q for _, _, qs in subs for q in qs][: args.queries]
    pipe = base.pipeline
    pipe.encode(queries[0])
    reference = [set(base.recognize(q).name) for q in queries]

    rows = []
    for size in sizes:
        path = tmp / f"m{size}.db"
        with SqliteMemory(path) as m:
            for c in real:
                m.add(c)
            rate = fill(m, real, size, args.parts) if size > len(real) else float("nan")
        gc.collect()
        p = Personalizer(args.preset, memory=path)
        p._models["pipeline"] = pipe  # the same loaded backbone for every size
        t0 = time.perf_counter()
        p.recognize(queries[0])
        first = time.perf_counter() - t0
        passes, warm, same = [], [], 0
        for q, want in zip(queries, reference, strict=True):
            t0 = time.perf_counter()
            pipe.encode(q)
            passes.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            got = p.recognize(q)
            warm.append(time.perf_counter() - t0)
            same += {n for n in got.name if not str(n).startswith("synthetic")} == want
        rows.append((size, rate, first, statistics.median(passes), statistics.median(warm),
                     statistics.median(w / s for w, s in zip(warm, passes, strict=True)), same / len(queries), rss_mb(),
                     os.path.getsize(path) / 2**20))
        p.close()
        del p
        gc.collect()
    print(f"warm recognize vs one pass by memory size ({args.preset}, {len(queries)} queries, "
          f"{args.parts} parts per synthetic concept, BLAS as Personalizer.recognize sets it)")
    print(f"{'concepts':>9} {'add/s':>7} {'first s':>8} {'pass s':>7} {'warm s':>7} {'ratio':>6} "
          f"{'same':>5} {'RSS MB':>7} {'file MB':>8}")
    for size, rate, first, tp, tw, ratio, same, rss, mb in rows:
        print(f"{size:>9} {rate:7.0f} {first:8.2f} {tp:7.3f} {tw:7.3f} {ratio:6.3f} {same:5.2f} {rss:7.0f} {mb:8.1f}")
    print("targets: ratio <= 1.1 at 10,000 concepts, <= 1.5 at 100,000; RSS <= 2048 MB at 100,000; same = 1.00")
    return 0


if __name__ == "__main__":
    sys.exit(main())
