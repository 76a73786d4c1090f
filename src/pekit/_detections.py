"""`Detections`: the regions found in one image as parallel arrays (boxes, scores, concept
ids, names, optional masks and embeddings), checked when made, sliced like numpy, and
converted to and from ``supervision``. `pekit.types` re-exports it (its public home).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from pekit._array_fields import ValueEquality, as_array
from pekit.errors import InvalidInputError

__all__ = ["Detections"]


@dataclass(eq=False)
class Detections(ValueEquality):
    """Parallel arrays describing ``n`` regions of one image.

    Attributes:
        xyxy: ``(n, 4) float32`` boxes in image pixels.
        score: ``(n,) float32`` confidence (cosine similarity after matching).
        concept_id: ``(n,) int64`` matched concept id, ``-1`` for unmatched proposals.
        name: ``(n,)`` object array of concept names (``""`` when unmatched).
        mask: optional ``(n, H, W) bool`` masks.
        embedding: optional ``(n, d) float32`` L2-normalised region embeddings.

    Index like numpy: ``dets[dets.score > 0.8]`` or ``dets[0]`` returns a new `Detections`.

    Example:
        >>> d = Detections(xyxy=np.array([[0, 0, 10, 10]]), score=np.array([0.9]))
        >>> len(d), d.concept_id.tolist()
        (1, [-1])
    """

    xyxy: np.ndarray
    score: np.ndarray | None = None
    concept_id: np.ndarray | None = None
    name: np.ndarray | None = None
    mask: np.ndarray | None = None
    embedding: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.xyxy = as_array(self.xyxy, np.float32, "xyxy")
        if self.xyxy.size == 0 and (self.xyxy.ndim == 1 or len(self.xyxy) == 0):  # [] or (0, k): no boxes
            self.xyxy = self.xyxy.reshape(0, 4)
        if self.xyxy.ndim != 2 or self.xyxy.shape[1] != 4:
            raise InvalidInputError(
                f"xyxy must be a 2D np.ndarray with shape (_, 4), but got shape {self.xyxy.shape}"
            )
        n = len(self.xyxy)
        if not np.all(np.isfinite(self.xyxy)):
            raise InvalidInputError("xyxy must contain only finite numbers")
        if n and (np.any(self.xyxy[:, 2] < self.xyxy[:, 0]) or np.any(self.xyxy[:, 3] < self.xyxy[:, 1])):
            raise InvalidInputError("xyxy boxes must satisfy x1 >= x0 and y1 >= y0")
        self.score = (
            np.ones(n, np.float32) if self.score is None else as_array(self.score, np.float32, "score")
        )
        if self.concept_id is not None:
            given = np.asarray(self.concept_id)
            if given.dtype.kind == "f" and not np.array_equal(given, np.round(given)):  # 1.7 is no id
                raise InvalidInputError(f"concept_id must hold whole numbers (store ids), got {given.tolist()[:5]}")
        self.concept_id = (
            np.full(n, -1, np.int64)
            if self.concept_id is None
            else as_array(self.concept_id, np.int64, "concept_id")
        )
        self.name = (
            np.full(n, "", dtype=object) if self.name is None else np.asarray(self.name, dtype=object)
        )
        for key in ("score", "concept_id", "name"):
            arr = getattr(self, key)
            if arr.shape != (n,):
                raise InvalidInputError(f"{key} must have shape ({n},), but got shape {arr.shape}")
        if self.mask is not None:
            self.mask = np.asarray(self.mask, dtype=bool)
            if self.mask.ndim != 3 or len(self.mask) != n:
                raise InvalidInputError(
                    f"mask must be a 3D np.ndarray with shape ({n}, H, W), but got shape {self.mask.shape}"
                )
        if self.embedding is not None:
            self.embedding = as_array(self.embedding, np.float32, "embedding")
            if self.embedding.ndim != 2 or len(self.embedding) != n:
                raise InvalidInputError(
                    f"embedding must be a 2D np.ndarray with shape ({n}, d), "
                    f"but got shape {self.embedding.shape}"
                )

    def __len__(self) -> int:
        return len(self.xyxy)

    def __repr__(self) -> str:
        """One line per region (name, score, box), arrays by shape only: printing the result
        of `Personalizer.recognize` does not dump embeddings.

        >>> Detections(xyxy=[[0, 0, 10, 20]], score=[0.812], name=["Bo"], concept_id=[3])
        Detections(1: 'Bo' (id 3) 0.81 at [0, 0, 10, 20])
        """
        n = len(self)
        names = self.name if self.name is not None else [""] * n
        ids = self.concept_id if self.concept_id is not None else [-1] * n
        scores = self.score if self.score is not None else [1.0] * n
        rows = [(f"{str(name)!r}" if name else "unmatched") + (f" (id {int(c)})" if c >= 0 else "")
                + f" {float(s):.2f} at {[round(float(v)) for v in b]}"
                for name, c, s, b in zip(names, ids, scores, self.xyxy, strict=True)]
        if len(rows) > 8:
            rows = [*rows[:8], f"... {len(rows) - 8} more"]
        arrays = [f"{f} {tuple(a.shape)}" for f, a in (("mask", self.mask), ("embedding", self.embedding))
                  if a is not None]
        return f"Detections({len(self)}" + (": " + "; ".join(rows) if rows else "") + (
            "; " + ", ".join(arrays) if arrays else "") + ")"

    def __iter__(self) -> Iterator[Detections]:  # single-row Detections
        for i in range(len(self)):
            yield self[i]

    def __getitem__(self, index: Any) -> Detections:
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        kwargs: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            kwargs[f.name] = None if value is None else value[index]
        return Detections(**kwargs)

    @classmethod
    def empty(cls) -> Detections:
        return cls(xyxy=np.zeros((0, 4), np.float32))

    @classmethod
    def merge(cls, items: list[Detections]) -> Detections:
        """Concatenate; optional arrays are kept only when every item has them."""
        items = [d for d in items if len(d)]
        if not items:
            return cls.empty()
        kwargs: dict[str, Any] = {}
        for f in fields(cls):
            values = [getattr(d, f.name) for d in items]
            kwargs[f.name] = None if any(v is None for v in values) else np.concatenate(values)
        return cls(**kwargs)

    @property
    def area(self) -> np.ndarray:
        return (self.xyxy[:, 2] - self.xyxy[:, 0]) * (self.xyxy[:, 3] - self.xyxy[:, 1])

    def to_supervision(self) -> Any:
        """The same regions as a ``supervision.Detections`` (``pip install supervision``).

        ``score`` -> ``confidence``, ``concept_id`` -> ``class_id``, ``name`` ->
        ``data["class_name"]`` (what supervision's label annotators read), ``embedding`` ->
        ``data["embedding"]``; masks as they are.

        >>> Detections(xyxy=[[0, 0, 4, 4]], name=["Bo"]).to_supervision().data["class_name"]  # doctest: +SKIP
        array(['Bo'], dtype=object)
        """
        from pekit.errors import require

        sv = require("supervision", "supervision")
        data: dict[str, np.ndarray] = {"class_name": np.asarray(self.name, dtype=object)}
        if self.embedding is not None:
            data["embedding"] = self.embedding
        return sv.Detections(xyxy=self.xyxy.copy(), mask=self.mask, confidence=self.score,
                             class_id=self.concept_id, data=data)

    @classmethod
    def from_supervision(cls, detections: Any) -> Detections:
        """A pekit `Detections` from a ``supervision.Detections`` (inverse of `to_supervision`).

        Missing ``confidence`` becomes 1, missing ``class_id`` -1 (unmatched) and a missing
        ``data["class_name"]`` empty names.
        """
        xyxy = getattr(detections, "xyxy", None)
        if xyxy is None or not hasattr(detections, "data"):
            raise InvalidInputError(
                f"from_supervision needs a supervision.Detections, but got {type(detections).__name__}"
            )
        data = detections.data or {}
        names = data.get("class_name")
        return cls(xyxy=xyxy, score=detections.confidence, concept_id=detections.class_id,
                   name=None if names is None else np.asarray(names, dtype=object), mask=detections.mask,
                   embedding=data.get("embedding"))

    def to_list(self) -> list[dict[str, Any]]:
        """JSON-ready records: ``[{"name", "score", "box": [x0, y0, x1, y1], "concept_id"}]``."""
        name, score, concept_id = self.name, self.score, self.concept_id
        assert name is not None and score is not None and concept_id is not None  # set by __post_init__
        return [
            {
                "name": str(name[i]),
                "score": round(float(score[i]), 4),
                "box": [round(float(v), 1) for v in self.xyxy[i]],
                "concept_id": int(concept_id[i]),
            }
            for i in range(len(self))
        ]
