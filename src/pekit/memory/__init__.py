"""Stage 1/2 shared: the concept memory, chosen by URI.

- ``None`` -> ``$PEKIT_MEMORY`` if set, else ``<user data dir>/pekit/memory.db``
- a path, ``file:path`` or ``file:///abs/path`` (``?mode=ro`` to open read-only) ->
  `SqliteMemory`, the embedded default
- ``memory://`` -> an in-process `SqliteMemory` (tests, throw-away sessions)
- ``postgresql://`` / ``postgres://`` -> `PgvectorMemory` on a PostgreSQL server with pgvector
  (``pip install 'pekit-vlm[postgres]'``); ``?schema=name`` picks the PostgreSQL schema

Example:
    >>> with open_memory("memory://") as memory:
    ...     memory.count()
    0
"""

from __future__ import annotations

import importlib
import os
import re
import urllib.parse
from pathlib import Path
from typing import Any

from pekit.errors import InvalidInputError, MemoryStoreError
from pekit.memory._codec import (
    MAX_CATEGORY_LENGTH,
    MAX_CONTEXT_LENGTH,
    MAX_NAME_LENGTH,
    check_new_name,
    clean_name,
    clean_namespace,
    clean_prose,
    lookalike_key,
    name_key,
    printable,
)
from pekit.memory._fingerprints import backbone_key, same_backbone
from pekit.memory.base import MemoryStore
from pekit.memory.sqlite import SqliteMemory

__all__ = [
    "MAX_CATEGORY_LENGTH", "MAX_CONTEXT_LENGTH", "MAX_NAME_LENGTH", "MemoryStore", "SqliteMemory", "backbone_key",
    "check_new_name", "clean_name", "clean_namespace", "clean_prose", "default_memory_path", "lookalike_key",
    "name_key", "open_memory", "printable", "same_backbone",
]

ENV_VAR = "PEKIT_MEMORY"

# scheme -> "module:factory"; a factory takes (uri, **options). Adding a backend is one line.
_SCHEMES: dict[str, str] = {
    "memory": "pekit.memory:_open_in_process",
    "file": "pekit.memory:_open_file",
    "postgresql": "pekit.memory:_open_server",
    "postgres": "pekit.memory:_open_server",
}
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):")  # 2+ letters: "C:\\x" stays a path


def default_memory_path() -> Path:
    """Where `open_memory()` keeps concepts: ``$PEKIT_MEMORY`` or the user data folder.

    ``$PEKIT_MEMORY`` may also hold a URI (``memory://``); `open_memory` accepts either.

    >>> default_memory_path().name   # doctest: +SKIP
    'memory.db'
    """
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("pekit", appauthor=False)) / "memory.db"


def open_memory(uri: str | os.PathLike[str] | None = None, **options: Any) -> MemoryStore:
    """Open the memory store named by ``uri``; ``options`` go to the store (``read_only``,
    ``store_images``, ``timeout``, ``must_exist``, ``skip_damaged``; ``schema`` for `PgvectorMemory`).

    Opening never creates anything: a memory file that does not exist yet is created by
    its first write (``must_exist=True`` makes a missing file an error instead).

    >>> open_memory("mysql://db/pekit")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pekit.errors.MemoryStoreError: unknown memory URI scheme 'mysql' in 'mysql://db/pekit'; ...
    """
    if uri is None:
        uri = os.environ.get(ENV_VAR, "").strip() or default_memory_path()
    if isinstance(uri, os.PathLike):
        return SqliteMemory(uri, **options)
    if not isinstance(uri, str) or not uri.strip():
        raise InvalidInputError(f"memory URI must be a path or a URI such as 'memory://', but got {uri!r}")
    uri = uri.strip()
    match = _SCHEME.match(uri)
    if match is None or not (uri.startswith("file:") or "://" in uri):
        return SqliteMemory(uri, **options)
    scheme = match.group(1).lower()
    if scheme not in _SCHEMES:
        raise MemoryStoreError(
            f"unknown memory URI scheme '{scheme}' in {uri!r}; use a file path or one of: "
            + ", ".join(f"{s}://" for s in _SCHEMES)
        )
    module, _, attr = _SCHEMES[scheme].partition(":")
    factory = getattr(importlib.import_module(module), attr)
    store: MemoryStore = factory(uri, **options)
    return store


def _open_in_process(uri: str, **options: Any) -> SqliteMemory:
    return SqliteMemory(":memory:", **options)


def _open_file(uri: str, **options: Any) -> SqliteMemory:
    """``file:rel.db``, ``file:///abs.db`` or ``file://localhost/abs.db``; ``?mode=ro|rw|rwc``."""
    parts = urllib.parse.urlsplit(uri)
    if parts.netloc not in ("", "localhost"):
        raise InvalidInputError(f"file URI {uri!r} names a remote host; use a local path")
    query = urllib.parse.parse_qs(parts.query)
    unknown = set(query) - {"mode"}
    modes = query.get("mode", ["rwc"])
    if unknown or modes[-1] not in ("ro", "rw", "rwc"):
        raise InvalidInputError(f"file URI {uri!r}: the only option is mode=ro|rw|rwc")
    if modes[-1] == "ro":
        options["read_only"] = True
    from urllib.request import url2pathname  # here, not at import: it pulls in http.client

    path = url2pathname(parts.path)
    if not path:
        raise InvalidInputError(f"file URI {uri!r} has no path; e.g. 'file:///home/me/memory.db'")
    return SqliteMemory(path, **options)


def _open_server(uri: str, **options: Any) -> MemoryStore:
    """``postgresql://...`` -> `PgvectorMemory` (imported here: it needs the ``postgres`` extra)."""
    from pekit.memory.pgvector import PgvectorMemory

    return PgvectorMemory(uri, **options)
