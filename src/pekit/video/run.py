"""`recognize_video`: sample a clip, recognize each sample, link tracks, write outputs.

Recognition is the caller's per-image function (`Personalizer` passes its own
``recognize`` step), so a video goes through exactly the retrieval that photos do.
Memory is bounded: frames are decoded one at a time; what is kept per sample is its
detections, and per track one JPEG thumbnail of its best frame.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pekit.types import Detections
from pekit.video.decode import VideoInfo, probe, sample_frames
from pekit.video.render import VIDEO_OUT_SUFFIXES, contact_sheet, save_png, thumbnail, write_annotated
from pekit.video.track import Track, Tracker

log = logging.getLogger(__name__)

__all__ = ["ConfirmFn", "RecognizeFn", "VideoFrame", "VideoResult", "recognize_video"]

#: ``(image (H, W, 3) uint8, timings) -> Detections``; adds seconds to ``timings`` keys
RecognizeFn = Callable[[np.ndarray, dict[str, float]], Detections]
#: ``Detections -> (n,) bool``: which detections reach their concept's threshold (strong)
ConfirmFn = Callable[[Detections], np.ndarray]


@dataclass
class VideoFrame:
    """One sampled frame: ``index`` (among samples), ``time`` (s), its track-named detections."""

    index: int
    time: float
    detections: Detections
    tracks: list[int]

    def to_dict(self) -> dict[str, Any]:
        records = self.detections.to_list()
        for r, t in zip(records, self.tracks, strict=True):
            r["track"] = t
        return {"index": self.index, "time": round(self.time, 3), "detections": records}


@dataclass
class VideoResult:
    """Tracks (who/what, from when to when), per-frame detections and timings of one clip.

    Attributes:
        info: the container's facts (fps, duration, size, codec, audio).
        fps: samples per second of video used.
        tracks: appearances, in order of first appearance.
        frames: per sampled frame, detections named by their track.
        timings: seconds of ``decode``, ``backbone``, ``faces``, ``tracking``, ``render``, ``total``.
        annotated, sheet: written files (or None). The annotated video has no audio.
        sheet_image: the contact sheet as ``(H, W, 3) uint8`` when asked for (``keep_sheet``):
            the best frame per track, or the first frame when nothing was found.
        colours: ``{name: colour}`` used for the boxes in the video and on the sheet.
    """

    info: VideoInfo
    fps: float
    tracks: list[Track]
    frames: list[VideoFrame]
    timings: dict[str, float] = field(default_factory=dict)
    annotated: str | None = None
    sheet: str | None = None
    sheet_image: np.ndarray | None = field(default=None, repr=False)
    colours: dict[str, str] = field(default_factory=dict)

    def timeline(self) -> str:
        """One line per track: ``"0.4–3.2 s  Lin (0.61)"``, or a line saying nothing was found."""
        if not self.tracks:
            return f"none of your concepts appear in {Path(self.info.path).name} ({self.info.duration:.1f} s)"
        return "\n".join(f"{t.start:6.1f}–{t.end:.1f} s  {t.name} ({t.score:.2f})" for t in self.tracks)

    def to_dict(self, *, frames: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "video": self.info.path, "duration": round(self.info.duration, 3), "source_fps": round(self.info.fps, 3),
            "fps": self.fps, "tracks": [t.to_dict() for t in self.tracks],
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            "annotated": self.annotated, "sheet": self.sheet,
            "audio": "dropped" if self.annotated and self.info.audio else None,
        }
        if frames:
            out["frames"] = [f.to_dict() for f in self.frames]
        return out


def _decode(jpeg: bytes) -> np.ndarray:
    import io

    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))


def _progress(total: int, enabled: bool | None) -> Any:
    from tqdm import tqdm

    show = sys.stderr.isatty() if enabled is None else enabled
    return tqdm(total=total or None, desc="video", unit="frame", disable=not show)


def recognize_video(recognize: RecognizeFn, path: str | os.PathLike, *, fps: float = 2.0,
                    max_frames: int | None = None, out: str | os.PathLike | None = None,
                    sheet: str | os.PathLike | None = None, iou: float = 0.3, max_gap: float | None = None,
                    progress: bool | None = None, keep_sheet: bool = False,
                    scene_cut: float | None = None, confirm: ConfirmFn | None = None) -> VideoResult:
    """Recognize concepts through a clip.

    Args:
        recognize: per-image recognition (see `RecognizeFn`).
        path: the video file (anything FFmpeg reads: MP4, MOV, MKV, WebM...).
        fps: samples per second of video (default 2).
        max_frames: cap on the number of samples (None: the whole clip).
        out: annotated video path (``.mp4``, ``.mov`` or ``.mkv``; audio dropped).
        sheet: contact sheet path (PNG): the best frame of each track.
        iou, max_gap: tracking settings (`Tracker`); ``max_gap`` defaults to 2 samples.
        progress: progress bar (default: when stderr is a terminal).
        keep_sheet: also return the contact sheet image in ``VideoResult.sheet_image``.
        scene_cut: also sample at scene cuts (see `sample_frames`).
        confirm: which of ``recognize``'s detections are strong (see `Tracker`): a
            ``recognize`` that also returns detections a little under their thresholds
            marks the rest weak; weak ones only extend tracks, so an appearance starts at
            the frame the object enters, not the first frame it clears the threshold.
            None: every detection is strong.

    Raises:
        VideoError: unreadable / empty / undecodable video (nothing is written then).
    """
    from pekit.errors import InvalidInputError

    start = time.perf_counter()
    if not (isinstance(fps, (int, float)) and np.isfinite(fps) and fps > 0):
        raise InvalidInputError(f"fps must be a positive number of samples per second, got {fps}")
    if out is not None and Path(out).suffix.lower() not in VIDEO_OUT_SUFFIXES:
        raise InvalidInputError(f"the annotated video must end in one of {', '.join(VIDEO_OUT_SUFFIXES)}, got '{out}'")
    info = probe(path)
    timings = {"decode": 0.0, "backbone": 0.0, "faces": 0.0, "tracking": 0.0, "render": 0.0}
    tracker = Tracker(iou=iou, max_gap=2.0 / fps + 1e-3 if max_gap is None else max_gap)
    thumbs: dict[int, tuple[bytes, list[float]]] = {}
    first: bytes | None = None
    want_sheet = sheet is not None or keep_sheet
    frames: list[VideoFrame] = []
    expected = int(info.duration * fps) + 1 if info.duration else 0
    if max_frames is not None:
        expected = min(expected, max_frames) if expected else max_frames
    samples = sample_frames(path, fps=fps, max_frames=max_frames, scene_cut=scene_cut)
    with closing(samples), _progress(expected, progress) as bar:
        while True:
            t0 = time.perf_counter()
            frame = next(samples, None)
            timings["decode"] += time.perf_counter() - t0
            if frame is None:
                break
            dets = recognize(frame.image, timings)
            t0 = time.perf_counter()
            linked = tracker.update(frame.index, frame.time, dets, None if confirm is None else confirm(dets))
            if first is None and keep_sheet:
                first = thumbnail(frame.image, np.zeros(4))[0]
            for i, (track_id, best) in enumerate(linked):
                if best and want_sheet:
                    thumbs[track_id] = thumbnail(frame.image, dets.xyxy[i])
            frames.append(VideoFrame(frame.index, frame.time, dets, [t for t, _ in linked]))
            timings["tracking"] += time.perf_counter() - t0
            bar.update(1)
    t0 = time.perf_counter()
    tracks = tracker.finish()
    by_key = {t.key: t for t in tracks}
    for f in frames:  # keep detections of confirmed tracks; names follow the track's (smoothed) name
        if len(f.detections):
            keep = np.array([k in by_key for k in f.tracks], bool)
            f.detections = f.detections[keep]
            f.tracks = [by_key[k].id for k in np.asarray(f.tracks)[keep].tolist()]
            named = [tracks[i - 1] for i in f.tracks]  # final ids are 1..n in the order of `tracks`
            f.detections.name = np.array([t.name for t in named], dtype=object)
            f.detections.concept_id = np.array([t.concept_id for t in named], np.int64)
    timings["tracking"] += time.perf_counter() - t0
    colour_of: dict[str, int] = {}
    for t in tracks:
        colour_of.setdefault(t.name, len(colour_of))
    from pekit.prompt.overlay import PALETTE

    result = VideoResult(info, float(fps), tracks, frames, timings,
                         colours={n: PALETTE[i % len(PALETTE)][0] for n, i in colour_of.items()})
    t0 = time.perf_counter()
    if out is not None:
        write_annotated(path, out, [f.time for f in frames], [f.detections for f in frames], colour_of)
        result.annotated = str(out)
    if want_sheet:
        tiles = [(*thumbs[t.key], t.name, t.score, f"{t.name}  {t.start:.1f}-{t.end:.1f} s") for t in tracks
                 if t.key in thumbs]
        image = contact_sheet(tiles, colour_of) if tiles else None
        if keep_sheet:
            result.sheet_image = image if image is not None or first is None else _decode(first)
        if sheet is not None and image is not None:
            save_png(image, sheet)
            result.sheet = str(sheet)
        elif sheet is not None:
            log.warning("nothing recognized in %s: no contact sheet written", path)
    timings["render"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - start
    return result
