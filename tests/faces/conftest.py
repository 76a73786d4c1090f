"""Face fixtures: the dlib model loaded once; photos from scikit-image (astronaut's face)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

PEOPLE = Path(__file__).parents[2] / ".." / "shared" / "data" / "people"


@pytest.fixture(scope="session")
def faces() -> Any:
    pytest.importorskip("dlib")
    from pekit.faces import load_faces

    return load_faces()


@pytest.fixture(scope="session")
def people() -> Path:
    """``../shared/data/people`` (six public figures + group scenes); skips when absent."""
    if not PEOPLE.is_dir():
        pytest.skip(f"the people dataset is not at {PEOPLE.resolve()}")
    return PEOPLE.resolve()
