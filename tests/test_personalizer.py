"""`Personalizer` end to end on the real offline backbone: introduce, recognize, forget, errors.

Reference concepts: the cat of ``skimage.data.chelsea()`` and the cup of ``coffee()``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from pekit.errors import (
    BackboneMismatchError,
    ConceptNotFoundError,
    DuplicateConceptError,
    ImageError,
    InvalidInputError,
    NothingFoundError,
    PekitError,
)
from pekit.memory import open_memory
from pekit.personalizer import CONSISTENCY_MARGIN, Personalizer
from pekit.retrieve.nms import box_iou
from pekit.types import Answer, Concept, Detections

CAT_BOX = (0.0, 0.0, 400.0, 300.0)  # chelsea(): the cat's face fills the left 400 px
CUP_BOX = (170.0, 15.0, 415.0, 305.0)  # coffee(): the cup, without the saucer


def resize(img: np.ndarray, scale: float) -> np.ndarray:
    h, w = img.shape[:2]
    return np.asarray(Image.fromarray(img).resize((round(w * scale), round(h * scale)), Image.Resampling.BICUBIC))


def snapshot(p: Any) -> list[tuple]:
    """Everything observable about the memory, for before/after comparisons."""
    import json

    return [(c.id, c.name, c.category, c.context, c.backbone, c.threshold, c.updated,
             json.dumps(c.meta, sort_keys=True), c.views.tobytes(), None if c.parts is None else c.parts.tobytes(),
             None if c.negatives is None else c.negatives.tobytes()) for c in p.memory.concepts(namespace=p.namespace)
            ] + [("generation", p.memory.generation(namespace=p.namespace))]


@pytest.fixture
def stocked(make_personalizer: Any, chelsea: np.ndarray, coffee: np.ndarray) -> Any:
    """A Personalizer that knows 'cat' (chelsea) and 'coffee' (the espresso cup)."""
    p = make_personalizer()
    p.introduce("cat", chelsea, category="cat", context="my cat, loves boxes")
    p.introduce("coffee", coffee, category="cup")
    return p


# ---- introduce ------------------------------------------------------------------------------
def test_introduce_stores_a_concept(make_personalizer: Any, chelsea: np.ndarray, grid_cache: Any) -> None:
    p = make_personalizer()
    before = grid_cache.calls
    c = p.introduce("  cat ", chelsea, category=" cat ", context="my cat")
    assert grid_cache.calls - before == 2  # per reference photo: its pass and its zoomed-out copy's
    assert isinstance(c, Concept) and c.id >= 1
    assert (c.name, c.category, c.context, c.namespace) == ("cat", "cat", "my cat", "default")
    assert c.views.shape == (1, 384)
    np.testing.assert_allclose(np.linalg.norm(c.views, axis=1), 1.0, atol=1e-5)
    assert c.parts is not None and c.parts.shape[1] == 384
    assert c.backbone == p.pipeline.fingerprint
    assert box_iou(np.array(c.meta["boxes"]), np.array([CAT_BOX]))[0, 0] > 0.6
    assert [x.name for x in p.concepts()] == ["cat"]
    assert p.get("cat").id == c.id


def test_introduce_from_several_photos_and_files(make_personalizer: Any, chelsea: np.ndarray,
                                                 tmp_path: Path, grid_cache: Any) -> None:
    p = make_personalizer()
    path = tmp_path / "cat.png"
    Image.fromarray(chelsea).save(path)
    before = grid_cache.calls
    c = p.introduce("cat", [str(path), np.ascontiguousarray(chelsea[:, ::-1])])
    assert grid_cache.calls - before == 2 * 2  # two photos, each with its zoomed-out copy
    assert c.views.shape == (2, 384)
    assert c.meta["references"][0] == str(path)


def test_introduce_says_how_well_the_photos_recognize_one_another(make_personalizer: Any, chelsea: np.ndarray,
                                                                  coffee: np.ndarray,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    import logging

    p = make_personalizer()
    threshold = p.pipeline.config.threshold
    with caplog.at_level(logging.WARNING, logger="pekit.personalizer"):
        cat = p.introduce("cat", [chelsea, np.ascontiguousarray(chelsea[:, ::-1])])  # the cat and its mirror
        assert cat.meta["consistency"] > threshold and not caplog.records
        mixed = p.introduce("mixed", [chelsea, coffee])  # "one object" in two photos of different things
    assert mixed.meta["consistency"] < threshold - CONSISTENCY_MARGIN < threshold < cat.meta["consistency"]
    missed = [r.getMessage() for r in caplog.records if "may be missed" in r.getMessage()]
    assert len(missed) == 1 and "'mixed'" in missed[0]
    one = p.introduce("one photo", chelsea)
    assert "consistency" not in one.meta  # nothing to compare with
    assert (p.low_consistency(mixed), p.low_consistency(cat), p.low_consistency(one)) == (True, False, None)
    assert p.get("mixed").meta["consistency"] == mixed.meta["consistency"]  # stored with the concept
    grown = p.add_view("mixed", coffee)  # measured on the photos of `introduce`: no longer known
    assert "consistency" not in grown.meta and p.low_consistency(grown) is None


def test_introduce_warns_of_a_thing_in_memory_that_looks_much_like_the_new_one(
        make_personalizer: Any, chelsea: np.ndarray, coffee: np.ndarray, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    p = make_personalizer()
    mirror = np.ascontiguousarray(chelsea[:, ::-1])
    with caplog.at_level(logging.WARNING, logger="pekit.personalizer"):
        p.introduce("Tom", [chelsea, mirror], category="cat")
        assert p.most_alike("Tom") is None and not caplog.records  # nothing else in memory
        p.introduce("cup", coffee, category="mug")
        assert not caplog.records  # a mug is not like a cat
        p.introduce("Felix", [mirror, chelsea], category="cat")  # the same cat under another name
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 1 and "'Felix' looks much like 'Tom'" in warned[0] and "a cat like them" in warned[0]
    name, agreement = p.most_alike("felix")  # (names ignoring case, as everywhere)
    assert name == "Tom" and agreement >= p.pipeline.config.threshold
    other, below = p.most_alike("cup")
    assert other in ("Tom", "Felix") and below < p.pipeline.config.threshold  # known, but not alike
    p.forget("Tom")
    assert p.most_alike("Felix")[0] == "cup"  # what is in memory now, not what was when it was introduced
    with pytest.raises(ConceptNotFoundError):
        p.most_alike("Garfield")


def test_introduce_warns_when_a_photo_is_given_twice(make_personalizer: Any, chelsea: np.ndarray,
                                                     coffee: np.ndarray, caplog: pytest.LogCaptureFixture) -> None:
    import io
    import logging

    p = make_personalizer()
    buffer = io.BytesIO()
    Image.fromarray(resize(chelsea, 0.7)).save(buffer, format="JPEG", quality=60)  # a smaller, re-saved copy
    with caplog.at_level(logging.WARNING, logger="pekit.personalizer"):
        cat = p.introduce("cat", [chelsea, coffee, buffer.getvalue()])
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 1 and "'cat': photos 1 and 3" in warned[0] and "the same picture" in warned[0]
    assert cat.views.shape[0] == 3  # a warning, not a refusal
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="pekit.personalizer"):  # one photo, two parts of it, on purpose
        parts = p.introduce("cat parts", [chelsea, chelsea], boxes=[[0, 0, 200, 300], [200, 0, 400, 300]])
    assert not [r for r in caplog.records if "same picture" in r.getMessage()] and "same_pictures" not in parts.meta


def test_introduce_with_boxes(make_personalizer: Any, chelsea: np.ndarray) -> None:
    p = make_personalizer()
    box = [150, 50, 350, 250]  # eyes and nose
    c = p.introduce("cat face", [chelsea], boxes=[box])
    x0, y0, x1, y1 = c.meta["boxes"][0]
    cell = 15  # one patch is ~14 px
    assert x0 >= box[0] - cell and y0 >= box[1] - cell and x1 <= box[2] + cell and y1 <= box[3] + cell
    whole = p.views([chelsea])[0]
    assert float(c.views[0] @ whole.embedding) < 0.99  # not the same view as without the box (0.94)
    assert p.recognize(chelsea).name.tolist() == ["cat face"]


def test_duplicate_name_is_refused_and_replace_overwrites(stocked: Any, chelsea: np.ndarray,
                                                          coffee: np.ndarray) -> None:
    before = snapshot(stocked)
    with pytest.raises(DuplicateConceptError, match="replace=True"):
        stocked.introduce("cat", coffee)
    with pytest.raises(DuplicateConceptError):
        stocked.introduce(" cat ", coffee)  # same name once stripped
    assert snapshot(stocked) == before
    old = stocked.get("cat")
    new = stocked.introduce("cat", np.ascontiguousarray(chelsea[:, ::-1]), context="flipped", replace=True)
    assert new.id == old.id and new.context == "flipped"
    assert not np.array_equal(new.views, old.views)
    assert [c.name for c in stocked.concepts()] == ["cat", "coffee"]
    assert stocked.introduce("new one", chelsea, replace=True).id > new.id  # replace=True also adds


def test_replacing_keeps_an_update_made_while_its_passes_ran(stocked: Any, chelsea: np.ndarray,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """``introduce(replace=True)`` keeps the category and context not given as they are at
    its write: an `update` from another thread during its backbone passes is not undone."""
    views = stocked.views

    def passes_while_updated(*args: Any, **kwargs: Any) -> Any:
        out = views(*args, **kwargs)
        stocked.update("cat", context="my cat, now loves the sofa", category="kitten")  # meanwhile
        return out

    monkeypatch.setattr(stocked, "views", passes_while_updated)
    flipped = np.ascontiguousarray(chelsea[:, ::-1])
    new = stocked.introduce("cat", flipped, replace=True)
    assert (new.context, new.category) == ("my cat, now loves the sofa", "kitten")
    assert stocked.get("cat").context == "my cat, now loves the sofa"
    new = stocked.introduce("cat", flipped, context="given", replace=True)  # given: it wins
    assert (new.context, new.category) == ("given", "kitten")


    def passes_while_cleared(*args: Any, **kwargs: Any) -> Any:
        out = views(*args, **kwargs)
        stocked.update("cat", category="")  # "kitten" when read before the passes, cleared meanwhile
        return out

    monkeypatch.setattr(stocked, "views", passes_while_cleared)
    assert stocked.introduce("cat", flipped, replace=True).category == ""  # stays cleared


def test_replacing_drops_the_replaced_concepts_stored_photos(make_personalizer: Any, chelsea: np.ndarray,
                                                             tmp_path: Path) -> None:
    """A concept introduced anew is replaced whole, its kept photos too (privacy: photos the
    user replaced do not stay attached)."""
    from pekit.memory import SqliteMemory

    p = make_personalizer(memory=SqliteMemory(tmp_path / "m.db", store_images=True), own_memory=True)
    old = p.introduce("cat", chelsea, category="cat")
    p.memory.add(old, replace=True, images=[b"OLD-PHOTO-BYTES"])
    assert p.memory.images("cat") == [b"OLD-PHOTO-BYTES"]
    p.introduce("cat", np.ascontiguousarray(chelsea[:, ::-1]), replace=True)
    assert p.memory.images("cat") == [] and p.get("cat").category == "cat"


def test_forget(stocked: Any, chelsea: np.ndarray) -> None:
    stocked.forget("cat")
    assert [c.name for c in stocked.concepts()] == ["coffee"]
    assert "cat" not in stocked.recognize(np.ascontiguousarray(chelsea[:, ::-1])).name.tolist()
    with pytest.raises(ConceptNotFoundError, match="cat"):
        stocked.forget("cat")
    with pytest.raises(ConceptNotFoundError):
        stocked.get("cat")


# ---- recognize ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("transform", "cat_box"),
    [
        (lambda img: img[:, ::-1], (451 - CAT_BOX[2], 0, 451 - CAT_BOX[0], 300)),  # mirrored
        (lambda img: img[30:280, 40:400], (0, 0, 360, 250)),  # cropped
        (lambda img: resize(img, 0.6), tuple(v * 0.6 for v in CAT_BOX)),  # smaller
    ],
    ids=["flipped", "cropped", "rescaled"],
)
def test_recognize_the_cat_in_a_modified_photo(stocked: Any, chelsea: np.ndarray, transform: Any,
                                              cat_box: tuple) -> None:
    query = np.ascontiguousarray(transform(chelsea))
    dets = stocked.recognize(query)
    assert isinstance(dets, Detections)
    assert dets.name.tolist() == ["cat"]  # found, once; the cup is not
    assert dets.concept_id[0] == stocked.get("cat").id
    assert dets.score[0] >= stocked.preset.recognition.threshold
    assert box_iou(dets.xyxy, np.array([cat_box]))[0, 0] > 0.5


def test_an_unrelated_photo_is_not_the_cat(stocked: Any, astronaut: np.ndarray) -> None:
    # measured: best cat score 0.51 against the 0.6 threshold (the cup scores 0.58: not asserted)
    assert "cat" not in stocked.recognize(astronaut).name.tolist()


def test_two_concepts_in_one_photo_are_both_found_once(stocked: Any, chelsea: np.ndarray,
                                                       coffee: np.ndarray) -> None:
    cup = resize(coffee, 0.75)  # (300, 450): the same height as chelsea
    both = np.concatenate([chelsea, cup], axis=1)  # cat on the left, cup on the right
    dets = stocked.recognize(both)
    assert sorted(dets.name.tolist()) == ["cat", "coffee"]
    assert np.all(np.diff(dets.score) <= 0)  # best first
    centre = {n: ((b[0] + b[2]) / 2, (b[1] + b[3]) / 2) for n, b in zip(dets.name, dets.xyxy, strict=True)}
    cx, cy = centre["cat"]
    assert CAT_BOX[0] <= cx <= CAT_BOX[2] and CAT_BOX[1] <= cy <= CAT_BOX[3]
    cup_box = [451 + CUP_BOX[0] * 0.75, CUP_BOX[1] * 0.75, 451 + CUP_BOX[2] * 0.75, CUP_BOX[3] * 0.75]
    cx, cy = centre["coffee"]
    assert cup_box[0] <= cx <= cup_box[2] and cup_box[1] <= cy <= cup_box[3]


def test_recognize_costs_exactly_one_backbone_pass(stocked: Any, chelsea: np.ndarray, grid_cache: Any) -> None:
    query = np.ascontiguousarray(chelsea[:, ::-1])
    before = grid_cache.calls
    stocked.recognize(query)
    assert grid_cache.calls - before == 1


def test_recognize_with_an_empty_memory_is_empty_and_free(make_personalizer: Any, chelsea: np.ndarray,
                                                          grid_cache: Any) -> None:
    p = make_personalizer()
    before = grid_cache.calls
    dets = p.recognize(chelsea)
    assert len(dets) == 0 and dets.xyxy.shape == (0, 4)
    assert grid_cache.calls == before  # nothing to look for: no backbone pass


def test_recognize_many_gives_what_recognize_gives(stocked: Any, chelsea: np.ndarray, coffee: np.ndarray,
                                                   astronaut: np.ndarray, tmp_path: Path) -> None:
    hidden = np.dstack([chelsea[:, ::-1], np.zeros(chelsea.shape[:2], np.uint8)])  # RGBA, all transparent
    photos = [np.ascontiguousarray(chelsea[:, ::-1]), astronaut, coffee, hidden, chelsea[:, ::-1] / 255.0]
    many = list(stocked.recognize_many(photos))
    assert [list(d.name) for d in many] == [list(stocked.recognize(img).name) for img in photos]
    assert "cat" in list(many[0].name) and not len(many[1])
    # read as recognize reads them: the transparent cat is white paper, the 0-1 floats the cat
    assert not len(many[3]) and list(many[4].name) == ["cat"]
    np.testing.assert_allclose(many[4].score, many[0].score, atol=0.02)
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG broken")
    stream = stocked.recognize_many([chelsea, bad])
    assert "cat" in list(next(stream).name)
    with pytest.raises(ImageError, match=r"broken\.png"):
        next(stream)


def test_recognize_accepts_paths_and_bytes(stocked: Any, chelsea: np.ndarray, tmp_path: Path) -> None:
    path = tmp_path / "query.png"
    Image.fromarray(np.ascontiguousarray(chelsea[:, ::-1])).save(path)
    for source in (path, str(path), path.read_bytes(), Image.open(path)):
        assert stocked.recognize(source).name.tolist() == ["cat"]
    with pytest.raises(ImageError, match="no such file"):
        stocked.recognize(tmp_path / "missing.png")


def test_thresholds(make_personalizer: Any, chelsea: np.ndarray) -> None:
    strict = make_personalizer(threshold=0.99)
    strict.introduce("cat", chelsea)
    query = np.ascontiguousarray(chelsea[:, ::-1])
    assert len(strict.recognize(query)) == 0
    assert strict.recognize(query, threshold=0.6).name.tolist() == ["cat"]
    with pytest.raises(InvalidInputError, match="threshold"):
        make_personalizer(threshold=1.5)


def test_namespaces_are_separate(make_personalizer: Any, chelsea: np.ndarray) -> None:
    memory = open_memory("memory://")
    ann = make_personalizer(memory=memory, namespace="ann")
    bob = make_personalizer(memory=memory, namespace="bob")
    ann.introduce("cat", chelsea)
    query = np.ascontiguousarray(chelsea[:, ::-1])
    assert ann.recognize(query).name.tolist() == ["cat"]
    assert len(bob.recognize(query)) == 0 and bob.concepts() == []
    bob.introduce("cat", chelsea)  # the same name in another namespace is not a duplicate
    with pytest.raises(InvalidInputError, match="namespace"):
        make_personalizer(namespace=" ")


def test_ask_without_an_lvlm_gives_the_prompt(stocked: Any, chelsea: np.ndarray) -> None:
    query = np.ascontiguousarray(chelsea[:, ::-1])
    answer = stocked.ask(query, "What is cat doing?")
    assert isinstance(answer, Answer) and answer.text == ""
    assert answer.detections.name.tolist() == ["cat"]
    assert "cat" in answer.prompt and "What is cat doing?" in answer.prompt
    assert "loves boxes" in answer.prompt  # the concept's context reaches the LVLM
    assert answer.image is not None and answer.image.shape == query.shape
    assert not np.array_equal(answer.image, query)  # the box is drawn on a copy
    with pytest.raises(InvalidInputError, match="question is empty"):
        stocked.ask(query, "  ")


class _RecordingLVLM:
    """An LVLM stand-in that records what it was sent and answers with a fixed text."""

    name = "recording"

    def __init__(self, reply: str) -> None:
        self.reply, self.calls = reply, []

    def generate(self, image: np.ndarray, prompt: str, **options: Any) -> str:
        self.calls.append((image, prompt, options))
        return self.reply


def test_ask_sends_the_annotated_image_and_names_to_the_lvlm(make_personalizer: Any, chelsea: np.ndarray,
                                                            coffee: np.ndarray) -> None:
    lvlm = _RecordingLVLM("B")
    p = make_personalizer(lvlm=lvlm)
    p.introduce("Tom", chelsea, category="cat", context="my cat, loves boxes")
    p.introduce("cup", coffee, category="cup")
    query = np.ascontiguousarray(chelsea[:, ::-1])
    answer = p.ask(query, "Is Tom next to the cup?", options={"A": "yes", "B": "no"}, max_new_tokens=5, seed=1)
    image, prompt, options = lvlm.calls[-1]
    assert answer.choice == "B" and answer.text == "B"
    assert np.array_equal(image, answer.image) and not np.array_equal(image, query)  # boxes drawn
    colour = answer.meta["colours"]["Tom"]
    assert f"{colour} box" in prompt and "Tom" in prompt and "loves boxes" in prompt
    assert "cup" in prompt and "not visible" in prompt  # named in the question, absent from the photo
    assert options["max_new_tokens"] == 5 and options["seed"] == 1
    caption = p.caption(query)
    assert "Tom" in lvlm.calls[-1][1] and caption.text == "B" and caption.detections.name.tolist() == ["Tom"]


def test_an_hf_lvlm_runs_on_the_presets_device(monkeypatch: pytest.MonkeyPatch) -> None:
    got: list[tuple[str, dict]] = []
    monkeypatch.setattr("pekit.answer.load_lvlm", lambda name, **options: got.append((name, options)) or name)
    built = [Personalizer(lvlm=spec, device="cpu", memory="memory://").lvlm
             for spec in ("hf:some/model", "openai:http://localhost:8000/v1#m")]
    assert built == ["hf:some/model", "openai:http://localhost:8000/v1#m"]
    assert got == [("hf:some/model", {"device": "cpu"}), ("openai:http://localhost:8000/v1#m", {})]


# ---- the memory's backbone -------------------------------------------------------------------
def _foreign_concept() -> Concept:
    v = np.random.default_rng(0).normal(size=(1, 384)).astype(np.float32)
    return Concept("Rex", v / np.linalg.norm(v), backbone="hf:facebook/dinov2-small/layer-1/res224")


def test_backbone_mismatch_is_refused_and_memory_untouched(make_personalizer: Any, chelsea: np.ndarray,
                                                           grid_cache: Any) -> None:
    memory = open_memory("memory://")
    memory.add(_foreign_concept())
    p = make_personalizer(memory=memory)
    before, calls = snapshot(p), grid_cache.calls
    with pytest.raises(BackboneMismatchError, match="dinov2-small") as info:
        p.introduce("cat", chelsea)
    assert p.pipeline.fingerprint in str(info.value)
    assert "use the same backbone" in str(info.value)  # no preset makes a 224 px final-layer DINOv2-S
    with pytest.raises(BackboneMismatchError):
        p.recognize(chelsea)
    assert snapshot(p) == before
    assert grid_cache.calls == calls  # refused before any backbone pass


def test_a_memory_made_with_another_preset_names_that_preset(make_personalizer: Any, chelsea: np.ndarray) -> None:
    from dataclasses import replace

    memory = open_memory("memory://")
    p = make_personalizer(memory=memory)
    fast = p.pipeline.fingerprint + "/int8"  # what the offline-fast preset's int8 backbone writes
    memory.add(replace(_foreign_concept(), backbone=fast))
    with pytest.raises(BackboneMismatchError, match=r"use the preset that made it \(offline-fast; "
                                                   r"CLI: --preset offline-fast\)"):
        p.recognize(chelsea)


def test_a_memory_emptied_by_forget_accepts_another_backbone(make_personalizer: Any,
                                                             chelsea: np.ndarray) -> None:
    memory = open_memory("memory://")
    memory.add(_foreign_concept())
    memory.remove("Rex")
    p = make_personalizer(memory=memory)
    c = p.introduce("cat", chelsea)  # the store holds no vectors: nothing to mismatch
    assert c.backbone == p.pipeline.fingerprint == memory.backbone


# ---- bad input: clear errors, memory unchanged --------------------------------------------------
def _dot() -> np.ndarray:
    """A mask of chelsea's size (300 x 451) with one pixel set."""
    mask = np.zeros((300, 451), bool)
    mask[150, 200] = True
    return mask


def _speck() -> np.ndarray:
    """A mask of chelsea's size marking 9 x 9 pixels: over the 64-pixel floor, but under half
    a patch of her grid (a box that small is refused as covering too few patches)."""
    mask = np.zeros((300, 451), bool)
    mask[150:159, 200:209] = True
    return mask


def _text_file(tmp: Path) -> Path:
    path = tmp / "notes.jpg"
    path.write_text("not a photo")
    return path


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda p, img, tmp: p.introduce("", img), InvalidInputError, "non-empty string"),
        (lambda p, img, tmp: p.introduce("   ", img), InvalidInputError, "non-empty string"),
        (lambda p, img, tmp: p.introduce(None, img), InvalidInputError, "non-empty string"),
        (lambda p, img, tmp: p.introduce("Bo", []), InvalidInputError, "at least one reference image"),
        (lambda p, img, tmp: p.introduce("Bo", [img], boxes=[[0, 0, 9, 9], [0, 0, 9, 9]]), InvalidInputError,
         "got 2 boxes for 1 images"),
        (lambda p, img, tmp: p.introduce("Bo", [img, img], boxes=[[0, 0, 9, 9]]), InvalidInputError,
         "got 1 boxes for 2 images"),
        (lambda p, img, tmp: p.introduce("Bo", [img], boxes=[[0, 0, 9]]), InvalidInputError, r"\[x0, y0, x1, y1\]"),
        (lambda p, img, tmp: p.introduce("Bo", [img], boxes=[[9, 9, 0, 0]]), InvalidInputError, "x1 > x0"),
        (lambda p, img, tmp: p.introduce("Bo", [img], boxes=[[0, 0, np.nan, 9]]), InvalidInputError, "finite"),
        (lambda p, img, tmp: p.introduce("Bo", [img], boxes=[[0, 0, 1e300, 1e300]]), InvalidInputError,
         "under 10,000,000"),
        (lambda p, img, tmp: p.introduce("Bo", [img], boxes=[0, 0, 90, 90]), InvalidInputError,
         r"boxes=\[\[0, 0, 90, 90\]\]"),
        (lambda p, img, tmp: p.introduce("Bo", [img], masks=[np.ones((10, 10), bool)]), InvalidInputError,
         r"with its photo's shape, \(300, 451\) here; got shape \(10, 10\)"),
        (lambda p, img, tmp: p.introduce("Bo", [img], masks=[np.ones((300, 451, 3), bool)]), InvalidInputError,
         "with its photo's shape"),
        (lambda p, img, tmp: p.introduce("Bo", [img], masks=[_dot()]),
         InvalidInputError, "marks 1 pixel"),
        (lambda p, img, tmp: p.introduce("Bo", [img], masks=[_speck()]), InvalidInputError,
         r"the mask marks 0\.\d patch\(es\) of the 451x300 photo.*at least 2 of them"),
        (lambda p, img, tmp: p.introduce("Bo", [img], masks=["everything"]), InvalidInputError, "got str"),
        (lambda p, img, tmp: p.introduce("Bo", [img], category=5), InvalidInputError, "category must be text"),
        (lambda p, img, tmp: p.introduce("Bo", [img], context=["a", "b"]), InvalidInputError, "context must be text"),
        (lambda p, img, tmp: p.introduce("Bo", [img], boxes=["0,0,9,9"]), InvalidInputError, r"\[x0, y0, x1, y1\]"),
        (lambda p, img, tmp: p.introduce("Bo", [img], boxes=[{"x": 0}]), InvalidInputError, r"\[x0, y0, x1, y1\]"),
        (lambda p, img, tmp: p.introduce("Bo", [img], masks=[None, None]), InvalidInputError, "2 masks for 1"),
        (lambda p, img, tmp: p.introduce("Bo", b"not an image"), ImageError, "not an image file"),
        (lambda p, img, tmp: p.introduce("Bo", _text_file(tmp)), ImageError, "notes.jpg"),
        (lambda p, img, tmp: p.introduce("Bo", [img, tmp / "missing.png"]), ImageError, "missing.png"),
        (lambda p, img, tmp: p.introduce("Bo", [img], boxes=[[900, 900, 999, 999]]), InvalidInputError,
         r"lies outside the \d+x\d+ photo; give x0,y0,x1,y1 in its pixels"),
        (lambda p, img, tmp: p.introduce("Bo", np.full((240, 320, 3), 128, np.uint8)), NothingFoundError,
         "pass a box"),
    ],
    ids=["empty-name", "blank-name", "no-name", "no-images", "too-many-boxes", "too-few-boxes", "short-box",
         "inverted-box", "nan-box", "huge-box", "flat-box", "small-mask", "rgb-mask", "one-pixel-mask",
         "few-patch-mask", "text-mask", "int-category", "list-context", "string-box", "dict-box", "mask-count",
         "bytes", "text-file", "second-missing", "box-outside", "blank-photo"],
)
def test_bad_input_raises_and_leaves_memory_unchanged(stocked: Any, chelsea: np.ndarray, tmp_path: Path,
                                                      call: Any, error: type, message: str) -> None:
    before = snapshot(stocked)
    with pytest.raises(error, match=message) as info:
        call(stocked, chelsea, tmp_path)
    assert isinstance(info.value, PekitError)
    assert snapshot(stocked) == before


@pytest.mark.parametrize(("call", "message"), [
    (lambda p, img: p.recognize(img, threshold=5), r"cosine score in \[-1, 1\].*got 5"),
    (lambda p, img: p.recognize(img, threshold=float("nan")), "got nan"),
    (lambda p, img: p.recognize(img, threshold="0.5"), "got '0.5'"),
    (lambda p, img: list(p.recognize_many([img], threshold=2)), "cosine score"),
    (lambda p, img: list(p.recognize_many(None)), r"takes an iterable of photos .*, got NoneType"),
    (lambda p, img: list(p.recognize_many("a.jpg")), "for one photo use recognize"),
    (lambda p, img: p.caption(img, threshold=-3), "cosine score"),
    (lambda p, img: p.ask(img, "Which?", options=["a dog", "a cat"]), "options must be a dict"),
    (lambda p, img: p.explain(img, "cat"), "detections must be what recognize returned"),
    (lambda p, img: type(p)(threshold="x", memory="memory://"), "threshold must be a cosine score"),
], ids=["threshold-5", "threshold-nan", "threshold-str", "many-threshold", "many-none", "many-str",
        "caption-threshold", "options-list", "explain-str", "init-threshold"])
def test_bad_arguments_of_the_api_are_clear_errors(stocked: Any, chelsea: np.ndarray, call: Any,
                                                   message: str) -> None:
    before = snapshot(stocked)
    with pytest.raises(InvalidInputError, match=message):
        call(stocked, chelsea)
    assert snapshot(stocked) == before


def test_a_closed_pil_image_is_an_image_error(stocked: Any, chelsea: np.ndarray) -> None:
    pil = Image.fromarray(chelsea)
    pil.close()
    with pytest.raises(ImageError, match="cannot read its pixels"):
        stocked.recognize(pil)


def test_context_manager_closes_the_memory(make_personalizer: Any) -> None:
    with make_personalizer() as p:
        assert "offline" in repr(p) and "memory://" in repr(p)
    from pekit.errors import MemoryStoreError

    with pytest.raises(MemoryStoreError, match="closed"):
        p.concepts()


# ---- dataset (skipped without ../shared/data/dreambooth) -------------------------------------
@pytest.mark.dataset
@pytest.mark.slow
def test_dreambooth_subjects_are_recognized(make_personalizer: Any, dreambooth: Path) -> None:
    p = make_personalizer()
    p.introduce("my cat", [dreambooth / "cat" / "00.jpg", dreambooth / "cat" / "01.jpg"], category="cat")
    p.introduce("my can", dreambooth / "can" / "00.jpg", category="can")
    # measured: 0.80 and 0.79 against the 0.6 threshold (with ONE cat reference, cat/03 scores
    # only 0.64). Hard negatives are too close to assert: "my cat" scores 0.60 on cat2/00 and
    # 0.62 on dog2/00 (a false positive).
    assert p.recognize(dreambooth / "cat" / "03.jpg").name.tolist() == ["my cat"]
    assert p.recognize(dreambooth / "can" / "02.jpg").name.tolist() == ["my can"]


def test_a_panorama_gets_as_many_patches_as_a_square_photo(make_personalizer: Any, chelsea: np.ndarray,
                                                           coffee: np.ndarray, astronaut: np.ndarray) -> None:
    """A 2551 x 300 panorama with the cat in it: sized by its long side it got 32 x 4 patches
    and the cat scored 0.42 with a box twice its width; sized by area it is named, boxed."""
    p = make_personalizer()
    p.introduce("cat", chelsea, category="cat")
    tiles = [np.asarray(Image.fromarray(a).resize((300, 300))) for a in (coffee, astronaut)]
    pano = np.concatenate([tiles[0], tiles[1], tiles[0], np.ascontiguousarray(chelsea[:, ::-1]), tiles[1], tiles[0],
                           tiles[1], tiles[0]], axis=1)
    assert pano.shape == (300, 2551, 3)
    assert p.pipeline.encode(pano).shape[0] * p.pipeline.encode(pano).shape[1] >= 900  # ~1024 patches, not 128
    found = p.recognize(pano)
    assert found.name.tolist() == ["cat"]
    x0, _, x1, _ = found.xyxy[0]
    assert x0 >= 900 - 30 and x1 <= 900 + 451 + 30  # inside the cat's own stretch of the panorama
