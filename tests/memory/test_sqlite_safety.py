"""The embedded memory without surprises: files created only by writes, names normalised,
damaged rows reported (and repaired), forgotten concepts gone from the file's bytes."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pekit.errors import ConceptNotFoundError, DuplicateConceptError, InvalidInputError, MemoryFileError
from pekit.memory import SqliteMemory, open_memory
from pekit.types import Concept

D = 8


def make(name: str = "Bo", k: int = 2, seed: int = 0, **kw: Any) -> Concept:
    v = np.random.default_rng(seed).normal(size=(k, D)).astype(np.float32)
    kw.setdefault("backbone", "toy")
    return Concept(name, v / np.linalg.norm(v, axis=1, keepdims=True), **kw)


# ---- files and folders are created by the first write only -----------------------------------
def test_reads_of_a_missing_file_create_nothing(tmp_path: Path) -> None:
    path = tmp_path / "typo" / "deeper" / "m.db"
    with SqliteMemory(path) as memory:
        assert memory.concepts() == [] and memory.count() == 0 and memory.names() == []
        assert memory.matchable() == [] and memory.generation() == 0
        assert memory.repair(dry_run=True) == [] and memory.repair() == []
        with pytest.raises(ConceptNotFoundError):
            memory.remove("Bo")  # a write that fails: it must not leave the file it would create
    assert not (tmp_path / "typo").exists()


def test_the_first_write_creates_the_file(tmp_path: Path) -> None:
    path = tmp_path / "new" / "m.db"
    with SqliteMemory(path) as memory:
        memory.add(make("Bo"))
        assert path.is_file()
    with SqliteMemory(path, must_exist=True) as memory:
        assert memory.names() == ["Bo"]


@pytest.mark.parametrize("opener", [lambda p: SqliteMemory(p, must_exist=True),
                                    lambda p: open_memory(str(p), must_exist=True),
                                    lambda p: SqliteMemory(p, read_only=True)])
def test_a_missing_file_that_must_exist_is_an_error_naming_it(tmp_path: Path, opener: Any) -> None:
    path = tmp_path / "typo" / "m.db"
    with pytest.raises(MemoryFileError, match="does not exist") as info:
        opener(path)
    assert str(path) in str(info.value)
    assert not (tmp_path / "typo").exists()


@pytest.mark.parametrize("opener", [lambda p: SqliteMemory(p, must_exist=True),
                                    lambda p: SqliteMemory(p, read_only=True), SqliteMemory])
def test_an_empty_file_reads_as_an_empty_memory_and_stays_empty(tmp_path: Path, opener: Any) -> None:
    """``touch memory.db``, then ``pekit list``: nothing stored, and nothing written into the file."""
    path = tmp_path / "m.db"
    path.touch()
    with opener(path) as memory:
        assert memory.concepts() == [] and memory.names() == [] and memory.count() == 0
    assert path.stat().st_size == 0
    with SqliteMemory(path) as memory:  # the first write gives it its tables
        memory.add(make("Bo"))
    with SqliteMemory(path, must_exist=True) as memory:
        assert memory.names() == ["Bo"]


def test_a_failed_first_write_leaves_no_file_or_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "new" / "sub" / "m.db"
    memory = SqliteMemory(path)

    def boom(*args: Any, **kwargs: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(memory, "_write_vectors", boom)
    with pytest.raises(OSError, match="disk full"):
        memory.add(make("Bo"))
    assert not (tmp_path / "new").exists()
    assert memory.concepts() == []  # still usable: the next write creates the file
    monkeypatch.undo()
    memory.add(make("Bo"))
    assert path.is_file() and memory.names() == ["Bo"]
    memory.close()


@pytest.mark.parametrize(("error", "kept"), [("MemoryFullError", False), ("MemoryStoreError", True)])
def test_a_disk_too_full_for_the_first_page_leaves_no_file_or_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: str, kept: bool) -> None:
    """A first write that cannot even give the new file its first page (a full disk): the
    empty file and its new folder go, as the README promises; nobody can have written into
    it. Any other failure to open it keeps the (empty) file: another process may be
    writing it now."""
    from pekit import errors
    from pekit.memory import _db

    path = tmp_path / "new" / "m.db"

    real = _db.SqliteFile._connect

    def no_room(self: Any, *, stand_in: bool = False) -> Any:
        if stand_in:  # (what a memory reads before its file exists: nothing is written)
            return real(self, stand_in=True)
        raise getattr(errors, error)(f"pekit cannot open the memory: the disk holding memory file {path} is full")

    monkeypatch.setattr(_db.SqliteFile, "_connect", no_room)
    with SqliteMemory(path) as memory, pytest.raises(getattr(errors, error), match="is full"):
        memory.add(make("Bo"))
    assert path.exists() is kept and (tmp_path / "new").exists() is kept


def test_a_failed_first_write_keeps_a_file_another_writer_committed_to(tmp_path: Path) -> None:
    """Two first writes into a new memory at once: B makes the file, A commits 'Same' into
    it before B writes, B's 'same' is refused as a duplicate. A's concept must stay (B used
    to remove the file it had made, with A's concept in it)."""
    path = tmp_path / "new" / "m.db"
    a, b = SqliteMemory(path), SqliteMemory(path)
    create = b._db._create_file

    def create_then_a_commits() -> list[Path]:
        made = create()
        a.add(make("Same"))
        return made

    b._db._create_file = create_then_a_commits  # type: ignore[method-assign]
    with pytest.raises(DuplicateConceptError):
        b.add(make("same"))
    assert path.is_file() and b.names() == ["Same"]
    a.close()
    b.close()
    with SqliteMemory(path, must_exist=True) as again:
        assert again.names() == ["Same"]


def test_a_writer_whose_file_was_removed_meanwhile_writes_to_the_path_again(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    with SqliteMemory(path) as memory:
        memory.add(make("Bo"))
        for extra in (path, path.with_name("m.db-journal")):
            extra.unlink(missing_ok=True)  # another process's failed first write removed it
        memory.add(make("Rex"))  # not into the removed file, where it would be lost
    with SqliteMemory(path, must_exist=True) as again:
        assert again.names() == ["Rex"]


def test_a_file_made_again_at_the_path_is_read_anew_not_from_the_old_file_s_caches(tmp_path: Path) -> None:
    """The path is removed and a new memory made there (its ids and write counter start again):
    a reader reads the new file, and `search` (cached by `generation`) does not answer with the
    old file's vectors under the new file's ids."""
    path = tmp_path / "m.db"
    bo = make("Bo", k=1, seed=1)
    with SqliteMemory(path) as reader:
        reader.add(bo)
        assert reader.search(bo.views)[1][0, 0] == pytest.approx(1.0)
        for extra in (path, path.with_name("m.db-journal")):
            extra.unlink(missing_ok=True)
        with SqliteMemory(path) as writer:
            writer.add(make("Kit", k=1, seed=2))  # id 1 again, in another file
        assert reader.names() == ["Kit"]
        ids, scores = reader.search(bo.views)
        assert ids[0, 0] == 1 and scores[0, 0] < 0.9  # Kit's vector, not Bo's under Kit's id


def test_the_first_write_moves_only_its_own_namespace_s_counter(tmp_path: Path) -> None:
    with SqliteMemory(tmp_path / "new" / "m.db") as memory:
        before = memory.generation("bob")
        memory.add(make("Bo"))  # into 'default': the file is made now
        assert memory.generation("bob") == before and memory.generation() != before


def test_a_reader_sees_a_file_another_process_created(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    with SqliteMemory(path) as reader, SqliteMemory(path) as writer:
        assert reader.count() == 0
        writer.add(make("Bo"))
        assert reader.names() == ["Bo"]


# ---- names ---------------------------------------------------------------------------------------
def test_names_are_stored_in_nfc_and_found_in_either_form(tmp_path: Path) -> None:
    with SqliteMemory(":memory:") as memory:
        memory.add(make("Bo\u0308"))  # o + combining diaeresis
        assert memory.names() == ["B\u00f6"]
        assert memory.get("B\u00f6").name == memory.get("Bo\u0308").name == "B\u00f6"


@pytest.mark.parametrize(("first", "second"), [("bo", "Bo"), ("Bø", "BØ"), ("STRASSE", "strasse"),
                                               ("B\u00f6", "BO\u0308")])
def test_names_are_unique_ignoring_case(first: str, second: str) -> None:
    with SqliteMemory(":memory:") as memory:
        bo = memory.add(make(first, category="dog", context="ctx"))
        with pytest.raises(DuplicateConceptError, match="ignoring case"):
            memory.add(make(second, seed=1))
        replaced = memory.add(make(second, seed=1), replace=True)
        assert replaced.id == bo.id and memory.count() == 1
        assert memory.names() == [replaced.name]  # renamed to the new spelling
        other = memory.add(make("Rex", seed=2))
        with pytest.raises(DuplicateConceptError):
            memory.update(Concept(first.swapcase(), other.views, id=other.id, backbone="toy"))


@pytest.mark.parametrize("name", ["Bo\x1b[31m", "\x1b]0;pwned\x07", "two\nlines", "tab\there", "bidi\u202eoB",
                                  "nul\x00"])
def test_control_characters_in_names_are_refused(name: str) -> None:
    with SqliteMemory(":memory:") as memory:
        with pytest.raises(InvalidInputError, match="control character U\\+"):
            memory.add(make(name))
        assert memory.count() == 0


@pytest.mark.parametrize("name", ["🐶 Bø 名前", "👨\u200d👩\u200d👧", "Ελένη", "Жучка"])
def test_names_in_any_script_are_kept(name: str) -> None:
    with SqliteMemory(":memory:") as memory:
        assert memory.add(make(name)).name == name and memory.get(name).name == name


# ---- damaged rows --------------------------------------------------------------------------------
DAMAGE = {
    "view-blob": "UPDATE views SET vector = X'0102' WHERE concept_id = {id}",
    "parts-blob": "UPDATE parts SET vectors = X'01020304050607' WHERE concept_id = {id}",
    "nan-view": "UPDATE views SET vector = X'" + "0000C07F" * D + "' WHERE concept_id = {id}",
    "meta-json": "UPDATE concepts SET meta = '{{not json' WHERE id = {id}",
    "meta-list": "UPDATE concepts SET meta = '[1, 2]' WHERE id = {id}",
    # records pekit reads back, edited into the wrong shape: named here, not a TypeError in add-view
    "meta-references": "UPDATE concepts SET meta = json_set(meta, '$.references', 5) WHERE id = {id}",
    "meta-references-bool": "UPDATE concepts SET meta = json_set(meta, '$.references', json('true')) WHERE id = {id}",
    "meta-boxes": "UPDATE concepts SET meta = json_set(meta, '$.boxes', json('[[1, 2, 3]]')) WHERE id = {id}",
    "meta-faces": "UPDATE concepts SET meta = json_set(meta, '$.faces', json('[[1, 2], [3]]')) WHERE id = {id}",
    "threshold-text": "UPDATE concepts SET threshold = 'high' WHERE id = {id}",
    "no-views": "DELETE FROM views WHERE concept_id = {id}",
    # one flipped exponent bit: finite, but a length of 1e36 (and cosine scores to match)
    "long-view": ("UPDATE views SET vector = CAST(X'0000807E' || substr(vector, 5) AS BLOB) "
                  "WHERE concept_id = {id} AND idx = 0"),
}


@pytest.fixture
def two(tmp_path: Path) -> Path:
    path = tmp_path / "m.db"
    with SqliteMemory(path) as memory:
        memory.add(make("Bo", parts=make("x", k=3).views))
        memory.add(make("Rex", seed=1, parts=make("y", k=3, seed=2).views))
    return path


def damage(path: Path, sql: str, name: str = "Bo") -> None:
    conn = sqlite3.connect(path)
    (cid,) = conn.execute("SELECT id FROM concepts WHERE name = ?", (name,)).fetchone()
    conn.execute(sql.format(id=cid))
    conn.commit()
    conn.close()


@pytest.mark.parametrize("how", list(DAMAGE))
def test_a_damaged_concept_is_a_clear_error_naming_it(two: Path, how: str) -> None:
    damage(two, DAMAGE[how])
    with SqliteMemory(two) as memory:
        bo_id = int(sqlite3.connect(two).execute("SELECT id FROM concepts WHERE name = 'Bo'").fetchone()[0])
        # matching reads parts only of the concepts that can win: a damaged parts blob shows there
        light = (lambda: memory.parts([bo_id])) if how == "parts-blob" else memory.matchable
        for read in (memory.concepts, light, lambda: memory.get("Bo")):
            with pytest.raises(MemoryFileError) as info:
                read()
            message = str(info.value)
            assert "concept 'Bo'" in message and "pekit repair" in message and "--skip-damaged" in message
        assert memory.get("Rex").name == "Rex"  # the other concept still reads


@pytest.mark.parametrize("how", list(DAMAGE))
def test_skip_damaged_reads_around_and_repair_removes(two: Path, how: str) -> None:
    damage(two, DAMAGE[how])
    with SqliteMemory(two, skip_damaged=True) as memory:
        assert [c.name for c in memory.concepts()] == ["Rex"]
        rex = memory.get("Rex").id
        bo = int(sqlite3.connect(two).execute("SELECT id FROM concepts WHERE name = 'Bo'").fetchone()[0])
        assert [c.id for c in memory.matchable()] == ([bo, rex] if how == "parts-blob" else [rex])
        if how == "parts-blob":  # its intact views still match; its parts are skipped, logged
            assert bo not in memory.parts([bo, rex])
    with SqliteMemory(two) as memory:
        report = memory.repair(dry_run=True)
        assert [(r["name"], r["namespace"]) for r in report] == [("Bo", "default")] and report[0]["problem"]
        assert memory.count() == 2  # dry run: nothing removed
        assert memory.repair() == report
        assert [c.name for c in memory.concepts()] == ["Rex"] and memory.repair() == []


#: what a listing reads no vector of, so cannot see (a decoding read names it)
DECODED_ONLY = {"nan-view", "long-view"}


@pytest.mark.parametrize("how", sorted(set(DAMAGE) - DECODED_ONLY))
def test_listing_names_the_damage_a_decoding_read_names(two: Path, how: str) -> None:
    """`pekit list` (summaries) reads no vector, yet a concept that `get` calls damaged is not
    listed as if it were whole: the same verdict, or skipped with ``skip_damaged``."""
    damage(two, DAMAGE[how])
    with SqliteMemory(two) as memory:
        with pytest.raises(MemoryFileError) as info:
            memory.summaries()
        with pytest.raises(MemoryFileError) as decoded:
            memory.get("Bo")
        assert "concept 'Bo'" in str(info.value) and "pekit repair" in str(info.value)
        if (how.startswith("meta-") and how not in {"meta-json", "meta-list"}) or how == "threshold-text":
            # the decoding read's words (a JSON true is "bool" in both, though SQLite's json_each gives 1)
            assert str(info.value) == str(decoded.value)
    with SqliteMemory(two, skip_damaged=True) as memory:
        assert [s.name for s in memory.summaries()] == ["Rex"]


@pytest.mark.parametrize("key", ["dim", "backbone"])
def test_a_meta_table_that_lost_a_setting_is_named_and_repair_deletes_nothing(two: Path, key: str) -> None:
    """Damage to the file's settings is not damage to each concept: no read gives a
    traceback, `repair` removes nothing, and an add cannot overwrite the settings (which
    would make every stored concept unreadable)."""
    conn = sqlite3.connect(two)
    conn.execute("DELETE FROM meta WHERE key = ?", (key,))
    conn.commit()
    conn.close()
    with SqliteMemory(two) as memory:
        reads = (memory.concepts, memory.matchable, memory.summaries, lambda: memory.get("Rex"),
                 lambda: memory.parts([1, 2]), memory.damaged, lambda: memory.repair(dry_run=True), memory.repair,
                 lambda: memory.add(make("New", seed=9)),
                 lambda: memory.add(make("Other", seed=9, backbone="another-backbone")))
        for read in reads:
            with pytest.raises(MemoryFileError, match=f"lost the (vector width|backbone) \\('{key}'\\)"):
                read()
    conn = sqlite3.connect(two)
    assert conn.execute("SELECT COUNT(*) FROM concepts").fetchone()[0] == 2  # nothing removed
    assert conn.execute("SELECT COUNT(*) FROM meta WHERE key = ?", (key,)).fetchone()[0] == 0  # nothing rewritten
    conn.close()


def test_a_meta_width_no_view_has_is_named_and_repair_deletes_nothing(two: Path) -> None:
    """A changed ``dim`` ('8' edited or damaged to '16') would make every concept read as damaged:
    it is damage to the file's settings, so `repair` (which the message of a damaged concept
    recommends) removes nothing."""
    conn = sqlite3.connect(two)
    conn.execute("UPDATE meta SET value = ? WHERE key = 'dim'", (str(2 * D),))
    conn.commit()
    conn.close()
    with SqliteMemory(two) as memory:
        reads = (memory.concepts, memory.summaries, lambda: memory.get("Rex"), lambda: memory.parts([1, 2]),
                 memory.damaged, lambda: memory.repair(dry_run=True), memory.repair,
                 lambda: memory.add(make("New", seed=9)))
        for read in reads:
            with pytest.raises(MemoryFileError, match=f"says their vectors have {2 * D} dimensions"):
                read()
    conn = sqlite3.connect(two)
    assert conn.execute("SELECT COUNT(*) FROM concepts").fetchone()[0] == 2  # nothing removed
    conn.close()


def test_meta_with_a_nul_character_is_refused_before_it_is_stored(tmp_path: Path) -> None:
    with SqliteMemory(tmp_path / "m.db") as memory:
        for meta in ({"x": "a\x00b"}, {"a\x00": 1}, {"x": ["ok", {"y": "\x00"}]}):
            with pytest.raises(InvalidInputError, match="NUL character"):
                memory.add(make("Bo", meta=meta))
        stored = memory.add(make("Bo", meta={"x": "a\\u0000 is text, not a NUL"}))
        assert memory.get("Bo").meta == stored.meta and memory.count() == 1


# ---- forget means gone -------------------------------------------------------------------------------
SECRET_NAME = "Zanzibar-the-secret-dog"
SECRET_CONTEXT = "lives at 42 Hidden Lane, vet is Dr. Quillfeather"


def _stock_and_forget(path: Path, connect: Any) -> bytes:
    """Add a concept with a distinctive name, context and vectors, forget it; return its
    view and part vector bytes."""
    secret = make(SECRET_NAME, k=3, seed=5, context=SECRET_CONTEXT, parts=make("p", k=57, seed=7).views)
    with connect(path) as memory:
        memory.add(make("Keep", seed=3))
        memory.add(secret)
        memory.add(make("Keep2", seed=4))
        memory.remove(SECRET_NAME)
    assert secret.parts is not None
    return np.concatenate([secret.views, secret.parts]).astype("<f4").tobytes()


def _traces(path: Path, vectors: bytes) -> list[str]:
    raw = path.read_bytes()
    rows = [vectors[i:i + 4 * D] for i in range(0, len(vectors), 4 * D)]
    found = [what for what, needle in (("name", SECRET_NAME.encode()), ("context", SECRET_CONTEXT.encode()))
             if needle in raw]
    leaked = sum(row in raw for row in rows)
    return found + ([f"{leaked}/{len(rows)} view and part vectors"] if leaked else [])


@pytest.fixture
def insecure_sqlite(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every new connection starts with secure_delete OFF, as on SQLite builds without SECURE_DELETE."""
    real = sqlite3.connect

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn = real(*args, **kwargs)
        conn.execute("PRAGMA secure_delete = OFF")
        return conn

    monkeypatch.setattr(sqlite3, "connect", connect)


def test_forget_leaves_no_trace_in_the_file(tmp_path: Path, insecure_sqlite: None) -> None:
    path = tmp_path / "m.db"
    parts = _stock_and_forget(path, SqliteMemory)
    assert _traces(path, parts) == []
    with SqliteMemory(path) as memory:
        assert memory.names() == ["Keep", "Keep2"]


def test_without_secure_delete_the_same_forget_would_leave_traces(tmp_path: Path, insecure_sqlite: None,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The control: the scan above can fail (it finds what a plain DELETE leaves behind)."""
    import pekit.memory._db as db

    real_connect = db.SqliteFile._connect

    def connect_insecure(self: Any, **kwargs: Any) -> sqlite3.Connection:
        conn = real_connect(self, **kwargs)
        conn.execute("PRAGMA secure_delete = OFF")
        return conn

    monkeypatch.setattr(db.SqliteFile, "_connect", connect_insecure)
    path = tmp_path / "m.db"
    parts = _stock_and_forget(path, SqliteMemory)
    traces = _traces(path, parts)
    assert "name" in traces and "context" in traces and "view and part vectors" in traces[-1]


def test_a_name_over_200_characters_is_refused_with_what_to_do() -> None:
    with SqliteMemory(":memory:") as memory:
        memory.add(make("B" * 200))
        with pytest.raises(InvalidInputError, match=r"201 characters long.*200 characters at most.*--context"):
            memory.add(make("B" * 201))
        with pytest.raises(InvalidInputError, match="201 characters long"):  # nor by a rename
            memory.modify("B" * 200, lambda c: dataclasses.replace(c, name="C" * 201))
        assert memory.names() == ["B" * 200]


def test_a_longer_name_stored_by_an_earlier_version_can_still_be_used(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    with SqliteMemory(path) as memory:
        memory.add(make("Bo"))
    with sqlite3.connect(path) as conn:  # what an earlier version could store
        conn.execute("UPDATE concepts SET name = ?, threshold = 1.5", ("L" * 250,))
    with SqliteMemory(path) as memory:
        assert memory.get("l" * 250).threshold == 1.5
        changed = memory.modify("L" * 250, lambda c: dataclasses.replace(c, context="still mine"))
        assert changed.context == "still mine" and changed.threshold == 1.5
        memory.remove("L" * 250)
        assert memory.names() == []


@pytest.mark.parametrize(("sqlite_says", "expected", "kind"), [
    ("database or disk is full", "the disk holding memory file .* is full; free some space", "MemoryFullError"),
    ("database disk image is malformed", "is damaged .*restore it from a backup", "MemoryStoreError"),
    ("database is locked", "is locked by another process; try again", "MemoryLockedError"),
])
def test_a_full_disk_or_a_damaged_file_says_what_to_do(sqlite_says: str, expected: str, kind: str) -> None:
    from pekit.memory._db import SqliteFile

    db = SqliteFile(None)
    error = db.error(sqlite3.OperationalError(sqlite_says), "add concept 'Bo'")
    assert error.__class__.__name__ == kind  # (the service answers 507, 500 and 503 + Retry-After)
    assert "pekit cannot add concept 'Bo'" in str(error) or kind == "MemoryLockedError"
    assert __import__("re").search(expected, str(error))


def test_an_interrupted_write_that_cannot_be_rolled_back_says_to_fix_the_permissions(tmp_path: Path) -> None:
    """Advice to open the file again must not be advice that fails the same way: with the
    file read-only the rollback cannot run, and the message says so."""
    from pekit.memory._db import SqliteFile

    path = tmp_path / "m.db"
    with SqliteMemory(path) as memory:
        memory.add(make("Bo"))
    db = SqliteFile(path)
    error = sqlite3.OperationalError("attempt to write a readonly database")
    error.sqlite_errorname = "SQLITE_READONLY_ROLLBACK"  # type: ignore[attr-defined]
    assert "pekit list --memory" in str(db.error(error, "list concepts"))  # writable: opening once rolls back
    path.chmod(0o444)
    try:
        message = str(db.error(error, "list concepts"))
    finally:
        path.chmod(0o644)
        db.close()
    assert "cannot be rolled back" in message and f"chmod u+w {path}" in message
    assert "pekit list --memory" not in message


def test_a_first_write_tries_again_when_another_process_takes_its_new_file_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two processes write a new memory at once; the other one's write fails and it removes
    the file it made just as this one opens it: this write makes the file again and lands."""
    path = tmp_path / "m.db"
    real, removed = sqlite3.connect, []

    def connect(target: Any, *args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn = real(target, *args, **kwargs)
        if str(target).startswith("file:") and not removed and path.exists():
            path.unlink()  # the other process takes its file back
            removed.append(True)
        return conn

    monkeypatch.setattr(sqlite3, "connect", connect)
    with SqliteMemory(path) as memory:
        memory.add(make("Bo"))
    monkeypatch.setattr(sqlite3, "connect", real)
    assert removed and [c.name for c in SqliteMemory(path).concepts()] == ["Bo"]


def test_a_reader_never_remakes_a_file_another_process_took_back(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The file appeared (another process wrote it) and is gone again when this reader opens
    it: the read sees an empty memory and creates nothing, and a writer in the same moment
    makes the file as pekit makes files (mode 600), not SQLite's default."""
    path = tmp_path / "m.db"
    reader = SqliteMemory(path)
    with SqliteMemory(path) as other:
        other.add(make("Rex"))
    real, armed = sqlite3.connect, [True]

    def connect(target: Any, *args: Any, **kwargs: Any) -> sqlite3.Connection:
        if armed and str(target).startswith("file:"):
            armed.clear()
            for leftover in tmp_path.glob("m.db*"):
                leftover.unlink()  # taken back just before this process opens it
        return real(target, *args, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", connect)
    assert reader.names() == [] and not path.exists()
    armed.append(True)
    reader.add(make("Bo"))
    reader.close()
    assert path.stat().st_mode & 0o777 == 0o600
    monkeypatch.setattr(sqlite3, "connect", real)
    assert SqliteMemory(path).names() == ["Bo"]


def test_a_symlink_made_before_the_first_use_gets_the_memory_where_it_points(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    target, link = tmp_path / "data" / "pekit.db", tmp_path / "memory.db"
    link.symlink_to(target)
    with SqliteMemory(link) as memory:
        assert memory.names() == [] and not target.exists()  # a read creates nothing
        memory.add(make("Bo"))
    assert link.is_symlink() and target.stat().st_mode & 0o777 == 0o600
    assert SqliteMemory(target).names() == ["Bo"]


_FILE_SIZE_LIMIT = """
import os, resource, sys
import numpy as np
from pekit.memory import SqliteMemory
from pekit.types import Concept
path = sys.argv[1]
limit = os.path.getsize(path) + 4096
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))  # ulimit -f: the file may not grow past it
try:
    with SqliteMemory(path) as memory:
        memory.add(Concept("Big", np.random.default_rng(0).normal(size=(2000, 8)).astype(np.float32), backbone="toy"))
except Exception as exc:
    print(type(exc).__name__, exc)
"""


def test_a_write_past_a_file_size_limit_is_named_and_loses_nothing(tmp_path: Path) -> None:
    """``ulimit -f`` makes SQLite's write fail with a bare "disk I/O error": pekit says what
    may have happened and what to do, and the memory keeps what it held."""
    import subprocess
    import sys

    path = tmp_path / "m.db"
    with SqliteMemory(path) as memory:
        memory.add(make("Bo"))
    done = subprocess.run([sys.executable, "-c", _FILE_SIZE_LIMIT, str(path)], capture_output=True, text=True,
                          timeout=120)
    assert done.stdout.startswith("MemoryFullError pekit cannot add concept 'Big': writing memory file"), done
    assert "file-size limit (ulimit -f)" in done.stdout and "Traceback" not in done.stderr
    with SqliteMemory(path) as memory:
        assert memory.names() == ["Bo"] and memory.get("Bo").views.shape == make("Bo").views.shape
