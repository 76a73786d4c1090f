"""One psycopg connection of the PostgreSQL memory: URI options, transactions, clear errors.

`PgConnection` knows nothing about concepts; `pekit.memory.pgvector.PgvectorMemory` builds on
it. Vectors travel in pgvector's binary format (a ``>HH`` header, then big-endian float32),
loaded straight into numpy by the small adapter registered here.

Write transactions run at READ COMMITTED (concurrent writers of one namespace queue on its
rows); read transactions are ``REPEATABLE READ READ ONLY``, so a concept and its views are
read from one snapshot even while another process replaces them.
"""

from __future__ import annotations

import struct
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from pekit.errors import MemoryFullError, MemoryLockedError, MemoryRetryError, MemoryStoreError, require
from pekit.memory._pg_schema import check_schema_name, migrate

__all__ = ["PgConnection", "masked", "split_uri", "stack_vectors"]

_HEADER = struct.Struct(">HH")


def masked(uri: str) -> str:
    """``uri`` with its password replaced by ``***`` (URIs end up in messages and logs).

    >>> masked("postgresql://bo:secret@db:5432/pekit")
    'postgresql://bo:***@db:5432/pekit'
    """
    parts = urllib.parse.urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))


def split_uri(uri: str) -> tuple[str, str | None]:
    """``(uri for libpq, schema)``: pekit's own ``schema=`` query option taken out.

    >>> split_uri("postgresql://db/pekit?schema=bo_tests&sslmode=require")
    ('postgresql://db/pekit?sslmode=require', 'bo_tests')
    """
    parts = urllib.parse.urlsplit(uri)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    schemas = [v for k, v in query if k == "schema"]
    rest = urllib.parse.urlencode([(k, v) for k, v in query if k != "schema"])
    return urllib.parse.urlunsplit(parts._replace(query=rest)), (schemas[-1] if schemas else None)


def _register_vector(conn: Any) -> None:
    """Binary dumper (numpy -> vector) and loader (vector -> read-only ``(d,) >f4`` array)."""
    from psycopg.adapt import Dumper, Loader
    from psycopg.pq import Format
    from psycopg.types import TypeInfo

    info = TypeInfo.fetch(conn, "vector")
    if info is None:  # pragma: no cover - migrate() installs the extension first
        raise MemoryStoreError("the pgvector type 'vector' is missing from the database")
    info.register(conn)

    class VectorDumper(Dumper):
        format = Format.BINARY
        oid = info.oid

        def dump(self, obj: Any) -> bytes:
            a = np.ascontiguousarray(obj, dtype=">f4").ravel()
            return _HEADER.pack(a.size, 0) + a.tobytes()

    class VectorLoader(Loader):
        format = Format.BINARY

        def load(self, data: Any) -> np.ndarray:
            return np.frombuffer(data, dtype=">f4", offset=_HEADER.size)

    conn.adapters.register_dumper(np.ndarray, VectorDumper)
    conn.adapters.register_loader(info.oid, VectorLoader)


def stack_vectors(arrays: list[np.ndarray]) -> np.ndarray:
    """Vectors as the adapter loads them (``(d,) >f4`` each) -> one ``(n, d) float32`` array."""
    return np.stack(arrays).astype(np.float32)


def _first_line(exc: Exception) -> str:
    """The server's message of ``exc`` without its DETAIL and HINT lines (an error is one line)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _lost_connection(exc: Exception, psycopg: Any) -> bool:
    """Whether ``exc`` says the connection itself failed: psycopg's own (no SQLSTATE), a
    connection exception (class 08) or a server shutting down (57P01-57P03). A full disk, a
    cancelled statement or a value over a server limit are OperationalErrors too, but trying
    again on a new connection would not help them."""
    if not isinstance(exc, psycopg.OperationalError):
        return False
    state = getattr(exc, "sqlstate", None)
    return state is None or state.startswith("08") or state in ("57P01", "57P02", "57P03")


class PgConnection:
    """A pekit memory in one schema of a PostgreSQL database, behind one thread-safe connection.

    Args:
        uri: ``postgresql://[user[:password]@][host][:port]/dbname[?schema=...&libpq options]``;
            a local socket is ``postgresql:///dbname?host=/run/postgresql``.
        schema: PostgreSQL schema holding the tables (default: the URI's ``schema=``, else ``pekit``).
        read_only: write transactions raise `MemoryStoreError`; nothing is created.
        timeout: seconds to wait to connect and for another writer's locks.
        must_exist: no pekit memory in the schema is a `MemoryFileError` (else it is created).
    """

    def __init__(self, uri: str, *, schema: str | None = None, read_only: bool = False, timeout: float = 5.0,
                 must_exist: bool = False) -> None:
        self.dsn, uri_schema = split_uri(uri)
        self.schema = check_schema_name(schema or uri_schema or "pekit")
        self.label = masked(uri)
        self.read_only = read_only
        self.timeout = timeout
        self.must_exist = must_exist
        self.lock = threading.RLock()
        self._psycopg = require("psycopg", "postgres", "psycopg[binary]")
        self._conn: Any = None
        self._conn = self._connect()

    def _connect(self) -> Any:
        psycopg = self._psycopg
        try:
            conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=max(1, round(self.timeout)))
        except psycopg.Error as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise MemoryStoreError(
                f"cannot connect to the PostgreSQL server of memory {self.label}: {first}; check the URI "
                "(postgresql://user@host:port/database), that the server is running and that this user may log in"
            ) from exc
        try:
            conn.execute(f"SET lock_timeout = {int(self.timeout * 1000)}")
            migrate(conn, self.schema, self.label, writable=not self.read_only, must_exist=self.must_exist)
            row = conn.execute("SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
                               "WHERE e.extname = 'vector'").fetchone()
            conn.execute(f'SET search_path = {self.schema}, "{row[0]}"')
            _register_vector(conn)
        except MemoryStoreError:
            conn.close()
            raise
        except psycopg.Error as exc:
            conn.close()
            raise self.error(exc, "open it") from exc
        return conn

    def error(self, exc: Exception, action: str) -> MemoryStoreError:
        """Translate a psycopg error into a `MemoryStoreError` that says what to do."""
        errors = self._psycopg.errors
        if isinstance(exc, (errors.LockNotAvailable, errors.DeadlockDetected, errors.SerializationFailure)):
            return MemoryLockedError(
                f"memory {self.label} is being written by another process, so pekit cannot {action} now; "
                f"try again (waited {self.timeout:g} s)"
            )
        if isinstance(exc, (errors.ReadOnlySqlTransaction, errors.InsufficientPrivilege)):
            return MemoryStoreError(
                f"pekit cannot {action}: the PostgreSQL user of memory {self.label} may not write there "
                f"({str(exc).strip()}); grant it the privileges, or open the memory read-only"
            )
        if isinstance(exc, errors.DiskFull):
            return MemoryFullError(
                f"pekit cannot {action}: the disk of the PostgreSQL server of memory {self.label} is full; free "
                "some space there and try again (this write was rolled back; what was stored before is intact)"
            )
        if _lost_connection(exc, self._psycopg):
            return MemoryRetryError(
                f"lost the connection to the PostgreSQL server of memory {self.label} while trying to "
                f"{action} ({_first_line(exc)}); nothing of this write was kept: try again"
            )
        return MemoryStoreError(f"pekit cannot {action} in memory {self.label}: {_first_line(exc)}")

    def connection(self) -> Any:
        """The open connection (reconnected when the server dropped it); `MemoryStoreError` after `close`."""
        if self._conn is None:
            raise MemoryStoreError(f"memory {self.label} is closed (by close(), or the end of its `with` "
                                   "block); open it again: a new Personalizer on it, or open_memory()")
        if self._conn.closed or self._conn.broken:
            self._conn.close()
            self._conn = self._connect()
        return self._conn

    @contextmanager
    def transaction(self, action: str, *, write: bool) -> Iterator[Any]:
        """A cursor (binary results) inside one transaction: COMMIT on success, else ROLLBACK.

        psycopg errors become `MemoryStoreError`; other exceptions pass through after the rollback.
        """
        with self.lock:
            conn = self.connection()
            if write and self.read_only:
                raise MemoryStoreError(
                    f"memory {self.label} is read-only (opened with read_only=True), so pekit cannot "
                    f"{action}; open it without read_only to write"
                )
            try:
                with conn.transaction(), conn.cursor(binary=True) as cur:
                    if not write:
                        cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    yield cur
            except self._psycopg.errors.UniqueViolation:
                raise  # the store turns a lost race for a name into DuplicateConceptError
            except self._psycopg.Error as exc:
                raise self.error(exc, action) from exc

    @contextmanager
    def autocommit(self, action: str) -> Iterator[Any]:
        """A cursor outside any transaction (``CREATE INDEX CONCURRENTLY`` needs one)."""
        with self.lock:
            conn = self.connection()
            try:
                with conn.cursor() as cur:
                    yield cur
            except self._psycopg.Error as exc:
                raise self.error(exc, action) from exc

    def close(self) -> None:
        """Close the connection; safe to call twice."""
        with self.lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
