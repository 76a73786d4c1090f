"""`blas_threads`: BLAS limited inside the block only, restored after, no effect at import."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from pekit._threads import blas_threads


def blas_counts() -> list[int]:
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


def test_blas_is_limited_inside_and_restored_after() -> None:
    np.ones((4, 4)) @ np.ones((4, 4))  # numpy's BLAS is loaded
    before = blas_counts()
    assert before, "numpy links a BLAS library"
    with blas_threads(1):
        assert blas_counts() == [1] * len(before)
        product = np.ones((64, 8)) @ np.ones((8, 4))
    assert blas_counts() == before
    np.testing.assert_array_equal(product, np.full((64, 4), 8.0))


def test_restored_even_when_the_block_raises() -> None:
    before = blas_counts()
    with pytest.raises(RuntimeError, match="boom"), blas_threads(1):
        raise RuntimeError("boom")
    assert blas_counts() == before


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="limit must be >= 1 thread, got 0"), blas_threads(0):
        pass


def test_importing_pekit_sets_no_thread_environment() -> None:
    code = ("import os; before = dict(os.environ); import pekit, pekit._threads, pekit.embed.onnx; "
            "print(sorted(k for k in os.environ if os.environ.get(k) != before.get(k)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


_OVERLAP = """
import json, threading, numpy as np
from threadpoolctl import threadpool_info
from pekit._threads import blas_threads
counts = lambda: [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
np.ones((4, 4)) @ np.ones((4, 4))
before, seen = counts(), []
a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
def a():
    with blas_threads(1):
        a_in.set(); b_in.wait(5)
    a_out.set()
def b():
    a_in.wait(5)
    with blas_threads(1):
        b_in.set(); a_out.wait(5); seen.append(counts())
threads = [threading.Thread(target=a), threading.Thread(target=b)]
[t.start() for t in threads]; [t.join(10) for t in threads]
print(json.dumps([before, seen, counts()]))
"""


def test_blocks_overlapping_in_threads_restore_the_settings_from_before_them() -> None:
    """Thread A enters, thread B enters, A leaves, B leaves: BLAS is back where it was (a
    restore per block put B's saved limit back last, for the whole process), and B ran
    limited to the end. In a process with 2 BLAS threads to start from, whatever the
    environment of the test run."""
    import json
    import os

    env = {**os.environ, "OPENBLAS_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}
    out = subprocess.run([sys.executable, "-c", _OVERLAP], capture_output=True, text=True, check=True, env=env)
    before, seen, after = json.loads(out.stdout)
    assert before == after == [2] * len(before) and before, out.stdout
    assert seen == [[1] * len(before)], out.stdout  # B ran limited after A left
