"""Negative views (user corrections): a region more like a known "not Bo" is not Bo."""

from __future__ import annotations

import numpy as np

from pekit.pipeline import Pipeline
from pekit.presets import RecognitionConfig
from pekit.retrieve.match import Gallery
from pekit.types import Concept, PatchGrid

from .test_extent import _NoBackbone


def _two_dogs() -> tuple[PatchGrid, np.ndarray, np.ndarray]:
    """Bo (direction 0) on the left, a look-alike (mostly direction 0, some direction 2) on the right."""
    f = np.zeros((6, 12, 8), np.float32)
    f[..., 1] = 1.0
    f[1:5, 1:5] = 0
    f[1:5, 1:5, 0] = 1.0
    f[1:5, 7:11] = 0
    f[1:5, 7:11, 0] = 1.0
    f[1:5, 7:11, 2] = 0.6
    return PatchGrid(f, image_size=(120, 60)), np.eye(8, dtype=np.float32)[0], f[2, 8] / np.linalg.norm(f[2, 8])


def test_a_correction_moves_the_name_off_the_look_alike():
    grid, bo, lookalike = _two_dogs()
    cfg = RecognitionConfig(threshold=0.0, proposals=("windows",), window_scales=(0.34,))
    pipe = Pipeline(_NoBackbone(), cfg)
    plain = Gallery.from_concepts([Concept("bo", bo[None], parts=bo[None])])
    corrected = Gallery.from_concepts([Concept("bo", bo[None], parts=bo[None], negatives=lookalike[None])])
    both = pipe.candidates(grid, plain)
    assert len(both) == 1
    after = pipe.candidates(grid, corrected)
    assert len(after) == 1 and after[0].xyxy[2] <= 60      # still Bo, on the left half only
    # a gallery whose only candidate is the look-alike finds nothing once it is corrected
    only = PatchGrid(grid.features[:, 6:].copy(), image_size=(60, 60))
    assert len(pipe.candidates(only, plain)) == 1 and pipe.candidates(only, corrected) == []


def test_subset_keeps_negatives_and_order():
    a = Concept("a", np.eye(1, 4), negatives=np.eye(1, 4, 3))
    b = Concept("b", np.eye(2, 4, 1))
    g = Gallery.from_concepts([a, b]).subset([1, 0])
    assert g.names == ["b", "a"] and g.owner.tolist() == [1, 0, 0]   # views keep their order
    assert g.negatives is not None and g.negatives[0] is None and g.negatives[1].tolist() == [[0, 0, 0, 1]]
