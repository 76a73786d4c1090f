"""Core data types shared by every stage: `PatchGrid`, `Detections`, `Concept`, `Answer`.

Arrays are numpy; images are ``(H, W, 3) uint8`` RGB; boxes are ``xyxy`` in pixels of the
original image (x0, y0 inclusive, x1, y1 exclusive, floats allowed).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from pekit.errors import InvalidInputError

__all__ = ["Answer", "Concept", "Detections", "PatchGrid", "check_threshold", "finite_number", "whole_number"]


def whole_number(value: Any) -> bool:
    """Whether ``value`` is a whole number: a Python or numpy int, not a bool (what every
    count, seed and id must be before its range is checked).

    >>> whole_number(3), whole_number(np.int64(3)), whole_number(True), whole_number(3.0), whole_number("3")
    (True, True, False, False, False)
    """
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def finite_number(value: Any) -> bool:
    """Whether ``value`` is a finite real number (a Python or numpy int or float; not a
    bool, not text, not NaN or infinity): what every numeric option must be before its
    range is checked.

    >>> finite_number(2), finite_number(0.5), finite_number(True), finite_number("1"), finite_number(float("nan"))
    (True, True, False, False, False)
    """
    if whole_number(value):
        return True  # any size: np.isfinite cannot take an int beyond 64 bits
    return isinstance(value, (float, np.floating)) and math.isfinite(value)


def check_threshold(value: Any, what: str = "threshold") -> float | None:
    """None (use the default), or a recognition threshold: a cosine score in [-1, 1].

    The one check for every threshold a user gives (preset, `Personalizer`, a call,
    ``pekit eval``): text, booleans, NaN and values out of range are refused. (A concept's
    stored threshold is read more loosely: `pekit.memory._codec.check_threshold`.)

    >>> check_threshold(0.6), check_threshold(None)
    (0.6, None)
    """
    if value is None:
        return None
    if not finite_number(value) or not -1.0 <= float(value) <= 1.0:
        raise InvalidInputError(f"{what} must be a cosine score in [-1, 1] (e.g. 0.6; leave it out for the "
                                f"default), got {value!r}")
    return float(value)


@dataclass(frozen=True)
class PatchGrid:
    """Patch features of ONE backbone pass over one image.

    Attributes:
        features: ``(h, w, d) float32`` patch tokens (not normalised).
        image_size: ``(W, H)`` of the original image in pixels; patch ``(i, j)`` covers the
            image rectangle ``[j*W/w, (j+1)*W/w) x [i*H/h, (i+1)*H/h)``.
        saliency: optional ``(H', W') float32`` class-agnostic objectness map in ``[0, 1]``
            covering the whole image (any resolution, usually the network input's).
        backbone: fingerprint of the backbone that produced it.
        colours: optional ``(h, w, BINS) float32`` colour histogram of each patch
            (`pekit.embed.colour.patch_colours`; set when the recognition config
            compares colour).

    Example:
        >>> g = PatchGrid(np.zeros((2, 3, 4), np.float32), image_size=(30, 20))
        >>> g.shape
        (2, 3)
    """

    features: np.ndarray
    image_size: tuple[int, int]
    saliency: np.ndarray | None = None
    backbone: str = ""
    colours: np.ndarray | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.features, np.ndarray) or self.features.ndim != 3:
            shape = getattr(self.features, "shape", None)
            raise InvalidInputError(
                f"features must be a 3D np.ndarray with shape (h, w, d), but got shape {shape}"
            )
        if len(self.image_size) != 2 or min(self.image_size) <= 0:
            raise InvalidInputError(f"image_size must be (W, H) > 0, but got {self.image_size}")
        if self.saliency is not None and self.saliency.ndim != 2:
            raise InvalidInputError(
                f"saliency must be a 2D np.ndarray, but got shape {self.saliency.shape}"
            )
        if self.colours is not None and (self.colours.ndim != 3 or self.colours.shape[:2] != self.features.shape[:2]):
            raise InvalidInputError(
                f"colours must have shape {self.features.shape[:2]} + (bins,), but got {self.colours.shape}"
            )

    @property
    def shape(self) -> tuple[int, int]:
        """``(h, w)`` of the patch grid."""
        return int(self.features.shape[0]), int(self.features.shape[1])

    @property
    def dim(self) -> int:
        return int(self.features.shape[2])

    @property
    def cell_size(self) -> tuple[float, float]:
        """``(cell_w, cell_h)``: image pixels covered by one patch."""
        h, w = self.shape
        return self.image_size[0] / w, self.image_size[1] / h


def _as_array(value: Any, dtype: Any, name: str) -> np.ndarray:
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


class _ValueEquality:
    """``==`` field by field, arrays compared by value (the generated one would raise numpy's
    "truth value of an array is ambiguous", and so would ``in`` and ``list.index``)."""

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return all(_same(getattr(self, f.name), getattr(other, f.name)) for f in fields(self))  # type: ignore[arg-type]

    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value


@dataclass(eq=False)
class Detections(_ValueEquality):
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
        self.xyxy = _as_array(self.xyxy, np.float32, "xyxy")
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
            np.ones(n, np.float32) if self.score is None else _as_array(self.score, np.float32, "score")
        )
        if self.concept_id is not None:
            given = np.asarray(self.concept_id)
            if given.dtype.kind == "f" and not np.array_equal(given, np.round(given)):  # 1.7 is no id
                raise InvalidInputError(f"concept_id must hold whole numbers (store ids), got {given.tolist()[:5]}")
        self.concept_id = (
            np.full(n, -1, np.int64)
            if self.concept_id is None
            else _as_array(self.concept_id, np.int64, "concept_id")
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
            self.embedding = _as_array(self.embedding, np.float32, "embedding")
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


@dataclass(eq=False)
class Concept(_ValueEquality):
    """One personal concept in memory.

    Attributes:
        name: what the user calls it ("Bo").
        views: ``(k, d) float32`` L2-normalised view embeddings (one per reference view).
        category: open-vocabulary class used to find it ("dog"); may be empty.
        context: free text passed to the LVLM ("my parents' dog, loves the beach").
        threshold: calibrated cosine threshold, or ``None`` to use the global one.
        id: store-assigned integer id (``-1`` before it is stored).
        namespace: owner / user the concept belongs to.
        backbone: fingerprint of the backbone that produced ``views``.
        parts: optional ``(m, d) float32`` L2-normalised part embeddings (patch-level
            prototypes of the object) used to verify a match.
        meta: free JSON-able metadata (reference file names, boxes, timings...).
        negatives: optional ``(n, d) float32`` L2-normalised part prototypes of regions the
            user said are *not* this concept (`Personalizer.correct`): a region whose
            patches agree with them at least as well as with ``parts`` is not named after it.
    """

    name: str
    views: np.ndarray
    category: str = ""
    context: str = ""
    threshold: float | None = None
    id: int = -1
    namespace: str = "default"
    backbone: str = ""
    parts: np.ndarray | None = None
    created: float = 0.0
    updated: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)
    negatives: np.ndarray | None = None

    def __repr__(self) -> str:
        """Name, identity and array shapes (the vectors themselves are not printed).

        >>> Concept("Bo", np.eye(2, 8), category="dog")
        Concept('Bo', category='dog', id=-1, namespace='default', views (2, 8))
        """
        arrays = [f"{f} {tuple(a.shape)}" for f, a in (("views", self.views), ("parts", self.parts),
                                                          ("negatives", self.negatives)) if a is not None]
        return (f"Concept({self.name!r}, category={self.category!r}, id={self.id}, namespace={self.namespace!r}, "
                + ", ".join(arrays) + ")")

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise InvalidInputError("concept name must be a non-empty string, e.g. 'Bo'")
        self.name = self.name.strip()
        self.views = _as_array(self.views, np.float32, "views")
        if self.views.ndim == 1:
            self.views = self.views[None]
        if self.views.ndim != 2 or len(self.views) == 0:
            raise InvalidInputError(
                f"views must be a 2D np.ndarray with shape (k>0, d), but got shape {self.views.shape}"
            )
        if self.parts is not None:
            self.parts = _as_array(self.parts, np.float32, "parts")
            if self.parts.ndim != 2 or self.parts.shape[1] != self.views.shape[1]:
                raise InvalidInputError(
                    f"parts must have shape (m, {self.views.shape[1]}), but got {self.parts.shape}"
                )
        if self.negatives is not None:
            self.negatives = _as_array(self.negatives, np.float32, "negatives")
            if self.negatives.ndim == 1:
                self.negatives = self.negatives[None]
            if self.negatives.ndim != 2 or self.negatives.shape[1] != self.views.shape[1]:
                raise InvalidInputError(
                    f"negatives must have shape (n, {self.views.shape[1]}), but got {self.negatives.shape}"
                )
            if len(self.negatives) == 0:
                self.negatives = None

    @property
    def dim(self) -> int:
        return int(self.views.shape[1])


@dataclass(eq=False)
class Answer(_ValueEquality):
    """Result of `Personalizer.ask` / `caption`.

    Attributes:
        text: the LVLM's answer ("" with the ``none`` backend).
        detections: what was recognized and drawn.
        prompt: the exact text prompt sent (or that would be sent) to the LVLM.
        image: the annotated image given to the LVLM, ``(H, W, 3) uint8``.
        choice: parsed letter for multiple-choice questions, else ``None``.
        meta: backend, model, timings, token counts.
    """

    text: str
    detections: Detections
    prompt: str
    image: np.ndarray | None = None
    choice: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.text
