"""Core data types shared by every stage: `PatchGrid`, `Detections`, `Concept`, `Answer`.

Arrays are numpy; images are ``(H, W, 3) uint8`` RGB; boxes are ``xyxy`` in pixels of the
original image (x0, y0 inclusive, x1, y1 exclusive, floats allowed). `Detections` is
defined in `pekit._detections` and imported from here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pekit._array_fields import ValueEquality, as_array
from pekit._detections import Detections
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


@dataclass(eq=False)
class Concept(ValueEquality):
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
        self.views = as_array(self.views, np.float32, "views")
        if self.views.ndim == 1:
            self.views = self.views[None]
        if self.views.ndim != 2 or len(self.views) == 0:
            raise InvalidInputError(
                f"views must be a 2D np.ndarray with shape (k>0, d), but got shape {self.views.shape}"
            )
        if self.parts is not None:
            self.parts = as_array(self.parts, np.float32, "parts")
            if self.parts.ndim != 2 or self.parts.shape[1] != self.views.shape[1]:
                raise InvalidInputError(
                    f"parts must have shape (m, {self.views.shape[1]}), but got {self.parts.shape}"
                )
            if len(self.parts) == 0:  # no parts: None, as a store reads it back (an empty blob is damage)
                self.parts = None
        if self.negatives is not None:
            self.negatives = as_array(self.negatives, np.float32, "negatives")
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


@dataclass(eq=False, repr=False)
class Answer(ValueEquality):
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

    def __repr__(self) -> str:
        """The answer, what was recognized, and the picture's shape (its pixels are not printed).

        >>> Answer("Asleep.", Detections.empty(), "Where?", np.zeros((4, 6, 3), np.uint8), meta={"backend": "none"})
        Answer('Asleep.', detections=Detections(0), choice=None, image (4, 6, 3), backend='none', prompt 6 chars)
        """
        image = "image None" if self.image is None else f"image {tuple(np.shape(self.image))}"
        return (f"Answer({self.text!r}, detections={self.detections!r}, choice={self.choice!r}, {image}, "
                f"backend={self.meta.get('backend')!r}, prompt {len(self.prompt)} chars)")
