"""Behaviour of the embedded memory (`SqliteMemory`): round trips, errors, safety, caching."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import pekit.memory.sqlite as sqlite_module
from pekit.errors import (
    BackboneMismatchError,
    ConceptNotFoundError,
    DuplicateConceptError,
    InvalidInputError,
    MemoryStoreError,
    SchemaError,
)
from pekit.memory import MemoryStore, SqliteMemory, open_memory
from pekit.types import Concept

D = 8
BACKBONE = "toy-backbone@layer7"


def unit(k: int, seed: int = 0, d: int = D) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(k, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def make(name: str = "Bo", k: int = 2, seed: int = 0, **kw: object) -> Concept:
    kw.setdefault("backbone", BACKBONE)
    return Concept(name, unit(k, seed), **kw)  # type: ignore[arg-type]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(memory: SqliteMemory, namespace: str = "default") -> list[tuple]:
    """Everything observable about a namespace, for before/after comparisons."""
    return [
        (c.id, c.name, c.category, c.context, c.threshold, c.created, c.updated, c.backbone,
         c.views.tobytes(), None if c.parts is None else c.parts.tobytes(), repr(c.meta))
        for c in memory.concepts(namespace=namespace)
    ]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "not" / "yet" / "memory.db"  # parent folders are created on open


@pytest.fixture
def memory(path: Path):
    with SqliteMemory(path, timeout=0.1) as m:
        yield m


@pytest.fixture
def stocked(path: Path) -> Path:
    """A closed memory file holding Bo (default) and Rex (namespace 'ann')."""
    with SqliteMemory(path) as m:
        m.add(make("Bo", threshold=0.5))
        m.add(make("Rex", seed=1, namespace="ann"))
    return path


def test_a_new_memory_file_is_readable_by_its_owner_only(path: Path) -> None:
    import stat

    with SqliteMemory(path) as m:
        m.add(make("Bo"))  # names, contexts and embeddings of people's things
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


# ---- round trips ---------------------------------------------------------------------
@pytest.mark.parametrize("threshold", [None, 0.42])
@pytest.mark.parametrize("parts", [None, unit(3, seed=7)])
def test_round_trip_keeps_every_field(path: Path, threshold: float | None, parts: np.ndarray | None) -> None:
    meta = {"files": ("a.jpg", "b.jpg"), "score": np.float32(0.5), "box": np.array([1, 2, 3, 4])}
    concept = make("Bo", k=3, category="dog", context="my parents' dog", threshold=threshold,
                   namespace="alice", parts=parts, meta=meta)
    with SqliteMemory(path) as m:
        stored = m.add(concept)
    assert concept.id == -1, "add must not modify its argument"
    with SqliteMemory(path) as m:
        got = m.get("Bo", namespace="alice")
        assert m.backbone == BACKBONE and m.dim == D
    assert got.id == stored.id >= 1
    assert (got.name, got.category, got.context, got.namespace) == ("Bo", "dog", "my parents' dog", "alice")
    assert got.threshold == threshold
    assert got.backbone == BACKBONE
    assert got.views.dtype == np.float32 and got.views.tobytes() == concept.views.tobytes()
    if parts is None:
        assert got.parts is None
    else:
        assert got.parts is not None and np.array_equal(got.parts, parts)
    assert got.meta == {"files": ["a.jpg", "b.jpg"], "score": 0.5, "box": [1, 2, 3, 4]}
    assert 0 < got.created <= got.updated and (got.created, got.updated) == (stored.created, stored.updated)


def test_views_and_parts_are_normalised_on_write(memory: SqliteMemory) -> None:
    raw = unit(2) * np.array([[3.0], [0.25]], np.float32)
    stored = memory.add(Concept("Bo", raw, parts=unit(2, seed=3) * 5, backbone=BACKBONE))
    got = memory.get("Bo")
    assert got.parts is not None
    for arr in (stored.views, got.views, got.parts):
        np.testing.assert_allclose(np.linalg.norm(arr, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(got.views, unit(2), rtol=1e-6)


@pytest.mark.parametrize(
    ("views", "match"),
    [
        (np.zeros((2, D)), "all zeros"),
        (np.full((1, D), np.nan), "finite"),
        (unit(2, d=D + 1), f"shape \\(_, {D}\\)|{D}-dimensional"),
    ],
    ids=["zero-row", "nan", "wrong-dim"],
)
def test_bad_vectors_are_refused_and_store_untouched(
    memory: SqliteMemory, views: np.ndarray, match: str
) -> None:
    memory.add(make("Bo"))
    before = snapshot(memory)
    with pytest.raises(InvalidInputError, match=match):
        memory.add(Concept("Rex", views, backbone=BACKBONE))
    assert snapshot(memory) == before


def test_store_follows_the_memory_store_protocol(memory: SqliteMemory) -> None:
    assert isinstance(memory, MemoryStore)
    assert memory.uri.endswith("memory.db") and memory.backbone is None


# ---- names, duplicates, namespaces ---------------------------------------------------
def test_duplicate_name_needs_replace_which_keeps_id_and_created(memory: SqliteMemory) -> None:
    first = memory.add(make("Bo", context="old"))
    with pytest.raises(DuplicateConceptError, match="replace=True"):
        memory.add(make("Bo", seed=5))
    assert memory.get("Bo").context == "old"
    second = memory.add(make("Bo", k=4, seed=5, context="new"), replace=True)
    got = memory.get("Bo")
    assert second.id == first.id == got.id and got.created == first.created
    assert got.context == "new" and got.views.shape == (4, D) and memory.count() == 1
    assert np.array_equal(got.views, unit(4, seed=5))


def test_remove_deletes_concept_and_its_vectors(memory: SqliteMemory) -> None:
    memory.add(make("Bo"))
    memory.add(make("Rex", seed=1))
    memory.remove("Bo")
    assert [c.name for c in memory.concepts()] == ["Rex"]
    assert [c.id for c in memory.matchable()] == [memory.get("Rex").id]
    with pytest.raises(ConceptNotFoundError):
        memory.remove("Bo")


@pytest.mark.parametrize(
    ("asked", "suggestion"),
    [("Boo", "did you mean 'Bo'?"), ("zzz", None)],
)
def test_unknown_name_lists_known_names_and_suggests(
    memory: SqliteMemory, asked: str, suggestion: str | None
) -> None:
    memory.add(make("Bo"))
    memory.add(make("Rex", seed=1))
    with pytest.raises(ConceptNotFoundError) as info:
        memory.get(asked)
    message = str(info.value)
    assert isinstance(info.value, KeyError)
    assert f"no concept named {asked!r}" in message and "known concepts: Bo, Rex" in message
    assert (suggestion in message) if suggestion else ("did you mean" not in message)


@pytest.mark.parametrize(("name", "namespace"), [("", "default"), ("   ", "default"), (None, "default"),
                                                 ("Bo", ""), ("Bo", " ")])
def test_empty_names_and_namespaces_are_invalid(memory: SqliteMemory, name: object, namespace: str) -> None:
    with pytest.raises(InvalidInputError, match="non-empty string"):
        memory.get(name, namespace=namespace)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="non-empty string"):
        memory.remove(name, namespace=namespace)  # type: ignore[arg-type]


def test_namespaces_are_isolated(memory: SqliteMemory) -> None:
    a = memory.add(make("Bo", namespace="alice", context="alice's"))
    b = memory.add(make("Bo", seed=1, namespace="bob", context="bob's"))
    assert a.id != b.id and memory.namespaces() == ["alice", "bob"]
    assert memory.get("Bo", namespace="bob").context == "bob's"
    assert (memory.count(), memory.count("alice"), memory.count("default")) == (2, 1, 0)
    assert [(c.id, len(c.views)) for c in memory.matchable(namespace="alice")] == [(a.id, 2)]
    # another owner's id reads nothing, even when asked for by id
    memory.update(dataclasses.replace(memory.get("Bo", namespace="bob"), parts=unit(3, seed=9)))
    assert memory.parts([b.id], namespace="alice") == {} and set(memory.parts([b.id], namespace="bob")) == {b.id}
    memory.remove("Bo", namespace="alice")
    assert memory.get("Bo", namespace="bob").id == b.id and memory.namespaces() == ["bob"]
    with pytest.raises(ConceptNotFoundError, match="namespace 'alice'"):
        memory.get("Bo", namespace="alice")


def test_update_writes_back_fields_and_keeps_created(memory: SqliteMemory) -> None:
    bo = memory.add(make("Bo"))
    memory.add(make("Rex", seed=1))
    bo.threshold, bo.context, bo.views = 0.61, "loves the beach", unit(1, seed=9)
    updated = memory.update(bo)
    got = memory.get("Bo")
    assert (got.threshold, got.context, got.created) == (0.61, "loves the beach", bo.created)
    assert got.views.shape == (1, D) and updated.updated >= bo.updated
    bo.name = "Rex"
    with pytest.raises(DuplicateConceptError, match="taken"):
        memory.update(bo)
    with pytest.raises(ConceptNotFoundError, match="to update"):
        memory.update(make("Nobody"))


def test_images_are_kept_only_when_asked(path: Path) -> None:
    photos = [b"\xff\xd8jpeg-bytes", b"\x89PNG-bytes"]
    with SqliteMemory(path) as m:
        m.add(make("Bo"), images=photos)
        assert m.images("Bo") == []
    with SqliteMemory(path, store_images=True) as m:
        m.add(make("Rex", seed=1), images=photos)
        assert m.images("Rex") == photos
        m.remove("Rex")
        assert sqlite3.connect(path).execute("SELECT COUNT(*) FROM images").fetchone()[0] == 0


# ---- backbone and schema -------------------------------------------------------------
def test_backbone_mismatch_is_refused_and_store_untouched(stocked: Path) -> None:
    before = digest(stocked)
    with SqliteMemory(stocked) as m:
        with pytest.raises(BackboneMismatchError) as info:
            m.add(make("Kit", seed=2, backbone="hf:facebook/dinov2-large"))
        assert m.count() == 2 and m.backbone == BACKBONE
    message = str(info.value)
    assert BACKBONE in message and "hf:facebook/dinov2-large" in message
    assert "different memory file" in message and "re-introduce" in message
    assert digest(stocked) == before


def test_backbone_can_change_once_the_store_is_empty(memory: SqliteMemory) -> None:
    memory.add(make("Bo"))
    memory.remove("Bo")
    memory.add(Concept("Bo", unit(2, d=16), backbone="other"))
    assert (memory.backbone, memory.dim) == ("other", 16)


def test_newer_schema_is_refused_with_upgrade_hint(stocked: Path) -> None:
    with sqlite3.connect(stocked) as conn:
        conn.execute("PRAGMA user_version = 99")
    conn.close()
    before = digest(stocked)
    with pytest.raises(SchemaError, match=r"newer pekit.*upgrade pekit") as refused:
        SqliteMemory(stocked)
    assert digest(stocked) == before
    # the distribution is pekit-vlm: `pip install -U pekit` would install an unrelated project
    assert "`pip install -U pekit-vlm`" in str(refused.value)


def _text_file(path: Path) -> None:
    path.write_text("these are my shopping notes, not a database\n" * 50)


def _foreign_db(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE songs (title TEXT)")
    conn.close()


@pytest.mark.parametrize("writer", [_text_file, _foreign_db], ids=["text-file", "foreign-sqlite"])
def test_file_that_is_not_a_pekit_memory_is_refused_untouched(tmp_path: Path, writer) -> None:
    path = tmp_path / "notes.db"
    writer(path)
    before = digest(path)
    with pytest.raises(SchemaError, match="not a pekit memory") as info:
        SqliteMemory(path)
    assert str(path) in str(info.value)
    assert digest(path) == before


# ---- read-only and locked files ------------------------------------------------------
def _permissions_enforced(folder: Path) -> bool:
    """False as root (CAP_DAC_OVERRIDE), where chmod 0o444 does not stop writes."""
    probe = folder / "probe.txt"
    probe.write_text("x")
    probe.chmod(0o444)
    try:
        with open(probe, "a"):
            return False
    except PermissionError:
        return True
    finally:
        probe.chmod(0o644)
        probe.unlink()


def _open_read_only(path: Path, how: str):
    if how == "flag":
        return SqliteMemory(path, read_only=True)
    if how == "uri":
        return open_memory(f"file:{path}?mode=ro")
    if how == "sqlite-level":  # the file is read-only to SQLite but pekit was not told
        m = SqliteMemory(path, read_only=True)
        m._db.read_only = False
        return m
    if how == "chmod":
        path.chmod(0o444)
    elif how == "directory":
        path.parent.chmod(0o555)
    return SqliteMemory(path)


@pytest.mark.parametrize("how", ["flag", "uri", "sqlite-level", "chmod", "directory"])
def test_read_only_file_reads_but_refuses_writes(tmp_path: Path, stocked: Path, how: str) -> None:
    if how in ("chmod", "directory") and not _permissions_enforced(tmp_path):
        # root ignores file modes: run this very test again in a child without the
        # capabilities that bypass them (setpriv, util-linux), where chmod is enforced
        setpriv = shutil.which("setpriv")
        assert setpriv, "running as root without setpriv: cannot test file-mode read-only memories"
        node = f"{__file__}::test_read_only_file_reads_but_refuses_writes[{how}]"
        child = subprocess.run(
            [setpriv, "--bounding-set=-dac_override,-dac_read_search,-fowner", sys.executable, "-m", "pytest",
             "-q", "-p", "no:cacheprovider", node],
            capture_output=True, text=True, timeout=120, check=False,
        )
        assert child.returncode == 0 and "1 passed" in child.stdout, child.stdout + child.stderr
        return
    before = digest(stocked)
    try:
        with _open_read_only(stocked, how) as m:
            assert m.get("Bo").threshold == 0.5 and m.count() == 2 and len(m.matchable()) == 1 and m.generation() >= 0
            for write in (lambda: m.add(make("Kit", seed=2)), lambda: m.remove("Bo"),
                          lambda: m.update(m.get("Bo"))):
                with pytest.raises(MemoryStoreError, match=r"read-only|writable") as info:
                    write()
                assert str(stocked) in str(info.value)
            assert m.count() == 2
    finally:
        stocked.parent.chmod(0o755)
        stocked.chmod(0o644)
    assert digest(stocked) == before


def test_a_file_whose_mode_lets_nobody_write_is_not_written_even_by_root(stocked: Path) -> None:
    """``chmod 444 memory.db`` protects it: root could write (its capabilities bypass the mode),
    but the file is meant to stay as it is, as a read-only folder is (`pekit.cli_output.read_only`)."""
    before = digest(stocked)
    stocked.chmod(0o444)
    try:
        with SqliteMemory(stocked) as m:
            assert m.count() == 2  # reads work
            with pytest.raises(MemoryStoreError, match=r"read-only \(its permissions\).*chmod u\+w"):
                m.check_writable("introduce 'Kit'")  # what Personalizer asks before any backbone pass
            with pytest.raises(MemoryStoreError, match=r"read-only \(its permissions\)"):
                m.add(make("Kit", seed=2))
    finally:
        stocked.chmod(0o644)
    assert digest(stocked) == before


def test_missing_file_opened_read_only_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(MemoryStoreError, match="does not exist"):
        SqliteMemory(tmp_path / "absent.db", read_only=True)
    assert not (tmp_path / "absent.db").exists()


def test_locked_file_gives_a_clear_error_and_reads_still_work(stocked: Path) -> None:
    other = sqlite3.connect(stocked, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        with SqliteMemory(stocked, timeout=0.05) as m:
            with pytest.raises(MemoryStoreError, match="locked by another process; try again"):
                m.add(make("Kit", seed=2))
            assert m.count() == 2
            other.execute("ROLLBACK")
            m.add(make("Kit", seed=2))
            assert m.count() == 3
    finally:
        other.close()


# ---- crash safety ----------------------------------------------------------------------
@pytest.mark.parametrize("replace", [False, True])
def test_exception_mid_write_keeps_previous_committed_state(
    memory: SqliteMemory, monkeypatch: pytest.MonkeyPatch, replace: bool
) -> None:
    memory.add(make("Bo"))
    before, generation = snapshot(memory), memory.generation()
    original = SqliteMemory._write_vectors

    def crash(self, conn, cid, views, parts, *rest):  # the row and its views are written, then boom
        original(self, conn, cid, views, parts, *rest)
        raise RuntimeError("power cut")

    monkeypatch.setattr(SqliteMemory, "_write_vectors", crash)
    with pytest.raises(RuntimeError, match="power cut"):
        memory.add(make("Bo" if replace else "Rex", k=3, seed=4), replace=replace)
    monkeypatch.undo()
    assert snapshot(memory) == before
    assert memory.generation() == generation  # a rolled-back write is no write
    memory.add(make("Rex", seed=1))  # the store is still writable
    assert memory.count() == 2


def test_process_killed_mid_write_loses_nothing_committed(stocked: Path) -> None:
    script = textwrap.dedent(f"""
        import os, numpy as np
        from pekit.memory.sqlite import SqliteMemory
        from pekit.types import Concept
        original = SqliteMemory._write_vectors
        def die(self, conn, cid, views, parts, *rest):
            original(self, conn, cid, views, parts, *rest)
            os._exit(3)  # killed in the middle of the transaction
        SqliteMemory._write_vectors = die
        m = SqliteMemory({str(stocked)!r})
        m.add(Concept("Kit", np.ones((2, {D}), np.float32), backbone={BACKBONE!r}))
    """)
    src = Path(sqlite_module.__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")])}
    with SqliteMemory(stocked) as m:
        before = snapshot(m), snapshot(m, "ann")
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, timeout=60)
    assert result.returncode == 3, result.stderr.decode()
    with SqliteMemory(stocked) as m:  # the hot journal is rolled back on open
        assert (snapshot(m), snapshot(m, "ann")) == before
        assert m._db.connection().execute("PRAGMA integrity_check").fetchone()[0] == "ok"


# ---- write counter and the reads matching uses --------------------------------------------
def test_generation_moves_on_every_write_of_its_namespace_only(memory: SqliteMemory) -> None:
    seen = [memory.generation()]
    bo = memory.add(make("Bo", k=2))
    seen.append(memory.generation())
    memory.add(make("Bo", k=3, seed=3), replace=True)
    seen.append(memory.generation())
    memory.update(dataclasses.replace(memory.get("Bo"), threshold=0.9))
    seen.append(memory.generation())
    other = memory.generation("alice")
    memory.add(make("Rex", namespace="alice"))
    assert memory.generation() == seen[-1] and memory.generation("alice") != other
    memory.remove("Bo")
    seen.append(memory.generation())
    assert len(set(seen)) == len(seen), seen
    assert bo.id not in memory.parts([bo.id])


def test_generation_sees_writes_from_another_connection_and_an_old_file(path: Path) -> None:
    with SqliteMemory(path) as reader, SqliteMemory(path) as writer:
        writer.add(make("Bo"))
        before = reader.generation()
        writer.add(make("Rex", k=3, seed=1))
        assert reader.generation() != before
    # a file written before the counter existed gets it (with its triggers) on a writable open
    conn = sqlite3.connect(path)
    for name in ("generation_insert", "generation_delete", "generation_update", "generation_move"):
        conn.execute(f"DROP TRIGGER {name}")
    conn.execute("DROP TABLE generations")
    conn.commit()
    conn.close()
    with SqliteMemory(path, read_only=True) as old:
        first = old.generation()
        assert first == old.generation() and len(old.matchable()) == 2  # read-only: a digest stands in
    with SqliteMemory(path) as m:
        g = m.generation()
        m.remove("Bo")
        assert m.generation() != g


def test_matchable_leaves_out_parts_and_parts_fetches_them(memory: SqliteMemory) -> None:
    bo = memory.add(make("Bo", parts=unit(5, seed=3)))
    rex = memory.add(make("Rex", seed=1))
    light = memory.matchable()
    assert [c.name for c in light] == ["Bo", "Rex"] and all(c.parts is None for c in light)
    assert np.array_equal(light[0].views, memory.get("Bo").views)
    got = memory.parts([bo.id, rex.id, 999])
    assert list(got) == [bo.id] and np.allclose(got[bo.id], unit(5, seed=3), atol=1e-6)
    assert memory.parts([]) == {}


# ---- in-process store and lifecycle ----------------------------------------------------
def test_in_memory_store_works_and_is_private() -> None:
    with open_memory("memory://") as a, open_memory("memory://") as b:
        assert isinstance(a, SqliteMemory) and a.uri == "memory://"
        a.add(make("Bo"))
        assert a.get("Bo").views.shape == (2, D) and b.count() == 0


def test_closed_store_raises_and_close_is_idempotent(path: Path) -> None:
    m = SqliteMemory(path)
    m.close()
    m.close()
    with pytest.raises(MemoryStoreError, match="closed"):
        m.get("Bo")


def test_add_many_is_one_transaction_all_or_nothing(memory: SqliteMemory) -> None:
    memory.add(make("Bo"))
    g = memory.generation()
    stored = memory.add_many([make("Rex", seed=1), make("Kit", seed=2)])
    assert [c.name for c in stored] == ["Rex", "Kit"] and memory.count() == 3 and memory.generation() != g
    before = snapshot(memory)
    with pytest.raises(DuplicateConceptError):
        memory.add_many([make("Mia", seed=3), make("bo", seed=4)])  # the second clashes (case-insensitive)
    with pytest.raises(DuplicateConceptError):
        memory.add_many([make("Zed", seed=5), make("ZED", seed=6)])  # a clash inside the batch
    assert snapshot(memory) == before  # nothing of either batch was stored
    again = memory.add_many([make("bo", k=3, seed=7)], replace=True)
    assert again[0].id == memory.get("bo").id and memory.count() == 3


def test_stamps_list_ids_names_and_update_times_only(memory: SqliteMemory) -> None:
    bo = memory.add(make("Bo"))
    memory.add(make("Mia", namespace="alice"))
    assert memory.stamps() == {bo.id: ("Bo", bo.updated)}
    again = memory.update(dataclasses.replace(memory.get("Bo"), context="new"))
    assert memory.stamps()[bo.id][1] == again.updated != bo.updated


def test_a_counter_edited_outside_pekit_still_tells_writes_apart(path: Path) -> None:
    with SqliteMemory(path) as memory:
        memory.add(make("Bo"))
    conn = sqlite3.connect(path)
    conn.execute("UPDATE generations SET value = 'x'")
    conn.commit()
    conn.close()
    with SqliteMemory(path) as memory:
        before = memory.generation()  # no ValueError: the rows' digest stands in for the counter
        assert before == memory.generation() and memory.get("Bo").name == "Bo"
        memory.add(make("Rex", seed=1))
        assert memory.generation() != before


def test_a_memory_on_a_read_only_mount_says_so_not_chmod(stocked: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a read-only mount (a backup disk, a container's image) no chmod helps: the message says
    to copy it. The mount is stood in for: `os.access` refuses writes and `statvfs` reports ST_RDONLY."""
    import pekit.memory._db as db

    real_statvfs = os.statvfs

    class ReadOnlyMount:
        def __init__(self, path: Any) -> None:
            self._real = real_statvfs(path)

        def __getattr__(self, name: str) -> Any:
            return getattr(self._real, name)

        @property
        def f_flag(self) -> int:
            return self._real.f_flag | os.ST_RDONLY

    before = digest(stocked)
    monkeypatch.setattr(db.os, "access", lambda path, mode: not mode & os.W_OK)
    monkeypatch.setattr(db.os, "statvfs", ReadOnlyMount)
    with SqliteMemory(stocked) as m:
        assert m.count() == 2
        with pytest.raises(MemoryStoreError, match=r"read-only file system.*copy it") as info:
            m.add(make("Kit", seed=2))
        assert "chmod" not in str(info.value)
    assert digest(stocked) == before
