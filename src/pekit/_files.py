"""Files that appear whole or not at all: written beside their target, renamed into place.

A reader never sees half a file, and a failure (a full disk, a crash) leaves the previous
file, if any, as it was and no temporary file behind (the temporary file's name starts
with a dot, so folder listings skip it). The file keeps the mode of the one it replaces, or
gets the mode any new file gets (``0o666`` less the umask), not the private ``0o600`` of
`tempfile.mkstemp`; a symbolic link stays a link, and the file it points to is replaced.
A file or folder whose mode lets nobody write it is left alone (`OutputError`).
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_path", "atomic_write", "make_folder", "read_only_reason", "refuse_read_only", "replacing",
           "save_image", "temporary_beside", "untouched_sqlite"]


def _read_umask() -> int:
    umask = os.umask(0)  # reading the umask means setting it; put it straight back
    os.umask(umask)
    return umask


#: the process's umask, read once at import: reading it means setting it for an instant,
#: which other threads creating files at that moment would see
_UMASK = _read_umask()


def _mode_for(target: Path) -> int:
    """The mode the file at ``target`` gets: an existing file's own, else a new file's
    (``0o666`` less the umask)."""
    try:
        return target.stat().st_mode & 0o7777
    except OSError:
        return 0o666 & ~_UMASK


def temporary_beside(target: Path) -> Path:
    """A new empty file in ``target``'s folder, named after it and with its suffix (so
    writers that read the suffix still know the format)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem[:60]}.", suffix=target.suffix[:20], dir=target.parent)
    os.close(fd)
    return Path(tmp)


@contextmanager
def replacing(target: Path, tmp: Path) -> Iterator[Path]:
    """Yield ``tmp`` to write to; rename it over ``target`` (with a new file's mode) when the
    block ends without error, remove it when the block raises."""
    try:
        yield tmp
        try:
            os.chmod(tmp, _mode_for(target))
        except OSError:  # a file system without modes (FAT, exFAT, some network shares)
            pass
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_path(target: str | os.PathLike, *, make_folder: bool = False) -> AbstractContextManager[Path]:
    """Context manager: a temporary path beside ``target`` (`temporary_beside`, created at
    once, so a folder that cannot be written fails here) that replaces it when the block
    ends without error and is removed when it raises (`replacing`). A symbolic link
    ``target`` stays a link: the file it points to is replaced. ``make_folder``: create
    ``target``'s folder when missing.

    >>> import tempfile; folder = Path(tempfile.mkdtemp())
    >>> with atomic_path(folder / "a.txt") as tmp:
    ...     _ = tmp.write_text("whole")
    >>> (folder / "a.txt").read_text(), [p.name for p in folder.iterdir()]
    ('whole', ['a.txt'])
    """
    target = _through_links(Path(target))
    if make_folder:
        target.parent.mkdir(parents=True, exist_ok=True)
    reason = read_only_reason(target)
    if reason is not None:  # an OSError, as the write itself would raise (callers that go on past one, do)
        refused = PermissionError(errno.EACCES, reason, str(target))
        refused.pekit_reason = reason  # type: ignore[attr-defined]  # `OutputError.writing` says it as it is
        raise refused
    return replacing(target, temporary_beside(target))


def refuse_read_only(target: str | os.PathLike) -> None:
    """`OutputError` when ``target`` or the folder it would be written in (the nearest one
    that exists; ``target`` itself when it is a folder to write into) has a mode that lets
    nobody write it (``chmod 444``, an album or a dataset made ``r-x``): a rename could
    replace the file anyway, and root may write anywhere, but that mode says it is to stay
    as it is (`cp` and the shell's ``>`` respect it). On Windows only a file's read-only
    attribute counts (a folder's means nothing there: Pictures and Documents carry it)."""
    from pekit.errors import OutputError

    reason = read_only_reason(_through_links(Path(target)))
    if reason is not None:
        raise OutputError(f"cannot write '{target}': {reason}")


def read_only_reason(target: Path) -> str | None:
    """Why ``target`` (a file, or a folder to write into) is not to be written, or None:
    the rule of `refuse_read_only`, which `atomic_path` and the CLI's default outputs share."""
    import stat

    folder = target if target.is_dir() else target.parent
    while not folder.exists() and folder != folder.parent:  # a folder to be made: its nearest existing one
        folder = folder.parent
    places = [] if target.is_dir() else [(target, "the file")]
    if os.name != "nt":
        places.append((folder, "the folder" if folder == target else "its folder"))
    for place, what in places:
        try:
            mode = place.stat().st_mode
        except OSError:  # not there yet (a new file), or not ours to see: the write says why
            continue
        if not mode & 0o222:
            return (f"{what} is read-only ({stat.filemode(mode)}), so pekit does not replace or add to it; pass "
                    f"another path, or make it writable (chmod u+w '{place}')")
    return None


def _through_links(target: Path) -> Path:
    """The file a symbolic link ``target`` points to (so the link stays a link and its file
    is what gets replaced), else ``target``."""
    return Path(os.path.realpath(target)) if target.is_symlink() else target


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], Any]) -> None:
    """``write(fh)`` into a file that replaces ``path`` only when complete (`atomic_path`;
    its folder made if missing)."""
    with atomic_path(path, make_folder=True) as tmp, open(tmp, "wb") as fh:
        write(fh)


def save_image(image: Any, target: str | os.PathLike, *, hint: str = "pass another path") -> None:
    """Write an ``(H, W, 3)`` uint8 ``image`` to ``target`` whole or not at all (`atomic_path`),
    in the format its suffix names (PNG without one). A suffix Pillow cannot write is an
    `InvalidInputError`; a full disk, no permission or a missing folder an `OutputError`
    (``hint``: what to do instead). A previous file at ``target`` is only ever replaced whole."""
    from PIL import Image

    from pekit.errors import InvalidInputError, OutputError

    try:
        with atomic_path(target) as tmp:
            try:
                Image.fromarray(image).save(tmp, format=None if _through_links(Path(target)).suffix else "PNG")
            except (ValueError, KeyError) as exc:  # Pillow knows no format for the suffix
                raise InvalidInputError(f"cannot write '{target}': {exc}; use a suffix such as .jpg or .png") from exc
    except OSError as exc:
        raise OutputError.writing(target, exc, hint=hint) from exc


def output_path(path: str | os.PathLike, what: str) -> Path:
    """``path`` (user folder expanded) if this system can name it; `InvalidInputError` when
    not (a file name over the file system's length limit), and `OutputError` when a file
    stands where one of its folders would be (``--sheet clip.mp4/sheet.png``), before any
    work is done: not after another output of the same run was written."""
    from pekit.errors import InvalidInputError, OutputError, _file_in_the_way

    target = Path(path).expanduser()
    try:
        target.exists()
    except OSError as exc:  # Python < 3.12 raises ENAMETOOLONG here
        raise InvalidInputError(f"{what} '{os.fspath(path)[:80]}...': not a path this system can write "
                                f"({exc.strerror or exc}); choose a shorter name") from exc
    blocked = _file_in_the_way(target.parent)  # the nearest of its folders that exists must be one
    if blocked is not None:
        raise OutputError(f"cannot create the folder of {what} '{os.fspath(path)}': '{blocked}' is a file, "
                          f"not a folder; pass {what} a path elsewhere")
    return target


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether paths ``a`` and ``b`` name one file: an existing one (through links), or one
    path written twice when it does not exist yet."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(os.path.expanduser(a)) == os.path.abspath(os.path.expanduser(b))


def make_folder(folder: str | os.PathLike, *, hint: str = "pass another path") -> None:
    """Create ``folder`` (and its parents) when missing; an `OutputError` naming it and the
    cause (``hint``: what to do instead) when it cannot be made."""
    from pekit.errors import OutputError

    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError.writing(folder, exc, what="the folder", hint=hint, verb="create") from exc


def read_only_mount(path: str | os.PathLike) -> bool:
    """Whether ``path`` lies on a file system mounted read-only, where no chmod makes it
    writable (a backup disk, a container's image): what to tell a user differs."""
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):  # no statvfs (Windows): treated as a writable mount
        return False


def untouched_sqlite(path: str | os.PathLike) -> bool:
    """Whether the SQLite file at ``path`` is 0 bytes with no journal or write-ahead log
    beside it: nobody has begun to write into it (a file a failed first write made may go).

    >>> untouched_sqlite("/no/such/file.db")
    False
    """
    try:
        if os.stat(path).st_size:
            return False
    except OSError:
        return False
    return not any(os.path.lexists(f"{os.fspath(path)}{extra}") for extra in ("-journal", "-wal"))
