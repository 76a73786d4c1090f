"""First-look candidates (`pekit.retrieve.candidates`): where a concept's region comes from."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from pekit.pipeline import Pipeline
from pekit.presets import RecognitionConfig
from pekit.retrieve.match import Gallery
from pekit.types import Concept, PatchGrid

from .test_extent import _NoBackbone

BO = np.eye(8, dtype=np.float32)[0]


def _scene(peak_in_lookalike: bool = False) -> PatchGrid:
    """Background (direction 1); a large look-alike on the left (half Bo, half direction 2),
    which wins Bo's proposals; Bo itself, small (2 x 2 patches), on the right."""
    f = np.zeros((12, 24, 8), np.float32)
    f[..., 1] = 1.0
    f[2:10, 1:9] = 0
    f[2:10, 1:9, 0] = 0.7
    f[2:10, 1:9, 2] = 0.7
    f[5:7, 18:20] = BO
    if peak_in_lookalike:  # a faint look-alike with two exact Bo patches in it: the seed lands there
        f[2:10, 1:9, 0] = 0.45
        f[2:10, 1:9, 2] = 0.89
        f[5, 4:6] = BO
        f[5:7, 18:20] = f[2, 1]
    return PatchGrid(f, image_size=(240, 120))


def _pipe(also: bool) -> Pipeline:
    return Pipeline(_NoBackbone(), RecognitionConfig(threshold=0.0, proposals=("windows",), window_scales=(0.5,),
                                                     part_seeds_also=also))


@pytest.fixture()
def bo() -> Gallery:
    return Gallery.from_concepts([Concept("bo", BO[None], parts=BO[None])])


def test_a_small_object_away_from_the_proposals_a_concept_won_is_found_with_part_seeds_also(bo: Gallery) -> None:
    grid = _scene()
    plain = _pipe(False).candidates(grid, bo)
    assert len(plain) == 1 and plain[0].xyxy[2] <= 100               # the look-alike on the left
    also = _pipe(True).candidates(grid, bo)
    assert len(also) == 1                                             # still one region per concept
    assert also[0].xyxy.tolist() == [180.0, 50.0, 200.0, 70.0]        # Bo's own 2 x 2 patches
    assert also[0].score > plain[0].score + 0.2


def test_a_part_seed_on_the_object_a_proposal_already_grew_changes_nothing(bo: Gallery) -> None:
    grid = _scene(peak_in_lookalike=True)
    plain, also = _pipe(False).candidates(grid, bo), _pipe(True).candidates(grid, bo)
    assert len(plain) == 1 and plain[0].xyxy.tolist() == [10.0, 20.0, 90.0, 100.0]  # the whole look-alike
    # grown from its own peak the seed would be the two exact patches, scoring higher; it
    # shares them with the proposal's region, so the whole-object box stays
    assert len(also) == 1 and also[0].score == plain[0].score
    assert also[0].xyxy.tolist() == plain[0].xyxy.tolist()


def test_a_separate_part_seed_that_scores_lower_leaves_the_proposal(bo: Gallery) -> None:
    f = np.zeros((12, 24, 8), np.float32)
    f[..., 1] = 1.0
    f[0:3, 0:3, 0], f[0:3, 0:3, 1] = 0.55, 0.835  # a faint Bo-like smudge top left...
    f[1, 1] = BO                                  # ...with the first exact Bo patch: the seed
    f[4:10, 10:20] = BO                           # Bo itself, large: wins the proposals
    grid = PatchGrid(f, image_size=(240, 120))
    also = _pipe(True).candidates(grid, bo)
    assert len(also) == 1 and also[0].xyxy.tolist() == [100.0, 40.0, 200.0, 100.0]
    assert also[0].score == _pipe(False).candidates(grid, bo)[0].score


def test_several_regions_per_concept_take_the_part_seed_too(bo: Gallery) -> None:
    """With two regions allowed, the seed's region competes with the proposals' ones like the
    single best does, so `match` (one per concept) and `recognize` agree on the best."""
    grid = _scene()
    two = _pipe(True).candidates(grid, bo, per_concept=2)
    assert two[0].xyxy.tolist() == [180.0, 50.0, 200.0, 70.0]  # best first: Bo
    assert len(two) == 2 and two[0].score > two[1].score
    pipe = Pipeline(_NoBackbone(), replace(_pipe(True).config, max_per_concept=2))
    scores, boxes, _ = pipe.match(grid, bo)
    found = pipe.recognize(grid, bo)
    assert found.score[0] == pytest.approx(scores[0]) and found.xyxy[0].tolist() == boxes[0].tolist()


def test_a_candidate_knows_its_most_concept_like_patch(bo: Gallery) -> None:
    """The second look centres a crop there when the region is too large to magnify."""
    plain = _pipe(False).candidates(_scene(peak_in_lookalike=True), bo)
    assert plain[0].peak == (5, 4)            # the first exact Bo patch inside the look-alike
    assert plain[0].region[plain[0].peak]
    also = _pipe(True).candidates(_scene(), bo)
    assert also[0].peak is not None and also[0].region[also[0].peak]
    assert also[0].peak in {(5, 18), (5, 19), (6, 18), (6, 19)}  # Bo's own 2 x 2 patches


def test_a_small_region_another_concept_agrees_with_better_is_kept_only_as_contested() -> None:
    from pekit.retrieve.candidates import first_look

    twin = np.zeros(8, np.float32)
    twin[[0, 3]] = 0.8, 0.6                        # like Bo, and more like its twin
    f = np.zeros((12, 24, 8), np.float32)
    f[..., 1], f[..., 3] = 0.995, 0.0995           # background: a little closer to the twin (it wins there)
    f[5:7, 18:20] = twin                           # a small object: 4 of 288 patches
    grid = PatchGrid(f, image_size=(240, 120))
    gallery = Gallery.from_concepts([Concept("bo", BO[None], parts=BO[None]),
                                     Concept("twin", twin[None], parts=twin[None])])
    pipe = _pipe(False)
    scan = pipe.scan(grid)
    assert [c.concept for c in first_look(pipe.config, scan, gallery)] == [1]  # Bo lost the region
    both = first_look(pipe.config, scan, gallery, contested=True)
    bo = [c for c in both if c.concept == 0]
    assert len(bo) == 1 and bo[0].contested and bo[0].region.sum() == 4
    assert not next(c for c in both if c.concept == 1).contested
    assert [c.concept for c in pipe.candidates(grid, gallery)] == [1]  # no photo, no crop: never returned


def test_a_contested_region_does_not_push_out_a_region_the_concept_won() -> None:
    from pekit.retrieve.candidates import first_look

    twin = np.zeros(8, np.float32)
    twin[[0, 3]] = 0.8, 0.6
    f = np.zeros((12, 24, 8), np.float32)
    f[..., 1], f[..., 3] = 0.995, 0.0995
    f[2:10, 1:9, 0], f[2:10, 1:9, 2] = 0.7, 0.714  # a large, fainter Bo that Bo wins
    f[5:7, 18:20] = twin                           # Bo's best patch: on its twin, which agrees better
    grid = PatchGrid(f, image_size=(240, 120))
    gallery = Gallery.from_concepts([Concept("bo", BO[None], parts=BO[None]),
                                     Concept("twin", twin[None], parts=twin[None])])
    pipe = _pipe(True)
    bo = [c for c in first_look(pipe.config, pipe.scan(grid), gallery, contested=True) if c.concept == 0]
    assert len(bo) == 1 and not bo[0].contested and bo[0].xyxy.tolist() == [10.0, 20.0, 90.0, 100.0]
