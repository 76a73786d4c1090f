"""The models a `Personalizer` loads: their specs checked, each built on first use, once.

A `Personalizer` keeps its backbone pipeline, face model, LVLM and galleries in a
`SharedModels`; its `for_namespace` siblings (a service's users) share the one store, so a
model is loaded once per process however many users and threads ask for it. `check_specs`
refuses a bad LVLM or face model when the Personalizer is made, before anything loads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from pekit.errors import InvalidInputError
from pekit.types import finite_number

__all__ = ["SharedModels", "build_faces", "build_lvlm", "check_specs"]


class SharedModels:
    """Named models built lazily: `get` builds one on first use, once.

    A slow build (an LVLM load) holds only its own model's lock, so it blocks no other model.

    >>> models = SharedModels()
    >>> models.get("answer", lambda: 42), models.get("answer", lambda: 0)
    (42, 42)
    """

    def __init__(self) -> None:
        self._built: dict[str, Any] = {}
        self._lock = threading.Lock()  # guards the per-model locks
        self._locks: dict[str, threading.Lock] = {}

    def get(self, key: str, build: Callable[[], Any]) -> Any:
        """The model ``key``, built by ``build`` on first use (once, whatever the threads)."""
        model = self._built.get(key)
        if model is None:
            with self._lock:
                lock = self._locks.setdefault(key, threading.Lock())
            with lock:
                model = self._built.get(key)
                if model is None:
                    model = self._built[key] = build()
        return model

    def __contains__(self, key: str) -> bool:
        return key in self._built

    def __setitem__(self, key: str, value: Any) -> None:
        self._built[key] = value


def check_specs(lvlm: Any, faces: Any, face_tolerance: Any, lvlm_options: Any = None) -> None:
    """`InvalidInputError` for an ``lvlm`` that is neither a spec nor an object with
    ``generate``, ``lvlm_options`` that are not named options of a spec, ``faces`` that is
    neither a spec nor a face model, or a ``face_tolerance`` that is not a distance above 0
    (None: the default)."""
    if lvlm is not None and not isinstance(lvlm, str) and not callable(getattr(lvlm, "generate", None)):
        raise InvalidInputError(f"lvlm must be a spec ('none', 'hf:<id>', 'openai:<url>#<model>') or an object "
                                f"with generate(image, prompt, ...) (pekit.answer.LVLM), got {type(lvlm).__name__}")
    if lvlm_options:
        if not isinstance(lvlm_options, Mapping) or not all(isinstance(k, str) for k in lvlm_options):
            raise InvalidInputError(f"lvlm_options must map option names to values, e.g. {{'timeout': 30}}, got "
                                    f"{type(lvlm_options).__name__}")
        if lvlm is not None and not isinstance(lvlm, str):
            raise InvalidInputError("lvlm_options are for an LVLM given by name (lvlm='openai:...'); an LVLM "
                                    "object is built with its options already")
    if not isinstance(faces, str) and not (callable(getattr(faces, "detect", None))
                                           and callable(getattr(faces, "embed", None))
                                           and isinstance(getattr(faces, "fingerprint", None), str)):
        raise InvalidInputError(f"faces must be a face model spec ('dlib', 'dlib-cnn', 'onnx:<file>') or an object "
                                f"with detect, embed and a fingerprint (pekit.faces), got {type(faces).__name__}")
    if face_tolerance is not None and not (finite_number(face_tolerance) and float(face_tolerance) > 0):
        raise InvalidInputError(f"face_tolerance must be a face distance above 0 (dlib's own is 0.6; lower is "
                                f"stricter), got {face_tolerance!r}; leave it out for the face model's")


def build_faces(spec: Any) -> Any:
    """The face model a spec names (`pekit.faces.load_faces`), or the model object given."""
    from pekit.faces import load_faces

    return load_faces(spec) if isinstance(spec, str) else spec


def build_lvlm(spec: Any, device: str, options: Mapping[str, Any] | None = None) -> Any:
    """The LVLM a spec names (`pekit.answer.load_lvlm` with ``options``; an ``hf:`` model on
    the preset's ``device``, ``auto`` resolved, unless ``options`` name one), or the object
    given."""
    if not isinstance(spec, str):
        return spec
    from pekit.answer import load_lvlm

    options = dict(options or {})
    if spec.startswith("hf:") and "device" not in options:  # where the preset puts its torch models
        from pekit._hf import resolve_device

        options["device"] = resolve_device(device)
    return load_lvlm(spec, **options)  # an option it does not take: the registry's InvalidInputError names it
