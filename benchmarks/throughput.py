"""Batch throughput: photos per second for folders and evaluation, loop vs stream.

    python benchmarks/throughput.py [--photos 24] [--rounds 3] [--presets offline,offline-fast]

For each preset, on the same N photo *files* (decoding is part of the work, as in a
folder or an evaluation), interleaved over ``--rounds`` rounds so machine load hits
every mode alike:

* ``embed loop``: ``load_image`` + ``Pipeline.encode`` one photo after another (the
  evaluation's first pass before `Pipeline.encode_many`);
* ``embed stream``: ``Pipeline.encode_many`` (a decoding thread ahead; whole photos in
  parallel, the cores split between them);
* ``recognize loop``: ``Personalizer.recognize`` per file against 10 concepts (what
  ``pekit recognize folder/`` did);
* ``recognize stream``: ``Personalizer.recognize_many`` (what it does now).

Prints photos/s (median of rounds) and the stream / loop ratio per preset, plus each
preset's stream against the offline loop. Photos come from ../shared/data/dreambooth
(skipped cleanly without it: scikit-image samples written to a temporary folder).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from pekit import Personalizer
from pekit.images import load_image

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "dreambooth"


def photo_files(n: int, tmp: Path) -> list[Path]:
    if DATA.is_dir():
        files = sorted(DATA.glob("*/*.jpg"))
        step = max(1, len(files) // n)
        return files[::step][:n]
    from PIL import Image
    from skimage import data

    samples = [data.chelsea(), data.astronaut(), data.coffee(), data.rocket(), data.cat()]
    out = []
    for i in range(n):
        path = tmp / f"sample{i}.jpg"
        Image.fromarray(samples[i % len(samples)]).save(path, quality=92)
        out.append(path)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=int, default=24)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--presets", default="offline,offline-fast")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        files = photo_files(args.photos + 10, Path(tmp))
        queries, refs = files[: args.photos], files[args.photos:]
        people = {}
        for preset in args.presets.split(","):
            p = Personalizer(preset, memory="memory://")
            for i, ref in enumerate(refs):
                p.introduce(f"concept{i}", str(ref))
            pipe = p.pipeline
            list(pipe.encode_many(queries[:2]))  # warm up both session settings
            pipe.encode(load_image(queries[0]))
            people[preset] = p

        modes = {
            "embed loop": lambda p: [p.pipeline.encode(load_image(f)) for f in queries],
            "embed stream": lambda p: list(p.pipeline.encode_many(queries)),
            "recognize loop": lambda p: [p.recognize(str(f)) for f in queries],
            "recognize stream": lambda p: list(p.recognize_many(str(f) for f in queries)),
        }
        rates: dict[tuple[str, str], list[float]] = {}
        for _ in range(args.rounds):
            for preset, p in people.items():
                for mode, run in modes.items():
                    start = time.perf_counter()
                    run(p)
                    rates.setdefault((preset, mode), []).append(len(queries) / (time.perf_counter() - start))

    med = {key: statistics.median(v) for key, v in rates.items()}
    base = args.presets.split(",")[0]
    print(f"{len(queries)} photos, {args.rounds} interleaved rounds, median photos/s\n")
    print(f"| preset | mode | photos/s | stream / loop | / {base} loop |")
    print("|---|---|---|---|---|")
    for (preset, mode), rate in med.items():
        kind = mode.split()[0]
        loop = med[(preset, f"{kind} loop")]
        ratio = f"{rate / loop:.2f}x" if mode.endswith("stream") else ""
        print(f"| {preset} | {mode} | {rate:.2f} | {ratio} | {rate / med[(base, f'{kind} loop')]:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
