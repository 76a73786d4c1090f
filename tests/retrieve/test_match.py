"""Matching: best cosine over each concept's views, and patch-level part agreement."""

from __future__ import annotations

import numpy as np
import pytest

from pekit.retrieve.match import Gallery, part_scores, similarity
from pekit.types import Concept

E = np.eye(4, dtype=np.float32)  # e0..e3: orthonormal hand vectors


def unit(*v: float) -> np.ndarray:
    a = np.array(v, np.float32)
    return a / np.linalg.norm(a)


@pytest.fixture
def gallery() -> Gallery:
    return Gallery.from_concepts([
        Concept("Bo", np.stack([E[0], E[1]]), id=10, threshold=0.8, parts=np.stack([E[0]])),  # two views
        Concept("Mochi", E[2], id=20),
    ])


def test_gallery_flattens_concepts(gallery: Gallery) -> None:
    assert len(gallery) == 2
    assert gallery.names == ["Bo", "Mochi"]
    assert gallery.ids.tolist() == [10, 20]
    assert gallery.views.shape == (3, 4)
    assert gallery.owner.tolist() == [0, 0, 1]
    assert gallery.thresholds[0] == pytest.approx(0.8) and np.isnan(gallery.thresholds[1])
    assert gallery.parts[0].shape == (1, 4) and gallery.parts[1] is None


def test_empty_gallery() -> None:
    g = Gallery.from_concepts([])
    assert len(g) == 0
    assert similarity(np.ones((3, 4), np.float32), g).shape == (3, 0)


@pytest.mark.parametrize(
    ("embedding", "expected"),
    [
        (E[0], [1.0, 0.0]),  # Bo's first view
        (E[1], [1.0, 0.0]),  # Bo's second view: the max over views, not the mean
        (E[2], [0.0, 1.0]),
        (E[3], [0.0, 0.0]),
        (unit(1, 1, 0, 0), [np.sqrt(0.5), 0.0]),
        (unit(1, 0, 1, 0), [np.sqrt(0.5), np.sqrt(0.5)]),
        (-E[0], [0.0, 0.0]),  # Bo's other view is orthogonal: max(-1, 0) = 0
        (unit(-1, -1, -1, 0), [-np.sqrt(1 / 3), -np.sqrt(1 / 3)]),
    ],
)
def test_similarity_is_the_best_view_per_concept(gallery: Gallery, embedding: np.ndarray,
                                                 expected: list) -> None:
    out = similarity(embedding[None], gallery)
    assert out.shape == (1, 2) and out.dtype == np.float32
    np.testing.assert_allclose(out[0], expected, atol=1e-6)


def test_similarity_batch(gallery: Gallery) -> None:
    out = similarity(np.stack([E[0], E[2], E[3]]), gallery)
    np.testing.assert_allclose(out, [[1, 0], [0, 1], [0, 0]], atol=1e-6)
    assert similarity(np.zeros((0, 4), np.float32), gallery).shape == (0, 2)


def test_similarity_with_one_view_per_concept_takes_the_short_path() -> None:
    """One view each (most memories at scale): the product is the answer, no per-concept max;
    the same numbers as the general path (here forced by a second view on the last concept)."""
    rng = np.random.default_rng(0)
    views = rng.normal(size=(50, 4)).astype(np.float32)
    views /= np.linalg.norm(views, axis=1, keepdims=True)
    q = rng.normal(size=(7, 4)).astype(np.float32)
    one = Gallery.from_concepts([Concept(f"c{i}", views[i], id=i + 1) for i in range(50)])
    np.testing.assert_allclose(similarity(q, one), q @ views.T, atol=1e-6)
    two = Gallery.from_concepts([Concept(f"c{i}", views[i], id=i + 1) for i in range(49)]
                                + [Concept("c49", np.stack([views[49], -views[49]]), id=50)])
    expected = q @ views.T
    expected[:, 49] = np.abs(expected[:, 49])
    np.testing.assert_allclose(similarity(q, two), expected, atol=1e-6)


@pytest.mark.parametrize(
    ("region", "parts", "expected"),
    [
        ([E[0], E[1]], [E[0], E[1]], 1.0),  # same patches
        ([E[1], E[0]], [E[0], E[1]], 1.0),  # order does not matter
        ([E[0]], [E[0], E[1]], 0.75),  # parts->region (1 + 0) / 2, region->parts 1
        ([E[0], E[1], E[2], E[3]], [E[0]], 0.625),  # parts->region 1, region->parts 1/4
        ([unit(1, 1, 0, 0)], [E[0], E[1]], np.sqrt(0.5)),
        ([E[2]], [E[0], E[1]], 0.0),  # nothing in common
        ([-E[0]], [E[0]], -1.0),
        ([], [E[0]], -1.0),  # no patches
        ([E[0]], [], -1.0),  # no parts
    ],
    ids=["same", "order", "missing-part", "extra-patches", "diagonal", "disjoint", "opposite",
         "no-region", "no-parts"],
)
def test_part_scores_symmetric_chamfer(region: list, parts: list, expected: float) -> None:
    r = np.array(region, np.float32).reshape(-1, 4)
    p = np.array(parts, np.float32).reshape(-1, 4)
    assert part_scores(r, p) == pytest.approx(expected, abs=1e-6)
    assert part_scores(p, r) == pytest.approx(expected, abs=1e-6)  # symmetric in its arguments
