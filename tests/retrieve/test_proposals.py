"""Candidate regions over one patch grid: sliding windows, salient components, given boxes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from pekit.extract.saliency import grid_saliency
from pekit.retrieve.proposals import Proposals, box_proposals, saliency_proposals, window_proposals
from pekit.types import PatchGrid


def grid_of(h: int, w: int, image_size: tuple[int, int]) -> PatchGrid:
    return PatchGrid(np.zeros((h, w, 2), np.float32), image_size=image_size)


@pytest.mark.parametrize(
    ("h", "w", "image_size"),
    [(24, 32, (640, 480)), (21, 32, (451, 300)), (32, 24, (300, 400)), (5, 8, (30, 20)), (1, 1, (7, 9))],
)
def test_windows_cover_the_grid_and_stay_inside_the_image(h: int, w: int, image_size: tuple) -> None:
    g = grid_of(h, w, image_size)
    p = window_proposals(g)
    assert p.weights.shape == (len(p), h, w) and p.xyxy.shape == (len(p), 4)
    assert len(p) == len({tuple(b) for b in p.xyxy.tolist()})  # no duplicates
    # the 1.0 scale is one window over the whole grid / image
    full = np.nonzero(p.weights.reshape(len(p), -1).min(1) == 1)[0]
    assert len(full) == 1
    np.testing.assert_allclose(p.xyxy[full[0]], [0, 0, *image_size], atol=1e-3)
    assert p.weights.max(0).min() == 1  # every patch is in some window
    width, height = image_size
    assert np.all(p.xyxy[:, :2] >= 0) and np.all(p.xyxy[:, 2] <= width + 1e-3)
    assert np.all(p.xyxy[:, 3] <= height + 1e-3)
    assert np.all(p.xyxy[:, 2] > p.xyxy[:, 0]) and np.all(p.xyxy[:, 3] > p.xyxy[:, 1])


def test_window_boxes_match_their_weights() -> None:
    g = grid_of(6, 8, (80, 60))  # 10 px cells
    p = window_proposals(g, scales=(0.5,), stride=0.5)
    for weights, box in zip(p.weights, p.xyxy, strict=True):
        ys, xs = np.nonzero(weights)
        np.testing.assert_allclose(box, [xs.min() * 10, ys.min() * 10, (xs.max() + 1) * 10, (ys.max() + 1) * 10])
        assert weights.sum() == (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)  # solid rectangles
    # 3 x 4 windows moved by 1 x 2 cells: 4 rows x 3 columns of positions
    assert len(p) == 12


def test_window_scales_are_respected() -> None:
    g = grid_of(10, 10, (100, 100))
    assert len(window_proposals(g, scales=(1.0,))) == 1
    sizes = {int(w.sum()) for w in window_proposals(g, scales=(0.3, 1.0)).weights}
    assert sizes == {9, 100}


def test_saliency_proposals_give_mask_and_box_pairs() -> None:
    g = grid_of(6, 8, (80, 60))
    sal = np.zeros((6, 8), np.float32)
    sal[1, 1:4] = sal[2, 1] = 1.0  # an L-shaped object: its mask is not its box
    sal[4:6, 6:8] = 0.6  # a fainter square
    p = saliency_proposals(sal, g, levels=(0.5,))
    assert len(p) == 4  # two components, each as mask and as box
    masks, boxes = p.weights[0::2], p.weights[1::2]
    np.testing.assert_array_equal(p.xyxy[0::2], p.xyxy[1::2])  # same box for both halves of a pair
    l_index = int(np.argmax([m[1, 1] for m in masks]))
    np.testing.assert_array_equal(masks[l_index], sal == 1.0)
    assert boxes[l_index].sum() == 6 and masks[l_index].sum() == 4
    np.testing.assert_allclose(p.xyxy[0::2][l_index], [10, 10, 40, 30])
    # at a higher level only the brighter object remains
    assert len(saliency_proposals(sal, g, levels=(0.7,))) == 2


@pytest.mark.parametrize(
    ("saliency", "distinct_boxes"),
    [
        (np.full((6, 8), 0.7, np.float32), 0),  # flat: no components
        (np.pad(np.ones((1, 1), np.float32), ((2, 3), (3, 4))), 0),  # one patch < min_patches
        (np.pad(np.ones((2, 1), np.float32), ((2, 2), (3, 4))), 1),  # found again at every level
    ],
)
def test_saliency_proposals_edge_cases(saliency: np.ndarray, distinct_boxes: int) -> None:
    p = saliency_proposals(saliency, grid_of(6, 8, (80, 60)))
    assert len({tuple(b) for b in p.xyxy.tolist()}) == distinct_boxes
    assert p.weights.shape == (len(p), 6, 8)


def test_saliency_proposals_on_the_real_map(scene_grid: PatchGrid) -> None:
    # the scene's object: rows 80:180, cols 120:220 of a 320 x 240 image
    p = saliency_proposals(grid_saliency(scene_grid), scene_grid)
    assert len(p) >= 2 and len(p) % 2 == 0
    best = np.max([np.prod(np.clip(np.minimum(b[2:], [220, 180]) - np.maximum(b[:2], [120, 80]), 0, None))
                   / max(np.prod(b[2:] - b[:2]), 1) for b in p.xyxy])
    assert best > 0.8  # some proposal lies (mostly) on the object


def test_box_proposals_and_concat() -> None:
    g = grid_of(2, 3, (30, 20))
    p = box_proposals(g, [5, 0, 10, 10])
    assert len(p) == 1
    np.testing.assert_allclose(p.weights[0], [[0.5, 0, 0], [0, 0, 0]])
    both = Proposals.concat([p, window_proposals(g, scales=(1.0,))], g.shape)
    assert len(both) == 2 and both.weights.shape == (2, 2, 3)
    empty: Any = Proposals.concat([], (2, 3))
    assert len(empty) == 0 and empty.weights.shape == (0, 2, 3) and empty.xyxy.shape == (0, 4)
