"""Stage 1/2 shared: patch-feature backbones and region pooling from one pass per image."""

from __future__ import annotations

from typing import Any

from pekit.embed.base import Backbone
from pekit.embed.pooling import l2_normalize, pool, pool_boxes, pool_masks

__all__ = ["Backbone", "l2_normalize", "load_backbone", "pool", "pool_boxes", "pool_masks"]


def load_backbone(name: str = "onnx-dinov2-s", **options: Any) -> Backbone:
    """Build a backbone by name: ``onnx-dinov2-s`` (offline) or ``hf:<hub id or dir>``.

    >>> bb = load_backbone("onnx-dinov2-s", layer=7)   # doctest: +SKIP
    """
    from pekit.registry import create

    return create("backbone", name, **options)
