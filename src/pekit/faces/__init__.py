"""Person concepts: a face detector and an identity embedder (dlib's 128-d, offline; or an ONNX model).

A *person* concept keeps its face vectors in ``Concept.meta`` (``kind``, ``faces``,
``face_model``), next to ordinary object-backbone views of the face region, so the
memory schema and its one-backbone rule are unchanged and face vectors never meet
object vectors: objects are matched by cosine over backbone views, persons by Euclidean
distance over face vectors, each only against its own kind.

Example:
    >>> from pekit.faces import load_faces, face_reference        # doctest: +SKIP
    >>> faces = load_faces()                                        # doctest: +SKIP
    >>> vector, box = face_reference(faces, image)                  # doctest: +SKIP
    >>> vector.shape                                                # doctest: +SKIP
    (128,)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pekit.errors import BackboneMismatchError, InvalidInputError, MemoryFileError, NothingFoundError
from pekit.types import Concept, Detections

__all__ = [
    "FACE_TOLERANCE",
    "MIN_FACE_PX",
    "PERSON",
    "FaceGallery",
    "concept_kind",
    "face_reference",
    "face_spec_hint",
    "load_faces",
    "match_faces",
    "stored_faces",
]

PERSON = "person"
KINDS = ("object", PERSON)
#: Euclidean distance under which two dlib face vectors are the same person: dlib's usual
#: 0.6. On ``shared/data/people`` (benchmarks/people.py) same-person pairs reach 0.52 and
#: different people start at 0.70, so 0.6 sits in the gap with margin on both sides.
FACE_TOLERANCE = 0.6
#: faces narrower than this (pixels of the photo) are too small to embed reliably.
MIN_FACE_PX = 40


def load_faces(name: str = "dlib", **options: Any) -> Any:
    """The face model by name: ``dlib`` (HOG detector + ResNet embedder, 128-d) or
    ``onnx:<path>`` (dlib's detector + an ONNX embedder, `pekit.faces.onnx.OnnxFaces`).

    A face model has ``detect``, ``embed``, ``fingerprint``, ``dim`` and ``tolerance``.
    """
    from pekit.registry import create

    return create("faces", name, **options)


def concept_kind(concept: Concept) -> str:
    """``"person"`` or ``"object"`` (concepts stored before kinds existed are objects)."""
    return str(concept.meta.get("kind", "object"))


def check_kind(kind: str) -> str:
    kind = str(kind).strip().lower()
    if kind not in KINDS:
        raise InvalidInputError(f"unknown concept kind '{kind}'; choose one of: {', '.join(KINDS)}")
    return kind


def _inside(boxes: np.ndarray, box: np.ndarray) -> np.ndarray:
    cx = (boxes[:, 0] + boxes[:, 2]) / 2
    cy = (boxes[:, 1] + boxes[:, 3]) / 2
    return (cx >= box[0]) & (cx <= box[2]) & (cy >= box[1]) & (cy <= box[3])


def face_reference(faces: Any, image: np.ndarray, *, box: np.ndarray | None = None,
                   min_face: int = MIN_FACE_PX) -> tuple[np.ndarray, np.ndarray]:
    """The one face of a reference photo: ``(vector (128,), xyxy (4,))``.

    With ``box``, the face whose centre lies in the box (the box region is searched
    again, upsampled, when the whole-image pass found none there).

    Raises:
        NothingFoundError: no face (in the box), or the face is too small to embed.
        InvalidInputError: several faces and no box to choose one.
    """
    found = faces.detect(image)
    if box is not None:
        found = found[_inside(found.xyxy, box)] if len(found) else found
        if len(found) == 0:
            x0, y0, x1, y1 = (int(v) for v in np.round(box))
            crop = image[max(0, y0):max(0, y1), max(0, x0):max(0, x1)]
            if crop.size:
                found = faces.detect(np.ascontiguousarray(crop), upsample=2)
                found.xyxy[:, [0, 2]] += max(0, x0)
                found.xyxy[:, [1, 3]] += max(0, y0)
    if len(found) == 0:
        where = "in the box" if box is not None else "in this photo"
        raise NothingFoundError(
            f"no face found {where}; a person concept needs a photo where the face is visible "
            "(roughly frontal); use another photo"
        )
    if len(found) > 1:
        boxes = "; ".join(",".join(str(int(v)) for v in b) for b in found.xyxy[:4])
        where = "in the box" if box is not None else "in this photo"
        raise InvalidInputError(
            f"{len(found)} faces {where} ({boxes}); pass --box X0,Y0,X1,Y1 around the one face of the person"
        )
    xyxy = found.xyxy[0]
    width = float(min(xyxy[2] - xyxy[0], xyxy[3] - xyxy[1]))
    if width < min_face:
        raise NothingFoundError(
            f"the face is only {width:.0f} px wide, too small to embed (at least {min_face} px); use a closer "
            "or larger photo of the person"
        )
    return faces.embed(image, xyxy[None])[0], xyxy


def face_spec_hint(fingerprint: str) -> str:
    """How to load the face model that made vectors of this fingerprint, in words.

    >>> face_spec_hint("dlib-face-128@resnet_v1")
    "use faces='dlib' (or 'dlib-cnn'), the model that made them"
    """
    if fingerprint.startswith("dlib-face"):
        return "use faces='dlib' (or 'dlib-cnn'), the model that made them"
    if fingerprint.startswith("onnx-face"):
        return "use faces='onnx:<the .onnx file that made them>'"
    return f"use the face model that made them ('{fingerprint}')"


@dataclass
class FaceGallery:
    """Person concepts flattened for matching: ``vectors (N, D)``, ``owner (N,)``."""

    names: list[str]
    ids: np.ndarray
    vectors: np.ndarray
    owner: np.ndarray

    def __len__(self) -> int:
        return len(self.names)

    @classmethod
    def from_concepts(cls, concepts: list[Concept], fingerprint: str, dim: int | None = None) -> FaceGallery:
        """Gallery of the person concepts; refuses vectors from another face model, and
        (`MemoryFileError`) stored vectors that are not ``dim`` numbers long: a hand-edited
        or damaged record."""
        names: list[str] = []
        ids: list[int] = []
        vectors: list[np.ndarray] = []
        owner: list[int] = []
        for c in concepts:
            if concept_kind(c) != PERSON:
                continue
            model = c.meta.get("face_model", "")
            if model != fingerprint:
                raise BackboneMismatchError(
                    f"person '{c.name}' was introduced with face model '{model}', but this Personalizer uses "
                    f"'{fingerprint}'; re-introduce '{c.name}' (pekit introduce --replace --kind person), or "
                    f"{face_spec_hint(model)}"
                )
            rows = stored_faces(c, dim, fingerprint)
            if rows.size == 0:
                continue
            owner.extend([len(names)] * len(rows))
            names.append(c.name)
            ids.append(c.id)
            vectors.append(rows)
        return cls(names, np.asarray(ids, np.int64),
                   np.concatenate(vectors) if vectors else np.zeros((0, 0), np.float32),
                   np.asarray(owner, np.int64))


def stored_faces(concept: Concept, dim: int | None, fingerprint: str) -> np.ndarray:
    """A person's stored face vectors, ``(n, dim)`` (``(0, dim)`` when none); `MemoryFileError`
    naming the person when they are not ``dim`` numbers long (a hand-edited or damaged
    record: compared as they are, they would fail, or be regrouped into wrong vectors)."""
    rows = np.asarray(concept.meta.get("faces", []), np.float32)
    if rows.size == 0:
        return np.zeros((0, dim or 0), np.float32)
    if dim is not None and (rows.ndim != 2 or rows.shape[1] != dim):
        raise MemoryFileError(
            f"person '{concept.name}' is damaged in memory: its face vectors are not the {dim} numbers of face "
            f"model '{fingerprint}'; introduce '{concept.name}' again (pekit introduce --replace --kind person) "
            "or forget it")
    return rows.reshape(len(rows), -1)


def distances(vectors: np.ndarray, gallery: FaceGallery) -> np.ndarray:
    """``(m, D)`` face vectors -> ``(m, P)`` smallest Euclidean distance to each person."""
    m, p = len(vectors), len(gallery)
    out = np.full((m, p), np.inf, np.float32)
    if m == 0 or p == 0:
        return out
    d = np.linalg.norm(vectors[:, None, :] - gallery.vectors[None], axis=2)
    np.minimum.at(out.T, gallery.owner, d.T)
    return out


def match_faces(faces: Detections, vectors: np.ndarray, gallery: FaceGallery, *,
                tolerance: float = FACE_TOLERANCE) -> Detections:
    """Name the detected faces: each person at most once, only within ``tolerance``.

    Scores are ``1 - distance`` (the 0.6 tolerance is a score of 0.4). Faces of people
    not in the gallery match nobody and are dropped.
    """
    if len(faces) == 0 or len(gallery) == 0:
        return Detections.empty()
    dist = distances(vectors, gallery)
    pairs = sorted((float(dist[i, k]), i, k) for i in range(len(faces)) for k in range(len(gallery))
                    if dist[i, k] <= tolerance)
    used_faces: set[int] = set()
    used_people: set[int] = set()
    rows, owners, scores = [], [], []
    for d, i, k in pairs:  # closest pairs first: a face names one person, a person names one face
        if i in used_faces or k in used_people:
            continue
        used_faces.add(i)
        used_people.add(k)
        rows.append(i)
        owners.append(k)
        scores.append(1.0 - d)
    if not rows:
        return Detections.empty()
    return Detections(xyxy=faces.xyxy[rows], score=np.asarray(scores, np.float32),
                      concept_id=gallery.ids[owners],
                      name=np.array([gallery.names[k] for k in owners], dtype=object))
