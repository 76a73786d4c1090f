"""`pekit.extract.views`: a region of a reference grid -> view embedding + parts (no pass)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from pekit.extract.views import (
    View,
    concept_from_views,
    consistency,
    tiled_image,
    view_from_weights,
    zoomed_view,
)
from pekit.retrieve.match import PART_GROUPS, part_groups, part_scores
from pekit.types import PatchGrid


def _grid(h: int = 6, w: int = 8, d: int = 16, seed: int = 0) -> PatchGrid:
    features = np.random.default_rng(seed).normal(size=(h, w, d)).astype(np.float32)
    return PatchGrid(features, (w * 14, h * 14))


def test_a_view_pools_the_region_and_keeps_its_parts_and_box() -> None:
    grid = _grid()
    weights = np.zeros(grid.shape, np.float32)
    weights[1:4, 2:6] = 1.0
    view = view_from_weights(grid, weights, max_parts=5)
    inside = grid.features[1:4, 2:6].reshape(-1, 16)
    assert np.linalg.norm(view.embedding) == pytest.approx(1.0, abs=1e-5)
    assert float(view.embedding @ (inside.mean(0) / np.linalg.norm(inside.mean(0)))) > 0.99
    assert view.parts.shape == (5, 16)  # 12 patches summarised into 5 unit prototypes
    np.testing.assert_allclose(np.linalg.norm(view.parts, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(view.xyxy, [28, 14, 84, 56])  # the cells it covers, in pixels


def test_consistency_is_leave_one_out_over_the_views_patches() -> None:
    grid = _grid(8, 8, d=32)
    left, right, also_left = (np.zeros(grid.shape, np.float32) for _ in range(3))
    left[1:5, 0:4], right[3:7, 4:8], also_left[1:5, 0:4] = 1.0, 1.0, 1.0
    a, b, a2 = (view_from_weights(grid, w, max_parts=4) for w in (left, right, also_left))
    assert a.patches is not None and a.patches.shape == (16, 32)  # the region's unit patches, kept
    np.testing.assert_allclose(np.linalg.norm(a.patches, axis=1), 1.0, atol=1e-5)
    same, other = consistency([a, a2]), consistency([a, b])
    assert same is not None and other is not None and same > other
    # each view's object patches against the other's parts, both ways, averaged
    assert other == pytest.approx(0.5 * (part_scores(a.patches, b.parts) + part_scores(b.patches, a.parts)))
    # a preset that scores by the global cosine (verify_weight 0) gets that instead
    assert consistency([a, b], verify_weight=0.0) == pytest.approx(float(a.embedding @ b.embedding), abs=1e-6)
    assert consistency([a, b], verify_weight=0.5) == pytest.approx(
        0.5 * float(a.embedding @ b.embedding) + 0.5 * other, abs=1e-6)
    assert consistency([a]) is None
    assert consistency([a, View(b.embedding, b.parts, b.xyxy, b.weights)]) is None  # no patches: unknown
    # the same picture twice with its colour: the colour term would lift it past a whole match
    hist = np.full(8, 1 / 8, np.float32)
    whole = [view_from_weights(grid, w, max_parts=16) for w in (left, also_left)]  # a part per patch
    assert consistency(whole) == pytest.approx(1.0, abs=1e-5)
    coloured = [dataclasses.replace(v, colour=hist) for v in whole]
    assert consistency(coloured, colour_weight=0.2) == pytest.approx(1.0, abs=1e-5)


def test_a_region_with_no_patch_above_one_half_keeps_its_embedding_as_its_part() -> None:
    grid = _grid()
    weights = np.zeros(grid.shape, np.float32)
    weights[2, 3] = 0.4
    view = view_from_weights(grid, weights, max_parts=8)
    np.testing.assert_allclose(view.parts, view.embedding[None])


def test_the_zoomed_twin_reads_a_tiled_or_a_shrunk_grid() -> None:
    grid = _grid(8, 8)
    weights = np.zeros(grid.shape, np.float32)
    weights[2:6, 2:6] = 1.0
    view = view_from_weights(grid, weights, max_parts=4)
    tiled = zoomed_view(view, _grid(8, 8, seed=1), factor=2, max_parts=4)  # 2 x 2 copies at full size
    shrunk = zoomed_view(view, _grid(4, 4, seed=2), factor=2, max_parts=4)  # one copy at half size
    assert tiled is not None and shrunk is not None
    assert tiled.weights.sum() == pytest.approx(4 * 4.0)  # the object's 2 x 2 patches, in each of 4 tiles
    assert shrunk.weights.sum() == pytest.approx(4.0)
    tiny = View(view.embedding, view.parts, view.xyxy, np.pad(np.ones((1, 1), np.float32), ((0, 7), (0, 7))))
    assert zoomed_view(tiny, _grid(4, 4), factor=2, max_parts=4) is None  # under 2 patches there


def test_tiled_image_shrinks_and_repeats_the_photo() -> None:
    rgb = np.zeros((40, 60, 3), np.uint8)
    rgb[:, :30] = 255
    out = tiled_image(rgb, 2)
    assert out.shape == (40, 60, 3)
    assert out[5, 5].tolist() == [255, 255, 255] and out[5, 20].tolist() == [0, 0, 0]
    assert out[25, 35].tolist() == [255, 255, 255]  # the second copy starts at x = 30


def test_concept_from_views_groups_full_size_then_zoomed_parts() -> None:
    grid = _grid(8, 8)
    weights = np.zeros(grid.shape, np.float32)
    weights[2:6, 2:6] = 1.0
    a = view_from_weights(grid, weights, max_parts=3)
    a.zoomed = zoomed_view(a, _grid(4, 4, seed=3), factor=2, max_parts=2)
    b = view_from_weights(_grid(8, 8, seed=4), weights, max_parts=3)
    concept = concept_from_views("bo", [a, b], category="dog")
    assert concept.views.shape == (2, 16) and concept.category == "dog"
    assert concept.meta[PART_GROUPS] == [6, 2] and part_groups(concept) == [6, 2]
    np.testing.assert_allclose(concept.parts[:3], a.parts)
    np.testing.assert_allclose(concept.parts[6:], a.zoomed.parts)
    assert PART_GROUPS not in concept_from_views("bo", [b]).meta  # one group: nothing recorded


def test_with_view_appends_the_view_its_parts_and_colour_and_forgets_the_consistency() -> None:
    from types import SimpleNamespace

    from pekit.extract.views import with_view
    from pekit.retrieve.match import COLOURS

    old = [View(np.full(8, 0.1, np.float32), np.ones((3, 8), np.float32), np.array([0, 0, 5, 5], np.float32),
                np.ones((2, 2)), zoomed=SimpleNamespace(parts=np.ones((2, 8), np.float32)),
                colour=np.full(196, 1 / 196, np.float32)) for _ in range(2)]
    bo = concept_from_views("Bo", old, meta={"consistency": 0.71, "references": ["a.jpg", "b.jpg"]})
    assert bo.meta[PART_GROUPS] == [6, 4] and len(bo.meta[COLOURS]) == 2
    new = View(np.full(8, 0.5, np.float32), np.full((2, 8), 2, np.float32), np.array([3.04, 4, 50, 60.06]),
               np.ones((2, 2)), zoomed=SimpleNamespace(parts=np.full((1, 8), 3, np.float32)),
               colour=np.full(196, 1 / 196, np.float32))
    more = with_view(bo, new, reference="c.jpg")
    assert more.views.shape == (3, 8) and more.meta[PART_GROUPS] == [8, 5] == part_groups(more)
    np.testing.assert_array_equal(more.parts[6:8], new.parts)                    # full-size parts, then zoomed
    np.testing.assert_array_equal(more.parts[-1], new.zoomed.parts[0])
    assert len(more.meta[COLOURS]) == 3 and more.meta["references"] == ["a.jpg", "b.jpg", "c.jpg"]
    assert more.meta["boxes"][-1] == [3.0, 4.0, 50.0, 60.1] and "consistency" not in more.meta
    assert bo.meta["consistency"] == 0.71 and bo.views.shape == (2, 8)          # the input is not changed
    plain = with_view(concept_from_views("Mo", old[:1]), View(new.embedding, new.parts, new.xyxy, new.weights),
                      reference="d.jpg")
    assert COLOURS not in plain.meta                                              # a view without colour: none kept
