"""pekit: personalize any vision-language model without training.

Introduce your things with a photo or two; pekit finds them in new photos, draws a
coloured box around each and asks an LVLM to answer using their names (PeKit,
arXiv 2502.02452). The paper's stages live in one package each: `pekit.extract`
(views), `pekit.embed` (patch features + pooling), `pekit.memory`, `pekit.retrieve`,
`pekit.prompt` and `pekit.answer`.

Example:
    >>> import pekit                                                    # doctest: +SKIP
    >>> p = pekit.Personalizer()                                        # doctest: +SKIP
    >>> p.introduce("Bo", ["bo1.jpg", "bo2.jpg"], category="dog")       # doctest: +SKIP
    >>> p.recognize("park.jpg").name                                    # doctest: +SKIP
    array(['Bo'], dtype=object)

Importing pekit is light: models load on first use.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "Personalizer": "pekit.personalizer",
    "build_pipeline": "pekit.personalizer",
    "Pipeline": "pekit.pipeline",
    "Concept": "pekit.types",
    "Detections": "pekit.types",
    "PatchGrid": "pekit.types",
    "Answer": "pekit.types",
    "open_memory": "pekit.memory",
    "load_image": "pekit.images",
    "load_backbone": "pekit.embed",
    "annotate": "pekit.prompt.overlay",
    "load_lvlm": "pekit.answer",
    "get_preset": "pekit.presets",
    "Preset": "pekit.presets",
    "PRESETS": "pekit.presets",
    "available": "pekit.registry",
    "PekitError": "pekit.errors",
}

__all__ = sorted([*_LAZY, "__version__"])


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'pekit' has no attribute '{name}'")


def __dir__() -> list[str]:
    return __all__
