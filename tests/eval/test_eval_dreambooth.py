"""The real offline pipeline on a few DreamBooth subjects (skipped when the folder is absent)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

DATA = Path(os.environ.get("PEKIT_DREAMBOOTH", Path(__file__).resolve().parents[3] / "shared" / "data" / "dreambooth"))
SUBJECTS = ["duck_toy", "red_cartoon", "cat"]   # 4 + 4 + 5 photos


@pytest.mark.dataset
@pytest.mark.slow
@pytest.mark.skipif(not DATA.is_dir(), reason=f"DreamBooth dev set not found at {DATA}")
def test_offline_recognition_on_dreambooth_subjects(tmp_path: Path):
    from pekit.eval.cache import GridCache
    from pekit.eval.datasets import load_dataset
    from pekit.eval.recognition import run_recognition
    from pekit.eval.summary import summarize
    from pekit.personalizer import build_pipeline

    ds = load_dataset(f"folder:{DATA}", concepts=SUBJECTS)
    assert [c.category for c in ds.concepts] == ["cat", "toy", "cartoon"]
    pipe = build_pipeline("offline")
    run = run_recognition(ds, pipe, refs=(1,), seeds=1, cache=GridCache(tmp_path, pipe.fingerprint), progress=False)
    assert run.timing["backbone_passes"] == 13 + 3  # each photo once, and each reference's zoomed-out copy
    trial = run.trials[0]
    assert trial.scores.shape == (10, 3) and np.all(trial.scores <= 1.0 + 1e-5)
    row = summarize(run)[0]
    # distinct subjects: a working pipeline recognizes most positives and rejects most negatives
    assert row["metrics"]["positive"]["mean"] >= 0.5
    assert row["metrics"]["negative"]["mean"] >= 0.7
    assert row["metrics"]["weighted"]["mean"] >= 0.7
