"""`MemoryStore.summaries`: listing concepts reads names and counts, never the vectors."""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from pekit.cli import main
from pekit.errors import MemoryStoreError
from pekit.memory import MemoryStore, SqliteMemory
from pekit.memory.base import ConceptSummary
from pekit.types import Concept

BACKBONE = "toy-backbone@layer7"
VECTOR_COLUMNS = {("views", "vector"), ("parts", "vectors"), ("images", "data")}


def unit(k: int, seed: int = 0, d: int = 8) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(k, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture
def memory(tmp_path: Path) -> Iterator[SqliteMemory]:
    with SqliteMemory(tmp_path / "m.db", store_images=True) as m:
        m.add(Concept("Bo", unit(3), category="dog", context="my parents' dog", backbone=BACKBONE,
                      parts=unit(5, seed=1), threshold=0.55), images=[b"jpeg bytes"])
        m.add(Concept("Mug", unit(1, seed=2), backbone=BACKBONE))
        m.add(Concept("Rex", unit(2, seed=3), category="dog", namespace="ann", backbone=BACKBONE))
        m.add(Concept("Tom", unit(4, seed=4), category="cat", backbone=BACKBONE))
        yield m


def no_vector_reads(conn: sqlite3.Connection, *, allow_sizes: bool = False) -> list[tuple[str, str]]:
    """Deny (and record) every read of a vector or image column on ``conn``.

    ``allow_sizes``: let statements that only take ``length()`` of the vector blobs through
    (SQLite answers ``length()`` of a blob from the record header, without loading it):
    `summaries` checks blob sizes to report damaged concepts.
    """
    denied: list[tuple[str, str]] = []
    sizes_only: list[bool] = [False]

    def authorizer(action: int, table: str | None, column: str | None, *_: object) -> int:
        if action == sqlite3.SQLITE_FUNCTION and column == "length":
            sizes_only[0] = allow_sizes
        if action == sqlite3.SQLITE_SELECT:
            sizes_only[0] = False
        if sizes_only[0] and (table, column) in (("views", "vector"), ("parts", "vectors")):
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_READ and (table, column) in VECTOR_COLUMNS:
            denied.append((str(table), str(column)))
            return sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_OK

    conn.set_authorizer(authorizer)
    return denied


def test_summaries_list_every_field_but_the_vectors_in_id_order(memory: SqliteMemory) -> None:
    full = {c.name: c for c in memory.concepts()}
    got = memory.summaries()
    assert [s.name for s in got] == ["Bo", "Mug", "Tom"]  # id order; 'ann' is another namespace
    assert all(isinstance(s, ConceptSummary) for s in got)
    for s in got:
        c = full[s.name]
        assert (s.id, s.namespace, s.category, s.context, s.threshold, s.created, s.updated) == (
            c.id, c.namespace, c.category, c.context, c.threshold, c.created, c.updated)
        assert s.views == len(c.views)
    assert [s.views for s in got] == [3, 1, 4]
    assert not hasattr(got[0], "parts") and not hasattr(got[0], "embedding")


def test_summaries_read_no_vector_or_image_column(memory: SqliteMemory) -> None:
    denied = no_vector_reads(memory._db.connection(), allow_sizes=True)
    try:
        names = [s.name for s in memory.summaries()]
        assert names == ["Bo", "Mug", "Tom"] and denied == []
        with pytest.raises((sqlite3.DatabaseError, MemoryStoreError)):  # the authorizer bites concepts()
            memory.concepts()
        assert denied
    finally:
        memory._db.connection().set_authorizer(None)


def test_summaries_of_other_and_empty_namespaces(memory: SqliteMemory) -> None:
    assert [(s.name, s.namespace, s.views) for s in memory.summaries(namespace="ann")] == [("Rex", "ann", 2)]
    assert memory.summaries(namespace="nobody") == []
    memory.remove("Mug")
    assert [s.name for s in memory.summaries()] == ["Bo", "Tom"]


def test_summaries_is_part_of_the_protocol(memory: SqliteMemory) -> None:
    assert isinstance(memory, MemoryStore)
    assert "summaries" in MemoryStore.__dict__


def test_pekit_list_reads_summaries_not_vectors(memory: SqliteMemory, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    path = memory.uri
    memory.close()

    def refuse(self: SqliteMemory, **_: object) -> None:
        raise AssertionError("pekit list must not load every concept's vectors")

    monkeypatch.setattr(SqliteMemory, "concepts", refuse)
    assert main(["list", "--memory", path]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert lines[0].split()[:4] == ["Bo", "dog", "3", "view(s)"] and lines[0].endswith("— my parents' dog")
    assert lines[1].split()[:3] == ["Mug", "-", "1"]
    assert main(["list", "--json", "--memory", path, "--namespace", "ann"]) == 0
    import json

    rows = json.loads(capsys.readouterr().out)
    assert rows == [{"name": "Rex", "id": rows[0]["id"], "kind": "object", "category": "dog", "context": "",
                     "views": 2, "threshold": None, "corrections": 0}]


def test_listing_imports_no_model_code(memory: SqliteMemory) -> None:
    import subprocess

    code = ("import sys; from pekit.cli import main; main(['list', '--memory', sys.argv[1]]); "
            "print(sorted(m for m in ('onnxruntime', 'scipy', 'PIL', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code, memory.uri], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"
