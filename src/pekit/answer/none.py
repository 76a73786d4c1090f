"""`none`: an LVLM that answers nothing, for when only the annotated image and prompt matter.

Useful offline, in tests, and to inspect what would be sent to a real model.

Example:
    >>> import numpy as np
    >>> lvlm = NoneLVLM()
    >>> lvlm.generate(np.zeros((4, 4, 3), np.uint8), "Where is Bo?")
    ''
    >>> lvlm.last_prompt
    'Where is Bo?'
"""

from __future__ import annotations

import numpy as np

from pekit.answer.base import DEFAULT_MAX_NEW_TOKENS, check_generation, check_image, check_prompt

__all__ = ["NoneLVLM"]


class NoneLVLM:
    """Returns ``""``; validates its inputs like a real backend and keeps the last ones."""

    name = "none"

    def __init__(self) -> None:
        self.last_prompt: str | None = None
        self.last_image: np.ndarray | None = None

    def generate(
        self,
        image: np.ndarray,
        prompt: str,
        *,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        temperature: float = 0.0,
        seed: int | None = None,
    ) -> str:
        """Validate the inputs, remember them, and return ``""``."""
        self.last_image = check_image(image)
        self.last_prompt = check_prompt(prompt)
        check_generation(max_new_tokens, temperature, seed)
        return ""

    def __repr__(self) -> str:
        return "NoneLVLM()"
