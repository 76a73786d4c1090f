"""Helpers shared by every transformers backend (backbone, detector, segmenter, LVLM).

One place for: hub id vs local folder, device names (``auto`` -> CUDA, MPS or CPU) and
dtype names (``bf16``, ``float16``...). torch is imported only inside the functions.
"""

from __future__ import annotations

import os
from typing import Any

from pekit.errors import InvalidInputError, require

__all__ = ["DTYPES", "looks_like_path", "resolve_device", "resolve_dtype"]

#: dtype spellings users type -> torch attribute names.
DTYPES = {
    "float32": "float32", "fp32": "float32", "float": "float32",
    "bfloat16": "bfloat16", "bf16": "bfloat16",
    "float16": "float16", "fp16": "float16", "half": "float16",
}


def looks_like_path(spec: str) -> bool:
    """True when ``spec`` names a local folder rather than a hub id (``org/name``).

    >>> looks_like_path("facebook/dinov2-small"), looks_like_path("./models/dinov2")
    (False, True)
    """
    return spec.startswith(("/", ".", "~")) or os.path.isabs(spec) or os.path.exists(spec) \
        or spec.count("/") > 1 or "\\" in spec


def resolve_device(device: str | None = "auto") -> str:
    """``"auto"`` -> ``"cuda"`` if available, else ``"mps"``, else ``"cpu"``; others are checked.

    >>> resolve_device("cpu")
    'cpu'
    """
    if device == "cpu":
        return "cpu"
    torch = require("torch", "hf")
    if device in (None, "", "auto"):
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        return "mps" if mps is not None and mps.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise InvalidInputError(
            f"unknown device '{device}'; use 'auto', 'cpu', 'cuda', 'cuda:1' or 'mps'"
        ) from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError(f"device '{device}' was asked for but CUDA is not available; "
                                "use device='cpu'")
    return str(dev)


def resolve_dtype(dtype: Any = "auto", device: str = "cpu") -> Any:
    """``"auto"``/None -> bfloat16 (or float16) on CUDA, float16 on MPS, float32 on CPU;
    names (`DTYPES`) or torch dtypes pass through.

    >>> str(resolve_dtype("bf16"))
    'torch.bfloat16'
    """
    torch = require("torch", "hf")
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in (None, "", "auto"):
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float16 if device.startswith("mps") else torch.float32
    key = str(dtype).lower().removeprefix("torch.")
    if key not in DTYPES:
        raise InvalidInputError(f"unknown dtype '{dtype}'; use 'auto', 'float32', 'bfloat16' or 'float16'")
    return getattr(torch, DTYPES[key])
