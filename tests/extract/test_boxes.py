"""Reference boxes a user draws: each refusal is a clear message naming the box."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from pekit.errors import InvalidInputError
from pekit.extract.boxes import MIN_BOX_PATCHES, check_box_on_grid, check_box_on_photo, reference_boxes


def test_one_box_or_none_per_image() -> None:
    out = reference_boxes(["a.jpg", "b.jpg"], [[10, 20, 110, 220], None])
    assert out[0].dtype == np.float32 and out[0].tolist() == [10, 20, 110, 220] and out[1] is None
    assert reference_boxes(["a.jpg"], None) == [None]
    with pytest.raises(InvalidInputError, match="got 1 boxes for 2 images"):
        reference_boxes(["a.jpg", "b.jpg"], [[0, 0, 50, 50]])


@pytest.mark.parametrize("box", [[0, 0, 50], [50, 0, 10, 40], [0, 50, 40, 10], [0, 0, float("nan"), 40],
                                 ["a", "b", "c", "d"]])
def test_a_malformed_box_is_named(box: list) -> None:
    with pytest.raises(InvalidInputError, match=r"a box must be .*\[x0, y0, x1, y1\]"):
        reference_boxes(["a.jpg"], [box])


@pytest.mark.parametrize(("box", "message"), [
    ([0, 0, float("inf"), 40], "four finite pixel coordinates"),
    ([0, 0, 10**400, 100], "four finite pixel coordinates"),  # an int too large for a float (JSON allows it)
    ([0, 0, 1e300, 1e300], "under 10,000,000 in size"),  # finite: not called "not finite"
    ([-1e30, 0, 50, 50], "under 10,000,000 in size"),
    ([0, 0, 1e7, 1e7], "under 10,000,000 in size"),
])
def test_a_box_of_non_finite_or_absurd_numbers_is_named_so(box: list, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message) as info:
        reference_boxes(["a.jpg"], [box])
    assert len(str(info.value)) < 200  # the number is not printed whole


@pytest.mark.parametrize("box", [[True, 0, 100, 100], [[0, 0], [100, 100]], [0, 0, "100", 100], {"x0": 0}])
def test_what_numpy_would_coerce_into_a_box_is_not_one(box: object) -> None:
    # True would be 1 and a nested list flattened: a client's bug would pass as a box
    with pytest.raises(InvalidInputError, match=r"four numbers \[x0, y0, x1, y1\] in pixels"):
        reference_boxes(["a.jpg"], [box])


def test_a_box_as_an_array_or_numpy_numbers() -> None:
    assert reference_boxes(["a.jpg"], [np.array([[1, 2, 300, 300]])])[0].tolist() == [1, 2, 300, 300]
    assert reference_boxes(["a.jpg"], [(np.int64(1), 2, np.float32(300), 300.5)])[0].tolist() == [1, 2, 300, 300.5]


def test_a_box_too_thin_to_hold_an_object() -> None:
    with pytest.raises(InvalidInputError, match="at least 8 x 8 pixels"):
        reference_boxes(["a.jpg"], [[0, 0, 100, 5]])


def test_a_box_off_the_photo_names_its_size() -> None:
    assert check_box_on_photo([-10, -10, 50, 40], 640, 480, "a.jpg") == (50.0, 40.0)   # clipped to the photo
    with pytest.raises(InvalidInputError, match=r"lies outside the 640x480 photo.*x from 0 to 640"):
        check_box_on_photo([700, 10, 800, 100], 640, 480, "a.jpg")
    # a box mostly off the photo: what is inside must be a box too (a 4-pixel sliver was taken)
    with pytest.raises(InvalidInputError, match=r"only 4 x 480 pixels of the box \[-20.0, 0.0, 4.0, 640.0\] lie "
                                                r"inside the 640x480 photo; .* at least 8 x 8"):
        check_box_on_photo([-20, 0, 4, 640], 640, 480, "a.jpg")


def test_a_box_must_cover_patches_of_the_grid() -> None:
    grid = SimpleNamespace(image_size=(448, 448), cell_size=(14.0, 14.0))
    check_box_on_grid(np.array([0, 0, 28, 14], np.float32), grid, "a.jpg")          # exactly 2 patches
    with pytest.raises(InvalidInputError, match=f"covers 1.0 patch.*at least {MIN_BOX_PATCHES}"):
        check_box_on_grid(np.array([0, 0, 14, 14], np.float32), grid, "a.jpg")


def test_a_mask_of_its_photo_s_shape_at_any_size_or_soft_is_taken() -> None:
    from pekit.extract.boxes import check_mask

    half = np.zeros((150, 226), bool)
    half[40:100, 60:160] = True
    assert check_mask(half, 451, 300, "a.jpg").shape == (150, 226)            # same shape, half the size
    soft = np.clip(half * 0.4, 0, 1)
    assert check_mask(soft, 451, 300, "a.jpg").max() == pytest.approx(0.4)   # soft weights kept
    assert check_mask(half.astype(np.uint8) * 255, 451, 300, "a.jpg").dtype == bool  # 0/255
    for bad, message in ((np.ones((10, 10)), "photo's shape"), (half * 2.0, "weights from 0 to 1"),
                         (np.full((150, 226), np.nan), "weights from 0 to 1")):
        with pytest.raises(InvalidInputError, match=message):
            check_mask(bad, 451, 300, "a.jpg")
    dot = np.zeros((30, 45), bool)
    dot[10, 10] = True  # one pixel of a tenth-size mask: 100 of the photo's pixels
    assert check_mask(dot, 451, 300, "a.jpg").sum() == 1
    one = np.zeros((300, 451), bool)
    one[5, 5] = True
    with pytest.raises(InvalidInputError, match="marks 1 pixel"):
        check_mask(one, 451, 300, "a.jpg")
