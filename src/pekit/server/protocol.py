"""The HTTP/1.1 connection: uvicorn's h11 protocol with a deadline on each request's head.

uvicorn times out an idle kept-alive connection and pekit's middleware a stalled body
(408), but nothing a client that opens a connection and sends half a request line, or a
header a byte a minute: each such connection is held for ever, and ``--max-connections``
of them answer everyone else 503. `HeadTimeoutH11` gives every request head (from the
connection's start, or from the end of the previous answer on a kept-alive connection)
`head_timeout_s` seconds, the ``--body-timeout`` of ``pekit serve``: past it, a connection
with part of a head gets 408 and is closed, an idle one is closed. A request being
answered is never cut (its model may take longer).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from pekit.server.limits import Limits

__all__ = ["HeadTimeoutH11", "head_timeout_from_env"]

BODY_TIMEOUT = Limits.body_timeout_s

log = logging.getLogger("pekit.server.access")

_REQUEST_TIMEOUT = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
                    b"connection: close\r\ncontent-length: 45\r\n\r\n"
                    b"the request head stopped arriving; send again")


def head_timeout_from_env() -> float:
    """``--body-timeout`` as ``pekit serve`` hands it to worker processes (`CONFIG_ENV`),
    else the default."""
    from pekit.server.app import CONFIG_ENV

    try:
        value = json.loads(os.environ.get(CONFIG_ENV, "{}")).get("limits", {}).get("body_timeout_s", BODY_TIMEOUT)
        return float(value) if float(value) > 0 else BODY_TIMEOUT
    except (TypeError, ValueError, AttributeError):
        return BODY_TIMEOUT


class HeadTimeoutH11(H11Protocol):
    """`H11Protocol` that closes a connection whose request head does not arrive whole
    within `head_timeout_s` (class attribute: ``pekit serve`` sets it before it starts).

    The same wait bounds the silence while the rest of a body the server already answered
    (401, 413, 415 sent before it was read) drains: it may keep coming for as long as it
    comes, but a client that stops sending it is let go (silently: it has its answer)."""

    head_timeout_s: float = head_timeout_from_env()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._head_timer: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._arm()  # the first request's head

    def _arm(self) -> None:
        self._disarm()
        self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_timed_out)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _answering(self) -> bool:
        return self.cycle is not None and not self.cycle.response_complete

    def _draining(self) -> bool:
        """The answer is sent, the rest of the request's body still arrives (and is dropped)."""
        return self.conn.our_state is h11.DONE and self.conn.their_state is h11.SEND_BODY

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._answering():  # the head is whole: the body's wait (408) and the app take over
            self._disarm()
        elif self._draining() or (self._head_timer is None and self.conn.their_state is h11.IDLE):
            self._arm()  # draining: silence counts, not length; idle: the next head's deadline begins

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and not self._answering():  # the next head's deadline
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._answering() or self.transport.is_closing() or self.transport.get_protocol() is not self:
            return  # an answer under way, a closing connection, or one handed to another protocol
        if self.conn.their_state is h11.IDLE and self.conn.trailing_data[0]:  # part of a head
            log.warning("a request head stalled for %g s from %s; answered 408 and closed", self.head_timeout_s,
                        _peer(self.client))
            self.transport.write(_REQUEST_TIMEOUT)
        self.transport.close()


def _peer(client: Any) -> str:
    return f"{client[0]}:{client[1]}" if client else "a client"
