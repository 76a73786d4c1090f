"""The second look's choices, with a stand-in for the crop pass (no backbone)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from pekit.presets import RecognitionConfig
from pekit.retrieve.candidates import Candidate
from pekit.retrieve.second_look import context_box, second_look

CONFIG = replace(RecognitionConfig(), threshold=0.60, second_look=True, second_look_band=0.03,
                 second_look_above=0.01, second_look_small=0.10, second_look_small_band=0.08,
                 second_look_min_zoom=1.5, second_looks=1)


def _cand(concept: int, score: float, xyxy: tuple[float, float, float, float], share: float) -> Candidate:
    region = np.zeros((10, 10), bool)
    region.flat[: round(share * 100)] = True
    return Candidate(concept, score, np.array(xyxy, np.float32), region)


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
    assert out[0].region is found[0].region           # the first look's region is kept


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
    _, looks = second_look(CONFIG, [near, small], (640, 480), False, crops)
    assert looks == 2  # each concept alone has its own budget


def test_no_crop_that_would_not_magnify_the_object() -> None:
    whole = _cand(0, 0.59, (20, 20, 620, 460), 0.8)        # its crop is the whole photo
    out, looks = second_look(CONFIG, [whole], (640, 480), True, Crops(0.9))
    assert looks == 0 and out[0].score == 0.59
