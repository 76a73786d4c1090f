"""dlib face detection (HOG, or the MMOD CNN) and the 128-d dlib ResNet face embedder, offline.

The model files come from the PyPI package ``face-recognition-models`` (MIT package; the
dlib models inside were released into the public domain or under CC0 1.0 by Davis King;
only the 5-point landmark model, the ResNet embedder and, with ``detector="cnn"``, the
MMOD face detector are used, not the 68-point model whose training set restricts
commercial use). dlib itself comes from ``dlib-bin`` (Boost
Software License). Both are imported lazily, on the first detection.

Example:
    >>> faces = DlibFaces()                                   # doctest: +SKIP
    >>> found = faces.detect(image)                           # doctest: +SKIP
    >>> faces.embed(image, found.xyxy).shape                  # doctest: +SKIP
    (1, 128)
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np

from pekit.embed.base import check_rgb
from pekit.errors import MissingDependencyError, require
from pekit.types import Detections

log = logging.getLogger(__name__)

__all__ = ["DlibFaces", "dlib_cnn", "models_dir"]

_LOCK = threading.Lock()
_MODELS: dict[str, Any] = {}
#: dlib's detectors and networks keep scratch buffers: one call at a time gave another
#: thread's photo's boxes (46 of 160 detections in four threads). The HOG detector is cheap
#: to make, so each thread has its own; the CNN and the embedder run one call at a time.
_RUN = threading.Lock()
_THREAD = threading.local()


def models_dir() -> Path:
    """Folder of the ``face-recognition-models`` files, found without importing the package.

    (Its ``__init__`` imports ``pkg_resources``, which recent setuptools no longer ships.)
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(
            "person concepts need the face models: run `pip install 'pekit-vlm[faces]'` "
            "(or `pip install face-recognition-models dlib-bin`)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def _load() -> dict[str, Any]:
    with _LOCK:
        if not _MODELS:
            dlib = require("dlib", "faces", "dlib-bin")
            root = models_dir()
            _MODELS["dlib"] = dlib
            _MODELS["shape"] = dlib.shape_predictor(str(root / "shape_predictor_5_face_landmarks.dat"))
            embedder = root / "dlib_face_recognition_resnet_model_v1.dat"
            _MODELS["embedder"] = dlib.face_recognition_model_v1(str(embedder))
        return _MODELS


def _hog() -> Any:
    """This thread's HOG face detector."""
    found = getattr(_THREAD, "hog", None)
    if found is None:
        found = _THREAD.hog = _load()["dlib"].get_frontal_face_detector()
    return found


def _cnn() -> Any:
    models = _load()
    with _LOCK:
        if "cnn" not in _MODELS:
            path = models_dir() / "mmod_human_face_detector.dat"
            _MODELS["cnn"] = models["dlib"].cnn_face_detection_model_v1(str(path))
        return _MODELS["cnn"]


def _downscale(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    h, w = image.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale >= 1.0:
        return image, 1.0
    from PIL import Image

    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR)), scale


class DlibFaces:
    """Face detector + identity embedder.

    Args:
        detector: ``"hog"`` (default: frontal faces, ~0.5 s a 720p frame here) or ``"cnn"``
            (dlib's MMOD CNN from the same package: also finds turned and small faces, but
            takes 7-10 s a 640 x 360 frame on this 2-core CPU; dlib-bin has no GPU).
            The embedder, so the fingerprint, is the same for both.
        max_side: the detector runs on the image downscaled to this long side (pixels).
        upsample: dlib's upsampling passes (1 finds faces down to ~40 px at ``max_side``).
        min_score: HOG detection score below which a face is dropped (dlib's default is 0;
            0.3 drops the weakest false detections on textured backgrounds); for ``cnn``,
            its confidence.
        jitters: dlib's re-sampling count for embeddings (0 = one pass, fastest).
    """

    kind = "person"
    dim = 128
    #: same person under this Euclidean distance (`pekit.faces.FACE_TOLERANCE`)
    tolerance = 0.6

    def __init__(self, *, max_side: int = 1024, upsample: int = 1, min_score: float = 0.3, jitters: int = 0,
                 detector: str = "hog") -> None:
        if detector not in ("hog", "cnn"):
            from pekit.errors import InvalidInputError

            raise InvalidInputError(f"unknown face detector '{detector}'; choose hog or cnn")
        self.detector = detector
        self.max_side = int(max_side)
        self.upsample = int(upsample)
        self.min_score = float(min_score)
        self.jitters = int(jitters)

    @property
    def fingerprint(self) -> str:
        """Identifies the vectors: same fingerprint, comparable vectors."""
        return "dlib-face-128@resnet_v1"

    def detect(self, image: np.ndarray, *, upsample: int | None = None) -> Detections:
        """Faces in an ``(H, W, 3) uint8`` image: boxes in its pixels, HOG scores, best first."""
        check_rgb(image, "the face detector")
        small, scale = _downscale(image, self.max_side)
        times = self.upsample if upsample is None else int(upsample)
        if self.detector == "cnn":
            cnn = _cnn()
            with _RUN:
                found = [d for d in cnn(np.ascontiguousarray(small), times) if d.confidence >= self.min_score]
            rects, scores = [d.rect for d in found], [d.confidence for d in found]
        else:
            rects, scores, _ = _hog().run(np.ascontiguousarray(small), times, self.min_score)
        if not rects:
            return Detections.empty()
        h, w = image.shape[:2]
        xyxy = np.array([[r.left(), r.top(), r.right() + 1, r.bottom() + 1] for r in rects], np.float32) / scale
        xyxy = np.clip(xyxy, 0, [w, h, w, h])
        keep = (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])
        order = np.argsort(-np.asarray(scores, np.float32)[keep], kind="stable")
        return Detections(xyxy=xyxy[keep][order], score=np.asarray(scores, np.float32)[keep][order])

    def embed(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """``(n, 128) float32`` identity vectors of the faces in ``boxes (n, 4)`` (aligned by 5 landmarks).

        Compare them with Euclidean distance; dlib's usual same-person tolerance is 0.6.
        """
        check_rgb(image, "the face embedder")
        models = _load()
        dlib = models["dlib"]
        img = np.ascontiguousarray(image)
        out = np.zeros((len(boxes), self.dim), np.float32)
        for i, (x0, y0, x1, y1) in enumerate(np.asarray(boxes, np.float32)):
            rect = dlib.rectangle(round(float(x0)), round(float(y0)), round(float(x1)) - 1, round(float(y1)) - 1)
            with _RUN:
                shape = models["shape"](img, rect)
                out[i] = np.asarray(models["embedder"].compute_face_descriptor(img, shape, self.jitters), np.float32)
        return out

    def __repr__(self) -> str:
        return (f"DlibFaces(detector={self.detector!r}, max_side={self.max_side}, upsample={self.upsample}, "
                f"min_score={self.min_score})")


def dlib_cnn(**options: Any) -> DlibFaces:
    """`DlibFaces` with the MMOD CNN detector (registered as ``dlib-cnn``)."""
    return DlibFaces(detector="cnn", **options)
