"""SQLite's errors as pekit says them: what went wrong with the memory file and what to do
(`sqlite_error`, behind `SqliteFile.error`)."""

from __future__ import annotations

import os
import sqlite3
from typing import TYPE_CHECKING

from pekit.errors import MemoryFullError, MemoryLockedError, MemoryStoreError
from pekit.memory._schema import is_not_a_database

if TYPE_CHECKING:
    from pekit.memory._db import SqliteFile

__all__ = ["sqlite_error"]


def sqlite_error(db: SqliteFile, exc: sqlite3.Error, action: str) -> MemoryStoreError:
    """Translate an SQLite error into a `MemoryStoreError` that says what to do.

    ``action`` completes "pekit cannot ...", e.g. ``"add concept 'Bo'"``.
    """
    name = getattr(exc, "sqlite_errorname", "") or ""
    text = str(exc).lower()
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in text:
        return MemoryLockedError(
            f"memory file {db.label} is locked by another process; try again "
            f"(waited {db.timeout:g} s for the lock)"
        )
    if name == "SQLITE_READONLY_ROLLBACK" and db.path is not None:
        left = (f"pekit cannot {action}: an interrupted write left {db.path.name}-journal beside memory file "
                f"{db.label}")
        folder = db.path.parent
        if not db.read_only and (db.unwritable(action) or not os.access(folder, os.W_OK | os.X_OK)):
            # opening it again would fail the same way: the rollback needs to write the file and its folder
            return MemoryStoreError(
                f"{left}, and it cannot be rolled back because the file or its folder is not writable; make "
                f"both writable (chmod u+w {db.path} {folder}) and run any pekit command on it once (what "
                "was stored before is intact)")
        return MemoryStoreError(
            f"{left}; open it once without read-only (e.g. `pekit list --memory {db.path}`) and the "
            "unfinished write is rolled back (what was stored before is intact)"
        )
    if name.startswith("SQLITE_READONLY") or "readonly" in text:
        return MemoryStoreError(
            f"memory file {db.label} is read-only, so pekit cannot {action}; fix the permissions "
            "of the file and its folder, or use a writable copy"
        )
    if name.startswith("SQLITE_FULL") or "disk is full" in text:
        return MemoryFullError(
            f"pekit cannot {action}: the disk holding memory file {db.label} is full; free some "
            "space and try again (this write was rolled back; what was stored before is intact)"
        )
    if name.startswith("SQLITE_CORRUPT") or "malformed" in text:
        return MemoryStoreError(
            f"pekit cannot {action}: memory file {db.label} is damaged ({exc}); restore it from a "
            "backup, or salvage its rows with `sqlite3 FILE .recover | sqlite3 NEW` and open NEW"
        )
    if is_not_a_database(exc):
        return MemoryStoreError(f"{db.label} is not a pekit memory (SQLite says: {exc})")
    if name.startswith("SQLITE_IOERR") and db.path is not None and not db.read_only and (
            db.unwritable(action) or not os.access(db.path.parent, os.W_OK | os.X_OK)):
        return MemoryStoreError(  # e.g. a journal that cannot be created or rolled back beside the file
            f"pekit cannot {action}: SQLite could not write beside memory file {db.label} ({exc}); make the "
            f"file and its folder writable (chmod u+w {db.path} {db.path.parent}), or use a writable copy")
    if name == "SQLITE_IOERR_WRITE" and not db.read_only:
        return MemoryFullError(  # writable, yet the write failed: no room (ulimit -f gives EFBIG), or the disk
            f"pekit cannot {action}: writing memory file {db.label} failed ({exc}): the disk may be full, a "
            "file-size limit (ulimit -f) reached, or the disk failing; free some space or raise the limit and "
            "try again (this write was rolled back; what was stored before is intact)")
    if name.startswith("SQLITE_CANTOPEN") or "unable to open" in text:
        return MemoryStoreError(
            f"pekit cannot {action}: SQLite cannot open memory file {db.label} or its journal "
            "(check that the file and its folder exist and are writable)"
        )
    return MemoryStoreError(f"pekit cannot {action} in memory file {db.label}: {exc}")
