"""The outermost layer of every request: request id, body size limit, metrics, access log.

A pure ASGI middleware (it never buffers a body):

- sets the request id (`pekit.server.context`) and returns it as ``X-Request-ID``;
- refuses an upload to ``/v1/`` without a valid API key with 401 before reading its body;
- refuses a body over the limit with 413: by ``Content-Length`` before the app reads it
  when given, else (chunked uploads) by counting as the app reads it, never buffering it
  here; JSON bodies have a small limit, multipart uploads a large one;
- answers 408 and closes the connection when a client sends nothing of an unfinished
  body for ``Limits.body_timeout_s`` (a stalled upload; the wait is per part, not total);
- turns an unexpected exception into a JSON 500 with the request id (logged with its
  traceback), so a client never sees an HTML page or a dropped connection;
- times the request into `Metrics` by route template, and logs one line per request
  (method, path, status, ms, request id; never headers, so never a key).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from pekit.server.context import new_request_id, reset_request_id, set_request_id
from pekit.server.limits import Limits
from pekit.server.metrics import Metrics

__all__ = ["ServiceMiddleware"]

log = logging.getLogger("pekit.server.access")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


#: the routes that take a body, ``(method, path pattern, route template)``: a request to one
#: of them without a valid key is refused before its body is read (`ServiceMiddleware._authorized`)
_UPLOADS = (
    ("POST", re.compile(r"^/v1/concepts/?$"), "/v1/concepts"),
    ("POST", re.compile(r"^/v1/concepts/[^/]+/views/?$"), "/v1/concepts/{name}/views"),
    ("PATCH", re.compile(r"^/v1/concepts/[^/]+/?$"), "/v1/concepts/{name}"),
    ("POST", re.compile(r"^/v1/recognize/?$"), "/v1/recognize"),
    ("POST", re.compile(r"^/v1/ask/?$"), "/v1/ask"),
    ("POST", re.compile(r"^/v1/caption/?$"), "/v1/caption"),
)


def _upload_route(method: str, path: str) -> str | None:
    """The template of the upload route ``method path`` reaches, or None."""
    return next((template for m, pattern, template in _UPLOADS if m == method and pattern.match(path)), None)


#: the methods metrics are labelled by; any other is "other" (a client may send any token as a method)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


#: the content types a form route reads (FastAPI's ``File``/``Form``)
_FORMS = ("multipart/form-data", "application/x-www-form-urlencoded")


async def _refused_media(scope: Scope, send: Send, rid: str) -> bool:
    """Whether a body of another kind was sent to a route that takes a form (the photo as a
    file field) or, for ``PATCH``, JSON: answered 415 before it is read. A photo posted as
    the raw body (``Content-Type: image/jpeg``) would otherwise be measured against the JSON
    body limit (413) or read as a form without its photo (422), and JSON sent as
    ``text/plain`` read as no object (422): none of which says what to send."""
    route = _upload_route(str(scope.get("method", "")), str(scope.get("path", "")))
    kind = (_header(scope, b"content-type") or "").split(";")[0].strip().lower()
    if route is None or not kind:
        return False
    if scope.get("method") == "PATCH":  # a JSON body: a form or text/plain would be read as no object
        if kind == "application/json" or kind.endswith("+json"):
            return False
        wanted, message = b"application/json", (f"{route} takes a JSON object with Content-Type: application/json "
                                                 f"(curl --json '{{\"context\": \"...\"}}'), not a "
                                                 f"{_printable(kind)} body")
    else:
        if kind in _FORMS:
            return False
        field = "photos" if route == "/v1/concepts" else "photo"
        wanted, message = b"multipart/form-data", (f"{route} takes multipart/form-data with the photo as the file "
                                                   f"field '{field}' (curl -F {field}=@photo.jpg ...), not a "
                                                   f"{_printable(kind)} body")
    scope["pekit.route"] = route
    await _send_json(send, 415, {"error": {"type": "UnsupportedMediaType", "status": 415, "message": message},
                                 "request_id": rid}, headers=[(b"accept", wanted)])
    return True


def _printable(text: str) -> str:
    from pekit.memory import printable

    return printable(text[:80])


def _shown_request(scope: Scope) -> tuple[str, str]:
    r"""Method and path as the log shows them: a path is percent-decoded, so ``%1b`` or ``%0a``
    in a URL would put an escape or a forged line into the log; controls are escaped instead.

    >>> _shown_request({"method": "GET", "path": "/v1/x\x1b[31m\nFAKE"})
    ('GET', '/v1/x\\x1b[31m\\nFAKE')
    """
    from pekit.memory import printable

    return printable(str(scope.get("method", ""))), printable(str(scope.get("path", "")))


class ServiceMiddleware:
    def __init__(self, app: ASGIApp, *, limits: Limits, metrics: Metrics,
                 user: Callable[[str | None], Any] | None = None) -> None:
        self.app, self.limits, self.metrics, self.user = app, limits, metrics, user

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = new_request_id(_header(scope, b"x-request-id"))
        token = set_request_id(rid)
        start = time.perf_counter()
        status = {"code": 500, "started": False, "cut": False}  # cut: answered 408/413 mid-body

        async def send_with_id(message: Message) -> None:
            if status["cut"] and status["started"]:
                return  # the 408 or 413 is sent; the app's answer to the disconnect it was given is dropped
            if message["type"] == "http.response.start":
                status["code"], status["started"] = int(message["status"]), True
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                message["headers"] = [*headers, (b"x-request-id", rid.encode())]
            await send(message)

        try:
            if not await self._authorized(scope, send_with_id, rid):
                return  # refused before a byte of the body is read
            if await _refused_media(scope, send_with_id, rid):
                return
            bounded = await self._limited(scope, self._timed(receive, send_with_id, status, rid), send_with_id,
                                          status, rid)
            if bounded is not None:
                await self.app(scope, bounded, send_with_id)
        except Exception:
            if status["cut"]:
                return  # the app failed on the disconnect it was handed after the 408 or 413: nothing unexpected
            log.exception("unexpected error on %s %s [%s]", *_shown_request(scope), rid)
            if not status["started"]:
                await _send_json(send_with_id, 500, {"error": {"type": "InternalError", "status": 500, "message":
                                 f"internal error; quote request id {rid} when reporting it"}, "request_id": rid})
        finally:
            seconds = time.perf_counter() - start
            route = getattr(scope.get("route"), "path", None) or scope.get("pekit.route") or "unmatched"
            method = str(scope.get("method", ""))  # any token is a method to HTTP: a fixed set of labels
            self.metrics.observe(method if method in _METHODS else "other", route, int(status["code"]), seconds)
            log.info("%s %s %d %.1f ms [%s]", *_shown_request(scope), status["code"], seconds * 1000, rid)
            reset_request_id(token)

    async def _authorized(self, scope: Scope, send: Send, rid: str) -> bool:
        """Whether an upload to ``/v1/`` carries a valid key; False when a 401 was sent. The
        routes check the key too, but only after the framework has read and parsed the whole
        body: a client without a key must not make the server take in megabytes first."""
        route = _upload_route(str(scope.get("method", "")), str(scope.get("path", "")))
        if self.user is None or route is None:
            return True
        import anyio

        from pekit.server.keys import AuthError, KeyFileReplacedError

        scheme, _, token = (_header(scope, b"authorization") or "").strip().partition(" ")
        try:
            await anyio.to_thread.run_sync(self.user, token.strip() if scheme.lower() == "bearer" else None)
        except (AuthError, KeyFileReplacedError) as exc:
            status = 401 if isinstance(exc, AuthError) else 503
            scope["pekit.route"] = route  # the metrics label the route would have had
            await _send_json(send, status, {"error": {"type": type(exc).__name__, "status": status,
                                                      "message": str(exc)}, "request_id": rid},
                             headers=[(b"www-authenticate", b'Bearer realm="pekit"')] if status == 401 else None)
            return False
        return True

    def _timed(self, receive: Receive, send: Send, status: dict[str, Any], rid: str) -> Receive:
        """``receive`` that waits at most ``Limits.body_timeout_s`` for each part of the body.
        On a stall the client gets 408 (when no answer has started) and the app a disconnect,
        which ends its reading; once the body is complete, waits are not timed (the app may
        listen for a disconnect for as long as it answers)."""
        import anyio

        body = {"done": False, "stalled": False}

        async def timed() -> Message:
            if status["cut"] or body["stalled"]:
                return {"type": "http.disconnect"}
            if body["done"]:
                return await receive()
            try:
                with anyio.fail_after(self.limits.body_timeout_s):
                    message = await receive()
            except TimeoutError:
                log.warning("a request body stalled for %g s; answered 408 and closed [%s]",
                            self.limits.body_timeout_s, rid)
                body["stalled"] = True  # the app reads no more of it
                return await _cut(status, lambda: _send_json(send, 408, {"error": {
                    "type": "RequestTimeout", "status": 408, "message": f"the request body stopped arriving for "
                    f"{self.limits.body_timeout_s:g} s; send it again, whole"}, "request_id": rid},
                    headers=[(b"connection", b"close")]))
            if message["type"] != "http.request" or not message.get("more_body", False):
                body["done"] = True
            return message

        return timed

    async def _limited(self, scope: Scope, receive: Receive, send: Send, status: dict[str, Any],
                       rid: str) -> Receive | None:
        """``receive`` bounded to the body limit; None when a 413 was already sent. A body
        without a length (chunked) is counted as the app reads it, never buffered here: past
        the limit the client gets 413 and the app a disconnect, which ends its reading."""
        if scope.get("method") in ("GET", "HEAD", "OPTIONS", "DELETE"):
            return receive
        kind = (_header(scope, b"content-type") or "").lower()
        limit = self.limits.max_body_bytes if kind.startswith("multipart/") else self.limits.max_json_bytes
        what = "multipart upload" if kind.startswith("multipart/") else "non-multipart (JSON) body"
        declared = _header(scope, b"content-length")
        if declared is not None and declared.strip().isdigit():
            if int(declared) > limit:
                await self._too_large(send, what, int(declared), limit, rid)
                return None
            return receive
        total, over = 0, False

        async def counted() -> Message:
            nonlocal total, over
            if status["cut"] or over:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                total += len(message.get("body", b""))
                if total > limit:
                    over = True  # the app reads no more of it
                    return await _cut(status, lambda: self._too_large(send, what, total, limit, rid, close=True))
            return message

        return counted

    @staticmethod
    async def _too_large(send: Send, what: str, size: int, limit: int, rid: str, *, close: bool = False) -> None:
        message = f"the {what} is {size} bytes or more; the limit is {limit} bytes; " + (
            "send fewer or smaller photos" if what.startswith("multipart") else "send a smaller body")
        await _send_json(send, 413, {"error": {"type": "PayloadTooLarge", "status": 413, "message": message},
                                     "request_id": rid}, headers=[(b"connection", b"close")] if close else None)


async def _cut(status: dict[str, Any], answer: Callable[[], Awaitable[None]]) -> Message:
    """A body cut off midway (stalled, or over the limit): the client gets ``answer`` (408,
    413) unless the app has begun its own, which is then the app's to finish; the app is
    handed a disconnect, which ends its reading."""
    if not status["started"]:
        await answer()
        status["cut"] = True  # the app's answer to the disconnect is dropped
    return {"type": "http.disconnect"}


async def _send_json(send: Send, status: int, body: dict[str, Any],
                     headers: list[tuple[bytes, bytes]] | None = None) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": data})
