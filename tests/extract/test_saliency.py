"""Reference views from the saliency map: the object's patches, not the table it stands on."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from pekit.errors import NothingFoundError
from pekit.extract.saliency import grid_saliency, largest_component, object_weights
from pekit.types import PatchGrid


def hand_grid(saliency: np.ndarray | None, shape: tuple[int, int] = (6, 8)) -> PatchGrid:
    """A grid of ``shape`` patches over an image of 10 px per patch, with a hand saliency map."""
    h, w = shape
    return PatchGrid(np.ones((h, w, 4), np.float32), image_size=(10 * w, 10 * h), saliency=saliency)


def blob(shape: tuple[int, int] = (6, 8), cells: tuple[slice, slice] = (slice(1, 4), slice(2, 5)),
         value: float = 0.9, background: float = 0.1) -> np.ndarray:
    sal = np.full(shape, background, np.float32)
    sal[cells] = value
    return sal


# ---- hand-made grids: the rules ----------------------------------------------------------
def test_grid_saliency_area_averages_any_resolution() -> None:
    sal = np.zeros((60, 80), np.float32)  # 10 x the grid: patch (1, 2) fully, (1, 3) half salient
    sal[10:20, 20:35] = 1.0
    s = grid_saliency(hand_grid(sal))
    assert s.shape == (6, 8)
    assert s[1, 2] == pytest.approx(1.0) and s[1, 3] == pytest.approx(0.5) and s[0, 0] == 0.0


def test_salient_blob_becomes_the_object() -> None:
    w = object_weights(hand_grid(blob()))
    np.testing.assert_array_equal(w, blob(value=1.0, background=0.0))
    assert w.dtype == np.float32


def test_largest_connected_component_wins() -> None:
    sal = blob()
    sal[5, 7] = 0.95  # a brighter but tiny speck elsewhere
    w = object_weights(hand_grid(sal))
    assert w[5, 7] == 0 and w[1:4, 2:5].all()
    labels = np.zeros((4, 4), bool)
    labels[0, 0] = labels[2:4, 2:4] = True
    np.testing.assert_array_equal(largest_component(labels), np.pad(np.ones((2, 2), bool), ((2, 0), (2, 0))))


@pytest.mark.parametrize(
    ("saliency", "box", "message"),
    [
        (np.full((6, 8), 0.5, np.float32), None, "pass a box"),  # flat: nothing stands out
        (np.full((6, 8), 0.95, np.float32), None, "pass a box"),  # flat and high
        (blob(value=0.25, background=0.05), None, "pass a box"),  # nothing really salient
        (blob(cells=(slice(2, 3), slice(3, 4))), None, "too small"),  # a single patch
        (blob(), [500, 500, 600, 600], "lies outside the image"),
        (None, None, "no saliency map; pass a box"),
    ],
)
def test_nothing_found(saliency: np.ndarray | None, box: Any, message: str) -> None:
    with pytest.raises(NothingFoundError, match=message):
        object_weights(hand_grid(saliency), box=box)


def test_box_restricts_the_search_and_flat_box_falls_back_to_the_box() -> None:
    sal = blob()
    sal[3:5, 6:8] = 0.8  # a second object at the bottom right
    right_box = [55, 25, 80, 50]  # cells rows 2..4, cols 5..7
    w = object_weights(hand_grid(sal), box=right_box)
    assert w[3:5, 6:8].all() and w[:, :5].sum() == 0  # the left (brighter) blob is ignored
    flat_box = [0, 50, 20, 60]  # background only: trust the user's box
    w = object_weights(hand_grid(sal), box=flat_box)
    expected = np.zeros((6, 8))
    expected[5, 0:2] = 1
    np.testing.assert_array_equal(w, expected)


def test_box_without_saliency_is_the_box_itself() -> None:
    w = object_weights(hand_grid(None), box=[15, 10, 30, 30])
    expected = np.zeros((6, 8))
    expected[1:3, 1] = 0.5
    expected[1:3, 2] = 1.0
    np.testing.assert_allclose(w, expected)


def test_mask_is_used_as_given() -> None:
    mask = np.zeros((60, 80), bool)
    mask[0:10, 0:5] = True
    w = object_weights(hand_grid(blob()), mask=mask)
    assert w[0, 0] == pytest.approx(0.5) and w.sum() == pytest.approx(0.5)
    with pytest.raises(NothingFoundError, match="mask is empty"):
        object_weights(hand_grid(blob()), mask=np.zeros((60, 80), bool))


# ---- the real saliency map of the offline backbone ----------------------------------------------
def cells(grid: PatchGrid, x0: float, y0: float, x1: float, y1: float, grow: int = 0) -> tuple[slice, slice]:
    """The patches wholly inside a pixel rectangle of ``grid``'s photo (``grow`` more on each side)."""
    cw, ch = grid.cell_size
    return (slice(max(0, int(np.ceil(y0 / ch)) - grow), int(y1 // ch) + grow),
            slice(max(0, int(np.ceil(x0 / cw)) - grow), int(x1 // cw) + grow))


def test_textured_object_on_flat_background(scene_grid: PatchGrid) -> None:
    # scene: object in rows 80:180, cols 120:220 of 240 x 320 (a 4:3 photo: 28 x 37 patches)
    assert scene_grid.shape == (28, 37)
    w = object_weights(scene_grid)
    inside = w[cells(scene_grid, 120, 80, 220, 180)]
    assert (inside > 0).mean() >= 0.9  # covers the object
    outside = w.copy()
    outside[cells(scene_grid, 120, 80, 220, 180, grow=1)] = 0  # allow one cell of blur around it
    assert outside.sum() == 0
    for corner in (w[:4, :4], w[:4, -4:], w[-4:, :4], w[-4:, -4:]):
        assert corner.sum() == 0


def test_box_keeps_the_view_inside_the_box(pipeline: Any, make_scene: Any) -> None:
    # two textured squares; the box holds only the right one
    img = make_scene(objects=((70, 30, 170, 130), (70, 190, 170, 290)), seed=1)
    grid = pipeline.encode(img)
    box = [170, 50, 310, 190]
    w = object_weights(grid, box=box)
    cw, ch = grid.cell_size
    ys, xs = np.nonzero(w)
    assert xs.min() * cw >= box[0] - cw and (xs.max() + 1) * cw <= box[2] + cw
    assert ys.min() * ch >= box[1] - ch and (ys.max() + 1) * ch <= box[3] + ch
    assert (w[cells(grid, 190, 70, 290, 170)] > 0).mean() >= 0.9  # the right square is covered
    assert w[:, :cells(grid, 170, 0, 320, 240)[1].start].sum() == 0  # the left square is not


def test_flat_reference_photo_raises_with_a_hint_to_pass_a_box(pipeline: Any) -> None:
    # A blank photo has nothing to isolate. The saliency head gives a uniformly *high* map
    # on it (grid values ~0.92-0.98), so the relative-contrast check must catch it.
    grid = pipeline.encode(np.full((240, 320, 3), 128, np.uint8))
    with pytest.raises(NothingFoundError, match="pass a box"):
        object_weights(grid)


def test_a_box_on_no_patch_past_its_half_is_the_box_itself_without_warnings() -> None:
    import warnings

    grid = hand_grid(blob())  # 10 px patches
    box = np.array([26, 16, 34, 24], np.float32)  # inside, but under half of any patch
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's "All-NaN slice encountered" leaked to the user
        weights = object_weights(grid, box=box)
    assert weights.max() <= 0.5 and weights.sum() > 0
