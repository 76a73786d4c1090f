"""What only the PostgreSQL store has: schema versions, schemas, the per-namespace HNSW index,
lost connections. The protocol itself is tested for every store in test_conformance.py."""

from __future__ import annotations

import itertools
import time
from typing import Any

import numpy as np
import psycopg
import pytest

import pekit.memory.pgvector as pg
from pekit.errors import BackboneMismatchError, MemoryFileError, MemoryStoreError, SchemaError
from pekit.memory import open_memory
from pekit.memory._pg_schema import SCHEMA_VERSION
from pekit.memory._pgconn import split_uri
from pekit.memory._search import exact_search
from pekit.types import Concept

_n = itertools.count()


@pytest.fixture
def uri(postgres_uri: str) -> str:
    """A fresh schema on the session's server."""
    return f"{postgres_uri}&schema=pg{next(_n)}"


def unit(n: int, seed: int, d: int = 8) -> np.ndarray:
    a = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def sql(uri: str, query: str) -> list[tuple]:
    dsn, _ = split_uri(uri)
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(query)
        return cur.fetchall() if cur.description else []


def test_schema_version_table_and_a_newer_schema_is_refused(uri: str) -> None:
    schema = split_uri(uri)[1]
    with open_memory(uri) as memory:
        memory.add(Concept("Bo", unit(1, 0), backbone="toy"))
    assert [r[0] for r in sql(uri, f"SELECT version FROM {schema}.schema_version")] == list(
        range(1, SCHEMA_VERSION + 1))
    sql(uri, f"INSERT INTO {schema}.schema_version VALUES ({SCHEMA_VERSION + 1}, 0)")
    with pytest.raises(SchemaError, match="newer pekit") as refused:
        open_memory(uri)
    assert "`pip install -U pekit-vlm`" in str(refused.value)  # `pekit` on PyPI is another project
    with pytest.raises(SchemaError, match="newer pekit"):
        open_memory(uri, read_only=True)


def test_an_empty_database_is_created_only_when_writable(uri: str) -> None:
    schema = split_uri(uri)[1]
    with pytest.raises(MemoryFileError, match="does not exist yet"):
        open_memory(uri, must_exist=True)
    with pytest.raises(MemoryFileError, match="read-only"):
        open_memory(uri, read_only=True)
    assert sql(uri, f"SELECT to_regclass('{schema}.concepts')") == [(None,)]  # nothing was created
    with open_memory(uri) as memory:
        assert memory.count() == 0
    with open_memory(uri, must_exist=True, read_only=True) as memory:
        assert memory.count() == 0 and memory.schema == schema


def test_schemas_of_one_database_are_separate_memories(postgres_uri: str) -> None:
    i = next(_n)
    with open_memory(f"{postgres_uri}&schema=a{i}") as a, open_memory(postgres_uri, schema=f"b{i}") as b:
        a.add(Concept("Bo", unit(1, 0), backbone="dinov2"))
        b.add(Concept("Bo", unit(1, 1, d=4), backbone="clip"))
        with pytest.raises(BackboneMismatchError):
            a.add(Concept("Rex", unit(1, 2, d=4), backbone="clip"))
        assert (a.backbone, a.dim, b.backbone, b.dim) == ("dinov2", 8, "clip", 4)


def test_large_namespaces_are_searched_exactly_in_process_and_follow_writes(
        uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pg, "ANN_MIN_VIEWS", 60)
    views = unit(100, 0, d=32)
    with open_memory(uri) as memory, open_memory(uri) as other:
        big = [c.id for c in memory.add_many([Concept(f"c{i}", v, backbone="toy", namespace="family")
                                              for i, v in enumerate(views)])]
        queries = unit(10, 1, d=32) * 0.3 + views[:10]
        ids, scores = memory.search(queries, namespace="family", k=3)
        want, want_scores = exact_search(views, np.array(big), queries / np.linalg.norm(queries, axis=1,
                                                                                        keepdims=True), k=3)
        assert (ids == want).all() and np.allclose(scores, want_scores, atol=1e-6)
        assert "family" in memory._views and not memory._indexed  # in this process, no index
        new = other.add(Concept("new", unit(1, 9, d=32), backbone="toy", namespace="family"))
        assert memory.search(unit(1, 9, d=32), namespace="family")[0][0, 0] == new.id  # another writer's add
        other.remove("c0", namespace="family")
        assert memory.search(views[0], namespace="family")[0][0, 0] != big[0]


def test_with_ann_large_namespaces_get_their_own_hnsw_index(uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pg, "ANN_MIN_VIEWS", 60)
    views = unit(100, 0, d=32)
    with open_memory(uri, ann=True) as memory:
        big = [memory.add(Concept(f"c{i}", v, backbone="toy", namespace="family")).id for i, v in enumerate(views)]
        small = [memory.add(Concept(f"c{i}", v, backbone="toy", namespace="solo")).id for i, v in enumerate(views[:5])]
        schema = memory.schema
        queries = unit(10, 1, d=32) * 0.3 + views[:10]
        ids, scores = memory.search(queries, namespace="family", k=3)
        memory.search(queries, namespace="solo")
        indexes = {r[0]: r[1] for r in sql(uri, f"SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = "
                                                f"'{schema}' AND indexname LIKE 'views_ann_%'")}
        assert len(indexes) == 1 and "hnsw" in next(iter(indexes.values())) and "'family'" in next(
            iter(indexes.values()))  # the small namespace is scanned exactly, without an index
        index = next(iter(indexes))
        stats = f"SELECT idx_scan FROM pg_stat_user_indexes WHERE schemaname = '{schema}' AND indexrelname = '{index}'"
        memory._db.connection().execute("SELECT pg_stat_force_next_flush()")  # statistics: now, not in 10 s
        deadline = time.monotonic() + 5
        while sql(uri, stats)[0][0] < len(queries) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert sql(uri, stats)[0][0] >= len(queries)  # every search of the namespace used its index
        owners = np.array(big)
        want, want_scores = exact_search(views, owners, queries / np.linalg.norm(queries, axis=1, keepdims=True), k=3)
        assert (ids[:, 0] == want[:, 0]).all() and np.allclose(scores[:, 0], want_scores[:, 0], atol=1e-5)
        # the index is kept up to date by later writes, and stays inside its namespace
        new = memory.add(Concept("new", unit(1, 9, d=32), backbone="toy", namespace="family"))
        assert memory.search(unit(1, 9, d=32), namespace="family")[0][0, 0] == new.id
        assert set(memory.search(views[:5], namespace="solo")[0][:, 0].tolist()) == set(small)


def test_a_lost_connection_is_a_clear_error_then_reconnects(uri: str) -> None:
    with open_memory(uri) as memory:
        memory.add(Concept("Bo", unit(1, 0), backbone="toy"))
        pid = memory._db.connection().info.backend_pid
        sql(uri, f"SELECT pg_terminate_backend({pid})")
        with pytest.raises(MemoryStoreError, match="lost the connection"):
            memory.count()
        assert memory.count() == 1  # the next call connects again


def test_a_full_server_disk_or_a_server_limit_is_not_a_lost_connection(uri: str) -> None:
    schema = split_uri(uri)[1]
    with open_memory(uri) as memory:
        memory.add(Concept("Bo", unit(1, 0), backbone="toy"))
        # a namespace over PostgreSQL's b-tree row limit (~2.7 kB): the server refuses it, on a working connection
        rng = np.random.default_rng(0)
        huge = "".join(chr(c) for c in rng.integers(ord("a"), ord("z") + 1, 5000))
        with pytest.raises(MemoryStoreError) as caught:
            memory.add(Concept("Bo", unit(1, 1), backbone="toy", namespace=huge))
        assert "lost the connection" not in str(caught.value) and "\n" not in str(caught.value)
        # the server's disk filling up as it writes (what "could not extend file" raises)
        sql(uri, f"""CREATE FUNCTION {schema}.no_space() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
            RAISE EXCEPTION 'could not extend file: No space left on device' USING ERRCODE = 'disk_full',
            HINT = 'Check free disk space.'; END $$""")
        sql(uri, f"CREATE TRIGGER no_space BEFORE INSERT ON {schema}.views FOR EACH ROW "
                 f"EXECUTE FUNCTION {schema}.no_space()")
        with pytest.raises(MemoryStoreError, match=r"disk of the PostgreSQL server .* is full") as caught:
            memory.add(Concept("Rex", unit(1, 2), backbone="toy"))
        assert "lost the connection" not in str(caught.value) and "\n" not in str(caught.value)
        assert memory.names() == ["Bo"]


def test_password_never_shows_in_messages(postgres_uri: str) -> None:
    with pytest.raises(MemoryStoreError) as caught:
        open_memory("postgresql://bo:hunter2@127.0.0.1:1/pekit")
    assert "hunter2" not in str(caught.value) and "bo:***@" in str(caught.value)


def test_cli_list_and_forget_on_a_postgresql_memory(uri: str) -> None:
    import json
    import subprocess
    import sys

    from .conftest import subprocess_env

    def pekit(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "pekit.cli", *args, "--memory", uri], capture_output=True,
                              text=True, env=subprocess_env(), timeout=120)

    missing = pekit("list")  # a named memory that does not exist is an error, not an empty list
    assert missing.returncode == 7 and "does not exist yet" in missing.stderr and "Traceback" not in missing.stderr
    with open_memory(uri) as memory:
        memory.add(Concept("Bo", unit(2, 0), category="dog", backbone="toy"))
        memory.add(Concept("Rex", unit(1, 1), backbone="toy", namespace="bob"))
    listed = pekit("list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [(r["name"], r["category"], r["views"]) for r in json.loads(listed.stdout)] == [("Bo", "dog", 2)]
    assert pekit("forget", "Rex").returncode == 4  # bob's concept is not in the default namespace
    assert pekit("forget", "Bo").returncode == 0
    with open_memory(uri) as memory:
        assert memory.count() == 1 and memory.namespaces() == ["bob"]


def test_two_personalizers_share_a_postgresql_memory(uri: str, make_personalizer: Any, chelsea: np.ndarray,
                                                     coffee: np.ndarray) -> None:
    """Two workers on one server: what one introduces or forgets, the other sees at once."""
    a, b = make_personalizer(memory=uri), make_personalizer(memory=uri)
    a.introduce("cat", chelsea, category="cat")
    assert b.recognize(np.ascontiguousarray(chelsea[:, ::-1])).name.tolist() == ["cat"]
    a.introduce("cup", coffee, category="cup")
    assert "cup" in b.recognize(coffee).name.tolist()  # b's gallery cache followed a's write
    a.forget("cat")
    assert "cat" not in b.recognize(chelsea).name.tolist()
    assert b.for_namespace("bob").recognize(coffee).name.tolist() == []  # another owner sees nothing


def test_a_meta_table_that_lost_the_backbone_is_never_overwritten(uri: str) -> None:
    """An add of another backbone and width must not re-record the settings of a memory
    that holds concepts (it would alter the vector column and orphan every concept)."""
    schema = split_uri(uri)[1]
    with open_memory(uri) as memory:
        memory.add(Concept("Bo", unit(2, 0), backbone="toy"))
    sql(uri, f"DELETE FROM {schema}.meta WHERE key = 'backbone'")
    with open_memory(uri) as memory:
        with pytest.raises(MemoryFileError, match="lost the backbone"):
            memory.add(Concept("Other", unit(1, 1, d=16), backbone="another-backbone"))
        assert [c.name for c in memory.concepts()] == ["Bo"] and memory.get("Bo").dim == 8


def test_meta_with_a_nul_character_is_refused_and_the_listing_keeps_working(uri: str) -> None:
    from pekit.errors import InvalidInputError

    with open_memory(uri) as memory:
        with pytest.raises(InvalidInputError, match="NUL character"):
            memory.add(Concept("Nul", unit(1, 0), backbone="toy", meta={"x": "a\x00b"}))
        memory.add(Concept("Bo", unit(1, 0), backbone="toy"))
        assert [s.name for s in memory.summaries()] == ["Bo"]


def test_postgres_errors_say_whether_a_retry_helps() -> None:
    """As for SQLite: a lock, a deadlock or a lost connection is worth a retry (the service's
    503 + Retry-After), a full disk is not (507), anything else is a failure (500)."""
    from pekit import errors
    from pekit.memory._pgconn import PgConnection
    from pekit.server.errors import status_of

    conn = object.__new__(PgConnection)  # the translation only: no server
    conn._psycopg, conn.label, conn.timeout = psycopg, "postgresql://db/pekit", 5.0
    cases = [(psycopg.errors.LockNotAvailable("lock"), errors.MemoryLockedError, 503),
             (psycopg.errors.DeadlockDetected("deadlock"), errors.MemoryLockedError, 503),
             (psycopg.OperationalError("server closed the connection unexpectedly"), errors.MemoryRetryError, 503),
             (psycopg.errors.DiskFull("no space left on device"), errors.MemoryFullError, 507),
             (psycopg.errors.UndefinedTable("no table"), errors.MemoryStoreError, 500)]
    for exc, kind, status in cases:
        got = conn.error(exc, "add concept 'Bo'")
        assert type(got) is kind and status_of(got) == status, (exc, got)
