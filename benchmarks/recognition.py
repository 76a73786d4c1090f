"""Recognition benchmark on the DreamBooth development set: plain and stress splits.

Runs exactly what ``pekit eval recognition`` runs (one code path) with the offline preset:
the plain split (k = 1, 2, 4; saliency and drawn-box references) and the stress split
(`pekit.eval.stress`: objects shrunk into clutter and 320 px photos, made deterministically
from the plain photos into the cache folder), each with all concepts in memory, with
each concept alone and with every concept but the photo's own (strangers), and prints the
tables and the wall time. Photos are embedded once and
cached, so a second run only re-does the (cheap) matching.

    python benchmarks/recognition.py                      # ../shared/data/dreambooth
    python benchmarks/recognition.py --data DIR --out report/recognition --split plain

Exits 0 with a message when the dataset folder is absent.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from _data import DEFAULT_DATA, add_data_argument, missing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_argument(parser, help=f"DreamBooth folder (default: {DEFAULT_DATA})")
    parser.add_argument("--out", default="report/recognition", help="report folder (default: report/recognition)")
    parser.add_argument("--preset", default="offline", help="recognition preset (default: offline)")
    parser.add_argument("--refs", default="1,2,4", help="reference photos per concept, k (default: 1,2,4)")
    parser.add_argument("--seeds", default="5", help="reference draws per k (default: 5)")
    parser.add_argument("--gallery", default="all,single,strangers",
                        help="all, single, strangers and/or a gallery size N, comma-separated "
                             "(default: all,single,strangers)")
    parser.add_argument("--split", default="plain,stress",
                        help="plain, stress, or both: plain,stress (the default; 'both' is the same)")
    parser.add_argument("--cache", help="cache folder (default: the user cache dir)")
    args = parser.parse_args(argv)
    if missing(args.data):
        return 0

    from pekit.cli import main as pekit_main
    from pekit.eval.cache import default_cache_dir
    from pekit.eval.stress import make_stress_split

    start = time.perf_counter()
    code = 0
    splits = ["plain", "stress"] if args.split.strip() == "both" else [s.strip() for s in args.split.split(",")]
    for split in [s for s in splits if s]:
        if split == "plain":
            dataset, extractors = f"folder:{args.data}", "saliency,box"
        elif split == "stress":
            root = Path(args.cache).expanduser() if args.cache else default_cache_dir()
            out = make_stress_split(args.data, root / "stress-split", reuse=True)
            dataset, extractors = f"stress:{out}", "saliency"
        else:
            print(f"unknown split '{split}'; use plain or stress")
            return 2
        command = ["eval", "recognition", "--dataset", dataset, "--refs", args.refs, "--seeds", args.seeds,
                   "--gallery", args.gallery, "--extractor", extractors, "--preset", args.preset,
                   "--out", f"{args.out}/{split}", "--quiet"]
        if args.cache:
            command += ["--cache", args.cache]
        print(f"\n## {split} split")
        code = pekit_main(command) or code
    print(f"\ntotal wall time: {time.perf_counter() - start:.1f} s")
    return code


if __name__ == "__main__":
    sys.exit(main())
