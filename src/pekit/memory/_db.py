"""One SQLite connection of the embedded memory: opening, transactions, clear errors.

`SqliteFile` knows nothing about concepts; `pekit.memory.sqlite.SqliteMemory` builds on it.

A file that does not exist yet is created by the first *write*, not by opening it: until
then reads see an empty in-process memory, so reading (``pekit list``, ``recognize``) never
leaves files or folders behind, and a first write that fails removes what it created (only
a file this process made, ``O_EXCL``, and only while it holds nothing of anyone's: two
processes writing a new memory at once never remove each other's concepts; a writer whose
file was removed meanwhile opens the path again instead of writing into the removed one). An
existing empty (0-byte) file is read the same way, and gets its tables on the first write
(which it keeps even if that write fails: pekit deletes only what it created).
Deleted rows are overwritten on disk (``PRAGMA secure_delete = ON``, whatever the SQLite
build's default), so a forgotten concept leaves no bytes in the file.

Example:
    >>> db = SqliteFile(None)
    >>> with db.transaction("count", write=False) as conn:
    ...     conn.execute("SELECT COUNT(*) FROM concepts").fetchone()[0]
    0
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pekit._files import read_only_mount, untouched_sqlite
from pekit.errors import MemoryFileError, MemoryFullError, MemoryRetryError, MemoryStoreError
from pekit.memory._schema import prepare
from pekit.memory._sqlite_errors import sqlite_error

__all__ = ["SqliteFile"]


def _unwritten(path: Path) -> bool:
    """No memory in it yet: the file does not exist, or is empty (``touch memory.db``)."""
    try:
        return path.stat().st_size == 0 and path.is_file()
    except FileNotFoundError:
        return True
    except OSError:  # unreadable: let SQLite say what is wrong when it opens the file
        return False


def _gone(path: Path) -> bool:
    """Whether nothing is at ``path`` now: no file, or a link to a file that was removed (a
    link loop or a permission problem is something there, for SQLite's error to name)."""
    try:
        os.stat(path)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return False


class _GoneError(MemoryRetryError):
    """The file was removed between opening it and reading which file it is (another
    process's first write failed and took back the file it had made): try again."""


class SqliteFile:
    """A pekit memory database behind one thread-safe connection.

    Args:
        path: the file (created with its folders by the first write unless ``read_only``);
            None for in-memory.
        read_only: open with ``mode=ro``; write transactions raise `MemoryStoreError`.
        timeout: seconds to wait for another process's lock (SQLite busy timeout).
        must_exist: raise `MemoryFileError` naming the path when the file does not exist
            (a typo in a path should not silently give an empty memory).
    """

    def __init__(self, path: Path | None, *, read_only: bool = False, timeout: float = 5.0,
                 must_exist: bool = False) -> None:
        self.path = path
        self.label = "memory://" if path is None else str(path)
        self.read_only = read_only
        self.timeout = timeout
        self.lock = threading.RLock()
        self._ident: tuple[int, int] | None = None
        self.epoch = 0  # moves when the file went away and another is read at the path (`_swap`)
        if path is not None and path.is_dir():
            raise MemoryFileError(f"memory {self.label} is a folder, not a memory file; pass a file path such as "
                                  f"{path / 'memory.db'}")
        # a missing (or empty) file is created by the first write; until then reads see an
        # empty stand-in and nothing is written, not even the tables
        self.pending = path is not None and _unwritten(path)
        if self.pending and (read_only or must_exist) and path is not None and not path.exists():
            why = "opened read-only" if read_only else "check the path, or `pekit introduce` into it to create it"
            raise MemoryFileError(f"memory file {self.label} does not exist ({why})")
        try:
            self._conn: sqlite3.Connection | None = self._connect(stand_in=self.pending)
        except _GoneError:  # removed as it was opened: there is no memory there (yet)
            self._conn, self.pending = self._connect(stand_in=True), True

    def _make_folders(self) -> list[Path]:
        """Create the missing parent folders of the file; returns them, outermost first."""
        assert self.path is not None
        missing = [p for p in reversed(self.path.parents) if not p.exists()]
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise MemoryStoreError(f"cannot create the folder of memory file {self.label}: {exc}") from exc
        return missing

    def _connect(self, *, stand_in: bool = False) -> sqlite3.Connection:
        if self.path is None or stand_in:
            target = ":memory:"
        elif self.read_only:
            target = self.path.as_uri() + "?mode=ro"
        else:  # never "c": only `_create_file` makes the file (O_EXCL, mode 600); a file gone meanwhile is not remade
            target = self.path.as_uri() + "?mode=rw"
        try:
            conn = sqlite3.connect(
                target, uri=True, timeout=self.timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            if target != ":memory:" and self.path is not None and _gone(self.path):
                raise self._gone_error() from exc
            raise self.error(exc, "open the memory") from exc
        try:
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA secure_delete = ON")  # forget means gone: zero deleted content
            prepare(conn, self.label, writable=not self.read_only or stand_in)
        except MemoryStoreError:
            conn.close()
            raise
        except sqlite3.Error as exc:
            conn.close()
            if target != ":memory:" and self.path is not None and _gone(self.path):
                raise self._gone_error() from exc
            raise self.error(exc, "open the memory") from exc
        if target != ":memory:":
            assert self.path is not None
            try:
                st = self.path.stat()
            except OSError as exc:  # removed right after it was opened
                conn.close()
                raise self._gone_error() from exc
            self._ident = (st.st_dev, st.st_ino)  # which file this connection reads and writes (`_same_file`)
        return conn

    def _gone_error(self) -> _GoneError:
        return _GoneError(f"memory file {self.label} went away while pekit opened it; try again")

    def error(self, exc: sqlite3.Error, action: str) -> MemoryStoreError:
        """Translate an SQLite error into a `MemoryStoreError` that says what to do
        (`pekit.memory._sqlite_errors.sqlite_error`); ``action`` completes "pekit cannot ...",
        e.g. ``"add concept 'Bo'"``."""
        return sqlite_error(self, exc, action)

    def _reopen(self) -> None:
        """A new connection to whatever the path names now (the stand-in if nothing), when the
        file this one opened went away; the old connection stays if that fails."""
        assert self.path is not None
        pending = _unwritten(self.path)
        try:
            conn = self._connect(stand_in=pending)
        except _GoneError:
            conn, pending = self._connect(stand_in=True), True
        self._swap(conn, pending, other_file=True)

    def _swap(self, conn: sqlite3.Connection | None, pending: bool, *, other_file: bool = False) -> None:
        """Use ``conn`` from now on (closing the one before). ``other_file``: it replaces a file
        that went away, whose write counters a new file at the path starts again: `epoch` moves,
        so caches keyed by `generation` do not take the new counters for the old file's. (The
        empty stand-in swapped for the file needs no such step: every written namespace's
        counter is at least 1 there, against the stand-in's 0.)"""
        old, self._conn, self.pending = self._conn, conn, pending
        if other_file:
            self.epoch += 1
        if old is not None and old is not conn:
            old.close()

    def unwritable(self, action: str) -> str | None:
        """Why pekit may not ``action`` in this memory (a write), or None: opened read-only, or
        a file whose permissions let nobody write it (``chmod 444``: root could, but the file
        is meant to stay as it is) or not this user."""
        if self.read_only:
            return (f"memory file {self.label} is read-only (opened with read_only=True or mode=ro), so pekit "
                    f"cannot {action}; open it without read_only to write")
        if self.path is None:
            return None
        try:
            mode = self.path.stat().st_mode
        except OSError:
            return None  # not there yet: the first write creates it (its folder is checked then)
        if not mode & 0o222 or not os.access(self.path, os.W_OK):
            if read_only_mount(self.path):
                return (f"memory file {self.label} is on a read-only file system, so pekit cannot {action}; "
                        "copy it to a writable place and use the copy (--memory PATH), or remount it writable")
            return (f"memory file {self.label} is read-only (its permissions), so pekit cannot {action}; make it "
                    f"writable (chmod u+w {self.path}) or use a writable copy")
        return None

    def connection(self) -> sqlite3.Connection:
        """The open connection; `MemoryStoreError` after `close`."""
        if self._conn is None:
            raise MemoryStoreError(f"memory {self.label} is closed (by close(), or the end of its `with` "
                                   "block); open it again: a new Personalizer on it, or open_memory()")
        if self.pending and self.path is not None and not _unwritten(self.path):  # another process wrote it
            try:
                self._swap(self._connect(), False)
            except _GoneError:  # and took it back (its first write failed): still nothing there
                pass
        elif not self._same_file():  # removed or replaced since it was opened: read and write what is there now
            self._reopen()
        assert self._conn is not None
        return self._conn

    def _create_file(self) -> list[Path]:
        """Swap the stand-in for the real file (first write); returns what it created.

        The file counts as created here only when this process made it (``O_EXCL``): two
        processes writing a new memory at once must not both think it theirs to remove.
        """
        for attempt in range(3):
            try:
                return self._create_file_once()
            except _GoneError:  # another process made the file, failed its first write and removed it
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _create_file_once(self) -> list[Path]:
        assert self.path is not None
        created = self._make_folders()
        # a symlink made before the first use (~/.pekit/memory.db -> /data/pekit.db): the file is
        # made where it points (O_EXCL never follows a link, and SQLite keeps its journal there)
        real = Path(os.path.realpath(self.path))
        try:
            # only its owner reads it: every user's names, contexts and embeddings are in it
            os.close(os.open(real, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            pass  # another process made it meanwhile: never ours to remove
        except OSError as exc:
            self._remove(created)
            raise MemoryStoreError(f"cannot create memory file {self.label}: {exc.strerror or exc}") from exc
        else:
            created.append(real)
        try:
            conn = self._connect()
        except MemoryFullError:
            # no room for its first page: it goes, unless another process has begun writing it
            # meanwhile (bytes in it, or a journal or log beside it)
            self._remove(created if untouched_sqlite(real) else [p for p in created if p != real])
            raise
        except BaseException:
            # the file stays (empty, it reads as an empty memory): another process may be writing it now
            self._remove([p for p in created if p != real])
            raise
        self._swap(conn, False)
        return created

    def _unused(self) -> bool:
        """After a failed first write: whether the file holds nothing of anyone's (another
        process may have written into it since this one created it). Leaves the write lock
        held when it says True, so nothing is written until the file is removed."""
        conn = self._conn
        if conn is None:
            return True
        try:
            conn.execute("BEGIN IMMEDIATE")
            if conn.execute("SELECT EXISTS (SELECT 1 FROM concepts)").fetchone()[0]:
                conn.execute("ROLLBACK")
                return False
            return True
        except sqlite3.Error:  # locked by a writer, or no tables: not provably unused, keep it
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            return False

    def _same_file(self) -> bool:
        """Whether the path still names the file this connection opened (a failed first
        write of another process may have removed it, or a user replaced it)."""
        if self.path is None or self.pending or self._ident is None:
            return True
        try:
            st = self.path.stat()
        except OSError:
            return False
        return (st.st_dev, st.st_ino) == self._ident

    def _remove(self, created: list[Path]) -> None:
        """Delete the files and folders a failed first write created (innermost first), then
        close the connection: its write lock (`_unused`) is held until the file is gone, so no
        other process writes into a file that is about to be removed."""
        if os.name == "nt" and self._conn is not None and not self.pending:  # Windows removes no open file
            self._conn.close()
            self._conn = None
        for p in reversed(created):
            for extra in (p, p.with_name(p.name + "-journal"), p.with_name(p.name + "-wal"),
                          p.with_name(p.name + "-shm")):
                try:
                    extra.rmdir() if extra.is_dir() else extra.unlink(missing_ok=True)
                except OSError:  # pragma: no cover - a folder someone else wrote into meanwhile
                    pass
        if self._conn is not None and not self.pending:
            self._conn.close()
            self._conn = None

    @contextmanager
    def transaction(self, action: str, *, write: bool) -> Iterator[sqlite3.Connection]:
        """One transaction (``BEGIN IMMEDIATE`` to write): COMMIT on success, else ROLLBACK.

        SQLite errors become `MemoryStoreError`; other exceptions pass through unchanged
        after the rollback, so nothing of a failed write is kept (not even the file and
        folders, when this write was the one that created them).
        """
        with self.lock:
            conn = self.connection()
            refused = self.unwritable(action) if write else None
            if refused:
                raise MemoryStoreError(refused)
            created: list[Path] = []
            if write and self.pending:
                created = self._create_file()
                conn = self.connection()
            try:
                conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                if write and not self._same_file():  # removed while this waited for the lock
                    conn.execute("ROLLBACK")
                    self._reopen()
                    created = []  # what this write made is gone with the old file: nothing of it to remove
                    conn = self.connection()
                    if self.pending:
                        created = self._create_file()
                        conn = self.connection()
                    conn.execute("BEGIN IMMEDIATE")
                yield conn
                conn.execute("COMMIT")
            except BaseException as exc:
                try:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                except sqlite3.ProgrammingError:  # closed by a reopen that failed after it
                    pass
                if created and self._unused():
                    self._remove(created)
                    self._swap(self._connect(stand_in=True), True)
                if isinstance(exc, sqlite3.Error):
                    raise self.error(exc, action) from exc
                raise

    def close(self) -> None:
        """Close the connection; safe to call twice."""
        with self.lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
