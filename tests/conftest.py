"""Shared fixtures: the offline pipeline loaded once, a grid cache, sample photos.

Backbone passes cost ~2 s each on a shared CPU, so the real ONNX backbone is wrapped in
`GridCache`: the first pass over an image is real, later passes over the *same pixels*
reuse its `PatchGrid`. `GridCache.calls` counts every pass the pipeline asks for (cached
or not), which is what "one backbone pass per image" is about.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ["HF_HUB_OFFLINE"] = "1"  # no test may reach the network

DATASET = Path(__file__).parents[1] / ".." / "shared" / "data" / "dreambooth"


class GridCache:
    """A `Backbone` wrapping a real one: identical images reuse the first pass's grid."""

    def __init__(self, backbone: Any) -> None:
        self.inner = backbone
        self.name = backbone.name
        self.fingerprint = backbone.fingerprint
        self.dim = backbone.dim
        self.resolution = backbone.resolution
        self.calls = 0
        self._grids: dict[tuple[str, tuple[int, ...], bool, int], Any] = {}
        self.root = self  # copies at another input size count their passes here

    def embed(self, image: np.ndarray, *, saliency: bool = True) -> Any:
        self.root.calls += 1
        key = (hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest(), image.shape, saliency,
               self.inner.resolution)
        grids = self.root._grids
        if key not in grids:
            grids[key] = self.inner.embed(image, saliency=saliency)
        return grids[key]

    def at_resolution(self, resolution: int) -> GridCache:
        """The wrapped backbone at another input size (`ScalableBackbone`), sharing the count."""
        clone = GridCache(self.inner.at_resolution(resolution))
        clone.root = self.root
        return clone


@pytest.fixture(scope="session")
def dreambooth() -> Path:
    """The DreamBooth development photos (``../shared/data/dreambooth``); skips when absent."""
    if not DATASET.is_dir():
        pytest.skip(f"the dreambooth dataset is not at {DATASET.resolve()}")
    return DATASET.resolve()


@pytest.fixture(scope="session")
def offline_pipeline() -> Any:
    """`build_pipeline("offline")`: the real ONNX DINOv2-S backbone, built once."""
    from pekit.personalizer import build_pipeline

    return build_pipeline("offline")


@pytest.fixture(scope="session")
def grid_cache(offline_pipeline: Any) -> GridCache:
    return GridCache(offline_pipeline.backbone)


@pytest.fixture(scope="session")
def pipeline(offline_pipeline: Any, grid_cache: GridCache) -> Any:
    """The offline pipeline over the cached backbone (same config, shared grids)."""
    from pekit.pipeline import Pipeline

    return Pipeline(grid_cache, offline_pipeline.config)


@pytest.fixture
def cached_pipelines(monkeypatch: pytest.MonkeyPatch, grid_cache: GridCache) -> GridCache:
    """Every `Personalizer` built in the test (CLI included) uses the cached backbone."""
    import pekit.personalizer
    from pekit.pipeline import Pipeline
    from pekit.presets import get_preset

    def build(preset: Any = "offline", **overrides: Any) -> Pipeline:
        p = get_preset(preset).with_options(**overrides) if overrides else get_preset(preset)
        return Pipeline(grid_cache, p.recognition)

    monkeypatch.setattr(pekit.personalizer, "build_pipeline", build)
    return grid_cache


@pytest.fixture
def make_personalizer(cached_pipelines: GridCache) -> Iterator[Callable[..., Any]]:
    """Factory of `Personalizer`s on a ``memory://`` store (closed after the test)."""
    from pekit.personalizer import Personalizer

    made: list[Any] = []

    def make(**kwargs: Any) -> Any:
        kwargs.setdefault("memory", "memory://")
        p = Personalizer(**kwargs)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


# ---- sample photos (scikit-image) and synthetic scenes -------------------------------
@pytest.fixture(scope="session")
def chelsea() -> np.ndarray:
    """(300, 451, 3) a tabby cat's face."""
    from skimage import data

    return data.chelsea()


@pytest.fixture(scope="session")
def coffee() -> np.ndarray:
    """(400, 600, 3) an espresso cup on a saucer."""
    from skimage import data

    return data.coffee()


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """(512, 512, 3) a portrait: no cat, no cup."""
    from skimage import data

    return data.astronaut()


def textured_scene(
    size: tuple[int, int] = (240, 320), objects: tuple[tuple[int, int, int, int], ...] = ((80, 120, 180, 220),),
    seed: int = 0,
) -> np.ndarray:
    """A flat grey ``(H, W)`` background with bright random texture in each ``(y0, x0, y1, x1)``."""
    rng = np.random.default_rng(seed)
    img = np.full((*size, 3), 128, np.uint8)
    for y0, x0, y1, x1 in objects:
        img[y0:y1, x0:x1] = rng.integers(0, 256, (y1 - y0, x1 - x0, 3))
    return img


@pytest.fixture(scope="session")
def make_scene() -> Callable[..., np.ndarray]:
    """`textured_scene` (flat grey background with textured squares)."""
    return textured_scene


@pytest.fixture(scope="session")
def scene() -> np.ndarray:
    """(240, 320, 3) one textured square (rows 80:180, cols 120:220) on flat grey."""
    return textured_scene()


@pytest.fixture(scope="session")
def scene_grid(pipeline: Any, scene: np.ndarray) -> Any:
    return pipeline.encode(scene)


@pytest.fixture(scope="session")
def postgres_uri() -> Iterator[str]:
    """URI of a PostgreSQL server with pgvector (the ``pgserver`` wheel, a ``[dev]``
    dependency) on a Unix socket, running for this test session; nothing is mocked."""
    import shutil
    import tempfile
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR unset in CI
        import pgserver

    # a folder of its own, not under pytest's basetemp: other pytest sessions on the machine
    # prune old basetemp folders, and a data directory must not vanish under a running server
    folder = Path(tempfile.mkdtemp(prefix="pekit-postgres-"))
    server = pgserver.get_server(folder / "data", cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)
