"""Backbone work off the event loop, in a fixed pool with a bounded queue.

`BoundedExecutor.run` hands a blocking call (introduce, recognize, ask...) to a fixed-size
thread pool. At most ``workers + queue`` calls are admitted at once (a counting
semaphore); one more is refused at once with `BusyError` (HTTP 503 + ``Retry-After``)
instead of growing an unbounded backlog whose requests would time out anyway.

Example:
    >>> import asyncio
    >>> pool = BoundedExecutor(workers=1, queue=0)
    >>> asyncio.run(pool.run(sum, [1, 2]))
    3
    >>> pool.close()
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from pekit.errors import InvalidInputError, PekitError

__all__ = ["BoundedExecutor", "BusyError"]

T = TypeVar("T")


class BusyError(PekitError):
    """Every worker is busy and the queue is full (HTTP 503 with ``Retry-After``)."""

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BoundedExecutor:
    """A fixed pool of ``workers`` threads admitting at most ``queue`` waiting calls.

    Args:
        workers: threads running backbone work (the ONNX session uses several cores per
            call already; 1-2 is right on a small machine).
        queue: calls that may wait for a free worker; the next one gets `BusyError`.
        retry_after: seconds a refused client is told to wait.
    """

    def __init__(self, *, workers: int = 1, queue: int = 8, retry_after: int = 2) -> None:
        if workers < 1 or queue < 0:
            raise InvalidInputError(f"workers must be at least 1 and queue at least 0 (the defaults are 1 and 8), "
                                    f"got {workers} and {queue}")
        self.workers, self.queue, self.retry_after = int(workers), int(queue), int(retry_after)
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="pekit-backbone")
        self._slots = threading.BoundedSemaphore(self.workers + self.queue)
        self._lock = threading.Lock()
        self.admitted = 0  # now running or waiting
        self.refused = 0  # since start

    async def run(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` in the pool; `BusyError` at once when it is full."""
        if not self._slots.acquire(blocking=False):
            with self._lock:
                self.refused += 1
            raise BusyError(
                f"the server is busy ({self.workers} worker(s) running and {self.queue} request(s) waiting); "
                f"retry in {self.retry_after} s", retry_after=self.retry_after)
        with self._lock:
            self.admitted += 1

        def call() -> T:
            try:
                return fn(*args, **kwargs)
            finally:  # freed when the work really ends, even if the client went away meanwhile
                with self._lock:
                    self.admitted -= 1
                self._slots.release()

        try:
            future = self._pool.submit(contextvars.copy_context().run, call)  # log lines keep the request id
        except RuntimeError:  # shut down
            with self._lock:
                self.admitted -= 1
            self._slots.release()
            raise
        return await asyncio.wrap_future(future)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
