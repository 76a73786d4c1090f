"""Region pooling over one patch grid: exact coverage weights and weighted means."""

from __future__ import annotations

import numpy as np
import pytest

from pekit.embed.pooling import box_weights, l2_normalize, mask_weights, pool, pool_boxes, pool_masks
from pekit.errors import InvalidInputError
from pekit.types import PatchGrid


@pytest.fixture
def grid() -> PatchGrid:
    """2 x 3 patches over a 30 x 20 image: every cell is 10 x 10 pixels; d = 5."""
    feats = np.random.default_rng(0).normal(size=(2, 3, 5)).astype(np.float32)
    return PatchGrid(feats, image_size=(30, 20))


@pytest.mark.parametrize(
    ("box", "expected"),
    [
        ([0, 0, 30, 20], [[1, 1, 1], [1, 1, 1]]),
        ([0, 0, 10, 10], [[1, 0, 0], [0, 0, 0]]),
        ([10, 10, 20, 20], [[0, 0, 0], [0, 1, 0]]),
        ([5, 0, 10, 10], [[0.5, 0, 0], [0, 0, 0]]),
        ([2.5, 5, 17.5, 20], [[0.375, 0.375, 0], [0.75, 0.75, 0]]),
        ([12.5, 2.5, 15, 5], [[0, 0.0625, 0], [0, 0, 0]]),
        ([-100, -100, 100, 100], [[1, 1, 1], [1, 1, 1]]),  # clipped to the image
        ([40, 0, 50, 20], [[0, 0, 0], [0, 0, 0]]),  # outside
        ([10, 10, 10, 20], [[0, 0, 0], [0, 0, 0]]),  # zero width
    ],
)
def test_box_weights_are_exact_cell_coverage(grid: PatchGrid, box: list[float], expected: list) -> None:
    w = box_weights(grid, np.array(box, np.float32))
    assert w.shape == (1, 2, 3) and w.dtype == np.float32
    np.testing.assert_allclose(w[0], expected, atol=1e-6)


def test_box_weights_sum_to_the_box_area_in_cells(grid: PatchGrid) -> None:
    boxes = np.array([[1.5, 2.25, 27.0, 13.0], [0, 0, 30, 20], [3, 4, 5, 6]], np.float32)
    w = box_weights(grid, boxes)
    area_in_cells = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) / 100.0
    np.testing.assert_allclose(w.sum((1, 2)), area_in_cells, rtol=1e-5)


def test_box_weights_non_square_cells() -> None:
    g = PatchGrid(np.zeros((2, 2, 1), np.float32), image_size=(40, 10))  # cells 20 x 5
    np.testing.assert_allclose(box_weights(g, [[10, 0, 40, 2.5]])[0], [[0.25, 0.5], [0, 0]])


@pytest.mark.parametrize(
    ("mask_fn", "expected"),
    [
        (lambda m: m.__setitem__((slice(0, 10), slice(0, 10)), True), [[1, 0, 0], [0, 0, 0]]),
        (lambda m: m.__setitem__((slice(0, 5), slice(0, 10)), True), [[0.5, 0, 0], [0, 0, 0]]),
        (lambda m: m.__setitem__((slice(5, 15), slice(15, 30)), True), [[0, 0.25, 0.5], [0, 0.25, 0.5]]),
        (lambda m: m.__setitem__((slice(None), slice(None)), True), [[1, 1, 1], [1, 1, 1]]),
        (lambda m: None, [[0, 0, 0], [0, 0, 0]]),
    ],
)
def test_mask_weights_average_the_mask_area_per_cell(grid: PatchGrid, mask_fn, expected: list) -> None:
    mask = np.zeros((20, 30), bool)
    mask_fn(mask)
    w = mask_weights(grid, mask)
    assert w.shape == (1, 2, 3)
    np.testing.assert_allclose(w[0], expected, atol=1e-6)


def test_mask_weights_accept_any_resolution(grid: PatchGrid) -> None:
    # a mask at 2x the image resolution, and one coarser than the grid itself
    fine = np.zeros((40, 60), bool)
    fine[:20, :20] = True
    np.testing.assert_allclose(mask_weights(grid, fine)[0], [[1, 0, 0], [0, 0, 0]])
    coarse = np.array([[True], [False]])  # (2, 1): top half of the image
    np.testing.assert_allclose(mask_weights(grid, coarse)[0], [[1, 1, 1], [0, 0, 0]])


def test_mask_weights_batch_and_shape_errors(grid: PatchGrid) -> None:
    masks = np.zeros((4, 20, 30), bool)
    masks[1] = True
    w = mask_weights(grid, masks)
    assert w.shape == (4, 2, 3) and w[1].min() == 1 and w[0].max() == 0
    with pytest.raises(InvalidInputError, match=r"\(m, H, W\) or \(H, W\), got \(1, 1, 20, 30\)"):
        mask_weights(grid, np.zeros((1, 1, 20, 30)))


def test_pool_is_the_normalised_weighted_mean(grid: PatchGrid) -> None:
    weights = np.array([[[0.5, 1, 0], [0, 0.25, 0]], [[1, 1, 1], [1, 1, 1]]], np.float32)
    out = pool(grid, weights)
    feats = grid.features.reshape(6, 5)
    for k in range(2):
        mean = (weights[k].reshape(6, 1) * feats).sum(0) / weights[k].sum()
        np.testing.assert_allclose(out[k], mean / np.linalg.norm(mean), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-6)


def test_pool_single_map_and_scale_invariance(grid: PatchGrid) -> None:
    w = np.array([[1, 0, 0], [0, 1, 0]], np.float32)
    np.testing.assert_allclose(pool(grid, w), pool(grid, 7 * w), atol=1e-6)
    assert pool(grid, w).shape == (1, 5)


def test_zero_weight_region_is_a_zero_vector(grid: PatchGrid) -> None:
    out = pool(grid, np.zeros((2, 2, 3), np.float32))
    assert out.shape == (2, 5)
    assert not out.any() and np.all(np.isfinite(out))


@pytest.mark.parametrize("shape", [(1, 3, 2), (3, 3), (1, 2, 4), (2, 6)])
def test_pool_rejects_weights_of_another_grid(grid: PatchGrid, shape: tuple[int, ...]) -> None:
    with pytest.raises(InvalidInputError, match=r"weights must have shape \(m, 2, 3\)"):
        pool(grid, np.ones(shape, np.float32))


def test_pool_boxes_and_masks_agree_on_cell_aligned_regions(grid: PatchGrid) -> None:
    mask = np.zeros((20, 30), bool)
    mask[0:20, 10:30] = True
    np.testing.assert_allclose(pool_boxes(grid, [[10, 0, 30, 20]]), pool_masks(grid, mask[None]), rtol=1e-5)
    # a box over a single patch is that patch's direction
    np.testing.assert_allclose(pool_boxes(grid, [[20, 10, 30, 20]])[0], l2_normalize(grid.features[1, 2]),
                               rtol=1e-5)


@pytest.mark.parametrize(
    ("x", "expected"),
    [
        ([3.0, 4.0], [0.6, 0.8]),
        ([0.0, 0.0], [0.0, 0.0]),
        ([[1.0, 0.0], [0.0, -2.0]], [[1.0, 0.0], [0.0, -1.0]]),
    ],
)
def test_l2_normalize(x: list, expected: list) -> None:
    np.testing.assert_allclose(l2_normalize(np.array(x)), expected, atol=1e-7)
