"""Thread settings that keep numpy's BLAS from fighting onnxruntime for the cores.

onnxruntime runs the backbone pass on one intra-op thread per physical core. numpy's
OpenBLAS (or MKL) starts its own pool of as many threads for every matrix product. The
products after the pass (pooling proposals, cosine matching, part verification) are
small, so on a loaded or small machine BLAS threads mostly wait for cores that
onnxruntime's threads or other processes hold: on a 2-core CPU with a busy neighbour the
post-pass work took 70-90 ms instead of 1-3 ms. One BLAS thread is the fast choice there.

`blas_threads` limits BLAS inside a ``with`` block only (via ``threadpoolctl``), so
nothing changes at import and code outside the block keeps the user's settings.

Example:
    >>> import numpy as np
    >>> with blas_threads(1):
    ...     (np.ones((64, 8)) @ np.ones((8, 4))).shape
    (64, 4)
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["blas_threads", "cores"]


def cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS / Windows
        return os.cpu_count() or 1


#: BLAS settings are one per process: blocks running at once in several threads share the
#: first one's limit, and the last to leave restores what was there before the first came
_lock = threading.Lock()
_active = 0
_limits: Any = None  # the outermost block's threadpool_limits (it holds the original settings)


@contextmanager
def blas_threads(limit: int = 1) -> Iterator[None]:
    """Run the block with at most ``limit`` BLAS threads (numpy/scipy); restored on exit.

    The setting is the process's: while blocks overlap in several threads, the first one's
    limit holds, and the settings from before the first are restored when the last one
    leaves (restoring per block would leave a thread's limit behind for the whole process).
    Costs ~0.2 ms per outermost entry (threadpoolctl finds the loaded BLAS libraries each
    time, so a library loaded after the first call is limited too). Without
    ``threadpoolctl`` installed the block runs unchanged.
    """
    global _active, _limits
    if limit < 1:
        raise ValueError(f"limit must be >= 1 thread, got {limit}")
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a core dependency; keep working without it
        yield
        return
    with _lock:
        if _active == 0:
            _limits = threadpool_limits(limits=limit, user_api="blas")  # applied now
        _active += 1
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            if _active == 0 and _limits is not None:
                _limits.restore_original_limits()
                _limits = None
