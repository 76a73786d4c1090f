"""`recognize_video` outputs without a model: audio kept or dropped, scenes, per-frame JSON.

The per-image recognition is a plain function here (boxes where the test drew a square),
so these tests check the video plumbing itself: decoding, tracks, scenes, the encoder.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from pekit.cli import main
from pekit.errors import InvalidInputError
from pekit.types import Detections
from pekit.video import VideoError, recognize_video


def _square(image: np.ndarray, timings: dict[str, float]) -> Detections:
    """'Bo' wherever the frame has white pixels (the drawn square), else nothing."""
    ys, xs = np.nonzero(image.min(axis=2) > 240)
    if not len(xs):
        return Detections.empty()
    return Detections(xyxy=[[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], score=[0.8], name=["Bo"],
                      concept_id=[1])


def _frames(n: int = 20, cut: int | None = None) -> list[np.ndarray]:
    """64 x 96 grey frames; a white square for frames 5-14; the background changes at ``cut``."""
    out = []
    for i in range(n):
        img = np.full((64, 96, 3), 200 if cut is not None and i >= cut else 60, np.uint8)
        if 5 <= i < 15:
            img[20:40, 10 + i:30 + i] = 255
        out.append(img)
    return out


def _streams(path: Path) -> list[tuple[str, str]]:
    import av

    with av.open(str(path)) as container:
        return [(s.type, s.codec_context.name) for s in container.streams]


@pytest.mark.parametrize(
    ("source", "codec", "target", "audio", "expected", "streams"),
    [
        ("clip.mp4", "aac", "out.mp4", "auto", "kept", [("video", "h264"), ("audio", "aac")]),
        ("clip.mp4", "aac", "out.mp4", "keep", "kept", [("video", "h264"), ("audio", "aac")]),
        ("clip.mp4", "aac", "out.mkv", "drop", "dropped", [("video", "h264")]),
        ("clip.avi", "pcm_mulaw", "out.mov", "keep", "kept", [("video", "h264"), ("audio", "pcm_mulaw")]),
        ("clip.avi", "pcm_mulaw", "out.mp4", "auto", "dropped", [("video", "h264")]),  # mp4 cannot hold mu-law
        ("clip.mp4", None, "out.mp4", "keep", None, [("video", "h264")]),
    ],
)
def test_the_annotated_video_keeps_or_drops_the_audio_and_says_so(
        tmp_path: Path, make_clip: Callable[..., Path], source: str, codec: str | None, target: str, audio: str,
        expected: str | None, streams: list[tuple[str, str]]) -> None:
    import av

    clip = make_clip(tmp_path / source, _frames(), audio=codec)
    result = recognize_video(_square, clip, fps=2.0, out=tmp_path / target, audio=audio)
    assert result.audio == expected and result.to_dict()["audio"] == expected
    assert _streams(tmp_path / target) == streams
    with av.open(str(tmp_path / target)) as out:
        assert sum(1 for _ in out.decode(video=0)) == 20
    if expected == "kept":  # the same audio bytes, copied, not re-encoded
        assert _audio_bytes(tmp_path / target) == _audio_bytes(clip) != b""


def _audio_bytes(path: Path) -> bytes:
    import av

    with av.open(str(path)) as container:
        return b"".join(bytes(p) for p in container.demux(audio=0) if p.size)


def test_keeping_audio_the_container_cannot_hold_is_a_clear_error_and_writes_nothing(
        tmp_path: Path, make_clip: Callable[..., Path]) -> None:
    clip = make_clip(tmp_path / "clip.avi", _frames(), audio="pcm_mulaw")
    with pytest.raises(VideoError, match=r"cannot keep the audio .* codec 'pcm_mulaw' cannot go into '.mp4'.*"
                                         r"--audio drop"):
        recognize_video(_square, clip, out=tmp_path / "out.mp4", audio="keep")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.avi"]
    with pytest.raises(InvalidInputError, match="audio must be one of auto, keep, drop"):
        recognize_video(_square, clip, out=tmp_path / "out.mp4", audio="mute")


def test_scenes_split_the_clip_at_cuts_and_tracks_are_cut_to_them(tmp_path: Path,
                                                                   make_clip: Callable[..., Path]) -> None:
    clip = make_clip(tmp_path / "cut.mp4", _frames(cut=10))
    result = recognize_video(_square, clip, fps=2.0, keep_sheet=True)
    assert [(s.index, s.start, s.end, s.first, s.last) for s in result.scenes] == [(1, 0.0, 1.0, 0, 1),
                                                                                   (2, 1.0, 2.0, 2, 3)]
    assert [(t.name, t.start, t.end) for t in result.tracks] == [("Bo", 0.5, 1.0)]  # one track over the cut
    assert [(t.start, t.end, t.frames) for t in result.scene_tracks(1)] == [(0.5, 0.5, 1)]
    assert [(t.start, t.end, t.frames) for t in result.scene_tracks(2)] == [(1.0, 1.0, 1)]
    assert "0.5 s  Bo" in result.timeline(1) and "1.0 s  Bo" in result.timeline(2)
    record = json.loads(json.dumps(result.to_dict()))
    assert [(s["scene"], s["tracks"]) for s in record["scenes"]] == [(1, [1]), (2, [1])]
    assert [f["scene"] for f in record["frames"]] == [1, 1, 2, 2]
    assert set(result.shots) == {(1, 1), (2, 1)} and set(result.scene_frames) == {1, 2}


def test_cli_states_what_happened_to_the_audio(tmp_path: Path, make_clip: Callable[..., Path],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    clip = make_clip(tmp_path / "clip.mp4", _frames(), audio="aac")
    memory = str(tmp_path / "m.db")
    from PIL import Image

    Image.fromarray(np.full((64, 64, 3), 90, np.uint8)).save(tmp_path / "photo.png")
    assert main(["introduce", "Bo", str(tmp_path / "photo.png"), "--box", "8,8,56,56", "--memory", memory]) == 0
    capsys.readouterr()
    assert main(["recognize", str(clip), "--out", str(tmp_path / "a.mp4"), "--audio", "drop", "--memory", memory]) == 0
    assert "annotated video (audio dropped)" in capsys.readouterr().out
    assert _streams(tmp_path / "a.mp4") == [("video", "h264")]
    assert main(["recognize", str(clip), "--out", str(tmp_path / "b.mp4"), "--json", "--memory", memory]) == 0
    assert json.loads(capsys.readouterr().out)["audio"] == "kept"
    # a missing folder is made, as for a photo's --out
    new = tmp_path / "new" / "folder"
    assert main(["recognize", str(clip), "--out", str(new / "c.mp4"), "--sheet", str(new / "c.png"), "--memory",
                 memory]) == 0
    assert sorted(p.name for p in new.iterdir()) == ["c.mp4", "c.png"]


def test_cli_video_outputs_into_folders_and_a_bad_sheet_is_refused_before_the_work(
        tmp_path: Path, make_clip: Callable[..., Path], capsys: pytest.CaptureFixture[str]) -> None:
    clip = make_clip(tmp_path / "clip.mp4", _frames())
    memory = str(tmp_path / "m.db")
    from PIL import Image

    Image.fromarray(np.full((64, 64, 3), 90, np.uint8)).save(tmp_path / "photo.png")
    assert main(["introduce", "Bo", str(tmp_path / "photo.png"), "--box", "8,8,56,56", "--memory", memory]) == 0
    capsys.readouterr()
    folder = tmp_path / "out"  # a name ending in / is a folder, as for photos: made, and files get free names
    assert main(["recognize", str(clip), "--out", f"{folder}/", "--sheet", f"{folder}/", "--json",
                 "--memory", memory]) == 0
    record = json.loads(capsys.readouterr().out)
    assert sorted(p.name for p in folder.iterdir()) == ["clip_pekit.mp4", "clip_sheet.png"]
    assert sorted(record["written"]) == [str(folder / "clip_pekit.mp4"), str(folder / "clip_sheet.png")]
    assert record["fps"] <= 4  # the rate used: no faster than the clip's frames
    for sheet, words in ((tmp_path / "s.txt", "has no image suffix"), (tmp_path / "sheet", "has no image suffix")):
        code = main(["recognize", str(clip), "--out", str(tmp_path / "x.mp4"), "--sheet", str(sheet),
                     "--memory", memory])
        assert code == 2 and words in capsys.readouterr().err
        assert not (tmp_path / "x.mp4").exists() and not sheet.exists()  # refused before anything was written
    # a file where the sheet's folder would be: refused before the annotated video is written, not after
    for option, target in (("--sheet", clip / "sheet.png"), ("--out", clip / "x.mp4")):
        other = {"--sheet": ["--out", str(tmp_path / "x.mp4")], "--out": ["--sheet", str(tmp_path / "x.png")]}
        code = main(["recognize", str(clip), option, str(target), *other[option], "--memory", memory])
        err = capsys.readouterr().err
        assert code == 11 and f"'{clip}' is a file, not a folder" in err and "cannot create the folder" in err, err
        assert not (tmp_path / "x.mp4").exists() and not (tmp_path / "x.png").exists()


def test_a_huge_rate_samples_every_frame_and_tracks_across_them(tmp_path: Path,
                                                                 make_clip: Callable[..., Path]) -> None:
    import time

    clip = make_clip(tmp_path / "clip.mp4", _frames())
    start = time.perf_counter()
    result = recognize_video(_square, clip, fps=1e12, progress=False)
    assert time.perf_counter() - start < 10.0  # was fps x duration additions per sample
    assert len(result.frames) == 20  # every frame of the 10 fps clip, once
    # tracks bridge gaps of 2 samples of the clip's own rate, not of 1e12 fps (one track, not ten)
    assert [(t.name, round(t.start, 2), round(t.end, 2), t.frames) for t in result.tracks] == [("Bo", 0.5, 1.4, 10)]
    assert len(recognize_video(_square, clip, fps=1e12, max_frames=1, progress=False).frames) == 1


@pytest.mark.parametrize(("options", "message"), [
    ({"scene_cut": -5}, r"scene_cut must be a mean frame difference greater than 0 and at most 255 .*got -5"),
    ({"scene_cut": 300.0}, "scene_cut must be a mean frame difference"),
    ({"fps": float("inf")}, "fps must be a positive number"),
    ({"max_frames": 0}, "max_frames must be a whole number >= 1"),
])
def test_bad_sampling_options_are_refused_before_anything_is_written(
        tmp_path: Path, make_clip: Callable[..., Path], options: dict, message: str) -> None:
    clip = make_clip(tmp_path / "clip.mp4", _frames())
    calls: list[int] = []

    def recognize(image: np.ndarray, timings: dict[str, float]) -> Detections:
        calls.append(1)
        return _square(image, timings)

    with pytest.raises(InvalidInputError, match=message):
        recognize_video(recognize, clip, out=tmp_path / "out.mp4", sheet=tmp_path / "s.png", progress=False,
                        **options)
    assert not calls and sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_cli_refuses_a_negative_scene_cut(tmp_path: Path, make_clip: Callable[..., Path],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    clip = make_clip(tmp_path / "clip.mp4", _frames())
    memory = str(tmp_path / "m.db")
    from PIL import Image

    Image.fromarray(np.full((64, 64, 3), 90, np.uint8)).save(tmp_path / "photo.png")
    assert main(["introduce", "Bo", str(tmp_path / "photo.png"), "--box", "8,8,56,56", "--memory", memory]) == 0
    capsys.readouterr()
    assert main(["recognize", str(clip), "--scene-cut", "-5", "--out", str(tmp_path / "a.mp4"),
                 "--memory", memory]) == 2
    err = capsys.readouterr().err
    assert "scene_cut must be a mean frame difference greater than 0 and at most 255" in err
    assert "Traceback" not in err and not (tmp_path / "a.mp4").exists()


def test_names_beyond_the_palette_are_not_drawn_and_the_timeline_says_so() -> None:
    from pekit.prompt.overlay import PALETTE, colour_rgb, stable_colours
    from pekit.video.answer import _timeline_lines
    from pekit.video.render import stable_annotate
    from pekit.video.run import VideoResult
    from pekit.video.track import Track

    names = [f"n{i}" for i in range(len(PALETTE) + 1)]  # the last one shares a frame with n0
    colours = stable_colours(names)
    frame = np.full((60, 120, 3), 60, np.uint8)
    dets = Detections(xyxy=[[5, 5, 50, 50], [60, 5, 110, 50]], score=[0.5, 0.9],
                      name=np.array(["n0", names[-1]], dtype=object))
    drawn = stable_annotate(colours)(frame, dets)
    assert tuple(drawn[30, 5]) == colour_rgb(colours["n0"]) == colour_rgb("red")
    assert np.array_equal(drawn[:, 58:], frame[:, 58:])  # not drawn in n0's colour, nor in another
    alone = Detections(xyxy=[[60, 5, 110, 50]], score=[0.9], name=np.array([names[-1]], dtype=object))
    assert np.array_equal(stable_annotate(colours)(frame, alone), frame)  # a frame of it alone: as it was
    result = VideoResult.__new__(VideoResult)
    result.colours = colours
    tracks = [Track(1, 1, "n0", 1, 0.0, 1.0, 0.5), Track(2, 2, names[-1], 2, 0.0, 1.0, 0.9)]
    lines = _timeline_lines(result, tracks, set())
    assert lines == ["- 0.0-1.0 s: n0 (the entity in the red box)",
                     f"- 0.0-1.0 s: {names[-1]} (not marked: more names than box colours)"]


def test_a_phone_clip_stored_sideways_is_recognized_and_written_upright(tmp_path: Path,
                                                                       make_clip: Callable[..., Path]) -> None:
    import av

    clip = make_clip(tmp_path / "phone.mp4", _frames(), rotation=90)  # 64 x 96 stored, shown 96 high
    seen: list[tuple[int, ...]] = []

    def square(image: np.ndarray, timings: dict[str, float]) -> Detections:
        seen.append(image.shape)
        return _square(image, timings)

    result = recognize_video(square, clip, fps=2.0, out=tmp_path / "out.mp4")
    assert set(seen) == {(96, 64, 3)} and (result.info.width, result.info.height) == (64, 96)
    box = next(f.detections for f in result.frames if len(f.detections)).xyxy[0]
    assert box[3] > 48  # the square sat on the stored frame's left: shown upright, it is low
    with av.open(str(tmp_path / "out.mp4")) as out:
        first = next(out.decode(video=0))
        assert (first.width, first.height) == (64, 96) and not first.rotation  # written upright


def _drawn(path: Path) -> list[tuple[float, bool]]:
    """``(time, has a coloured box)`` per frame of an annotated clip (the test clips are grey)."""
    import av

    out = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            rgb = frame.to_ndarray(format="rgb24").astype(np.int16)
            out.append((round(float(frame.time), 2), bool(((rgb.max(axis=2) - rgb.min(axis=2)) > 80).any())))
    return out


def _always_bo(image: np.ndarray, timings: dict[str, float]) -> Detections:
    """'Bo' at one place in every frame of the first (dark) shot, nothing in the bright one."""
    if image.mean() > 120:
        return Detections.empty()
    return Detections(xyxy=[[10, 10, 40, 40]], score=[0.8], name=["Bo"], concept_id=[1])


def test_boxes_stay_in_their_shot_and_stop_after_the_last_sample(tmp_path: Path,
                                                                make_clip: Callable[..., Path]) -> None:
    """An output frame shows a sample's boxes only inside that sample's scene and within one
    sampling step: none on the frames after a cut that fall nearer the last sample before it,
    none after the last sample when ``max_frames`` stops early."""
    frames = [np.full((64, 96, 3), 200 if i >= 21 else 60, np.uint8) for i in range(40)]  # cut at 2.1 s
    clip = make_clip(tmp_path / "cut.mp4", frames)
    result = recognize_video(_always_bo, clip, fps=2.0, out=tmp_path / "a.mp4")
    assert [(s.start, s.end) for s in result.scenes] == [(0.0, 2.1), (2.1, 4.0)]
    drawn = _drawn(tmp_path / "a.mp4")
    assert [t for t, box in drawn if box] == [t for t, _ in drawn if t < 2.1]  # 2.1, 2.2 are nearer 2.0 than 2.5
    recognize_video(_always_bo, clip, fps=2.0, max_frames=2, out=tmp_path / "b.mp4")  # samples at 0 and 0.5 s
    drawn = _drawn(tmp_path / "b.mp4")
    assert [t for t, box in drawn if box] == [t for t, _ in drawn if t < 0.75]  # half a step after the last


def test_boxes_reach_the_clips_end_and_never_a_shot_that_got_no_sample(tmp_path: Path,
                                                                       make_clip: Callable[..., Path]) -> None:
    """A 0.3 s shot between two samples gets no sample: its frames show no boxes of the shot
    before it. The last sample's boxes reach the end of the clip when sampling ran to it."""
    frames = [np.full((64, 96, 3), 200 if 11 <= i <= 13 else 60, np.uint8) for i in range(30)]
    clip = make_clip(tmp_path / "short_shot.mp4", frames)
    recognize_video(_always_bo, clip, fps=2.0, out=tmp_path / "a.mp4")
    drawn = dict(_drawn(tmp_path / "a.mp4"))
    assert [t for t, box in drawn.items() if not box] == [1.1, 1.2, 1.3]


@pytest.mark.parametrize(("bright", "max_frames", "unboxed"), [
    (range(27, 30), None, [2.7, 2.8, 2.9]),  # a cut after the last sample: the new shot gets no box
    (range(6, 20), 2, [t / 10 for t in range(6, 30)]),  # stopped at 0.5 s, a cut at 0.6 s: none after it
    (range(0), 6, []),  # max_frames reached exactly at the clip's end: boxes to the last frame
])
def test_the_last_samples_boxes_end_at_a_cut_or_the_clip_or_where_sampling_stopped(
        tmp_path: Path, make_clip: Callable[..., Path], bright: range, max_frames: int | None,
        unboxed: list[float]) -> None:
    frames = [np.full((64, 96, 3), 200 if i in bright else 60, np.uint8) for i in range(30)]
    clip = make_clip(tmp_path / "clip.mp4", frames)
    recognize_video(_always_bo, clip, fps=2.0, max_frames=max_frames, out=tmp_path / "a.mp4")
    assert [t for t, box in _drawn(tmp_path / "a.mp4") if not box] == pytest.approx(unboxed)


def test_an_output_over_the_clip_itself_is_refused_before_any_work(tmp_path: Path,
                                                                    make_clip: Callable[..., Path]) -> None:
    """From Python as from the CLI: the clip is never replaced by its annotated copy or sheet
    (root writes even a read-only file), through another spelling of its path too."""
    clip = make_clip(tmp_path / "clip.mp4", _frames())
    before = clip.read_bytes()
    calls: list[int] = []

    def counting(image: np.ndarray, timings: dict[str, float]) -> Detections:
        calls.append(1)
        return _square(image, timings)

    link = tmp_path / "link.mp4"
    link.symlink_to(clip)
    for options in ({"out": clip}, {"out": tmp_path / "." / "clip.mp4"}, {"out": str(link)}):
        with pytest.raises(InvalidInputError, match="clip itself"):
            recognize_video(counting, clip, **options)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="from a file"):
        recognize_video(counting, clip.read_bytes())  # type: ignore[arg-type]
    assert clip.read_bytes() == before and not calls and not (tmp_path / "a.mp4").exists()


def test_a_clip_cut_short_by_max_frames_says_how_much_was_looked_at(tmp_path: Path,
                                                                   make_clip: Callable[..., Path]) -> None:
    """With max_frames the rest of the clip is not looked at: the timeline and the LVLM's
    prompt say so, rather than "none of your things appear in this 3 s video"."""
    from pekit.video.answer import video_prompt

    clip = make_clip(tmp_path / "clip.mp4", [np.full((64, 96, 3), 60, np.uint8)] * 30)
    nobody = lambda image, timings: Detections.empty()  # noqa: E731
    short = recognize_video(nobody, clip, fps=2.0, max_frames=2)
    assert short.looked_until == pytest.approx(0.75)
    assert "first 0.8 s of clip.mp4" in short.timeline() and "the rest was not looked at" in short.timeline()
    assert "the first 0.8 s of a 3.0 s video (the rest was not looked at)" in video_prompt(short, question="Who?")
    assert short.to_dict()["looked_until"] == pytest.approx(0.75) and short.scenes[-1].end == pytest.approx(0.75)
    whole = recognize_video(nobody, clip, fps=2.0, max_frames=6)  # 6 samples: the whole clip
    assert whole.looked_until is None and "a 3.0 s video" in video_prompt(whole, question="Who?")


def test_output_names_too_long_for_the_file_system_are_refused_before_the_work(tmp_path: Path,
                                                                             make_clip: Callable[..., Path]) -> None:
    clip = make_clip(tmp_path / "clip.mp4", _frames())
    long = "a" * 300
    for options in ({"out": tmp_path / f"{long}.mp4"}, {"sheet": tmp_path / f"{long}.png"}):
        with pytest.raises(InvalidInputError, match="not a path this system can write"):
            recognize_video(_square, clip, **options)  # type: ignore[arg-type]
    photo = tmp_path / "p.png"
    from PIL import Image

    Image.fromarray(_frames()[0]).save(photo)
    assert main(["recognize", str(photo), "--out", str(tmp_path / f"{long}.png"), "--memory", "memory://"]) == 2


def test_a_variable_frame_rate_clip_keeps_its_timing(tmp_path: Path) -> None:
    """A phone records at a variable rate (bursts, then a frame held for a second): the
    annotated copy shows each frame when the clip does, not on an even grid (which stretched
    this clip from 3.1 s to 3.4 s, boxes drifting off their moments)."""
    import av

    from pekit.video.render import write_annotated

    times = [0, .01, .51, .54, 1.54, 1.545, 1.6, 2.0, 2.05, 2.6, 3.085, 3.1]
    clip = _variable_rate_clip(tmp_path / "vfr.mp4", times, [np.full((64, 64, 3), i * 20, np.uint8)
                                                           for i in range(len(times))])
    box = Detections(xyxy=np.array([[8, 8, 40, 40]], np.float32), score=np.array([0.8], np.float32),
                     name=np.array(["Bo"], dtype=object))
    write_annotated(clip, tmp_path / "out.mp4", [0.0, 1.54], [box, box], {"Bo": "red"})
    with av.open(str(tmp_path / "out.mp4")) as written:
        shown = [float(f.time) for f in written.decode(written.streams.video[0])]
    assert np.allclose(shown, times, atol=2e-3), shown


def _variable_rate_clip(path: Path, times: list[float], frames: list[np.ndarray]) -> Path:
    """An H.264 clip whose frames are shown at ``times`` (s): bursts and pauses, as a phone or
    a screen recorder writes them."""
    from fractions import Fraction

    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        for t, image in zip(times, frames, strict=True):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = round(t * 1000), Fraction(1, 1000)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def test_a_pause_without_frames_does_not_split_a_track(tmp_path: Path) -> None:
    """A screen recording of a still screen writes no frames while nothing moves: Bo stays on
    screen through a 2 s pause, so one appearance, not two."""
    times = [0.0, 0.5, 1.0, 3.0, 3.5, 4.0]  # nothing between 1.0 and 3.0 s
    image = np.full((64, 96, 3), 60, np.uint8)
    image[20:40, 20:40] = 255
    clip = _variable_rate_clip(tmp_path / "still.mp4", times, [image] * len(times))
    result = recognize_video(_square, clip, fps=2.0, progress=False)
    assert [round(f.time, 2) for f in result.frames] == times
    assert [(t.name, round(t.start, 2), round(t.end, 2), t.frames) for t in result.tracks] == [("Bo", 0.0, 4.0, 6)]
    # a gap in what was seen still ends a track: Bo gone for the frames between 1.0 and 3.0 s
    gone = np.full((64, 96, 3), 60, np.uint8)
    times = [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5]
    clip = _variable_rate_clip(tmp_path / "gone.mp4", times, [image] * 3 + [gone] * 3 + [image] * 2)
    tracks = recognize_video(_square, clip, fps=2.0, progress=False).tracks
    assert [(round(t.start, 2), round(t.end, 2)) for t in tracks] == [(0.0, 1.0), (3.0, 3.5)]


def test_a_box_follows_a_moving_thing_between_samples(tmp_path: Path, make_clip: Callable[..., Path]) -> None:
    """Between two samples of one shot the annotated copy moves the box evenly from one
    sample's box to the next, so it stays on a moving thing instead of jumping twice a
    second: a square moving 3 px a frame is boxed within 2 px on every frame, where the
    nearest sample's box would be up to 6 px off."""
    frames = []
    for i in range(20):  # 10 fps, sampled at 2 fps: samples at frames 0, 5, 10, 15
        img = np.full((64, 120, 3), 60, np.uint8)
        img[20:40, 10 + 3 * i:30 + 3 * i] = 255
        frames.append(img)
    clip = make_clip(tmp_path / "moving.mp4", frames)
    recognize_video(_square, clip, fps=2.0, out=tmp_path / "a.mp4")
    import av

    off = []
    with av.open(str(tmp_path / "a.mp4")) as container:
        for k, frame in enumerate(container.decode(video=0)):
            rgb = frame.to_ndarray(format="rgb24").astype(np.int16)
            coloured = (rgb.max(axis=2) - rgb.min(axis=2)) > 80  # the box's outline, not grey or white
            if k < 15:  # (after the last sample the box stays where it was last seen)
                off.append(abs(int(np.flatnonzero(coloured.any(axis=0))[0]) - (10 + 3 * k)))
    assert len(off) == 15 and max(off) <= 2, off


def test_shown_at_moves_only_a_name_both_samples_box_and_never_across_a_cut() -> None:
    from pekit.video.render import shown_at

    a = Detections(xyxy=[[0, 0, 10, 10], [50, 50, 60, 60]], score=[0.7, 0.9], name=["Bo", "Mug"])
    b = Detections(xyxy=[[20, 0, 30, 10]], score=[0.8], name=["Bo"])
    times = np.array([0.0, 1.0])
    one_shot = np.array([[-1.0, 1.0], [0.0, 2.0]])
    at = shown_at(0.75, times, [a, b], one_shot)  # nearer b: b's detections, Bo moved back a quarter
    assert at.name.tolist() == ["Bo"] and at.xyxy.tolist() == [[15.0, 0.0, 25.0, 10.0]]
    at = shown_at(0.25, times, [a, b], one_shot)  # nearer a: Mug (only in a) stays where a saw it
    assert at.name.tolist() == ["Bo", "Mug"] and at.xyxy.tolist() == [[5.0, 0.0, 15.0, 10.0], [50, 50, 60, 60]]
    assert shown_at(0.0, times, [a, b], one_shot) is a  # on a sample: that sample's boxes
    cut = np.array([[-1.0, 0.5], [0.5, 2.0]])  # a cut at 0.5 s: each sample reaches its own shot only
    assert shown_at(0.25, times, [a, b], cut) is a and shown_at(0.75, times, [a, b], cut) is b
    assert len(shown_at(5.0, times, [a, b], one_shot)) == 0  # no window holds it


def test_a_name_the_question_mentions_is_no_colour_of_the_clip(tmp_path: Path, make_clip: Callable[..., Path]) -> None:
    """A question about a clip that names "Red" (a concept not in it): Bo's box is not red, in
    the annotated copy as in the colours the prompt names."""
    clip = make_clip(tmp_path / "clip.mp4", _frames())
    assert recognize_video(_square, clip, fps=2.0).colours == {"Bo": "red"}
    result = recognize_video(_square, clip, fps=2.0, avoid=["Red"], out=tmp_path / "a.mp4")
    assert result.colours == {"Bo": "blue"}
    import av

    with av.open(str(tmp_path / "a.mp4")) as container:
        frame = [f.to_ndarray(format="rgb24").astype(int) for f in container.decode(video=0)][10]  # Bo in view
    coloured = frame[(frame.max(axis=2) - frame.min(axis=2)) > 80]
    assert len(coloured) and coloured[:, 2].mean() > coloured[:, 0].mean() + 80  # blue, not red
