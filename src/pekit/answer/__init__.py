"""Stage 3, answering: LVLM backends behind one protocol, and `respond` to run the stage.

Backends by name (``load_lvlm(name)`` or ``pekit.registry.create("lvlm", name)``):

* ``none`` - no model; the `Answer` carries the prompt and the annotated image;
* ``hf:<hub id or local dir>`` - a transformers image-text-to-text model (``pekit-vlm[hf]``);
* ``openai:<base url>#<model>`` - any OpenAI-compatible chat-completions server.

Registry lines (at the end of ``pekit/registry.py``)::

    register("lvlm", "none", "pekit.answer.none:NoneLVLM",
             "no model: returns the prompt and the annotated image")
    register("lvlm", "hf:", "pekit.answer.hf:HFLVLM",
             "transformers image-text-to-text model by hub id or local dir (needs pekit-vlm[hf])")
    register("lvlm", "openai:", "pekit.answer.openai:OpenAILVLM",
             "OpenAI-compatible chat-completions server: openai:<base url>#<model>")

Example:
    >>> import numpy as np
    >>> lvlm = load_lvlm("none")
    >>> lvlm.generate(np.zeros((8, 8, 3), np.uint8), "Describe the image.")
    ''
"""

from __future__ import annotations

from typing import Any

from pekit.answer.base import DEFAULT_MAX_NEW_TOKENS, LVLM
from pekit.answer.respond import respond

__all__ = ["DEFAULT_MAX_NEW_TOKENS", "LVLM", "available_lvlms", "load_lvlm", "respond"]


def available_lvlms() -> dict[str, str]:
    """Registered LVLM backend names (prefixes end with ``:``) with a one-line description.

    >>> sorted(available_lvlms())
    ['hf:', 'none', 'openai:']
    """
    from pekit.registry import available

    return available("lvlm")


def load_lvlm(name: str = "none", **options: Any) -> LVLM:
    """Build an LVLM backend by name; unknown names raise `BackendNotFoundError` listing them.

    Options go to the backend: ``device=``, ``dtype=`` for ``hf:``; ``timeout=``,
    ``retries=``, ``api_key_env=``, ``stream=`` for ``openai:``.

    >>> load_lvlm("none").name
    'none'
    >>> load_lvlm("openai:http://localhost:8000/v1#llava", timeout=30).model
    'llava'
    """
    from pekit.registry import create

    return create("lvlm", name, **options)
