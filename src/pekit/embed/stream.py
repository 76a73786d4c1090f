"""Backbone passes over a stream of images: decoding ahead, several passes at a time, in order.

`encode_stream` is what `Pipeline.encode_many` (and through it `recognize_many`, video and
the evaluation) runs: one thread decodes the next images while ``workers`` passes run, so
the caller's work on a result (matching, drawing) overlaps the next passes, and at most
``2 * workers`` decoded images wait in memory. A backbone with ``for_workers``
(`ParallelBackbone`, the ONNX one) splits the cores between the passes; any other runs one
pass at a time.

Example:
    >>> results = encode_stream(["a.jpg", "b.jpg"], lambda backbone, rgb, flag: ..., backbone)  # doctest: +SKIP
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from pekit.embed.base import Backbone, ParallelBackbone
from pekit.errors import ImageError, InvalidInputError
from pekit.types import PatchGrid

__all__ = ["check_workers", "encode_stream", "parallel_backbone"]


def check_workers(workers: Any) -> None:
    """``workers`` (backbone passes at a time) is None or a whole number >= 1; `InvalidInputError` otherwise."""
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise InvalidInputError(f"workers must be a whole number >= 1 (or None: one per core, up to 4), "
                                f"got {workers!r}")


def parallel_backbone(backbone: Backbone, workers: int | None) -> tuple[Backbone, int]:
    """The backbone to run ``workers`` passes at a time with, and that number: a
    `ParallelBackbone` split between up to 4 passes (one per core by default), any other
    backbone alone (one pass at a time)."""
    check_workers(workers)
    if not isinstance(backbone, ParallelBackbone):
        return backbone, 1
    from pekit._threads import cores

    n = workers or min(4, cores())
    return (backbone.for_workers(n) if n > 1 else backbone), n


def encode_stream(images: Iterable[Any], embed: Callable[[Backbone, np.ndarray, bool], PatchGrid],
                  backbone: Backbone, *, saliency: bool | Sequence[bool] = True, workers: int | None = None,
                  decode: Callable[[Any], np.ndarray]) -> Iterator[tuple[np.ndarray, PatchGrid] | ImageError]:
    """``embed(backbone, rgb, saliency)`` over a stream of images, in order.

    Yields ``(rgb, grid)`` per image, or the `ImageError` of an image that ``decode``
    cannot read (the stream goes on; raise it to stop). When ``images`` itself raises (a
    generator that fails), the images it gave before are yielded first, then its error.
    ``saliency``: one flag for all, or one per image; ``workers``: passes at a time
    (`parallel_backbone`).
    """
    backbone, n = parallel_backbone(backbone, workers)
    flags = None if isinstance(saliency, bool) else list(saliency)

    def decoded(src: Any) -> np.ndarray | ImageError:
        try:
            return decode(src)
        except ImageError as exc:
            return exc

    def run(ready: Future, flag: bool) -> tuple[np.ndarray, PatchGrid] | ImageError:
        img = ready.result()
        if isinstance(img, ImageError):
            return img
        return img, embed(backbone, img, flag)

    loader = ThreadPoolExecutor(1, thread_name_prefix="pekit-decode")
    passes = ThreadPoolExecutor(n, thread_name_prefix="pekit-encode")
    pending: deque[Future] = deque()
    stream = iter(images)
    try:
        for i in itertools.count():
            try:
                src = next(stream)
            except StopIteration:
                break
            except Exception:  # the caller's stream failed: first what it gave before, then its error
                while pending:
                    yield pending.popleft().result()
                raise
            flag = saliency if flags is None else bool(flags[i])
            pending.append(passes.submit(run, loader.submit(decoded, src), bool(flag)))
            if len(pending) >= 2 * n:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:  # a consumer that stops early: drop what has not started
        loader.shutdown(wait=True, cancel_futures=True)
        passes.shutdown(wait=True, cancel_futures=True)
