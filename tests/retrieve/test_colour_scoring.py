"""The colour term of a score (`RecognitionConfig.colour_weight`): two things alike in texture
and shape but not in colour are told apart; a concept stored without colours scores as before."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from pekit.embed.colour import patch_colours, region_colour
from pekit.extract.views import View, concept_from_views
from pekit.pipeline import Pipeline
from pekit.presets import RecognitionConfig
from pekit.retrieve.match import COLOURS, Gallery
from pekit.types import Concept, PatchGrid

from .test_extent import _NoBackbone

FUR = np.eye(8, dtype=np.float32)[0]
RED, GREY, GRASS = (200, 40, 40), (140, 140, 140), (60, 150, 50)


def _scene(colour: tuple[int, int, int]) -> PatchGrid:
    """A furry object (8 x 8 patches) of one ``colour`` on grass; the same texture whatever its colour."""
    f = np.zeros((12, 24, 8), np.float32)
    f[..., 1] = 1.0
    f[2:10, 4:12] = FUR
    img = np.zeros((120, 240, 3), np.uint8)
    img[:] = GRASS
    img[20:100, 40:120] = colour
    return PatchGrid(f, image_size=(240, 120), colours=patch_colours(img, (12, 24)))


def _concept(name: str, colour: tuple[int, int, int] | None) -> Concept:
    grid = _scene(colour or RED)
    weights = np.zeros((12, 24), np.float32)
    weights[2:10, 4:12] = 1
    view = View(FUR, FUR[None], np.zeros(4, np.float32), weights,
                colour=None if colour is None else region_colour(grid.colours, weights > 0.5))
    return concept_from_views(name, [view])


def _pipe(weight: float, competition: bool = False) -> Pipeline:
    return Pipeline(_NoBackbone(), RecognitionConfig(threshold=0.0, proposals=("windows",), window_scales=(0.5,),
                                                     colour_weight=weight, colour_competition=competition))


def _scores(pipe: Pipeline, grid: PatchGrid, gallery: Gallery) -> dict[str, float]:
    return {gallery.names[c.concept]: c.score for c in pipe.candidates(grid, gallery, competitive=False)}


def test_a_concept_keeps_the_colour_of_each_view() -> None:
    concept = _concept("bo", RED)
    assert len(concept.meta[COLOURS]) == len(concept.views) == 1
    assert _concept("old", None).meta.get(COLOURS) is None


def test_the_concept_of_the_right_colour_scores_higher_and_the_other_lower() -> None:
    gallery = Gallery.from_concepts([_concept("red dog", RED), _concept("grey plushie", GREY)])
    grid = _scene(RED)
    off, on = _scores(_pipe(0.0), grid, gallery), _scores(_pipe(0.2), grid, gallery)
    assert off["red dog"] == pytest.approx(off["grey plushie"])        # texture alone cannot tell them apart
    assert on["red dog"] == pytest.approx(off["red dog"] + 0.2 * (1.0 - 0.8), abs=1e-3)
    assert on["grey plushie"] < off["grey plushie"] - 0.05


def test_with_colour_competition_the_region_goes_to_the_concept_of_its_colour() -> None:
    gallery = Gallery.from_concepts([_concept("grey plushie", GREY), _concept("red dog", RED)])
    grid = _scene(RED)
    named = [gallery.names[c.concept] for c in _pipe(0.2, competition=True).candidates(grid, gallery)]
    assert named == ["red dog"]
    both = [gallery.names[c.concept] for c in _pipe(0.2).candidates(grid, gallery)]
    assert sorted(both) == ["grey plushie", "red dog"]                 # parts alone tie: neither is vetoed


def test_a_concept_stored_without_colours_scores_as_before() -> None:
    gallery = Gallery.from_concepts([_concept("old", None), _concept("red dog", RED)])
    grid = _scene(GREY)
    off, on = _scores(_pipe(0.0), grid, gallery), _scores(_pipe(0.2), grid, gallery)
    assert on["old"] == off["old"]                                     # beside one that has colours
    assert on["red dog"] < off["red dog"] - 0.05


def test_a_grid_without_colours_scores_as_before() -> None:
    gallery = Gallery.from_concepts([_concept("red dog", RED)])
    grid = replace(_scene(GREY), colours=None)
    assert _scores(_pipe(0.2), grid, gallery) == _scores(_pipe(0.0), grid, gallery)
