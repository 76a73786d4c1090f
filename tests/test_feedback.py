"""Feedback verbs on the real offline backbone (`correct`, its undo, `add_view`, `explain`), and the
pure steps of `pekit.feedback` below them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from pekit.cli import main
from pekit.errors import ConceptNotFoundError, InvalidInputError, NothingFoundError


def snapshot(p: Any) -> list[tuple]:
    """Everything stored of each concept, and the namespace's write counter: a refused
    correction or view must change none of it (not even a record in ``meta``)."""
    import json

    return [(c.id, c.name, c.category, c.context, c.threshold, c.updated, json.dumps(c.meta, sort_keys=True),
             c.views.tobytes(), None if c.parts is None else c.parts.tobytes(),
             None if c.negatives is None else c.negatives.tobytes()) for c in p.memory.concepts(namespace=p.namespace)
            ] + [("generation", p.memory.generation(namespace=p.namespace))]


@pytest.fixture
def cat_only(make_personalizer: Any, chelsea: np.ndarray) -> Any:
    p = make_personalizer()
    p.introduce("Mochi", chelsea, category="cat")
    return p


def _look_alike(chelsea: np.ndarray) -> np.ndarray:
    """Another 'cat': the same photo mirrored and recoloured (it is recognized as Mochi)."""
    img = np.ascontiguousarray(chelsea[:, ::-1]).astype(np.int16)
    img[..., 2] = np.clip(img[..., 2] + 40, 0, 255)
    return img.astype(np.uint8)


def test_correct_stops_the_same_look_alike_being_named(cat_only: Any, chelsea: np.ndarray) -> None:
    other = _look_alike(chelsea)
    assert cat_only.recognize(other).name.tolist() == ["Mochi"]      # the mistake to correct
    c = cat_only.correct(other, "mochi")                               # names ignore case
    assert c.negatives is not None and c.negatives.shape[1] == 384 and 1 <= len(c.negatives) <= 32  # its parts
    assert c.meta["corrections"][0]["score"] >= cat_only.preset.recognition.threshold
    stored = cat_only.get("Mochi")
    np.testing.assert_allclose(stored.negatives, c.negatives, atol=1e-6)
    assert len(stored.views) == 1 and cat_only.memory.summaries()[0].views == 1  # negatives are not views
    assert cat_only.recognize(other).name.tolist() == []              # the look-alike is not Mochi any more


def test_correct_finds_what_recognize_found_on_a_second_look(make_personalizer: Any, chelsea: np.ndarray,
                                                              coffee: np.ndarray) -> None:
    p = make_personalizer()
    p.introduce("Mochi", chelsea, category="cat")
    p.introduce("Cup", coffee, category="cup")
    room = np.full((600, 900, 3), 110, np.uint8)                       # a small look-alike beside a cup
    room[200:380, 250:520] = np.asarray(Image.fromarray(_look_alike(chelsea)).resize((270, 180)))
    room[220:300, 600:720] = np.asarray(Image.fromarray(coffee).resize((120, 80)))
    thr = p.preset.recognition.threshold
    from pekit.retrieve.match import Gallery

    first = p.pipeline.candidates(p.pipeline.encode(room), Gallery.from_concepts(p.concepts()))
    assert max(c.score for c in first if c.concept == 0) < thr        # the first look alone misses it
    assert p.recognize(room).name.tolist() == ["Mochi"]                # the crop names it: the mistake
    c = p.correct(room, "Mochi")                                       # found as recognize found it
    assert c.meta["corrections"][0]["score"] >= thr and c.negatives is not None
    assert p.recognize(room).name.tolist() == []


def test_correct_where_the_name_was_not_found_changes_nothing(cat_only: Any, astronaut: np.ndarray) -> None:
    before = snapshot(cat_only)
    with pytest.raises(NothingFoundError, match=r"nothing to correct.*another --threshold or --preset\? pass the same"):
        cat_only.correct(astronaut, "Mochi")
    with pytest.raises(ConceptNotFoundError):
        cat_only.correct(astronaut, "Bo")
    assert snapshot(cat_only) == before


def test_add_view_appends_a_view_and_its_parts(cat_only: Any, chelsea: np.ndarray, grid_cache: Any) -> None:
    before = cat_only.get("Mochi")
    calls = grid_cache.calls
    after = cat_only.add_view("Mochi", np.ascontiguousarray(chelsea[:, ::-1]), box=[40, 0, 451, 300])
    assert grid_cache.calls - calls == 2                             # the photo and its zoomed-out copy
    assert len(after.views) == 2 and np.allclose(after.views[0], before.views[0])
    assert len(after.parts) > len(before.parts) and len(after.meta["references"]) == 2
    assert sum(after.meta["part_groups"]) == len(after.parts)       # full-size, then zoomed-out parts
    assert after.id == before.id and cat_only.get("Mochi").views.shape == (2, 384)


def test_add_view_of_something_else_is_warned_about(cat_only: Any, chelsea: np.ndarray, coffee: np.ndarray,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    """A photo its concept hardly recognizes (the rule `introduce` warns by): probably not of
    it. Added all the same (the user may know better), but said, with how to undo it."""
    with caplog.at_level("WARNING", logger="pekit.personalizer"):
        cat_only.add_view("Mochi", np.ascontiguousarray(chelsea[:, ::-1]))
        assert "is it a photo of Mochi" not in caplog.text
        after = cat_only.add_view("Mochi", coffee)
    assert "'Mochi': " in caplog.text and "matches its other photos at only 0." in caplog.text
    assert "is it a photo of Mochi? Added all the same" in caplog.text and len(after.views) == 3


def test_add_view_of_a_photo_it_was_introduced_from_is_warned_about(make_personalizer: Any, chelsea: np.ndarray,
                                                                    tmp_path: Path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    """Told by the view, not the file's name: an upload is always called 'blob', and two
    folders each hold a '00.jpg'."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    Image.fromarray(chelsea).save(tmp_path / "a" / "00.png")
    Image.fromarray(np.ascontiguousarray(chelsea[:, ::-1])).save(tmp_path / "b" / "00.png")
    p = make_personalizer()
    p.introduce("Mochi", str(tmp_path / "a" / "00.png"), category="cat")
    with caplog.at_level("WARNING", logger="pekit.personalizer"):
        p.add_view("Mochi", str(tmp_path / "b" / "00.png"))  # another picture of the same name
        assert "already has" not in caplog.text
        p.add_view("Mochi", (tmp_path / "a" / "00.png").read_bytes())  # the same picture, as bytes
    assert "gives the view it already has from one of its photos (the same picture?)" in caplog.text


@pytest.mark.parametrize("box, error", [([500, 400, 600, 450], "outside the 451x300 photo"),
                                        ([0, 0, 3, 3], "at least"), ([10, 10, 5, 5], "x1 > x0")])
def test_add_view_with_a_bad_box_changes_nothing(cat_only: Any, chelsea: np.ndarray, box: list, error: str) -> None:
    before = snapshot(cat_only)
    with pytest.raises(InvalidInputError, match=error):
        cat_only.add_view("Mochi", chelsea, box=box)
    assert snapshot(cat_only) == before


def test_add_view_of_a_blank_photo_says_how_add_view_takes_a_box(make_personalizer: Any, chelsea: np.ndarray,
                                                                 tmp_path: Path, capsys: Any) -> None:
    """Nothing stands out in a uniform photo: the error tells how add_view takes its one box
    (``box=`` / ``--box``), not introduce's ``boxes=``, and nothing is stored."""
    memory = str(tmp_path / "m.db")
    p = make_personalizer(memory=memory)
    p.introduce("Mochi", chelsea, category="cat")
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((300, 400, 3), 128, np.uint8)).save(blank)
    before = snapshot(p)
    with pytest.raises(NothingFoundError, match="no object stands out") as info:
        p.add_view("Mochi", str(blank))
    assert "box=[x0, y0, x1, y1]" in str(info.value) and "--box x0,y0,x1,y1" in str(info.value)
    assert "boxes=" not in str(info.value) and "one per photo" not in str(info.value)
    assert snapshot(p) == before
    assert main(["add-view", "Mochi", str(blank), "--memory", memory]) == 6
    err = capsys.readouterr().err
    assert "no object stands out" in err and "--box x0,y0,x1,y1" in err and "boxes=" not in err
    assert snapshot(p) == before
    with pytest.raises(NothingFoundError, match="no object stands out") as info:   # introduce: a box per photo
        p.introduce("Grey", [chelsea, str(blank)])
    assert "boxes=[...] / --box x0,y0,x1,y1, one per photo, in order" in str(info.value)
    assert "add this one with its box later (add_view / pekit add-view" in str(info.value)
    assert snapshot(p) == before


def test_a_view_or_correction_written_meanwhile_is_kept(make_personalizer: Any, chelsea: np.ndarray,
                                                         monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Someone else (another process) changes Mochi while our pass runs: our write keeps their change."""
    import dataclasses

    from pekit.memory import SqliteMemory

    cat_only = make_personalizer(memory=str(tmp_path / "m.db"))
    cat_only.introduce("Mochi", chelsea, category="cat")
    other = SqliteMemory(tmp_path / "m.db")

    def meanwhile(real: Any, **change: Any) -> Any:
        def run(*args: Any, **kwargs: Any) -> Any:
            out = real(*args, **kwargs)  # our backbone pass is done; the other writer commits first
            stored = other.get("Mochi")
            other.update(dataclasses.replace(stored, **{k: f(stored) for k, f in change.items()}))
            return out
        return run

    monkeypatch.setattr(cat_only.pipeline, "reference", meanwhile(cat_only.pipeline.reference,
                                                                  views=lambda c: np.vstack([c.views] * 2)))
    after = cat_only.add_view("Mochi", np.ascontiguousarray(chelsea[:, ::-1]))
    assert len(after.views) == 3 and cat_only.get("Mochi").views.shape[0] == 3  # their 2, then ours
    monkeypatch.setattr(cat_only.pipeline, "scan", meanwhile(cat_only.pipeline.scan,
                                                             context=lambda c: "written meanwhile"))
    corrected = cat_only.correct(_look_alike(chelsea), "Mochi")
    assert corrected.negatives is not None and corrected.context == "written meanwhile"
    assert cat_only.get("Mochi").context == "written meanwhile" and len(cat_only.get("Mochi").views) == 3
    other.close()


def test_explain_draws_one_panel_per_detection(cat_only: Any, chelsea: np.ndarray) -> None:
    dets = cat_only.recognize(chelsea)
    figure = cat_only.explain(chelsea, dets)
    h, w = chelsea.shape[:2]
    assert figure.dtype == np.uint8 and figure.shape[1] == w and figure.shape[0] > h   # photo + caption strip
    assert not np.array_equal(figure[:h], chelsea)                                   # the heat map is drawn
    empty = cat_only.explain(np.full_like(chelsea, 127), None)
    assert empty.shape[1] == w
    # a large photo is drawn shrunk to the panels' long side, its box with it
    from pekit.retrieve import explain

    small = explain.explain_figure(chelsea, cat_only.pipeline.encode(chelsea), dets, cat_only.gallery(), max_side=226)
    assert small.shape[1] == 226 and small.shape[0] < figure.shape[0]
    box = np.round(dets.xyxy[0] * 226 / w).astype(int)  # the cyan box, drawn at the shrunk size
    assert (small[box[1] + 1, box[0]:box[2]] == [0, 255, 255]).all(axis=-1).mean() > 0.5


def test_explain_finds_a_concept_renamed_since_and_names_its_view_by_a_path_no_other_shares(
        cat_only: Any, chelsea: np.ndarray, tmp_path: Path) -> None:
    """Detections from before a rename are explained by their concept id (not "none of your
    concepts found"); the best view is named with enough of its path to tell two '01.jpg'
    apart, and the caption is wrapped, not cut, on a small photo."""
    from pekit.retrieve.explain import view_labels

    shown = cat_only.recognize(chelsea)
    cat_only.update("Mochi", rename="Mochi-chan")
    figure = cat_only.explain(chelsea, shown)
    nothing = cat_only.explain(chelsea, shown[:0])
    assert not np.array_equal(figure[:300], nothing[:300])  # a heat map, not the plain photo
    assert view_labels(["a/dog2/01.jpg", "b/kit/01.jpg", "b/kit/02.jpg"]) == ["dog2/01.jpg", "kit/01.jpg", "02.jpg"]
    assert view_labels(["x/01.jpg", "x/01.jpg"]) == ["x/01.jpg", "x/01.jpg"]  # the same path twice: all of it
    small = np.ascontiguousarray(np.asarray(Image.fromarray(chelsea).resize((200, 133))))
    found = cat_only.recognize(small, threshold=0.0)
    panel = cat_only.explain(small, found[:1])
    from pekit.prompt.fonts import FontStack

    line = FontStack.default(12).size("Mochi-chan")[1]
    assert panel.shape[0] >= 133 + 3 * line  # the caption's parts on lines of their own


def test_a_mistaken_correction_can_be_taken_back(cat_only: Any, chelsea: np.ndarray) -> None:
    other = _look_alike(chelsea)
    first = cat_only.correct(other, "Mochi")                          # right: the look-alike is not Mochi
    again = np.ascontiguousarray(chelsea[30:, 60:])                     # a new photo of Mochi herself
    assert cat_only.recognize(again).name.tolist() == ["Mochi"]
    cat_only.correct(again, "Mochi")                                   # wrong: that was Mochi
    assert cat_only.recognize(again).name.tolist() == []
    undone = cat_only.undo_correction("mochi")
    assert undone.meta["corrections"] == first.meta["corrections"]    # the earlier correction stays
    np.testing.assert_allclose(cat_only.get("Mochi").negatives, first.negatives, atol=1e-6)
    assert cat_only.recognize(again).name.tolist() == ["Mochi"]       # recognized again
    assert cat_only.recognize(other).name.tolist() == []              # and the look-alike still is not
    cat_only.undo_correction("Mochi")
    assert cat_only.get("Mochi").negatives is None and cat_only.recognize(other).name.tolist() == ["Mochi"]
    before = snapshot(cat_only)
    with pytest.raises(InvalidInputError, match="no correction to undo; the memory was not changed"):
        cat_only.undo_correction("Mochi")
    with pytest.raises(ConceptNotFoundError):
        cat_only.undo_correction("Bo")
    assert snapshot(cat_only) == before


def test_undoing_corrections_stored_without_their_sizes(cat_only: Any, chelsea: np.ndarray) -> None:
    """Corrections made before each recorded its size: one alone is undone whole; two cannot
    be told apart (a clear error, nothing changed); a newer one on top is undone by its size."""
    import dataclasses

    cat_only.correct(_look_alike(chelsea), "Mochi")
    made = cat_only.get("Mochi")
    old = {k: v for k, v in made.meta["corrections"][0].items() if k != "negatives"}  # as an older pekit wrote it
    cat_only.memory.update(dataclasses.replace(made, meta={**made.meta, "corrections": [old, old]},
                                               negatives=np.concatenate([made.negatives, made.negatives])))
    before = snapshot(cat_only)
    with pytest.raises(InvalidInputError, match=r"stored by an older pekit without their sizes.*--replace"):
        cat_only.undo_correction("Mochi")
    assert snapshot(cat_only) == before
    newer = cat_only.correct(np.ascontiguousarray(chelsea[30:, 60:]), "Mochi")   # a newer correction on top
    assert len(newer.negatives) > 2 * len(made.negatives)
    back = cat_only.undo_correction("Mochi")
    assert back.meta["corrections"] == [old, old] and len(back.negatives) == 2 * len(made.negatives)
    cat_only.memory.update(dataclasses.replace(back, meta={**back.meta, "corrections": [old]},
                                               negatives=made.negatives))
    assert cat_only.undo_correction("Mochi").negatives is None                     # one old correction: all of it


def test_cli_feedback_verbs(tmp_path: Path, cached_pipelines: Any, chelsea: np.ndarray, capsys: Any) -> None:
    memory = str(tmp_path / "m.db")
    photo, other = tmp_path / "cat.png", tmp_path / "other.png"
    Image.fromarray(chelsea).save(photo)
    Image.fromarray(_look_alike(chelsea)).save(other)
    assert main(["introduce", "Mochi", str(photo), "--memory", memory]) == 0
    assert main(["correct", str(other), "--not", "Mochi", "--memory", memory]) == 0
    assert f"(a mistake? pekit correct --undo --not Mochi --memory {memory})" in capsys.readouterr().out
    assert main(["correct", "--undo", "--not", "Mochi", "--memory", memory, "--json"]) == 0
    assert '"negatives": 0' in capsys.readouterr().out
    assert main(["correct", str(other), "--not", "Mochi", "--memory", memory, "--json"]) == 0
    assert '"negatives": 1' in capsys.readouterr().out
    assert main(["list", "--memory", memory]) == 0                                     # list shows it
    assert "1 view(s), 1 correction" in capsys.readouterr().out
    assert main(["list", "--memory", memory, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["corrections"] == 1
    assert main(["correct", str(other), "--not", "Mochi", "--memory", memory]) == 6     # not found any more
    assert "nothing to correct" in capsys.readouterr().err
    assert main(["correct", str(other), "--not", "Bo", "--memory", memory]) == 4        # unknown concept
    assert main(["correct", str(other), "--not", "Mochi", "--undo", "--memory", memory]) == 2  # photo or --undo
    assert main(["correct", "--not", "Mochi", "--memory", memory]) == 2
    assert "not both or neither" in capsys.readouterr().err
    assert main(["correct", "--undo", "--not", "Mochi", "--threshold", "0.5", "--memory", memory]) == 2
    assert "--threshold say(s) where in a PHOTO; --undo takes no PHOTO" in capsys.readouterr().err
    assert main(["correct", "--undo", "--not", "Mochi", "--memory", memory]) == 0
    assert "took back the last correction of 'Mochi': 0 negative view(s) left" in capsys.readouterr().out
    assert main(["correct", "--undo", "--not", "Mochi", "--memory", memory]) == 2      # nothing left to undo
    assert "no correction to undo" in capsys.readouterr().err
    assert main(["correct", "--undo", "--not", "Mochi", "--box", "0,0,50,50", "--memory", memory]) == 2
    assert "--undo takes no PHOTO" in capsys.readouterr().err
    assert main(["correct", str(other), "--not", "Mochi", "--box", "0,0,20,20", "--memory", memory]) == 6
    assert "overlaps the box" in capsys.readouterr().err                               # not where it was named
    assert main(["correct", str(other), "--not", "Mochi", "--box", "40,0,451,300", "--threshold", "0.6",
                 "--memory", memory, "--json"]) == 0
    assert '"negatives": 1' in capsys.readouterr().out
    assert main(["correct", "--undo", "--not", "Mochi", "--memory", memory]) == 0
    assert main(["add-view", "Mochi", str(other), "--box", "0,0,2,2", "--memory", memory]) == 2
    assert main(["add-view", "Mochi", str(other), "--memory", memory, "--json"]) == 0
    assert '"views": 2' in capsys.readouterr().out
    explain = tmp_path / "why.png"
    assert main(["recognize", str(photo), "--explain", str(explain), "--memory", memory, "--json"]) == 0
    assert explain.is_file() and str(explain) in capsys.readouterr().out


def test_undo_view_takes_back_the_last_photo_added_exactly(make_personalizer: Any, tmp_path: Path,
                                                           chelsea: np.ndarray, coffee: np.ndarray, capsys: Any,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    """A photo of something else added by mistake is taken back, and only it: the concept is
    stored as it was before (parts in their groups, colours, references, the consistency of its
    introduction), corrections and earlier added views stay; with none left, nothing changes."""
    memory = str(tmp_path / "m.db")
    p = make_personalizer(memory=memory, reference_zoom_out=2, colour_weight=0.2)
    p.introduce("Mochi", [chelsea, np.ascontiguousarray(chelsea[:, ::-1])], category="cat")
    p.correct(_look_alike(chelsea), "Mochi")
    introduced = snapshot(p)
    assert main(["add-view", "Mochi", "--undo", "--memory", memory]) == 2  # nothing added yet
    assert "no added view to take back" in capsys.readouterr().err and snapshot(p) == introduced
    once = p.add_view("Mochi", np.ascontiguousarray(chelsea[20:, 30:]))
    with_one = snapshot(p)
    with caplog.at_level("WARNING", logger="pekit.personalizer"):
        p.add_view("Mochi", coffee)  # the mistake
    assert "pekit add-view --undo 'Mochi'" in caplog.text
    back = p.undo_view("mochi")
    assert [r[:5] + r[6:] for r in snapshot(p)[:-1]] == [r[:5] + r[6:] for r in with_one[:-1]]  # but `updated`
    stored = p.get("Mochi")
    assert len(back.views) == len(stored.views) == 3 and np.array_equal(stored.views, once.views)
    np.testing.assert_allclose(stored.parts, once.parts, atol=1e-3)
    assert stored.meta == once.meta
    assert stored.negatives is not None and len(stored.meta["corrections"]) == 1  # the correction stays
    assert main(["add-view", "Mochi", "--undo", "--memory", memory, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["views"] == 2
    restored = snapshot(p)
    assert [r[:5] + r[6:] for r in restored[:-1]] == [r[:5] + r[6:] for r in introduced[:-1]]  # but `updated`
    assert "consistency" in p.get("Mochi").meta  # measured at the introduction: known again
    assert p.recognize(chelsea).name.tolist() == ["Mochi"]
    for args, words in ((["add-view", "Mochi", "--memory", memory], "give a PHOTO"),
                        (["add-view", "Mochi", "x.jpg", "--undo", "--memory", memory], "not both or neither"),
                        (["add-view", "Mochi", "--undo", "--box", "1,2,30,40", "--memory", memory],
                         "--box say(s) where in a PHOTO; --undo takes no PHOTO (pekit add-view NAME --undo)")):
        assert main(args) == 2 and words in capsys.readouterr().err
    assert snapshot(p) == restored


def test_replacing_a_concept_says_its_corrections_and_added_photos_go(cat_only: Any, chelsea: np.ndarray,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    cat_only.correct(_look_alike(chelsea), "Mochi")
    cat_only.add_view("Mochi", np.ascontiguousarray(chelsea[:, ::-1]))
    with caplog.at_level("WARNING", logger="pekit.personalizer"):
        fresh = cat_only.introduce("Mochi", chelsea, replace=True)
    assert "its 1 correction(s) and 1 photo(s) added with add-view are gone" in caplog.text
    assert fresh.negatives is None and len(fresh.views) == 1


def test_zoomed_views_keep_their_part_group_through_the_store_and_add_view(
        make_personalizer: Any, tmp_path: Path, chelsea: np.ndarray, grid_cache: Any) -> None:
    from pekit.pipeline import PART_GROUPS

    p = make_personalizer(memory=str(tmp_path / "m.db"), reference_zoom_out=2)
    calls = grid_cache.calls
    made = p.introduce("Mochi", chelsea, category="cat")
    assert grid_cache.calls - calls == 2                              # the photo, then its zoomed-out copy
    full, zoom = made.meta[PART_GROUPS]
    assert full > 0 and zoom > 0 and len(made.parts) == full + zoom and len(made.views) == 1
    stored = p.get("Mochi")                                          # read back from SQLite
    assert stored.meta[PART_GROUPS] == [full, zoom] and np.allclose(stored.parts, made.parts, atol=1e-3)
    after = p.add_view("Mochi", np.ascontiguousarray(chelsea[:, ::-1]))
    full2, zoom2 = after.meta[PART_GROUPS]
    assert full2 > full and zoom2 > zoom and len(after.parts) == full2 + zoom2
    np.testing.assert_allclose(after.parts[:full], made.parts[:full], atol=1e-3)       # old full-size parts first
    np.testing.assert_allclose(after.parts[full2:full2 + zoom], made.parts[full:], atol=1e-3)  # old zoomed next
    assert p.recognize(chelsea).name.tolist() == ["Mochi"]


def test_colours_follow_the_views_through_the_store_and_add_view(
        make_personalizer: Any, tmp_path: Path, chelsea: np.ndarray) -> None:
    import dataclasses

    from pekit.embed.colour import colour_agreement
    from pekit.retrieve.match import COLOURS, concept_colours

    p = make_personalizer(memory=str(tmp_path / "m.db"), colour_weight=0.2)
    made = p.introduce("Mochi", chelsea, category="cat")
    stored = p.get("Mochi")                                          # read back from SQLite
    assert concept_colours(stored).shape == (1, 196) and stored.meta[COLOURS] == made.meta[COLOURS]
    after = p.add_view("Mochi", np.ascontiguousarray(chelsea[:, ::-1]))
    assert concept_colours(after).shape == (2, 196)
    assert colour_agreement(concept_colours(after)[1], concept_colours(after)[:1]) > 0.99  # the mirror: same colours
    plain = make_personalizer(memory=str(tmp_path / "m.db"), colour_weight=0.0)  # a preset that does not score colour
    assert concept_colours(plain.add_view("Mochi", chelsea)).shape == (3, 196)  # still one colour per view
    # a concept stored before colours were kept gets none from a new view: one per view or none
    p.memory.update(dataclasses.replace(after, meta={k: v for k, v in after.meta.items() if k != COLOURS}))
    assert COLOURS not in p.add_view("Mochi", chelsea).meta
    assert p.recognize(chelsea).name.tolist() == ["Mochi"]


# -- the pure steps (`pekit.feedback`, `pekit.extract.views.with_view`): no backbone -------------

def _concept(negatives: np.ndarray | None = None, **meta: Any) -> Any:
    from pekit.types import Concept

    return Concept("Bo", views=np.eye(2, 8, dtype=np.float32), parts=np.eye(3, 8, dtype=np.float32),
                   negatives=negatives, meta=dict(meta))


def test_undo_of_the_view_that_gave_a_concept_its_parts_leaves_none_and_the_memory_readable(tmp_path: Path) -> None:
    """A concept stored with views only (a store's own API) gets parts from `add_view`;
    taking that view back leaves it without parts, not with an empty array the store would
    write as a 0-byte blob and then read back as damage."""
    from types import SimpleNamespace as V

    from pekit.extract.views import with_view, without_view
    from pekit.memory import open_memory
    from pekit.types import Concept

    bare = Concept("Bo", views=np.eye(1, 8, dtype=np.float32))
    view = V(embedding=np.eye(2, 8, dtype=np.float32)[1], parts=np.eye(3, 8, dtype=np.float32), xyxy=np.ones(4))
    more = with_view(bare, view, reference="b.jpg")
    back = without_view(more)
    assert back.parts is None and np.array_equal(back.views, bare.views) and back.meta == bare.meta
    assert Concept("Rex", views=np.eye(1, 8, dtype=np.float32), parts=np.zeros((0, 8), np.float32)).parts is None
    with open_memory(str(tmp_path / "m.db")) as memory:
        memory.add(bare)
        memory.modify("Bo", lambda c: with_view(c, view, reference="b.jpg"))
        memory.modify("Bo", without_view)
        assert memory.get("Bo").parts is None and [c.name for c in memory.concepts()] == ["Bo"]


def test_corrections_stack_and_come_off_last_first() -> None:
    from pekit.feedback import corrected, uncorrected

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(3, 8)).astype(np.float32), rng.normal(size=(2, 8)).astype(np.float32)
    bo = _concept(note="kept")
    once = corrected(bo, a, image="park.jpg", box=np.array([1.04, 2, 30, 40.06]), score=0.6312345)
    twice = corrected(once, b, image="beach.jpg", box=[0, 0, 9, 9], score=0.7)
    assert bo.negatives is None and "corrections" not in bo.meta                   # the input is not changed
    np.testing.assert_array_equal(twice.negatives, np.concatenate([a, b]))
    assert twice.meta["corrections"] == [
        {"image": "park.jpg", "box": [1.0, 2.0, 30.0, 40.1], "score": 0.6312, "negatives": 3},
        {"image": "beach.jpg", "box": [0.0, 0.0, 9.0, 9.0], "score": 0.7, "negatives": 2}]
    back = uncorrected(twice)
    np.testing.assert_array_equal(back.negatives, a)
    assert back.meta == once.meta and back.meta["note"] == "kept"
    assert uncorrected(back).negatives is None and uncorrected(back).meta["corrections"] == []
    with pytest.raises(InvalidInputError, match="'Bo' has no correction to undo"):
        uncorrected(uncorrected(back))


def test_an_older_correction_without_its_size() -> None:
    from pekit.feedback import uncorrected

    rows = np.ones((4, 8), np.float32)
    old = {"image": "park.jpg", "box": [0, 0, 9, 9], "score": 0.62}
    assert uncorrected(_concept(rows, corrections=[old])).negatives is None        # alone: all of it
    with pytest.raises(InvalidInputError, match="older pekit without their sizes"):
        uncorrected(_concept(rows, corrections=[old, old]))
    with pytest.raises(InvalidInputError, match="no correction to undo"):
        uncorrected(_concept(None, corrections=[old]))                             # a record, no rows



def _two_cats(chelsea: np.ndarray) -> np.ndarray:
    """Mochi herself on the left, a look-alike on the right (both named with max_per_concept=2)."""
    room = np.full((400, 1100, 3), 110, np.uint8)
    room[40:340, 20:471] = chelsea
    room[60:330, 600:1005] = np.asarray(Image.fromarray(_look_alike(chelsea)).resize((405, 270)))
    return room


def test_correct_works_on_the_detections_recognize_shows_and_a_box_says_which(make_personalizer: Any,
                                                                             chelsea: np.ndarray) -> None:
    """With several detections of one name, `correct` refuses to guess; a box picks the wrong
    one, and the right one stays recognized."""
    p = make_personalizer(max_per_concept=2)
    p.introduce("Mochi", chelsea, category="cat")
    room = _two_cats(chelsea)
    shown = p.recognize(room)
    assert shown.name.tolist() == ["Mochi", "Mochi"]
    before = snapshot(p)
    with pytest.raises(InvalidInputError, match=r"recognized 2 times .*--box"):
        p.correct(room, "Mochi")
    with pytest.raises(NothingFoundError, match="overlaps the box"):
        p.correct(room, "Mochi", box=[480, 350, 590, 395])  # between and below the two
    assert snapshot(p) == before
    c = p.correct(room, "Mochi", box=[600, 60, 1005, 330])
    recorded = c.meta["corrections"][0]["box"]
    right = shown.xyxy[int(np.argmax(shown.xyxy[:, 0]))]
    assert np.allclose(recorded, right, atol=1)  # the look-alike's box as shown, not the real cat's
    after = p.recognize(room)
    assert after.name.tolist() == ["Mochi"] and after.xyxy[0, 2] < 500  # the real Mochi is still named


def test_correct_takes_the_threshold_the_detection_was_shown_at(make_personalizer: Any, chelsea: np.ndarray,
                                                                 astronaut: np.ndarray) -> None:
    p = make_personalizer()
    p.introduce("Mochi", chelsea, category="cat")
    assert p.recognize(astronaut).name.tolist() == []
    assert p.recognize(astronaut, threshold=0.5).name.tolist() == ["Mochi"]  # a mistake at a looser threshold
    with pytest.raises(NothingFoundError, match="nothing to correct"):
        p.correct(astronaut, "Mochi")  # at the preset's threshold there is nothing to correct
    c = p.correct(astronaut, "Mochi", threshold=0.5)
    assert c.meta["corrections"][0]["score"] >= 0.5
    assert p.recognize(astronaut, threshold=0.5).name.tolist() == []


@pytest.mark.parametrize("threshold", [float("nan"), "0.5", 2])
def test_correct_refuses_a_bad_threshold_before_the_backbone_pass(cat_only: Any, chelsea: np.ndarray,
                                                                    grid_cache: Any, threshold: Any) -> None:
    # it was refused only after the pass (1-2 s), when the pipeline was set to it
    before, calls = snapshot(cat_only), grid_cache.calls
    with pytest.raises(InvalidInputError, match=r"threshold must be a cosine score in \[-1, 1\]"):
        cat_only.correct(_look_alike(chelsea), "Mochi", threshold=threshold)
    assert grid_cache.calls == calls and snapshot(cat_only) == before


def test_a_threshold_given_for_one_call_acts_as_the_presets_would(make_personalizer: Any, chelsea: np.ndarray,
                                                                 astronaut: np.ndarray, coffee: np.ndarray) -> None:
    """The looks (which candidates get a crop) follow the threshold of the call, so one
    threshold gives one result however it is given."""
    loose = make_personalizer(threshold=0.5)
    p = make_personalizer()
    for q in (loose, p):
        q.introduce("Mochi", chelsea, category="cat")
    for image in (astronaut, coffee, _look_alike(chelsea)):  # the astronaut is named only after a crop
        a, b = loose.recognize(image), p.recognize(image, threshold=0.5)
        assert a.name.tolist() == b.name.tolist()
        np.testing.assert_allclose(a.score, b.score, atol=1e-6)
        np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-3)
