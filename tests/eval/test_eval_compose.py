"""Pasting a shrunk, feather-edged object and downscaling, with boxes that follow."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pekit.eval.compose import box_area, composite, downscale, overlap, visible_box


def test_composite_pastes_the_exact_resized_crop_and_avoids_a_box():
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (100, 120, 3)).astype(np.uint8)
    background = np.zeros((200, 300, 3), np.uint8)
    box = (20.0, 10.0, 80.0, 90.0)
    avoid = (0.0, 0.0, 150.0, 200.0)                 # the left half holds another object
    out, place = composite(background, photo, box, np.random.default_rng(1), area=(0.05, 0.05), margin=0.1,
                           avoid=avoid)
    assert place.area_fraction == pytest.approx(0.05, rel=0.05)
    px0, py0, px1, py1 = place.rect
    assert px0 >= 150                                # fits right of the avoided box, so it goes there
    crop = photo[2:98, 14:86]                        # the box plus a 10 % margin (6 px, 8 px)
    want = np.asarray(Image.fromarray(crop).resize((px1 - px0, py1 - py0), Image.Resampling.LANCZOS))
    x0, y0, x1, y1 = place.box
    inner = (slice(int(np.ceil(y0)) - py0, int(y1) - py0), slice(int(np.ceil(x0)) - px0, int(x1) - px0))
    assert np.array_equal(out[py0:py1, px0:px1][inner], want[inner])   # the object is pasted opaque
    assert out[py0, px0].max() < want[0, 0].max() or want[0, 0].max() == 0   # the edge is feathered
    assert np.all(out[:, :px0] == 0) and np.all(out[:, px1:] == 0)     # nothing outside the rectangle
    assert np.all(background == 0)                                     # the input is untouched


@pytest.mark.parametrize("box, cover, expected", [
    ((0, 0, 10, 10), (6, -1, 20, 11), (0, 0, 6, 10)),
    ((0, 0, 10, 10), (-5, 7, 15, 12), (0, 0, 10, 7)),
    ((0, 0, 10, 10), (2, 2, 4, 4), (0, 0, 10, 10)),
    ((0, 0, 10, 10), (20, 20, 30, 30), (0, 0, 10, 10)),
    ((0, 0, 10, 10), (-1, -1, 11, 11), None),
])
def test_visible_box(box, cover, expected):
    got = visible_box(box, cover)
    assert got == (None if expected is None else tuple(float(v) for v in expected))


def test_downscale_keeps_the_box_on_the_object():
    img, box = downscale(np.zeros((600, 400, 3), np.uint8), (40, 60, 200, 600))
    assert img.shape == (320, 213, 3) and box == pytest.approx((21.3, 32.0, 106.5, 320.0), abs=0.1)




def test_overlap_and_area():
    assert overlap((0, 0, 10, 10), (5, 5, 20, 20)) == 25.0 and overlap((0, 0, 1, 1), (2, 2, 3, 3)) == 0.0
    assert box_area((0, 0, 4, 5)) == 20.0 and box_area((3, 3, 1, 1)) == 0.0


def test_composite_refuses_an_empty_box():
    from pekit.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="empty"):
        composite(np.zeros((10, 10, 3), np.uint8), np.zeros((10, 10, 3), np.uint8), (5, 5, 5, 9),
                  np.random.default_rng(0))
