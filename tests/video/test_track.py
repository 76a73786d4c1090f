"""`pekit.video.track`: linking, bridged gaps, name smoothing, separate concepts."""

from __future__ import annotations

import numpy as np
import pytest

from pekit.errors import InvalidInputError
from pekit.types import Detections
from pekit.video import Tracker


def dets(*items: tuple[str, tuple[float, float, float, float], float]) -> Detections:
    if not items:
        return Detections.empty()
    return Detections(xyxy=[b for _, b, _ in items], name=[n for n, _, _ in items], score=[s for _, _, s in items],
                      concept_id=[{"Bo": 1, "Rex": 2, "Lin": 3}[n] for n, _, _ in items])


BOX = (10.0, 10.0, 50.0, 50.0)
MOVED = (14.0, 12.0, 54.0, 52.0)
ELSEWHERE = (200.0, 100.0, 240.0, 140.0)


def run(frames: list[Detections], step: float = 0.5, **kw: float) -> list:
    t = Tracker(**kw)
    for i, d in enumerate(frames):
        t.update(i, i * step, d)
    return t.finish()


def test_one_wrong_frame_does_not_rename_a_track() -> None:
    tracks = run([dets(("Bo", BOX, 0.8)), dets(("Rex", MOVED, 0.6)), dets(("Bo", BOX, 0.7))])
    assert [(t.name, t.start, t.end, t.frames, t.concept_id) for t in tracks] == [("Bo", 0.0, 1.0, 3, 1)]
    assert tracks[0].score == pytest.approx(0.75) and tracks[0].best_frame == 0


def test_short_gaps_are_bridged_long_ones_split() -> None:
    short = run([dets(("Bo", BOX, 0.8)), dets(), dets(("Bo", MOVED, 0.8))], max_gap=1.0)
    assert len(short) == 1
    long = run([dets(("Bo", BOX, 0.8)), dets(), dets(), dets(), dets(("Bo", BOX, 0.8))], max_gap=1.0)
    assert [(t.start, t.end) for t in long] == [(0.0, 0.0), (2.0, 2.0)]


def test_a_concept_that_jumps_keeps_its_track_two_concepts_stay_apart() -> None:
    tracks = run([dets(("Bo", BOX, 0.8), ("Lin", ELSEWHERE, 0.5)),
                  dets(("Bo", ELSEWHERE, 0.8), ("Lin", BOX, 0.5))])  # they swap places (a cut)
    assert sorted((t.name, t.frames) for t in tracks) == [("Bo", 2), ("Lin", 2)]


def test_update_reports_track_ids_and_best() -> None:
    t = Tracker()
    assert t.update(0, 0.0, dets(("Bo", BOX, 0.5))) == [(1, True)]
    assert t.update(1, 0.5, dets(("Bo", BOX, 0.4))) == [(1, False)]
    assert t.update(2, 1.0, dets(("Bo", BOX, 0.9), ("Rex", ELSEWHERE, 0.9))) == [(1, True), (2, True)]
    assert t.update(3, 1.5, Detections.empty()) == []
    assert np.allclose(t.finish()[0].best_box, BOX)


def test_weak_frames_extend_a_track_before_and_after_its_strong_ones() -> None:
    t = Tracker(max_gap=1.0)
    for i, strong in enumerate([False, False, True, False, True, False]):
        t.update(i, i * 0.5, dets(("Bo", BOX if i % 2 else MOVED, 0.55)), strong=[strong])
    assert [(tr.name, tr.start, tr.end, tr.frames, tr.id) for tr in t.finish()] == [("Bo", 0.0, 2.5, 6, 1)]


def test_weak_detections_alone_or_elsewhere_never_make_a_track() -> None:
    t = Tracker(max_gap=1.0)
    keys = []
    for i in range(4):  # a weak look-alike far from Bo in every frame, and a weak Rex that never confirms
        keys.append(t.update(i, i * 0.5, dets(("Bo", BOX, 0.9), ("Bo", ELSEWHERE, 0.55), ("Rex", MOVED, 0.5)),
                             strong=[True, False, False]))
    tracks = t.finish()
    assert [(tr.name, tr.start, tr.end, tr.frames, tr.id) for tr in tracks] == [("Bo", 0.0, 1.5, 4, 1)]
    assert {k for frame in keys for k, _ in frame} == {1, 2, 3}  # streaming keys; only track 1 is kept


def test_strong_flags_must_match_the_detections() -> None:
    with pytest.raises(InvalidInputError, match="one flag per detection"):
        Tracker().update(0, 0.0, dets(("Bo", BOX, 0.8)), strong=[True, False])


def looks(*items: tuple[str, tuple[float, float, float, float], float, int]) -> Detections:
    """Detections with region embeddings: the last field picks one of two appearances."""
    looks_like = np.eye(2, 8, dtype=np.float32)
    return Detections(xyxy=[b for _, b, _, _ in items], name=[n for n, _, _, _ in items],
                      score=[s for _, _, s, _ in items], concept_id=[{"Bo": 1, "Rex": 2}[n] for n, *_ in items],
                      embedding=np.stack([looks_like[a] for *_, a in items]))


def test_appearance_keeps_crossing_objects_apart_and_follows_a_jump() -> None:
    # Bo and a misnamed frame of Rex cross: same place, another look -> not merged into Bo's track
    crossing = run([looks(("Bo", BOX, 0.8, 0)), looks(("Bo", BOX, 0.8, 0)), looks(("Rex", MOVED, 0.8, 1)),
                    looks(("Bo", BOX, 0.8, 0))])
    assert sorted(t.name for t in crossing) == ["Bo", "Rex"]
    # without embeddings the overlap alone would link it (and the vote keeps the name Bo)
    blind = run([dets(("Bo", BOX, 0.8)), dets(("Bo", BOX, 0.8)), dets(("Rex", MOVED, 0.8)), dets(("Bo", BOX, 0.8))])
    assert [t.name for t in blind] == ["Bo"]
    # one frame named wrongly far from the last box, but looking the same: the same track
    jump = run([looks(("Bo", BOX, 0.8, 0)), looks(("Bo", BOX, 0.8, 0)), looks(("Rex", ELSEWHERE, 0.7, 0)),
                looks(("Bo", ELSEWHERE, 0.8, 0))])
    assert [(t.name, t.frames) for t in jump] == [("Bo", 4)]
