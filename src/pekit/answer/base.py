"""The LVLM protocol: one annotated image (or, where the model takes several, a few) and one
text prompt in, one answer string out.

A backend that takes several images in one message says so with ``max_images > 1`` (see
`images_per_prompt`) and accepts a list of images for ``image``, sent in order before the
prompt; answers about a clip use that for key frames, and one contact sheet otherwise.

Example:
    >>> import numpy as np
    >>> from pekit.answer.none import NoneLVLM
    >>> lvlm: LVLM = NoneLVLM()
    >>> lvlm.generate(np.zeros((8, 8, 3), np.uint8), "What is this?")
    ''
"""

from __future__ import annotations

import threading
from typing import Any, Protocol, runtime_checkable

import numpy as np

from pekit.errors import InvalidInputError
from pekit.types import finite_number, whole_number

__all__ = [
    "DEFAULT_MAX_NEW_TOKENS",
    "LVLM",
    "MAX_PROMPT_CHARS",
    "ThreadUsage",
    "check_generation",
    "check_generation_options",
    "check_image",
    "check_images",
    "check_max_image_side",
    "check_prompt",
    "images_per_prompt",
    "shrink_to",
]

DEFAULT_MAX_NEW_TOKENS = 256
#: Longest prompt a backend accepts (question + every concept's context), in characters.
MAX_PROMPT_CHARS = 100_000


class ThreadUsage:
    """A backend's ``last_usage`` (tokens and seconds of its last answer), kept per thread:
    a server answers several requests at once with one backend, and each `respond` reads
    its own call's usage after `LVLM.generate` returns, not another request's.

    >>> import threading
    >>> class Backend:
    ...     last_usage = ThreadUsage()
    >>> b = Backend(); b.last_usage = {"prompt_tokens": 42}
    >>> seen = []; t = threading.Thread(target=lambda: seen.append(b.last_usage)); t.start(); t.join()
    >>> b.last_usage, seen
    ({'prompt_tokens': 42}, [{}])
    """

    def __set_name__(self, owner: type, name: str) -> None:
        self._slot = f"_{name}_per_thread"

    def _local(self, obj: Any) -> threading.local:
        local = obj.__dict__.get(self._slot)
        if local is None:
            local = obj.__dict__.setdefault(self._slot, threading.local())
        return local

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        return getattr(self._local(obj), "usage", {})

    def __set__(self, obj: Any, value: dict[str, Any]) -> None:
        self._local(obj).usage = dict(value)


@runtime_checkable
class LVLM(Protocol):
    """A vision-language model that answers a text prompt about one image.

    Attributes:
        name: the backend name it was built from (``"none"``, ``"hf:<id>"``, ``"openai:<url>#<model>"``).
        max_images: (optional) how many images one prompt may carry; absent means 1.
    """

    name: str

    def generate(
        self,
        image: np.ndarray,
        prompt: str,
        *,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        temperature: float = 0.0,
        seed: int | None = None,
    ) -> str:
        """Answer ``prompt`` about ``image``.

        Args:
            image: ``(H, W, 3) uint8`` RGB, already annotated with the concept boxes. A
                backend with ``max_images > 1`` also takes a list of such images (at most
                ``max_images``), sent in order in one message.
            prompt: the text built by `pekit.prompt.build_prompt`.
            max_new_tokens: upper bound on the answer's length in tokens.
            temperature: ``0`` for greedy (deterministic) decoding, ``> 0`` to sample.
            seed: makes sampling repeatable where the backend supports it.

        Returns:
            The answer text, stripped.
        """
        ...


def check_image(image: object) -> np.ndarray:
    """Validate an LVLM input image: ``(H, W, 3) uint8`` RGB, non-empty.

    >>> check_image(np.zeros((2, 3, 3), np.uint8)).shape
    (2, 3, 3)
    """
    if not isinstance(image, np.ndarray):
        raise InvalidInputError(
            f"the LVLM image must be an (H, W, 3) uint8 numpy array, but got {type(image).__name__}; "
            "load it with pekit.images.load_image"
        )
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise InvalidInputError(
            f"the LVLM image must have shape (H, W, 3) and dtype uint8, but got shape {image.shape} "
            f"dtype {image.dtype}; convert it with pekit.images.load_image"
        )
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise InvalidInputError(f"the LVLM image is empty (shape {image.shape})")
    return image


def check_max_image_side(side: Any) -> Any:
    """``side`` if it is None or a whole number of pixels >= 16 (a backend's ``max_image_side``),
    else `InvalidInputError` (a negative one used to send a 1 x 1 image)."""
    if side is not None and (not whole_number(side) or side < 16):
        raise InvalidInputError(f"max_image_side must be None or a whole number of pixels >= 16, got {side!r}")
    return side


def shrink_to(image: np.ndarray, side: int | None) -> Any:
    """``image`` as a PIL image whose long side is at most ``side`` pixels (bicubic; as it is when
    smaller, or when ``side`` is None): what a backend with ``max_image_side`` sends.

    >>> shrink_to(np.zeros((10, 40, 3), np.uint8), 20).size
    (20, 5)
    """
    from PIL import Image

    pil = Image.fromarray(image)
    if side and max(pil.size) > side:
        scale = side / max(pil.size)
        pil = pil.resize((max(1, round(pil.width * scale)), max(1, round(pil.height * scale))),
                         Image.Resampling.BICUBIC)
    return pil


def images_per_prompt(lvlm: Any) -> int:
    """How many images ``lvlm`` takes in one prompt (its ``max_images``; 1 when it has none).

    >>> from pekit.answer.none import NoneLVLM
    >>> images_per_prompt(NoneLVLM())
    1
    """
    n = getattr(lvlm, "max_images", 1)
    return int(n) if whole_number(n) and n >= 1 else 1


def check_images(image: object, max_images: int = 1) -> list[np.ndarray]:
    """Validate one image or a list of images for a backend taking at most ``max_images``.

    >>> len(check_images([np.zeros((2, 3, 3), np.uint8)] * 2, max_images=4))
    2
    """
    images = list(image) if isinstance(image, (list, tuple)) else [image]
    if not images:
        raise InvalidInputError("no image to send; pass one (H, W, 3) uint8 image or a list of them")
    if len(images) > max_images:
        raise InvalidInputError(
            f"{len(images)} images for a backend that takes at most {max_images} per prompt; send fewer, "
            "or one contact sheet of them"
        )
    return [check_image(i) for i in images]


def check_prompt(prompt: object) -> str:
    """Validate a prompt: a non-empty string of at most `MAX_PROMPT_CHARS` characters.

    >>> check_prompt(" Describe the image. ")
    'Describe the image.'
    """
    if not isinstance(prompt, str):
        raise InvalidInputError(f"the prompt must be a string, but got {type(prompt).__name__}")
    text = prompt.strip()
    if not text:
        raise InvalidInputError("the prompt is empty; pass a question or use build_prompt('caption')")
    if len(text) > MAX_PROMPT_CHARS:
        raise InvalidInputError(
            f"the prompt is {len(text):,} characters long; the limit is {MAX_PROMPT_CHARS:,}. "
            "Shorten the question or the concepts' contexts."
        )
    return text


def check_generation(max_new_tokens: int, temperature: float, seed: int | None) -> None:
    """Validate generation options; raises `InvalidInputError` naming the bad one.

    >>> check_generation(32, 0.0, None)
    """
    if not whole_number(max_new_tokens) or max_new_tokens < 1:
        raise InvalidInputError(f"max_new_tokens must be a positive integer, got {max_new_tokens!r}")
    if not finite_number(temperature) or temperature < 0:
        raise InvalidInputError(f"temperature must be a number >= 0 (0 = greedy), got {temperature!r}")
    if seed is not None and not whole_number(seed):
        raise InvalidInputError(f"seed must be an integer or None, got {seed!r}")


def check_generation_options(generation: dict[str, Any], *, video: bool = False) -> None:
    """``ask`` / ``caption``'s generation keyword options: known names (``fps`` and
    ``max_frames`` too for a clip) and valid values (`check_generation`); `InvalidInputError`
    naming the bad one.

    >>> check_generation_options({"max_new_tokens": 64})
    """
    known = {"max_new_tokens", "temperature", "seed", *(("fps", "max_frames") if video else ())}
    unknown = sorted(set(generation) - known)
    if unknown:
        also = "" if video else " (and fps, max_frames for a video)"
        raise InvalidInputError(f"unknown option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; ask and "
                                f"caption take max_new_tokens, temperature and seed{also}")
    check_generation(generation.get("max_new_tokens", DEFAULT_MAX_NEW_TOKENS), generation.get("temperature", 0.0),
                     generation.get("seed"))
