"""Bad input to ``pekit serve``, ``pekit keys`` and the API: a clear pekit error naming the problem
and what to do, refused before the server starts, and no stored data touched."""

from __future__ import annotations

import json
import logging
import socket
import sqlite3
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest

from .conftest import CAT_BOX, introduce


# ---- pekit serve: options checked before uvicorn starts -------------------------------------------
@pytest.fixture
def serve(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Any:
    """``serve(*argv)`` -> (exit code, stderr, uvicorn.run calls); uvicorn never really starts."""
    import uvicorn

    from pekit.server import context
    from pekit.server.app import CONFIG_ENV

    started: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: started.append({"app": app, **kw}))
    monkeypatch.setattr(context, "configure_logging", lambda **kw: None)  # keep pytest's log handlers
    monkeypatch.setenv(CONFIG_ENV, "")  # `--workers 2` sets it; restored after the test
    from pekit.server.protocol import HeadTimeoutH11

    monkeypatch.setattr(HeadTimeoutH11, "head_timeout_s", HeadTimeoutH11.head_timeout_s)  # serve sets it

    def run(*argv: str) -> tuple[int, str, list[dict[str, Any]]]:
        from pekit.cli import main

        args = list(argv)
        if "--memory" not in args:
            args += ["--memory", "memory://"]
        if "--keys" not in args:
            args += ["--keys", str(tmp_path / "keys.db")]
        if "--port" not in args:
            args += ["--port", "0"]  # any free port: the default 8080 may be taken on the test machine
        code = main(["serve", *args])
        return code, capsys.readouterr().err, started

    return run


@pytest.mark.parametrize("port", ["-1", "70000"])
def test_serve_refuses_a_port_out_of_range(serve: Any, port: str) -> None:
    code, err, started = serve("--port", port)
    assert code == 2 and "--port must be 0-65535" in err and "8080" in err and "Traceback" not in err, err
    assert started == []


def test_serve_refuses_a_port_in_use(serve: Any) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        code, err, started = serve("--port", str(busy.getsockname()[1]))
    assert code == 2 and "cannot listen on 127.0.0.1:" in err and "--port" in err, err
    assert started == []


@pytest.mark.parametrize(("argv", "code", "words"), [
    (["--lvlm", "bogus"], 8, "unknown lvlm 'bogus'; available: hf:<...>, none, openai:<...>"),
    (["--lvlm", "bogus", "--workers", "2"], 8, "unknown lvlm 'bogus'"),
    (["--lvlm", " "], 2, "the lvlm name is empty"),
    (["--preset", "nope"], 2, "unknown preset 'nope'; available: offline"),
    (["--preset", "nope", "--workers", "2"], 2, "unknown preset 'nope'"),
    # a known backend whose spec is wrong fails while the models load, before uvicorn starts
    (["--lvlm", "openai:http://localhost:9/v1"], 2, "no model name"),
])
def test_serve_refuses_unknown_backends_before_starting(serve: Any, argv: list[str], code: int,
                                                        words: str) -> None:
    got, err, started = serve(*argv)
    assert got == code and words in err and "Traceback" not in err, err
    assert started == []


@pytest.mark.parametrize(("argv", "words"), [
    (["--max-photo-mb", "0"], "--max-photo-mb must be more than 0"),
    (["--max-photo-mb", "-5"], "--max-photo-mb must be more than 0"),
    (["--max-photo-mb", "nan"], "--max-photo-mb must be more than 0"),
    (["--max-photo-mb", "inf"], "--max-photo-mb must be more than 0"),
    (["--max-photo-mb", "1e-9"], "--max-photo-mb must be more than 0"),  # 0 bytes once rounded
    (["--max-photos", "0"], "--max-photos must be at least 1"),
    (["--threads", "0"], "--threads must be at least 1"),
    (["--workers", "0"], "--workers must be at least 1"),
    (["--queue", "-1"], "--queue must be at least 0"),
    (["--max-connections", "0"], "--max-connections must be at least 1"),
    (["--body-timeout", "0"], "--body-timeout must be a number of seconds above 0"),
    (["--body-timeout", "nan"], "--body-timeout must be a number of seconds above 0"),
    (["--body-timeout", "inf"], "--body-timeout must be a number of seconds above 0"),
])
def test_serve_refuses_numbers_that_refuse_every_request(serve: Any, argv: list[str], words: str) -> None:
    code, err, started = serve(*argv)
    assert code == 2 and words in err and "default" in err, err
    assert started == []


def test_serve_starts_with_good_numbers_and_fits_a_large_photo_in_the_body_limit(serve: Any) -> None:
    code, err, started = serve("--max-photo-mb", "100", "--max-photos", "1", "--queue", "0", "--body-timeout", "5",
                               "--max-connections", "7")
    assert code == 0, err
    limits = started[0]["app"].state.service.limits
    assert limits.max_photo_bytes == 100 * 1024 * 1024 and limits.max_photos == 1 and limits.body_timeout_s == 5
    assert started[0]["limit_concurrency"] == 7  # uvicorn answers 503 past that many connections
    # a request head gets the body's wait too (a client that never finishes its headers is cut)
    assert started[0]["http"].__name__ == "HeadTimeoutH11" and started[0]["http"].head_timeout_s == 5
    assert limits.max_body_bytes > limits.max_photo_bytes  # a photo at the limit is not refused as a body
    started[0]["app"].state.service.close()


def test_serve_passes_lvlm_options_to_its_lvlm(serve: Any) -> None:
    code, err, started = serve("--lvlm", "openai:http://127.0.0.1:9/v1#m", "--lvlm-option", "timeout=300",
                               "--lvlm-option", "retries=0")
    assert code == 0, err
    lvlm = started[0]["app"].state.service.personalizer.lvlm
    assert (lvlm.timeout, lvlm.retries) == (300, 0)
    started[0]["app"].state.service.close()


def test_limits_and_pool_refuse_zero() -> None:
    from pekit.errors import InvalidInputError
    from pekit.server.limits import Limits
    from pekit.server.queue import BoundedExecutor

    for bad in ({"max_photos": 0}, {"max_photo_bytes": -1}, {"max_body_bytes": 0}):
        with pytest.raises(InvalidInputError, match="at least 1"):
            Limits(**bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="queue at least 0"):
        BoundedExecutor(workers=1, queue=-1)


# ---- the key file of serve and keys ------------------------------------------------------------------
def test_serve_refuses_keys_in_a_missing_folder_and_creates_nothing(serve: Any, tmp_path: Path) -> None:
    keys = tmp_path / "nonexist" / "dir" / "k.db"
    code, err, started = serve("--keys", str(keys))
    assert code == 2 and "does not exist" in err and "--keys" in err, err
    assert not (tmp_path / "nonexist").exists() and started == []


def test_serve_creates_a_missing_key_file_and_warns(serve: Any, tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    keys = tmp_path / "new.keys.db"
    code, err, started = serve("--keys", str(keys), "--workers", "2")
    assert code == 0, err
    assert keys.exists() and len(started) == 1
    assert "no active API key" in caplog.text and "pekit keys create USER" in caplog.text


def test_serve_refuses_the_memory_file_as_key_file(serve: Any, tmp_path: Path) -> None:
    memory = str(tmp_path / "m.db")
    code, err, started = serve("--memory", memory, "--keys", memory)
    assert code == 2 and "is the memory file" in err and "m.keys.db" in err, err
    assert not Path(memory).exists() and started == []


def _tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_keys_refuse_a_memory_file_and_leave_it_untouched(client: Any, alice: dict[str, str],
                                                          photos: dict[str, bytes], tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    from pekit.cli import main

    assert introduce(client, alice, "Tom", photos["cat"], CAT_BOX).status_code == 201
    memory = tmp_path / "memory.db"
    before = _tables(memory)
    assert "concepts" in before
    for argv in (["keys", "list"], ["keys", "create", "alice"], ["keys", "revoke", "user:alice"]):
        assert main([*argv, "--keys", str(memory)]) == 2
        err = capsys.readouterr().err
        assert "is not a key file: it is a pekit memory" in err and "separate file" in err, err
    assert _tables(memory) == before  # no api_keys table added
    assert client.app.state.service.personalizer.memory.get("Tom", namespace="alice").name == "Tom"


def test_keys_refuse_another_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pekit.cli import main

    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE t (x)")
    for argv in (["keys", "create", "alice"], ["keys", "list"]):
        assert main([*argv, "--keys", str(other)]) == 2
        assert "another database (tables t)" in capsys.readouterr().err
    assert _tables(other) == {"t"}
    with sqlite3.connect(other) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # not switched to WAL


def test_keys_list_and_revoke_create_no_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pekit.cli import main

    missing = tmp_path / "sub" / "keys.db"
    assert main(["keys", "list", "--keys", str(missing)]) == 0
    assert "no keys" in capsys.readouterr().out
    assert main(["keys", "list", "--keys", str(missing), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["keys", "revoke", "user:alice", "--keys", str(missing)]) == 2
    assert "no key file" in capsys.readouterr().err
    assert not missing.exists() and not missing.parent.exists()
    assert main(["keys", "create", "alice", "--keys", str(missing)]) == 0  # create makes the file and folder
    assert missing.exists()


# ---- the API: messages name the upload and the empty field ------------------------------------------
def _png_0x0() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 0, 0, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b""))
            + chunk(b"IEND", b""))


def test_a_0x0_png_is_named_by_its_upload_not_a_python_repr(client: Any, alice: dict[str, str]) -> None:
    for path, kwargs, label in (
        ("/v1/concepts", {"data": {"name": "X"}, "files": [("photos", ("zero.png", _png_0x0(), "image/png"))]},
         "photo 1 (zero.png)"),
        ("/v1/recognize", {"files": {"photo": ("zero.png", _png_0x0(), "image/png")}}, "the photo (zero.png)"),
    ):
        r = client.post(path, headers=alice, **kwargs)
        message = r.json()["error"]["message"]
        assert r.status_code == 422 and label in message and "send a" in message, message
        assert "object at 0x" not in message and "BytesIO" not in message
    assert client.app.state.service.personalizer.memory.count() == 0


def test_a_photo_damaged_after_its_header_is_named_by_its_upload(client: Any, alice: dict[str, str],
                                                                photos: dict[str, bytes]) -> None:
    cut = photos["cat"][:3000]  # a readable JPEG header, then nothing
    r = client.post("/v1/recognize", headers=alice, files={"photo": ("cut.jpg", cut, "image/jpeg")})
    message = r.json()["error"]["message"]
    assert r.status_code == 422 and "the photo (cut.jpg)" in message and "bytes>" not in message, message


@pytest.mark.parametrize(("path", "data", "words"), [
    ("/v1/concepts", {"name": ""}, "name is empty; send the concept's name"),
    ("/v1/ask", {"question": ""}, "question is empty; send a question"),
    ("/v1/ask", {}, "question is missing; send a question"),
])
def test_an_empty_name_or_question_says_so(client: Any, alice: dict[str, str], photos: dict[str, bytes],
                                           path: str, data: dict[str, str], words: str) -> None:
    field = "photos" if path == "/v1/concepts" else "photo"
    r = client.post(path, headers=alice, data=data, files=[(field, ("cat.jpg", photos["cat"], "image/jpeg"))])
    message = r.json()["error"]["message"]
    assert r.status_code == 422 and words in message and "Field required" not in message, message
    assert client.app.state.service.personalizer.memory.count() == 0


def test_serve_with_a_bad_memory_uri_creates_no_key_file(serve: Any, tmp_path: Path) -> None:
    keys = tmp_path / "k.db"
    code, err, started = serve("--memory", "bogus://x", "--keys", str(keys))
    assert code == 7 and "unknown memory URI scheme 'bogus'" in err, err
    assert not keys.exists() and started == []


@pytest.mark.parametrize("filename", ["cat\x1b[31m.jpg", "x" * 300 + ".jpg", "cat\u202egpj.exe", "ca\u200bt.jpg"])
def test_an_upload_name_with_control_characters_or_too_long_is_refused(client: Any, alice: dict[str, str],
                                                                      photos: dict[str, bytes],
                                                                      filename: str) -> None:
    # U+202E (right-to-left override) shows 'cat\u202egpj.exe' as 'catexe.jpg'
    r = client.post("/v1/concepts", headers=alice, data={"name": "Tom"},
                    files=[("photos", (filename, photos["cat"], "image/jpeg"))])
    assert r.status_code == 400 and "control or invisible characters" in r.json()["error"]["message"], r.text
    assert client.app.state.service.personalizer.memory.count() == 0


# ---- found by an adversarial review of the API ---------------------------------------------------------
@pytest.mark.parametrize(("boxes", "words"), [
    ("[[0, 0, " + "9" * 400 + ", 100]]", "four finite pixel coordinates"),  # JSON has no int limit
    ("[[true, 0, 100, 100]]", "four numbers [x0, y0, x1, y1] in pixels"),
    ("[[[0, 0], [100, 100]]]", "four numbers [x0, y0, x1, y1] in pixels"),
])
def test_a_box_json_allows_but_no_photo_has_is_a_422(client: Any, alice: dict[str, str], photos: dict[str, bytes],
                                                     boxes: str, words: str) -> None:
    r = client.post("/v1/concepts", headers=alice, data={"name": "Tom", "boxes": boxes},
                    files=[("photos", ("cat.jpg", photos["cat"], "image/jpeg"))])
    assert r.status_code == 422 and words in r.json()["error"]["message"], r.text
    assert client.app.state.service.personalizer.memory.count() == 0


def test_any_method_token_is_one_metrics_label(client: Any) -> None:
    for i in range(3):
        client.request(f"M{i}X", "/healthz")
    text = client.get("/metrics").text
    assert 'method="other"' in text and 'method="M0X"' not in text


def test_a_405_lists_every_method_the_path_takes(client: Any, alice: dict[str, str]) -> None:
    r = client.put("/v1/concepts/Rex", headers=alice)
    assert r.status_code == 405 and set(r.headers["allow"].split(", ")) == {"GET", "PATCH", "DELETE"}, r.headers
    r = client.delete("/v1/concepts", headers=alice)
    assert r.status_code == 405 and set(r.headers["allow"].split(", ")) == {"GET", "POST"}, r.headers


def test_health_and_the_page_answer_head(client: Any) -> None:
    assert client.head("/healthz").status_code == 200 and client.head("/").status_code == 200
    assert "head" not in client.get("/openapi.json").json()["paths"]["/healthz"]


def test_replace_keeps_category_and_context_unless_given(client: Any, alice: dict[str, str],
                                                         photos: dict[str, bytes]) -> None:
    assert introduce(client, alice, "Tom", photos["cat"], CAT_BOX, category="cat",
                     context="the neighbour's cat").status_code == 201
    r = introduce(client, alice, "tom", photos["cat"], CAT_BOX, replace="true")
    assert r.status_code == 201, r.text
    assert (r.json()["category"], r.json()["context"]) == ("cat", "the neighbour's cat")


def test_delete_answers_the_name_as_stored(client: Any, alice: dict[str, str], photos: dict[str, bytes]) -> None:
    assert introduce(client, alice, "Tom", photos["cat"], CAT_BOX).status_code == 201
    r = client.delete("/v1/concepts/tom", headers=alice)
    assert r.status_code == 200 and r.json() == {"forgotten": "Tom"}


@pytest.mark.parametrize("body", [{"category": "cat\x1b[2J"}, {"context": "hi\u202eereh"}])
def test_patch_refuses_control_characters_and_changes_nothing(client: Any, alice: dict[str, str],
                                                             photos: dict[str, bytes], body: dict[str, str]) -> None:
    before = introduce(client, alice, "Tom", photos["cat"], CAT_BOX, category="cat").json()
    r = client.patch("/v1/concepts/Tom", headers=alice, json=body)
    assert r.status_code == 422 and "control character" in r.json()["error"]["message"], r.text
    assert client.get("/v1/concepts/Tom", headers=alice).json() == before


def test_a_patch_that_changes_nothing_writes_nothing(client: Any, alice: dict[str, str],
                                                    photos: dict[str, bytes]) -> None:
    before = introduce(client, alice, "Tom", photos["cat"], CAT_BOX, category="cat").json()
    for body in ({}, {"context": None}, {"category": "cat"}):
        r = client.patch("/v1/concepts/Tom", headers=alice, json=body)
        assert r.status_code == 200 and r.json()["updated"] == before["updated"], (body, r.text)


def test_a_question_with_a_terminal_escape_is_refused(client: Any, alice: dict[str, str],
                                                     photos: dict[str, bytes]) -> None:
    r = client.post("/v1/ask", headers=alice, data={"question": "hi\x1b[31m"},
                    files={"photo": ("c.jpg", photos["cat"], "image/jpeg")})
    assert r.status_code == 422 and "control character U+001B" in r.json()["error"]["message"], r.text


def test_the_same_photo_twice_is_said_in_the_answer(client: Any, alice: dict[str, str],
                                                    photos: dict[str, bytes]) -> None:
    files = [("photos", ("a.jpg", photos["cat"], "image/jpeg")), ("photos", ("b.jpg", photos["cat"], "image/jpeg"))]
    r = client.post("/v1/concepts", headers=alice, data={"name": "Tom", "boxes": f"[{CAT_BOX}, {CAT_BOX}]"},
                    files=files)
    assert r.status_code == 201 and r.json()["same_pictures"] == [[1, 2]], r.text


@pytest.mark.parametrize(("request_kw", "words"), [
    ({"data": {"threshold": "nan"}, "files": {"photo": ("c.jpg", b"x", "image/jpeg")}}, "finite number"),
    ({"data": {"photo": "not a file"}}, "photo must be a file (multipart: curl -F photo=@photo.jpg)"),
])
def test_clear_words_for_a_nan_threshold_and_a_photo_sent_as_text(client: Any, alice: dict[str, str],
                                                                  request_kw: dict[str, Any], words: str) -> None:
    r = client.post("/v1/recognize", headers=alice, **request_kw)
    assert r.status_code == 422 and words in r.json()["error"]["message"], r.text


def test_a_malformed_json_body_is_said_so(client: Any, alice: dict[str, str], photos: dict[str, bytes]) -> None:
    introduce(client, alice, "Tom", photos["cat"], CAT_BOX)
    r = client.patch("/v1/concepts/Tom", headers={**alice, "Content-Type": "application/json"}, content=b"{oops")
    assert r.status_code == 422 and "not valid JSON" in r.json()["error"]["message"], r.text


@pytest.mark.parametrize(("path", "field"), [("/v1/recognize", "photo"), ("/v1/concepts", "photos")])
def test_a_photo_sent_as_the_raw_body_is_told_to_send_a_form(client: Any, alice: dict[str, str],
                                                             photos: dict[str, bytes], path: str, field: str) -> None:
    big = photos["cat"] * 4  # past the JSON body limit: it must not be answered as too large
    for body in (photos["cat"], big):
        r = client.post(path, headers={**alice, "Content-Type": "image/jpeg"}, content=body)
        assert r.status_code == 415, r.text
        message = r.json()["error"]["message"]
        assert "multipart/form-data" in message and f"-F {field}=@" in message and "image/jpeg" in message
    assert client.get("/v1/concepts", headers=alice).json() == []  # nothing was introduced


def test_a_patch_sent_as_text_is_told_to_send_json(client: Any, alice: dict[str, str],
                                                    photos: dict[str, bytes]) -> None:
    introduce(client, alice, "Tom", photos["cat"], CAT_BOX, context="my cat")
    r = client.patch("/v1/concepts/Tom", headers={**alice, "Content-Type": "text/plain"}, content=b'{"context": "x"}')
    assert r.status_code == 415 and "Content-Type: application/json" in r.json()["error"]["message"], r.text
    assert client.get("/v1/concepts/Tom", headers=alice).json()["context"] == "my cat"
    r = client.patch("/v1/concepts/Tom", headers=alice, json={"context": "the neighbour's"})
    assert r.status_code == 200 and r.json()["context"] == "the neighbour's"


def test_a_key_sent_as_the_request_id_is_not_echoed(client: Any, alice: dict[str, str]) -> None:
    token = alice["Authorization"].split()[1]
    r = client.get("/v1/me", headers={**alice, "X-Request-ID": token})
    assert r.status_code == 200 and r.headers["x-request-id"] != token
    assert client.get("/healthz", headers={"X-Request-ID": "job-42"}).headers["x-request-id"] == "job-42"


def test_serve_on_port_0_says_the_port_it_listens_on(serve: Any) -> None:
    code, _, started = serve("--port", "0")
    assert code == 0 and started and started[0]["port"] > 0


def test_a_photo_limit_past_what_a_file_read_takes_still_accepts_photos(make_app: Any, tmp_path: Path,
                                                                          photos: dict[str, bytes]) -> None:
    """`pekit serve --max-photo-mb 1e13` is a number it accepts: uploads are read, not a 500
    (reading limit + 1 bytes overflowed a file read's C size)."""
    from pekit.server.limits import Limits

    client = make_app(limits=Limits(max_photo_bytes=10**13 * 1024 * 1024))
    alice = {"Authorization": f"Bearer {client.app.state.service.keys.create('alice')}"}
    r = introduce(client, alice, "Bo", photos["cat"], CAT_BOX)
    assert r.status_code == 201, r.text
    r = client.post("/v1/recognize", headers=alice, data={"annotate": "false"},
                    files=[("photo", ("cat.jpg", photos["cat"], "image/jpeg"))])
    assert r.status_code == 200 and [d["name"] for d in r.json()["detections"]] == ["Bo"]


@pytest.mark.parametrize("path", ["/v1/recognize", "/v1/ask", "/v1/caption", "/v1/concepts/Mochi/views"])
def test_two_photos_where_one_is_taken_are_refused(client: Any, alice: dict[str, str], photos: dict[str, bytes],
                                                   path: str) -> None:
    """Which of two photos would be used is not the client's choice: a 400 saying to send
    one, and nothing stored."""
    assert introduce(client, alice, "Mochi", photos["cat"], CAT_BOX).status_code == 201
    before = client.get("/v1/concepts/Mochi", headers=alice).json()
    two = [("photo", ("a.jpg", photos["cat"], "image/jpeg")), ("photo", ("b.jpg", photos["cat"], "image/jpeg"))]
    r = client.post(path, headers=alice, data={"question": "Who?"} if path == "/v1/ask" else {}, files=two)
    message = r.json()["error"]["message"]
    assert r.status_code == 400 and "got 2 photos in the 'photo' field; this takes one" in message, message
    assert client.get("/v1/concepts/Mochi", headers=alice).json() == before
    one = client.post(path, headers=alice, data={"question": "Who?"} if path == "/v1/ask" else {}, files=two[:1])
    assert one.status_code in (200, 201), one.text


def test_the_access_log_escapes_controls_in_a_path(client: Any, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="pekit.server.access"):
        assert client.get("/v1/x%1b%5b31mRED%0aFAKE%20LINE%00").status_code == 404
    lines = [r.getMessage() for r in caplog.records if r.name == "pekit.server.access"]
    assert lines and all("\x1b" not in line and "\n" not in line and "\x00" not in line for line in lines)
    assert any("/v1/x\\x1b[31mRED\\nFAKE LINE\\x00" in line for line in lines), lines
