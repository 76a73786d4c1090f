"""Patch colours (`pekit.embed.colour`): what the colour term of a score compares."""

from __future__ import annotations

import numpy as np
import pytest

from pekit.embed.colour import BINS, colour_agreement, patch_colours, region_colour, to_lab


def _flat(rgb: tuple[int, int, int], size: tuple[int, int] = (28, 42)) -> np.ndarray:
    img = np.zeros((*size, 3), np.uint8)
    img[:] = rgb
    return img


def test_lab_matches_the_standard_values() -> None:
    lab = to_lab(np.array([[255, 255, 255], [0, 0, 0], [255, 0, 0], [0, 0, 255]], np.float32))
    np.testing.assert_allclose(lab[0], [100.0, 0.0, 0.0], atol=0.6)
    np.testing.assert_allclose(lab[1], [0.0, 0.0, 0.0], atol=0.6)
    np.testing.assert_allclose(lab[2], [53.2, 80.1, 67.2], atol=1.0)   # sRGB red, D65
    np.testing.assert_allclose(lab[3], [32.3, 79.2, -107.9], atol=1.0)  # sRGB blue


def test_each_patch_gets_a_histogram_of_its_own_pixels() -> None:
    img = _flat((200, 30, 30))
    img[:, 21:] = (30, 160, 40)  # right half green
    colours = patch_colours(img, (2, 3))
    assert colours.shape == (2, 3, BINS) and colours.dtype == np.float32
    np.testing.assert_allclose(colours.sum(-1), 1.0, atol=1e-5)
    left, right = colours[0, 0], colours[0, 2]
    assert colour_agreement(left, colours[1, 0][None]) > 0.99         # the same red
    assert colour_agreement(left, right[None]) < 0.1                   # red against green


def test_shading_moves_the_agreement_less_than_a_change_of_hue() -> None:
    red, darker, orange = (region_colour(patch_colours(_flat(c), (2, 3)), np.ones((2, 3), bool))
                           for c in ((190, 40, 40), (150, 30, 30), (200, 120, 30)))
    assert colour_agreement(red, darker[None]) > 0.8
    assert colour_agreement(red, orange[None]) < colour_agreement(red, darker[None]) - 0.3


def test_a_region_is_compared_with_its_closest_view() -> None:
    colours = patch_colours(_flat((200, 30, 30)), (2, 3))
    red = region_colour(colours, np.ones((2, 3), bool))
    blue = region_colour(patch_colours(_flat((30, 30, 200)), (2, 3)), np.ones((2, 3), bool))
    assert colour_agreement(red, np.stack([blue, red])) == pytest.approx(1.0, abs=1e-5)
    assert colour_agreement(red, blue[None]) < 0.1


def test_an_empty_region_is_uniform_not_nan() -> None:
    out = region_colour(patch_colours(_flat((10, 200, 10)), (2, 3)), np.zeros((2, 3), bool))
    assert np.isfinite(out).all() and out.sum() == pytest.approx(1.0)


def test_stored_text_reads_back_to_the_same_agreements() -> None:
    from pekit.embed.colour import decode_colour, encode_colour

    colours = patch_colours(_flat((200, 30, 30)), (2, 3))
    colours[0, 0] = patch_colours(_flat((30, 30, 200)), (1, 1))[0, 0]
    h = region_colour(colours, np.ones((2, 3), bool))
    text = encode_colour(h)
    assert isinstance(text, str) and len(text) == 264
    back = decode_colour(text)
    assert back is not None and back.sum() == pytest.approx(1.0)
    assert colour_agreement(back, h[None]) > 0.995
    blue = region_colour(patch_colours(_flat((30, 30, 200)), (2, 3)), np.ones((2, 3), bool))
    assert abs(colour_agreement(back, blue[None]) - colour_agreement(h, blue[None])) < 0.01


@pytest.mark.parametrize("damaged", [None, 3, True, "0.5", "@@@", "AAAA", [0.5] * 196, {"a": 1}])
def test_damaged_stored_colours_are_no_colour_not_an_error(damaged: object) -> None:
    from pekit.embed.colour import decode_colour

    assert decode_colour(damaged) is None
