"""Where the CLI writes its pictures: ``--out`` files and folders, free names beside a photo.

Nothing is written over an input (`check_outputs`: refused before any work), nor over an
existing file unless ``--out`` names it (`free`: ``photo_pekit.jpg``, ``photo_pekit-1.jpg``...);
a photo of a batch that cannot be read is reported and skipped (`skipped`).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from pekit._files import make_folder, output_path, read_only_reason, refuse_read_only, same_file, save_image
from pekit.errors import InvalidInputError, PekitError

__all__ = ["beside", "check_outputs", "failure", "free", "out_path", "read_only", "save", "save_beside", "skipped"]


def save(image: Any, path: Path, option: str = "--out") -> None:
    """Write a picture to ``path`` whole or not at all, its folder made if missing; an error
    says which ``option`` to give another path."""
    make_folder(path.parent, hint=f"pass {option} a path")
    save_image(image, path, hint=f"pass {option} a path")


def free(path: Path) -> Path:
    """``path``, or ``stem-1.jpg``, ``stem-2.jpg``... beside it: the first name not taken."""
    candidate, n = path, 0
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    return candidate


def out_path(out: str | None, image: Path, many: bool, suffix: str = "_pekit", ext: str = ".jpg") -> Path | None:
    """Where to write the annotated ``image``: the ``--out`` file as given, or a free name
    (``photo_pekit.jpg``, ``photo_pekit-1.jpg``...; ``ext`` for another kind of file) inside
    the ``--out`` folder (an existing one, or a name ending in ``/``)."""
    if not out:
        return None
    target = Path(out)
    if many or target.is_dir() or out.endswith(("/", os.sep)):
        return free(target / f"{image.stem}{suffix}{ext}")
    return target


def asked_batch(paths: list[str]) -> bool:
    """Whether the command line names a batch: several photos, or a folder (however many
    photos it holds). ``--json`` prints a batch as a list of records, one per photo, so a
    script reads the same shape whether a folder or a glob found one photo or ten.

    >>> asked_batch(["a.jpg"]), asked_batch(["a.jpg", "b.jpg"]), asked_batch(["."])
    (False, True, True)
    """
    if len(paths) != 1:
        return True
    try:
        return Path(paths[0]).expanduser().is_dir()
    except OSError:  # a name too long for the file system: one photo, whose reading says so
        return False


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # a name too long for the file system: not there (reading it says so)
        return False


def check_outputs(args: argparse.Namespace, inputs: list[Path], *, photos: bool = True,
                  batch: bool | None = None) -> None:
    """Refuse, before any work, an output file that is one of the inputs (it would be
    overwritten with the annotated copy), a file name for ``--out`` when several photos
    each need a file of their own, and (``photos``: the outputs are pictures) a file name
    for one picture whose suffix names no image format (``--out result``: a file or a folder?).
    ``batch``: the command line names several photos or a folder (default: more than one
    input), so ``--out`` is a folder whatever its name."""
    from pekit.images import IMAGE_SUFFIXES, OUTPUT_SUFFIXES, writable_suffix

    batch = len(inputs) > 1 if batch is None else batch

    sources = [p for p in inputs if _exists(p)]
    for option in ("out", "explain", "sheet"):
        value = getattr(args, option, None)
        if not value:
            continue
        target = output_path(value, f"--{option}")  # a name too long for the file system: said before any work
        refuse_read_only(target)  # a chmod 444 file, a r-x folder: said now, not after the work
        if target.exists() and not target.is_dir() and any(os.path.samefile(target, s) for s in sources):
            raise InvalidInputError(
                f"--{option} '{value}' is one of the inputs, so writing there would replace it; "
                "choose another file name or a folder"
            )
    named = [(option, value) for option in ("out", "explain", "sheet") if (value := getattr(args, option, None))
             and not value.endswith(("/", os.sep)) and not Path(value).expanduser().is_dir()]
    for option, value in named if photos else ():  # a batch: --out is its folder, whatever its name
        if not writable_suffix(Path(value).suffix) and (option != "out" or not batch):
            raise InvalidInputError(
                f"--{option} '{value}' does not end in the suffix of an image pekit writes "
                f"({', '.join(sorted(OUTPUT_SUFFIXES))}...): name a file such as "
                f"'{Path(value).with_suffix('.png' if option == 'explain' else '.jpg')}', or a folder "
                f"as '{value}/'"
            )
    for i, (option, value) in enumerate(named):  # two outputs into one file: the second would replace the first
        for other, again in named[i + 1:]:
            if same_file(value, again):
                raise InvalidInputError(f"--{option} and --{other} both name '{value}', so one would replace the "
                                        "other; give each its own file (or a folder)")
    out = getattr(args, "out", None)
    if out and batch and not Path(out).is_dir() and Path(out).suffix.lower() in IMAGE_SUFFIXES:
        raise InvalidInputError(
            f"--out '{out}' names one image file, but {len(inputs)} photo(s) were given as a batch; pass a folder "
            f"(e.g. --out {Path(out).stem}/) and each annotated photo is written there"
        )


def skipped(path: Path, exc: PekitError, command: str) -> dict:
    """A photo of a batch that could not be read (or that the LVLM refused): said on stderr,
    naming the photo, and the batch goes on."""
    where = "" if str(path) in str(exc) or path.name in str(exc) else f"{path}: "
    print(f"pekit {command}: error: {where}{exc} (skipped; the other photos go on)", file=sys.stderr)
    return failure(path, exc)


def failure(path: Path, exc: PekitError) -> dict:
    """The ``--json`` record of a photo of a batch that failed: its path, the error, its exit code."""
    return {"image": str(path), "error": str(exc), "exit_code": exc.exit_code}


def beside(image: Path, suffix: str = "_pekit") -> Path:
    """The default output: beside the input photo, never over an existing file."""
    return free(image.with_name(f"{image.stem}{suffix}.jpg"))


def read_only(folder: Path) -> bool:
    """Whether ``folder`` is not to be written: what `refuse_read_only` refuses (its mode
    lets nobody write: root may write anywhere, but a folder made ``r-x`` for everyone,
    such as a shared dataset, is meant to stay as it is), or this user cannot write there."""
    if not folder.is_dir():
        return True
    return read_only_reason(folder) is not None or not os.access(folder, os.W_OK | os.X_OK)


def save_beside(picture: Any, image: Path, command: str = "ask") -> Path | None:
    """Write the default output `beside` the photo; in the current folder when the photo's
    folder is read-only (`read_only`: an album or a dataset) or cannot be written. Returns
    where it went, or None (said on stderr) when neither can be written: a picture nobody
    asked for by ``--out`` must not cost the answer."""
    out = beside(image)
    if read_only(out.parent):
        out = free(Path.cwd() / out.name)
    try:
        save(picture, out)
    except InvalidInputError:
        out = free(Path.cwd() / out.name)
        try:
            save(picture, out)
        except InvalidInputError as exc:
            print(f"pekit {command}: warning: the annotated image was not written ({exc}); pass --out PATH to "
                  "write it elsewhere", file=sys.stderr)
            return None
    return out
