"""API keys: shown once, stored one-way hashed, revocable, shared by every process on the file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pekit.errors import InvalidInputError
from pekit.server.keys import KeyStore, RevokedKeyError, UnknownKeyError


def test_a_key_maps_to_its_user_and_only_its_hash_is_stored(tmp_path: Path) -> None:
    path = tmp_path / "keys.db"
    with KeyStore(path) as keys:
        token = keys.create("alice", label="phone")
        assert keys.verify(token).namespace == "alice"
        key_id, secret = token.split("_", 2)[1:]
        assert [(k.key_id, k.namespace, k.label, k.revoked) for k in keys.list()] == [(key_id, "alice", "phone", None)]
    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert secret.encode() not in stored and token.encode() not in stored


@pytest.mark.parametrize("bad", ["", "pk_", "nonsense", "pk_zzzzzzzzzzzz_" + "a" * 43, "pk_abcdefabcdef_short"])
def test_malformed_tokens_are_refused(bad: str) -> None:
    with pytest.raises(UnknownKeyError, match="malformed"):
        KeyStore(":memory:").verify(bad)


def test_a_wrong_secret_or_unknown_id_is_refused() -> None:
    keys = KeyStore(":memory:")
    token = keys.create("alice")
    prefix, key_id, secret = token.split("_", 2)
    wrong = f"{prefix}_{key_id}_{'B' if secret[0] != 'B' else 'C'}{secret[1:]}"
    for bad in (wrong, f"pk_{'0' * 12}_{secret}"):
        with pytest.raises(UnknownKeyError, match="not valid"):
            keys.verify(bad)


def test_revocation_is_seen_by_another_process_at_once(tmp_path: Path) -> None:
    one, two = KeyStore(tmp_path / "keys.db"), KeyStore(tmp_path / "keys.db")
    a1, a2, b = one.create("alice"), one.create("alice"), one.create("bob")
    assert two.verify(a1).namespace == "alice"
    assert [k.namespace for k in two.revoke(a1.split("_")[1])] == ["alice"]
    with pytest.raises(RevokedKeyError):
        one.verify(a1)
    assert one.verify(a2).namespace == "alice"
    assert {k.key_id for k in one.revoke("user:alice")} == {a2.split("_")[1]}
    with pytest.raises(RevokedKeyError):
        two.verify(a2)
    assert two.verify(b).namespace == "bob"
    with pytest.raises(InvalidInputError, match="no active key"):
        one.revoke("user:alice")


@pytest.mark.parametrize("user", ["", "../x", "a/b", "a b", "x" * 65, "-dash"])
def test_user_names_must_be_plain(user: str) -> None:
    with pytest.raises(InvalidInputError, match="user name"):
        KeyStore(":memory:").create(user)


def test_the_keys_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pekit.cli import main

    path = str(tmp_path / "k.db")
    assert main(["keys", "create", "alice", "--keys", path, "--json"]) == 0
    created: dict[str, Any] = json.loads(capsys.readouterr().out)
    assert created["user"] == "alice" and KeyStore(path).verify(created["key"]).namespace == "alice"
    assert main(["keys", "list", "--keys", path]) == 0
    listed = capsys.readouterr().out
    secret = created["key"].split("_", 2)[2]  # everything after pk_<id>_ (the secret may hold "_")
    assert "alice" in listed and "active" in listed and secret not in listed
    key_id = created["key"].split("_")[1]
    assert main(["keys", "revoke", key_id, "--keys", path]) == 0
    assert f"revoked {key_id}" in capsys.readouterr().out
    assert main(["keys", "revoke", key_id, "--keys", path]) == 2
    assert "no active key" in capsys.readouterr().err
    assert main(["keys", "create", "../x", "--keys", path]) == 2


def test_the_default_key_file_sits_beside_the_memory(tmp_path: Path) -> None:
    from pekit.server.app import keys_path_for

    assert keys_path_for(str(tmp_path / "concepts.db")) == str(tmp_path / "concepts.keys.db")
    assert keys_path_for((tmp_path / "a.db").as_uri()) == str(tmp_path / "a.keys.db")
    assert keys_path_for("postgresql://pekit@localhost/pekit").endswith("keys.db")


@pytest.mark.parametrize("sqlite_says", ["database or disk is full", "disk I/O error"])
def test_a_key_file_on_a_full_disk_says_so_and_a_new_one_leaves_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], sqlite_says: str) -> None:
    """The key file is fine and --keys is not wrong: the disk has no room (even `keys list`
    writes a -shm file beside a WAL file). Exit 11 (an output could not be written), and a
    `keys create` of a new file in a new folder leaves neither behind."""
    import sqlite3

    from pekit.cli import main
    from pekit.errors import OutputError

    class NoRoom(sqlite3.Connection):
        def execute(self, sql: str, *args: Any) -> Any:
            if sql.startswith("PRAGMA journal_mode"):
                raise sqlite3.OperationalError(sqlite_says)
            return super().execute(sql, *args)

    real = sqlite3.connect
    monkeypatch.setattr(sqlite3, "connect", lambda *a, **k: real(*a, **k, factory=NoRoom))
    path = tmp_path / "new" / "keys.db"
    with pytest.raises(OutputError, match=r"its disk may be full .*free some space"):
        KeyStore(path)
    assert not (tmp_path / "new").exists()
    assert main(["keys", "create", "dave", "--keys", str(path)]) == 11
    err = capsys.readouterr().err
    assert "free some space" in err and "pass another --keys" not in err and not (tmp_path / "new").exists()


def test_the_keys_command_works_without_the_server_extra(tmp_path: Path) -> None:
    """`pekit keys` manages a file of hashed keys: it needs neither fastapi nor uvicorn (an
    operator may create keys on a machine that does not serve), and never a traceback."""
    import subprocess
    import sys

    code = ("import sys; sys.modules.update(fastapi=None, uvicorn=None, starlette=None)\n"
            "from pekit.cli import main; sys.exit(main(['keys', *sys.argv[1:]]))")
    path = str(tmp_path / "keys.db")
    made = subprocess.run([sys.executable, "-c", code, "create", "alice", "--keys", path], capture_output=True,
                          text=True, timeout=120)
    assert made.returncode == 0 and made.stdout.startswith("pk_") and "Traceback" not in made.stderr, made
    listed = subprocess.run([sys.executable, "-c", code, "list", "--keys", path], capture_output=True, text=True,
                            timeout=120)
    assert listed.returncode == 0 and "alice" in listed.stdout and "active" in listed.stdout, listed
