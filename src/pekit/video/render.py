"""Annotated MP4 (boxes and names on every frame) and a contact sheet PNG (best frame per track).

Both are written to a temporary file next to the target and moved into place with
`os.replace` only when complete, so a failure never leaves a partial file behind. The
annotated video is re-encoded with H.264 at the source frame rate; each frame shows the
boxes of the nearest sampled frame of its own shot (never across a cut, and none beyond
the last sample), moved between two samples of the shot as the thing moved (`shown_at`),
at its original presentation time. The first audio
track is copied as it is (no re-encoding; ``audio="keep"``), or left out (``"drop"``);
the default ``"auto"`` keeps it when the target container can hold its codec and drops
it otherwise. `write_annotated` says which happened.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from pekit import _files as files
from pekit._files import make_folder
from pekit.errors import InvalidInputError, OutputError, require
from pekit.prompt.overlay import PALETTE, annotate, colour_assignment
from pekit.types import Detections

__all__ = ["AUDIO_CHOICES", "VIDEO_OUT_SUFFIXES", "atomic_path", "check_sheet_path", "contact_sheet", "shown_at",
           "stable_annotate", "write_annotated"]

log = logging.getLogger(__name__)

VIDEO_OUT_SUFFIXES = (".mp4", ".mov", ".mkv")
#: what to do with the source's audio in the annotated video
AUDIO_CHOICES = ("auto", "keep", "drop")


@contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """A temporary path in ``target``'s folder (made if missing, as for a photo's ``--out``),
    renamed to ``target`` on success, removed on error (`pekit._files.atomic_path`); a folder
    that cannot be made or written is an `OutputError`."""
    make_folder(Path(target).parent)
    try:
        place = files.atomic_path(target)  # the temporary file is made here
    except OSError as exc:  # a read-only folder, a full disk
        raise OutputError.writing(target, exc, hint="pass another path") from exc
    with place as tmp:
        yield tmp


def stable_annotate(colours: dict[str, str]) -> Callable[[np.ndarray, Detections], np.ndarray]:
    """``draw(frame, detections)``: `annotate` with each name in its colour of ``colours``
    (`pekit.prompt.overlay.stable_colours`: one per name for the whole clip, the colours the
    timeline names); a name without one is not drawn."""
    table = dict(PALETTE)

    def draw(image: np.ndarray, dets: Detections) -> np.ndarray:
        assert dets.name is not None  # filled by Detections
        keep = np.array([str(n or "").strip() in colours for n in dets.name], bool)
        if not keep.all():
            dets = dets[keep]
        if not len(dets):  # only names after the palette ran out: nothing to draw
            return np.array(image, copy=True)
        order = list(colour_assignment(dets))  # the order annotate hands colours out in
        return annotate(image, dets, palette=[(colours[n], table[colours[n]]) for n in order])

    return draw


def check_audio(audio: str) -> str:
    """``audio`` lower-cased if it is one of `AUDIO_CHOICES`, else `InvalidInputError`."""
    choice = str(audio).strip().lower()
    if choice not in AUDIO_CHOICES:
        raise InvalidInputError(f"audio must be one of {', '.join(AUDIO_CHOICES)}, got '{audio}'")
    return choice


#: the annotated video's time base: frames keep their source times to 1/90000 s (MPEG's
#: clock), so a variable-frame-rate clip (a phone's) is not re-timed onto an even grid
CLOCK = Fraction(1, 90000)


def shown_at(t: float, times: np.ndarray, frames: Sequence[Detections], reach: np.ndarray) -> Detections:
    """What an output frame at time ``t`` shows: the detections of the nearest sample whose
    window (``reach[i] = (from, to)``: its scene, one step) holds ``t``, none when no window
    does. Between two samples that both reach ``t`` (one shot), a name boxed in both is
    boxed where it would be at ``t`` if it moved evenly from one box to the other, so a box
    follows a moving thing instead of jumping at every sample.

    >>> a = Detections(xyxy=[[0, 0, 10, 10]], score=[0.7], name=["Bo"])
    >>> b = Detections(xyxy=[[20, 0, 30, 10]], score=[0.8], name=["Bo"])
    >>> shown_at(0.25, np.array([0.0, 1.0]), [a, b], np.array([[-1.0, 1.0], [0.0, 2.0]])).xyxy.tolist()
    [[5.0, 0.0, 15.0, 10.0]]
    """
    shown = (reach[:, 0] <= t) & (t < reach[:, 1])
    if not shown.any():
        return Detections.empty()
    nearest = int(np.argmin(np.where(shown, np.abs(times - t), np.inf)))
    dets = frames[nearest]
    before, after = np.flatnonzero(shown & (times <= t)), np.flatnonzero(shown & (times > t))
    if not (len(dets) and before.size and after.size) or times[nearest] == t:
        return dets
    i, j = int(before[-1]), int(after[0])
    other = frames[j if nearest == i else i]
    weight = (t - times[i]) / (times[j] - times[i])  # 0 at sample i, 1 at sample j
    names = np.asarray(other.name).tolist()
    boxes = np.asarray(dets.xyxy, np.float32).copy()
    for k, name in enumerate(np.asarray(dets.name).tolist()):
        if name and names.count(name) == 1:  # the same thing in both samples (names are per track)
            there = np.asarray(other.xyxy, np.float32)[names.index(name)]
            start, end = (boxes[k], there) if nearest == i else (there, boxes[k])
            boxes[k] = start + (end - start) * np.float32(weight)
    return dataclasses.replace(dets, xyxy=boxes)


def write_annotated(source: str | os.PathLike, target: str | os.PathLike, times: Sequence[float],
                    frames: Sequence[Detections], colours: dict[str, str], *, audio: str = "auto",
                    rotation: int | None = None,
                    windows: Sequence[tuple[float, float]] | None = None) -> str | None:
    """Re-encode ``source`` to ``target`` (H.264) with the detections drawn; returns what
    happened to the audio: ``"kept"``, ``"dropped"``, or None when the source has none.

    ``times[i]`` / ``frames[i]``: the sampled frames' times and (track-named) detections;
    an output frame shows the detections of the nearest sample whose ``windows[i] = (from,
    to)`` holds its time (``from`` inclusive), and none when no window does; between two
    samples whose windows both hold it, a name's box moves evenly from one to the other
    (`shown_at`). `recognize_video`
    bounds each window by the sample's scene (a box never crosses a cut) and one sampling
    step (none after the last sample: ``max_frames`` may stop before the clip ends); without
    ``windows``, each sample reaches one typical step (the median gap) around it. ``audio``: see the module
    docs; ``"keep"`` raises `VideoError` when the container cannot hold the audio codec
    (e.g. mu-law audio into ``.mp4``: use ``.mov``, or ``audio="drop"``). ``rotation``: the
    source's display rotation when known (`VideoInfo.rotation`; read from its first frame
    otherwise); a clip stored sideways is written upright.
    """
    from pekit.video.decode import VideoError, display_rotation, quarter_turns, upright

    av = require("av", "video", "av")
    audio = check_audio(audio)
    if Path(target).suffix.lower() not in VIDEO_OUT_SUFFIXES:
        raise InvalidInputError(f"the annotated video must end in one of {', '.join(VIDEO_OUT_SUFFIXES)}, "
                                f"got '{target}'")
    from pekit._files import same_file

    if same_file(source, target):
        raise InvalidInputError(f"the annotated video '{target}' would replace the clip it is made from; choose "
                                "another file name")
    draw = stable_annotate(colours)
    sample_times = np.asarray(times, np.float64)
    if windows is None:
        gaps = np.diff(sample_times)
        step = float(np.median(gaps)) if len(gaps) else float("inf")
        windows = [(t - step, t + step) for t in sample_times.tolist()]
    if len(windows) != len(sample_times) or len(frames) != len(sample_times):
        raise InvalidInputError(f"write_annotated needs one time, one Detections and one window per sample; got "
                                f"{len(sample_times)}, {len(frames)} and {len(windows)}")
    reach = np.asarray(windows, np.float64).reshape(-1, 2)
    with atomic_path(target) as tmp:
        src = av.open(str(source))
        try:
            vin = src.streams.video[0]
            vin.thread_type = "AUTO"
            had_audio = bool(src.streams.audio)
            ain = src.streams.audio[0] if had_audio and audio != "drop" else None
            rate = vin.average_rate or vin.guessed_rate or Fraction(25)
            width, height = vin.codec_context.width // 2 * 2, vin.codec_context.height // 2 * 2
            if rotation is None:
                rotation = display_rotation(source)
            turned = rotation % 180 != 0  # a phone clip stored sideways: written upright
            if turned:
                width, height = height, width
            out_rate = Fraction(rate).limit_denominator(100000)
            tick = max(1, round(CLOCK.denominator / float(out_rate)))  # one frame, where a frame has no time
            aout = None
            while True:
                dst = av.open(str(tmp), "w")
                vout = dst.add_stream("libx264", rate=out_rate)
                vout.codec_context.time_base = CLOCK  # each frame at its source time (a VFR clip too)
                vout.width, vout.height, vout.pix_fmt = width, height, "yuv420p"
                vout.options = {"preset": "veryfast", "crf": "23"}
                try:  # a codec the container cannot hold fails here or when the header is written
                    aout = dst.add_stream_from_template(ain) if ain is not None else None
                    dst.start_encoding()
                    break
                except (av.error.FFmpegError, ValueError) as exc:
                    dst.close()
                    if ain is None:
                        raise
                    codec = ain.codec_context.name
                    if audio == "keep":
                        raise VideoError(
                            f"cannot keep the audio of '{source}': its codec '{codec}' cannot go into "
                            f"'{Path(target).suffix}' ({exc}); write another container (.mov, .mkv), or drop the "
                            "audio (audio='drop', --audio drop)"
                        ) from exc
                    log.warning("audio codec %s cannot go into %s: the annotated video has no audio", codec,
                                Path(target).suffix)
                    ain = None
            try:
                last = -1
                for packet in src.demux(*([vin] if ain is None else [vin, ain])):
                    if packet.stream is not vin:  # audio: copied as it is, re-timed by the muxer
                        if packet.dts is not None and packet.size:
                            packet.stream = aout
                            dst.mux(packet)
                        continue
                    for frame in packet.decode():
                        t = float(frame.time) if frame.time is not None else (last + tick) / float(CLOCK.denominator)
                        dets = shown_at(t, sample_times, frames, reach)
                        if len(dets) or quarter_turns(frame):
                            rgb = upright(frame)[:height, :width]
                            drawn = draw(np.ascontiguousarray(rgb), dets) if len(dets) else rgb
                            out = av.VideoFrame.from_ndarray(drawn, format="rgb24").reformat(format="yuv420p")
                        else:
                            out = frame.reformat(width=width, height=height, format="yuv420p")
                        # the source's time (audio stays in sync; a variable-rate clip keeps its timing):
                        # never before the previous frame's, in the encoder's clock
                        last = max(last + 1, round(t * CLOCK.denominator))
                        out.pts, out.time_base = last, CLOCK
                        for encoded in vout.encode(out):
                            dst.mux(encoded)
                for encoded in vout.encode():
                    dst.mux(encoded)
            finally:
                dst.close()
        finally:
            src.close()
    if not had_audio:
        return None
    return "kept" if ain is not None else "dropped"


def thumbnail(image: np.ndarray, box: np.ndarray, max_side: int = 480) -> tuple[bytes, list[float]]:
    """JPEG bytes of ``image`` downscaled to ``max_side`` and the box in its pixels."""
    h, w = image.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    pil = Image.fromarray(image)
    if scale < 1.0:
        pil = pil.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    pil.save(buf, format="JPEG", quality=85)
    return buf.getvalue(), [float(v) * scale for v in box]


def contact_sheet(tiles: Sequence[tuple[bytes, list[float], str, float, str]], colours: dict[str, str],
                  *, columns: int = 4) -> np.ndarray:
    """One image of the best frame per track: ``tiles`` of ``(jpeg, box, name, score, caption)``."""
    if not tiles:
        raise InvalidInputError("no tracks to put on a contact sheet")
    draw = stable_annotate(colours)
    drawn: list[Image.Image] = []
    for jpeg, box, name, score, caption in tiles:
        img = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))
        dets = Detections(xyxy=np.array([box], np.float32), score=np.array([score], np.float32),
                          name=np.array([name], dtype=object))
        tile = Image.fromarray(draw(img, dets))
        canvas = Image.new("RGB", (tile.width, tile.height + 22), (255, 255, 255))
        canvas.paste(tile, (0, 0))
        ImageDraw.Draw(canvas).text((4, tile.height + 4), caption, fill=(0, 0, 0))
        drawn.append(canvas)
    cols = min(columns, len(drawn))
    rows = -(-len(drawn) // cols)
    cw, ch = max(t.width for t in drawn), max(t.height for t in drawn)
    sheet = Image.new("RGB", (cols * cw + (cols + 1) * 4, rows * ch + (rows + 1) * 4), (235, 235, 235))
    for i, tile in enumerate(drawn):
        r, c = divmod(i, cols)
        sheet.paste(tile, (4 + c * (cw + 4), 4 + r * (ch + 4)))
    return np.asarray(sheet)


def save_png(image: np.ndarray, target: str | os.PathLike) -> None:
    """Write ``image`` to ``target`` atomically (format from the suffix; `pekit._files.save_image`;
    its folder made if missing)."""
    make_folder(Path(target).parent)
    files.save_image(image, target)


def check_sheet_path(sheet: str | os.PathLike) -> None:
    """A contact sheet's path names an image file: not a folder (``sheets/``), and with a
    suffix an image is written in (``.png``, ``.jpg``...); `InvalidInputError` otherwise."""
    from pekit.images import writable_suffix

    text = os.fspath(sheet)
    target = files.output_path(text, "--sheet")
    if text.endswith(("/", os.sep)) or target.is_dir():
        raise InvalidInputError(f"--sheet '{text}' is a folder; name the contact sheet's file, e.g. "
                                f"{target / 'sheet.png'}")
    if not writable_suffix(target.suffix):
        raise InvalidInputError(f"--sheet '{text}' has no image suffix (a contact sheet is a picture); name a .png "
                                f"or .jpg file, e.g. {target.with_suffix('.png')}")
