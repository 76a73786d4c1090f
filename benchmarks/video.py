"""Video benchmark: a synthetic object clip with exact ground truth, the real Hamilton clip, RSS.

    PYTHONPATH=src python benchmarks/video.py [--data ../shared/data] [--skip-objects] [--skip-people] [--rss]
        [--rss-seconds 600]

1. Objects: two 1280 x 720, 10 fps, 8 s clips built from DreamBooth photos (photo 03 of
   each subject, not a reference), see `_clips`: (a) on a candle scene, the backpack pans in
   at 1.0 s and leaves at 5.0 s, the bear plushie stands at the right from 3.0 s to 7.0 s;
   (b) on a berry bowl, the bear at the left 0.5-2.5 s and again at the right 5.0-7.5 s,
   while a wolf plushie (a look-alike not in memory) crosses the frame throughout.
   Memory: backpack and bear, from photos 00 and 01 with their boxes. Reports track
   precision / recall over appearances (a track counts when its name is right and >= 50 %
   of its frames are inside the appearance), ID switches (extra tracks on one
   appearance), false names on sampled frames, and start/end error in sampled frames.
2. People: ``video/short_hamilton_clip.mp4`` with Lin (1 photo) and Alex (3 photos) in memory
   (``--faces dlib-cnn``: dlib's CNN face detector, which also finds turned faces, slowly).
3. ``--rss [--rss-seconds 600]``: peak RSS during a 10 s and a 60 s (or 10 min) synthetic
   720p clip with every output on (recognition is a stand-in, so it measures decoding,
   tracking, per-frame records, thumbnails, the annotated MP4 and the contact sheet).
Each part prints seconds of processing per second of video, split decode / backbone / faces /
tracking / render.
"""

from __future__ import annotations

import argparse
import csv
import resource
import tempfile
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import numpy as np
from _data import missing
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


#: (name, start s, end s, x(t) -> left edge, top) per appearance; ground truth of each clip
Appearance = tuple[str, float, float, Callable[[float], int], int]


def _clips(root: Path) -> dict[str, tuple[str, list[Appearance], list[Appearance]]]:
    """name -> (background subject, appearances of concepts in memory, distractors not in memory)."""
    return {
        # the backpack pans in at 1.0 s and leaves at 5.0 s; the bear stands at the right 3.0-7.0 s
        "pan+still": ("candle", [("backpack", 1.0, 5.0, lambda t: int(40 + (t - 1.0) / 4.0 * 520), 150),
                                 ("bear", 3.0, 7.0, lambda t: 880, 300)], []),
        # the bear twice (left 0.5-2.5 s, right 5.0-7.5 s: a 2.5 s gap is two appearances), while a
        # wolf plushie (a look-alike, not in memory) drifts between them the whole time
        "twice+look-alike": ("candle", [("bear", 0.5, 2.5, lambda t: 60, 300),
                                            ("bear", 5.0, 7.5, lambda t: 1020, 260)],
                             [("wolf_plushie", 0.0, 8.0, lambda t: int(380 + t * 18), 120)]),
    }


def _render(root: Path, boxes: dict, background: str, shown: list[Appearance]) -> list[np.ndarray]:
    bg = np.asarray(Image.open(root / background / "00.jpg").convert("RGB").resize((W, H), Image.Resampling.BILINEAR))
    subject = {"backpack": ("backpack", 420), "bear": ("bear_plushie", 360), "wolf_plushie": ("wolf_plushie", 300)}
    crops = {name: _crop(root, boxes, subject[name][0], "03.jpg", subject[name][1]) for name in subject}
    frames = []
    for i in range(8 * FPS):
        t, img = i / FPS, bg.copy()
        for name, lo, hi, x_of, y in shown:
            if lo <= t < hi:
                crop = crops[name]
                x = x_of(t)
                img[y:y + crop.shape[0], x:x + crop.shape[1]] = crop[:, :W - x]
        frames.append(img)
    return frames


def objects(root: Path, tmp: Path) -> None:
    """Appearance-level scores over the synthetic clips (see `_clips`)."""
    boxes = _boxes(root)
    totals = {"tracks": 0, "good": 0, "appearances": 0, "found": 0, "switches": 0, "false": 0}
    worst = 0.0
    timings: dict[str, float] = {}
    seconds = 0.0
    with Personalizer(memory="memory://") as p:
        p.introduce("backpack", [root / "backpack" / "00.jpg", root / "backpack" / "01.jpg"], category="backpack",
                    boxes=[boxes[("backpack", "00.jpg")], boxes[("backpack", "01.jpg")]])
        p.introduce("bear", [root / "bear_plushie" / "00.jpg", root / "bear_plushie" / "01.jpg"], category="plushie",
                    boxes=[boxes[("bear_plushie", "00.jpg")], boxes[("bear_plushie", "01.jpg")]])
        for label, (background, truth, distractors) in _clips(root).items():
            clip = tmp / f"{label}.mp4"
            _write(clip, _render(root, boxes, background, distractors + truth))
            result = p.recognize_video(clip, fps=2.0, out=tmp / f"{label}_annotated.mp4", sheet=tmp / f"{label}.png")
            step = 1 / result.fps
            print(f"clip '{label}':")
            print("\n".join("  " + line for line in result.timeline().splitlines()))
            matched: dict[int, int] = {}
            for tr in result.tracks:
                times = [f.time for f in result.frames if tr.id in f.tracks]
                for k, (name, lo, hi, _, _) in enumerate(truth):
                    if tr.name == name and sum(lo - 1e-6 <= t < hi for t in times) >= 0.5 * len(times):
                        matched[tr.id] = k
                        err_start, err_end = abs(tr.start - lo) / step, abs(tr.end - (hi - step)) / step
                        worst = max(worst, err_start, err_end)
                        print(f"  {name} {lo:g}-{hi:g} s: start error {err_start:.0f} sampled frame(s), end error "
                              f"{err_end:.0f}")
                        break
                else:
                    print(f"  track {tr.id} ({tr.name} {tr.start:.1f}-{tr.end:.1f} s) matches no appearance")
            for f in result.frames:  # names on frames where that concept is not there
                present = {name for name, lo, hi, _, _ in truth if lo - 1e-6 <= f.time < hi}
                totals["false"] += sum(str(n) not in present for n in f.detections.name)
            hits = list(matched.values())
            totals["tracks"] += len(result.tracks)
            totals["good"] += len(matched)
            totals["appearances"] += len(truth)
            totals["found"] += len(set(hits))
            totals["switches"] += len(hits) - len(set(hits))
            seconds += result.info.duration
            for key, value in result.timings.items():
                timings[key] = timings.get(key, 0.0) + value
    print(f"objects: track precision {totals['good']}/{totals['tracks']}, recall {totals['found']}/"
          f"{totals['appearances']}, ID switches {totals['switches']}, false names on sampled frames "
          f"{totals['false']}, worst start/end error {worst:.0f} sampled frame(s)")
    _report("objects (1280x720, 2 fps samples)", seconds, timings)


def people(data: Path, faces: str = "dlib") -> None:
    clip = data / "video" / "short_hamilton_clip.mp4"
    with Personalizer(memory="memory://", faces=faces) as p:
        p.introduce("Lin", data / "people" / "lin_manuel_miranda" / "00.png", kind="person")
        p.introduce("Alex", sorted((data / "people" / "alex_lacamoire").iterdir()), kind="person")
        result = p.recognize_video(clip, fps=2.0)
    print(result.timeline())
    _report(f"hamilton ({result.info.width}x{result.info.height}, 2 fps samples, faces {faces})", result.info.duration,
            result.timings)


def rss(tmp: Path, long_seconds: int) -> None:
    """Peak RSS of `recognize_video` on a 10 s and a ``long_seconds`` 720p clip, all outputs on.

    The clips are smooth moving colour bands with a white square crossing them (cheap to
    encode); recognition is a stand-in that boxes the square in every sample, so the run
    measures decoding, scene cuts, tracking, per-frame records, the key-frame thumbnails,
    the annotated MP4 and the contact sheet, not the backbone.
    """
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float32)

    def frame(i: int) -> np.ndarray:
        phase = i / FPS
        img = np.stack([128 + 100 * np.sin(xs / 90 + phase), 128 + 100 * np.sin(ys / 70 - phase / 2),
                        128 + 100 * np.sin((xs + ys) / 150 + phase / 3)], axis=2).astype(np.uint8)
        x = int(40 + (i * 7) % (W - 200))
        img[200:360, x:x + 160] = 255
        return img

    def square(image: np.ndarray, timings: dict[str, float]) -> Detections:
        cols = np.nonzero(image[280].min(axis=1) > 250)[0]
        if not len(cols):
            return Detections.empty()
        return Detections(xyxy=[[cols.min(), 200, cols.max() + 1, 360]], score=[0.8], name=["square"])

    for seconds in (10, long_seconds):  # write both first: the encoder's buffers would count in the peak
        _write(tmp / f"long{seconds}.mp4", (frame(i) for i in range(seconds * FPS)))
    for seconds in (10, long_seconds):
        clip = tmp / f"long{seconds}.mp4"
        _reset_peak()
        start = time.perf_counter()
        result = recognize_video(square, clip, fps=2.0, out=tmp / f"long{seconds}_annotated.mp4",
                                 sheet=tmp / f"long{seconds}.png", keep_sheet=True)
        t = result.timings
        print(f"rss: {seconds} s clip ({clip.stat().st_size / 2**20:.0f} MiB), {len(result.frames)} samples, "
              f"{len(result.tracks)} track(s), {len(result.scenes)} scene(s) in {time.perf_counter() - start:.1f} s "
              f"(decode {t['decode']:.1f}, tracking {t['tracking']:.1f}, render {t['render']:.1f}); "
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
    ap.add_argument("--faces", default="dlib", help="face model for the Hamilton clip (dlib, dlib-cnn, onnx:<path>)")
    ap.add_argument("--rss", action="store_true", help="peak RSS on a 10 s and a --rss-seconds clip")
    ap.add_argument("--rss-seconds", type=int, default=60, help="length of the long RSS clip (600: 10 minutes)")
    args = ap.parse_args()
    data = Path(args.data)
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_objects and not missing(data / "dreambooth"):
            objects(data / "dreambooth", Path(tmp))
        if not args.skip_people and not missing(data / "people") and not missing(data / "video"):
            people(data, args.faces)
        if args.rss:
            rss(Path(tmp), args.rss_seconds)


if __name__ == "__main__":
    main()
