"""Several processes writing one new memory file at once: every committed concept stays, and
no writer is told the file is "not a pekit memory" while another one creates it.

A race test: each trial starts four processes on a new path behind a barrier. Before the
header was read as one snapshot, three runs of this test in three failed (a writer read the
new file's tables before its application id); it cannot fail when the code is right.
Processes are forked (where the platform can): they start at once, which is the race; they
touch only SQLite and small numpy arrays, no thread pool.
"""

from __future__ import annotations

import multiprocessing as mp
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np

WRITERS, CONCEPTS, TRIALS = 4, 8, 12


def _writer(path: str, w: int, barrier: Any, results: Any) -> None:
    from pekit.memory import SqliteMemory
    from pekit.types import Concept

    memory = SqliteMemory(path, timeout=30)
    barrier.wait()
    stored, errors = [], []
    for i in range(CONCEPTS):
        try:
            memory.add(Concept(f"w{w}c{i}", np.eye(1, 8) + 0.01 * i, backbone="toy"))
            stored.append(f"w{w}c{i}")
        except Exception as exc:  # reported to the test
            errors.append(f"{type(exc).__name__}: {exc}")
    memory.close()
    results.put((stored, errors))


def test_processes_creating_one_memory_at_once_keep_every_concept(tmp_path: Path) -> None:
    from pekit.memory import SqliteMemory

    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    for trial in range(TRIALS):
        path = tmp_path / f"t{trial}" / "sub" / "m.db"
        barrier, results = ctx.Barrier(WRITERS), ctx.Queue()
        procs = [ctx.Process(target=_writer, args=(str(path), w, barrier, results)) for w in range(WRITERS)]
        for p in procs:
            p.start()
        outcomes = [results.get(timeout=120) for _ in procs]
        for p in procs:
            p.join(timeout=60)
        stored = {name for names, _ in outcomes for name in names}
        errors = [e for _, errs in outcomes for e in errs]
        assert errors == [] and len(stored) == WRITERS * CONCEPTS, (trial, errors[:3])
        with SqliteMemory(path, must_exist=True) as memory:
            assert set(memory.names()) == stored
        assert sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone()[0] == "ok"
