"""One SQLite connection of the embedded memory: opening, transactions, clear errors.

`SqliteFile` knows nothing about concepts; `pekit.memory.sqlite.SqliteMemory` builds on it.

Example:
    >>> db = SqliteFile(None)
    >>> with db.transaction("count", write=False) as conn:
    ...     conn.execute("SELECT COUNT(*) FROM concepts").fetchone()[0]
    0
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pekit.errors import MemoryStoreError
from pekit.memory._schema import is_not_a_database, prepare

__all__ = ["SqliteFile"]


class SqliteFile:
    """A pekit memory database behind one thread-safe connection.

    Args:
        path: the file (created with its folders unless ``read_only``); None for in-memory.
        read_only: open with ``mode=ro``; write transactions raise `MemoryStoreError`.
        timeout: seconds to wait for another process's lock (SQLite busy timeout).
    """

    def __init__(self, path: Path | None, *, read_only: bool = False, timeout: float = 5.0) -> None:
        self.path = path
        self.label = "memory://" if path is None else str(path)
        self.read_only = read_only
        self.timeout = timeout
        self.lock = threading.RLock()
        self._writes = 0
        self._conn: sqlite3.Connection | None = self._connect()

    def _connect(self) -> sqlite3.Connection:
        if self.path is None:
            target = ":memory:"
        elif self.read_only:
            if not self.path.exists():
                raise MemoryStoreError(f"memory file {self.label} does not exist (opened read-only)")
            target = self.path.as_uri() + "?mode=ro"
        else:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                msg = f"cannot create the folder of memory file {self.label}: {exc}"
                raise MemoryStoreError(msg) from exc
            target = self.path.as_uri() + "?mode=rwc"
        try:
            conn = sqlite3.connect(
                target, uri=True, timeout=self.timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise self.error(exc, "open it") from exc
        try:
            conn.execute("PRAGMA foreign_keys = ON")
            prepare(conn, self.label, writable=not self.read_only)
        except MemoryStoreError:
            conn.close()
            raise
        except sqlite3.Error as exc:
            conn.close()
            raise self.error(exc, "open it") from exc
        return conn

    def error(self, exc: sqlite3.Error, action: str) -> MemoryStoreError:
        """Translate an SQLite error into a `MemoryStoreError` that says what to do.

        ``action`` completes "pekit cannot ...", e.g. ``"add concept 'Bo'"``.
        """
        name = getattr(exc, "sqlite_errorname", "") or ""
        text = str(exc).lower()
        if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in text:
            return MemoryStoreError(
                f"memory file {self.label} is locked by another process; try again "
                f"(waited {self.timeout:g} s for the lock)"
            )
        if name.startswith("SQLITE_READONLY") or "readonly" in text:
            return MemoryStoreError(
                f"memory file {self.label} is read-only, so pekit cannot {action}; fix the permissions "
                "of the file and its folder, or use a writable copy"
            )
        if is_not_a_database(exc):
            return MemoryStoreError(f"{self.label} is not a pekit memory (SQLite says: {exc})")
        if name.startswith("SQLITE_CANTOPEN") or "unable to open" in text:
            return MemoryStoreError(
                f"pekit cannot {action}: SQLite cannot open memory file {self.label} or its journal "
                "(check that the file and its folder exist and are writable)"
            )
        return MemoryStoreError(f"pekit cannot {action} in memory file {self.label}: {exc}")

    def connection(self) -> sqlite3.Connection:
        """The open connection; `MemoryStoreError` after `close`."""
        if self._conn is None:
            raise MemoryStoreError(f"memory {self.label} is closed; open it again with open_memory()")
        return self._conn

    @contextmanager
    def transaction(self, action: str, *, write: bool) -> Iterator[sqlite3.Connection]:
        """One transaction (``BEGIN IMMEDIATE`` to write): COMMIT on success, else ROLLBACK.

        SQLite errors become `MemoryStoreError`; other exceptions pass through unchanged
        after the rollback, so nothing of a failed write is kept.
        """
        with self.lock:
            conn = self.connection()
            if write and self.read_only:
                raise MemoryStoreError(
                    f"memory file {self.label} is read-only (opened with read_only=True or "
                    f"mode=ro), so pekit cannot {action}; open it without read_only to write"
                )
            try:
                conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                yield conn
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise self.error(exc, action) from exc
                raise
            finally:
                if write:
                    self._writes += 1

    def version(self) -> tuple[int, int]:
        """Changes whenever anyone commits: ``(PRAGMA data_version, writes through this object)``.

        ``data_version`` moves on commits by *other* connections (other processes too); our
        own writes are counted here. Cheap enough to call before every cached read.
        """
        with self.lock:
            try:
                data_version = self.connection().execute("PRAGMA data_version").fetchone()[0]
            except sqlite3.Error as exc:
                raise self.error(exc, "read it") from exc
            return int(data_version), self._writes

    def close(self) -> None:
        """Close the connection; safe to call twice."""
        with self.lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
