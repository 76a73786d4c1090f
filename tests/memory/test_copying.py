"""`copy_concepts` (``pekit copy``): a memory copied into another store, file or server,
keeps every concept whole; a refusal writes nothing."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from pekit.errors import (
    BackboneMismatchError,
    ConceptNotFoundError,
    DuplicateConceptError,
    InvalidInputError,
    MemoryFileError,
)
from pekit.memory import SqliteMemory, open_memory
from pekit.memory.copying import copy_concepts
from pekit.types import Concept

from .conftest import StoreHandle
from .test_conformance import concept, full, same_vectors

FIELDS = ("name", "namespace", "category", "context", "threshold", "backbone", "created", "meta")


def same_concept(a: Concept, b: Concept, fields: tuple[str, ...] = FIELDS) -> bool:
    return (all(getattr(a, f) == getattr(b, f) for f in fields)
            and all(same_vectors(getattr(a, f), getattr(b, f)) for f in ("views", "parts", "negatives")))


def stocked(uri: str) -> list[Concept]:
    """Three concepts in two namespaces, every field set on two of them."""
    with open_memory(uri) as memory:
        return [memory.add(full("Bo")), memory.add(concept("Mug", 5)), memory.add(full("Ana", 9, namespace="alice"))]


@pytest.mark.parametrize("direction", ["into", "out of"])
def test_a_copy_keeps_every_field_of_every_namespace(store: StoreHandle, tmp_path: Path, direction: str) -> None:
    file = str(tmp_path / "file.db")
    source, destination = (file, store.uri) if direction == "into" else (store.uri, file)
    originals = stocked(source)
    with open_memory(source) as a, open_memory(destination) as b:
        assert copy_concepts(a, b) == {"alice": ["Ana"], "default": ["Bo", "Mug"]}
        copies = [b.get(c.name, namespace=c.namespace) for c in originals]
    for original, copied in zip(originals, copies, strict=True):
        assert same_concept(original, copied), original.name
    with open_memory(source) as a:  # the source is only read
        assert all(same_concept(c, a.get(c.name, namespace=c.namespace)) for c in originals)


def test_taken_names_are_all_named_and_nothing_is_written_unless_replace(store: StoreHandle, tmp_path: Path) -> None:
    file = str(tmp_path / "file.db")
    originals = stocked(file)
    with open_memory(store.uri) as b:
        mine = b.add(concept("bo", 3))  # the same name, ignoring case, and other vectors
        b.add(concept("Ana", 4, namespace="alice"))
    with open_memory(file) as a, open_memory(store.uri) as b:
        with pytest.raises(DuplicateConceptError) as info:
            copy_concepts(a, b)
        assert "'Bo'" in str(info.value) and "'Ana'" in str(info.value) and "nothing was copied" in str(info.value)
        assert b.count() == 2 and same_vectors(b.get("Bo").views, mine.views)  # Mug was not copied either
        assert copy_concepts(a, b, replace=True) == {"alice": ["Ana"], "default": ["Bo", "Mug"]}
        replaced = b.get("bo")  # overwritten where it was: its id and creation time stay
        assert b.count() == 3 and (replaced.id, replaced.created) == (mine.id, mine.created)
        assert same_concept(originals[0], replaced, tuple(f for f in FIELDS if f != "created"))


def test_one_namespace_only(tmp_path: Path) -> None:
    stocked(str(tmp_path / "a.db"))
    with open_memory(str(tmp_path / "a.db")) as a, open_memory(str(tmp_path / "b.db")) as b:
        assert copy_concepts(a, b, namespace="alice") == {"alice": ["Ana"]}
        assert b.namespaces() == ["alice"]
        assert copy_concepts(a, b, namespace="nobody") == {}


def test_another_backbone_in_the_destination_is_refused_untouched(store: StoreHandle, tmp_path: Path) -> None:
    stocked(str(tmp_path / "a.db"))
    with open_memory(store.uri) as b:
        b.add(concept("Cup", 2, backbone="clip-b16"))
    with open_memory(str(tmp_path / "a.db")) as a, open_memory(store.uri) as b:
        with pytest.raises(BackboneMismatchError, match="nothing was copied"):
            copy_concepts(a, b)
        assert [s.name for s in b.summaries()] == ["Cup"] and b.namespaces() == ["default"]


def test_a_memory_is_not_copied_into_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stocked(str(tmp_path / "a.db"))
    monkeypatch.chdir(tmp_path)
    with open_memory("a.db") as a, open_memory(f"file:{tmp_path}/sub/../a.db") as same:
        with pytest.raises(InvalidInputError, match="is the memory being copied"):
            copy_concepts(a, same)
        assert a.count() == 3


def test_an_empty_source_creates_no_file(tmp_path: Path) -> None:
    with SqliteMemory(":memory:") as a, open_memory(str(tmp_path / "b.db")) as b:
        assert copy_concepts(a, b) == {}
    assert not (tmp_path / "b.db").exists()


def test_named_concepts_shared_with_another_user_of_one_store(store: StoreHandle) -> None:
    """A concept copied into another namespace of the same store: the other user gets it
    whole, the owner keeps it, and a copy onto itself is refused."""
    originals = stocked(store.uri)
    with store.open() as a, store.open() as b:
        assert copy_concepts(a, b, names=["bo", "BO"], into_namespace="ana") == {"ana": ["Bo"]}  # once
        shared = b.get("Bo", namespace="ana")
        assert same_concept(dataclasses.replace(originals[0], namespace="ana"), shared)
        assert shared.id != originals[0].id and a.get("Bo").id == originals[0].id
        with pytest.raises(InvalidInputError, match="another namespace"):
            copy_concepts(a, b, names=["Ana"], namespace="alice", into_namespace="alice")
        with pytest.raises(ConceptNotFoundError, match=r"'Rex'.*Bo"):
            copy_concepts(a, b, names=["Bo", "Rex"], into_namespace="ana2")
        assert b.namespaces() == ["alice", "ana", "default"]  # nothing of the refused copies


def test_two_concepts_of_one_name_into_one_namespace_are_refused(tmp_path: Path) -> None:
    stocked(str(tmp_path / "a.db"))
    with open_memory(str(tmp_path / "a.db")) as a:
        a.add(concept("bo", 7, namespace="alice"))
        with open_memory(str(tmp_path / "b.db")) as b, pytest.raises(InvalidInputError, match="'alice' and 'default'"):
            copy_concepts(a, b, into_namespace="shared")
    assert not (tmp_path / "b.db").exists()


def test_one_postgresql_schema_under_two_uris_is_the_same_memory(postgres_uri: str) -> None:
    """The default schema written out (or not) names the same memory: a --replace copy onto
    itself would rewrite every concept and drop its stored photos, so it is refused."""
    sep = "&" if "?" in postgres_uri else "?"
    schema = f"same_{os.getpid()}"
    spelt = f"{postgres_uri}{sep}schema={schema}"
    with open_memory(spelt, store_images=True) as a:
        a.add(concept("Bo", 1), images=[b"a photo"])
    with open_memory(spelt) as a, open_memory(spelt.replace(f"schema={schema}", f"application_name=x&schema={schema}")
                                              ) as b:
        with pytest.raises(InvalidInputError, match="is the memory being copied"):
            copy_concepts(a, b, replace=True)
        assert len(a.images("Bo")) == 1
    with open_memory(spelt) as a, open_memory(f"{postgres_uri}{sep}schema=other_{os.getpid()}") as b:
        assert copy_concepts(a, b) == {"default": ["Bo"]}  # another schema of the same server: another memory


def test_a_damaged_concept_in_the_destination_says_to_repair_it(tmp_path: Path) -> None:
    import sqlite3

    stocked(str(tmp_path / "a.db"))
    with open_memory(str(tmp_path / "b.db")) as b:
        b.add(concept("Rex", 3))
    conn = sqlite3.connect(tmp_path / "b.db")
    conn.execute("UPDATE concepts SET meta = '[1, 2]' WHERE name = 'Rex'")
    conn.commit()
    conn.close()
    damaged = r"the memory to copy into, holds a damaged concept; run `pekit repair --memory .*b\.db` first \(.*'Rex'"
    with open_memory(str(tmp_path / "a.db")) as a, open_memory(str(tmp_path / "b.db")) as b, \
            pytest.raises(MemoryFileError, match=damaged):
        copy_concepts(a, b)
