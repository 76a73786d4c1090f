"""Schema of the PostgreSQL memory: tables, the version table, migrations.

Everything lives in one PostgreSQL schema (``pekit`` unless the URI says ``?schema=``), so
several memories can share a database. Tables:

- ``schema_version(version, applied)``: one row per applied migration; the highest is the
  schema this memory is at. A pekit that knows fewer migrations refuses to open it.
- ``meta(key, value)``: ``backbone`` fingerprint and vector ``dim``.
- ``concepts(id, namespace, name, name_key, category, context, threshold, created, updated,
  meta)``: unique ``(namespace, name_key)`` where ``name_key`` is the case-folded NFC name
  (`pekit.memory._codec.name_key`), so "Bo" and "bo" cannot both exist; ``meta`` is JSON.
- ``views(concept_id, namespace, idx, embedding)``: one pgvector ``vector(dim)`` per view;
  ``idx < 0`` are the concept's negative views (as in the embedded store). The column is
  typed ``vector(dim)`` by the first add (the dimension is not known before).
- ``parts(concept_id, namespace, rows, vectors)``: ``(rows, dim)`` little-endian float32 bytes.
- ``images(concept_id, namespace, idx, data)``: encoded photos (``store_images=True`` only).
- ``generations(namespace, value)``: a write counter per namespace, bumped by a trigger on
  ``concepts`` in the writing transaction itself (so every process sees it with the write).

Every table but ``meta`` carries ``namespace`` and every query filters on it.

Migrations run in one transaction under an advisory lock, so two processes opening a new
database at once create it once. `record_backbone` writes ``meta`` and types the ``views``
column on the first add.
"""

from __future__ import annotations

import re
import time
import zlib
from typing import Any

from pekit.errors import InvalidInputError, MemoryFileError, MemoryStoreError, SchemaError
from pekit.memory._fingerprints import same_backbone, upgraded_backbone
from pekit.memory._store import read_meta

__all__ = ["SCHEMA_VERSION", "advisory_key", "check_schema_name", "migrate", "record_backbone"]

_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def check_schema_name(schema: Any) -> str:
    """A PostgreSQL schema name pekit can use unquoted: lowercase letters, digits, ``_``.

    >>> check_schema_name("pekit")
    'pekit'
    """
    if not isinstance(schema, str) or not _NAME.match(schema):
        raise InvalidInputError(
            f"PostgreSQL schema name must be 1-63 lowercase letters, digits or '_' (not starting "
            f"with a digit), e.g. 'pekit', but got {schema!r}"
        )
    return schema


def advisory_key(schema: str, what: str) -> int:
    """A 63-bit advisory-lock key for ``what`` in ``schema`` (stable across processes)."""
    return zlib.crc32(f"pekit:{schema}:{what}".encode()) | (1 << 40)


def _migration_1(s: str) -> list[str]:
    return [
        f"CREATE TABLE {s}.meta (key text PRIMARY KEY, value text NOT NULL)",
        f"""CREATE TABLE {s}.concepts (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            namespace text NOT NULL,
            name text NOT NULL,
            name_key text NOT NULL,
            category text NOT NULL DEFAULT '',
            context text NOT NULL DEFAULT '',
            threshold double precision,
            created double precision NOT NULL,
            updated double precision NOT NULL,
            meta json NOT NULL DEFAULT '{{}}',
            UNIQUE (namespace, name_key))""",
        f"""CREATE TABLE {s}.views (
            concept_id bigint NOT NULL REFERENCES {s}.concepts(id) ON DELETE CASCADE,
            namespace text NOT NULL,
            idx integer NOT NULL,
            embedding vector NOT NULL,
            PRIMARY KEY (concept_id, idx))""",
        f"CREATE INDEX views_namespace ON {s}.views (namespace, concept_id, idx)",
        f"""CREATE TABLE {s}.parts (
            concept_id bigint PRIMARY KEY REFERENCES {s}.concepts(id) ON DELETE CASCADE,
            namespace text NOT NULL,
            rows integer NOT NULL,
            vectors bytea NOT NULL)""",
        f"""CREATE TABLE {s}.images (
            concept_id bigint NOT NULL REFERENCES {s}.concepts(id) ON DELETE CASCADE,
            namespace text NOT NULL,
            idx integer NOT NULL,
            data bytea NOT NULL,
            PRIMARY KEY (concept_id, idx))""",
        f"CREATE TABLE {s}.generations (namespace text PRIMARY KEY, value bigint NOT NULL)",
        f"""CREATE FUNCTION {s}.bump_generation() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP <> 'INSERT' THEN
                INSERT INTO {s}.generations AS g (namespace, value) VALUES (OLD.namespace, 1)
                ON CONFLICT (namespace) DO UPDATE SET value = g.value + 1;
            END IF;
            IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.namespace IS DISTINCT FROM OLD.namespace) THEN
                INSERT INTO {s}.generations AS g (namespace, value) VALUES (NEW.namespace, 1)
                ON CONFLICT (namespace) DO UPDATE SET value = g.value + 1;
            END IF;
            RETURN NULL;
        END $$""",
        f"""CREATE TRIGGER concepts_generation AFTER INSERT OR UPDATE OR DELETE ON {s}.concepts
            FOR EACH ROW EXECUTE FUNCTION {s}.bump_generation()""",
    ]


# version -> DDL of the step from version - 1; append only, never edit a released step
_MIGRATIONS = {1: _migration_1}
SCHEMA_VERSION = max(_MIGRATIONS)


def _version(cur: Any, schema: str) -> int | None:
    """The schema's version, or None when it holds no pekit memory."""
    row = cur.execute("SELECT to_regclass(%s)", (f"{schema}.schema_version",)).fetchone()
    if row[0] is None:
        return None
    return int(cur.execute(f"SELECT COALESCE(MAX(version), 0) FROM {schema}.schema_version").fetchone()[0])


def _check_version(version: int, label: str) -> None:
    if version > SCHEMA_VERSION:
        raise SchemaError(
            f"memory {label} was written by a newer pekit (schema version {version}; this pekit "
            f"reads up to {SCHEMA_VERSION}): upgrade pekit (`pip install -U pekit-vlm`) to use it"
        )


def migrate(conn: Any, schema: str, label: str, *, writable: bool, must_exist: bool) -> None:
    """Check the memory in ``schema``; create it or apply missing migrations when writable.

    ``conn`` is an autocommit psycopg connection. All migrations run in one transaction.

    Raises:
        SchemaError: written by a newer pekit, or older and opened read-only.
        MemoryFileError: no memory there and ``must_exist`` (or read-only).
        MemoryStoreError: pgvector is missing and cannot be installed.
    """
    with conn.cursor() as cur:
        version = _version(cur, schema)
        if version is not None:
            _check_version(version, label)
            if version == SCHEMA_VERSION:
                return
        if version is None and (must_exist or not writable):
            why = "opened read-only" if not writable else "introduce a concept into it to create it"
            raise MemoryFileError(f"memory {label} does not exist yet: no pekit tables in schema '{schema}' ({why})")
        if not writable:
            raise SchemaError(
                f"memory {label} has schema version {version}, older than this pekit's {SCHEMA_VERSION}; "
                "open it once without read_only to upgrade it"
            )
        with conn.transaction():
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (advisory_key("", "migrate"),))
            _ensure_vector(cur, label)
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            if _version(cur, schema) is None:
                cur.execute(f"CREATE TABLE {schema}.schema_version "
                            "(version integer PRIMARY KEY, applied double precision NOT NULL)")
            version = _version(cur, schema) or 0  # another process may have migrated meanwhile
            _check_version(version, label)
            for step in range(version + 1, SCHEMA_VERSION + 1):
                for ddl in _MIGRATIONS[step](schema):
                    cur.execute(ddl)
                cur.execute(f"INSERT INTO {schema}.schema_version (version, applied) VALUES (%s, %s)",
                            (step, time.time()))


def _ensure_vector(cur: Any, label: str) -> None:
    """Install pgvector into the database unless it is there (needs the privilege once)."""
    if cur.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone():
        return
    if not cur.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'").fetchone():
        raise MemoryStoreError(
            f"the PostgreSQL server of memory {label} does not have the pgvector extension; install "
            "pgvector on the server (https://github.com/pgvector/pgvector), then try again"
        )
    import psycopg

    try:
        with cur.connection.transaction():  # a savepoint: the error below stays readable
            cur.execute("CREATE EXTENSION IF NOT EXISTS vector")
    except psycopg.errors.InsufficientPrivilege as exc:
        raise MemoryStoreError(
            f"the pgvector extension is not enabled in the database of memory {label}, and this user "
            "may not enable it; ask the database owner to run `CREATE EXTENSION vector;` once"
        ) from exc


def record_backbone(cur: Any, schema: str, label: str, backbone: str, dim: int) -> dict[str, str] | None:
    """Record ``backbone`` and ``dim`` in ``meta`` on the first add (or into an empty memory), typing
    ``views.embedding`` ``vector(dim)``, in the open write transaction of ``cur``; returns None
    then, else the stored meta, for the caller to refuse another backbone or width.

    Writers hold a shared advisory lock; changing the backbone takes it exclusively, so no
    add of the old backbone can slip in while the store switches.

    Raises:
        MemoryFileError: the memory ``label`` holds concepts but its meta lost the backbone or the width.
    """
    key, want = advisory_key(schema, "backbone"), (backbone, str(dim))
    meta = read_meta(cur)
    shared = (same_backbone(str(meta.get("backbone")), want[0]) and meta.get("dim") == want[1]
              and upgraded_backbone(meta.get("backbone"), want[0]) is None)  # an upgrade writes: exclusive
    cur.execute("SELECT pg_advisory_xact_lock_shared(%s)" if shared else "SELECT pg_advisory_xact_lock(%s)",
                (key,))
    meta = read_meta(cur)
    empty = not cur.execute("SELECT EXISTS (SELECT 1 FROM concepts)").fetchone()[0]
    if not empty and ("backbone" not in meta or "dim" not in meta):
        lost = "the backbone ('backbone')" if "backbone" not in meta else "the vector width ('dim')"
        raise MemoryFileError(  # overwriting them would turn every stored concept unreadable
            f"memory {label} holds concepts but its meta table has lost {lost}: it was edited or damaged "
            "outside pekit; restore it from a backup (or introduce the concepts again in a new schema)")
    if "backbone" not in meta or empty:
        if (meta.get("backbone"), meta.get("dim")) != want:
            if shared:
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (key,))
            cur.executemany("INSERT INTO meta (key, value) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE "
                            "SET value = EXCLUDED.value", [("backbone", want[0]), ("dim", want[1])])
            cur.execute(f"ALTER TABLE views ALTER COLUMN embedding TYPE vector({int(dim)})")
        return None
    upgraded = upgraded_backbone(meta.get("backbone"), want[0])
    if upgraded is not None and meta.get("dim") == want[1]:  # recorded by its weights from now on
        if shared:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (key,))
        cur.execute("UPDATE meta SET value = %s WHERE key = 'backbone'", (upgraded,))
    return meta
