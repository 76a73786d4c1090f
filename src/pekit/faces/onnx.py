"""``onnx:<path>``: a face embedder of your choice as an ONNX file; dlib finds and aligns the faces.

For a stronger identity model than dlib's (an ArcFace-style network exported to ONNX,
e.g. the InsightFace recognition models, whose licences you check yourself). The graph
takes aligned face crops ``(N, 3, S, S) float32`` (``S`` read from its input; 112 for
ArcFace), RGB, normalised as ``(pixel - mean) / std``; its first output ``(N, D)`` is
the identity vector. Vectors are L2-normalised and compared by Euclidean distance (so
``tolerance`` 1.1 is a cosine similarity of 0.395). Faces are found by dlib's HOG detector
and aligned by its 5-point landmarks (``dlib.get_face_chip``), as for the dlib embedder;
a model trained on another alignment may need its ``padding`` tuned.

The fingerprint names the file's content (``onnx-face-<D>@<sha256 prefix>``), so persons
introduced with one model are never matched with vectors of another (and never with
object vectors: those have their own fingerprint).

Example:
    >>> faces = OnnxFaces("/models/arcface_r50.onnx")      # doctest: +SKIP
    >>> faces.embed(image, faces.detect(image).xyxy).shape  # doctest: +SKIP
    (1, 512)
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from pekit.embed.base import check_rgb
from pekit.errors import BackendError, InvalidInputError, require
from pekit.faces.dlib import DlibFaces, _load

log = logging.getLogger(__name__)

__all__ = ["OnnxFaces"]


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


class OnnxFaces(DlibFaces):
    """dlib's face detector + an ONNX identity embedder.

    Args:
        spec: path of the ``.onnx`` file.
        mean, std: input normalisation of the pixels (0-255), ArcFace's 127.5 / 127.5 by default.
        padding: margin of dlib's aligned face chip, as a fraction of the face (0.25: dlib's default).
        tolerance: Euclidean distance between unit vectors under which two faces are the
            same person (default 1.1, cosine 0.395); check it on your people with
            ``benchmarks/people.py --faces onnx:<path>``.
        threads: onnxruntime intra-op threads (0: its default).
        **detector: `DlibFaces` detector options (``max_side``, ``upsample``, ``min_score``).
    """

    kind = "person"

    def __init__(self, spec: str = "", *, mean: float = 127.5, std: float = 127.5, padding: float = 0.25,
                 tolerance: float = 1.1, threads: int = 0, **detector: Any) -> None:
        super().__init__(**detector)
        ort = require("onnxruntime", "core")
        path = Path(os.path.expanduser(str(spec).strip())) if str(spec).strip() else None
        if path is None or not path.is_file():
            raise InvalidInputError(
                f"onnx: needs the path of a face embedding model, e.g. 'onnx:/models/arcface.onnx'; "
                f"'{spec}' is not a file"
            )
        if not (std > 0 and 0 <= padding <= 1 and tolerance > 0):
            raise InvalidInputError("std and tolerance must be > 0 and padding in [0, 1]")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        try:
            self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for bad graphs
            raise BackendError(f"cannot load the face model '{path}': {exc}") from exc
        shape = self._session.get_inputs()[0].shape
        if len(shape) != 4 or shape[1] != 3 or not isinstance(shape[2], int) or shape[2] != shape[3]:
            raise BackendError(
                f"the face model '{path}' takes input of shape {shape}; pekit feeds aligned RGB crops "
                "(N, 3, S, S) with a fixed size S (112 for ArcFace)"
            )
        self.size = int(shape[2])
        self._input = self._session.get_inputs()[0].name
        self._dtype = np.float16 if self._session.get_inputs()[0].type == "tensor(float16)" else np.float32
        self.path, self.mean, self.std, self.padding = path, float(mean), float(std), float(padding)
        self.tolerance = float(tolerance)
        try:
            self.dim = int(self._embed(np.zeros((1, self.size, self.size, 3), np.uint8)).shape[1])
        except Exception as exc:
            raise BackendError(f"the face model '{path}' fails on a {self.size} x {self.size} crop: {exc}") from exc
        self._fingerprint = f"onnx-face-{self.dim}@{_digest(path)}"
        self._lock = threading.Lock()

    @property
    def fingerprint(self) -> str:
        """``onnx-face-<D>@<sha256 of the file, 16 hex digits>``."""
        return self._fingerprint

    def _embed(self, chips: np.ndarray) -> np.ndarray:
        """``(n, S, S, 3) uint8`` chips -> ``(n, D) float32`` unit vectors."""
        x = (chips.astype(np.float32) - self.mean) / self.std  # a float16 graph gets float16
        out = self._session.run(None, {self._input: np.ascontiguousarray(x.transpose(0, 3, 1, 2), self._dtype)})[0]
        out = np.asarray(out, np.float32).reshape(len(chips), -1)
        if not np.isfinite(out).all():
            raise BackendError(f"the face model '{self.path}' gave identity vectors that are not finite numbers "
                               "(NaN or inf); check the model, or export it in float32")
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)

    def embed(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """``(n, D) float32`` unit identity vectors of the faces in ``boxes (n, 4)``."""
        check_rgb(image, "the face embedder")
        if len(boxes) == 0:
            return np.zeros((0, self.dim), np.float32)
        models = _load()
        dlib = models["dlib"]
        img = np.ascontiguousarray(image)
        chips = []
        for x0, y0, x1, y1 in np.asarray(boxes, np.float32):
            rect = dlib.rectangle(round(float(x0)), round(float(y0)), round(float(x1)) - 1, round(float(y1)) - 1)
            shape = models["shape"](img, rect)
            chips.append(np.asarray(dlib.get_face_chip(img, shape, size=self.size, padding=self.padding)))
        with self._lock:
            return self._embed(np.stack(chips))

    def __repr__(self) -> str:
        return f"OnnxFaces('{self.path}', dim={self.dim}, size={self.size}, tolerance={self.tolerance})"
