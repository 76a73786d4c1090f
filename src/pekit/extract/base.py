"""Protocols of the extraction models: open-vocabulary detectors and box-to-mask segmenters.

Anything with these methods plugs into `pekit.pipeline.Pipeline` (and the registry): the
transformers backends in `pekit.extract.hf` are one implementation.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from pekit.types import Detections

__all__ = ["Detector", "Segmenter"]


@runtime_checkable
class Detector(Protocol):
    """Open-vocabulary detector: boxes of the named categories in one image."""

    def detect(self, image: np.ndarray, labels: list[str] | str) -> Detections:
        """``(H, W, 3) uint8`` image + category names -> `Detections` (``name`` = the label)."""
        ...


@runtime_checkable
class Segmenter(Protocol):
    """Box-to-mask model (SAM and the like)."""

    def segment(self, image: np.ndarray, boxes: np.ndarray | Detections) -> np.ndarray:
        """``(n, 4)`` xyxy boxes -> ``(n, H, W)`` bool masks."""
        ...
