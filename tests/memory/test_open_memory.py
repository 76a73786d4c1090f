"""`open_memory` picks the store from the URI; `default_memory_path` follows $PEKIT_MEMORY."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import pekit.memory
from pekit.errors import InvalidInputError, MemoryStoreError
from pekit.memory import SqliteMemory, default_memory_path, open_memory
from pekit.types import Concept


@pytest.mark.parametrize(
    "spell",
    [str, lambda p: p, lambda p: f"file:{p}", lambda p: p.as_uri(), lambda p: f"file://localhost{p}"],
    ids=["str", "Path", "file:path", "file:///abs", "file://localhost"],
)
def test_paths_and_file_uris_open_the_embedded_store(tmp_path: Path, spell) -> None:
    path = tmp_path / "a b" / "memory.db"  # a space, and a folder that does not exist yet
    with open_memory(spell(path)) as memory:
        assert isinstance(memory, SqliteMemory) and memory.uri == str(path)
        memory.add(Concept("Bo", np.eye(1, 4), backbone="toy"))
    with SqliteMemory(path) as memory:
        assert memory.count() == 1


def test_relative_file_uri_and_read_only_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with open_memory("file:rel.db") as memory:
        memory.add(Concept("Bo", np.eye(1, 4), backbone="toy"))
    with open_memory("file:rel.db?mode=ro") as memory:
        assert memory.uri == str(tmp_path / "rel.db") and memory.read_only and memory.count() == 1


@pytest.mark.parametrize(
    ("uri", "error", "match"),
    [
        # nothing listens on port 1: a clear error naming the server, with the password masked
        ("postgresql://me:secret@127.0.0.1:1/pekit", MemoryStoreError,
         r"cannot connect to the PostgreSQL server of memory postgresql://me:\*\*\*@127\.0\.0\.1:1/pekit"),
        ("postgres://127.0.0.1:1/pekit?schema=Bad-Name", InvalidInputError, "schema name must be"),
        ("s3://bucket/memory.db", MemoryStoreError, "unknown memory URI scheme 's3'.*memory://"),
        ("file://otherhost/memory.db", InvalidInputError, "remote host"),
        ("file:x.db?cache=shared", InvalidInputError, "mode=ro"),
        ("", InvalidInputError, "path or a URI"),
        ("   ", InvalidInputError, "path or a URI"),
    ],
)
def test_unsupported_uris_raise_clear_errors(uri: str, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        open_memory(uri)


def test_default_path_comes_from_env_var_else_user_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import platformdirs

    monkeypatch.setattr(platformdirs, "user_data_dir", lambda *a, **k: str(tmp_path / "data" / "pekit"))
    monkeypatch.delenv(pekit.memory.ENV_VAR, raising=False)
    assert default_memory_path() == tmp_path / "data" / "pekit" / "memory.db"
    with open_memory() as memory:
        assert memory.uri == str(tmp_path / "data" / "pekit" / "memory.db")

    monkeypatch.setenv("PEKIT_MEMORY", str(tmp_path / "mine.db"))
    assert default_memory_path() == tmp_path / "mine.db"
    with open_memory(read_only=False, store_images=True) as memory:
        assert memory.uri == str(tmp_path / "mine.db") and memory.store_images

    monkeypatch.setenv("PEKIT_MEMORY", "memory://")
    with open_memory() as memory:
        assert memory.uri == "memory://"
