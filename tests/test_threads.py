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


def test_blocks_overlapping_in_threads_set_once_and_restore_once_after_the_last(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """BLAS settings are one per process: thread A enters, thread B enters, A leaves, B
    leaves. The limit is set when A enters and the settings from before are restored only
    when B leaves (a restore per block put back B's saved limit last, leaving the process at
    one thread). A recording stand-in for threadpoolctl's limiter checks the bookkeeping
    itself, whatever the BLAS library does with calls from several threads."""
    import threading

    import threadpoolctl

    calls: list[str] = []

    class Limiter:
        def __init__(self, *, limits: int, user_api: str) -> None:
            calls.append(f"set {limits}")

        def restore_original_limits(self) -> None:
            calls.append("restore")

    monkeypatch.setattr(threadpoolctl, "threadpool_limits", Limiter)
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    seen: list[list[str]] = []

    def a() -> None:
        with blas_threads(1):
            a_in.set()
            b_in.wait(5)
        a_out.set()

    def b() -> None:
        a_in.wait(5)
        with blas_threads(1):
            b_in.set()
            a_out.wait(5)
            seen.append(list(calls))  # A has left: nothing restored yet

    threads = [threading.Thread(target=a), threading.Thread(target=b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert seen == [["set 1"]] and calls == ["set 1", "restore"]
    with pytest.raises(RuntimeError), blas_threads(1):  # a block that raises still restores
        raise RuntimeError("boom")
    assert calls == ["set 1", "restore", "set 1", "restore"]
