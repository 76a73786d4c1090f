"""API keys of the HTTP service: random tokens, stored one-way hashed, one namespace each.

A key looks like ``pk_<key id>_<secret>``: the key id (12 random hex characters) is public
and finds the row; the secret (32 random bytes, `secrets.token_urlsafe`) is never stored:
the file keeps only ``SHA-256(secret)``, compared with `hmac.compare_digest`.

Why SHA-256 and not a slow password hash (scrypt, PBKDF2): the secret is 256 random bits,
not a person's password, so there is nothing to guess a dictionary of; a slow hash would
add no protection against brute force (2^256 tries either way) but would cost tens of
milliseconds of CPU on *every* request. A stolen key file reveals no key.

The store is one SQLite file (default: ``keys.db`` beside the memory file), so every
worker process sees a new or revoked key at once: each check is one indexed query.

Example:
    >>> keys = KeyStore(":memory:")
    >>> token = keys.create("alice")
    >>> keys.verify(token).namespace
    'alice'
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import logging
import os
import re
import secrets
import sqlite3
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from pekit._files import untouched_sqlite
from pekit.errors import InvalidInputError, OutputError, PekitError

__all__ = ["ApiKey", "AuthError", "KeyFileReplacedError", "KeyStore", "RevokedKeyError", "UnknownKeyError",
           "check_namespace", "keys_path_for", "memory_file_for"]

log = logging.getLogger("pekit.server")

_TOKEN = re.compile(r"^pk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
_NAMESPACE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    key_id     TEXT PRIMARY KEY,
    namespace  TEXT NOT NULL,
    digest     BLOB NOT NULL,
    label      TEXT NOT NULL DEFAULT '',
    created    REAL NOT NULL,
    revoked    REAL
)
"""
_COLUMNS = {"key_id", "namespace", "digest", "label", "created", "revoked"}


class AuthError(PekitError):
    """An API key was missing, malformed, unknown or revoked (HTTP 401)."""

    exit_code = 11


class UnknownKeyError(AuthError):
    """No key matches (wrong, mistyped or made-up token)."""


class RevokedKeyError(AuthError):
    """The key was right but has been revoked."""


class KeyFileReplacedError(PekitError):
    """The key file was replaced under a running server (HTTP 503): SQLite cannot follow a
    live database moved or restored into place, so every key is refused until a restart."""


@dataclass(frozen=True)
class ApiKey:
    """One stored key, without its secret.

    Attributes:
        key_id: the public part of the token (``pk_<key_id>_...``).
        namespace: the user whose concepts the key reaches.
        label: free text given at creation.
        created: seconds since the epoch.
        revoked: when it was revoked, or None.
    """

    key_id: str
    namespace: str
    label: str
    created: float
    revoked: float | None


def check_namespace(namespace: str) -> str:
    """A user name usable as a namespace: 1-64 of letters, digits and ``. _ @ -``."""
    if not isinstance(namespace, str) or not _NAMESPACE.match(namespace):
        raise InvalidInputError(
            f"user name {namespace!r} must be 1-64 letters, digits, '.', '_', '@' or '-', starting with a "
            "letter or digit, e.g. 'alice'"
        )
    if namespace == "default":
        raise InvalidInputError("user name 'default' is the namespace `pekit introduce` and the library use when "
                                "none is given: that user would share (and could forget) those concepts; choose "
                                "another name, e.g. 'alice'")
    return namespace


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("ascii")).digest()


def memory_file_for(memory: str | os.PathLike[str] | None) -> Path | None:
    """The file of a memory URI or path (``$PEKIT_MEMORY`` or the user data folder's when None),
    or None for a memory that is no file (``memory://``, ``postgresql://``)."""
    from pekit.memory import default_memory_path

    raw = os.fspath(memory) if memory is not None else os.environ.get("PEKIT_MEMORY", "").strip() or None
    if raw is None:
        return default_memory_path().expanduser().absolute()
    if raw.startswith("file:"):
        from urllib.request import url2pathname

        return Path(url2pathname(urllib.parse.urlsplit(raw).path)).absolute()
    if "://" in raw or raw == ":memory:":
        return None
    return Path(raw).expanduser().absolute()


def keys_path_for(memory: str | os.PathLike[str] | None) -> str:
    """The default key file of a memory: ``<memory stem>.keys.db`` beside a memory file, else
    ``keys.db`` in the user data folder (``memory://`` and ``postgresql://`` memories)."""
    path = memory_file_for(memory)
    if path is None:
        import platformdirs

        return str(Path(platformdirs.user_data_dir("pekit", appauthor=False)) / "keys.db")
    return str(path.with_name(path.stem + ".keys.db"))


def _open_error(raw: str, exc: sqlite3.Error) -> PekitError:
    """Why a key file cannot be opened, and what to do: no room on its disk (`OutputError`:
    the file is fine, free some space), else another ``--keys PATH``."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    if name.startswith(("SQLITE_FULL", "SQLITE_IOERR")) or any(w in str(exc).lower() for w in ("disk is full",
                                                                                             "disk i/o error")):
        return OutputError(f"cannot open the key file {raw}: SQLite could not write beside it ({exc}): its disk may be "
                           "full (even reading keys writes a small -shm file beside it); free some space and try "
                           "again (the keys in it are intact)")
    return InvalidInputError(f"cannot open the key file {raw}: {exc}; pass another --keys PATH")


def _remove_new(made: list[Path]) -> None:
    """Remove what opening a new key file created (the file while still empty, then the
    folders while empty), newest first: a failed `keys create` leaves nothing behind."""
    for path in reversed(made):
        try:
            if path.is_dir():
                path.rmdir()
            elif untouched_sqlite(path):
                Path(f"{path}-shm").unlink(missing_ok=True)
                path.unlink()
            else:  # another process has begun writing it: left as it is
                return
        except OSError:
            return  # another process's file by now, or not empty: left as it is


class KeyStore:
    """API keys in one SQLite file (``":memory:"`` for tests); safe across threads and processes.

    Args:
        path: the key file; created (with its folders) when missing. A SQLite file holding
            other tables (a pekit memory, another program's database) is refused, untouched:
            keys live in a file of their own.
        timeout: seconds to wait for another process's write lock.
        must_exist: refuse a missing file instead of creating it (`InvalidInputError`).
        make_folder: create the file's missing folders (else refuse: a mistyped ``--keys``).
    """

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 5.0, must_exist: bool = False,
                 make_folder: bool = True) -> None:
        raw = os.fspath(path)
        self.path = None if raw == ":memory:" else Path(raw).expanduser().absolute()
        if self.path is not None:
            if self.path.is_dir():
                raise InvalidInputError(f"the key file {self.path} is a folder; pass a file, e.g. "
                                        f"--keys {self.path / 'keys.db'}")
            if must_exist and not self.path.exists():
                raise InvalidInputError(f"there is no key file at {self.path}; create a key first with "
                                        f"`pekit keys create USER --keys {self.path}`")
            if not make_folder and not self.path.parent.is_dir():
                raise InvalidInputError(f"the folder of the key file {self.path} does not exist; create it, "
                                        "or pass another --keys PATH")
        made: list[Path] = []  # what this call created, removed again if the file cannot be opened
        if self.path is not None:
            missing = [d for d in (self.path.parent, *self.path.parent.parents) if not d.exists()]
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise InvalidInputError(f"cannot create the folder of the key file {self.path}: {exc}") from exc
            made.extend(reversed(missing))
        if self.path is not None and not self.path.exists():  # only its owner reads the key digests
            try:
                os.close(os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            except FileExistsError:
                pass  # another process made it meanwhile
            except OSError as exc:
                _remove_new(made)
                raise InvalidInputError(f"cannot create the key file {self.path}: {exc}; pass another --keys PATH") \
                    from exc
            else:
                made.append(self.path)
        try:
            self._conn = sqlite3.connect(raw if self.path is None else str(self.path), timeout=timeout,
                                         isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            _remove_new(made)
            raise _open_error(raw, exc) from exc
        try:
            self._check_tables()  # before anything is written: another program's file stays as it was
            self._conn.execute("PRAGMA journal_mode=WAL" if self.path is not None else "PRAGMA journal_mode=MEMORY")
            self._conn.execute(_SCHEMA)
        except sqlite3.Error as exc:
            self._conn.close()
            _remove_new(made)
            raise _open_error(raw, exc) from exc
        except PekitError:
            self._conn.close()
            raise
        self._lock = threading.Lock()
        self._identity = self._file_identity()
        self._replaced = False
        if self.path is not None and self._identity is None:  # removed as it was opened (a failed `keys create`
            self._conn.close()                                 # of another process): its keys would go nowhere
            raise InvalidInputError(f"the key file {self.path} was removed while pekit opened it; try again")

    def _file_identity(self) -> tuple[int, int] | None:
        """The key file's ``(device, inode)``: a file restored from a backup or moved into place
        has another, and the open connection would go on reading the old, unlinked one."""
        if self.path is None:
            return None
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_dev, st.st_ino

    def _follow(self) -> None:
        """Refuse every key once another file stands at the key file's path (call with the lock
        held). A backup restored or a copy moved into place while the server runs cannot be
        read safely (the old file's write-ahead log would be read as the new one's), and the
        old file may still hold keys revoked in the new one: fail closed until a restart."""
        if self.path is None:
            return
        now = self._file_identity()
        if now == self._identity:
            return
        if not self._replaced:
            self._replaced = True
            log.error("the key file %s was %s while the server runs; every request is refused until the server "
                      "restarts (revoke keys with `pekit keys revoke` on the live file instead)", self.path,
                      "removed" if now is None else "replaced")
        raise KeyFileReplacedError("the server's key file was removed or replaced on disk; the server must be "
                                   "restarted (ask its operator)")

    def _check_tables(self) -> None:
        """Refuse a SQLite file holding anything but the ``api_keys`` table (a pekit memory, another
        program's database): keys written into it would mix with, and could damage, its data."""
        tables = {r[0] for r in self._conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'").fetchall()}
        others = sorted(tables - {"api_keys"})
        where = self.path or ":memory:"
        separate = f"--keys {where.with_name(where.stem + '.keys.db')}" if isinstance(where, Path) else "--keys PATH"
        if others:
            what = "a pekit memory" if {"concepts", "meta"} <= tables else "another database"
            raise InvalidInputError(
                f"{where} is not a key file: it is {what} (tables {', '.join(others[:5])}); keep the API keys "
                f"in a separate file, e.g. {separate}"
            )
        if "api_keys" in tables:
            columns = {r[1] for r in self._conn.execute("PRAGMA table_info(api_keys)").fetchall()}
            if not columns >= _COLUMNS:
                raise InvalidInputError(
                    f"{where} has an api_keys table that is not pekit's (columns {', '.join(sorted(columns))}); "
                    f"keep the API keys in a separate file, e.g. {separate}"
                )

    def create(self, namespace: str, *, label: str = "") -> str:
        """A new key for ``namespace``; returns the token, the only time it is ever shown."""
        check_namespace(namespace)
        key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        with self._lock:
            self._follow()
            self._conn.execute(
                "INSERT INTO api_keys (key_id, namespace, digest, label, created) VALUES (?, ?, ?, ?, ?)",
                (key_id, namespace, _digest(secret), str(label), time.time()),
            )
        return f"pk_{key_id}_{secret}"

    def verify(self, token: str | None) -> ApiKey:
        """The key ``token`` names; `UnknownKeyError` / `RevokedKeyError` otherwise.

        The secret is compared in constant time with `hmac.compare_digest`; a malformed
        token is refused before any query.
        """
        match = _TOKEN.match(token or "")
        if match is None:
            raise UnknownKeyError("the API key is malformed; it looks like pk_<12 hex>_<43 characters>")
        key_id, secret = match.groups()
        with self._lock:
            self._follow()
            row = self._conn.execute(
                "SELECT key_id, namespace, digest, label, created, revoked FROM api_keys WHERE key_id = ?", (key_id,)
            ).fetchone()
        stored = row[2] if row is not None else b"\0" * 32  # compare anyway: unknown ids take as long
        if not hmac.compare_digest(_digest(secret), bytes(stored)) or row is None:
            raise UnknownKeyError("the API key is not valid; create one with `pekit keys create USER`")
        key = ApiKey(row[0], row[1], row[3], row[4], row[5])
        if key.revoked is not None:
            raise RevokedKeyError("the API key was revoked; ask for a new one (`pekit keys create USER`)")
        return key

    def list(self, namespace: str | None = None) -> list[ApiKey]:
        """Stored keys (never their secrets), oldest first; of one user or of all."""
        query = "SELECT key_id, namespace, label, created, revoked FROM api_keys"
        args: tuple[str, ...] = ()
        if namespace is not None:
            query, args = query + " WHERE namespace = ?", (namespace,)
        with self._lock:
            self._follow()
            rows = self._conn.execute(query + " ORDER BY created, key_id", args).fetchall()
        return [ApiKey(*r) for r in rows]

    def revoke(self, key: str) -> builtins.list[ApiKey]:
        """Revoke a key by its id (``pk_<id>`` or the whole token also work) or every key of a
        user (``user:alice``); returns what was revoked. `InvalidInputError` if nothing matches."""
        key = key.strip()
        now = time.time()
        with self._lock:
            self._follow()
            if key.startswith("user:"):
                where, arg = "namespace = ?", key[5:]
            else:
                match = re.match(r"^(?:pk_)?([0-9a-f]{12})(?:_.*)?$", key)
                if match is None:
                    raise InvalidInputError(f"'{key[:16]}' is not a key id; see `pekit keys list`")
                where, arg = "key_id = ?", match.group(1)
            ids = [r[0] for r in self._conn.execute(
                f"SELECT key_id FROM api_keys WHERE {where} AND revoked IS NULL", (arg,)).fetchall()]
            if not ids:
                raise InvalidInputError(f"no active key matches '{key[:24]}'; see `pekit keys list`")
            self._conn.executemany("UPDATE api_keys SET revoked = ? WHERE key_id = ?", [(now, i) for i in ids])
        return [k for k in self.list() if k.key_id in ids]

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> KeyStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
