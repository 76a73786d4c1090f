"""Video benchmark: a synthetic object clip with exact ground truth, the real Hamilton clip, RSS.

    PYTHONPATH=src python benchmarks/video.py [--data ../shared/data] [--skip-objects] [--skip-people] [--rss]

1. Objects: a 1280 x 720, 10 fps, 8 s clip built from DreamBooth photos: a candle scene
   as background (not in memory); the backpack (photo 03, not a reference) pans in at 1.0 s
   and leaves at 5.0 s; the bear plushie (photo 03) stands at the right from 3.0 s to 7.0 s.
   Memory: both, from photos 00 and 01 with their boxes. Reports track recall / precision
   (a track counts when its name is right and >= 50 % of its frames are in the truth),
   ID switches (extra tracks on one appearance), start/end error in sampled frames.
2. People: ``video/short_hamilton_clip.mp4`` with Lin (1 photo) and Alex (3 photos) in memory.
3. ``--rss``: peak RSS after a 10 s and after a 120 s synthetic 720p clip (recognition stubbed,
   so it measures decode + sampling + tracking memory).
Each part prints seconds of processing per second of video, split decode / backbone / faces /
tracking / render.
"""

from __future__ import annotations

import argparse
import csv
import resource
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

from pekit import Personalizer
from pekit.types import Detections
from pekit.video import recognize_video

W, H, FPS = 1280, 720, 10


def _write(path: Path, frames, fps: int = FPS) -> None:
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.options = {"preset": "veryfast"}
        for i, img in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def _boxes(root: Path) -> dict[tuple[str, str], list[float]]:
    with open(root / "boxes.csv", newline="") as fh:
        return {(r["subject"], r["file"]): [float(r[k]) for k in ("x0", "y0", "x1", "y1")] for r in csv.DictReader(fh)}


def _crop(root: Path, boxes: dict, subject: str, file: str, height: int) -> np.ndarray:
    img = Image.open(root / subject / file).convert("RGB")
    crop = img.crop(tuple(int(v) for v in boxes[(subject, file)]))
    return np.asarray(crop.resize((round(crop.width * height / crop.height), height), Image.Resampling.BILINEAR))


def _report(label: str, seconds_of_video: float, timings: dict[str, float]) -> None:
    parts = ", ".join(f"{k} {v / seconds_of_video:.3f}" for k, v in timings.items() if k != "total")
    share = (timings["decode"] + timings["tracking"]) / max(timings["total"] - timings["render"], 1e-9)
    print(f"{label}: {timings['total'] / seconds_of_video:.2f} s per video second ({parts}); "
          f"decode+tracking {100 * share:.1f} % of recognition time")


def objects(root: Path, tmp: Path) -> None:
    boxes = _boxes(root)
    bg = np.asarray(Image.open(root / "candle" / "00.jpg").convert("RGB").resize((W, H), Image.Resampling.BILINEAR))
    bag, bear = _crop(root, boxes, "backpack", "03.jpg", 420), _crop(root, boxes, "bear_plushie", "03.jpg", 360)
    truth: dict[str, tuple[float, float]] = {"backpack": (1.0, 5.0), "bear": (3.0, 7.0)}
    frames = []
    for i in range(8 * FPS):
        t, img = i / FPS, bg.copy()
        if truth["bear"][0] <= t < truth["bear"][1]:
            img[300:300 + bear.shape[0], 880:880 + bear.shape[1]] = bear
        if truth["backpack"][0] <= t < truth["backpack"][1]:
            x = int(40 + (t - 1.0) / 4.0 * 520)  # pans left to right
            img[150:150 + bag.shape[0], x:x + bag.shape[1]] = bag
        frames.append(img)
    clip = tmp / "objects.mp4"
    _write(clip, frames)
    with Personalizer(memory="memory://") as p:
        p.introduce("backpack", [root / "backpack" / "00.jpg", root / "backpack" / "01.jpg"], category="backpack",
                    boxes=[boxes[("backpack", "00.jpg")], boxes[("backpack", "01.jpg")]])
        p.introduce("bear", [root / "bear_plushie" / "00.jpg", root / "bear_plushie" / "01.jpg"], category="plushie",
                    boxes=[boxes[("bear_plushie", "00.jpg")], boxes[("bear_plushie", "01.jpg")]])
        result = p.recognize_video(clip, fps=2.0, out=tmp / "objects_annotated.mp4", sheet=tmp / "objects.png")
    step = 1 / result.fps
    print(result.timeline())
    good = 0
    for tr in result.tracks:
        times = [f.time for f in result.frames if tr.id in f.tracks]
        lo, hi = truth.get(tr.name, (0.0, -1.0))
        inside = sum(lo - 1e-6 <= t < hi for t in times)
        ok = inside >= 0.5 * len(times)
        good += ok
        if ok:
            print(f"  {tr.name}: start error {abs(tr.start - lo) / step:.0f} sampled frame(s), end error "
                  f"{abs(tr.end - (hi - step)) / step:.0f}")
    for name, (lo, hi) in truth.items():
        tp = fp = fn = 0
        for f in result.frames:
            named, present = name in f.detections.name.tolist(), lo - 1e-6 <= f.time < hi
            tp, fp, fn = tp + (named and present), fp + (named and not present), fn + (present and not named)
        print(f"  {name} per sampled frame: {tp} right, {fp} false, {fn} missed")
    covered = {tr.name for tr in result.tracks if tr.name in truth}
    switches = sum(max(0, sum(tr.name == n for tr in result.tracks) - 1) for n in truth)
    print(f"objects: tracks {len(result.tracks)}, precision {good}/{len(result.tracks)}, recall "
          f"{len(covered)}/{len(truth)}, ID switches {switches}")
    _report("objects (1280x720, 2 fps samples)", result.info.duration, result.timings)


def people(data: Path) -> None:
    clip = data / "video" / "short_hamilton_clip.mp4"
    with Personalizer(memory="memory://") as p:
        p.introduce("Lin", data / "people" / "lin_manuel_miranda" / "00.png", kind="person")
        p.introduce("Alex", sorted((data / "people" / "alex_lacamoire").iterdir()), kind="person")
        result = p.recognize_video(clip, fps=2.0)
    print(result.timeline())
    _report(f"hamilton ({result.info.width}x{result.info.height}, 2 fps samples)", result.info.duration,
            result.timings)


def rss(tmp: Path) -> None:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (H, W + 400, 3), np.uint8)

    def empty(image: np.ndarray, timings: dict[str, float]) -> Detections:
        return Detections.empty()

    for seconds in (10, 120):  # write both first: the encoder's buffers would count in the peak
        _write(tmp / f"long{seconds}.mp4", (np.ascontiguousarray(base[:, (i % 400):(i % 400) + W])
                                            for i in range(seconds * FPS)))
    for seconds in (10, 120):
        clip = tmp / f"long{seconds}.mp4"
        _reset_peak()
        start = time.perf_counter()
        result = recognize_video(empty, clip, fps=2.0)
        print(f"rss: {seconds} s clip, {len(result.frames)} samples in {time.perf_counter() - start:.1f} s; "
              f"peak RSS during it {_peak():.0f} MiB")


def _reset_peak() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # Linux: resets VmHWM to the current RSS
    except OSError:
        pass


def _peak() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(Path(__file__).parents[1] / ".." / "shared" / "data"))
    ap.add_argument("--skip-objects", action="store_true")
    ap.add_argument("--skip-people", action="store_true")
    ap.add_argument("--rss", action="store_true")
    args = ap.parse_args()
    data = Path(args.data)
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_objects:
            objects(data / "dreambooth", Path(tmp))
        if not args.skip_people:
            people(data)
        if args.rss:
            rss(Path(tmp))


if __name__ == "__main__":
    main()
