"""Pure helpers of the memory stores: validation, float32 blobs, JSON meta, name hints.

Nothing here touches a database; both stores (`pekit.memory.sqlite`, `pekit.memory.pgvector`,
through `pekit.memory._store` too) call these before and after their SQL.

Example:
    >>> import numpy as np
    >>> v = unit_rows(np.array([[3.0, 4.0]]), what="views")
    >>> v.tolist(), from_blob(to_blob(v), dim=2).tolist()
    ([[0.6000000238418579, 0.800000011920929]], [[0.6000000238418579, 0.800000011920929]])
"""

from __future__ import annotations

import difflib
import json
import math
import re
import unicodedata
from typing import Any

import numpy as np

from pekit.errors import InvalidInputError
from pekit.types import finite_number, whole_number

__all__ = [
    "MAX_CATEGORY_LENGTH", "MAX_CONTEXT_LENGTH", "META_RECORDS", "check_new_name", "check_storable",
    "check_threshold", "clean_name", "clean_namespace", "clean_prose", "clean_text", "concept_ids", "dump_meta",
    "from_blob", "lookalike_key", "meta_records_problem", "name_key", "not_found_message",
    "printable", "to_blob", "unit_rows",
]

_BLOB_DTYPE = np.dtype("<f4")  # little-endian float32: files move between machines
_UNIT_ATOL = 1e-6
_MAX_LISTED = 20


def clean_text(value: Any, what: str, example: str) -> str:
    """``value`` stripped; `InvalidInputError` unless it is a non-empty string.

    >>> clean_text(" Bo ", "concept name", "Bo")
    'Bo'
    """
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(f"{what} must be a non-empty string, e.g. {example!r}, but got {value!r}")
    return value.strip()


# bidirectional overrides and isolates reorder what a terminal shows ("Trojan Source")
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


#: The longest concept name (the HTTP service's limit too).
MAX_NAME_LENGTH = 200


def clean_name(value: Any, what: str = "concept name") -> str:
    """A concept name as stored: stripped, Unicode NFC; control characters refused.

    ``"Bo\u0308"`` (o + combining diaeresis) and ``"B\u00f6"`` are one name. Terminal escape
    codes, newlines, tabs and bidirectional overrides raise `InvalidInputError`: a name is
    printed by ``pekit list`` and drawn on photos. Emoji (with their joiners) are fine.

    >>> clean_name(" Bo\u0308 ") == "B\u00f6"
    True
    """
    return _refuse_controls(unicodedata.normalize("NFC", clean_text(value, what, "Bo")), what, "Bo")


def _refuse_controls(text: str, what: str, example: str, *, lines: bool = False) -> str:
    """``text`` unless it holds a control character (terminal escape codes; newlines, tabs and
    line separators too unless ``lines``) or a bidirectional override, which reorders what a
    terminal shows: `InvalidInputError` naming the first one."""
    for i, ch in enumerate(text):
        kind = unicodedata.category(ch)
        if ch in _BIDI_CONTROLS or kind == "Cs" or (kind == "Cc" and not (lines and ch in "\n\t\r")) or \
                (kind in ("Zl", "Zp") and not lines):
            shown = printable(text if len(text) <= 80 else text[:77] + "...")
            refused = "terminal escape codes and" if lines else "terminal escape codes, newlines, tabs and"
            raise InvalidInputError(f"{what} '{shown}' contains the control character U+{ord(ch):04X} at position {i} "
                                    f"({refused} bidirectional overrides are not allowed); use plain text"
                                    + (f", e.g. {example!r}" if example else ""))
    return text


def _invisible(ch: str) -> bool:
    """A format character (Unicode Cf: zero-width space, BOM, soft hyphen...) other than those
    emoji are built of (the zero-width joiner, the tag characters of subdivision flags)."""
    return unicodedata.category(ch) == "Cf" and ch != "\u200d" and not "\U000e0020" <= ch <= "\U000e007f"


def clean_namespace(value: Any) -> str:
    """A namespace (the user whose concepts these are): a non-empty string, stripped, without
    control characters or bidirectional overrides (it is printed and logged). Not normalised:
    a namespace is an id, matched as given.

    >>> clean_namespace(" alice ")
    'alice'
    """
    return _refuse_controls(clean_text(value, "namespace", "default"), "namespace", "alice")


def check_new_name(name: str, what: str = "concept name") -> str:
    r"""``name`` (already `clean_name`'d) if it may be given to a concept: at most
    `MAX_NAME_LENGTH` characters, and no invisible format characters (a zero-width space
    would make "Bo\u200b" a second concept that looks like "Bo").

    Checked when a name is written (a new concept, a rename), not when one is looked up, so
    a name stored by an earlier version can still be read, changed and forgotten.

    >>> check_new_name("Bo\u200b")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pekit.errors.InvalidInputError: concept name 'Bo\u200b' contains the invisible character U+200B at position 2; ...
    """
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidInputError(f"{what} '{printable(name[:40])}...' is {len(name)} characters long; a name is "
                                f"drawn on photos and said in prompts: keep it to {MAX_NAME_LENGTH} characters at "
                                "most and put the rest in --context")
    for i, ch in enumerate(name):
        if _invisible(ch):
            raise InvalidInputError(f"{what} '{printable(name)}' contains the invisible character U+{ord(ch):04X} at "
                                    f"position {i}; use plain text, e.g. 'Bo'")
    return name


def lookalike_key(name: str) -> str:
    r"""``name`` as it looks: NFKC and case-folded, so full-width ``'Ｂｏ'`` and ``'bo'`` are alike,
    with each run of spaces one space (``'Mr  Bo'`` is drawn as ``'Mr Bo'``).

    Stored names stay unique by `name_key`; a new name whose look-alike key equals a stored
    one's is refused as the same name (two concepts one cannot tell apart on a photo).

    >>> lookalike_key("\uff22\uff4f") == lookalike_key("BO"), lookalike_key("Mr  Bo") == lookalike_key("mr bo")
    (True, True)
    """
    return " ".join(unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold()).split())


#: The longest category and context a concept may be given (the HTTP service's limits too):
#: a context is said in every prompt that names the concept.
MAX_CATEGORY_LENGTH, MAX_CONTEXT_LENGTH = 200, 2000


def clean_prose(value: Any, what: str, *, limit: int | None = None, lines: bool = True, example: str = "") -> str:
    r"""Free text (a category, a context, a question) as stored or sent: stripped, Unicode NFC.

    ``None`` is ``""``. Control characters (terminal escape codes) and bidirectional
    overrides are refused: the text is printed by the CLI and said to the LVLM. With
    ``lines`` newlines and tabs are fine (without, line separators are refused too).
    ``limit``: the most characters (for what is written; text stored by an earlier version
    is read as it is). ``example``: what an error suggests instead.

    >>> clean_prose(" my parents' dog\n loves the beach ", "context")
    "my parents' dog\n loves the beach"
    """
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidInputError(f"{what} must be text (a str), got {type(value).__name__}")
    text = _refuse_controls(unicodedata.normalize("NFC", value.strip()), what, example, lines=lines)
    if limit is not None and len(text) > limit:
        raise InvalidInputError(f"{what} is {len(text):,} characters long; keep it to {limit:,} (it is said in "
                                "every prompt that names the concept)")
    return text


def check_storable(value: Any, what: str) -> str:
    r"""``value`` if a store can write it as text: a str without lone surrogates (``"\udcff"``,
    what undecodable bytes of a command line or file name become), which no UTF-8 database holds.

    Checked as the stores write, so a caller that skipped `clean_prose` gets `InvalidInputError`,
    not a ``UnicodeEncodeError`` from deep inside the database driver.

    >>> check_storable("x\udcff", "context")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pekit.errors.InvalidInputError: context holds U+DCFF at position 1, ...
    """
    if not isinstance(value, str):
        raise InvalidInputError(f"{what} must be text (a str), got {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:  # what the driver would raise: only lone surrogates
        raise InvalidInputError(f"{what} holds U+{ord(value[exc.start]):04X} at position {exc.start}, half of a "
                                "UTF-16 pair (an undecodable byte of a file name or command line), which cannot be "
                                "stored; pass valid UTF-8 text") from None
    return value


def concept_ids(ids: Any) -> list[int]:
    """Stored concept ids (`Concept.id`) asked for, sorted without repeats; `InvalidInputError`
    for anything that is not a whole number a database can hold (``1.5``, ``"3"``, ``True``).

    >>> concept_ids([3, 1, np.int64(3)])
    [1, 3]
    """
    if isinstance(ids, (str, bytes)) or not hasattr(ids, "__iter__") or getattr(ids, "ndim", 1) == 0:
        raise InvalidInputError(f"concept ids must be a list of whole numbers, e.g. [1, 2], but got {ids!r}")
    out: set[int] = set()
    for value in ids:
        if not whole_number(value) or not -(2 ** 63) <= int(value) < 2 ** 63:
            raise InvalidInputError(f"concept ids must be whole numbers (Concept.id), but got {value!r}")
        out.add(int(value))
    return sorted(out)


def check_threshold(value: Any) -> float | None:
    """A concept's stored threshold: ``None`` or a finite float; `InvalidInputError` otherwise.

    Looser than `pekit.types.check_threshold` (what users pass): a memory written by an
    earlier version may hold any finite number, and changing a view must not fail on it.

    >>> check_threshold(0.5), check_threshold(None)
    (0.5, None)
    """
    if value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"threshold must be a number or None, but got {value!r}") from exc
    if not math.isfinite(out):
        raise InvalidInputError(f"threshold must be finite, but got {value!r}")
    return out


def name_key(name: str) -> str:
    """The form names are compared in for uniqueness: NFC, case-folded (``'Bo'`` ~ ``'bo'``).

    >>> name_key("Bø") == name_key("BØ")
    True
    """
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", name).casefold())


def printable(text: str) -> str:
    r"""``text`` safe for a terminal: control and other non-printable characters escaped.

    >>> printable("Bo\x1b[31m")
    'Bo\\x1b[31m'
    """
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def unit_rows(array: Any, *, what: str, dim: int | None = None) -> np.ndarray:
    """``(k, d) float32`` C-contiguous copy with every row L2-normalised.

    Rows already of unit norm (within 1e-6) are kept bit for bit, so a round trip through
    the store returns exactly what was written.

    Raises:
        InvalidInputError: not 2-D, width differs from ``dim``, non-finite or all-zero rows.

    >>> unit_rows([[0.0, 2.0]], what="views").tolist()
    [[0.0, 1.0]]
    """
    a = np.asarray(array, dtype=np.float32)
    if a.ndim != 2:
        raise InvalidInputError(f"{what} must be a 2D np.ndarray with shape (k, d), but got shape {a.shape}")
    if dim is not None and a.shape[1] != dim:
        raise InvalidInputError(
            f"{what} must have shape (_, {dim}) to match the vectors already in this memory, "
            f"but got shape {a.shape}"
        )
    if not np.all(np.isfinite(a)):
        raise InvalidInputError(f"{what} must contain only finite numbers (found NaN or inf)")
    norms = np.linalg.norm(a.astype(np.float64), axis=1, keepdims=True)
    if len(a) and np.any(norms == 0):
        rows = np.flatnonzero(norms[:, 0] == 0).tolist()
        raise InvalidInputError(f"{what} rows {rows} are all zeros and cannot be L2-normalised")
    if np.allclose(norms, 1.0, rtol=0.0, atol=_UNIT_ATOL):
        return np.ascontiguousarray(a, dtype=np.float32).copy()
    return np.ascontiguousarray(a / norms, dtype=np.float32)


def to_blob(rows: np.ndarray) -> bytes:
    """Raw little-endian float32 bytes of ``rows`` (any shape)."""
    return np.ascontiguousarray(rows, dtype=_BLOB_DTYPE).tobytes()


def from_blob(blob: bytes, *, dim: int) -> np.ndarray:
    """Inverse of `to_blob`: a writable ``(k, dim) float32`` array."""
    return np.frombuffer(blob, dtype=_BLOB_DTYPE).reshape(-1, dim).astype(np.float32)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"object of type {type(value).__name__} is not JSON serializable")


#: the keys of a concept's ``meta`` whose shape pekit relies on (`meta_records_problem`)
META_RECORDS = ("references", "boxes", "corrections", "faces", "face_model")


def meta_records_problem(meta: dict[str, Any]) -> str:
    """What is wrong with the records pekit reads back from a concept's ``meta`` ("" when
    nothing): a list of reference names, of boxes, of corrections, of face vectors of one
    length, a face model's name. The rest of ``meta`` is free; these keys keep the shapes
    pekit writes, so a hand-edited ``"references": 5`` is named when the concept is written
    or read, not met as a TypeError deep in ``add-view`` or ``--explain``. (Part groups and
    colours are checked where they are read, and a damaged one is ignored.)

    >>> meta_records_problem({"references": ["00.jpg"], "boxes": [[0, 0, 5, 5]], "faces": [[0.1, 0.2]]})
    ''
    >>> meta_records_problem({"references": 5})
    "'references' is int, not a list of photo names"
    """
    checks = {
        "references": (lambda r: isinstance(r, str), "a list of photo names"),
        "boxes": (lambda b: isinstance(b, list) and len(b) == 4 and all(finite_number(v) for v in b),
                  "a list of boxes [x0, y0, x1, y1]"),
        "corrections": (lambda c: isinstance(c, dict), "a list of correction records"),
        "faces": (lambda f: isinstance(f, list) and len(f) > 0 and all(finite_number(v) for v in f),
                  "a list of face vectors"),
    }
    for key, (valid, what) in checks.items():
        record = meta.get(key)
        if record is None:
            continue
        if not isinstance(record, list):
            return f"{key!r} is {type(record).__name__}, not {what}"
        bad = next((i for i, entry in enumerate(record) if not valid(entry)), None)
        if bad is not None:
            return f"{key!r} is not {what}: entry {bad} is {str(record[bad])[:40]!r}"
    if len({len(f) for f in meta.get("faces") or []}) > 1:
        return "'faces' hold face vectors of different lengths"
    if "face_model" in meta and not isinstance(meta["face_model"], str):
        return f"'face_model' is {type(meta['face_model']).__name__}, not a name"
    return ""


def dump_meta(meta: Any) -> str:
    """JSON text of a concept's ``meta`` dict (numpy scalars and arrays become numbers/lists).

    >>> dump_meta({"files": ("a.jpg",), "score": np.float32(0.5)})
    '{"files": ["a.jpg"], "score": 0.5}'
    """
    if meta is None:
        return "{}"
    if not isinstance(meta, dict):
        raise InvalidInputError(f"concept meta must be a dict, but got {type(meta).__name__}")
    try:
        text = json.dumps(meta, default=_json_default, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"concept meta must be JSON-serialisable (str, numbers, lists, dicts): {exc}"
        ) from exc
    if _NUL.search(text):  # PostgreSQL's JSON operators cannot read it back (a whole listing would fail)
        raise InvalidInputError("concept meta holds a NUL character (U+0000) in a key or value; remove it")
    return text


#: an escaped U+0000 in JSON text: ``\u0000`` after an even number of backslashes
_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def not_found_message(name: str, namespace: str, known: list[str]) -> str:
    """Message for an unknown name: the closest known name (if any) and the known names.

    >>> print(not_found_message("Boo", "default", ["Bo", "Rex"]))
    no concept named 'Boo' in namespace 'default' (did you mean 'Bo'?); known concepts: Bo, Rex
    >>> print(not_found_message("Bo", "default", []))  # an empty namespace: new, or all forgotten
    no concept named 'Bo' in namespace 'default'; it holds no concepts (introduce one first)
    """
    msg = f"no concept named {name!r} in namespace {namespace!r}"
    if not known:
        return msg + "; it holds no concepts (introduce one first)"
    folded = {k.casefold(): k for k in known}
    close = difflib.get_close_matches(name.casefold(), list(folded), n=1, cutoff=0.6)
    if close:
        msg += f" (did you mean {folded[close[0]]!r}?)"  # names differing only in case are one name
    listed = ", ".join(printable(k) for k in known[:_MAX_LISTED])  # stored names reach a terminal
    if len(known) > _MAX_LISTED:
        listed += f", ... ({len(known)} in all)"
    return msg + f"; known concepts: {listed}"
