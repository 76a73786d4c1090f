"""Service under load: N concurrent clients on 127.0.0.1 mixing introduce / recognize / list.

    python benchmarks/service.py [--clients 16] [--seconds 60] [--threads 1] [--queue 32]

Starts ``pekit serve`` (offline preset, embedded memory in a temporary folder) on a free
127.0.0.1 port, gives each client its own user and key, and for ``--seconds`` each client
loops: 20 % introduce (a new name each time), 50 % recognize, 30 % list. It prints per
route the count, requests/s, p50 and p99 latency, the 5xx count (the target is zero; the
queue is sized so that no client is refused), and afterwards checks that every
acknowledged (201) concept is present, through the API and in the memory file.
Photos are scikit-image samples (a cat's face, a cup) at their own sizes.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import httpx
import numpy as np


def jpeg(image: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(folder: Path, port: int, threads: int, queue: int) -> subprocess.Popen[bytes]:
    src = Path(__file__).resolve().parents[1] / "src"
    env = dict(os.environ, PYTHONPATH=str(src))
    log = open(folder / "server.log", "wb")  # noqa: SIM115 - kept open for the server's life
    proc = subprocess.Popen([sys.executable, "-m", "pekit.cli", "serve", "--memory", str(folder / "memory.db"),
                             "--keys", str(folder / "keys.db"), "--port", str(port), "--threads", str(threads),
                             "--queue", str(queue)], stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"the server exited: {(folder / 'server.log').read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.3)
    proc.kill()
    sys.exit("the server did not start in 180 s")


def client(url: str, token: str, index: int, until: float, photos: dict[str, bytes], box: list[int],
           record: list[tuple[str, int, float]], acknowledged: list[tuple[str, str]], user: str) -> None:
    rng = random.Random(index)
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=120) as http:
        n = 0
        while time.monotonic() < until:
            roll = rng.random()
            t0 = time.perf_counter()
            if roll < 0.2:
                n += 1
                name = f"cat-{index}-{n}"
                r = http.post("/v1/concepts", data={"name": name, "boxes": f"[{box}]"},
                              files=[("photos", ("cat.jpg", photos["cat"], "image/jpeg"))])
                route = "introduce"
                if r.status_code == 201:
                    acknowledged.append((user, name))
            elif roll < 0.7:
                photo = photos["cat"] if rng.random() < 0.5 else photos["cup"]
                r = http.post("/v1/recognize", files={"photo": ("q.jpg", photo, "image/jpeg")},
                              data={"annotate": "false"})
                route = "recognize"
            else:
                r = http.get("/v1/concepts")
                route = "list"
            record.append((route, r.status_code, time.perf_counter() - t0))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--threads", type=int, default=1, help="backbone threads of the server")
    ap.add_argument("--queue", type=int, default=32, help="server queue (>= clients: no 503 by design)")
    args = ap.parse_args()

    from skimage import data

    photos = {"cat": jpeg(data.chelsea()), "cup": jpeg(data.coffee())}
    box = [100, 20, 320, 290]
    with tempfile.TemporaryDirectory(prefix="pekit-bench-") as tmp:
        folder = Path(tmp)
        from pekit.server.keys import KeyStore

        with KeyStore(folder / "keys.db") as keys:
            tokens = [(f"user{i}", keys.create(f"user{i}")) for i in range(args.clients)]
        port = free_port()
        t_start = time.monotonic()
        proc = start_server(folder, port, args.threads, args.queue)
        print(f"server up in {time.monotonic() - t_start:.1f} s on 127.0.0.1:{port} ({os.cpu_count()} CPUs)")
        url = f"http://127.0.0.1:{port}"
        record: list[tuple[str, int, float]] = []
        acknowledged: list[tuple[str, str]] = []
        until = time.monotonic() + args.seconds
        workers = [threading.Thread(target=client, args=(url, token, i, until, photos, box, record, acknowledged,
                                                          user)) for i, (user, token) in enumerate(tokens)]
        t0 = time.monotonic()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        wall = time.monotonic() - t0

        by_route: dict[str, list[float]] = defaultdict(list)
        statuses: dict[int, int] = defaultdict(int)
        for route, status, seconds in record:
            by_route[route].append(seconds)
            statuses[status] += 1
        print(f"\n{args.clients} clients, {wall:.1f} s, {len(record)} requests, {len(record) / wall:.2f} requests/s")
        print(f"{'route':<10} {'count':>6} {'req/s':>7} {'p50 ms':>8} {'p99 ms':>8}")
        for route in ("introduce", "recognize", "list"):
            times = sorted(by_route.get(route, []))
            if not times:
                continue
            p99 = times[min(len(times) - 1, round(0.99 * (len(times) - 1)))]
            print(f"{route:<10} {len(times):>6} {len(times) / wall:>7.2f} {statistics.median(times) * 1000:>8.0f} "
                  f"{p99 * 1000:>8.0f}")
        server_errors = sum(n for s, n in statuses.items() if s >= 500)
        print(f"statuses: {dict(sorted(statuses.items()))}; 5xx: {server_errors}")

        missing_api = []
        for user, token in tokens:
            listed = httpx.get(url + "/v1/concepts", headers={"Authorization": f"Bearer {token}"}, timeout=60).json()
            names = {c["name"] for c in listed}
            missing_api += [n for u, n in acknowledged if u == user and n not in names]
        proc.terminate()
        proc.wait(30)
        from pekit.memory import open_memory

        with open_memory(str(folder / "memory.db"), must_exist=True) as memory:
            stored = {(ns, s.name) for ns in memory.namespaces() for s in memory.summaries(namespace=ns)}
        missing_file = [a for a in acknowledged if a not in stored]
        print(f"acknowledged introduces: {len(acknowledged)}; missing through the API: {len(missing_api)}; "
              f"missing in the memory file: {len(missing_file)}")
        if server_errors or missing_api or missing_file:
            sys.exit(1)


if __name__ == "__main__":
    main()
