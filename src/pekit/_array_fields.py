"""What pekit's dataclasses that hold numpy arrays (`Detections`, `Concept`, `Answer`)
share: `as_array`, a field as an array of one dtype (else an error naming the field), and
`ValueEquality`, ``==`` field by field with arrays compared by value.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import numpy as np

from pekit.errors import InvalidInputError

__all__ = ["ValueEquality", "as_array"]


def as_array(value: Any, dtype: Any, name: str) -> np.ndarray:
    try:
        return np.asarray(value, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{name} must be array-like of {np.dtype(dtype).name}: {exc}") from exc


def _same(a: Any, b: Any) -> bool:
    """Whether two field values are equal, arrays (and lists or dicts holding them) by value."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.shape == b.shape
                and bool(np.array_equal(a, b)))
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


class ValueEquality:
    """``==`` field by field, arrays compared by value (the generated one would raise numpy's
    "truth value of an array is ambiguous", and so would ``in`` and ``list.index``)."""

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return all(_same(getattr(self, f.name), getattr(other, f.name)) for f in fields(self))  # type: ignore[arg-type]

    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value
