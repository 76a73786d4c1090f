"""Video decoding with PyAV (FFmpeg ships inside the ``av`` wheel): probe, sample frames.

Frames are decoded one at a time and only the sampled ones are converted to RGB, so
memory stays bounded whatever the length of the clip. Every decoded frame is compared with
the one before it (32 x 18 luma thumbnails) to find scene cuts, so each sample knows its
scene and when that scene started, to the frame.

Example:
    >>> for frame in sample_frames("clip.mp4", fps=2.0):     # doctest: +SKIP
    ...     frame.time, frame.image.shape
    (0.0, (360, 640, 3))
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pekit._image_formats import VIDEO_SUFFIXES, sniff_image
from pekit.errors import ImageError, InvalidInputError, require
from pekit.types import finite_number, whole_number

log = logging.getLogger(__name__)

__all__ = ["MAX_FRAME_PIXELS", "SCENE_CUT", "VIDEO_SUFFIXES", "Frame", "VideoError", "VideoInfo", "check_fps",
           "check_max_frames", "check_scene_cut", "display_rotation", "is_video", "probe", "quarter_turns",
           "sample_frames", "upright"]

#: suffixes `is_video` treats as video without sniffing the file
#: refuse frames with more pixels than this by default (8K UHD is 33 Mpx); ``max_pixels=`` raises it
MAX_FRAME_PIXELS = 8192 * 8192
#: mean absolute difference (0-255) of consecutive frames' 32 x 18 luma thumbnails above which
#: a frame starts a new scene. On the Hamilton clip (30 fps) its three cuts score 21.9-24.9
#: and the largest change within a shot (a close-up turning) 10.6.
SCENE_CUT = 16.0
#: sampling rates above this are sampled at it: frames closer than 1 µs are one time anyway
#: (sample times match frame times to 1e-6 s), so any rate at or above the clip's frame rate
#: gives every frame, and the tick arithmetic stays far from overflow
_MAX_RATE = 1e6
#: 8-bit pixel formats whose first plane is the luma: thumbnails are block means of it
_LUMA_FIRST = frozenset({"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "yuv440p",
                         "yuvj440p", "yuv411p", "yuv410p", "nv12", "nv21", "gray"})


class VideoError(ImageError):
    """A file could not be used as a video (unreadable, no video stream, no frames, too large)."""


@dataclass(frozen=True)
class VideoInfo:
    """What the container says: ``fps``, ``duration`` (s), ``width``, ``height``, ``codec``, ``audio``.

    Frame times are the file's presentation times: a stream may start after 0 (the Hamilton
    clip's first video frame is at 0.85 s), as players show it. ``width`` and ``height`` are
    the picture's as shown: a phone clip stored sideways with a display rotation
    (``rotation``, degrees counter-clockwise) has them swapped, and its frames are turned
    upright (`upright`) before anything looks at them.
    """

    path: str
    fps: float
    duration: float
    width: int
    height: int
    codec: str
    frames: int
    audio: bool
    rotation: int = 0


def quarter_turns(frame: Any) -> int:
    """Quarter turns counter-clockwise that show a decoded frame as players do (its display
    matrix: PyAV's ``VideoFrame.rotation``); angles between quarter turns are rounded."""
    rotation = getattr(frame, "rotation", 0) or 0
    return round(float(rotation) / 90.0) % 4


def upright(frame: Any) -> np.ndarray:
    """The decoded ``frame`` as ``(H, W, 3) uint8``, turned as players show it."""
    rgb = frame.to_ndarray(format="rgb24")
    turns = quarter_turns(frame)
    return np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb


def display_rotation(path: str | os.PathLike) -> int:
    """The display rotation (degrees counter-clockwise, a multiple of 90) of the clip's first
    frame: containers keep it in side data that only decoding exposes; 0 when unreadable."""
    av = require("av", "video", "av")
    try:
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                return 90 * quarter_turns(frame)
    except (av.error.FFmpegError, OSError, ValueError, IndexError):
        pass
    return 0


@dataclass(frozen=True)
class Frame:
    """One sampled frame: ``index`` among samples, ``time`` (s), ``image (H, W, 3) uint8``;
    ``cut``: sampled because the picture changed (scene cut), not on the fixed-rate tick;
    ``scene``: how many cuts came before it (0 in the first scene); ``scene_start``: the
    time (s) of the first frame of its scene; ``cuts``: the times of every cut since the
    previous sample, its own scene's start among them (a shot shorter than a sampling step
    gets no sample, but its cut is here); ``held``: the clip has no frame between the previous
    sample and this one (a variable-rate clip's pause: the previous picture stayed on screen)."""

    index: int
    time: float
    image: np.ndarray
    cut: bool = False
    scene: int = 0
    scene_start: float = 0.0
    cuts: tuple[float, ...] = ()
    held: bool = False


_MP4_BRANDS = (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip")


def _head(path: str | os.PathLike) -> bytes:
    """A regular file's first 12 bytes (b"" for anything else: a FIFO would block the read)."""
    try:
        if not Path(path).is_file():
            return b""
        with open(path, "rb") as fh:
            return fh.read(12)
    except OSError:
        return b""


def is_video(path: str | os.PathLike) -> bool:
    """True for a video suffix (unless the file's first bytes are a photo's: a JPEG named
    ``.mp4``), or a file whose first bytes look like MP4/Matroska/AVI."""
    head = _head(path)
    if sniff_image(head) is not None:  # a photo, whatever its name (an AVIF or HEIC is an ISO-BMFF file too)
        return False
    return (Path(path).suffix.lower() in VIDEO_SUFFIXES or head[4:8] in _MP4_BRANDS or head[:4] == b"\x1aE\xdf\xa3"
            or (head[:4] == b"RIFF" and head[8:12] == b"AVI "))


def _open(path: str | os.PathLike) -> Any:
    av = require("av", "video", "av")
    p = Path(path)
    try:
        found = p.is_file()
    except OSError as exc:  # a name too long for the file system (Python < 3.12 raises it here)
        raise VideoError(f"'{str(p)[:120]}': not a path this system can open ({exc.strerror or exc}); check the "
                         "path") from exc
    if not found:
        if p.is_dir():
            raise VideoError(f"'{p}' is a folder, not a video; pass the video file itself")
        raise VideoError(f"'{p}': no such video file; check the path")
    if p.stat().st_size == 0:
        raise VideoError(f"'{p}': the file is empty (0 bytes)")
    if sniff_image(_head(p)) is not None:
        raise VideoError(f"'{p}' is a photo, not a video: use recognize (pekit recognize), ask or caption on it")
    try:
        container = av.open(str(p), "r")
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise VideoError(
            f"'{p}': not a readable video ({exc}); the file may be truncated, or not a video at all"
        ) from exc
    if not container.streams.video:
        container.close()
        raise VideoError(f"'{p}': the file holds no video stream (audio only, or an empty recording); "
                         "give a video with at least one frame")
    if container.streams.video[0].codec_context is None:  # FFmpeg knows no decoder for its codec
        container.close()
        raise VideoError(f"'{p}': the video stream uses a codec this FFmpeg build cannot decode; convert the "
                         "clip first (e.g. ffmpeg -i in -c:v libx264 out.mp4)")
    return container


def probe(path: str | os.PathLike, *, max_pixels: int | None = None) -> VideoInfo:
    """Container facts without decoding (`VideoError` for unreadable files, or frames over
    ``max_pixels``, default `MAX_FRAME_PIXELS`)."""
    container = _open(path)
    try:
        return _info(path, container, max_pixels)
    finally:
        container.close()


def _limit(max_pixels: int | None) -> int:
    limit = MAX_FRAME_PIXELS if max_pixels is None else max_pixels
    if not whole_number(limit) or limit < 1:
        raise InvalidInputError(f"max_pixels must be a positive number of pixels per frame, got {max_pixels!r}")
    return int(limit)


def _mib(size: int) -> str:
    """Bytes in MiB as a reader wants them: ``286``, ``3072``, ``0.12``."""
    mib = size / 2**20
    return f"{mib:.0f}" if mib >= 10 else f"{mib:.2g}"


def _too_large(path: str | os.PathLike, width: int, height: int, limit: int) -> VideoError:
    return VideoError(
        f"'{path}': frames of {width} x {height} pixels are over the limit of {limit} pixels; downscale the "
        "video first (e.g. ffmpeg -vf scale=1280:-2), or raise the limit (max_pixels=, --max-pixels) if "
        f"you have the memory (one RGB frame takes {_mib(3 * width * height)} MiB)"
    )


def _info(path: str | os.PathLike, container: Any, max_pixels: int | None = None, *, shown: bool = True) -> VideoInfo:
    """The container's facts; with ``shown``, the size as players show it (one frame is decoded
    to read the display rotation), else as stored, with ``rotation`` 0."""
    stream = container.streams.video[0]
    rate = stream.average_rate or stream.guessed_rate or 0
    fps = float(rate) if rate else 0.0
    duration = 0.0  # the container's length (frame times are presentation times in it)
    if container.duration is not None:
        duration = container.duration / 1_000_000
    elif stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    width, height = int(stream.codec_context.width or 0), int(stream.codec_context.height or 0)
    limit = _limit(max_pixels)
    if width * height > limit:  # from the stream's header: nothing has been decoded
        raise _too_large(path, width, height, limit)
    rotation = display_rotation(path) if shown else 0
    if rotation % 180:
        width, height = height, width  # as shown
    return VideoInfo(str(path), fps, duration, width, height, stream.codec_context.name, int(stream.frames or 0),
                     bool(container.streams.audio), rotation)


def check_fps(fps: Any) -> float:
    """``fps`` as a float if it is a finite number > 0, else `InvalidInputError`. Any rate works:
    one at or above the clip's own frame rate gives every frame.

    >>> check_fps(2), check_fps(1e12)
    (2.0, 1000000000000.0)
    """
    if not finite_number(fps) or fps <= 0:
        raise InvalidInputError(f"fps must be a positive number of samples per second (e.g. 2; one at or above "
                                f"the clip's own frame rate samples every frame), got {fps!r}")
    return float(fps)


def check_max_frames(max_frames: Any) -> int | None:
    """None (no limit), or ``max_frames`` if it is a whole number >= 1, else `InvalidInputError`.

    >>> check_max_frames(10), check_max_frames(None)
    (10, None)
    """
    if max_frames is not None and (not whole_number(max_frames) or max_frames < 1):
        raise InvalidInputError(f"max_frames must be a whole number >= 1, got {max_frames!r}")
    return None if max_frames is None else int(max_frames)


def check_scene_cut(diff: Any, name: str = "scene_cut") -> float:
    """``diff`` as a float if it is a mean luma difference in (0, 255], else `InvalidInputError`.

    >>> check_scene_cut(16)
    16.0
    """
    if not finite_number(diff) or not 0 < diff <= 255:
        raise InvalidInputError(
            f"{name} must be a mean frame difference greater than 0 and at most 255 (pixel values are 0-255; "
            f"{SCENE_CUT:g} catches cuts, not motion; lower finds more scenes), got {diff!r}")
    return float(diff)


def _thumb(frame: Any) -> np.ndarray:
    """``(18, 32) float32`` mean luma of a decoded frame (block means of its Y plane: ~0.3 ms
    for 360p, where swscale's resize costs ~1.6 ms; other formats go through swscale)."""
    w, h = frame.width, frame.height
    if frame.format.name in _LUMA_FIRST and w >= 32 and h >= 18:
        plane = frame.planes[0]
        y = np.frombuffer(plane, np.uint8).reshape(h, plane.line_size)
        bh, bw = h // 18, w // 32
        return y[:18 * bh, :32 * bw].reshape(18, bh, 32, bw).mean(axis=(1, 3), dtype=np.float32)
    return frame.reformat(width=32, height=18, format="gray").to_ndarray().astype(np.float32)


def sample_frames(path: str | os.PathLike, *, fps: float = 2.0, max_frames: int | None = None,
                  start: float = 0.0, scene_cut: float | None = None, cut_diff: float = SCENE_CUT,
                  max_pixels: int | None = None) -> Generator[Frame, None, tuple[tuple[float, ...], bool]]:
    """Frames at ``fps`` per second of video time (the first frame at or after each tick).

    Returns (as the generator's ``StopIteration.value``) ``(cuts, stopped)``: the times of
    the cuts after the last sample, and whether the sampling ended before the clip did:
    ``max_frames`` stopped it while the clip had more samples due (then only the cuts before
    the next one are known), or the frames ran out well before the length the file gives (a
    truncated copy; a warning says so).

    Args:
        fps: samples per second of video (> 0); a clip slower than that gives every frame
            (so does any huge rate: each decoded frame costs the same, whatever ``fps``).
        max_frames: stop after this many samples (None: the whole clip).
        start: skip frames before this time (s).
        scene_cut: also sample the first frame of each scene (a frame whose 32 x 18 luma
            thumbnail differs from the previous frame's by more than this mean absolute
            difference, in (0, 255]; `SCENE_CUT` catches cuts, not motion). None: fixed rate only.
        cut_diff: the difference that starts a new scene (``Frame.scene``) when
            ``scene_cut`` is None (same range).
        max_pixels: refuse frames with more pixels (default `MAX_FRAME_PIXELS`), checked
            on the stream's header before any frame is decoded.

    Raises:
        VideoError: unreadable file, no video stream, an undecodable stream, no frames at all,
            or frames over ``max_pixels``.
        InvalidInputError: ``fps``, ``max_frames``, ``start``, ``scene_cut`` or ``cut_diff``
            out of range (raised on the first ``next``, before the file is opened).
    """
    av = require("av", "video", "av")
    rate = min(check_fps(fps), _MAX_RATE)
    if not finite_number(start):
        raise InvalidInputError(f"start must be a time in seconds from the beginning of the clip, got {start!r}")
    diff = check_scene_cut(cut_diff if scene_cut is None else scene_cut, "cut_diff" if scene_cut is None else
                           "scene_cut")
    check_max_frames(max_frames)
    container = _open(path)
    try:
        limit = _limit(max_pixels)
        info = _info(path, container, limit, shown=False)  # its rate is all that is read: frames turn one by one
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        next_t, count, decoded, passed = float(start), 0, 0, 0  # passed: frames since the last sample
        previous: np.ndarray | None = None
        scene, scene_start = 0, None
        cuts: list[float] = []  # since the previous sample
        try:
            for frame in container.decode(stream):
                t = float(frame.time) if frame.time is not None else decoded / (info.fps or 30.0)
                decoded += 1
                if frame.width * frame.height > limit:  # a stream may change size midway
                    raise _too_large(path, frame.width, frame.height, limit)
                small = _thumb(frame)
                cut = previous is not None and float(np.abs(small - previous).mean()) > diff
                previous = small
                if t + 1e-6 < start:
                    continue
                if scene_start is None or cut:
                    scene, scene_start = (scene + 1 if scene_start is not None else 0), t
                    if cut:
                        cuts.append(t)
                extra = cut and scene_cut is not None
                if t + 1e-6 < next_t and not extra:
                    passed += 1
                    continue
                if max_frames is not None and count >= max_frames:
                    # one more sample was due: stopped before the clip's end (the cuts up to here are known)
                    return tuple(cuts), True
                yield Frame(count, t, upright(frame), cut=extra and t + 1e-6 < next_t,
                            scene=scene, scene_start=scene_start, cuts=tuple(cuts), held=count > 0 and passed == 0)
                cuts, passed = [], 0
                count += 1
                # ticks stay at start + k / rate; one sample per tick: the next is the first after t
                next_t = start + (math.floor((t + 1e-6 - start) * rate) + 1) / rate
        except av.error.FFmpegError as exc:
            if max_frames is not None and count >= max_frames:  # only looking past the last sample: it stands
                return tuple(cuts), True
            where = f"after {count} sampled frames ({next_t:.1f} s)" if count else "at the first frame"
            raise VideoError(f"'{path}': the video stream cannot be decoded {where} ({exc}); the file may be "
                             "truncated or use an unsupported codec") from exc
        if count == 0:
            raise VideoError(f"'{path}': the video holds no frames; give a clip with at least one frame")
        # the last frame decoded: a clip cut short (a copy stopped midway) ends before its header
        # says; the video stream's own length, not the container's (its audio may run longer)
        said = (float(stream.duration * stream.time_base) if stream.duration is not None and stream.time_base
                is not None else 0.0)  # unknown (Matroska): no warning rather than the audio's length
        truncated = bool(said and said - t > max(1.0, 2.0 / rate))
        if truncated:
            log.warning("'%s': the frames end at %.1f s but the file says the video lasts %.1f s: it may be "
                        "truncated (a copy or download stopped midway); only the first %.1f s were looked at", path,
                        t, said, t)
    finally:
        container.close()
    return tuple(cuts), truncated  # the clip ran out: the cuts after the last sample
