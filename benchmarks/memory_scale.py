"""Memory scale: both stores with many owners and one big shared album (384-d views).

    PYTHONPATH=src python benchmarks/memory_scale.py [--small] [--stores sqlite,postgresql]

Per store, one run:

1. the *album* namespace first (a photo app's shared family album: 10^5 views; ``--small``: 10^4),
2. then *owners*: many small namespaces of 100 views each up to the total (10^6 views in
   ~10^4 namespaces; ``--small``: 10^5 in ~10^3), 10 views per concept, loaded with
   ``add_many`` (one transaction per namespace; the album in batches of 500 concepts);
   then 200 single ``add`` calls (one transaction each) at full size: both throughputs in views/s;
3. at each total size (checkpoints), 64 single-query searches in one small namespace
   (``probe``): p50/p99 latency; it must not grow with the other namespaces;
4. 64 searches in the album: p50/p99, recall@1 against exact search (numpy, same data);
   PostgreSQL: exact scan, then the namespace's HNSW index (build time; ``hnsw.ef_search``
   swept: recall against latency);
5. RSS (this process; for PostgreSQL also the server's processes) and size on disk.

Data: random unit vectors; 10 % of the concepts are planted near-duplicates of another
concept of the same namespace (cosine ~0.95), and the queries are noisy copies (cosine ~0.9)
of stored views, half of them of planted concepts, so the top-1 is contested.

PostgreSQL is the ``pgserver`` wheel's (``[dev]``: PostgreSQL 16 + pgvector 0.6), on a Unix socket
in a temporary folder (fsync on: the same durability as a real server).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from pekit._threads import blas_threads
from pekit.memory import open_memory
from pekit.memory._search import exact_search
from pekit.types import Concept

D = 384
VIEWS_PER_CONCEPT = 10
OWNER_VIEWS = 100
QUERIES = 64
EF_SWEEP = (40, 100, 200, 400)


def unit(a: np.ndarray) -> np.ndarray:
    return (a / np.linalg.norm(a, axis=-1, keepdims=True)).astype(np.float32)


def make_namespace(rng: np.random.Generator, n_views: int) -> np.ndarray:
    """``(concepts, VIEWS_PER_CONCEPT, D)`` unit views; 10 % near-duplicates of another concept."""
    n = max(1, n_views // VIEWS_PER_CONCEPT)
    views = unit(rng.normal(size=(n, VIEWS_PER_CONCEPT, D)))
    planted = rng.choice(n, size=n // 10, replace=False) if n > 1 else np.array([], int)
    for i in planted:
        j = (i + 1 + rng.integers(n - 1)) % n
        views[i] = unit(views[j] + 0.33 * unit(rng.normal(size=(VIEWS_PER_CONCEPT, D))))
    return views


def queries_for(rng: np.random.Generator, views: np.ndarray) -> np.ndarray:
    picks = rng.integers(len(views), size=QUERIES)
    rows = views[picks, rng.integers(VIEWS_PER_CONCEPT, size=QUERIES)]
    return unit(rows + 0.48 * unit(rng.normal(size=rows.shape)))


def add_namespace(memory: Any, namespace: str, views: np.ndarray, *, batch: int = 500) -> tuple[list[int], float]:
    """Load a namespace with ``add_many`` (batches of ``batch`` concepts); ``(ids, seconds)``."""
    start, ids = time.perf_counter(), []
    for lo in range(0, len(views), batch):
        ids += [c.id for c in memory.add_many([Concept(f"c{i}", v, backbone="bench-384", namespace=namespace)
                                               for i, v in enumerate(views[lo:lo + batch], lo)])]
    return ids, time.perf_counter() - start


def single_adds(memory: Any, rng: np.random.Generator, n: int = 200) -> float:
    """Seconds for ``n`` single `add` calls (one transaction each) into a fresh namespace."""
    views = make_namespace(rng, n * VIEWS_PER_CONCEPT)
    start = time.perf_counter()
    for i, v in enumerate(views):
        memory.add(Concept(f"c{i}", v, backbone="bench-384", namespace="single-adds"))
    return time.perf_counter() - start


def timed_search(memory: Any, namespace: str, queries: np.ndarray) -> tuple[np.ndarray, list[float]]:
    memory.search(queries[0], namespace=namespace)  # warm (caches, plans)
    top, times = [], []
    for q in queries:
        start = time.perf_counter()
        ids, _ = memory.search(q, namespace=namespace, k=1)
        times.append(time.perf_counter() - start)
        top.append(ids[0, 0])
    return np.array(top), times


def recall(found: np.ndarray, views: np.ndarray, ids: list[int], queries: np.ndarray) -> float:
    owners = np.repeat(np.array(ids, np.int64), VIEWS_PER_CONCEPT)
    want, _ = exact_search(views.reshape(-1, D), owners, queries, k=1)
    return float(np.mean(found == want[:, 0]))


def ms(times: list[float], q: float) -> float:
    return 1000 * float(np.quantile(times, q))


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def server_rss_mb(pid: int | None) -> float:
    if pid is None:
        return 0.0
    import psutil

    main = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [main, *main.children()]) / 2**20


def disk_mb(memory: Any, path: Path | None) -> float:
    if path is not None:
        return sum(p.stat().st_size for p in path.parent.glob(path.name + "*")) / 2**20
    with memory._db.transaction("size", write=False) as cur:
        sql = ("SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) FROM pg_class c JOIN pg_namespace n "
               "ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind IN ('r', 't', 'm')")
        return int(cur.execute(sql, (memory.schema,)).fetchone()[0]) / 2**20


def run_store(kind: str, uri: str, path: Path | None, sizes: dict[str, int], server_pid: int | None) -> list[str]:
    rng = np.random.default_rng(0)
    rows: list[str] = []
    with open_memory(uri) as memory:
        album = make_namespace(rng, sizes["album"])
        album_ids, seconds = add_namespace(memory, "album", album)
        added, add_time = album.shape[0] * VIEWS_PER_CONCEPT, seconds
        print(f"[{kind}] album: {added} views in {seconds:.1f} s", file=sys.stderr)
        probe = make_namespace(rng, OWNER_VIEWS)
        probe_ids, seconds = add_namespace(memory, "probe", probe)
        added, add_time = added + OWNER_VIEWS, add_time + seconds
        probe_q = queries_for(rng, probe)
        total, owner = added, 0
        for checkpoint in sizes["checkpoints"]:
            while total < checkpoint:
                _, seconds = add_namespace(memory, f"owner{owner}", make_namespace(rng, OWNER_VIEWS))
                owner, total, added, add_time = owner + 1, total + OWNER_VIEWS, added + OWNER_VIEWS, add_time + seconds
            found, times = timed_search(memory, "probe", probe_q)
            rows.append(f"| {kind} | probe (100 views) | {total:,} | {owner + 2:,} | {ms(times, .5):.2f} | "
                        f"{ms(times, .99):.2f} | {recall(found, probe, probe_ids, probe_q):.3f} | |")
            print(f"[{kind}] {total} views: {rows[-1]}", file=sys.stderr)
        single = single_adds(memory, rng)
        album_q = queries_for(rng, album)
        if kind == "postgresql":
            import pekit.memory.pgvector as pg

            saved, pg.ANN_MIN_VIEWS = pg.ANN_MIN_VIEWS, 10**12  # the server's exact scan, as for small namespaces
            found, times = timed_search(memory, "album", album_q)
            rows.append(f"| {kind} | album exact scan in the server | {total:,} | {owner + 2:,} | "
                        f"{ms(times, .5):.2f} | {ms(times, .99):.2f} | "
                        f"{recall(found, album, album_ids, album_q):.3f} | |")
            pg.ANN_MIN_VIEWS = saved
            start = time.perf_counter()
            memory.search(album_q[0], namespace="album")  # fetches the album's views once
            fetch = time.perf_counter() - start
            found, times = timed_search(memory, "album", album_q)
            rows.append(f"| {kind} | album exact in process (default) | {total:,} | {owner + 2:,} | "
                        f"{ms(times, .5):.2f} | {ms(times, .99):.2f} | "
                        f"{recall(found, album, album_ids, album_q):.3f} | "
                        f"first search fetches the views: {fetch:.1f} s |")
            with open_memory(uri, ann=True) as ann:
                build = ann.build_index("album")
                for ef in EF_SWEEP:
                    pg.EF_SEARCH = ef
                    found, times = timed_search(ann, "album", album_q)
                    rows.append(f"| {kind} | album HNSW (ann=True) | {total:,} | {owner + 2:,} | "
                                f"{ms(times, .5):.2f} | {ms(times, .99):.2f} | "
                                f"{recall(found, album, album_ids, album_q):.3f} | "
                                f"ef_search {ef}; build {build:.0f} s |")
        else:
            found, times = timed_search(memory, "album", album_q)
            rows.append(f"| {kind} | album exact (numpy) | {total:,} | {owner + 2:,} | {ms(times, .5):.2f} | "
                        f"{ms(times, .99):.2f} | {recall(found, album, album_ids, album_q):.3f} | |")
        summary = (f"| {kind} | {added:,} views in {add_time:.0f} s: **{added / add_time:,.0f} views/s** | "
                   f"200 adds in {single:.1f} s: **{200 * VIEWS_PER_CONCEPT / single:,.0f} views/s** | "
                   f"RSS {rss_mb():,.0f} MB" + (f" + server {server_rss_mb(server_pid):,.0f} MB" if server_pid else "")
                   + f" | {disk_mb(memory, path):,.0f} MB |")
    return [*rows, "", summary]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="10^5 views in 10^3 namespaces, album of 10^4")
    parser.add_argument("--total", type=int, help="total views (default 10^6; --small 10^5)")
    parser.add_argument("--album", type=int, help="views in the album namespace (default 10^5; --small 10^4)")
    parser.add_argument("--stores", default="sqlite,postgresql")
    args = parser.parse_args(argv)
    total = args.total or (10**5 if args.small else 10**6)
    album = args.album or (10**4 if args.small else 10**5)
    checkpoints = sorted({c for c in (album + 10**4, total // 4, total // 2, total) if album < c <= total} | {total})
    sizes = {"album": album, "checkpoints": checkpoints}
    lines = [f"Memory scale: {total:,} views in all ({VIEWS_PER_CONCEPT} per concept, {D}-d), album {album:,} views, "
             f"{QUERIES} single-query searches, k=1", "",
             "| store | namespace searched | views in all | namespaces | p50 ms | p99 ms | recall@1 | note |",
             "|---|---|---|---|---|---|---|---|"]
    summaries = []
    with tempfile.TemporaryDirectory() as tmp, blas_threads(1):
        for kind in args.stores.split(","):
            if kind == "sqlite":
                path = Path(tmp) / "memory.db"
                rows = run_store(kind, str(path), path, sizes, None)
            else:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    import pgserver
                server = pgserver.get_server(Path(tmp) / "pg", cleanup_mode="delete")
                try:
                    rows = run_store(kind, server.get_uri(), None, sizes, server.get_pid())
                finally:
                    server.cleanup()
            lines += rows[:-2]
            summaries.append(rows[-1])
    lines += ["", "| store | add_many (bulk load) | add (one concept a transaction) | RSS | size on disk |",
              "|---|---|---|---|---|", *summaries]
    print("\n".join(lines))


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
