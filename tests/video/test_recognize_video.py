"""Video through `Personalizer.recognize_video` and the CLI: tracks, outputs, no partial files."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from pekit.cli import main
from pekit.errors import PekitError
from pekit.types import Detections
from pekit.video import VideoError, recognize_video


@pytest.fixture(scope="module")
def face_frames() -> list[np.ndarray]:
    """16 frames (4 s at 4 fps) of 320 x 320: grey, the astronaut for frames 6-11, grey."""
    from skimage import data

    face = np.asarray(Image.fromarray(data.astronaut()).resize((320, 320), Image.Resampling.BILINEAR))
    grey = np.full((320, 320, 3), 110, np.uint8)
    return [face if 6 <= i < 12 else grey for i in range(16)]


@pytest.fixture
def face_clip(tmp_path: Path, make_clip: Callable[..., Path], face_frames: list[np.ndarray]) -> Path:
    return make_clip(tmp_path / "clip.mp4", face_frames, fps=4)


@pytest.fixture
def eileen(make_personalizer: Any, astronaut: np.ndarray, need_faces: None) -> Any:
    p = make_personalizer()
    p.introduce("Eileen", astronaut, kind="person")
    return p


def test_a_person_entering_and_leaving_is_one_track(eileen: Any, face_clip: Path, tmp_path: Path) -> None:
    import av

    out, sheet = tmp_path / "annotated.mp4", tmp_path / "sheet.png"
    result = eileen.recognize_video(face_clip, fps=2.0, out=out, sheet=sheet)
    assert [(t.name, t.start, t.end) for t in result.tracks] == [("Eileen", 1.5, 2.5)]
    assert len(result.frames) == 8
    named = [f.time for f in result.frames if "Eileen" in f.detections.name.tolist()]
    assert named == [1.5, 2.0, 2.5]
    assert result.timings["faces"] > 0 and result.timings["backbone"] == 0  # only a person in memory
    record = json.loads(json.dumps(result.to_dict()))
    assert record["tracks"][0]["name"] == "Eileen" and record["frames"][3]["detections"][0]["track"] == 1
    with av.open(str(out)) as container:  # every source frame, re-encoded, no audio
        assert not container.streams.audio
        assert sum(1 for _ in container.decode(video=0)) == 16
    assert Image.open(sheet).size[0] > 100
    assert "Eileen" in result.timeline()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["annotated.mp4", "clip.mp4", "sheet.png"]


def test_a_failure_mid_clip_leaves_no_output(face_clip: Path, tmp_path: Path) -> None:
    calls = []

    def flaky(image: np.ndarray, timings: dict[str, float]) -> Detections:
        calls.append(1)
        if len(calls) == 3:
            raise VideoError("boom")
        return Detections.empty()

    with pytest.raises(VideoError, match="boom"):
        recognize_video(flaky, face_clip, out=tmp_path / "a.mp4", sheet=tmp_path / "s.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_bad_video_through_personalizer_writes_nothing(eileen: Any, tmp_path: Path) -> None:
    bad = tmp_path / "notes.mp4"
    bad.write_text("hello")
    before = [(c.name, c.updated) for c in eileen.concepts()]
    with pytest.raises(PekitError, match="not a readable video"):
        eileen.recognize_video(bad, out=tmp_path / "a.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.mp4"]
    assert [(c.name, c.updated) for c in eileen.concepts()] == before


def test_cli_recognize_a_video(face_clip: Path, tmp_path: Path, cached_pipelines: Any, astronaut: np.ndarray,
                               capsys: pytest.CaptureFixture[str], need_faces: None) -> None:
    photo = tmp_path / "eileen.png"
    Image.fromarray(astronaut).save(photo)
    memory = str(tmp_path / "m.db")
    assert main(["introduce", "Eileen", str(photo), "--kind", "person", "--memory", memory]) == 0
    capsys.readouterr()
    out = tmp_path / "annotated.mp4"
    assert main(["recognize", str(face_clip), "--out", str(out), "--json", "--memory", memory]) == 0
    record = json.loads(capsys.readouterr().out)
    assert [t["name"] for t in record["tracks"]] == ["Eileen"] and record["audio"] is None and out.is_file()
    bad = tmp_path / "text.mp4"
    bad.write_text("x")
    assert main(["recognize", str(bad), "--out", str(tmp_path / "b.mp4"), "--memory", memory]) == 3
    assert "not a readable video" in capsys.readouterr().err
    assert not (tmp_path / "b.mp4").exists()
    assert main(["recognize", str(face_clip), str(photo), "--memory", memory]) == 2
    assert "one video at a time" in capsys.readouterr().err
    assert main(["recognize", str(face_clip), "--fps", "0", "--memory", memory]) == 2
    assert "fps must be a positive number" in capsys.readouterr().err
    assert main(["recognize", str(face_clip), "--out", str(tmp_path / "a.gif"), "--memory", memory]) == 2
    assert "must end in one of .mp4" in capsys.readouterr().err


def test_ask_and_caption_a_clip_send_the_timeline(eileen: Any, face_clip: Path, chelsea: np.ndarray) -> None:
    answer = eileen.ask(face_clip, "When does Eileen appear?")
    assert answer.meta["backend"] == "none" and answer.text == ""
    assert "1.5-2.5 s: Eileen (the person in the red box)" in answer.prompt
    assert answer.prompt.rstrip().endswith("without mentioning the boxes or their colours.")
    assert answer.detections.name.tolist() == ["Eileen"] and answer.image is not None
    caption = eileen.caption(face_clip)
    assert "calling Eileen by name" in caption.prompt and caption.meta["kind"] == "video-caption"
    eileen.introduce("Red", chelsea, boxes=[[100, 20, 320, 290]])  # a cat called Red, not in the clip
    answer = eileen.ask(face_clip, "Is Red with Eileen?")  # ... never the colour of a box in the same prompt
    assert "Eileen (the person in the blue box)" in answer.prompt and "the red box" not in answer.prompt


def test_a_clip_without_concepts_gets_a_plain_prompt(make_personalizer: Any, make_clip: Callable[..., Path],
                                                     tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "grey.mp4", [np.full((64, 64, 3), 90, np.uint8)] * 8, fps=4)
    answer = make_personalizer().caption(clip)
    assert "None of the user's people or things appear" in answer.prompt
    assert answer.image is not None and answer.image.shape[2] == 3 and len(answer.detections) == 0


DATA = Path(__file__).parents[2] / ".." / "shared" / "data"


@pytest.mark.dataset
def test_lin_in_the_hamilton_clip(make_personalizer: Any, need_faces: None) -> None:
    clip = DATA / "video" / "short_hamilton_clip.mp4"
    if not clip.is_file():
        pytest.skip(f"the Hamilton clip is not at {clip.resolve()}")
    p = make_personalizer()
    p.introduce("Lin", DATA / "people" / "lin_manuel_miranda" / "00.png", kind="person")
    result = p.recognize_video(clip, fps=2.0)
    longest = max(result.tracks, key=lambda t: t.end - t.start)
    assert longest.name == "Lin" and longest.start == pytest.approx(4.0, abs=0.6)
    assert longest.end == pytest.approx(7.5, abs=0.6)
    assert {t.name for t in result.tracks} == {"Lin"}


def test_objects_and_people_in_one_clip(make_personalizer: Any, make_clip: Callable[..., Path], tmp_path: Path,
                                        chelsea: np.ndarray, astronaut: np.ndarray, need_faces: None) -> None:
    p = make_personalizer()
    p.introduce("cat", chelsea, category="cat")
    p.introduce("Eileen", astronaut, kind="person")
    cat = np.asarray(Image.fromarray(chelsea).resize((512, 340), Image.Resampling.BILINEAR))
    cat = np.pad(cat, ((86, 86), (0, 0), (0, 0)), constant_values=110)
    clip = make_clip(tmp_path / "both.mp4", [cat] * 4 + [astronaut] * 4, fps=4)
    result = p.recognize_video(clip, fps=2.0)
    assert [(t.name, t.start, t.end) for t in result.tracks] == [("cat", 0.0, 0.5), ("Eileen", 1.0, 1.5)]
    assert result.timings["backbone"] > 0 and result.timings["faces"] > 0


def test_cli_caption_a_clip_scene_by_scene_without_an_lvlm(face_clip: Path, tmp_path: Path, astronaut: np.ndarray,
                                                           cached_pipelines: Any, need_faces: None,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    photo = tmp_path / "eileen.png"
    Image.fromarray(astronaut).save(photo)
    memory = str(tmp_path / "m.db")
    assert main(["introduce", "Eileen", str(photo), "--kind", "person", "--memory", memory]) == 0
    capsys.readouterr()
    assert main(["caption", str(face_clip), "--memory", memory]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[:4] == ["no LVLM configured (use --lvlm); the timeline of each scene:",
                       "scene 1 (0.0-1.5 s):", "  none of your concepts appear in scene 1 (1.5 s)",
                       "scene 2 (1.5-3.0 s):"]
    assert out[4].startswith("  1.5-2.5 s  Eileen (")
    assert out[5:] == ["scene 3 (3.0-4.0 s):", "  none of your concepts appear in scene 3 (1.0 s)",
                       f"contact sheet: {tmp_path / 'clip_pekit.jpg'}"]
    assert main(["caption", str(face_clip), "--json", "--memory", memory]) == 0
    record = json.loads(capsys.readouterr().out)
    assert [(s["scene"], s["start"], s["end"], s["tracks"], s["caption"]) for s in record["scenes"]] == [
        (1, 0.0, 1.5, [], ""), (2, 1.5, 3.0, [1], ""), (3, 3.0, 4.0, [], "")]
    sheet = str(tmp_path / "sheet.png")  # a clip's --out is a contact sheet, and says so
    assert main(["caption", str(face_clip), "--json", "--out", sheet, "--memory", memory]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["sheet"] == sheet and record["written"] == [sheet] and "annotated" not in record
    assert main(["ask", str(face_clip), "Who is here?", "--json", "--out", sheet, "--memory", memory]) == 0
    record = json.loads(capsys.readouterr().out)  # ask names a clip's sheet as caption does
    assert record["sheet"] == sheet and record["written"] == [sheet] and "annotated" not in record
    assert main(["caption", str(face_clip), str(photo), "--memory", memory]) == 2
    assert "one video at a time" in capsys.readouterr().err
    # a long clip can be bounded: the face appears from 1.5 s, after the two samples allowed
    assert main(["caption", str(face_clip), "--max-frames", "2", "--fps", "1", "--json", "--memory", memory]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["detections"] == [] and all(not s["tracks"] for s in record["scenes"])
    assert record["duration"] == 4.0 and record["looked_until"] == 1.5  # the last sample at 1.0 s + half a step
    assert main(["caption", str(face_clip), "--max-frames", "2", "--fps", "1", "--memory", memory]) == 0
    assert capsys.readouterr().out.splitlines()[-2] == (  # said in words too, not only in --json
        "looked at the first 1.5 s of a 4.0 s video (the rest was not looked at): raise --max-frames (or lower "
        "--fps) to look at all of it")
    assert main(["recognize", str(face_clip), "--max-frames", "3", "--fps", "1", "--memory", memory]) == 0
    out = capsys.readouterr().out.splitlines()  # a track was found in the part looked at: the rest is named
    assert out[0].startswith("       2.0 s  Eileen (") and out[1].startswith("looked at the first 2.5 s of a 4.0 s")
    assert main(["caption", str(face_clip), "--json", "--memory", memory]) == 0
    assert json.loads(capsys.readouterr().out)["looked_until"] is None  # all of it
    assert main(["ask", str(photo), "Who?", "--max-frames", "2", "--memory", memory]) == 2
    assert "--max-frames is for a video clip" in capsys.readouterr().err


def test_a_clip_takes_any_threshold_a_photo_takes(make_personalizer: Any, face_clip: Path, chelsea: np.ndarray,
                                                 astronaut: np.ndarray) -> None:
    """The weak detections a clip keeps for its tracks lie under the threshold; a threshold
    at the bottom of the range (-1, everything) must not become an invalid one."""
    p = make_personalizer()
    p.introduce("Mochi", chelsea, category="cat")
    assert len(p.recognize(astronaut, threshold=-1)) == 1
    result = p.recognize_video(face_clip, fps=2.0, threshold=-1, max_frames=2)
    assert len(result.frames) == 2 and all(len(f.detections) for f in result.frames)
