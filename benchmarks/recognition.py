"""Recognition benchmark on the DreamBooth development set: k = 1..4 references, 5 seeds.

Runs exactly what ``pekit eval recognition`` runs (one code path) with the offline preset
and prints the table and the total wall time. Photos are embedded once and cached, so a
second run only re-does the (cheap) matching.

    python benchmarks/recognition.py                      # ../shared/data/dreambooth
    python benchmarks/recognition.py --data DIR --out report/recognition --preset offline

Exits 0 with a message when the dataset folder is absent.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "dreambooth"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("PEKIT_DREAMBOOTH", DEFAULT_DATA)),
                        help=f"DreamBooth folder (default: {DEFAULT_DATA})")
    parser.add_argument("--out", default="report/recognition", help="report folder (default: report/recognition)")
    parser.add_argument("--preset", default="offline")
    parser.add_argument("--refs", default="1,2,3,4")
    parser.add_argument("--seeds", default="5")
    parser.add_argument("--cache", help="cache folder (default: the user cache dir)")
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        print(f"dataset not found at {args.data}; nothing to benchmark (pass --data DIR)")
        return 0

    from pekit.cli import main as pekit_main

    command = ["eval", "recognition", "--dataset", f"folder:{args.data}", "--refs", args.refs,
               "--seeds", args.seeds, "--preset", args.preset, "--out", args.out, "--sweep-threshold"]
    if args.cache:
        command += ["--cache", args.cache]
    start = time.perf_counter()
    code = pekit_main(command)
    print(f"\ntotal wall time: {time.perf_counter() - start:.1f} s (pekit {' '.join(command)})")
    return code


if __name__ == "__main__":
    sys.exit(main())
