"""The `MemoryStore` protocol, one suite for every store (SQLite file, PostgreSQL + pgvector).

Each test runs once per store (the ``store`` fixture in conftest.py); the PostgreSQL runs use
a real server started by the test session, with a fresh schema per test.
"""

from __future__ import annotations

import dataclasses
import signal
import subprocess
import time

import numpy as np
import pytest

from pekit.errors import (
    BackboneMismatchError,
    ConceptNotFoundError,
    DuplicateConceptError,
    InvalidInputError,
    MemoryStoreError,
    PekitError,
)
from pekit.memory import MemoryStore
from pekit.memory._search import exact_search
from pekit.types import Concept

from .conftest import PYTHON, StoreHandle, subprocess_env

D = 16
BB = "dinov2-s14@448/b7"  # a realistic backbone fingerprint


def unit(n: int, seed: int, d: int = D) -> np.ndarray:
    a = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def concept(name: str, seed: int = 0, *, namespace: str = "default", backbone: str = BB, **fields) -> Concept:
    return Concept(name, unit(2, seed), namespace=namespace, backbone=backbone, **fields)


def full(name: str = "Bo", seed: int = 1, namespace: str = "default") -> Concept:
    return Concept(
        name, unit(3, seed), category="dog", context="my parents' dog, loves the beach", threshold=0.61,
        namespace=namespace, backbone=BB, parts=unit(5, seed + 100), created=1234.5,
        meta={"files": ["a.jpg", "b.jpg"], "kind": "object", "score": 0.25, "nested": {"x": [1, 2]}},
        negatives=unit(2, seed + 200),
    )


def same_vectors(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a.dtype == np.float32 and a.shape == b.shape and np.array_equal(a, b)


def test_is_a_memory_store(store: StoreHandle) -> None:
    with store.open() as memory:
        assert isinstance(memory, MemoryStore)
        assert memory.count() == 0 and memory.backbone is None and memory.namespaces() == []


def test_round_trip_of_every_field(store: StoreHandle) -> None:
    original = full()
    with store.open() as memory:
        stored = memory.add(original)
        assert stored.id >= 0 and stored.created == 1234.5 and stored.updated >= time.time() - 60
    with store.open() as memory:  # a new connection reads what the first wrote
        got = memory.get("Bo")
        listed = memory.concepts()
        assert memory.backbone == "dinov2-s14@448/b7"
    assert len(listed) == 1
    for c in (got, listed[0]):
        assert (c.id, c.name, c.namespace, c.category, c.context, c.threshold, c.backbone, c.meta, c.created) == (
            stored.id, "Bo", "default", "dog", original.context, 0.61, "dinov2-s14@448/b7", original.meta, 1234.5)
        assert c.updated == pytest.approx(stored.updated)
        assert same_vectors(c.views, original.views)  # unit rows kept bit for bit
        assert same_vectors(c.parts, original.parts)
        assert same_vectors(c.negatives, original.negatives)


def test_vectors_are_normalised_and_optional_fields_stay_empty(store: StoreHandle) -> None:
    with store.open() as memory:
        memory.add(Concept("Rex", np.array([[3.0, 4.0] + [0.0] * (D - 2)]), backbone=BB))
        got = memory.get("Rex")
    assert np.allclose(got.views[0, :2], [0.6, 0.8]) and got.views.shape == (1, D)
    assert got.parts is None and got.negatives is None and got.threshold is None and got.meta == {}


def test_replace_keeps_id_and_created_update_rewrites_and_renames(store: StoreHandle) -> None:
    with store.open() as memory:
        first = memory.add(concept("Bo", 1, context="old"))
        with pytest.raises(DuplicateConceptError, match="replace=True"):
            memory.add(concept("Bo", 2))
        again = memory.add(concept("Bo", 3, context="new"), replace=True)
        assert again.id == first.id and again.created == first.created
        got = memory.get("Bo")
        assert got.context == "new" and same_vectors(got.views, unit(2, 3))

        changed = memory.update(Concept("Bobby", unit(4, 5), id=first.id, backbone=BB, threshold=0.7,
                                        context="renamed", parts=unit(2, 6)))
        assert changed.id == first.id and changed.created == first.created
        with pytest.raises(ConceptNotFoundError):
            memory.get("Bo")
        got = memory.get("Bobby")
        assert got.threshold == 0.7 and got.views.shape == (4, D) and same_vectors(got.parts, unit(2, 6))

        memory.add(concept("Rex", 7))
        with pytest.raises(DuplicateConceptError, match="taken"):
            memory.update(Concept("rex", unit(1, 8), id=first.id, backbone=BB))
        with pytest.raises(ConceptNotFoundError, match="to update"):
            memory.update(Concept("Nobody", unit(1, 9), backbone=BB))
        with pytest.raises(ConceptNotFoundError, match="to update"):
            memory.update(Concept("Ghost", unit(1, 9), id=10**9, backbone=BB))
        assert memory.count() == 2


@pytest.mark.parametrize(("first", "second"), [("Bo", "bo"), ("Bo", "BO "), ("BØ", "bø"), ("B\u00f6", "Bo\u0308")])
def test_names_are_unique_ignoring_case_and_normalisation(store: StoreHandle, first: str, second: str) -> None:
    with store.open() as memory:
        stored = memory.add(concept(first, 1))
        with pytest.raises(DuplicateConceptError):
            memory.add(concept(second, 2))
        replaced = memory.add(concept(second, 3), replace=True)  # the same concept, renamed
        assert replaced.id == stored.id and memory.count() == 1
        assert memory.concepts()[0].name == second.strip().replace("o\u0308", "\u00f6")
        memory.add(concept(second, 4, namespace="other"))  # other owners may use the name
        assert memory.count() == 2


def test_namespaces_are_isolated_even_by_guessed_ids(store: StoreHandle) -> None:
    with store.open() as memory:
        alice = memory.add(full("Bo", 1, namespace="alice"))
        bob = memory.add(full("Rex", 2, namespace="bob"))
        gen_bob = memory.generation("bob")

        assert [c.name for c in memory.concepts(namespace="bob")] == ["Rex"]
        assert [s.name for s in memory.summaries(namespace="bob")] == ["Rex"]
        assert [c.name for c in memory.matchable(namespace="bob")] == ["Rex"]
        assert memory.count("alice") == 1 and memory.count() == 2 and memory.namespaces() == ["alice", "bob"]
        with pytest.raises(ConceptNotFoundError):
            memory.get("Bo", namespace="bob")
        with pytest.raises(ConceptNotFoundError):
            memory.remove("Bo", namespace="bob")
        # bob's caller knows alice's id: he can neither read her parts ...
        assert memory.parts([alice.id, bob.id], namespace="bob").keys() == {bob.id}
        # ... nor change or take over her concept by id
        with pytest.raises((ConceptNotFoundError, DuplicateConceptError)):
            memory.update(Concept("Bo", unit(1, 9), id=alice.id, namespace="bob", backbone=alice.backbone))
        with pytest.raises((ConceptNotFoundError, DuplicateConceptError)):
            memory.update(Concept("Mine", unit(1, 9), id=alice.id, namespace="bob", backbone=alice.backbone))
        # ... nor find her views by search
        ids, _ = memory.search(alice.views, namespace="bob", k=3)
        assert set(ids.ravel().tolist()) <= {bob.id, -1}

        got = memory.get("Bo", namespace="alice")
        assert got.id == alice.id and same_vectors(got.views, alice.views) and got.context == alice.context
        assert memory.generation("bob") == gen_bob  # nothing of bob's changed
        assert [c.name for c in memory.concepts(namespace="bob")] == ["Rex"]
        memory.remove("Bo", namespace="alice")
        assert memory.count("bob") == 1 and memory.namespaces() == ["bob"]


def test_backbone_mismatch_and_a_fresh_start_when_empty(store: StoreHandle) -> None:
    with store.open() as memory:
        memory.add(concept("Bo", 1, backbone="dinov2"))
        with pytest.raises(BackboneMismatchError, match="different backbones"):
            memory.add(concept("Rex", 2, backbone="clip"))
        with pytest.raises(BackboneMismatchError):
            memory.add(concept("Rex", 2, backbone="clip", namespace="other"))  # one backbone per store
        with pytest.raises(BackboneMismatchError):
            memory.update(concept("Bo", 3, backbone="clip"))
        assert memory.backbone == "dinov2" and memory.count() == 1
        memory.remove("Bo")
        memory.add(Concept("Rex", unit(1, 4, d=8), backbone="clip"))  # empty again: any backbone
        assert memory.backbone == "clip" and memory.get("Rex").views.shape == (1, 8)


def test_a_hub_model_named_by_its_commit_is_recorded_by_its_weights_at_the_next_write(store: StoreHandle) -> None:
    """A memory made when a hub model's fingerprint named its snapshot's commit takes the same
    model's vectors (told by their weights now), records that fingerprint at the first write,
    and from then on refuses other weights of it, as a memory made today does."""
    old = "hf:facebook/dinov2-small@0123456789ab/layer7/res448/ln"
    now, other = (old.replace("@0123456789ab", f"@w{d * 12}") for d in "ab")
    with store.open() as memory:
        memory.add(concept("Bo", 1, backbone=old))
        memory.add(concept("Rex", 2, backbone=now))
        assert memory.backbone == now and memory.count() == 2
        with pytest.raises(BackboneMismatchError):
            memory.add(concept("Max", 3, backbone=other))
        with pytest.raises(BackboneMismatchError):
            memory.add(concept("Max", 3, backbone=old.replace("small", "large")))
        assert memory.backbone == now and memory.count() == 2


def test_dimension_mismatch_is_refused(store: StoreHandle) -> None:
    with store.open() as memory:
        memory.add(concept("Bo", 1))
        with pytest.raises(InvalidInputError, match="dimensions"):
            memory.add(Concept("Rex", unit(1, 2, d=D + 1), backbone=BB))
        assert memory.count() == 1


def test_generation_changes_on_every_write_of_its_namespace_only(store: StoreHandle) -> None:
    with store.open() as memory, store.open() as other:
        seen = [memory.generation("a")]

        def changed() -> bool:
            now = other.generation("a")  # seen through another connection
            fresh = now not in seen
            seen.append(now)
            return fresh

        memory.add(concept("Bo", 1, namespace="a"))
        assert changed()
        memory.add(concept("Bo", 2, namespace="a"), replace=True)
        assert changed()
        memory.update(concept("Bo", 3, namespace="a", context="x"))
        assert changed()
        before = other.generation("a")
        memory.add(concept("Rex", 4, namespace="b"))
        memory.remove("Rex", namespace="b")
        with pytest.raises(DuplicateConceptError):
            memory.add(concept("bo", 5, namespace="a"))
        memory.concepts(namespace="a")
        memory.search(unit(1, 6), namespace="a")
        assert other.generation("a") == before  # other namespaces, failed writes and reads: no change
        memory.remove("Bo", namespace="a")
        assert changed()
        memory.add(concept("Bo", 7, namespace="a"))  # a re-added concept is a new generation too
        assert changed()


def test_matchable_leaves_out_parts_and_parts_fetches_them_by_id(store: StoreHandle) -> None:
    with store.open() as memory:
        bo = memory.add(full("Bo", 1))
        rex = memory.add(concept("Rex", 2))  # no parts
        matchable = memory.matchable()
        assert [c.id for c in matchable] == [bo.id, rex.id]
        assert all(c.parts is None for c in matchable)
        assert same_vectors(matchable[0].views, bo.views) and same_vectors(matchable[0].negatives, bo.negatives)
        assert matchable[0].meta == bo.meta and matchable[0].threshold == bo.threshold
        parts = memory.parts([bo.id, rex.id, 10**9])
        assert parts.keys() == {bo.id} and same_vectors(parts[bo.id], bo.parts)
        assert memory.parts([]) == {}
        assert memory.parts(np.array([bo.id, bo.id])).keys() == {bo.id}  # numpy ids, repeated
        for bad in ([1.5], ["1"], [True], [2**70], 7, "12", np.array(bo.id)):  # a clear error, not a TypeError
            with pytest.raises(InvalidInputError, match="concept ids must be"):
                memory.parts(bad)  # type: ignore[arg-type]


def test_summaries_count_views_not_negatives(store: StoreHandle) -> None:
    with store.open() as memory:
        bo = memory.add(full("Bo", 1))
        rex = memory.add(concept("Rex", 2, category="cat"))
        got = memory.summaries()
    assert [(s.id, s.name, s.category, s.views, s.threshold) for s in got] == [
        (bo.id, "Bo", "dog", 3, 0.61), (rex.id, "Rex", "cat", 2, None)]
    assert got[0].context == bo.context and got[0].created == 1234.5 and got[0].namespace == "default"


def test_summaries_say_which_concepts_are_people(store: StoreHandle) -> None:
    with store.open() as memory:
        memory.add(concept("Bo", 1))
        memory.add(concept("Kit", 2, category="friend", meta={"kind": "person"}))
        got = memory.summaries()
    assert [(s.name, s.kind) for s in got] == [("Bo", "object"), ("Kit", "person")]


def test_summaries_count_corrections(store: StoreHandle) -> None:
    fixed = {"corrections": [{"image": "a.jpg", "negatives": 2}, {"image": "b.jpg", "negatives": 1}]}
    with store.open() as memory:
        memory.add(concept("Bo", 1, meta=fixed))
        memory.add(concept("Rex", 2))
        got = memory.summaries()
    assert [(s.name, s.corrections) for s in got] == [("Bo", 2), ("Rex", 0)]


@pytest.mark.parametrize("meta", [{"corrections": {"not": "a list"}}, {"references": [{"url": "x"}]},
                                  {"boxes": [[1, 2, 3]]}, {"faces": [[0.1], [0.1, 0.2]]}, {"face_model": 3}])
def test_meta_records_pekit_reads_back_keep_their_shape(store: StoreHandle, meta: dict) -> None:
    """Read back, such a record would make the concept damaged: refused when written, in both stores."""
    with store.open() as memory:
        with pytest.raises(InvalidInputError, match="concept meta: '"):
            memory.add(concept("Odd", 3, meta=meta))
        assert memory.count() == 0
        bo = memory.add(concept("Bo", 1, meta={"kind": "object", "anything": {"else": [1, "x"]}}))  # the rest is free
        with pytest.raises(InvalidInputError, match="concept meta: '"):
            memory.update(dataclasses.replace(bo, meta=meta))
        assert memory.get("Bo").meta == bo.meta


def test_remove_deletes_everything_of_the_concept(store: StoreHandle) -> None:
    with store.open() as memory:
        bo = memory.add(full("Bo", 1))
        rex = memory.add(concept("Rex", 2))
        memory.remove("Bo")
        with pytest.raises(ConceptNotFoundError, match="known concepts: Rex"):
            memory.get("Bo")
        with pytest.raises(ConceptNotFoundError):
            memory.remove("Bo")
        assert memory.parts([bo.id]) == {}
        ids, _ = memory.search(bo.views, k=4)
        assert set(ids.ravel().tolist()) <= {rex.id, -1}
        assert [c.name for c in memory.concepts()] == ["Rex"]


def test_search_is_exact_nearest_views_of_the_namespace(store: StoreHandle) -> None:
    with store.open() as memory:
        assert memory.search(unit(2, 0), k=3)[0].tolist() == [[-1] * 3] * 2  # empty store
        stored = [memory.add(concept(f"c{i}", i)) for i in range(20)]
        memory.add(concept("elsewhere", 99, namespace="other"))
        queries = unit(5, 50) * 0.2 + np.concatenate([c.views[:1] for c in stored[:5]])
        ids, scores = memory.search(queries, k=4)
    views = np.concatenate([c.views for c in stored])
    owners = np.repeat([c.id for c in stored], 2)
    want_ids, want_scores = exact_search(views, owners, queries / np.linalg.norm(queries, axis=1, keepdims=True), k=4)
    assert ids.dtype == np.int64 and ids.shape == scores.shape == (5, 4)
    assert ids[:, 0].tolist() == [c.id for c in stored[:5]] == want_ids[:, 0].tolist()
    assert np.allclose(scores, want_scores, atol=1e-5)
    with store.open() as memory:
        one, _ = memory.search(stored[0].views[0], k=50)  # one (d,) query; padded past the 40 views
        assert one.shape == (1, 50) and (one[0, 40:] == -1).all() and (one[0, :40] >= 0).all()


def test_read_only_reads_but_refuses_writes(store: StoreHandle) -> None:
    with store.open() as memory:
        memory.add(concept("Bo", 1))
    with store.open(read_only=True) as memory:
        assert memory.read_only and memory.get("Bo").name == "Bo"
        with pytest.raises(MemoryStoreError, match="read-only"):
            memory.add(concept("Rex", 2))
        with pytest.raises(MemoryStoreError, match="read-only"):
            memory.remove("Bo")
        bo = memory.get("Bo")
        for write in (lambda: memory.update(dataclasses.replace(bo, context="changed")),
                      lambda: memory.modify("Bo", lambda c: dataclasses.replace(c, context="changed")),
                      lambda: memory.add_many([concept("Rex", 2), concept("Max", 3)])):
            with pytest.raises(MemoryStoreError, match="read-only"):
                write()
        assert memory.count() == 1 and memory.get("Bo").context == bo.context and memory.get("Bo").updated == bo.updated


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: Concept("  ", unit(1, 0)), "non-empty"),
        (lambda: concept("Bo\x1b[31m"), "control character"),
        (lambda: concept("Bo", namespace=" "), "namespace"),
        (lambda: Concept("Bo", np.full((1, D), np.nan), backbone=BB), "finite"),
        (lambda: Concept("Bo", np.zeros((1, D)), backbone=BB), "all zeros"),
        (lambda: concept("Bo", meta={"f": object()}), "JSON"),
        (lambda: concept("Bo", threshold=float("inf")), "finite"),
        (lambda: concept("Bo", threshold="high"), "number"),
        (lambda: concept("Bo", context="x\udcff"), "U\\+DCFF"),  # an undecodable byte of a command line
        (lambda: concept("Bo", category="\ud83d"), "U\\+D83D"),
        (lambda: Concept("Bo", unit(1, 0), backbone="toy\udc80"), "backbone fingerprint"),
    ],
)
def test_bad_concepts_raise_clear_errors_and_store_nothing(store: StoreHandle, make, match: str) -> None:
    with store.open() as memory:
        with pytest.raises(PekitError, match=match):
            memory.add(make())
        assert memory.count() == 0


def test_bad_search_and_lookup_arguments(store: StoreHandle) -> None:
    with store.open() as memory:
        memory.add(concept("Bo", 1))
        for k in (0, -1, 1.5, True):
            with pytest.raises(InvalidInputError, match="k"):
                memory.search(unit(1, 2), k=k)
        with pytest.raises(InvalidInputError, match="at most 1,000,000"):  # not a MemoryError from numpy
            memory.search(unit(1, 2), k=10**12)
        with pytest.raises(InvalidInputError, match="shape"):
            memory.search(unit(1, 2, d=D + 3))
        with pytest.raises(InvalidInputError, match="finite"):
            memory.search(np.full((1, D), np.inf))
        with pytest.raises(InvalidInputError, match="namespace"):
            memory.concepts(namespace="")
        with pytest.raises(InvalidInputError):
            memory.get("")


def test_closed_store_raises(store: StoreHandle) -> None:
    memory = store.open()
    memory.add(concept("Bo", 1))
    memory.close()
    memory.close()
    with pytest.raises(MemoryStoreError, match="closed"):
        memory.count()


WRITER = """
import sys
import numpy as np
from pekit.memory import open_memory
from pekit.types import Concept
uri, prefix, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
rng = np.random.default_rng(abs(hash(prefix)) % 2**32)
with open_memory(uri, timeout=30) as memory:
    for i in range(n):
        c = memory.add(Concept(f"{prefix}{i}", rng.normal(size=(3, 16)), parts=rng.normal(size=(8, 16)),
                               backbone="dinov2-s14@448/b7", namespace="shared"))
        print(c.id, flush=True)  # acknowledged: the add returned
"""


def test_two_writer_processes_at_once(store: StoreHandle) -> None:
    with store.open() as memory:
        memory.add(concept("seed", 0, namespace="shared"))  # the backbone is set; both writers append
        gen = memory.generation("shared")
    writers = [subprocess.Popen([PYTHON, "-c", WRITER, store.uri, p, "15"], env=subprocess_env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for p in ("a", "b")]
    outputs = [w.communicate(timeout=240) for w in writers]
    assert [w.returncode for w in writers] == [0, 0], [err[-2000:] for _, err in outputs]
    with store.open() as memory:
        names = {c.name for c in memory.concepts(namespace="shared")}
        assert names == {"seed"} | {f"{p}{i}" for p in "ab" for i in range(15)}
        assert memory.generation("shared") != gen
        acked = {int(line) for out, _ in outputs for line in out.split()}
        seed = memory.get("seed", namespace="shared").id
        assert acked == {c.id for c in memory.concepts(namespace="shared")} - {seed}


VIEW_ADDER = """
import sys
import time
import numpy as np
from dataclasses import replace
from pekit.memory import open_memory
uri, seed, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(seed)

def add_row(c):
    time.sleep(0.02)  # a backbone pass's worth of time between the read and the write
    return replace(c, views=np.vstack([c.views, rng.normal(size=(1, 16))]))

with open_memory(uri, timeout=60) as memory:
    for i in range(n):
        memory.modify("BO", add_row, namespace="shared")
"""


def test_concurrent_modifies_lose_no_change(store: StoreHandle) -> None:
    """Two processes each add views to one concept at once (add-view twice): every view is kept.

    (The same loop as ``get`` then ``update`` kept 16 of the 26 views.)"""
    with store.open() as memory:
        memory.add(concept("Bo", 0, namespace="shared"))
    writers = [subprocess.Popen([PYTHON, "-c", VIEW_ADDER, store.uri, str(seed), "12"], env=subprocess_env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for seed in (1, 2)]
    outputs = [w.communicate(timeout=240) for w in writers]
    assert [w.returncode for w in writers] == [0, 0], [err[-2000:] for _, err in outputs]
    with store.open() as memory:
        assert memory.get("Bo", namespace="shared").views.shape == (2 + 24, D)


def test_modify_writes_what_the_change_returns_or_nothing(store: StoreHandle) -> None:
    with store.open() as memory:
        bo = memory.add(full("Bo"))
        gen = memory.generation()
        changed = memory.modify("bo", lambda c: dataclasses.replace(c, context="new", views=c.views[:1]))
        assert (changed.id, changed.name, changed.context, len(changed.views)) == (bo.id, "Bo", "new", 1)
        got = memory.get("Bo")
        assert got.context == "new" and same_vectors(got.views, bo.views[:1]) and memory.generation() > gen

        def refuse(c: Concept) -> Concept:
            raise InvalidInputError("no correction to undo")

        gen, stamp = memory.generation(), memory.get("Bo").updated
        with pytest.raises(InvalidInputError, match="no correction"):
            memory.modify("Bo", refuse)
        with pytest.raises(ConceptNotFoundError, match="Rex"):
            memory.modify("Rex", lambda c: c)
        with pytest.raises(ConceptNotFoundError):  # a change never moves a concept to another namespace
            memory.modify("Bo", lambda c: c, namespace="other")
        assert memory.generation() == gen and memory.get("Bo").updated == stamp  # refused: nothing written
        moved = memory.modify("Bo", lambda c: dataclasses.replace(c, namespace="other", id=-1))
        assert moved.namespace == "default" and memory.namespaces() == ["default"]
        assert memory.get("Bo").context == "new"


def test_get_and_remove_find_a_name_ignoring_case(store: StoreHandle) -> None:
    with store.open() as memory:
        bo = memory.add(concept("Bo", 0))
        assert memory.get("bo").id == bo.id and memory.get("BO").name == "Bo"
        assert memory.remove("bO") == "Bo"  # the name as stored
        assert memory.names() == []
        with pytest.raises(ConceptNotFoundError):
            memory.remove("bo")


def test_sigkill_mid_stream_loses_no_acknowledged_concept(store: StoreHandle) -> None:
    with store.open() as memory:
        memory.add(concept("seed", 0, namespace="shared"))
    writer = subprocess.Popen([PYTHON, "-c", WRITER, store.uri, "k", "100000"], env=subprocess_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert writer.stdout is not None
    acked = []
    deadline = time.monotonic() + 120
    while len(acked) < 25 and time.monotonic() < deadline:
        line = writer.stdout.readline()
        if not line:
            break
        acked.append(int(line))
    writer.send_signal(signal.SIGKILL)  # mid-stream: most likely inside the next add's transaction
    writer.wait(timeout=60)
    # read the rest through the same buffered reader: readline() may have read lines ahead,
    # which communicate() (it reads the raw pipe) would miss
    rest, err = writer.stdout.read(), writer.stderr.read() if writer.stderr else ""
    acked += [int(x) for x in rest.split()]
    assert writer.returncode == -signal.SIGKILL and len(acked) >= 25, err[-2000:]
    with store.open() as memory:
        stored = {c.id: c for c in memory.concepts(namespace="shared")}  # readable: every row decodes
        assert set(acked) <= set(stored)
        assert all(c.views.shape == (3, 16) and c.parts is not None for c in stored.values() if c.name != "seed")
        assert len(stored) - 1 - len(acked) in (0, 1)  # at most the add that was never acknowledged
        memory.add(concept("after", 1, namespace="shared"))  # and writable
        assert memory.count("shared") == len(stored) + 1


def test_add_many_is_all_or_nothing(store: StoreHandle) -> None:
    with store.open() as memory:
        memory.add(concept("Bo", 0))
        gen = memory.generation()
        with pytest.raises(DuplicateConceptError):
            memory.add_many([concept("Rex", 1), concept("bo", 2)])
        assert memory.names() == ["Bo"] and memory.generation() == gen
        with pytest.raises(BackboneMismatchError):
            memory.add_many([concept("Rex", 1), concept("Max", 2, backbone="clip")])
        stored = memory.add_many([concept("Rex", 1), concept("bo", 3, context="again"), full("Max", 4)], replace=True)
        assert [c.name for c in stored] == ["Rex", "bo", "Max"] and memory.names() == ["bo", "Rex", "Max"]
        assert memory.get("bo").context == "again" and same_vectors(memory.get("Max").parts, full("Max", 4).parts)


def test_stamps_list_ids_names_and_update_times_of_one_namespace(store: StoreHandle) -> None:
    with store.open() as memory:
        bo = memory.add(concept("Bo", 0))
        memory.add(concept("Rex", 1, namespace="other"))
        assert memory.stamps() == {bo.id: ("Bo", pytest.approx(bo.updated))}
        later = memory.update(concept("Bo", 2, context="x"))
        assert memory.stamps()[bo.id][1] == pytest.approx(later.updated) and later.updated >= bo.updated
