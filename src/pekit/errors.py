"""Typed errors. Every message says what went wrong *and* what to do about it.

The CLI maps each class to an exit code (``exit_code``), so scripts can react to
"concept not found" differently from "bad image".
"""

from __future__ import annotations


class PekitError(Exception):
    """Base class of every error pekit raises on purpose."""

    exit_code = 1


class ImageError(PekitError, ValueError):
    """An input could not be used as an image (unreadable, truncated, too large, empty)."""

    exit_code = 3


class ConceptNotFoundError(PekitError, KeyError):
    """A concept name is not in the memory."""

    exit_code = 4

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class DuplicateConceptError(PekitError, ValueError):
    """A concept with that name already exists (use ``replace=True`` / ``--replace``)."""

    exit_code = 5


class InvalidInputError(PekitError, ValueError):
    """An argument is malformed (empty name, bad box, wrong shape...)."""

    exit_code = 2


class NothingFoundError(PekitError):
    """No object could be isolated in a reference image."""

    exit_code = 6


class MemoryStoreError(PekitError):
    """The memory store cannot be opened, read or written."""

    exit_code = 7


class MemoryFileError(MemoryStoreError):
    """The memory file named is missing, or one of its concepts is damaged and unreadable
    (the message names it and says how to repair: ``pekit repair`` or ``--skip-damaged``)."""


class MemoryRetryError(MemoryStoreError):
    """The memory could not be used just now, and nothing is wrong with it: try again (a lock
    held by another writer, a connection to its server lost; the HTTP service answers 503
    with ``Retry-After``)."""


class MemoryLockedError(MemoryRetryError):
    """Another process held the memory's write lock for longer than the timeout: try again."""


class MemoryFullError(MemoryStoreError):
    """A write found no room: the disk holding the memory is full, or a file-size limit
    (``ulimit -f``) was reached. The write was rolled back; what was stored before is
    intact (the HTTP service answers 507)."""


class BackboneMismatchError(MemoryStoreError):
    """The memory holds vectors from another backbone; they cannot be compared."""


class SchemaError(MemoryStoreError):
    """The memory file was written by a newer pekit (or is not a pekit memory)."""


class BackendNotFoundError(PekitError, KeyError):
    """A backend name is not registered; the message lists the available ones."""

    exit_code = 8

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class MissingDependencyError(PekitError, ImportError):
    """An optional dependency is not installed; the message has the pip command."""

    exit_code = 9


class BackendError(PekitError, RuntimeError):
    """A model backend failed (bad weights, unreachable endpoint, rejected request)."""

    exit_code = 10


class OutputError(InvalidInputError):
    """An output file could not be written: the disk is full, no permission, a file in the
    way. (An `InvalidInputError` too, for callers that catch those.)"""

    exit_code = 11

    @classmethod
    def writing(cls, path: object, exc: OSError, *, what: str = "the file", hint: str = "pass another path",
                verb: str = "write") -> OutputError:
        """The error for ``exc`` raised while writing ``path``: the file, the cause, what to do."""
        import errno

        if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
            cause = "the disk is full (or over quota); free some space, or " + hint + " on another disk"
        elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            # pekit's own refusal of a file or folder whose mode lets nobody write it (pekit._files) says why
            cause = getattr(exc, "pekit_reason", None) or "permission denied (or a read-only disk); " + hint + \
                " you can write to"
        elif exc.errno == errno.EISDIR:
            cause = "that path is a folder, not a file; " + hint
        elif exc.errno in (errno.ENOTDIR, errno.EEXIST):
            blocker = _file_in_the_way(path)
            cause = (f"'{blocker}' is a file, not a folder; " if blocker is not None
                     else "a file is in the way of a folder on that path; ") + hint
        else:
            cause = f"{exc.strerror or exc}; check the folder and the free space, or {hint}"
        return cls(f"cannot {verb} {what} '{path}': {cause}")


def _file_in_the_way(path: object) -> str | None:
    """The nearest of ``path`` and its parents that exists and is not a folder, or None."""
    import os
    from pathlib import Path

    for place in (Path(str(path)), *Path(str(path)).parents):
        if os.path.lexists(place):
            return None if place.is_dir() else str(place)
    return None


def require(module: str, extra: str, package: str | None = None):
    """Import an optional dependency or raise `MissingDependencyError` with the pip hint.

    >>> np = require("numpy", "core")
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        pkg = package or module.split(".")[0]
        if extra == "core":  # a dependency of pekit-vlm itself (pyproject.toml has no extra 'core')
            raise MissingDependencyError(
                f"pekit needs '{pkg}', which is not installed: reinstall pekit (`pip install pekit-vlm`) "
                f"or run `pip install {pkg}`"
            ) from exc
        raise MissingDependencyError(  # the extra installs what else the feature needs with it
            f"this feature needs the optional dependency '{pkg}', which is not installed: "
            f"run `pip install 'pekit-vlm[{extra}]'` (it installs '{pkg}' with what it needs alongside)"
        ) from exc
