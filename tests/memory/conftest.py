"""Memory-store fixtures: every store of the protocol, on real engines.

``store`` yields a `StoreHandle` for each implementation: `SqliteMemory` on a file in a
temporary folder, and `PgvectorMemory` in a fresh PostgreSQL schema of one server per test
session. The server is PostgreSQL 16 with pgvector 0.6 from the ``pgserver`` wheel (a
``[dev]`` dependency), started here on a Unix socket in a temporary folder and stopped at
the end of the session; nothing is mocked.
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pekit.memory import open_memory

SRC = str(Path(__file__).parents[2] / "src")
_schemas = itertools.count()


@dataclass
class StoreHandle:
    """One store under test: ``kind`` ("sqlite" / "postgresql"), a ``uri`` any process can
    open, and `open` for more connections to it (``read_only=True``...)."""

    kind: str
    uri: str

    def open(self, **options: Any) -> Any:
        return open_memory(self.uri, **options)


def subprocess_env() -> dict[str, str]:
    """Environment for a child Python that imports this checkout's pekit."""
    return {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreHandle]:
    """Each store implementation, empty: a temporary SQLite file or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield StoreHandle("sqlite", str(tmp_path / "memory.db"))
        return
    base = request.getfixturevalue("postgres_uri")
    sep = "&" if "?" in base else "?"
    yield StoreHandle("postgresql", f"{base}{sep}schema=t{os.getpid()}_{next(_schemas)}")


PYTHON = sys.executable
