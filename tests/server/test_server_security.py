"""Isolation between users, and every bad request a 4xx JSON error that stores nothing."""

from __future__ import annotations

import dataclasses
import struct
import threading
import time
import zlib
from pathlib import Path
from typing import Any

import pytest

from pekit.errors import ConceptNotFoundError

from .conftest import CAT_BOX, auth, introduce


def _store(client: Any) -> Any:
    return client.app.state.service.personalizer.memory


def test_one_user_can_never_reach_another_users_concepts(client: Any, alice: dict[str, str], bob: dict[str, str],
                                                         photos: dict[str, bytes]) -> None:
    assert introduce(client, alice, "Tom", photos["cat"], CAT_BOX, context="alice's cat").status_code == 201
    tom = _store(client).get("Tom", namespace="alice")
    cat = {"photo": ("q.jpg", photos["cat"], "image/jpeg")}

    assert client.get("/v1/concepts", headers=bob).json() == []
    r = client.post("/v1/recognize", headers=bob, files=cat)
    assert r.status_code == 200 and r.json()["detections"] == []
    r = client.post("/v1/ask", headers=bob, files=cat, data={"question": "Who is this?"})
    assert "Tom" not in r.json()["prompt"] and "alice's cat" not in r.json()["prompt"]
    for target in ("Tom", "tom", str(tom.id), f"{tom.id}", "alice:Tom", "%2e%2e%2falice%2fTom"):
        assert client.get(f"/v1/concepts/{target}", headers=bob).status_code in (404, 422), target
        assert client.patch(f"/v1/concepts/{target}", headers=bob, json={"context": "mine"}).status_code in (404, 422)
        assert client.delete(f"/v1/concepts/{target}", headers=bob).status_code in (404, 422)
        r = client.post(f"/v1/concepts/{target}/views", headers=bob, files=cat)
        assert r.status_code in (404, 422), target
    # a namespace sent by the client is ignored: there is no such parameter
    assert client.get("/v1/concepts?namespace=alice", headers=bob).json() == []
    # bob may use the same name for his own concept
    assert introduce(client, bob, "Tom", photos["cup"]).status_code == 201

    after = _store(client).get("Tom", namespace="alice")
    assert (after.id, after.context, after.views.shape, after.updated) == (tom.id, tom.context, tom.views.shape,
                                                                         tom.updated)
    assert [c["name"] for c in client.get("/v1/concepts", headers=alice).json()] == ["Tom"]


def test_the_store_refuses_cross_namespace_reads_and_writes(client: Any, alice: dict[str, str],
                                                            photos: dict[str, bytes]) -> None:
    assert introduce(client, alice, "Tom", photos["cat"], CAT_BOX).status_code == 201
    memory = _store(client)
    tom = memory.get("Tom", namespace="alice")
    with pytest.raises(ConceptNotFoundError):
        memory.get("Tom", namespace="bob")
    with pytest.raises(ConceptNotFoundError):
        memory.remove("Tom", namespace="bob")
    # an update naming alice's concept id but bob's namespace must not move or change it
    with pytest.raises(ConceptNotFoundError):
        memory.update(dataclasses.replace(tom, namespace="bob", context="stolen"))
    assert memory.concepts(namespace="bob") == [] and memory.summaries(namespace="bob") == []
    assert memory.get("Tom", namespace="alice").context == tom.context


def _png_bomb(side: int = 20000) -> bytes:
    """A 1-bit ``side`` x ``side`` PNG of zeros: ~50 kB on the wire, 400 MP once decoded."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\0" * (1 + side // 8)
    z = zlib.compressobj(9)
    idat = b"".join(z.compress(row) for _ in range(side)) + z.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


BAD_REQUESTS = [
    # (case, method, path, keyword arguments, status, words in the message)
    ("not an image", "post", "/v1/concepts",
     {"data": {"name": "X"}, "files": [("photos", ("x.jpg", b"#!/bin/sh\nexit\n", "image/jpeg"))]},
     415, "not an image"),
    ("empty photo", "post", "/v1/concepts",
     {"data": {"name": "X"}, "files": [("photos", ("x.jpg", b"", "image/jpeg"))]}, 422, "empty"),
    ("truncated png", "post", "/v1/recognize", {"files": {"photo": ("x.png", b"\x89PNG\r\n\x1a\n\0\0", "image/png")}},
     422, "could not be read"),
    ("decompression bomb", "post", "/v1/concepts",
     {"data": {"name": "X"}, "files": [("photos", ("bomb.png", _png_bomb(), "image/png"))]}, 413, "pixels"),
    ("decompression bomb to recognize", "post", "/v1/recognize",
     {"files": {"photo": ("bomb.png", _png_bomb(), "image/png")}}, 413, "decompression bomb"),
    ("path-like name", "post", "/v1/concepts", {"data": {"name": "../x"}, "files": "cat"}, 422, "looks like a path"),
    ("slash in name", "post", "/v1/concepts", {"data": {"name": "a/b"}, "files": "cat"}, 422, "looks like a path"),
    ("path-like file name", "post", "/v1/concepts",
     {"data": {"name": "X"}, "files": [("photos", ("../../etc/x.jpg", b"", "image/jpeg"))]}, 400, "looks like a path"),
    ("control characters", "post", "/v1/concepts", {"data": {"name": "Bo\x1b[31m"}, "files": "cat"}, 422,
     "control character"),
    ("bad boxes", "post", "/v1/concepts", {"data": {"name": "X", "boxes": "[[1,2"}, "files": "cat"}, 422, "JSON"),
    ("tiny box", "post", "/v1/concepts", {"data": {"name": "X", "boxes": "[[1,2,3,4]]"}, "files": "cat"}, 422,
     "at least"),
    ("no photo", "post", "/v1/concepts", {"data": {"name": "X"}}, 422, "photos"),
    ("huge json", "patch", "/v1/concepts/X", {"content": b'{"context": "' + b"a" * 10_000_000 + b'"}',
                                              "headers": {"Content-Type": "application/json"}}, 413, "limit"),
    ("unknown field", "patch", "/v1/concepts/X", {"json": {"namespace": "bob"}}, 422, "namespace"),
    ("wrong method", "put", "/v1/concepts", {}, 405, "not allowed"),
    ("wrong method on recognize", "get", "/v1/recognize", {}, 405, "not allowed"),
    ("unknown route", "get", "/v1/nothing", {}, 404, "no such route"),
    ("bad threshold", "post", "/v1/recognize", {"data": {"threshold": "2"}, "files": "photo"}, 422, "threshold"),
]


@pytest.mark.parametrize(("case", "method", "path", "kwargs", "status", "words"), BAD_REQUESTS,
                         ids=[b[0] for b in BAD_REQUESTS])
def test_bad_requests_are_clear_4xx_and_store_nothing(client: Any, alice: dict[str, str], photos: dict[str, bytes],
                                                      case: str, method: str, path: str, kwargs: dict[str, Any],
                                                      status: int, words: str) -> None:
    kwargs = dict(kwargs)
    if kwargs.get("files") == "cat":
        kwargs["files"] = [("photos", ("cat.jpg", photos["cat"], "image/jpeg"))]
    elif kwargs.get("files") == "photo":
        kwargs["files"] = {"photo": ("cat.jpg", photos["cat"], "image/jpeg")}
    kwargs["headers"] = {**alice, **kwargs.get("headers", {})}
    r = client.request(method.upper(), path, **kwargs)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"]["status"] == status and body["request_id"] == r.headers["X-Request-ID"]
    assert words.lower() in body["error"]["message"].lower(), body
    assert _store(client).count() == 0


def test_a_heic_photo_is_read_with_pillow_heif_and_refused_clearly_without(
        client: Any, alice: dict[str, str], photos: dict[str, bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from PIL import Image

    from pekit import _image_formats as images

    pillow_heif = pytest.importorskip("pillow_heif", reason="the [heif] extra (in [dev]) reads HEIC")
    out = io.BytesIO()
    pillow_heif.from_pillow(Image.open(io.BytesIO(photos["cat"])).convert("RGB")).save(out, quality=90)
    heic = {"photo": ("cat.heic", out.getvalue(), "image/heic")}
    r = client.post("/v1/recognize", files=heic, headers=alice)
    assert r.status_code == 200, r.text
    monkeypatch.setattr(images, "_HEIF_OPENER", [False])  # a server without the plugin
    Image.init()  # every plugin in ID first: one loaded while ID is patched would be lost after it
    monkeypatch.setattr(Image, "ID", [k for k in Image.ID if k != "HEIF"])
    r = client.post("/v1/recognize", files=heic, headers=alice)
    assert r.status_code == 415 and "a HEIC photo, which this server cannot read" in r.json()["error"]["message"]


def test_upload_limits(make_app: Any, photos: dict[str, bytes]) -> None:
    from pekit.server.limits import Limits

    client = make_app(limits=Limits(max_photo_bytes=20_000, max_photos=2, max_body_bytes=100_000,
                                    max_pixels=200_000))
    alice = auth(client.app.state.service.keys.create("alice"))
    small = photos["cat"][:19_000]  # the photo's first bytes: still sniffs as a JPEG
    cases = [
        ([("photos", ("a.jpg", photos["cup"], "image/jpeg"))], 413, "per photo"),
        ([("photos", (f"{i}.jpg", small, "image/jpeg")) for i in range(3)], 413, "at most 2"),
        ([("photos", (f"{i}.jpg", small, "image/jpeg")) for i in range(6)], 413, "limit is 100000"),
    ]
    for files, status, words in cases:
        r = client.post("/v1/concepts", headers=alice, data={"name": "X"}, files=files)
        assert r.status_code == status and words in r.json()["error"]["message"], r.text
    assert _store(client).count() == 0


def test_a_chunked_upload_over_the_limit_is_refused_as_it_is_read(make_app: Any, photos: dict[str, bytes]) -> None:
    """A multipart upload without a length is counted as the app reads it (never buffered by
    the middleware): past the limit the client gets 413 and nothing is stored."""
    from pekit.server.limits import Limits

    client = make_app(limits=Limits(max_body_bytes=200_000, max_photo_bytes=150_000))
    key = client.app.state.service.keys.create("alice")
    boundary = "pekitboundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nBo\r\n--{boundary}\r\n"
            f"Content-Disposition: form-data; name=\"photos\"; filename=\"a.jpg\"\r\n"
            "Content-Type: image/jpeg\r\n\r\n").encode()
    def chunks() -> Any:
        yield head
        for _ in range(100):  # 100 x 10 kB: half of it is over the limit
            yield b"\xff" * 10_000

    r = client.post("/v1/concepts", headers={**auth(key), "Content-Type": f"multipart/form-data; boundary={boundary}"},
                    content=chunks())
    assert r.status_code == 413 and "limit is 200000 bytes" in r.json()["error"]["message"]
    assert _store(client).count() == 0


def test_a_chunked_body_over_the_limit_is_refused(client: Any, alice: dict[str, str]) -> None:
    def chunks() -> Any:
        for _ in range(200):
            yield b"x" * 1024

    r = client.patch("/v1/concepts/X", headers={**alice, "Content-Type": "application/json"}, content=chunks())
    assert r.status_code == 413 and "limit" in r.json()["error"]["message"]


@pytest.mark.parametrize(("headers", "words"), [
    ({}, "needs an API key"),
    ({"Authorization": "Bearer nonsense"}, "malformed"),
    ({"Authorization": "Basic YWxpY2U6cHc="}, "needs an API key"),
    ({"Authorization": "Bearer pk_000000000000_" + "A" * 43}, "not valid"),
])
def test_missing_or_invalid_keys_are_401(client: Any, headers: dict[str, str], words: str,
                                         photos: dict[str, bytes]) -> None:
    upload = {"data": {"name": "X"}, "files": [("photos", ("a.jpg", photos["cat"], "image/jpeg"))]}
    for method, path, kwargs in (("GET", "/v1/concepts", {}), ("DELETE", "/v1/concepts/X", {}),
                                 ("POST", "/v1/concepts", upload)):
        r = client.request(method, path, headers=headers, **kwargs)
        assert r.status_code == 401 and words in r.json()["error"]["message"], r.text
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert _store(client).count() == 0


def test_a_revoked_key_stops_working_at_once(client: Any, photos: dict[str, bytes]) -> None:
    keys = client.app.state.service.keys
    token = keys.create("alice")
    stolen = token[:-1] + ("A" if token[-1] != "A" else "B")  # right id, wrong secret
    assert client.get("/v1/concepts", headers=auth(token)).status_code == 200
    assert client.get("/v1/concepts", headers=auth(stolen)).status_code == 401
    keys.revoke(token.split("_")[1])
    r = introduce(client, auth(token), "Tom", photos["cat"], CAT_BOX)
    assert r.status_code == 401 and "revoked" in r.json()["error"]["message"]
    assert _store(client).count() == 0


class SlowPersonalizer:
    """A Personalizer whose recognize blocks until ``release`` is set (to fill the pool)."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.started, self.release = inner, threading.Event(), threading.Event()
        self.memory = inner.memory

    def for_namespace(self, namespace: str) -> Any:
        return self

    def recognize(self, image: Any, **kwargs: Any) -> Any:
        self.started.set()
        assert self.release.wait(30)
        return self.inner.recognize(image, **kwargs)

    def annotate(self, image: Any, dets: Any) -> Any:
        return self.inner.annotate(image, dets)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_a_full_queue_is_503_with_retry_after(make_app: Any, make_personalizer: Any, tmp_path: Path,
                                               photos: dict[str, bytes]) -> None:
    slow = SlowPersonalizer(make_personalizer(memory=str(tmp_path / "slow.db")))
    client = make_app(personalizer=slow, workers=1, queue=0, retry_after=7)
    alice = auth(client.app.state.service.keys.create("alice"))
    photo = {"photo": ("q.jpg", photos["cat"], "image/jpeg")}
    first: dict[str, Any] = {}
    worker = threading.Thread(target=lambda: first.update(r=client.post("/v1/recognize", headers=alice, files=photo)))
    worker.start()
    assert slow.started.wait(30)  # the one worker is busy, the queue (size 0) is full
    r = client.post("/v1/recognize", headers=alice, files=photo)
    assert r.status_code == 503 and r.headers["Retry-After"] == "7" and "busy" in r.json()["error"]["message"]
    assert client.get("/v1/concepts", headers=alice).status_code == 200  # store-only routes still answer
    slow.release.set()
    worker.join(30)
    assert first["r"].status_code == 200
    deadline = time.monotonic() + 10
    while client.app.state.service.pool.admitted and time.monotonic() < deadline:
        time.sleep(0.01)
    assert client.post("/v1/recognize", headers=alice, files=photo).status_code == 200
    assert "pekit_backbone_refused_total 1" in client.get("/metrics").text


def test_upload_checks_beside_photo_loads_leave_the_warning_filters_as_they_were() -> None:
    """The server checks an upload's header on its event loop while other requests decode
    photos in worker threads: neither may leave a warning filter behind, nor fail the other."""
    import io
    import sys
    import warnings

    import numpy as np
    from PIL import Image

    from pekit.errors import ImageError
    from pekit.images import load_image
    from pekit.server.limits import Limits, check_photo

    buf = io.BytesIO()
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(buf, "PNG")
    data = buf.getvalue()
    before = list(warnings.filters)
    stop = threading.Event()
    refused: list[int] = []

    def decode() -> None:
        while not stop.is_set():
            try:
                load_image(data, max_pixels=599)  # 600 pixels: Pillow warns, pekit refuses
            except ImageError:
                refused.append(1)

    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    workers = [threading.Thread(target=decode) for _ in range(2)]
    try:
        for t in workers:
            t.start()
        for _ in range(150):
            check_photo(data, limits=Limits(), label="photo")  # raises RequestError if it fails
    finally:
        stop.set()
        for t in workers:
            t.join()
        sys.setswitchinterval(switch)
    assert refused
    assert list(warnings.filters) == before


def test_an_upload_without_a_valid_key_is_refused_before_its_body_is_read(client: Any, alice: dict[str, str]) -> None:
    import asyncio

    read: list[int] = []

    async def receive() -> dict[str, Any]:  # a client that would stream 60 MB
        read.append(1)
        return {"type": "http.request", "body": b"x" * (1 << 20), "more_body": len(read) < 60}

    async def call(headers: list[tuple[bytes, bytes]]) -> list[dict[str, Any]]:
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {"type": "http", "method": "POST", "path": "/v1/concepts", "raw_path": b"/v1/concepts",
                 "query_string": b"", "root_path": "", "scheme": "http", "server": ("test", 80),
                 "client": ("127.0.0.1", 1), "http_version": "1.1",
                 "headers": [(b"content-type", b"multipart/form-data; boundary=x"), *headers]}
        await client.app(scope, receive, send)
        return sent

    for headers in ([], [(b"authorization", b"Bearer pk_000000000000_" + b"a" * 43)]):
        read.clear()
        sent = asyncio.run(call(headers))
        assert sent[0]["status"] == 401 and read == []
        assert (b"www-authenticate", b'Bearer realm="pekit"') in sent[0]["headers"]
    # counted under its route, as before; a route or method that does not exist says so, as before
    metrics = client.get("/metrics").text
    assert 'route="/v1/concepts",status="401"' in metrics.replace(" ", "")
    assert client.put("/v1/concepts/x").status_code == 405 and client.post("/v1/nosuch").status_code == 404


def test_a_key_file_moved_into_place_under_a_running_server_fails_closed(make_app: Any, tmp_path: Path) -> None:
    import sqlite3

    from pekit.server.keys import KeyStore

    client = make_app()
    token = client.app.state.service.keys.create("bob")
    assert client.get("/v1/concepts", headers=auth(token)).status_code == 200
    with sqlite3.connect(tmp_path / "keys.db") as live, sqlite3.connect(tmp_path / "restored.db") as copy_:
        live.backup(copy_)  # an operator edits a copy, then moves it into place
    with KeyStore(tmp_path / "restored.db") as copy:
        copy.revoke("user:bob")
    (tmp_path / "restored.db").replace(tmp_path / "keys.db")
    # SQLite cannot follow a live file replaced under it (the old file's log would be read as the
    # new one's), and the old one still lets bob in: every key is refused until a restart
    for r in (client.get("/v1/concepts", headers=auth(token)),
              client.post("/v1/recognize", headers=auth(token), files={"photo": ("q.jpg", b"x", "image/jpeg")})):
        assert r.status_code == 503 and "must be restarted" in r.json()["error"]["message"]
        assert "Retry-After" not in r.headers  # a retry in a second would not help


def test_a_key_file_removed_under_a_running_server_fails_closed(make_app: Any, tmp_path: Path,
                                                                caplog: Any) -> None:
    client = make_app()
    token = client.app.state.service.keys.create("bob")
    assert client.get("/v1/concepts", headers=auth(token)).status_code == 200
    (tmp_path / "keys.db").unlink()
    with caplog.at_level("ERROR", logger="pekit.server"):
        for _ in range(3):
            assert client.get("/v1/concepts", headers=auth(token)).status_code == 503
    assert caplog.text.count("was removed while the server runs") == 1  # said once, not per request


def test_deeply_nested_json_in_a_field_is_a_422(client: Any, alice: dict[str, str], photos: dict[str, bytes]) -> None:
    r = client.post("/v1/concepts", headers=alice, files={"photos": ("a.jpg", photos["cat"], "image/jpeg")},
                    data={"name": "Tom", "boxes": "[" * 1999})
    assert r.status_code == 422 and "nested too deeply" in r.json()["error"]["message"]


def test_a_server_side_failure_tells_the_client_no_paths(client: Any, alice: dict[str, str],
                                                        photos: dict[str, bytes], monkeypatch: Any,
                                                        caplog: Any) -> None:
    from pekit.errors import BackendError
    from pekit.personalizer import Personalizer

    def fail(*args: Any, **kwargs: Any) -> Any:
        raise BackendError("cannot reach the LVLM server at http://10.1.2.3:8000/v1/chat/completions")

    monkeypatch.setattr(Personalizer, "ask", fail)
    with caplog.at_level("ERROR", logger="pekit.server"):
        r = client.post("/v1/ask", headers=alice, files={"photo": ("q.jpg", photos["cat"], "image/jpeg")},
                        data={"question": "Who is this?"})
    assert r.status_code == 502 and "10.1.2.3" not in r.text
    assert r.json()["request_id"] in r.json()["error"]["message"] and "10.1.2.3" in caplog.text  # in the log


def test_the_default_namespace_is_no_user_name_and_key_files_are_private(tmp_path: Path) -> None:
    import stat

    from pekit.errors import InvalidInputError
    from pekit.server.keys import KeyStore

    with KeyStore(tmp_path / "keys.db") as keys:
        with pytest.raises(InvalidInputError, match="'default' is the namespace"):
            keys.create("default")
        keys.create("alice")
    assert stat.S_IMODE((tmp_path / "keys.db").stat().st_mode) == 0o600


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_a_stalled_upload_gets_408_and_stores_nothing(make_app: Any, photos: dict[str, bytes], declared: bool) -> None:
    """A client that stops sending in the middle of its body does not hold the connection
    for ever: after ``body_timeout_s`` it gets one 408, the app stops reading, nothing is stored."""
    import anyio

    from pekit.server.limits import Limits

    client = make_app(limits=Limits(body_timeout_s=0.2))
    key = client.app.state.service.keys.create("alice")
    boundary = "pekitboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nBo\r\n--{boundary}\r\n"
            f"Content-Disposition: form-data; name=\"photos\"; filename=\"a.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n"
            ).encode() + photos["cat"] + f"\r\n--{boundary}--\r\n".encode()
    headers = [(b"host", b"testserver"), (b"authorization", f"Bearer {key}".encode()),
               (b"content-type", f"multipart/form-data; boundary={boundary}".encode())]
    if declared:
        headers.append((b"content-length", str(len(body)).encode()))
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/v1/concepts", "raw_path": b"/v1/concepts", "query_string": b"", "root_path": "",
             "headers": headers, "client": ("127.0.0.1", 5000), "server": ("testserver", 80)}
    parts = [body[: len(body) // 2]]  # half the body, then nothing more
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if parts:
            return {"type": "http.request", "body": parts.pop(0), "more_body": True}
        await anyio.sleep(3600)
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def main() -> None:
        with anyio.fail_after(20):
            await client.app(scope, receive, send)

    anyio.run(main)
    starts = [m for m in sent if m["type"] == "http.response.start"]
    assert [m["status"] for m in starts] == [408], sent
    assert (b"connection", b"close") in starts[0]["headers"]
    message = next(m for m in sent if m["type"] == "http.response.body")["body"].decode()
    assert "stopped arriving" in message and "0.2 s" in message
    assert _store(client).count() == 0


def test_a_body_that_arrives_slowly_but_steadily_is_not_cut(make_app: Any, alice: dict[str, str]) -> None:
    """The timeout is for a stall, not for the whole upload: parts that keep coming are read."""
    from pekit.server.limits import Limits

    client = make_app(limits=Limits(body_timeout_s=0.5))
    key = client.app.state.service.keys.create("bob")

    def chunks() -> Any:
        for piece in (b'{"context": ', b'"my cat"}'):
            time.sleep(0.3)  # each wait under the timeout, the whole over it
            yield piece

    introduce_headers = auth(key)
    r = client.patch("/v1/concepts/X", headers={**introduce_headers, "Content-Type": "application/json"},
                     content=chunks())
    assert r.status_code == 404, r.text  # read whole and answered: there is no concept X


@pytest.mark.parametrize("value", [0, -1, float("inf"), float("nan"), "30", True])
def test_a_body_timeout_that_cannot_work_is_refused(value: Any) -> None:
    from pekit.errors import InvalidInputError
    from pekit.server.limits import Limits

    with pytest.raises(InvalidInputError, match="body_timeout_s"):
        Limits(body_timeout_s=value)


def test_an_answer_already_begun_is_finished_when_the_body_goes_over_the_limit() -> None:
    """The app stops reading (it gets a disconnect) but its own answer is not cut off: no
    413 can be sent once an answer has started, and dropping the rest would leave the
    client an unfinished response."""
    import anyio

    from pekit.server.limits import Limits
    from pekit.server.metrics import Metrics
    from pekit.server.middleware import ServiceMiddleware

    async def streaming(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                await send({"type": "http.response.body", "body": b"stopped", "more_body": False})
                return
            await send({"type": "http.response.body", "body": b"part;", "more_body": True})

    chunks = [{"type": "http.request", "body": b"12345", "more_body": True},
              {"type": "http.request", "body": b"67890", "more_body": True},
              {"type": "http.request", "body": b"abc", "more_body": False}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return chunks.pop(0) if chunks else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/x", "headers": [(b"content-type", b"application/json")]}
    middleware = ServiceMiddleware(streaming, limits=Limits(max_json_bytes=10), metrics=Metrics())
    anyio.run(middleware, scope, receive, send)
    assert [m.get("status") for m in sent if m["type"] == "http.response.start"] == [200]
    assert [m["body"] for m in sent if m["type"] == "http.response.body"] == [b"part;", b"part;", b"stopped"]
    assert sent[-1]["more_body"] is False  # finished, not left hanging
