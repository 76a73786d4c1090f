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
