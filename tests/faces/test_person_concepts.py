"""Person concepts through `Personalizer` and the CLI: introduce, recognize, prompt, errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from pekit.cli import main
from pekit.errors import InvalidInputError, NothingFoundError
from pekit.faces import concept_kind


@pytest.fixture
def mixed(make_personalizer: Any, faces: Any, astronaut: np.ndarray, chelsea: np.ndarray) -> Any:
    """A memory holding a person (the astronaut) and an object (the cat)."""
    p = make_personalizer(faces=faces)
    p.introduce("cat", chelsea, category="cat")
    p.introduce("Eileen", astronaut, kind="person", context="my colleague")
    return p


def test_persons_and_objects_share_one_memory(mixed: Any, astronaut: np.ndarray, chelsea: np.ndarray) -> None:
    kinds = {c.name: concept_kind(c) for c in mixed.concepts()}
    assert kinds == {"cat": "object", "Eileen": "person"}
    eileen = mixed.get("Eileen")
    assert eileen.category == "person" and len(eileen.meta["faces"]) == 1 and len(eileen.meta["faces"][0]) == 128
    assert eileen.meta["face_model"] == mixed.faces.fingerprint
    assert mixed.gallery().names == ["cat"]  # face-region views never enter object matching
    dets = mixed.recognize(astronaut)  # the backbone check accepts the mixed memory
    assert "Eileen" in dets.name.tolist()
    face = dets[dets.name == "Eileen"]
    assert face.xyxy[0, 0] >= 150 and face.xyxy[0, 2] <= 290  # the face box, not the whole photo
    assert "Eileen" not in mixed.recognize(chelsea).name.tolist()  # a cat has no face to name


def test_face_detector_runs_only_when_memory_holds_a_person(make_personalizer: Any, chelsea: np.ndarray) -> None:
    p = make_personalizer(faces="no-such-face-model")  # loading it would raise
    p.introduce("cat", chelsea, category="cat")
    assert p.recognize(chelsea).name.tolist() == ["cat"]
    assert "faces" not in p._models  # never loaded


def test_prompt_calls_a_person_a_person(mixed: Any, astronaut: np.ndarray) -> None:
    answer = mixed.ask(astronaut, "What is Eileen wearing?")
    assert "The person in the" in answer.prompt and "box is Eileen." in answer.prompt
    assert "my colleague" in answer.prompt


def test_explain_shows_a_recognized_person_not_nothing_found(mixed: Any, astronaut: np.ndarray,
                                                              make_personalizer: Any, faces: Any,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A person is recognized by face: the explanation draws its box (no heat map) and never
    says "none found" under a photo where `recognize` named someone."""
    dets = mixed.recognize(astronaut)
    eileen = dets[dets.name == "Eileen"]
    figure = mixed.explain(astronaut, eileen)
    h, w = astronaut.shape[:2]
    assert figure.shape[0] > h and figure.shape[1] == w
    x0, y0, x1, _ = np.round(eileen.xyxy[0]).astype(int)
    assert (figure[y0 + 1, x0:x1] == [0, 255, 255]).all(axis=-1).mean() > 0.5  # its box, in cyan
    np.testing.assert_array_equal(figure[:y0 - 3, :x0 - 3], astronaut[:y0 - 3, :x0 - 3])  # no heat map
    # recognized again when no detections are given: the person is found by explain too
    assert dets.name.tolist() == ["Eileen"]
    np.testing.assert_array_equal(mixed.explain(astronaut), figure)
    # a memory of people only: the explanation costs no backbone pass
    people = make_personalizer(faces=faces)
    people.introduce("Eileen", astronaut, kind="person")
    monkeypatch.setattr(people.pipeline, "encode", lambda *a, **k: pytest.fail("a backbone pass"))
    only = people.explain(astronaut)
    assert only.shape[0] > h and (only[y0 + 1, x0:x1] == [0, 255, 255]).all(axis=-1).mean() > 0.5


@pytest.mark.parametrize(
    ("photo", "box", "error", "words"),
    [("chelsea", None, NothingFoundError, "no face"), ("pair", None, InvalidInputError, "--box"),
     ("astronaut", [5000, 5000, 5100, 5100], InvalidInputError, "lies outside the 512x512 photo")],
)
def test_bad_person_photos_leave_memory_untouched(mixed: Any, astronaut: np.ndarray, chelsea: np.ndarray,
                                                  photo: str, box: Any, error: type, words: str) -> None:
    before = [(c.name, c.updated) for c in mixed.concepts()]
    image = {"chelsea": chelsea, "astronaut": astronaut}.get(photo, np.hstack([astronaut, astronaut]))
    with pytest.raises(error, match=words):
        mixed.introduce("Someone", image, kind="person", boxes=None if box is None else [box])
    assert [(c.name, c.updated) for c in mixed.concepts()] == before


def test_unknown_kind_or_masks_for_a_person_are_clear_errors(make_personalizer: Any, astronaut: np.ndarray) -> None:
    p = make_personalizer()
    with pytest.raises(InvalidInputError, match="object, person"):
        p.introduce("x", astronaut, kind="animal")
    with pytest.raises(InvalidInputError, match="not masks"):
        p.introduce("x", astronaut, kind="person", masks=[np.ones((512, 512), bool)])
    assert p.concepts() == []


def test_cli_introduce_person(tmp_path: Path, cached_pipelines: Any, faces: Any, astronaut: np.ndarray,
                              capsys: pytest.CaptureFixture[str]) -> None:
    photo = tmp_path / "eileen.png"
    Image.fromarray(astronaut).save(photo)
    memory = str(tmp_path / "m.db")
    assert main(["introduce", "Eileen", str(photo), "--kind", "person", "--memory", memory, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["kind"] == "person"
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((200, 200, 3), 90, np.uint8)).save(blank)
    assert main(["introduce", "Nobody", str(blank), "--kind", "person", "--memory", memory]) == 6
    err = capsys.readouterr().err
    assert "no face found" in err and len(err.strip().splitlines()) == 1
    # the face model and its tolerance from the command line: a mirrored photo is Eileen at the
    # default tolerance, not at a very strict one; an unknown face model is named with the choices
    mirrored = tmp_path / "mirrored.png"
    Image.fromarray(np.ascontiguousarray(astronaut[:, ::-1])).save(mirrored)
    for extra, names in (([], ["Eileen"]), (["--face-tolerance", "0.05"], [])):
        assert main(["recognize", str(mirrored), "--memory", memory, "--json", *extra]) == 0
        assert [d["name"] for d in json.loads(capsys.readouterr().out)] == names
    assert main(["recognize", str(mirrored), "--memory", memory, "--faces", "dlb-cnn"]) == 8
    assert "unknown faces 'dlb-cnn'; available: dlib, dlib-cnn" in capsys.readouterr().err


@pytest.mark.dataset
def test_people_in_a_group_scene(make_personalizer: Any, faces: Any, people: Path) -> None:
    p = make_personalizer(faces=faces)
    p.introduce("Kit", people / "kit_harington" / "00.jpg", kind="person")
    p.introduce("Rose", people / "rose_leslie" / "00.jpg", kind="person")
    p.introduce("Obama", people / "obama" / "00.jpg", kind="person")
    assert sorted(p.recognize(people / "scenes" / "kit_with_rose.jpg").name.tolist()) == ["Kit", "Rose"]
    assert p.recognize(people / "scenes" / "obama_and_biden.jpg").name.tolist() == ["Obama"]  # Biden unknown


@pytest.mark.dataset
def test_photos_of_two_people_under_one_name_are_warned_about(make_personalizer: Any, faces: Any, people: Path,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    p = make_personalizer(faces=faces)
    with caplog.at_level("WARNING", logger="pekit.personalizer"):
        p.introduce("Barack", [people / "obama" / "00.jpg", people / "obama" / "01.jpg"], kind="person")
    assert "apart" not in caplog.text  # one person's faces stay within the tolerance
    with caplog.at_level("WARNING", logger="pekit.personalizer"):
        p.introduce("Mixed", [people / "obama" / "00.jpg", people / "biden" / "00.jpg"], kind="person")
    assert "faces of photos 1 and 2" in caplog.text and "are both of Mixed?" in caplog.text


def test_a_person_from_copies_or_under_a_second_name_is_warned_about(make_personalizer: Any, faces: Any,
                                                                     astronaut: np.ndarray, chelsea: np.ndarray,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    """The checks `introduce` makes for a thing hold for a person: the same photo given twice
    is named (and recorded), and a person already in memory under another name is named as
    the closest (`most_alike`: 1 - the face distance, a person's score)."""
    p = make_personalizer(faces=faces)
    p.introduce("cat", chelsea, category="cat")  # an object beside them changes nothing
    with caplog.at_level("WARNING", logger="pekit.personalizer"):
        eileen = p.introduce("Eileen", [astronaut, astronaut.copy()], kind="person")
    assert "photos 1 and 2" in caplog.text and "same picture" in caplog.text
    assert eileen.meta["same_pictures"] == [[1, 2]] and p.most_alike("Eileen") is None  # nobody else yet
    caplog.clear()
    mirrored = np.ascontiguousarray(astronaut[:, ::-1])
    with caplog.at_level("WARNING", logger="pekit.personalizer"):
        p.introduce("Astro", mirrored, kind="person")
    assert "'Astro' looks much like 'Eileen', already in memory (their faces are" in caplog.text
    name, score = p.most_alike("Astro")
    assert name == "Eileen" and 0.4 <= score < 1.0 and p.most_alike("eileen") == ("Astro", score)
    assert p.most_alike("cat") is None  # no other object: persons are not compared by parts


@pytest.mark.dataset
def test_adding_a_face_of_someone_else_is_warned_about(make_personalizer: Any, faces: Any, people: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    """`add_view` of another person's photo makes that person recognized under the name: it
    is warned about as `introduce` warns of two people's photos."""
    p = make_personalizer(faces=faces)
    p.introduce("Barack", [people / "obama" / "00.jpg", people / "obama" / "01.jpg"], kind="person")
    with caplog.at_level("WARNING", logger="pekit.personalizer"):
        p.add_view("Barack", people / "obama" / "02.jpg")
    assert "nearest" not in caplog.text  # one more photo of him
    with caplog.at_level("WARNING", logger="pekit.personalizer"):
        more = p.add_view("Barack", people / "biden" / "00.jpg")
    assert "from the nearest of its 3 face(s)" in caplog.text and "is it Barack?" in caplog.text
    assert "pekit add-view --undo 'Barack'" in caplog.text and len(more.meta["faces"]) == 4  # said, added as asked
    back = p.undo_view("Barack")  # and taken back: his face goes with the view
    assert len(back.meta["faces"]) == 3 and len(back.views) == 3 and len(back.meta["boxes"]) == 3


def test_add_view_of_a_person_adds_a_face_by_the_rules_of_introduce(mixed: Any, astronaut: np.ndarray,
                                                                      chelsea: np.ndarray) -> None:
    """A person is recognized by face: one more view must add a face vector (and its face
    box), and a photo of two faces without a box is refused as `introduce` refuses it."""
    before = mixed.get("Eileen")
    flipped = np.ascontiguousarray(astronaut[:, ::-1])
    more = mixed.add_view("Eileen", flipped)
    assert len(more.meta["faces"]) == 2 and len(more.views) == 2 and len(more.meta["boxes"]) == 2
    face = more.meta["boxes"][1]
    assert face[2] - face[0] < 200  # the face's box, not the photo's
    assert more.meta["face_model"] == before.meta["face_model"]
    stored = mixed.get("Eileen")
    for image, box, error, words in [(np.hstack([astronaut, astronaut]), None, InvalidInputError, "2 faces"),
                                     (chelsea, None, NothingFoundError, "no face"),
                                     (astronaut, [5000, 5000, 5100, 5100], InvalidInputError, "outside")]:
        with pytest.raises(error, match=words):
            mixed.add_view("Eileen", image, box=box)
    with pytest.raises(InvalidInputError, match="not a mask"):
        mixed.add_view("Eileen", astronaut, mask=np.ones(astronaut.shape[:2], bool))
    assert mixed.get("Eileen").updated == stored.updated  # refused: nothing written
    assert "Eileen" in mixed.recognize(flipped).name.tolist()
    back = mixed.undo_view("Eileen")  # the face goes with its view: as introduced
    assert back.meta["faces"] == before.meta["faces"] and back.meta["boxes"] == before.meta["boxes"]
    assert len(back.views) == 1 and "added_views" not in back.meta


def test_add_view_errors_say_what_to_do_in_add_view(tmp_path: Path, cached_pipelines: Any, faces: Any,
                                                   astronaut: np.ndarray, chelsea: np.ndarray,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """A refused person photo in `add-view` says what add-view takes: not `--kind object`
    (add-view has no such option) nor "the person to introduce"."""
    memory = str(tmp_path / "m.db")
    photos = {}
    for name, image in [("eileen", astronaut), ("cat", chelsea), ("pair", np.hstack([astronaut, astronaut]))]:
        photos[name] = str(tmp_path / f"{name}.png")
        Image.fromarray(image).save(photos[name])
    assert main(["introduce", "Eileen", photos["eileen"], "--kind", "person", "--memory", memory]) == 0
    capsys.readouterr()
    assert main(["add-view", "Eileen", photos["cat"], "--memory", memory]) == 6
    err = capsys.readouterr().err
    assert "no face found" in err and "--kind" not in err and len(err.strip().splitlines()) == 1
    assert main(["add-view", "Eileen", photos["pair"], "--memory", memory]) == 2
    err = capsys.readouterr().err
    assert "2 faces" in err and "--box" in err and "to add (box= in Python)" in err and "introduce" not in err
    assert main(["introduce", "Two", photos["pair"], "--kind", "person", "--memory", memory]) == 2
    assert "to introduce (boxes= in Python)" in capsys.readouterr().err
    assert main(["introduce", "Cat", photos["cat"], "--kind", "person", "--memory", memory]) == 6
    assert "--kind object" in capsys.readouterr().err  # introduce has it


def test_correct_says_a_person_is_matched_by_face_and_changes_nothing(mixed: Any, astronaut: np.ndarray) -> None:
    assert "Eileen" in mixed.recognize(astronaut).name.tolist()
    before = mixed.get("Eileen")
    with pytest.raises(InvalidInputError, match="is a person, recognized by face") as info:
        mixed.correct(astronaut, "Eileen")
    assert "--face-tolerance 0.5 on recognize" in str(info.value)  # said for the command line too
    assert mixed.get("Eileen").updated == before.updated


def test_without_the_face_model_things_are_still_recognized_and_the_people_named_once(
        mixed: Any, chelsea: np.ndarray, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A memory made where [faces] is installed, read where it is not: recognition of every
    thing in it must not fail for the people it cannot look for; one warning says why."""
    from pekit.errors import MissingDependencyError
    from pekit.faces import people

    def no_dlib(*args: Any, **kwargs: Any) -> Any:
        raise MissingDependencyError("this feature needs the optional dependency 'dlib', which is not installed: "
                                     "run `pip install 'pekit-vlm[faces]'`")

    monkeypatch.setattr(people, "recognize_faces", no_dlib)
    with caplog.at_level("WARNING"):
        assert mixed.recognize(chelsea).name.tolist() == ["cat"]
        assert mixed.recognize(chelsea).name.tolist() == ["cat"]
    warned = [r.getMessage() for r in caplog.records if "person(s)" in r.getMessage()]
    assert len(warned) == 1 and "'Eileen'" in warned[0] and "pekit-vlm[faces]" in warned[0], warned
    assert "recognizing things only" in warned[0]
