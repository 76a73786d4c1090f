"""Overlay drawing: colours, stability, labels, thickness, input types, bad input."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from PIL import Image

from pekit.errors import InvalidInputError
from pekit.prompt.overlay import PALETTE, _text_rgb, annotate, colour_assignment, colour_rgb, stable_colours
from pekit.types import Detections


def _dets(boxes, names, scores=None) -> Detections:
    return Detections(xyxy=np.array(boxes, np.float32), name=np.array(names, dtype=object),
                      score=None if scores is None else np.array(scores, np.float32))


def _grid_boxes(n: int, size: int = 400) -> list[list[float]]:
    step = size // (n + 1)
    return [[10 + i * step, 60, 10 + i * step + step // 2, 300] for i in range(n)]


@pytest.fixture
def gray() -> np.ndarray:
    return np.full((360, 400, 3), 100, np.uint8)


def test_returns_same_type_and_never_mutates(gray):
    dets = _dets([[20, 40, 200, 200]], ["Bo"], [0.9])
    before = gray.copy()
    out = annotate(gray, dets)
    assert isinstance(out, np.ndarray) and out.shape == gray.shape and out.dtype == np.uint8
    assert out is not gray and np.array_equal(gray, before)
    assert not np.array_equal(out, gray)

    pil = Image.fromarray(before)
    pil_out = annotate(pil, dets)
    assert isinstance(pil_out, Image.Image) and pil_out is not pil and pil_out.size == pil.size
    assert np.array_equal(np.asarray(pil), before)
    assert np.array_equal(np.asarray(pil_out), out)


@pytest.mark.parametrize("n", [1, 2, 4, 8])
def test_each_concept_drawn_in_its_own_named_colour(gray, n):
    names = [f"c{i}" for i in range(n)]
    scores = [0.9 - 0.05 * i for i in range(n)]
    dets = _dets(_grid_boxes(n), names, scores)
    colours = colour_assignment(dets)
    assert list(colours) == names  # most confident first
    assert list(colours.values()) == [c for c, _ in PALETTE[:n]]
    assert len(set(colours.values())) == n
    out = annotate(gray, dets, labels=False)
    for i, name in enumerate(names):
        x0, _, _, y1 = (int(v) for v in dets.xyxy[i])
        # the left edge at mid-height has exactly the colour the prompt will name
        assert tuple(out[(60 + y1) // 2, x0]) == colour_rgb(colours[name])


def test_same_concept_same_colour_and_order_by_best_score():
    dets = _dets([[0, 0, 5, 5]] * 4, ["Bo", "Mochi", "Bo", "Rex"], [0.5, 0.8, 0.95, 0.6])
    assert colour_assignment(dets) == {"Bo": "red", "Mochi": "blue", "Rex": "yellow"}
    tie = _dets([[0, 0, 5, 5]] * 2, ["Zed", "Amy"], [0.7, 0.7])
    assert list(colour_assignment(tie)) == ["Zed", "Amy"]  # ties keep first appearance


def test_two_boxes_of_one_concept_share_its_colour(gray):
    dets = _dets([[20, 40, 100, 200], [220, 40, 320, 200]], ["Bo", "Bo"], [0.9, 0.7])
    out = annotate(gray, dets, labels=False)
    assert tuple(out[120, 20]) == tuple(out[120, 220]) == colour_rgb("red")


def test_unmatched_not_drawn_unless_asked(gray):
    dets = _dets([[20, 40, 200, 200], [220, 40, 320, 200]], ["", "Bo"], [0.99, 0.8])
    assert colour_assignment(dets) == {"Bo": "red"}
    out = annotate(gray, dets, labels=False)
    assert np.array_equal(out[:, :210], gray[:, :210])
    shown = annotate(gray, dets, labels=False, unmatched=True)
    assert not np.array_equal(shown[:, :210], gray[:, :210])
    assert tuple(shown[120, 20]) not in {c for _, c in PALETTE}


def test_empty_detections_give_an_unchanged_copy(gray):
    out = annotate(gray, Detections.empty())
    assert np.array_equal(out, gray) and out is not gray


def test_thickness_scales_with_image_size():
    dets = _dets([[10, 10, 60, 60]], ["Bo"])
    small = annotate(np.zeros((100, 100, 3), np.uint8), dets, labels=False)
    assert tuple(small[30, 11]) == colour_rgb("red") and tuple(small[30, 13]) == (0, 0, 0)
    big_dets = _dets([[100, 100, 1500, 1500]], ["Bo"])
    big = annotate(np.zeros((1600, 1600, 3), np.uint8), big_dets, labels=False)
    assert tuple(big[800, 107]) == colour_rgb("red")  # 8 px at a 1600 px image
    explicit = annotate(np.zeros((100, 100, 3), np.uint8), dets, labels=False, thickness=5)
    assert tuple(explicit[30, 14]) == colour_rgb("red")


def test_labels_filled_inside_the_image_with_contrasting_text(gray):
    # box touching the top-right corner: the tag must move inside the box and the image
    dets = _dets([[300, 0, 400, 100]], ["Bo"], [0.87])
    out = annotate(gray, dets)
    no_label = annotate(gray, dets, labels=False)
    diff = np.any(out != no_label, axis=2)
    ys, xs = np.nonzero(diff)
    assert len(ys) > 50
    assert xs.max() < 400 and ys.min() >= 0 and ys.max() < 100  # drawn inside, near the top
    tag = out[ys.min():ys.max() + 1, xs.min():xs.max() + 1].reshape(-1, 3)
    colours = {tuple(p) for p in tag}
    assert colour_rgb("red") in colours and (255, 255, 255) in colours  # white text on red
    assert _text_rgb(colour_rgb("yellow")) == (0, 0, 0)
    assert _text_rgb(colour_rgb("blue")) == (255, 255, 255)


def test_label_goes_above_a_box_when_there_is_room(gray):
    dets = _dets([[100, 200, 300, 340]], ["Bo"], [0.5])
    diff = np.any(annotate(gray, dets) != annotate(gray, dets, labels=False), axis=2)
    ys, _ = np.nonzero(diff)
    assert ys.max() < 200


def test_boxes_outside_the_image_are_clipped(gray):
    dets = _dets([[-50, -50, 1000, 1000]], ["Bo"])
    out = annotate(gray, dets, labels=False)
    assert tuple(out[0, 200]) == colour_rgb("red") and tuple(out[359, 200]) == colour_rgb("red")


def test_more_concepts_than_colours_keeps_the_most_confident(caplog):
    n = len(PALETTE) + 3
    dets = _dets([[0, 0, 5, 5]] * n, [f"c{i}" for i in range(n)], np.linspace(1, 0.5, n))
    with caplog.at_level(logging.WARNING, logger="pekit.prompt.overlay"):
        colours = colour_assignment(dets)
    assert list(colours) == [f"c{i}" for i in range(len(PALETTE))]
    assert "c14" in caplog.text


def test_a_colour_that_is_also_a_name_is_not_handed_out():
    # "the entity in the red box is called Blue" would send the LVLM to the wrong box
    dets = _dets([[0, 0, 5, 5]] * 3, ["Blue", "Red", "Bo"], [0.9, 0.8, 0.7])
    assert colour_assignment(dets) == {"Blue": "yellow", "Red": "green", "Bo": "purple"}
    assert stable_colours(["Bo", "blue", "Mochi"]) == {"Bo": "red", "blue": "yellow", "Mochi": "green"}


def test_a_clip_hands_out_each_colour_once_and_names_after_the_palette_get_none():
    names = [f"n{i}" for i in range(len(PALETTE) + 2)]
    colours = stable_colours(names)
    assert list(colours) == names[: len(PALETTE)] and len(set(colours.values())) == len(PALETTE)


def test_a_box_wholly_outside_the_photo_is_not_drawn_in_a_corner(gray):
    out = annotate(gray, _dets([[-80, -80, -10, -10], [600, 10, 700, 50]], ["Bo", "Mochi"]))
    assert np.array_equal(out, gray)


def test_a_name_with_a_line_break_is_drawn_on_one_line(gray):
    out = annotate(gray, _dets([[20, 40, 200, 200]], ["Bo\nthe dog"]))
    assert np.array_equal(out, annotate(gray, _dets([[20, 40, 200, 200]], ["Bo the dog"])))


def test_a_pil_photo_is_drawn_upright_as_recognize_saw_it():
    # stored 200 x 100 with EXIF orientation 6: recognize sees it 100 wide, 200 high
    import io

    raw = Image.new("RGB", (200, 100), (90, 90, 90))
    exif = raw.getexif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    raw.save(buf, "JPEG", exif=exif)
    photo = Image.open(io.BytesIO(buf.getvalue()))
    out = annotate(photo, _dets([[10, 150, 60, 190]], ["Bo"]), labels=False)
    assert out.size == (100, 200)
    assert tuple(np.asarray(out)[170, 10]) == colour_rgb("red")
    clear = Image.new("RGBA", (20, 20), (255, 0, 0, 0))  # hidden red under full transparency
    assert tuple(np.asarray(annotate(clear, _dets(np.zeros((0, 4)), [])))[5, 5]) == (255, 255, 255)


def test_custom_palette_by_names_and_pairs():
    dets = _dets([[0, 0, 5, 5]] * 2, ["Bo", "Mochi"], [0.9, 0.8])
    assert colour_assignment(dets, palette=["green", "orange"]) == {"Bo": "green", "Mochi": "orange"}
    custom = [("teal", (0, 128, 128)), ("gold", (255, 200, 0))]
    out = annotate(np.zeros((50, 50, 3), np.uint8), _dets([[5, 5, 40, 40]], ["Bo"]), palette=custom,
                   labels=False)
    assert tuple(out[20, 5]) == (0, 128, 128)


@pytest.mark.parametrize(
    ("image", "kwargs", "match"),
    [
        (np.zeros((10, 10), np.uint8), {}, r"\(H, W, 3\) uint8"),
        (np.zeros((10, 10, 3), np.float32), {}, "uint8"),
        (np.zeros((0, 10, 3), np.uint8), {}, "empty"),
        ("photo.jpg", {}, "numpy array or a PIL image"),
        (np.zeros((10, 10, 3), np.uint8), {"palette": ["mauve"]}, "unknown colour 'mauve'"),
        (np.zeros((10, 10, 3), np.uint8), {"palette": ["red", "red"]}, "unique"),
        (np.zeros((10, 10, 3), np.uint8), {"thickness": 0}, "thickness"),
    ],
)
def test_bad_input(image, kwargs, match):
    with pytest.raises(InvalidInputError, match=match):
        annotate(image, _dets([[1, 1, 5, 5]], ["Bo"]), **kwargs)
