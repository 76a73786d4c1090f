"""The second look's choices, with a stand-in for the crop pass (no backbone)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from pekit.presets import RecognitionConfig
from pekit.retrieve.candidates import Candidate
from pekit.retrieve.second_look import context_box, core_box, second_look, tile_boxes, tiled_look

CONFIG = replace(RecognitionConfig(), threshold=0.60, second_look=True, second_look_band=0.03,
                 second_look_above=0.01, second_look_small=0.10, second_look_small_band=0.08,
                 second_look_min_zoom=1.5, second_looks=1)


def _cand(concept: int, score: float, xyxy: tuple[float, float, float, float], share: float) -> Candidate:
    region = np.zeros((10, 10), bool)
    region.flat[: round(share * 100)] = True
    return Candidate(concept, score, np.array(xyxy, np.float32), region)


def _top_left(concept: int, score: float) -> Candidate:
    """A candidate on the photo's top-left quarter (box (0, 0, 320, 240), the 5 x 5 top-left patches)."""
    return _inside(concept, score, (0, 0, 320, 240), cells=(slice(0, 5), slice(0, 5)))


class Crops:
    """Records each crop; answers with a fixed candidate in crop coordinates (or nothing)."""

    def __init__(self, score: float | None) -> None:
        self.score = score
        self.boxes: list[tuple[int, int, int, int]] = []

    def __call__(self, box: tuple[int, int, int, int], concept: int) -> list[Candidate]:
        self.boxes.append(box)
        if self.score is None:
            return []
        return [_cand(concept, self.score, (10, 20, 30, 40), 0.5)]


def test_context_box_adds_half_the_size_each_side_and_stays_in_the_photo() -> None:
    assert context_box(np.array([100, 100, 200, 150]), 640, 480) == (50, 75, 250, 175)
    assert context_box(np.array([0, 0, 20, 20]), 640, 480) == (0, 0, 42, 42)  # at least 64 px, clipped
    x0, y0, x1, y1 = context_box(np.array([600, 440, 640, 480]), 640, 480)
    assert x1 == 640 and y1 == 480 and x1 > x0 and y1 > y0


def test_a_near_threshold_candidate_takes_the_crop_score_and_a_box_in_photo_coordinates() -> None:
    crops = Crops(0.71)
    found = [_cand(0, 0.585, (100, 100, 200, 150), 0.3)]
    out, looks = second_look(CONFIG, found, (640, 480), True, crops)
    assert looks == 1 and crops.boxes == [(50, 75, 250, 175)]
    assert abs(out[0].score - 0.71) < 1e-6
    assert np.allclose(out[0].xyxy, [60, 95, 80, 115])  # the crop's box moved by the crop's corner
    assert out[0].region.shape == found[0].region.shape  # the crop's region, on the photo's grid


def test_a_crop_where_the_concept_is_not_found_keeps_the_first_score() -> None:
    found = [_cand(0, 0.585, (100, 100, 200, 150), 0.3)]
    out, looks = second_look(CONFIG, found, (640, 480), True, Crops(None))
    assert looks == 1 and out[0].score == 0.585 and np.array_equal(out[0].xyxy, found[0].xyxy)


def test_who_gets_the_crop() -> None:
    far = _cand(0, 0.50, (100, 100, 200, 150), 0.3)        # large and 0.10 below: not looked at
    sure = _cand(1, 0.70, (100, 100, 200, 150), 0.3)       # large and well above: not looked at
    out, looks = second_look(CONFIG, [far, sure], (640, 480), True, Crops(0.9))
    assert looks == 0 and [c.score for c in out] == [0.50, 0.70]
    small = _cand(2, 0.53, (300, 300, 330, 330), 0.05)     # small: up to 0.08 below is looked at
    near = _cand(3, 0.59, (100, 100, 200, 150), 0.3)
    crops = Crops(0.9)
    _, looks = second_look(CONFIG, [near, small], (640, 480), True, crops)
    assert looks == 1 and crops.boxes == [context_box(near.xyxy, 640, 480)]  # one per image: the closest
    crops = Crops(0.9)
    _, looks = second_look(replace(CONFIG, second_looks=2), [near, small], (640, 480), True, crops)
    assert looks == 2 and crops.boxes[1] == context_box(small.xyxy, 640, 480)  # or second_looks, in that order
    crops = Crops(0.9)
    _, looks = second_look(CONFIG, [near, small], (640, 480), False, crops)
    assert looks == 2  # each concept alone has its own budget


def test_no_crop_that_would_not_magnify_the_object() -> None:
    whole = _cand(0, 0.59, (20, 20, 620, 460), 0.8)        # its crop is the whole photo
    out, looks = second_look(CONFIG, [whole], (640, 480), True, Crops(0.9))
    assert looks == 0 and out[0].score == 0.59


class Scene:
    """A crop pass that finds fixed candidates (crop coordinates) of several concepts."""

    def __init__(self, *found: Candidate) -> None:
        self.found = list(found)
        self.boxes: list[tuple[int, int, int, int]] = []

    def __call__(self, box: tuple[int, int, int, int], concept: int) -> list[Candidate]:
        self.boxes.append(box)
        return self.found


def _on_crop(concept: int, score: float, xyxy: tuple[float, float, float, float],
             shape: tuple[int, int] = (20, 20)) -> Candidate:
    """A crop candidate whose region is the patches under ``xyxy`` on a 200 x 100 px crop."""
    h, w = shape
    region = np.zeros(shape, bool)
    x0, y0, x1, y1 = xyxy
    region[int(y0 / 100 * h):int(np.ceil(y1 / 100 * h)), int(x0 / 200 * w):int(np.ceil(x1 / 200 * w))] = True
    return Candidate(concept, score, np.array(xyxy, np.float32), region)


OTHERS = replace(CONFIG, second_look_others=True)


def test_the_crop_is_a_second_look_for_every_concept_on_it() -> None:
    near = _cand(0, 0.59, (100, 100, 200, 150), 0.3)    # triggers the crop (50, 75, 250, 175)
    weak = _cand(1, 0.40, (400, 300, 500, 400), 0.2)    # concept 1's first look: elsewhere, low
    scene = Scene(_on_crop(0, 0.70, (50, 25, 150, 75)),  # concept 0, magnified
                  _on_crop(1, 0.66, (10, 10, 40, 40)),   # concept 1: a small object beside it
                  _on_crop(2, 0.62, (140, 20, 200, 100)))  # concept 2: no first-look candidate at all
    out, looks = second_look(OTHERS, [near, weak], (640, 480), True, scene)
    assert looks == 1 and len(scene.boxes) == 1          # still one pass
    by = {c.concept: c for c in out}
    assert [c.concept for c in out] == [0, 1, 2]         # found's order, then the new ones
    assert abs(by[1].score - 0.66) < 1e-6 and np.allclose(by[1].xyxy, [60, 85, 90, 115])
    assert abs(by[2].score - 0.62) < 1e-6 and np.allclose(by[2].xyxy, [190, 95, 250, 175])
    # each region is the crop's, on the photo's 10 x 10 grid (64 x 48 px patches)
    assert np.argwhere(by[1].region).tolist() == [[2, 1]]
    assert np.argwhere(by[2].region).tolist() == [[2, 3], [3, 3]]


def test_a_crop_does_not_lower_another_concept_nor_act_without_competition() -> None:
    near = _cand(0, 0.59, (100, 100, 200, 150), 0.3)
    sure = _cand(1, 0.75, (400, 300, 500, 400), 0.2)
    scene = Scene(_on_crop(1, 0.61, (10, 10, 40, 40)), _on_crop(2, 0.65, (150, 50, 190, 90)))
    out, _ = second_look(OTHERS, [near, sure], (640, 480), True, scene)
    assert out[1] is sure and [c.concept for c in out] == [0, 1, 2]  # the higher first look stays
    alone, _ = second_look(OTHERS, [near], (640, 480), False, scene)  # each concept scored alone
    assert [c.concept for c in alone] == [0]
    off, _ = second_look(CONFIG, [near, sure], (640, 480), True, scene)  # option off
    assert [c.concept for c in off] == [0, 1] and off[1] is sure


def test_an_object_smaller_than_a_patch_keeps_a_region_on_the_photo_grid() -> None:
    near = _cand(0, 0.59, (100, 100, 200, 150), 0.3)
    tiny = Candidate(2, 0.7, np.array([100, 40, 104, 44], np.float32), np.zeros((20, 20), bool))
    out, _ = second_look(OTHERS, [near], (640, 480), True, Scene(tiny))
    assert np.argwhere(out[1].region).tolist() == [[2, 2]]  # the patch under the box's centre


def test_a_concept_allowed_twice_keeps_its_first_instance_and_gains_the_crops() -> None:
    near = _cand(0, 0.59, (100, 100, 200, 150), 0.3)
    mug = _cand(1, 0.80, (400, 300, 500, 400), 0.2)      # one mug, far from the crop
    scene = Scene(_on_crop(1, 0.70, (10, 10, 40, 40)))   # a second mug beside the first candidate
    once, _ = second_look(OTHERS, [near, mug], (640, 480), True, scene)
    assert [c.concept for c in once] == [0, 1] and once[1] is mug  # at most once: the better stays
    twice, _ = second_look(OTHERS, [near, mug], (640, 480), True, scene, per_concept=2)
    assert [c.concept for c in twice] == [0, 1, 1] and twice[1] is mug
    assert np.allclose(twice[2].xyxy, [60, 85, 90, 115])
    # a crop's find that overlaps the concept's candidate is the same object: it replaces it
    low = _cand(1, 0.50, (40, 70, 100, 130), 0.1)
    same, _ = second_look(OTHERS, [near, low], (640, 480), True, scene, per_concept=2)
    assert [c.concept for c in same] == [0, 1] and abs(same[1].score - 0.70) < 1e-6


def test_the_crop_region_replaces_the_first_look_region_on_the_photo_grid() -> None:
    near = _cand(0, 0.59, (100, 100, 200, 150), 0.3)      # crop (50, 75, 250, 175), 200 x 100 px
    out, _ = second_look(CONFIG, [near], (640, 480), True, Scene(_on_crop(0, 0.7, (40, 20, 160, 100))))
    # photo box (90, 95, 210, 175); the 64 x 48 px patches whose centres fall on it
    assert np.allclose(out[0].xyxy, [90, 95, 210, 175])
    assert np.argwhere(out[0].region).tolist() == [[2, 1], [2, 2], [3, 1], [3, 2]]


def test_a_candidate_raised_by_another_crop_is_not_looked_at_again() -> None:
    near = _cand(0, 0.595, (100, 100, 200, 150), 0.3)
    other = _cand(1, 0.585, (400, 300, 500, 400), 0.3)   # next in line for a crop of its own
    scene = Scene(_on_crop(0, 0.70, (50, 25, 150, 75)), _on_crop(1, 0.75, (10, 10, 40, 40)))
    out, looks = second_look(replace(OTHERS, second_looks=2), [near, other], (640, 480), True, scene)
    assert looks == 1 and len(scene.boxes) == 1           # its score came from the first crop
    assert abs(out[1].score - 0.75) < 1e-6


CORE = replace(CONFIG, second_look_core=True)
SKIP = replace(CONFIG, second_look_skip_named=True)


def test_a_box_too_large_to_magnify_is_looked_at_around_its_most_concept_like_patch() -> None:
    # the region grew over most of the photo (a small object merged with its surroundings),
    # but the patch most like the concept is (2, 7): top right on the 10 x 10 grid
    grown = replace(_cand(0, 0.605, (20, 20, 620, 460), 0.8), peak=(2, 7))  # just named: re-judged
    crops = Crops(0.7)
    out, looks = second_look(CORE, [grown], (640, 480), True, crops)
    # the crop that magnifies exactly 1.5x (427 x 320 px), centred on that patch as far as
    # the photo allows (patch centre (480, 120): against the right and top edges)
    assert looks == 1 and crops.boxes == [(213, 0, 640, 320)]
    assert abs(out[0].score - 0.7) < 1e-6 and np.allclose(out[0].xyxy, [223, 20, 243, 40])
    off, looks = second_look(CONFIG, [grown], (640, 480), True, Crops(0.7))  # option off: as before
    assert looks == 0 and off[0] is grown
    unknown, looks = second_look(CORE, [_cand(0, 0.605, (20, 20, 620, 460), 0.8)], (640, 480), True, Crops(0.7))
    assert looks == 0 and unknown[0].score == 0.605  # no peak known: nowhere to look


def test_a_crop_around_the_core_re_judges_a_large_candidate_but_does_not_rescue_it() -> None:
    # under the threshold, a large region's partial view would only raise it (look-alikes too)
    under = replace(_cand(0, 0.59, (20, 20, 620, 460), 0.8), peak=(2, 7))
    assert second_look(CORE, [under], (640, 480), True, Crops(0.7))[1] == 0
    crops = Crops(0.7)
    assert second_look(replace(CORE, second_look_core_below=True), [under], (640, 480), True, crops)[1] == 1
    assert crops.boxes == [(213, 0, 640, 320)]
    # a small region (under a tenth of the grid) spread over a wide box is rescued as before
    sparse = replace(_cand(0, 0.55, (20, 20, 620, 460), 0.05), peak=(2, 7))
    assert second_look(CORE, [sparse], (640, 480), True, Crops(0.7))[1] == 1


def test_a_crop_that_magnifies_the_whole_object_comes_before_one_around_a_patch() -> None:
    grown = replace(_cand(0, 0.600, (20, 20, 620, 460), 0.8), peak=(2, 7))  # closest to τ, but too large
    small = _cand(1, 0.53, (300, 300, 330, 330), 0.05)
    crops = Crops(0.9)
    _, looks = second_look(CORE, [grown, small], (640, 480), True, crops)
    assert looks == 1 and crops.boxes == [context_box(small.xyxy, 640, 480)]  # one per image: the small one


def test_no_pass_is_spent_on_what_is_already_named() -> None:
    dog = _top_left(0, 0.80)                                         # named with confidence, top left
    lookalike = replace(_cand(1, 0.59, (100, 100, 200, 150), 0.3), peak=(3, 2))  # its best patch: on the dog
    elsewhere = replace(_cand(2, 0.585, (400, 300, 500, 400), 0.3), peak=(7, 7))
    crops = Crops(0.9)
    _, looks = second_look(SKIP, [dog, lookalike, elsewhere], (640, 480), True, crops)
    assert looks == 1 and crops.boxes == [context_box(elsewhere.xyxy, 640, 480)]
    crops = Crops(0.9)
    second_look(CONFIG, [dog, lookalike, elsewhere], (640, 480), True, crops)  # option off
    assert crops.boxes == [context_box(lookalike.xyxy, 640, 480)]  # the closest to τ, on the dog
    # nor on a small candidate already named with confidence (it is looked at without the option)
    sure_small = replace(_cand(0, 0.75, (300, 300, 330, 330), 0.05), peak=(0, 0))
    assert second_look(SKIP, [sure_small], (640, 480), True, Crops(0.9))[1] == 0
    assert second_look(CONFIG, [sure_small], (640, 480), True, Crops(0.9))[1] == 1


def test_each_concept_alone_is_not_explained_by_another() -> None:
    dog = _top_left(0, 0.80)
    lookalike = replace(_cand(1, 0.59, (100, 100, 200, 150), 0.3), peak=(3, 2))
    crops = Crops(0.9)
    _, looks = second_look(SKIP, [dog, lookalike], (640, 480), False, crops)
    assert looks == 1 and crops.boxes == [context_box(lookalike.xyxy, 640, 480)]  # no competition: its own crop


def test_the_core_crop_is_centred_on_the_patch_and_needs_a_photo_large_enough() -> None:
    # an 8 x 12 grid over 640 x 480 px: patch (3, 5) has its centre at (293.3, 210)
    assert core_box((3, 5), (8, 12), 640, 480, 1.5) == (80, 50, 507, 370)
    assert core_box((3, 5), (8, 12), 90, 60, 1.5) is None       # its crop would be under 64 px
    assert core_box((3, 5), (8, 12), 640, 480, 1.0) is None      # magnifies nothing
    grown = replace(_cand(0, 0.59, (5, 5, 85, 55), 0.8), peak=(2, 7))
    assert second_look(CORE, [grown], (90, 60), True, Crops(0.9))[1] == 0  # a thumbnail: no pass


def test_each_concept_alone_is_still_explained_by_its_own_named_region() -> None:
    mug = _top_left(0, 0.80)                                      # one mug, named
    again = replace(_cand(0, 0.59, (100, 100, 200, 150), 0.3), peak=(3, 2))  # the same concept, on it
    assert second_look(SKIP, [mug, again], (640, 480), False, Crops(0.9))[1] == 0
    assert second_look(CONFIG, [mug, again], (640, 480), False, Crops(0.9))[1] == 1


def test_the_bands_are_read_against_a_concept_own_threshold() -> None:
    strict = _cand(0, 0.69, (100, 100, 200, 150), 0.3)   # its own threshold is 0.70: just under it
    own = np.array([0.70], np.float32)
    crops = Crops(0.75)
    out, looks = second_look(SKIP, [strict], (640, 480), True, crops,
                             thresholds=own)
    assert looks == 1 and abs(out[0].score - 0.75) < 1e-6
    # read against the global 0.60 it would count as named with confidence: no crop
    assert second_look(SKIP, [strict], (640, 480), True, Crops(0.75))[1] == 0
    # NaN: the global threshold
    assert second_look(SKIP, [strict], (640, 480), True, Crops(0.75),
                       thresholds=np.array([np.nan], np.float32))[1] == 0


def test_a_contested_small_region_is_only_a_reason_to_look() -> None:
    # another concept's parts agree better with it (region-level competition would drop it):
    # never named on the first look's evidence, whatever its score; the crop's pass decides
    contested = replace(_cand(0, 0.66, (300, 300, 330, 330), 0.05), contested=True)
    out, looks = second_look(CONFIG, [contested], (640, 480), True, Crops(None))
    assert looks == 1 and out == []                                  # not found on the crop: gone
    out, looks = second_look(CONFIG, [contested], (640, 480), True, Crops(0.71))
    assert looks == 1 and len(out) == 1 and not out[0].contested and abs(out[0].score - 0.71) < 1e-6
    near = _cand(1, 0.598, (100, 100, 200, 150), 0.3)                # closer to τ: takes the one crop
    lower = replace(contested, score=0.55)
    out, looks = second_look(CONFIG, [near, lower], (640, 480), True, Crops(0.9))
    assert looks == 1 and [c.concept for c in out] == [1]           # no crop left: dropped, not named


def test_a_contested_region_explains_nothing() -> None:
    contested = replace(_cand(0, 0.80, (0, 0, 320, 240), 0.05), contested=True)
    contested.region[:] = False
    contested.region[2:4, 1:4] = True
    lookalike = replace(_cand(1, 0.59, (100, 100, 200, 150), 0.3), peak=(3, 2))  # its best patch: on it
    crops = Crops(0.9)
    second_look(replace(SKIP, second_looks=2), [contested, lookalike], (640, 480), True, crops)
    assert context_box(lookalike.xyxy, 640, 480) in crops.boxes


def test_another_concept_found_on_a_crop_confirms_its_contested_region() -> None:
    near = _cand(0, 0.60, (100, 100, 200, 150), 0.3)                 # first in line: the crop (50, 75, 250, 175)
    contested = replace(_cand(1, 0.70, (60, 85, 90, 115), 0.01), contested=True)
    scene = Scene(_on_crop(1, 0.64, (10, 10, 40, 40)))              # concept 1 wins there, lower
    out, _ = second_look(OTHERS, [near, contested], (640, 480), True, scene)
    assert scene.boxes == [(50, 75, 250, 175)]
    assert [c.concept for c in out] == [0, 1] and not out[1].contested and abs(out[1].score - 0.64) < 1e-6


def test_a_contested_region_holds_no_slot_of_its_concept() -> None:
    near = _cand(0, 0.59, (100, 100, 200, 150), 0.3)                 # the crop (50, 75, 250, 175)
    named = _top_left(2, 0.80)
    mug = _cand(1, 0.70, (400, 300, 500, 400), 0.02)                 # concept 1, named elsewhere
    contested = replace(_cand(1, 0.75, (20, 20, 60, 60), 0.02), contested=True, peak=(0, 0))  # on the named one
    scene = Scene(_on_crop(1, 0.72, (10, 10, 40, 40)))              # a second mug beside `near`
    out, _ = second_look(replace(OTHERS, second_look_skip_named=True), [near, named, mug, contested],
                         (640, 480), True, scene, per_concept=2)
    assert [(c.concept, round(c.score, 2)) for c in out] == [(0, 0.59), (2, 0.8), (1, 0.7), (1, 0.72)]


def test_no_second_crop_of_a_place_a_crop_already_magnified_for_every_concept() -> None:
    near = _cand(0, 0.59, (100, 100, 200, 150), 0.3)     # the crop (50, 75, 250, 175): 200 px
    inner = _cand(1, 0.56, (110, 105, 190, 155), 0.05)   # inside it; its own crop: 160 x 100, not 1.5x closer
    far = _cand(2, 0.585, (400, 300, 500, 400), 0.3)     # elsewhere
    seen = replace(OTHERS, second_looks=3, second_look_seen=True)
    scene = Scene()
    out, looks = second_look(seen, [near, inner, far], (640, 480), True, scene)
    assert looks == 2 and scene.boxes == [(50, 75, 250, 175), (350, 250, 550, 450)]
    assert out[1] is inner                               # its first look stands
    again = Scene()
    _, looks = second_look(replace(seen, second_look_seen=False), [near, inner, far], (640, 480), True, again)
    assert looks == 3 and again.boxes[1] == (70, 80, 230, 180)
    # a smaller object there is magnified 1.5x more by its own crop (80 x 64 against 200 x 100:
    # every pass gets as many pixels, so sqrt(20000 / 5120) = 1.98x): it gets it
    tiny = _cand(1, 0.56, (130, 115, 170, 145), 0.05)
    closer = Scene()
    _, looks = second_look(seen, [near, tiny], (640, 480), True, closer)
    assert looks == 2 and closer.boxes[1] == (110, 98, 190, 162)
    # one whose own crop (120 x 100) is 1.67x shorter but only 1.29x closer is seen already
    _, looks = second_look(seen, [near, _cand(1, 0.56, (120, 110, 180, 160), 0.05)], (640, 480), True, Scene())
    assert looks == 1
    # scored alone, the first crop matched only its own concept: the second still looks
    _, looks = second_look(seen, [near, inner], (640, 480), False, Scene())
    assert looks == 2


# ---- the tiled look (offline-thorough) ----------------------------------------------------------
TILED = replace(CONFIG, tiled_look=2, tiled_look_cover=0.6)


def _inside(concept: int, score: float, xyxy: tuple[float, float, float, float], *, contested: bool = False,
            cells: tuple[slice, slice] = (slice(4, 6), slice(4, 6))) -> Candidate:
    """A candidate found on a tile, its region (on the tile's 10 x 10 grid) away from the tile's edges."""
    region = np.zeros((10, 10), bool)
    region[cells] = True
    return Candidate(concept, score, np.array(xyxy, np.float32), region, contested=contested)


class Tiles:
    """Records each tile; answers with ``answers[i]`` (candidates in tile coordinates) on the i-th tile."""

    def __init__(self, answers: dict[int, list[Candidate]]) -> None:
        self.answers = answers
        self.boxes: list[tuple[int, int, int, int]] = []

    def __call__(self, box: tuple[int, int, int, int]) -> list[Candidate]:
        self.boxes.append(box)
        return self.answers.get(len(self.boxes) - 1, [])


def test_tiles_cover_the_photo_overlap_and_magnify() -> None:
    tiles = tile_boxes(640, 480, 2, 0.6)
    assert tiles == [(0, 0, 384, 288), (256, 0, 640, 288), (0, 192, 384, 480), (256, 192, 640, 480)]
    covered = np.zeros((480, 640), int)
    for x0, y0, x1, y1 in tiles:
        covered[y0:y1, x0:x1] += 1
    assert covered.min() >= 1 and covered.max() == 4  # every pixel seen; the middle by all four
    # an object up to (2 * 0.6 - 1) of the photo's side, anywhere, lies whole in one tile
    assert all(any(x0 <= x and x + 128 <= x1 and y0 <= y and y + 96 <= y1 for x0, y0, x1, y1 in tiles)
               for x in range(0, 640 - 128, 16) for y in range(0, 480 - 96, 16))
    assert len(tile_boxes(640, 480, 3, 0.4)) == 9


def test_a_photo_a_pixel_or_two_across_is_not_tiled_twice_over_the_same_pixels() -> None:
    # a 1 x 1 photo's four tiles were all the photo itself, a 4000 x 1 strip's two pairs of
    # equal tiles: offline-thorough spent four passes (about 8 s) on a one-pixel photo for nothing
    assert tile_boxes(1, 1, 2, 0.6) == []
    assert tile_boxes(4000, 1, 2, 0.6) == [(0, 0, 2400, 1), (1600, 0, 4000, 1)]
    assert tile_boxes(1, 50, 3, 0.4) == [(0, 0, 1, 20), (0, 15, 1, 35), (0, 30, 1, 50)]
    tiles = Tiles({})
    out, passes = tiled_look(TILED, [], (1, 1), (32, 32), tiles)
    assert (out, passes, tiles.boxes) == ([], 0, [])


def test_a_photo_too_small_for_a_crop_gets_no_tile_passes() -> None:
    """A 13 x 15 photo's tiles are 8 x 9 pixels: offline-thorough spent four passes on them. No
    tile whose long side is under MIN_CROP_SIDE (the size core_box wants of a crop) is embedded."""
    from pekit.retrieve.second_look import MIN_CROP_SIDE

    assert core_box((0, 0), (1, 1), 13, 15, 1.5) is None      # the same minimum refuses its crops
    for size in [(13, 15), (100, 105), (1, 50)]:              # tiles 8 x 9, 60 x 63, 1 x 30
        tiles = Tiles({})
        found = [_cand(0, 0.7, (0, 0, 5, 5), 0.5)]
        out, passes = tiled_look(TILED, found, size, (1, 1), tiles)
        assert (passes, tiles.boxes) == (0, []) and out == found
    tiles = Tiles({})                                         # tiles 64 x 64: the smallest embedded
    _, passes = tiled_look(TILED, [], (107, 107), (8, 8), tiles)
    assert passes == 4 and tiles.boxes == tile_boxes(107, 107, 2, 0.6)
    assert all(max(x1 - x0, y1 - y0) >= MIN_CROP_SIDE == 64 for x0, y0, x1, y1 in tiles.boxes)
    tiles = Tiles({})                                         # a normal photo still gets its four
    _, passes = tiled_look(TILED, [], (640, 480), (10, 10), tiles)
    assert passes == 4 and len(tiles.boxes) == 4


def test_a_tiled_look_finds_what_the_first_look_gave_no_candidate() -> None:
    tiles = Tiles({3: [_inside(1, 0.72, (10, 20, 60, 50))]})  # concept 1 on the bottom-right tile only
    found = [_cand(0, 0.80, (0, 0, 300, 200), 0.3)]  # concept 0, named at the first look
    out, passes = tiled_look(TILED, found, (640, 480), (10, 10), tiles)
    assert passes == 4 and tiles.boxes == tile_boxes(640, 480, 2, 0.6)
    assert out[0] is found[0]
    assert out[1].concept == 1 and abs(out[1].score - 0.72) < 1e-6
    assert np.allclose(out[1].xyxy, [266, 212, 316, 242])  # moved by the tile's corner (256, 192)
    assert out[1].region.shape == (10, 10) and out[1].region.any()  # on the photo's grid


def test_a_tile_replaces_a_weaker_or_contested_region_and_keeps_a_stronger_one() -> None:
    weak = _cand(0, 0.55, (20, 20, 120, 120), 0.1)
    contested = _inside(1, 0.58, (400, 300, 500, 400), contested=True)
    strong = _cand(2, 0.90, (300, 20, 400, 120), 0.1)
    tiles = Tiles({0: [_inside(0, 0.70, (20, 20, 120, 120)), _inside(2, 0.61, (44, 20, 144, 120))],
                   3: [_inside(1, 0.50, (144, 108, 244, 208))]})
    out, _ = tiled_look(TILED, [weak, contested, strong], (640, 480), (10, 10), tiles)
    assert abs(out[0].score - 0.70) < 1e-6  # a higher score on the tile, over the same object
    assert not out[1].contested and abs(out[1].score - 0.50) < 1e-6  # the tile decided the contested region
    assert out[2] is strong  # a lower score on the tile does not lower a name
    assert len(out) == 3


def test_a_region_cut_by_a_tile_edge_inside_the_photo_is_dropped() -> None:
    # the top-left tile (0, 0, 384, 288): its left and top edges are the photo's, its right and bottom are not
    at_photo_edge = _inside(0, 0.75, (0, 0, 76, 57), cells=(slice(0, 2), slice(0, 2)))
    at_tile_edge = _inside(1, 0.75, (307, 100, 384, 160), cells=(slice(3, 6), slice(8, 10)))
    tiles = Tiles({0: [at_photo_edge, at_tile_edge]})
    out, _ = tiled_look(TILED, [], (640, 480), (10, 10), tiles)
    assert [c.concept for c in out] == [0]  # a large object's part, cut by the tile, is left to the first look


def test_no_tiles_unless_asked_for() -> None:
    tiles = Tiles({})
    found = [_cand(0, 0.80, (0, 0, 300, 200), 0.3)]
    out, passes = tiled_look(CONFIG, found, (640, 480), (10, 10), tiles)
    assert passes == 0 and tiles.boxes == [] and out == found


def test_a_thin_object_s_crop_magnifies_by_its_area_not_its_long_side() -> None:
    """Every pass gets about as many pixels, so a strip as wide as the photo is still
    magnified (sqrt of the area ratio): a 700 x 60 box in a 1000 x 1000 photo gets its own
    context crop (2.9x), not a 1.5x crop around its core that cuts it."""
    strip = _cand(0, 0.605, (150, 470, 850, 530), 0.05)
    strip.peak = (5, 5)
    scene = Scene()
    _, looks = second_look(replace(CONFIG, second_look_core=True), [strip], (1000, 1000), True, scene)
    assert looks == 1 and scene.boxes == [(0, 440, 1000, 560)]


def _small(concept: int, score: float, xyxy: tuple[float, float, float, float], cells: tuple[slice, slice],
           contested: bool = False) -> Candidate:
    """A small region on the 32 x 32 grid of a 640 x 640 photo (20 px patches)."""
    region = np.zeros((32, 32), bool)
    region[cells] = True
    return Candidate(concept, score, np.asarray(xyxy, np.float32), region, None, contested)


def test_a_concept_is_named_at_most_max_per_concept_times_after_the_crops_and_tiles() -> None:
    """A contested region holds none of its concept's slots, so another concept's crop may add
    that concept elsewhere; when the region's own crop then confirms it, the concept held
    two regions at max_per_concept = 1, both named. Its best one stays."""
    from pekit.presets import get_preset

    cfg = get_preset("offline").recognition
    mug = _small(0, 0.595, (100, 300, 200, 400), (slice(15, 20), slice(5, 10)))
    bo = _small(1, 0.56, (500, 100, 560, 160), (slice(5, 8), slice(25, 28)), contested=True)

    def look(box: tuple[int, int, int, int], concept: int) -> list[Candidate]:
        if concept == 0:  # the mug's crop: the mug, and Bo beside it
            return [Candidate(0, 0.65, np.array([50, 50, 150, 150], np.float32), np.ones((4, 4), bool)),
                    Candidate(1, 0.66, np.array([150, 0, 200, 40], np.float32), np.ones((4, 4), bool))]
        return [Candidate(1, 0.70, np.array([40, 40, 100, 100], np.float32), np.ones((4, 4), bool))]

    out, looks = second_look(cfg, [mug, bo], (640, 640), True, look, per_concept=cfg.max_per_concept,
                             thresholds=np.array([np.nan, np.nan], np.float32))
    assert looks == 2 and sorted((c.concept, round(c.score, 2)) for c in out) == [(0, 0.65), (1, 0.7)]

    thorough = get_preset("offline-thorough").recognition
    bo = _small(1, 0.56, (500, 100, 560, 160), (slice(5, 8), slice(25, 28)), contested=True)

    def tile(box: tuple[int, int, int, int]) -> list[Candidate]:
        region = np.zeros((32, 32), bool)
        region[10:14, 10:14] = True
        if box[:2] == (0, 0):  # Bo at the top left
            return [Candidate(1, 0.66, np.array([100, 100, 160, 160], np.float32), region)]
        if box[:2] == (256, 0):  # Bo over the contested region
            return [Candidate(1, 0.70, np.array([500 - 256, 100, 560 - 256, 160], np.float32), region)]
        return []

    out, _ = tiled_look(thorough, [bo], (640, 640), (32, 32), tile, per_concept=thorough.max_per_concept)
    assert [(c.concept, round(c.score, 2)) for c in out if not c.contested] == [(1, 0.7)]
