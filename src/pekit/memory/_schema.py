"""Schema of the embedded memory file: tables, version checks, creation of a fresh file.

A pekit memory is an SQLite database whose header carries ``PRAGMA application_id =
APPLICATION_ID`` and ``PRAGMA user_version = SCHEMA_VERSION``. Tables:

- ``meta(key, value)``: ``backbone`` fingerprint and vector ``dim``.
- ``concepts(id, namespace, name, category, context, threshold, created, updated, meta)``,
  unique ``(namespace, name)``; ``meta`` is JSON text.
- ``views(concept_id, idx, vector)``: one little-endian float32 blob of length ``dim`` per view;
  rows with ``idx < 0`` (schema 2) are the concept's *negative* views (regions the user said
  are not it), so a pekit that reads schema 1 only must refuse such a file.
- ``parts(concept_id, rows, vectors)``: optional ``(rows, dim)`` float32 blob per concept.
- ``images(concept_id, idx, data)``: encoded reference photos, written only when the store
  was opened with ``store_images=True``.
- ``generations(namespace, value)``: a write counter per namespace, bumped by triggers on
  ``concepts`` (every write path touches the concept row), so any writer, an older pekit
  included, moves it and caches of a namespace (the matching gallery) see the change.
  Added to a file of the same schema version on its first writable open; a file opened
  only read-only without it falls back to a digest of the concept rows.

Example:
    >>> import sqlite3
    >>> conn = sqlite3.connect(":memory:", isolation_level=None)
    >>> prepare(conn, "memory://", writable=True)
    >>> conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    True
"""

from __future__ import annotations

import sqlite3

from pekit.errors import MemoryStoreError, SchemaError

__all__ = ["APPLICATION_ID", "SCHEMA_VERSION", "has_generations", "is_not_a_database", "prepare"]

SCHEMA_VERSION = 2
APPLICATION_ID = 0x70656B69  # b"peki"

_TABLES = {
    "meta": "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    "concepts": """CREATE TABLE concepts (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        namespace TEXT NOT NULL,
        name TEXT NOT NULL,
        category TEXT NOT NULL DEFAULT '',
        context TEXT NOT NULL DEFAULT '',
        threshold REAL,
        created REAL NOT NULL,
        updated REAL NOT NULL,
        meta TEXT NOT NULL DEFAULT '{}',
        UNIQUE (namespace, name))""",
    "views": """CREATE TABLE views (
        concept_id INTEGER NOT NULL REFERENCES concepts(id) ON DELETE CASCADE,
        idx INTEGER NOT NULL,
        vector BLOB NOT NULL,
        PRIMARY KEY (concept_id, idx)) WITHOUT ROWID""",
    "parts": """CREATE TABLE parts (
        concept_id INTEGER PRIMARY KEY REFERENCES concepts(id) ON DELETE CASCADE,
        rows INTEGER NOT NULL,
        vectors BLOB NOT NULL)""",
    "images": """CREATE TABLE images (
        concept_id INTEGER NOT NULL REFERENCES concepts(id) ON DELETE CASCADE,
        idx INTEGER NOT NULL,
        data BLOB NOT NULL,
        PRIMARY KEY (concept_id, idx))""",
}


# the counter table and its triggers: optional for readers (see `generation` in sqlite.py)
_GENERATIONS = [
    "CREATE TABLE IF NOT EXISTS generations (namespace TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID",
    *(f"""CREATE TRIGGER IF NOT EXISTS generation_{event.lower()} AFTER {event} ON concepts BEGIN
        INSERT INTO generations (namespace, value) VALUES ({row}.namespace, 1)
        ON CONFLICT (namespace) DO UPDATE SET value = value + 1; END"""
      for event, row in (("INSERT", "NEW"), ("DELETE", "OLD"), ("UPDATE", "OLD"))),
    # a concept moved to another namespace changes that one too
    """CREATE TRIGGER IF NOT EXISTS generation_move AFTER UPDATE OF namespace ON concepts
        WHEN NEW.namespace != OLD.namespace BEGIN
        INSERT INTO generations (namespace, value) VALUES (NEW.namespace, 1)
        ON CONFLICT (namespace) DO UPDATE SET value = value + 1; END""",
]


def has_generations(conn: sqlite3.Connection) -> bool:
    """True when the file has the per-namespace write counter (``generations``)."""
    sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'generations'"
    return conn.execute(sql).fetchone() is not None


def is_not_a_database(exc: sqlite3.Error) -> bool:
    """True when SQLite refused the file because it is not a database at all."""
    name = getattr(exc, "sqlite_errorname", "")
    text = str(exc).lower()
    return name == "SQLITE_NOTADB" or "not a database" in text or "file is encrypted" in text


def _header(conn: sqlite3.Connection) -> tuple[int, int, set[str]]:
    """The file's application id, schema version and tables, read as one snapshot: outside a
    transaction each statement would see its own moment, and a file another process is
    creating would show its tables without its application id (not a pekit memory)."""
    if not conn.in_transaction:
        conn.execute("BEGIN")
        try:
            return _header(conn)
        finally:
            if conn.in_transaction:
                conn.execute("COMMIT")
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    tables.discard("sqlite_sequence")
    return int(app_id), int(version), tables


def _check(label: str, app_id: int, version: int, tables: set[str]) -> None:
    if app_id != APPLICATION_ID:
        raise SchemaError(
            f"{label} is an SQLite database but not a pekit memory (tables: "
            f"{', '.join(sorted(tables)) or 'none'}); pass the path of a pekit memory file, "
            "or a new path to create one"
        )
    if version > SCHEMA_VERSION:
        raise SchemaError(
            f"memory file {label} was written by a newer pekit (schema version {version}; this "
            f"pekit reads up to {SCHEMA_VERSION}): upgrade pekit (`pip install -U pekit-vlm`) to use it"
        )
    missing = set(_TABLES) - tables
    if missing:
        raise SchemaError(
            f"memory file {label} is damaged: tables {sorted(missing)} are missing; "
            "restore it from a backup or start a new memory file"
        )


def prepare(conn: sqlite3.Connection, label: str, *, writable: bool) -> None:
    """Check that ``conn`` holds a pekit memory this version reads; create one if empty.

    ``conn`` must be in autocommit mode (``isolation_level=None``). Nothing is written
    unless the database is completely empty (a new file). SQLite errors other than
    "not a database" (locked, read-only...) propagate for the caller to translate.

    Raises:
        SchemaError: not SQLite, not a pekit memory, a newer schema, or missing tables.
        MemoryStoreError: the file is empty but cannot be written.
    """
    try:
        app_id, version, tables = _header(conn)
    except sqlite3.DatabaseError as exc:
        if is_not_a_database(exc):
            raise SchemaError(
                f"{label} is not a pekit memory (SQLite says: {exc}); pass the path of a "
                "memory file, or a new path to create one"
            ) from exc
        raise
    if app_id == 0 and version == 0 and not tables:
        if not writable:
            raise MemoryStoreError(f"memory file {label} is empty and read-only, so it cannot be initialised")
        _create(conn, label)
        return
    _check(label, app_id, version, tables)
    if version < SCHEMA_VERSION and writable:
        # 1 -> 2: same tables; negative views (idx < 0) may now be written, which a reader of
        # schema 1 would take for views, so the file is marked as schema 2.
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    if writable and not has_generations(conn):
        _add_generations(conn)


def _add_generations(conn: sqlite3.Connection) -> None:
    """Add the write counter to an existing file (a reader of schema 2 ignores the extra table)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        for ddl in _GENERATIONS:
            conn.execute(ddl)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _create(conn: sqlite3.Connection, label: str) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        app_id, version, tables = _header(conn)  # another process may have won the race
        if app_id or version or tables:
            _check(label, app_id, version, tables)
        else:
            for ddl in [*_TABLES.values(), *_GENERATIONS]:
                conn.execute(ddl)
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
