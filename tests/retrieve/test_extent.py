"""Whole-object extent: a matched part grows to the object, not into its neighbours."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from pekit.embed.pooling import l2_normalize
from pekit.pipeline import Pipeline
from pekit.presets import RecognitionConfig
from pekit.retrieve.extent import mask_xyxy, object_extent
from pekit.retrieve.match import Gallery
from pekit.retrieve.nms import box_iou
from pekit.types import Concept, PatchGrid

D = 16


def _scene(seed: int = 0) -> tuple[PatchGrid, np.ndarray, np.ndarray]:
    """8 x 10 grid (cells 10 px): background, an object (rows 1-5, cols 1-5) whose halves
    differ (a "face" and a "body"), and a different object touching it (cols 6-8)."""
    rng = np.random.default_rng(seed)
    f = np.zeros((8, 10, D), np.float32)
    f[..., 1] = 1.0                                        # background
    f[1:6, 1:3, 0] = 1.0  # object, left part ("face")
    f[1:6, 1:3, 1] = 0.0
    f[1:6, 3:6, 3] = 1.0  # object, right part ("body")
    f[1:6, 3:6, 1] = 0.0
    f[1:6, 3:6, 0] = 0.4
    f[1:6, 6:9, 2] = 1.0  # the neighbour
    f[1:6, 6:9, 1] = 0.0
    f += rng.normal(0, 0.05, f.shape).astype(np.float32)
    grid = PatchGrid(f, image_size=(100, 80))
    unit = l2_normalize(f.reshape(-1, D)).reshape(8, 10, D)
    obj = unit[1:6, 1:6].reshape(-1, D)
    return grid, l2_normalize(obj.mean(0)), obj[::3]


class _NoBackbone:
    name = fingerprint = "none"
    dim = D

    def embed(self, image, *, saliency=True):  # pragma: no cover - never called
        raise AssertionError("no backbone pass expected")


def test_extent_grows_a_part_to_the_whole_object_only():
    grid, _, parts = _scene()
    unit = l2_normalize(grid.features.reshape(-1, D))
    seed = np.zeros(grid.shape, np.float32)
    seed[2:4, 1:3] = 1.0                                   # matched only the "face"
    mask = object_extent(unit, parts, seed)
    assert mask[1:6, 1:6].all()                            # the whole object ...
    assert not mask[:, 6:].any() and not mask[0].any()     # ... and nothing of the neighbour or background
    assert mask_xyxy(mask, grid.cell_size).tolist() == [10.0, 10.0, 60.0, 60.0]


@pytest.mark.parametrize("extent, expected_min_iou", [(True, 0.9), (False, 0.0)])
def test_recognize_boxes_the_whole_object(extent, expected_min_iou):
    grid, view, parts = _scene(1)
    gallery = Gallery.from_concepts([Concept("bo", view[None], parts=parts)])
    cfg = RecognitionConfig(threshold=0.0, proposals=("windows",), window_scales=(0.3, 0.5), extent=extent)
    dets = Pipeline(_NoBackbone(), cfg).recognize(grid, gallery)
    assert list(dets.name) == ["bo"]
    iou = float(box_iou(dets.xyxy, np.array([[10, 10, 60, 60]]))[0, 0])
    assert iou >= expected_min_iou
    if not extent:
        assert iou < 0.9                                   # the windows alone do not find the extent


def test_extent_keeps_the_seed_when_nothing_around_is_alike():
    unit = np.tile(np.eye(4, dtype=np.float32)[1], (9, 1))  # a flat 3 x 3 grid
    seed = np.zeros((3, 3), np.float32)
    seed[1, 1] = 1
    mask = object_extent(unit, np.eye(4, dtype=np.float32)[:1], seed)
    assert mask.tolist() == (seed > 0.5).tolist()


def _salient_scene(neighbour_salient: bool) -> tuple[PatchGrid, Gallery]:
    """`_scene` with a saliency map at 2 px (40 x 50) outlining the object, rows 1-5 cols
    1-5, plus a rim the patch features do not show (its "paws": row 6); the neighbour is
    salient and touching it, or not."""
    grid, view, parts = _scene(1)
    sal = np.zeros((40, 50), np.float32)
    sal[5:35, 5:30] = 1.0                                 # the object, and its rim in row 6 (pixels 60-70)
    if neighbour_salient:
        sal[5:30, 30:45] = 1.0                            # the neighbour, one component with it
    grid = PatchGrid(grid.features, image_size=grid.image_size, saliency=sal)
    return grid, Gallery.from_concepts([Concept("bo", view[None], parts=parts)])


def test_the_box_grows_to_the_salient_object_and_only_the_box():
    grid, gallery = _salient_scene(neighbour_salient=False)
    cfg = RecognitionConfig(threshold=0.0, proposals=("windows",), window_scales=(0.3, 0.5))
    plain = Pipeline(_NoBackbone(), cfg).recognize(grid, gallery)
    grown = Pipeline(_NoBackbone(), replace(cfg, salient_box=True)).recognize(grid, gallery)
    assert plain.xyxy.tolist() == [[10.0, 10.0, 60.0, 60.0]]  # the patches' extent stops above the rim
    assert grown.xyxy.tolist() == [[10.0, 10.0, 60.0, 70.0]]  # the saliency map's object includes it
    assert grown.score.tolist() == plain.score.tolist()        # the score is the region's, unchanged
    np.testing.assert_allclose(grown.embedding, plain.embedding)


def test_a_salient_component_that_holds_a_neighbour_grows_nothing():
    grid, gallery = _salient_scene(neighbour_salient=True)  # most of that component lies outside the box
    cfg = RecognitionConfig(threshold=0.0, proposals=("windows",), window_scales=(0.3, 0.5), salient_box=True)
    assert Pipeline(_NoBackbone(), cfg).recognize(grid, gallery).xyxy.tolist() == [[10.0, 10.0, 60.0, 60.0]]


def test_a_thin_strand_of_the_salient_component_does_not_stretch_the_box():
    from pekit.retrieve.extent import salient_boxes

    sal = np.zeros((200, 400), np.float32)
    sal[100:140, 50:90] = 1.0                              # a 40 x 40 object
    sal[120, 90:390] = 1.0                                 # and a 1-px leash, 300 px long: 84 % of the pixels inside
    box = np.array([[50, 100, 90, 140]], np.float32)
    assert salient_boxes(box, sal, (400, 200)).tolist() == box.tolist()


def test_recognize_drops_overlaps_before_the_boxes_grow():
    """Two concepts named on parts of one salient object: their boxes overlap less than NMS
    removes, so both are returned; grown, the two boxes coincide, and growing first would
    have dropped one. Growth decides nothing."""
    from pekit.retrieve.candidates import Candidate

    grid, gallery = _salient_scene(neighbour_salient=False)
    two = Gallery.from_concepts([Concept("bo", gallery.views[:1], parts=gallery.parts[0]),
                                 Concept("mo", gallery.views[:1], parts=gallery.parts[0])])
    boxes = np.array([[10, 10, 60, 58], [10, 22, 60, 70]], np.float32)  # IoU 0.6: each holds 80 % of the object
    region = np.zeros(grid.shape, bool)
    found = [Candidate(0, 0.9, boxes[0], region), Candidate(1, 0.8, boxes[1], region)]
    pipe = Pipeline(_NoBackbone(), RecognitionConfig(threshold=0.0, salient_box=True, nms_iou=0.7))
    pipe.candidates = lambda *args, **kw: found  # type: ignore[method-assign]
    grown = pipe.drawn_boxes(boxes, grid)
    assert grown.tolist() == [[10.0, 10.0, 60.0, 70.0]] * 2     # both grow to the whole object
    dets = pipe.recognize(grid, two)
    assert list(dets.name) == ["bo", "mo"] and dets.xyxy.tolist() == grown.tolist()
