"""Copy concepts from one memory to another (`pekit copy`): a backup of a memory file, a move
from a file to a PostgreSQL server (and back), or a concept shared with another user's
namespace.

A concept is only its embeddings and what the user said about it: the photos it was made
from are not kept, so a lost memory cannot be rebuilt without them. `copy_concepts` writes
every concept of the chosen namespaces (views, parts, corrections, people's face vectors,
name, category, context, threshold, meta) into the destination in *one* transaction: all of
them are there afterwards, or (on any error: a full disk, a name taken meanwhile) none.
Photos a store kept with ``store_images=True`` are not copied.

Example:
    >>> import numpy as np
    >>> from pekit.memory import SqliteMemory
    >>> from pekit.types import Concept
    >>> with SqliteMemory(":memory:") as here, SqliteMemory(":memory:") as there:
    ...     _ = here.add(Concept("Bo", np.eye(2, 8), category="dog", backbone="toy"))
    ...     copied = copy_concepts(here, there)
    ...     copied, there.get("Bo").category
    ({'default': ['Bo']}, 'dog')
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pekit.errors import BackboneMismatchError, DuplicateConceptError, InvalidInputError, MemoryFileError
from pekit.memory._codec import clean_namespace, name_key
from pekit.memory._fingerprints import same_backbone
from pekit.memory.base import MemoryStore
from pekit.types import Concept

__all__ = ["copy_concepts", "same_store"]

SHOWN_NAMES = 10  # taken names a refusal lists before "and N more"


def _file(store: Any) -> Path | None:
    """The SQLite file behind ``store`` (None for a server or an in-process memory)."""
    path = getattr(getattr(store, "_db", None), "path", None)
    return Path(path) if path is not None else None


def _server(store: Any) -> tuple | None:
    """What tells a PostgreSQL memory from another whatever its URI says (the host by name or
    address, a socket, the default schema left out): its schema, its database, and the server's
    start time and port; None for other stores."""
    db: Any = getattr(store, "_db", None)
    schema = getattr(store, "schema", None)
    if schema is None or not hasattr(db, "transaction"):
        return None
    with db.transaction("identify the server", write=False) as cur:
        row = cur.execute("SELECT current_database(), pg_postmaster_start_time()::text, "
                          "inet_server_port()").fetchone()
    return (schema, *row)


def same_store(a: MemoryStore, b: MemoryStore) -> bool:
    """True when ``a`` and ``b`` are the same memory (one file under two spellings, or one
    PostgreSQL schema under two URIs): copying a memory into itself is refused."""
    if a is b:
        return True
    fa, fb = _file(a), _file(b)
    if fa is not None and fb is not None:
        if fa.exists() and fb.exists():
            return fa.samefile(fb)
        return fa.resolve() == fb.resolve()
    server = _server(a)
    return server is not None and server == _server(b)


def _listed(names: list[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:SHOWN_NAMES])
    return shown + (f" and {len(names) - SHOWN_NAMES} more" if len(names) > SHOWN_NAMES else "")


def copy_concepts(source: MemoryStore, destination: MemoryStore, *, namespace: str | None = None,
                  names: Sequence[str] | None = None, into_namespace: str | None = None,
                  replace: bool = False) -> dict[str, list[str]]:
    """Copy the concepts of ``namespace`` (None: every namespace) from ``source`` into
    ``destination``, in one transaction; returns ``{namespace: [names copied]}`` (empty when
    there is nothing to copy).

    ``names``: only these concepts (found ignoring case) of ``namespace``, or of "default"
    when it is None. ``into_namespace``: every copy goes into that namespace (a concept shared
    with another user of one server: ``destination`` may then be ``source``).

    Everything is checked before anything is written, so a refusal leaves ``destination`` as
    it was.

    Raises:
        InvalidInputError: ``destination`` is ``source`` and the copies would land where they
            are; two copies would get one name in ``into_namespace``.
        ConceptNotFoundError: one of ``names`` is not in ``source`` (the message lists theirs).
        BackboneMismatchError: ``destination`` holds vectors of another backbone (they could not
            be compared with the copies).
        DuplicateConceptError: a name is taken in ``destination`` (ignoring case) and
            ``replace`` is False; the message lists every such name.
    """
    into = clean_namespace(into_namespace) if into_namespace is not None else None
    if names:
        ns = clean_namespace(namespace) if namespace is not None else "default"
        concepts = [source.get(n, namespace=ns) for n in dict.fromkeys(names)]
    else:
        namespaces = [clean_namespace(namespace)] if namespace is not None else source.namespaces()
        concepts = [c for ns in namespaces for c in source.concepts(namespace=ns)]
    if same_store(source, destination) and (into is None or any(c.namespace == into for c in concepts)):
        raise InvalidInputError(f"{source.uri} is the memory being copied; give another file or URI to copy it to"
                                + (", or another namespace to copy into" if into is not None else ""))
    concepts = list({c.id: c for c in concepts}.values())  # a name given twice in two spellings
    fresh = [dataclasses.replace(c, id=-1, namespace=into or c.namespace) for c in concepts]
    if into is not None:
        seen: dict[str, Concept] = {}
        for c in concepts:
            twin = seen.setdefault(name_key(c.name), c)
            if twin is not c:
                raise InvalidInputError(
                    f"two concepts would be called {c.name!r} in namespace {into!r} (from namespaces "
                    f"{twin.namespace!r} and {c.namespace!r}); copy one namespace at a time (--namespace)")
    if not fresh:
        return {}
    theirs, ours = destination.backbone, source.backbone
    if theirs is not None and ours is not None and destination.count() and not same_backbone(theirs, ours):
        raise BackboneMismatchError(
            f"{destination.uri} holds vectors of backbone {theirs!r} and {source.uri} of {ours!r}: vectors of two "
            "backbones cannot be compared, so nothing was copied. Copy into a new file, or introduce the concepts "
            "again from their photos with the destination's preset"
        )
    if not replace:
        taken = []
        for ns in sorted({c.namespace for c in fresh}):
            try:
                there = {name_key(s.name) for s in destination.summaries(namespace=ns)}
            except MemoryFileError as exc:  # its advice (--skip-damaged) is for reading, not for a copy into it
                raise MemoryFileError(f"{destination.uri}, the memory to copy into, holds a damaged concept; run "
                                      f"`pekit repair --memory {destination.uri}` first ({str(exc).split(';')[0]})"
                                      ) from exc
            taken += [(ns, c.name) for c in fresh if c.namespace == ns and name_key(c.name) in there]
        if taken:
            spaces = sorted({ns for ns, _ in taken})
            where = f"namespace {spaces[0]!r}" if len(spaces) == 1 else f"namespaces {', '.join(map(repr, spaces))}"
            raise DuplicateConceptError(
                f"{destination.uri} already has {len(taken)} of these names ({where}): "
                f"{_listed([n for _, n in taken])}; nothing was copied: pass replace=True (CLI: --replace) to "
                "overwrite them with the copies, or forget them there first"
            )
    add_many = getattr(destination, "add_many", None)
    stored = add_many(fresh, replace=replace) if add_many is not None else [
        destination.add(c, replace=replace) for c in fresh]
    out: dict[str, list[str]] = {}
    for c in stored:
        out.setdefault(c.namespace, []).append(c.name)
    return out
