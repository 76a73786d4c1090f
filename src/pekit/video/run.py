"""`recognize_video`: sample a clip, recognize each sample, link tracks, write outputs.

Recognition is the caller's per-image function (`Personalizer` passes its own
``recognize`` step), so a video goes through exactly the retrieval that photos do.
Memory is bounded: frames are decoded one at a time; what is kept per sample is its
detections (boxes, names, scores), and, for the contact sheet and answers, one JPEG
thumbnail of the best frame of each track in each scene (and of each scene's first frame).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pekit._files import output_path, same_file
from pekit.types import Detections
from pekit.video.decode import SCENE_CUT, VideoInfo, check_fps, check_max_frames, check_scene_cut, probe, sample_frames
from pekit.video.render import (
    VIDEO_OUT_SUFFIXES,
    check_audio,
    check_sheet_path,
    contact_sheet,
    save_png,
    thumbnail,
    write_annotated,
)
from pekit.video.track import Track, Tracker

log = logging.getLogger(__name__)

__all__ = ["ConfirmFn", "RecognizeFn", "Scene", "VideoFrame", "VideoResult", "recognize_video"]

#: ``(image (H, W, 3) uint8, timings) -> Detections``; adds seconds to ``timings`` keys
RecognizeFn = Callable[[np.ndarray, dict[str, float]], Detections]
#: ``Detections -> (n,) bool``: which detections reach their concept's threshold (strong)
ConfirmFn = Callable[[Detections], np.ndarray]


@dataclass
class VideoFrame:
    """One sampled frame: ``index`` (among samples), ``time`` (s), its track-named detections,
    and the ``scene`` (1, 2, ...) it belongs to."""

    index: int
    time: float
    detections: Detections
    tracks: list[int]
    scene: int = 1

    def to_dict(self) -> dict[str, Any]:
        records = self.detections.to_list()
        for r, t in zip(records, self.tracks, strict=True):
            r["track"] = t
        return {"index": self.index, "time": round(self.time, 3), "scene": self.scene, "detections": records}


def sample_windows(times: Sequence[float], cuts: Sequence[float], step: float, *,
                   stopped: bool = False) -> list[tuple[float, float]]:
    """The stretch of the clip each sample's boxes are drawn on, ``(from, to)`` in s: its
    shot (between the cuts around it, whether or not a sample fell in the shots between)
    and one sampling ``step`` either side; the last sample reaches the end of its shot, or
    only half a step when ``stopped`` (``max_frames`` ended the sampling before the clip).

    >>> sample_windows([0.0, 0.5, 1.0], [0.7], 0.5)
    [(-0.5, 0.5), (0.0, 0.7), (0.7, inf)]
    """
    at = np.sort(np.asarray(cuts, np.float64))
    out = []
    for i, t in enumerate(times):
        before, after = at[at <= t + 1e-6], at[at > t + 1e-6]
        reach = step if i + 1 < len(times) else step / 2 if stopped else np.inf
        out.append((max(float(before[-1]) if len(before) else -np.inf, t - step),
                    min(float(after[0]) if len(after) else np.inf, t + reach)))
    return out


@dataclass(frozen=True)
class Scene:
    """A shot between two cuts: ``index`` (1, 2, ...), ``start``/``end`` (s; ``end`` is the
    next scene's first frame, or the end of the clip), its samples ``first``..``last``."""

    index: int
    start: float
    end: float
    first: int
    last: int

    def to_dict(self) -> dict[str, Any]:
        return {"scene": self.index, "start": round(self.start, 3), "end": round(self.end, 3),
                "samples": [self.first, self.last]}


@dataclass
class VideoResult:
    """Tracks (who/what, from when to when), scenes, per-frame detections and timings of one clip.

    Attributes:
        info: the container's facts (fps, duration, size, codec, audio).
        fps: samples per second of video used.
        tracks: appearances, in order of first appearance.
        frames: per sampled frame, detections named by their track.
        scenes: the shots between cuts (a scene shorter than one sampling step may be
            folded into the one before it).
        timings: seconds of ``decode``, ``backbone``, ``faces``, ``tracking``, ``render``, ``total``.
        annotated, sheet: written files (or None).
        audio: what the annotated video did with the source's audio: ``"kept"``,
            ``"dropped"``, or None (no annotated video, or no audio in the source).
        sheet_image: the contact sheet as ``(H, W, 3) uint8`` when asked for (``keep_sheet``):
            the best frame per track, or the first frame when nothing was found.
        colours: ``{name: colour}`` used for the boxes in the video and on the sheet.
        shots: ``{(scene, track id): (score, sample index, JPEG)}``: the best frame of each
            track in each scene (kept with ``keep_sheet``; see `pekit.video.answer`).
        scene_frames: ``{scene: (sample index, JPEG)}``: each scene's first sample (``keep_sheet``).
        looked_until: when the sampling ended before the clip's end (``max_frames`` stopped
            it, or the file is truncated: its frames end well before the length it gives), the
            time (s) the clip was looked at up to (half a step after the last sample); else
            None. Timelines and prompts then say the rest was not looked at.
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
    scenes: list[Scene] = field(default_factory=list)
    audio: str | None = None
    shots: dict[tuple[int, int], tuple[float, int, bytes]] = field(default_factory=dict, repr=False)
    scene_frames: dict[int, tuple[int, bytes]] = field(default_factory=dict, repr=False)
    looked_until: float | None = None

    @property
    def span(self) -> str:
        """How much of the clip was looked at, in words: ``"a 4.0 s video"``, or ``"the first
        1.2 s of a 4.0 s video (the rest was not looked at)"``."""
        whole = f"a {self.info.duration:.1f} s video"
        if self.looked_until is None:
            return whole
        return f"the first {self.looked_until:.1f} s of {whole} (the rest was not looked at)"

    def scene_tracks(self, scene: int) -> list[Track]:
        """The tracks seen in ``scene``, their times and frame counts cut to it (copies)."""
        seen: dict[int, list[float]] = {}
        for f in self.frames:
            if f.scene == scene:
                for t in f.tracks:
                    seen.setdefault(t, []).append(f.time)
        by_id = {t.id: t for t in self.tracks}
        return [dataclasses.replace(by_id[i], start=min(ts), end=max(ts), frames=len(ts))
                for i, ts in sorted(seen.items(), key=lambda kv: (min(kv[1]), kv[0]))]

    def timeline(self, scene: int | None = None) -> str:
        """One line per track: ``"   0.4-3.2 s  Lin (0.61)"`` (`Track.when`), or a line saying nothing was found;
        with ``scene``, only that scene's part of each track."""
        tracks = self.tracks if scene is None else self.scene_tracks(scene)
        if not tracks:
            where = Path(self.info.path).name if scene is None else f"scene {scene}"
            length = self.info.duration if scene is None else self.scene(scene).end - self.scene(scene).start
            if scene is None and self.looked_until is not None:
                return (f"none of your concepts appear in the first {self.looked_until:.1f} s of {where} "
                        f"({length:.1f} s; the rest was not looked at)")
            return f"none of your concepts appear in {where} ({length:.1f} s)"
        return "\n".join(f"{t.when:>12}  {t.name} ({t.score:.2f})" for t in tracks)

    def scene(self, index: int) -> Scene:
        """Scene ``index`` (1, 2, ...)."""
        for sc in self.scenes:
            if sc.index == index:
                return sc
        from pekit.errors import InvalidInputError

        raise InvalidInputError(f"no scene {index}; the clip has scenes 1-{len(self.scenes)}")

    def to_dict(self, *, frames: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "video": self.info.path, "duration": round(self.info.duration, 3), "source_fps": round(self.info.fps, 3),
            "fps": self.fps, "tracks": [t.to_dict() for t in self.tracks],
            "scenes": [dict(sc.to_dict(), tracks=[t.id for t in self.scene_tracks(sc.index)]) for sc in self.scenes],
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            "annotated": self.annotated, "sheet": self.sheet, "audio": self.audio,
            "looked_until": None if self.looked_until is None else round(self.looked_until, 3),
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
                    scene_cut: float | None = None, confirm: ConfirmFn | None = None, audio: str = "auto",
                    max_pixels: int | None = None, avoid: Sequence[str] = ()) -> VideoResult:
    """Recognize concepts through a clip.

    Args:
        recognize: per-image recognition (see `RecognizeFn`).
        path: the video file (anything FFmpeg reads: MP4, MOV, MKV, WebM...).
        fps: samples per second of video (default 2); one at or above the clip's frame rate
            samples every frame.
        max_frames: cap on the number of samples (None: the whole clip).
        out: annotated video path (``.mp4``, ``.mov`` or ``.mkv``).
        sheet: contact sheet path (PNG): the best frame of each track.
        iou, max_gap: tracking settings (`Tracker`); ``max_gap`` defaults to 2 samples.
        progress: progress bar (default: when stderr is a terminal).
        keep_sheet: also return the contact sheet image in ``VideoResult.sheet_image``, and
            the key frames per scene (``shots``, ``scene_frames``) that answers use.
        scene_cut: also sample the first frame of each scene (see `sample_frames`; this
            difference then also defines the scenes, else `SCENE_CUT`).
        confirm: which of ``recognize``'s detections are strong (see `Tracker`): a
            ``recognize`` that also returns detections a little under their thresholds
            marks the rest weak; weak ones only extend tracks, so an appearance starts at
            the frame the object enters, not the first frame it clears the threshold.
            None: every detection is strong.
        audio: the annotated video's audio: ``"auto"`` (keep it when the container can
            hold its codec), ``"keep"`` or ``"drop"``; ``VideoResult.audio`` says which.
        max_pixels: refuse frames larger than this (default `MAX_FRAME_PIXELS`), checked on
            the stream's header before decoding.
        avoid: names whose colour no box gets (a question about the clip that names "Red").

    Raises:
        VideoError: unreadable / empty / undecodable / too large video (nothing is written then).
        InvalidInputError: ``fps``, ``scene_cut``, ``max_frames``, ``out`` or ``audio`` out of
            range (checked before the clip is opened).
    """
    from pekit.errors import InvalidInputError

    start = time.perf_counter()
    fps = check_fps(fps)
    if scene_cut is not None:
        scene_cut = check_scene_cut(scene_cut)
    check_max_frames(max_frames)
    # a name too long for the file system, or under a file: said now, not after the work
    if out is not None and output_path(out, "out").suffix.lower() not in VIDEO_OUT_SUFFIXES:
        raise InvalidInputError(f"the annotated video must end in one of {', '.join(VIDEO_OUT_SUFFIXES)}, got '{out}'")
    if sheet is not None:
        check_sheet_path(sheet)  # before the clip is read, not after the work
    if not isinstance(path, (str, os.PathLike)):
        raise InvalidInputError(f"a video is read from a file: pass its path (str or pathlib.Path), got "
                                f"{type(path).__name__}")
    for option, target in (("out", out), ("sheet", sheet)):
        if target is not None and same_file(target, path):  # as root, not even a read-only clip is safe
            raise InvalidInputError(f"{option}='{target}' is the clip itself, so writing there would replace it; "
                                    "choose another file name")
    audio = check_audio(audio)
    info = probe(path, max_pixels=max_pixels)
    timings = {"decode": 0.0, "backbone": 0.0, "faces": 0.0, "tracking": 0.0, "render": 0.0}
    rate = min(fps, info.fps) if info.fps > 0 else fps  # samples come no faster than the clip's frames
    tracker = Tracker(iou=iou, max_gap=2.0 / rate + 1e-3 if max_gap is None else max_gap)
    clock = 0.0  # the tracker's time: the clip's, but a stretch without frames is one step (`Frame.held`)
    shots: dict[tuple[int, int], tuple[float, int, bytes]] = {}
    scene_frames: dict[int, tuple[int, bytes]] = {}
    want_sheet = sheet is not None or keep_sheet
    frames: list[VideoFrame] = []
    scenes: list[Scene] = []
    scene_of: dict[int, int] = {}  # the decoder's scene number -> ours (1, 2, ...; unsampled ones skipped)
    scene_start, scenes_first = 0.0, 0
    cut_times: list[float] = []  # every cut, a shot without a sample included: boxes never cross one
    stopped = False  # the sampling ended before the clip did: max_frames, or a truncated file
    expected = int(info.duration * rate) + 1 if info.duration else 0
    if max_frames is not None:
        expected = min(expected, max_frames) if expected else max_frames
    samples = sample_frames(path, fps=fps, max_frames=max_frames, scene_cut=scene_cut, max_pixels=max_pixels,
                            cut_diff=SCENE_CUT if scene_cut is None else scene_cut)
    with closing(samples), _progress(expected, progress) as bar:
        while True:
            t0 = time.perf_counter()
            try:
                frame = next(samples)
            except StopIteration as finished:  # the clip ran out (its cuts after the last sample) or max_frames
                timings["decode"] += time.perf_counter() - t0
                after, stopped = finished.value if finished.value is not None else ((), False)
                cut_times.extend(after)
                break
            timings["decode"] += time.perf_counter() - t0
            cut_times.extend(frame.cuts)
            dets = recognize(frame.image, timings)
            t0 = time.perf_counter()
            if frame.scene not in scene_of:
                if frames:
                    scenes.append(Scene(len(scenes) + 1, scene_start, frame.scene_start, scenes_first,
                                        frames[-1].index))
                scene_of[frame.scene] = len(scenes) + 1
                scene_start, scenes_first = frame.scene_start, frame.index
            scene = scene_of[frame.scene]
            gap = frame.time - frames[-1].time if frames else 0.0
            clock += min(gap, 1.0 / rate) if frame.held else gap  # a pause without frames: one step at most
            strong = None if confirm is None else confirm(dets)
            linked = tracker.update(frame.index, frame.time, dets, strong, clock=clock)
            if want_sheet:
                jpeg: bytes | None = None
                scores = np.asarray(dets.score, np.float32)
                for i, (key, _) in enumerate(linked):
                    score = float(scores[i])
                    if (scene, key) not in shots or score > shots[(scene, key)][0]:
                        jpeg = jpeg or thumbnail(frame.image, np.zeros(4))[0]
                        shots[(scene, key)] = (score, frame.index, jpeg)
                if keep_sheet and scene not in scene_frames:
                    scene_frames[scene] = (frame.index, jpeg or thumbnail(frame.image, np.zeros(4))[0])
                if frame.index % 64 == 63:  # forget the thumbnails of weak tracks that will never be confirmed
                    lost = tracker.discarded()
                    for k in [k for k in shots if k[1] in lost]:
                        del shots[k]
            kept = dataclasses.replace(dets, embedding=None, mask=None)  # boxes, names, scores: small
            frames.append(VideoFrame(frame.index, frame.time, kept, [k for k, _ in linked], scene))
            timings["tracking"] += time.perf_counter() - t0
            bar.update(1)
    # stopped early (max_frames, a truncated file): looked at up to half a step after the last sample
    looked_until = frames[-1].time + 0.5 / rate if stopped and frames else None
    if frames:
        end = max(info.duration, frames[-1].time) if info.duration else frames[-1].time + 1.0 / rate
        if looked_until is not None:
            end = min(end, looked_until)
        scenes.append(Scene(len(scenes) + 1, scene_start, end, scenes_first, frames[-1].index))
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
    shots = {(sc, by_key[k].id): v for (sc, k), v in shots.items() if k in by_key}
    timings["tracking"] += time.perf_counter() - t0
    from pekit.prompt.overlay import stable_colours

    colours = stable_colours([t.name for t in tracks], avoid=avoid)  # by first appearance, one per name
    result = VideoResult(info, float(rate), tracks, frames, timings, colours=colours, scenes=scenes,
                         shots=shots if keep_sheet else {}, scene_frames=scene_frames, looked_until=looked_until)
    t0 = time.perf_counter()
    if out is not None:
        windows = sample_windows([f.time for f in frames], cut_times, 1.0 / rate, stopped=stopped)
        result.audio = write_annotated(path, out, [f.time for f in frames], [f.detections for f in frames], colours,
                                       audio=audio, rotation=info.rotation, windows=windows)
        result.annotated = str(out)
    if want_sheet:
        best: dict[int, tuple[float, int, bytes]] = {}
        for (_, track_id), shot in shots.items():
            if track_id not in best or shot[0] > best[track_id][0]:
                best[track_id] = shot
        tiles = [(best[t.id][2], _box_in(best[t.id][2], frames[best[t.id][1]], t.id, info.width), t.name, t.score,
                  f"{t.name}  {t.when}") for t in tracks if t.id in best]
        image = contact_sheet(tiles, colours) if tiles else None
        if keep_sheet:
            first = scene_frames.get(1)
            result.sheet_image = image if image is not None or first is None else _decode(first[1])
        if sheet is not None and image is not None:
            save_png(image, sheet)
            result.sheet = str(sheet)
        elif sheet is not None:
            log.info("nothing recognized in %s: no contact sheet written (VideoResult.sheet is None)", path)
    timings["render"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - start
    return result


def _box_in(jpeg: bytes, frame: VideoFrame, track_id: int, width: int) -> list[float]:
    """The track's box in ``frame``, in the pixels of its thumbnail ``jpeg``."""
    import io

    from PIL import Image

    scale = Image.open(io.BytesIO(jpeg)).width / max(width, 1)
    box = frame.detections.xyxy[frame.tracks.index(track_id)]
    return [float(v) * scale for v in box]
