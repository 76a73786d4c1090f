"""Fixtures for the evaluation tests: a fake fast pipeline and tiny synthetic datasets.

The fake pipeline embeds a photo as its mean colour, so scores are hand-computable:
red (1, 0, 0) vs yellow (1, 1, 0)/√2 -> cos 0.707; red vs green -> 0.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pekit.embed.pooling import l2_normalize
from pekit.pipeline import View
from pekit.presets import RecognitionConfig
from pekit.retrieve.match import Gallery, similarity
from pekit.types import Detections, PatchGrid

COLOURS = {
    "red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255), "yellow": (255, 255, 0),
    "white": (255, 255, 255),
}


class FakePipeline:
    """Same interface as `pekit.pipeline.Pipeline`; embedding = normalised mean colour."""

    fingerprint = "fake-mean-colour/v1"

    def __init__(self, threshold: float = 0.6, fail_after: int | None = None) -> None:
        self.config = RecognitionConfig(threshold=threshold)
        self.detector = None
        self.encodes = 0
        self.fail_after = fail_after

    def encode(self, image: np.ndarray) -> PatchGrid:
        if self.fail_after is not None and self.encodes >= self.fail_after:
            raise RuntimeError("simulated crash")
        self.encodes += 1
        mean = image.reshape(-1, 3).mean(0).astype(np.float32) / 255.0
        return PatchGrid(np.tile(mean, (2, 2, 1)), image_size=(image.shape[1], image.shape[0]),
                         backbone=self.fingerprint)

    def encode_many(self, images, *, saliency=True, workers=None):
        from pekit.errors import ImageError
        from pekit.images import load_image

        for src in images:
            try:
                img = load_image(src)
            except ImageError as exc:
                yield exc
                continue
            yield img, self.encode(img)

    def _embedding(self, grid: PatchGrid) -> np.ndarray:
        return l2_normalize(grid.features.reshape(-1, grid.dim).mean(0))

    def reference(self, grid: PatchGrid, *, box=None, mask=None, image=None, category: str = "") -> View:
        e = self._embedding(grid)
        w, h = grid.image_size
        return View(e, e[None], np.array([0, 0, w, h], np.float32), np.ones(grid.shape, np.float32))

    def candidates(self, grid: PatchGrid, gallery: Gallery, *, concepts=None, **kw):
        """Competitive within ``gallery``: a concept is found only where it is the best match."""
        from types import SimpleNamespace

        scores, boxes, _ = self.match(grid, gallery)
        best = int(np.argmax(scores)) if len(scores) else -1
        return [SimpleNamespace(concept=k, score=float(scores[k]), xyxy=boxes[k])
                for k in (range(len(gallery)) if concepts is None else concepts) if k == best]

    def match(self, grid: PatchGrid, gallery: Gallery, *, image=None, labels=None, competitive=None):
        c = len(gallery)
        scores = similarity(self._embedding(grid)[None], gallery)[0] if c else np.zeros(0, np.float32)
        w, h = grid.image_size
        return scores.astype(np.float32), np.tile(np.array([0, 0, w, h], np.float32), (c, 1)), np.zeros(c, np.int64)

    def recognize(self, grid: PatchGrid, gallery: Gallery, *, threshold=None, image=None, labels=None) -> Detections:
        scores, boxes, _ = self.match(grid, gallery)
        thr = self.config.threshold if threshold is None else threshold
        hit = np.nonzero(scores >= thr)[0]
        return Detections(xyxy=boxes[hit], score=scores[hit], concept_id=hit,
                          name=np.array([gallery.names[i] for i in hit], dtype=object))


class FakeLVLM:
    """Answers from a table of (substring in prompt -> answer); counts calls."""

    name = "fake-lvlm"

    def __init__(self, rules: list[tuple[str, str]], default: str = "") -> None:
        self.rules = rules
        self.default = default
        self.calls = 0
        self.prompts: list[str] = []

    def generate(self, image: np.ndarray, prompt: str, **kw) -> str:
        self.calls += 1
        self.prompts.append(prompt)
        for key, answer in self.rules:
            if key in prompt:
                return answer
        return self.default


def write_photo(path: Path, colour: str, variant: int = 0, size: tuple[int, int] = (16, 12)) -> Path:
    """A solid-colour PNG; ``variant`` changes one pixel slightly so files differ (distinct hashes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.zeros((size[1], size[0], 3), np.uint8)
    arr[:] = COLOURS[colour]
    arr[0, 0] = [(v + variant) % 256 if v < 128 else v - variant for v in COLOURS[colour]]
    Image.fromarray(arr).save(path)
    return path


def make_folder(root: Path, spec: dict[str, list[str]], classes: dict[str, str] | None = None) -> Path:
    """``{concept: [colour, ...]}`` -> ``root/<concept>/<i>.png``."""
    for concept, colours in spec.items():
        for i, colour in enumerate(colours):
            write_photo(root / concept / f"{i:02d}.png", colour, variant=i + 1)
    if classes is not None:
        lines = ["subject,class", *(f"{k},{v}" for k, v in classes.items())]
        (root / "classes.csv").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture
def fake_pipeline() -> FakePipeline:
    return FakePipeline()


@pytest.fixture
def folder_dataset(tmp_path: Path) -> Path:
    """red x3, green x3, blue x1, amber (yellow) x2; red and amber share the category 'warm'."""
    return make_folder(tmp_path / "db", {"red": ["red"] * 3, "green": ["green"] * 3, "blue": ["blue"],
                                         "amber": ["yellow"] * 2},
                       classes={"red": "warm", "green": "plant", "blue": "sky", "amber": "warm"})


@pytest.fixture
def yollava_dataset(tmp_path: Path) -> Path:
    root = tmp_path / "yollava"
    for i in range(3):
        write_photo(root / "train" / "bo" / f"{i}.png", "red", i + 1)
        write_photo(root / "train" / "mam" / f"{i}.png", "green", i + 1)
    for i in range(2):
        write_photo(root / "test" / "bo" / f"{i}.png", "red", i + 10)
        write_photo(root / "test" / "mam" / f"{i}.png", "green", i + 10)
    qa = {
        "bo": {
            "./yollava-data/test/bo/0.png": {"question": "What colour is <sks>?", "options": {"A": "Red", "B": "Blue"},
                                             "correct_answer": "A"},
            "./yollava-data/test/bo/1.png": {"question": "Is sks a cat?", "options": {"A": "Yes", "B": "No"},
                                             "correct_answer": "B"},
        },
        "mam": {
            "yollava-data/test/mam/0.png": {"question": "Where is sks?", "options": {"A": "Park", "B": "Sofa"},
                                            "correct_answer": "B"},
        },
    }
    (root / "yollava-visual-qa.json").write_text(json.dumps(qa))
    return root
