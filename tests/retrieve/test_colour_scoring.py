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
    assert on["red dog"] == pytest.approx(off["red dog"] + 0.2 * (1.0 - 0.85), abs=2e-3)
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


@pytest.mark.parametrize("rows", [["x" * 264], [[100.0] * 196], [["0.5"] * 196], [[True] * 196], "AAAA", [], None])
def test_a_damaged_colour_record_is_ignored_never_inflates_a_score(rows: object) -> None:
    good = _concept("red dog", RED)
    damaged = replace(good, meta={**good.meta, COLOURS: rows})
    gallery = Gallery.from_concepts([damaged])
    assert len(gallery.colour_matrix()[1]) == 0                        # no colour rows for it
    grid = _scene(RED)
    assert _scores(_pipe(0.2), grid, gallery) == _scores(_pipe(0.0), grid, gallery)
    # one damaged concept does not turn colour off for the others
    both = Gallery.from_concepts([damaged, good])
    assert _scores(_pipe(0.2), grid, both)["red dog"] > _scores(_pipe(0.0), grid, both)["red dog"] + 0.02


def test_subsets_and_refreshed_galleries_keep_each_concepts_colours() -> None:
    concepts = [replace(_concept(n, c), id=i + 1) for i, (n, c) in enumerate([("grey plushie", GREY), ("old", None),
                                                                              ("red dog", RED)])]
    gallery = Gallery.from_concepts(concepts)
    sub = gallery.subset([2, 0])
    assert sub.names == ["red dog", "grey plushie"]
    np.testing.assert_array_equal(_rows(sub, 0), _rows(gallery, 2))
    np.testing.assert_array_equal(_rows(sub, 1), _rows(gallery, 0))
    refreshed = gallery.replaced({1}, [concepts[0]])                  # as GalleryCache does after a write
    assert [n for n in refreshed.names] == ["old", "red dog", "grey plushie"]
    assert len(_rows(refreshed, 0)) == 0 and len(_rows(refreshed, 2)) == 1
    np.testing.assert_array_equal(_rows(refreshed, 2), _rows(gallery, 0))


def _rows(gallery: Gallery, k: int) -> np.ndarray:
    roots, owner = gallery.colour_matrix()
    return roots[owner == k]


def test_a_shortlisted_gallery_scores_colour_like_the_whole_one() -> None:
    """Beyond 2 x shortlist concepts only the concepts that can win are verified, on a
    subset of the gallery: colour must follow each concept there."""
    aside = FUR + 0.3 * np.eye(8, dtype=np.float32)[2]               # the greys' views a little off: the red dog
    aside /= np.linalg.norm(aside)                                     # wins the proposals and is shortlisted
    concepts = [replace(_concept(f"grey {i}", GREY), views=aside[None]) for i in range(5)] + [_concept("red dog", RED)]
    gallery = Gallery.from_concepts(concepts)
    grid = _scene(RED)
    whole = Pipeline(_NoBackbone(), RecognitionConfig(threshold=0.0, proposals=("windows",), window_scales=(0.5,),
                                                      colour_weight=0.2, shortlist=32))
    short = Pipeline(_NoBackbone(), RecognitionConfig(threshold=0.0, proposals=("windows",), window_scales=(0.5,),
                                                      colour_weight=0.2, shortlist=2))
    a, b = _scores(whole, grid, gallery), _scores(short, grid, gallery)
    assert len(b) < len(a) and "red dog" in b                           # the shortlist path was taken
    assert all(b[n] == pytest.approx(a[n]) for n in b)
    off = _scores(Pipeline(_NoBackbone(), replace(short.config, colour_weight=0.0)), grid, gallery)
    assert b["red dog"] > off["red dog"] + 0.02                         # colour counted there too


def test_consistency_counts_colour_like_the_score() -> None:
    from pekit.extract.views import consistency

    red, grey = (_concept_view(c) for c in (RED, GREY))
    # another red view of the same fur, from another angle: its patches agree at 0.8
    angle = np.array([0.8, 0.6, 0, 0, 0, 0, 0, 0], np.float32)
    turned = replace(red, embedding=angle, parts=angle[None], patches=angle[None])
    same = consistency([red, turned], colour_weight=0.2)
    assert same == pytest.approx(consistency([red, turned]) + 0.2 * (1.0 - 0.85), abs=1e-3)
    assert consistency([red, grey], colour_weight=0.2) < consistency([red, grey]) - 0.05
    # the same picture twice: colour would lift it past a whole match; it counts as one
    assert consistency([red, red], colour_weight=0.2) == pytest.approx(1.0)
    # a black-and-white print of the red dog is not a grey dog: no colour term for it
    print_ = replace(grey, achromatic=True)
    assert consistency([red, print_], colour_weight=0.2) == pytest.approx(consistency([red, print_]))
    # beside it, the colour views are still compared with one another
    mixed = [red, turned, print_]
    base = consistency(mixed)
    assert consistency(mixed, colour_weight=0.2) == pytest.approx(base + 2 / 3 * 0.2 * (1.0 - 0.85), abs=1e-3)


def test_a_scan_with_the_photo_gets_the_patch_colours() -> None:
    img = np.zeros((120, 240, 3), np.uint8)
    img[:] = RED
    grid = replace(_scene(RED), colours=None)
    assert _pipe(0.2).scan(grid, image=img).grid.colours is not None
    assert _pipe(0.0).scan(grid, image=img).grid.colours is None      # colour off: nothing computed


def test_a_black_and_white_photo_is_not_compared_by_colour() -> None:
    """A grey photo of a red dog holds no colour evidence: scored as without the colour
    term, not as a grey dog (it was 0.04-0.055 lower on real photos, enough to miss them);
    a colour photo of a grey object still compares its colour."""
    img = np.zeros((120, 240, 3), np.uint8)
    img[:] = GRASS
    img[20:100, 40:120] = RED
    bw = np.repeat(np.asarray(np.dot(img, [0.299, 0.587, 0.114]), np.uint8)[..., None], 3, axis=2)
    grid = replace(_scene(RED), colours=None)
    assert _pipe(0.2).scan(grid, image=bw).grid.colours is None
    gallery = Gallery.from_concepts([_concept("red dog", RED)])
    assert _scores(_pipe(0.2), _pipe(0.2).scan(grid, image=bw).grid, gallery)["red dog"] == \
        pytest.approx(_scores(_pipe(0.0), grid, gallery)["red dog"])
    grey_object = img.copy()
    grey_object[20:100, 40:120] = GREY
    assert _pipe(0.2).scan(grid, image=grey_object).grid.colours is not None
    small_red = np.full((480, 640, 3), 128, np.uint8)
    small_red[200:240, 300:340] = RED  # 0.5 % of a grey photo: colour enough
    assert _pipe(0.2).scan(replace(grid, colours=None), image=small_red).grid.colours is not None


def test_a_black_and_white_reference_photo_gives_its_view_no_colour() -> None:
    """Every reference grey (old prints of a late pet): no colour evidence, so colour photos
    of it are not held to its greys, until a colour photo is added. One grey photo among
    colour ones is left out of the colour term, so a grey look-alike does not agree with it
    (it did while its greys were kept as the view's colour: the best view is compared)."""
    from pekit.extract.views import with_view
    from pekit.retrieve.match import concept_colours

    grey = replace(_concept_view(GREY), achromatic=True)
    prints = concept_from_views("old prints", [grey, grey])
    assert prints.meta[COLOURS] == [None, None] and concept_colours(prints) is None
    red_scene = _scene(RED)
    assert _scores(_pipe(0.2), red_scene, Gallery.from_concepts([prints])) == \
        _scores(_pipe(0.0), red_scene, Gallery.from_concepts([prints]))   # a colour photo of it: no colour term
    later = with_view(prints, _concept_view(RED), reference="new.jpg")
    assert concept_colours(later).shape == (1, 196)                      # a colour photo added: now it has one

    mixed = concept_from_views("bo", [_concept_view(RED), grey])
    assert mixed.meta[COLOURS][1] is None and concept_colours(mixed).shape == (1, 196)
    assert len(with_view(mixed, grey, reference="print.jpg").meta[COLOURS]) == 3
    gallery = Gallery.from_concepts([mixed])
    grey_lookalike, red_bo = _scene(GREY), _scene(RED)
    off, on = _scores(_pipe(0.0), grey_lookalike, gallery), _scores(_pipe(0.2), grey_lookalike, gallery)
    assert on["bo"] < off["bo"] - 0.05                                    # the grey look-alike: colour against it
    assert _scores(_pipe(0.2), red_bo, gallery)["bo"] > _scores(_pipe(0.0), red_bo, gallery)["bo"] + 0.02


def _concept_view(colour: tuple[int, int, int]) -> View:
    grid = _scene(colour)
    weights = np.zeros((12, 24), np.float32)
    weights[2:10, 4:12] = 1
    return View(FUR, FUR[None], np.zeros(4, np.float32), weights, patches=FUR[None],
                colour=region_colour(grid.colours, weights > 0.5))
