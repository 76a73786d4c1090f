"""`pekit.server.protocol`: a request head that stalls is cut; a request being answered is not."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("uvicorn")

from pekit.server.protocol import HeadTimeoutH11

from .conftest import free_port


async def slow_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers after 1.5 s: longer than the head's deadline, which must not cut it."""
    if scope["type"] != "http":
        return
    await asyncio.sleep(1.5 if scope["path"] == "/slow" else 0)
    status = 415 if scope["path"] == "/early" else 200  # /early: answered before its body is read
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


class Short(HeadTimeoutH11):
    head_timeout_s = 0.6


@pytest.fixture
def server() -> Iterator[int]:
    import uvicorn

    port = free_port()
    config = uvicorn.Config(slow_app, host="127.0.0.1", port=port, http=Short, log_config=None, lifespan="off",
                            timeout_keep_alive=30)
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.started
    yield port
    srv.should_exit = True
    thread.join(10)


def read_all(conn: socket.socket, seconds: float) -> tuple[bytes, float]:
    """What the server sends until it closes the connection, and how long that took."""
    conn.settimeout(seconds)
    start, got = time.monotonic(), b""
    while True:
        chunk = conn.recv(4096)
        if not chunk:
            return got, time.monotonic() - start
        got += chunk


def test_a_half_sent_head_gets_408_and_is_closed(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server)) as conn:
        conn.sendall(b"GET /fast HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
        got, took = read_all(conn, 10)
    assert got.startswith(b"HTTP/1.1 408") and b"connection: close" in got
    assert took < 5


def test_a_connection_that_sends_nothing_is_closed(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server)) as conn:
        got, took = read_all(conn, 10)
    assert got == b"" and took < 5


def test_an_answer_longer_than_the_deadline_is_not_cut_and_the_next_head_gets_one(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server)) as conn:
        conn.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        conn.settimeout(10)
        first = b""
        while not first.endswith(b"ok"):  # the head and the body may come in two reads
            chunk = conn.recv(4096)
            assert chunk, first  # not closed before the answer
            first += chunk
        assert first.startswith(b"HTTP/1.1 200") and first.endswith(b"ok")  # 1.5 s, past the 0.6 s deadline
        conn.sendall(b"GET /fast HTTP/1.1\r\n")  # kept alive; the next head stalls
        got, _ = read_all(conn, 10)
    assert got.startswith(b"HTTP/1.1 408")


def test_the_rest_of_a_body_answered_early_is_no_stalled_head(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server)) as conn:
        conn.sendall(b"POST /early HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n")
        conn.settimeout(10)
        first = b""
        while not first.endswith(b"ok"):
            chunk = conn.recv(4096)
            assert chunk, first
            first += chunk
        assert first.startswith(b"HTTP/1.1 415")
        time.sleep(0.4)
        conn.sendall(b"0123456789")  # the rest of the body, after the answer
        got, took = read_all(conn, 10)  # uvicorn serves no next request on it: let go, and silently
    assert got == b"" and took < 5
