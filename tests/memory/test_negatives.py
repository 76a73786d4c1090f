"""Negative views in the embedded store: round trip, schema 2, not counted as views."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from pekit.errors import SchemaError
from pekit.memory import open_memory
from pekit.memory._schema import SCHEMA_VERSION
from pekit.types import Concept


def _concept(**kw) -> Concept:
    return Concept("Bo", np.eye(2, 8), parts=np.eye(3, 8), backbone="toy", **kw)


def test_negatives_round_trip_and_update(tmp_path: Path) -> None:
    with open_memory(tmp_path / "m.db") as m:
        stored = m.add(_concept(negatives=np.eye(1, 8, 5)))
        got = m.get("Bo")
        assert got.negatives is not None and got.negatives.tolist() == np.eye(1, 8, 5).tolist()
        assert got.views.tolist() == np.eye(2, 8).tolist()                 # views untouched by negatives
        assert m.summaries()[0].views == 2
        import dataclasses

        m.update(dataclasses.replace(stored, negatives=np.eye(2, 8, 6)))
        assert m.get("Bo").negatives.tolist() == np.eye(2, 8, 6).tolist()
        assert m.add(_concept(), replace=True).negatives is None and m.get("Bo").negatives is None


def test_a_schema_1_file_is_upgraded_when_opened_for_writing(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    with open_memory(path) as m:
        m.add(_concept())
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    with open_memory(path) as m:
        assert m.get("Bo").negatives is None
        m.add(_concept(negatives=np.eye(1, 8, 4)), replace=True)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
    conn.close()


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    with open_memory(path) as m:
        m.add(_concept())
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(SchemaError, match="newer pekit"):
        open_memory(path).concepts()
