"""Stored concept rows -> `Concept`, saying exactly what is damaged when a row cannot be read.

`pekit.memory.sqlite.SqliteMemory` turns a `DamagedRowError` into a `MemoryFileError` that
names the concept (or skips it with ``skip_damaged``); `find_damaged` is what ``repair`` removes.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

import numpy as np

from pekit.errors import InvalidInputError, MemoryFileError
from pekit.memory._codec import META_RECORDS, check_threshold, from_blob, meta_records_problem
from pekit.types import Concept

__all__ = ["COLUMNS", "RECORDS", "DamagedRowError", "decode_concept", "decode_vectors", "find_damaged",
           "records_problem", "stored_settings", "threshold_problem"]

COLUMNS = "c.id, c.namespace, c.name, c.category, c.context, c.threshold, c.created, c.updated, c.meta"


class DamagedRowError(Exception):
    """A stored concept row that cannot be decoded (internal; becomes `MemoryFileError`)."""


def decode_vectors(blob: Any, dim: int, what: str) -> np.ndarray:
    if not isinstance(blob, bytes) or len(blob) == 0 or len(blob) % (4 * dim):
        size = len(blob) if isinstance(blob, bytes) else type(blob).__name__
        raise DamagedRowError(f"its {what} blob is {size} bytes, not a whole number of {dim}-dimensional float32 rows")
    rows = from_blob(blob, dim=dim)
    if not np.all(np.isfinite(rows)):
        raise DamagedRowError(f"its {what} hold NaN or infinite numbers")
    # every vector is stored at unit length: another length is a changed byte (a flipped
    # exponent bit gives a norm of 1e36, and cosine scores to match)
    norms = np.sqrt(np.einsum("ij,ij->i", rows, rows, dtype=np.float64))
    if np.any(np.abs(norms - 1.0) > 1e-3):
        raise DamagedRowError(f"its {what} are not unit vectors (a length of {float(norms.max()):.3g}): "
                              "bytes were changed outside pekit")
    return rows


def stored_settings(conn: sqlite3.Connection, where: str) -> tuple[int, str]:
    """``(dim, backbone)`` the memory records, for a memory that holds concepts. A meta table
    that lost either (edited or damaged outside pekit) is damage to the whole file, not to
    its concepts: `MemoryFileError` saying so, never a concept-by-concept verdict that
    ``repair`` would act on by deleting intact concepts."""
    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    dim, backbone = meta.get("dim"), meta.get("backbone")
    try:
        width = int(dim) if dim is not None else 0
    except (TypeError, ValueError):
        width = 0
    if width <= 0 or backbone is None:
        lost = "the vector width ('dim')" if width <= 0 else "the backbone ('backbone')"
        raise MemoryFileError(
            f"memory file {where} holds concepts but its meta table has lost {lost}: the file was edited or "
            "damaged outside pekit. Its concepts are not damaged one by one, so `pekit repair` leaves them "
            "alone; restore the file from a backup (or introduce the concepts again in a new memory)")
    # a width no stored view has ('768' changed to '769'): every concept would read as damaged, and
    # `repair` would delete them all; one view of that width is enough (the first row, as a rule).
    # When none has it but all share another whole width, the meta is wrong; views of no common
    # width are damaged views (their concepts are named, and `repair` removes them)
    fits, any_view = conn.execute("SELECT EXISTS (SELECT 1 FROM views WHERE length(vector) = ?), "
                                  "EXISTS (SELECT 1 FROM views)", (4 * width,)).fetchone()
    if any_view and not fits:
        lengths, shortest = conn.execute("SELECT COUNT(DISTINCT length(vector)), MIN(length(vector)) "
                                         "FROM views").fetchone()
        fits = not (lengths == 1 and shortest and shortest % 4 == 0)
    if any_view and not fits:
        raise MemoryFileError(
            f"memory file {where} holds concepts but its meta table says their vectors have {width} dimensions "
            "('dim'), and no stored view has: the file was edited or damaged outside pekit. Its concepts are not "
            "damaged one by one, so `pekit repair` leaves them alone; restore the file from a backup (or introduce "
            "the concepts again in a new memory)")
    return width, str(backbone)


def _decode_meta(text: Any) -> dict[str, Any]:
    try:
        meta = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise DamagedRowError(f"its meta is not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise DamagedRowError(f"its meta is JSON {type(meta).__name__}, not an object")
    problem = meta_records_problem(meta)
    if problem:
        raise DamagedRowError(f"its meta's {problem}")
    return meta


#: SQL over a concepts row whose ``meta`` is a JSON object: the records of `META_RECORDS` it
#: holds, as one JSON object (the rest of ``meta``, colours and all, is not copied out).
#: json_each gives true and false as the integers 1 and 0: they are written back as JSON
#: booleans, so a problem reads as `get` words it ("bool", not "int")
RECORDS = ("(SELECT json_group_object(key, CASE type WHEN 'true' THEN json('true') WHEN 'false' THEN json('false') "
           "ELSE value END) FROM json_each(meta) WHERE key IN ("
           + ", ".join(f"'{key}'" for key in META_RECORDS) + "))")


def records_problem(records: Any) -> str:
    """What `_decode_meta` would say of a row's records, from the `RECORDS` column ("" when
    nothing, or when the meta is not an object: that is named before).

    >>> records_problem('{"references": 5}')
    "its meta's 'references' is int, not a list of photo names"
    >>> records_problem('{}'), records_problem(None)
    ('', '')
    """
    problem = meta_records_problem(json.loads(records)) if records else ""
    return f"its meta's {problem}" if problem else ""


def threshold_problem(value: Any) -> str:
    """What is wrong with a stored threshold ("" when nothing): not None nor a finite number.

    >>> threshold_problem(0.6), threshold_problem("high")
    ('', "its threshold must be a number or None, but got 'high'")
    """
    try:
        check_threshold(value)
    except InvalidInputError as exc:
        return f"its {exc}"
    return ""


def _stored_threshold(value: Any) -> float | None:
    try:
        return check_threshold(value)
    except InvalidInputError as exc:  # the words of `threshold_problem`
        raise DamagedRowError(f"its {exc}") from None


def decode_concept(row: Sequence[Any], views: list[bytes] | None, parts: bytes | None, dim: int,
                   backbone: str, negatives: list[bytes] | None = None) -> Concept:
    """One stored concept; `DamagedRowError` saying what is wrong when a row cannot be decoded."""
    cid, ns, name, category, context, threshold, created, updated, meta_json = row
    if not views:
        raise DamagedRowError("it has no views")
    if not all(isinstance(v, bytes) and len(v) == 4 * dim for v in [*views, *(negatives or [])]):
        raise DamagedRowError(f"a view blob is not {4 * dim} bytes (one {dim}-dimensional float32 vector)")
    try:
        return Concept(
            id=cid, namespace=ns, name=name, category=category, context=context,
            threshold=_stored_threshold(threshold),
            created=created, updated=updated, meta=_decode_meta(meta_json), backbone=backbone,
            views=decode_vectors(b"".join(views), dim, "views"),
            parts=None if parts is None else decode_vectors(parts, dim, "parts"),
            negatives=decode_vectors(b"".join(negatives), dim, "negatives") if negatives else None,
        )
    except (InvalidInputError, TypeError) as exc:
        raise DamagedRowError(str(exc)) from None


def find_damaged(conn: sqlite3.Connection, where: str = "") -> list[dict[str, Any]]:
    """Every concept (all namespaces) that cannot be decoded: ``[{"id", "namespace", "name", "problem"}]``.
    ``where`` names the memory in a `MemoryFileError` when the whole file is damaged."""
    rows = conn.execute(f"SELECT {COLUMNS} FROM concepts c ORDER BY c.id").fetchall()
    if not rows:
        return []
    dim, backbone = stored_settings(conn, where)
    views: dict[int, list[bytes]] = {}
    negatives: dict[int, list[bytes]] = {}
    for cid, idx, blob in conn.execute("SELECT concept_id, idx, vector FROM views ORDER BY concept_id, idx DESC"):
        (views if idx >= 0 else negatives).setdefault(cid, []).append(blob)
    parts = dict(conn.execute("SELECT concept_id, vectors FROM parts").fetchall())
    found = []
    for row in rows:
        try:
            decode_concept(row, views[row[0]][::-1] if row[0] in views else None, parts.get(row[0]), dim,
                           backbone, negatives.get(row[0]))
        except DamagedRowError as exc:
            found.append({"id": int(row[0]), "namespace": str(row[1]), "name": str(row[2]), "problem": str(exc)})
    return found
