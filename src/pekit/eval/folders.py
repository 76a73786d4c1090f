"""What a dataset's folders hold, as every layout reader reads them: its photos (`images`,
not pekit's own drawings), its concept folders (`subdirs`), names in one Unicode form
(`nfc`), and each concept's category (a ``concept,class`` CSV: `read_categories`; else
guessed from the name: `category_from_name`).
"""

from __future__ import annotations

import csv
import re
import unicodedata
from pathlib import Path

from pekit.errors import InvalidInputError
from pekit.images import IMAGE_SUFFIXES, PEKIT_OUTPUT

__all__ = ["category_from_name", "category_of", "images", "listing", "nfc", "read_categories", "subdirs"]


def category_from_name(name: str) -> str:
    """A category guessed from a concept name: separators to spaces, trailing digits dropped.

    >>> category_from_name("dog3"), category_from_name("small_penguin")
    ('dog', 'small penguin')
    """
    text = " ".join(re.split(r"[_\-\s]+", name.strip().lower()))
    return re.sub(r"\s*\d+$", "", text).strip() or name.strip().lower()


def images(folder: Path) -> list[Path]:
    """The photos in ``folder`` (none when it is not a folder), sorted; hidden files and pekit's drawings left out."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                  and not p.name.startswith(".") and not PEKIT_OUTPUT.search(p.stem))  # not pekit's drawings


def subdirs(folder: Path) -> list[Path]:
    """The subfolders of ``folder`` that may be concepts, sorted (none hidden, none ``_``-prefixed)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))


def listing(root: Path, limit: int = 8) -> str:
    """What ``root`` holds, in a few words, for an error message."""
    if not root.is_dir():
        return "nothing (the folder does not exist)" if not root.exists() else "a file, not a folder"
    items = sorted(root.iterdir())
    if not items:
        return "an empty folder"
    names = [p.name + ("/" if p.is_dir() else "") for p in items[:limit]]
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(names) + more


def read_categories(path: Path, warnings: list[str] | None = None) -> dict[str, str]:
    """``{concept: category}`` from a CSV with a header (subject/concept/name, class/category);
    a concept given twice keeps its last row (said in ``warnings``)."""
    if path.is_dir():
        raise InvalidInputError(f"categories file '{path}' is a folder; give the CSV file (concept,class)")
    if not path.is_file():
        raise InvalidInputError(f"categories file '{path}' does not exist")
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InvalidInputError(f"categories file '{path}' cannot be read as UTF-8 CSV text ({exc}); save it as "
                                "a CSV of concept,class rows") from exc
    rows = [r for r in rows if r and any(c.strip() for c in r)]
    if not rows:
        return {}
    header = [c.strip().lower() for c in rows[0]]
    names = {"subject", "concept", "name"}
    classes = {"class", "category"}
    if names & set(header) and classes & set(header):
        ni = next(i for i, c in enumerate(header) if c in names)
        ci = next(i for i, c in enumerate(header) if c in classes)
        rows = rows[1:]
    else:
        ni, ci = 0, 1
    out: dict[str, str] = {}
    for row in rows:
        if len(row) <= max(ni, ci):
            raise InvalidInputError(f"categories file '{path}': every row needs a concept and a class, got {row}")
        name = nfc(row[ni].strip())
        if name in out and out[name] != row[ci].strip() and warnings is not None:
            warnings.append(f"categories file '{path.name}' gives '{name}' twice ({out[name]!r}, then "
                            f"{row[ci].strip()!r}); the last is used")
        out[name] = row[ci].strip()
    return out


def nfc(name: str) -> str:
    """``name`` in Unicode NFC: a folder copied from macOS spells "ñandú" decomposed (NFD),
    a CSV or a command line composed; names are compared in this form."""
    return unicodedata.normalize("NFC", name)


def category_of(name: str, table: dict[str, str]) -> str:
    """``name``'s category: its row of ``table`` (`read_categories`), else `category_from_name`."""
    return table.get(nfc(name)) or category_from_name(name)
