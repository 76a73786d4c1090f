"""Every error of the service as one JSON shape, with the request id.

    {"error": {"type": "ConceptNotFoundError", "status": 404, "message": "..."},
     "request_id": "3f2a..."}

`PekitError` subclasses map to HTTP codes here (`status_of`); FastAPI's own errors
(validation, unknown route, wrong method) get the same shape, and so do unexpected
exceptions (`pekit.server.middleware`), so a client parses one format.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException as StarletteHTTPException

from pekit import errors as pe
from pekit.server.context import request_id
from pekit.server.keys import AuthError, KeyFileReplacedError
from pekit.server.limits import RequestError
from pekit.server.queue import BusyError

__all__ = ["error_response", "install_error_handlers", "status_of"]

log = logging.getLogger("pekit.server")

# most specific first
_STATUS: tuple[tuple[type[BaseException], int], ...] = (
    (AuthError, 401),
    (BusyError, 503),
    (KeyFileReplacedError, 503),
    (pe.ConceptNotFoundError, 404),
    (pe.DuplicateConceptError, 409),
    (pe.BackboneMismatchError, 409),
    (pe.MemoryRetryError, 503),  # locked by another writer, a lost connection: nothing wrong, retry
    (pe.MemoryFullError, 507),  # no room to store it: retrying does not help until an operator frees space
    (pe.MemoryStoreError, 500),  # read-only, damaged, not a memory, written by a newer pekit
    (pe.ImageError, 422),
    (pe.InvalidInputError, 422),
    (pe.NothingFoundError, 422),
    (pe.BackendNotFoundError, 500),
    (pe.MissingDependencyError, 501),
    (pe.BackendError, 502),
)


#: what a client is told of a server-side failure (the message itself, with file paths and the
#: LVLM's address, goes to the log only)
_SERVER_SIDE: tuple[tuple[type[BaseException], str], ...] = (
    (pe.MemoryRetryError, "the server's memory store is busy (another writer) or briefly unreachable; retry "
                          "after the Retry-After header's seconds"),
    (pe.MemoryFullError, "the server's memory store has no room left to store this (nothing stored was lost)"),
    (pe.MemoryStoreError, "the server's memory store could not serve this (read-only or damaged)"),
    (pe.MissingDependencyError, "the server lacks an optional dependency for this"),
    (pe.BackendError, "the LVLM or a model behind this server failed or could not be reached"),
)


def status_of(exc: BaseException) -> int:
    """The HTTP status of a pekit error (500 for anything unexpected)."""
    if isinstance(exc, RequestError):
        return exc.status
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 500


#: what a required field holds, for "X is empty" / "X is missing" (FastAPI says "Field required" for both)
_EXPECTED = {
    "name": "the concept's name, e.g. 'Bo'",
    "question": "a question, e.g. 'What is Bo doing?'",
    "photos": "one or more photo files (multipart field 'photos')",
    "photo": "a photo file (multipart field 'photo')",
}


def _problem(err: Any, where: str, body: Any) -> str:
    """A validation error in words; a required form field sent empty says so (HTML forms and
    ``curl -F name=`` send empty fields, which FastAPI reports as missing)."""
    if err.get("type") == "json_invalid":
        reason = (err.get("ctx") or {}).get("error", "")
        return f"not valid JSON ({reason}); send an object such as {{\"context\": \"my parents' dog\"}}"
    if "Expected UploadFile" in str(err.get("msg", "")):
        return f"{where} must be a file (multipart: curl -F {where}=@photo.jpg), not a text field"
    if err.get("type") != "missing" or not where:
        return str(err.get("msg", ""))
    expected = _EXPECTED.get(where, "a value")
    sent = isinstance(body, FormData) and where in body
    if sent:
        return f"{where} is empty; send {expected}"
    return f"{where} is missing; send {expected}"


def error_response(status: int, message: str, kind: str, *, headers: dict[str, str] | None = None,
                   detail: Any = None) -> JSONResponse:
    body: dict[str, Any] = {"error": {"type": kind, "status": status, "message": message}, "request_id": request_id()}
    if detail is not None:
        body["error"]["detail"] = detail
    out = dict(headers or {})
    out["X-Request-ID"] = request_id()
    return JSONResponse(body, status_code=status, headers=out)


def install_error_handlers(app: FastAPI) -> None:
    """Register the JSON error handlers on ``app``."""

    @app.exception_handler(pe.PekitError)
    async def _pekit(request: Request, exc: pe.PekitError) -> JSONResponse:
        status = status_of(exc)
        headers: dict[str, str] = {}
        if isinstance(exc, BusyError):
            headers["Retry-After"] = str(exc.retry_after)
        elif isinstance(exc, AuthError):
            headers["WWW-Authenticate"] = 'Bearer realm="pekit"'
        elif status == 503 and not isinstance(exc, KeyFileReplacedError):  # that one waits for a restart
            headers["Retry-After"] = "1"
        if isinstance(exc, KeyFileReplacedError):
            pass  # logged once, as an error, where it was found
        elif status == 503:  # load (a full queue, a busy memory file): the client retries, nothing is broken
            log.warning("%s on %s %s: %s", type(exc).__name__, request.method, request.url.path, exc)
        elif status >= 500:
            log.error("%s on %s %s: %s", type(exc).__name__, request.method, request.url.path, exc)
        message = str(exc)
        if isinstance(exc, pe.DuplicateConceptError):  # the advice in the form an HTTP client sends
            message = message.replace("pass replace=True (CLI: --replace)", "send the form field replace=true")
        elif status >= 500 and not isinstance(exc, (BusyError, KeyFileReplacedError)):
            # the server's paths and backends stay in its log
            message = next((text for cls, text in _SERVER_SIDE if isinstance(exc, cls)), "the server failed") + \
                f"; quote request id {request_id()} to its operator, whose log has the details"
        return error_response(status, message, type(exc).__name__, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for err in exc.errors():
            where = "" if err.get("type") == "json_invalid" else ".".join(
                str(p) for p in err.get("loc", ()) if p != "body")  # a JSON error's loc is a character offset
            problems.append({"field": where, "problem": _problem(err, where, exc.body)})
        text = "; ".join(p["problem"] if p["field"] and p["problem"].startswith(f"{p['field']} is ")
                         else f"{p['field'] or 'body'}: {p['problem']}" for p in problems[:5])
        return error_response(422, f"the request is not valid: {text}", "ValidationError", detail=problems)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        messages = {
            404: f"no such route: {request.method} {request.url.path}; see /docs for the API",
            405: f"{request.method} is not allowed on {request.url.path}; see /docs for the methods it takes",
        }
        message = messages.get(exc.status_code, str(exc.detail))
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # every method the path takes, not only the first route's (RFC 9110)
            allowed = _allowed_methods(request)
            if allowed:
                headers["Allow"] = ", ".join(allowed)
        status = exc.status_code
        if status == 400 and "maximum size" in message:  # a form field over python-multipart's part limit
            status, message = 413, f"a form field is too large ({message}); send a shorter text"
        return error_response(status, message, "HTTPError", headers=headers)


def _allowed_methods(request: Request) -> list[str]:
    """The methods some route takes on ``request``'s path (asked method by method: included
    routers match as one route)."""
    from starlette.routing import Match

    return [method for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
            if any(route.matches({**request.scope, "method": method})[0] == Match.FULL
                   for route in request.app.router.routes)]
