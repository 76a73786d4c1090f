"""The feedback benchmark (`pekit.eval.feedback`) end to end on the real offline pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from pekit.eval.cache import GridCache
from pekit.eval.datasets import load_dataset
from pekit.eval.feedback import run_feedback


def _photos(root: Path, name: str, image: np.ndarray) -> None:
    """Three photos of one thing: as it is, mirrored, and a centred crop of 85 %."""
    h, w = image.shape[:2]
    crop = image[int(h * 0.075):int(h * 0.925), int(w * 0.075):int(w * 0.925)]
    (root / name).mkdir(parents=True)
    for i, variant in enumerate((image, image[:, ::-1], crop)):
        Image.fromarray(np.ascontiguousarray(variant)).save(root / name / f"{i:02d}.png")


def test_feedback_makes_views_as_introduce_and_scores_as_recognize(tmp_path: Path, offline_pipeline: Any,
                                                                  chelsea: np.ndarray, coffee: np.ndarray,
                                                                  astronaut: np.ndarray) -> None:
    for name, image in (("cat", chelsea), ("cup", coffee), ("astronaut", astronaut)):
        _photos(tmp_path / "db", name, image)
    made: list[Any] = []
    looked: list[Any] = []
    real, real_candidates = offline_pipeline.reference, offline_pipeline.candidates

    def reference(grid: Any, **kw: Any) -> Any:
        made.append(kw)
        return real(grid, **kw)

    def candidates(scan: Any, gallery: Any, **kw: Any) -> Any:  # what recognize runs: the photo for the crops
        looked.append((kw.get("image"), offline_pipeline.crop_grids))
        return real_candidates(scan, gallery, **kw)

    cache = GridCache(None, offline_pipeline.fingerprint, memory_items=1 << 10)
    mp = pytest.MonkeyPatch()
    mp.setattr(offline_pipeline, "reference", reference)
    mp.setattr(offline_pipeline, "candidates", candidates)
    try:
        table = run_feedback(load_dataset(f"folder:{tmp_path / 'db'}"), offline_pipeline, k=2, seeds=1,
                             corrections=1, cache=cache, progress=False)
    finally:
        mp.undo()
    assert len(made) == 3 * 2  # two references per concept
    assert all(isinstance(kw.get("image"), np.ndarray) and kw.get("zoomed") is not None for kw in made)
    # test photos found as recognize finds them (second look from the photo, crops memoised), memo let go after
    assert looked and all(isinstance(image, np.ndarray) and memo is not None for image, memo in looked)
    assert offline_pipeline.crop_grids is None
    assert sorted(table) == [0, 1]
    for n, row in table.items():
        assert row["negative"] == pytest.approx(1.0)  # a cup is not the cat, nor the astronaut
        assert 0 <= row["corrected"] <= n


def test_feedback_prompts_a_detector_with_the_one_concept_a_user_has(tmp_path: Path, offline_pipeline: Any,
                                                                     chelsea: np.ndarray, coffee: np.ndarray) -> None:
    from dataclasses import replace

    from pekit.pipeline import Pipeline
    from pekit.types import Detections

    asked: list[list[str]] = []

    class Detector:  # the middle of the photo, whatever is asked
        def detect(self, image: np.ndarray, labels: list[str] | str) -> Detections:
            asked.append([labels] if isinstance(labels, str) else list(labels))
            h, w = image.shape[:2]
            return Detections(xyxy=np.array([[w * 0.2, h * 0.2, w * 0.8, h * 0.8]], np.float32),
                              score=np.array([0.9], np.float32))

    for name, image in (("cat", chelsea), ("cup", coffee)):
        _photos(tmp_path / "db", name, image)
    config = replace(offline_pipeline.config, proposals=("detector", "windows"))
    pipeline = Pipeline(offline_pipeline.backbone, config, detector=Detector())
    table = run_feedback(load_dataset(f"folder:{tmp_path / 'db'}"), pipeline, k=2, seeds=1, corrections=1,
                         cache=GridCache(None, pipeline.fingerprint, memory_items=1 << 10), progress=False)
    # references and test photos alike: each user's detector is asked for that user's one category
    assert asked and all(labels in (["cat"], ["cup"]) for labels in asked)
    # its 2 references, then the test photos it is scored on (not only the references)
    assert asked.count(["cat"]) > 2 and asked.count(["cup"]) > 2
    assert sorted(table) == [0, 1]
