"""The request id of the request being served, for error bodies and log lines.

Every request gets an id (the client's ``X-Request-ID`` when it is a short token, else a
new random one); it is returned in the ``X-Request-ID`` header and in every error body,
and `RequestIdFilter` adds it to every log record as ``request_id``.
"""

from __future__ import annotations

import contextvars
import logging
import re
import uuid

__all__ = ["LOG_FORMAT", "RequestIdFilter", "configure_logging", "new_request_id", "request_id", "reset_request_id",
           "set_request_id"]

_CURRENT: contextvars.ContextVar[str] = contextvars.ContextVar("pekit_request_id", default="-")
_SAFE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def new_request_id(given: str | None = None) -> str:
    """``given`` if it is a safe token (letters, digits, ``. _ -``, up to 64) and not an API
    key sent there by mistake (``pk_...``: ids are logged, keys never are), else a new one."""
    if given and _SAFE.match(given) and not given.startswith("pk_"):
        return given
    return uuid.uuid4().hex


def set_request_id(value: str) -> contextvars.Token[str]:
    return _CURRENT.set(value)


def reset_request_id(token: contextvars.Token[str]) -> None:
    _CURRENT.reset(token)


def request_id() -> str:
    """The id of the request being served (``-`` outside a request)."""
    return _CURRENT.get()


class RequestIdFilter(logging.Filter):
    """Adds ``record.request_id`` so a format may use ``%(request_id)s``."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id()
        return True


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


def configure_logging(*, debug: bool = False) -> None:
    """Log lines of the server (its own and uvicorn's) to stderr with the request id."""
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.INFO)
