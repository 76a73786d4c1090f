"""`pekit.video.decode`: sampling times, caps, and a clear `VideoError` for every bad file."""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from pekit.errors import InvalidInputError, PekitError
from pekit.video import VideoError, is_video, probe, sample_frames


def test_samples_at_the_requested_rate(grey_clip: Path) -> None:
    frames = list(sample_frames(grey_clip, fps=2.0))
    assert [round(f.time, 2) for f in frames] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    assert [f.index for f in frames] == list(range(6))
    assert frames[0].image.shape == (64, 96, 3) and frames[0].image.dtype == np.uint8
    # the right frames: frame n has brightness 8 n, sampled every 5th frame
    assert [round(float(np.median(f.image)) / 8) for f in frames] == [0, 5, 10, 15, 20, 25]


def test_scene_cuts_add_a_sample_motion_does_not(tmp_path: Path, grey_clip: Path,
                                                 make_clip: Callable[..., Path]) -> None:
    assert [f.cut for f in sample_frames(grey_clip, fps=2.0, scene_cut=30)] == [False] * 6  # +8 per frame
    frames = [np.full((64, 96, 3), 40 if i < 12 else 220, np.uint8) for i in range(30)]
    cut = list(sample_frames(make_clip(tmp_path / "cut.mp4", frames), fps=2.0, scene_cut=30))
    assert [(round(f.time, 2), f.cut) for f in cut if f.time > 0.9 and f.time < 1.6] == [
        (1.0, False), (1.2, True), (1.5, False)]
    assert [f.index for f in cut] == list(range(len(cut)))


def test_max_frames_and_fast_sampling(grey_clip: Path) -> None:
    assert len(list(sample_frames(grey_clip, fps=2.0, max_frames=3))) == 3
    assert len(list(sample_frames(grey_clip, fps=100.0))) == 30  # never more than every frame


def test_probe(grey_clip: Path) -> None:
    info = probe(grey_clip)
    assert (info.width, info.height, round(info.fps), info.audio) == (96, 64, 10, False)
    assert 2.5 < info.duration <= 3.1


def _audio_only(path: Path) -> Path:
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = 8000, 0, Fraction(1, 8000)
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def _unknown_codec(path: Path, make_clip: Callable[..., Path]) -> Path:
    """An AVI whose video FourCC no decoder knows (an MPEG-4 clip with its tag renamed)."""
    clip = make_clip(path.with_name("mpeg4.avi"), [np.full((64, 96, 3), 8 * i, np.uint8) for i in range(10)],
                     codec="mpeg4")
    data = clip.read_bytes()
    assert data.count(b"FMP4") == 2  # the stream header's and the format's tag
    path.write_bytes(data.replace(b"FMP4", b"QQQQ"))
    return path


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda d, clip, mk: (d / "notes.mp4").write_text("not a video") and d / "notes.mp4", "not a readable video"),
        (lambda d, clip, mk: d / "missing.mp4", "no such video file"),
        (lambda d, clip, mk: (d / "cut.mp4").write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
         and d / "cut.mp4", "truncated"),
        (lambda d, clip, mk: _audio_only(d / "sound.mp4"), "no video stream"),
        (lambda d, clip, mk: mk(d / "empty.mp4", []), "no video stream"),
        (lambda d, clip, mk: mk(d / "empty.mkv", []), "not a readable video"),
        (lambda d, clip, mk: _unknown_codec(d / "odd.avi", mk), "codec this FFmpeg build cannot decode"),
        (lambda d, clip, mk: (d / "zero.mp4").write_bytes(b"") or d / "zero.mp4", "the file is empty"),
        (lambda d, clip, mk: d, "is a folder, not a video"),
    ],
    ids=["text-named-mp4", "missing", "truncated", "audio-only", "zero-frames-mp4", "zero-frames-mkv",
         "unsupported-codec", "zero-bytes", "folder"],
)
def test_bad_videos_raise_a_clear_error(tmp_path: Path, grey_clip: Path, make_clip: Callable[..., Path],
                                        make: Callable[..., Path], words: str) -> None:
    path = make(tmp_path, grey_clip, make_clip)
    with pytest.raises(VideoError, match=words) as info:
        list(sample_frames(path, fps=2.0))
    assert isinstance(info.value, PekitError) and "\n" not in str(info.value)


def test_frames_over_the_pixel_limit_are_refused(grey_clip: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pekit.video.decode as decode

    monkeypatch.setattr(decode, "MAX_FRAME_PIXELS", 96 * 64 - 1)  # a 10 000 x 10 000 clip, scaled down
    with pytest.raises(VideoError, match="96 x 64 pixels are over the limit"):
        list(sample_frames(grey_clip))


def test_nothing_to_sample_is_an_error(grey_clip: Path) -> None:
    with pytest.raises(VideoError, match="no frames"):
        list(sample_frames(grey_clip, start=60.0))


@pytest.mark.parametrize(("fps", "cap"), [(0.0, None), (float("nan"), None), (2.0, 0), (-3.0, None),
                                         (float("inf"), None), ("2", None), (2.0, 1.5)])
def test_bad_sampling_options(grey_clip: Path, fps: float, cap: int | None) -> None:
    with pytest.raises(InvalidInputError, match=r"fps must be a positive number|max_frames must be a whole number"):
        list(sample_frames(grey_clip, fps=fps, max_frames=cap))


@pytest.mark.parametrize("fps", [1e9, 1e12, 1e300, 1.7976931348623157e308])
def test_a_huge_rate_gives_every_frame_promptly(grey_clip: Path, fps: float) -> None:
    import time

    start = time.perf_counter()
    frames = list(sample_frames(grey_clip, fps=fps))
    assert [round(float(np.median(f.image)) / 8) for f in frames] == list(range(30))  # every frame, once, in order
    assert [f.index for f in frames] == list(range(30))
    assert [f.time for f in list(sample_frames(grey_clip, fps=fps, max_frames=2))] == [frames[0].time, frames[1].time]
    assert time.perf_counter() - start < 5.0  # was a loop of fps x duration additions per sample (hours)


def test_sample_times_stay_on_the_ticks_after_a_scene_cut_sample(tmp_path: Path,
                                                                 make_clip: Callable[..., Path]) -> None:
    frames = [np.full((64, 96, 3), 40 if i < 7 else 220, np.uint8) for i in range(30)]
    got = [(round(f.time, 2), f.cut) for f in sample_frames(make_clip(tmp_path / "cut.mp4", frames), fps=3.0,
                                                          scene_cut=30, start=0.1)]
    # ticks at 0.1 + k / 3 (frames at 0.1 s steps): 0.1, 0.5 (first frame after 0.433), 0.8, 1.1...; the cut
    # at 0.7 s adds a sample without moving the ticks
    assert got[:5] == [(0.1, False), (0.5, False), (0.7, True), (0.8, False), (1.1, False)]


@pytest.mark.parametrize("bad", [-5, 0, 256, float("nan"), float("inf"), "16", True])
def test_a_scene_cut_out_of_range_is_refused(grey_clip: Path, bad: object) -> None:
    with pytest.raises(InvalidInputError, match=r"scene_cut must be a mean frame difference greater than 0 and "
                                                r"at most 255 .*got"):
        next(sample_frames(grey_clip, scene_cut=bad))  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="cut_diff must be a mean frame difference"):
        next(sample_frames(grey_clip, cut_diff=-1))
    assert len(list(sample_frames(grey_clip, fps=2.0, scene_cut=255))) == 6  # the extremes are fine
    assert len(list(sample_frames(grey_clip, fps=2.0, scene_cut=0.5))) == 30  # +8 a frame: each frame a "cut"


def test_a_start_time_that_is_not_a_number_is_refused(grey_clip: Path) -> None:
    with pytest.raises(InvalidInputError, match="start must be a time in seconds"):
        next(sample_frames(grey_clip, start=float("nan")))


def test_is_video_by_suffix_or_content(tmp_path: Path, grey_clip: Path) -> None:
    renamed = tmp_path / "clip.bin"
    renamed.write_bytes(grey_clip.read_bytes())
    photo = tmp_path / "photo.jpg"
    from PIL import Image

    Image.new("RGB", (8, 8)).save(photo)
    assert is_video(grey_clip) and is_video(renamed) and not is_video(photo) and not is_video(tmp_path)


def test_a_photo_named_like_a_video_is_a_photo(tmp_path: Path) -> None:
    from PIL import Image

    fake = tmp_path / "clip.mp4"
    Image.new("RGB", (8, 8)).save(fake, format="JPEG")
    assert not is_video(fake)  # ask/caption/recognize read it as the photo it is
    with pytest.raises(VideoError, match="is a photo, not a video: use recognize"):
        probe(fake)


def _huge_mjpeg(path: Path, side: int = 10_000) -> Path:
    """A one-frame MJPEG stream of side x side pixels (a flat grey JPEG: ~1 MB, made in ~0.4 s)."""
    import io

    import av
    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (side, side), 90).save(buf, format="JPEG", quality=10)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mjpeg", rate=Fraction(1))
        stream.width, stream.height, stream.pix_fmt = side, side, "yuvj420p"
        packet = av.Packet(buf.getvalue())
        packet.stream, packet.pts, packet.dts, packet.time_base = stream, 0, 0, Fraction(1)
        out.mux(packet)
    return path


def test_a_10000_by_10000_video_is_refused_from_its_header(tmp_path: Path) -> None:
    import time

    clip = _huge_mjpeg(tmp_path / "huge.mkv")
    start = time.perf_counter()
    for read in (lambda: probe(clip), lambda: list(sample_frames(clip))):
        with pytest.raises(VideoError, match=r"10000 x 10000 pixels are over the limit of 67108864 pixels.*"
                                             r"max_pixels=, --max-pixels.*286 MiB"):
            read()
    assert time.perf_counter() - start < 1.0  # nothing decoded (one RGB frame would be 286 MiB)


def test_the_frame_size_limit_can_be_raised(grey_clip: Path) -> None:
    with pytest.raises(VideoError, match="96 x 64 pixels are over the limit of 6143 pixels"):
        list(sample_frames(grey_clip, max_pixels=96 * 64 - 1))
    assert len(list(sample_frames(grey_clip, max_pixels=96 * 64))) == 6
    with pytest.raises(InvalidInputError, match="max_pixels must be a positive number"):
        probe(grey_clip, max_pixels=0)


def test_each_sample_knows_its_scene_and_when_it_started(tmp_path: Path, grey_clip: Path,
                                                          make_clip: Callable[..., Path]) -> None:
    assert {(f.scene, f.scene_start) for f in sample_frames(grey_clip, fps=2.0)} == {(0, 0.0)}  # +8 a frame: motion
    frames = [np.full((64, 96, 3), (40, 220, 90)[(i >= 12) + (i >= 23)], np.uint8) for i in range(30)]
    got = [(round(f.time, 2), f.scene, round(f.scene_start, 2)) for f in
           sample_frames(make_clip(tmp_path / "cuts.mp4", frames), fps=2.0)]
    assert got == [(0.0, 0, 0.0), (0.5, 0, 0.0), (1.0, 0, 0.0), (1.5, 1, 1.2), (2.0, 1, 1.2), (2.5, 2, 2.3)]


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda d, clip, mk: (d / "notes.mp4").write_text("not a video") and d / "notes.mp4", "not a readable video"),
        (lambda d, clip, mk: (d / "cut.mp4").write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
         and d / "cut.mp4", "truncated"),
        (lambda d, clip, mk: _audio_only(d / "sound.mp4"), "no video stream"),
        (lambda d, clip, mk: mk(d / "empty.mp4", []), "no video stream"),
        (lambda d, clip, mk: _unknown_codec(d / "odd.avi", mk), "codec this FFmpeg build cannot decode"),
        (lambda d, clip, mk: _huge_mjpeg(d / "huge.mkv"), "10000 x 10000 pixels are over the limit"),
    ],
    ids=["text-named-mp4", "truncated", "audio-only", "zero-frames", "unsupported-codec", "10000x10000"],
)
def test_cli_bad_videos_exit_3_write_nothing_and_leave_memory_alone(
        tmp_path: Path, grey_clip: Path, make_clip: Callable[..., Path], cached_pipelines: object,
        make: Callable[..., Path], words: str, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from PIL import Image

    from pekit.cli import main

    work = tmp_path / "work"
    work.mkdir()
    Image.fromarray(np.full((64, 64, 3), 90, np.uint8)).save(tmp_path / "photo.png")
    memory = str(tmp_path / "m.db")
    assert main(["introduce", "Bo", str(tmp_path / "photo.png"), "--box", "8,8,56,56", "--memory", memory]) == 0
    assert main(["list", "--json", "--memory", memory]) == 0
    before = json.loads(capsys.readouterr().out.splitlines()[-1])
    bad = make(work, grey_clip, make_clip)
    inputs = sorted(p.name for p in work.iterdir())
    for argv in (["recognize", str(bad), "--out", str(work / "a.mp4"), "--sheet", str(work / "s.png")],
                 ["caption", str(bad)], ["ask", str(bad), "Who is there?"]):
        assert main([*argv, "--memory", memory]) == 3
        err = capsys.readouterr().err
        assert words in err and err.count("\n") == 1 and "Traceback" not in err
    assert sorted(p.name for p in work.iterdir()) == inputs  # no output, no partial file
    assert main(["list", "--json", "--memory", memory]) == 0
    assert json.loads(capsys.readouterr().out) == before


@pytest.mark.parametrize(("rotation", "bright"), [(90, "bottom"), (-90, "top"), (180, "right")])
def test_a_clip_stored_sideways_is_read_upright(tmp_path: Path, make_clip: Callable[..., Path],
                                                rotation: int, bright: str) -> None:
    # phones store the sensor's frames and a display rotation; players, and pekit, show them turned
    frames = []
    for _ in range(4):
        img = np.full((32, 64, 3), 30, np.uint8)
        img[:, :16] = 250  # the stored frame is bright on its left
        frames.append(img)
    clip = make_clip(tmp_path / "phone.mp4", frames, rotation=rotation)
    info = probe(clip)
    assert info.rotation == rotation % 360 and (info.width, info.height) == ((32, 64) if rotation % 180 else (64, 32))
    image = next(iter(sample_frames(clip))).image
    assert image.shape[:2] == (info.height, info.width)
    rows, cols = np.nonzero(image.mean(axis=2) > 140)
    side = {"bottom": rows.min() >= image.shape[0] * 0.7, "top": rows.max() < image.shape[0] * 0.3,
            "right": cols.min() >= image.shape[1] * 0.7}
    assert side[bright]


def test_a_clip_cut_short_is_warned_about(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A faststart MP4 (header first) cut midway still decodes: the frames it has are read,
    and the user is told the clip ends before its header says, not left to trust a short run."""
    av = pytest.importorskip("av")
    whole = tmp_path / "whole.mp4"
    rng = np.random.default_rng(0)
    with av.open(str(whole), "w", options={"movflags": "faststart"}) as out:
        stream = out.add_stream("libx264", rate=Fraction(10))
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(40):  # 4 s of noise: every frame costs bytes, so half the file is about half the clip
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 255, (48, 64, 3), np.uint8), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 10)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    cut = tmp_path / "cut.mp4"
    data = whole.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with caplog.at_level("WARNING", logger="pekit.video.decode"):
        assert len(list(sample_frames(whole, fps=2))) == 8
        assert not caplog.records
        frames = list(sample_frames(cut, fps=2))
    assert 1 <= len(frames) < 8
    assert any("may be truncated" in r.getMessage() and "lasts 4.0 s" in r.getMessage() for r in caplog.records)
    # what is made of it says how much was looked at, not the length the header claims
    from pekit.types import Detections
    from pekit.video import recognize_video
    from pekit.video.answer import video_prompt

    result = recognize_video(lambda image, timings: Detections.empty(), cut, fps=2.0)
    assert result.info.duration == pytest.approx(4.0) and result.looked_until is not None
    assert result.looked_until == pytest.approx(frames[-1].time + 0.25)
    assert result.scenes[-1].end == pytest.approx(result.looked_until)
    assert f"the first {result.looked_until:.1f} s of a 4.0 s video (the rest was not looked at)" in \
        video_prompt(result, question="Who?")
    assert recognize_video(lambda image, timings: Detections.empty(), whole, fps=2.0).looked_until is None


@pytest.mark.parametrize("suffix", [".ts", ".mts", ".m2ts"])
def test_an_mpeg_ts_clip_is_a_video(tmp_path: Path, grey_clip: Path, suffix: str) -> None:
    """A camcorder's .mts or a recording's .ts is a video to recognize/ask/caption, not a photo
    that "is in none of these formats" (their first bytes are no MP4/Matroska/AVI header)."""
    av = pytest.importorskip("av")
    clip = tmp_path / f"clip{suffix}"
    with av.open(str(grey_clip)) as src, av.open(str(clip), "w", format="mpegts") as out:
        stream = out.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    assert is_video(clip)
    frames = list(sample_frames(clip, fps=2))  # MPEG-TS starts its clock a little after 0: 6 or 7 ticks
    assert len(frames) >= 6 and frames[0].image.shape == (64, 96, 3)
