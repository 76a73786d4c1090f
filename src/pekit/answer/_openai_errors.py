"""How the OpenAI-compatible backend (`pekit.answer.openai`) reports a failure: the ``openai``
SDK's exceptions, and what the server answered, become a one-line `BackendError` that says
what to fix (a wrong key, model name or base URL, a busy server, an image too large...).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from pekit.errors import BackendError, require

if TYPE_CHECKING:
    from pekit.answer.openai import OpenAILVLM

__all__ = ["RETRY_STATUSES", "one_line", "server_errors"]

#: the answers of a busy or failing server (the SDK retries them): the error says to try again later
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


def _attempts(exc: Any, retries: int) -> int:
    """How many requests the SDK sent before ``exc`` (its ``x-stainless-retry-count`` header
    on the last one, plus one); ``retries + 1`` when it does not say."""
    try:
        return int(exc.request.headers["x-stainless-retry-count"]) + 1
    except (AttributeError, KeyError, TypeError, ValueError):
        return retries + 1


def one_line(text: Any, limit: int = 300) -> str:
    r"""What a server said, fit for a one-line error: whitespace runs (an HTML page's line
    breaks) made one space, terminal escape codes shown, not run, at most ``limit`` characters.

    >>> one_line("<html>\r\n<title>502 Bad Gateway</title>\x1b[2J")
    '<html> <title>502 Bad Gateway</title>\\x1b[2J'
    """
    from pekit.memory import printable

    return printable(" ".join(str(text).split()))[:limit]


def _server_message(body: bytes) -> str:
    """The ``error.message`` of an OpenAI-style error body, else the text, on one line (`one_line`)."""
    text = body.decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return one_line(text)
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict):
            return one_line(err.get("message") or err.get("detail") or err)
        return one_line(err)
    return one_line(text)


@contextmanager
def server_errors(lvlm: OpenAILVLM, path: str, *, retries: int | None = None, timeout: float | None = None,
                  explain: bool = True) -> Iterator[None]:
    """Translate the SDK's errors inside the block (a request of ``lvlm`` to ``path``) into a
    `BackendError` that says what to fix."""
    openai = require("openai", "openai")
    url = lvlm.base_url + path
    retries = lvlm.retries if retries is None else retries
    timeout = lvlm.timeout if timeout is None else timeout
    try:
        yield
    except openai.APIStatusError as exc:
        payload = exc.response.content if exc.response is not None else b""
        if not explain:
            raise BackendError(f"{url} answered {exc.status_code}: {_server_message(payload)}") from None
        wait = exc.response.headers.get("retry-after") if exc.response is not None else None
        raise _http_error(lvlm, exc.status_code, payload, url, _attempts(exc, retries), retries,
                          retry_after=wait) from None
    except openai.APITimeoutError as exc:
        raise BackendError(
            f"no answer from {url} within {timeout:g} s ({_attempts(exc, retries)} attempt(s)); the server "
            "may be overloaded or the model still loading: raise timeout= (CLI: --lvlm-option timeout=SECONDS) "
            "or try again"
        ) from exc
    except openai.APIConnectionError as exc:
        reason = str(exc.__cause__ or exc).strip().rstrip(".")
        if "disconnected" in reason.lower() or "connection reset" in reason.lower():  # it was reached
            raise BackendError(
                f"the LVLM server at {url} closed the connection without an answer ({reason}): it may have "
                "crashed or restarted on this request (its log says why); try again"
            ) from exc
        raise BackendError(
            f"cannot reach the LVLM server at {url}: {reason}. Is it running, and is the base "
            "URL right (e.g. http://localhost:8000/v1 for vLLM, http://localhost:11434/v1 for "
            "Ollama)?"
        ) from exc
    except openai.APIError as exc:  # e.g. an error event in the middle of a stream
        raise BackendError(f"the server reported an error: {one_line(exc)}") from exc


def _http_error(lvlm: OpenAILVLM, status: int, payload: bytes, url: str, attempts: int, retries: int, *,
                retry_after: str | None = None) -> BackendError:
    """What to fix for an HTTP error ``status`` that ``lvlm``'s server answered ``attempts`` times
    (``retries`` allowed)."""
    message = _server_message(payload)
    if status in (401, 403):
        if not lvlm.api_key_env:
            hint = ("pass api_key_env='<VARIABLE>' (CLI: --lvlm-option api_key_env=VARIABLE) naming the environment "
                    "variable that holds the key")
        elif os.environ.get(lvlm.api_key_env, "").strip():
            hint = f"the key in ${lvlm.api_key_env} was rejected; set a valid one"
        else:
            hint = f"set the API key in the environment variable {lvlm.api_key_env} (it is not set)"
        return BackendError(f"{url} refused the request ({status}: {message}); {hint}")
    if status == 404:
        models = lvlm.list_models(quiet=True)
        if models is not None and lvlm.model not in models:
            listed = ", ".join(models[:20]) + (" ..." if len(models) > 20 else "") or "(none)"
            return BackendError(
                f"model '{lvlm.model}' is not served at {lvlm.base_url} (404: {message}); the model "
                f"name is wrong: use one of: {listed}"
            )
        return BackendError(
            f"{url} answered 404 ({message}); check the model name '{lvlm.model}' and that the base "
            "URL is the API root (it usually ends with /v1)"
        )
    if status in RETRY_STATUSES:
        if attempts <= retries:  # not retried to the end: the server said not to, or to wait > 2 minutes
            wait = f" (Retry-After: {retry_after.strip()[:40]})" if retry_after else ""
            return BackendError(
                f"{url} answered {status} ({message}) {attempts} time(s) and asked not to be retried now"
                f"{wait}: try again later"
            )
        return BackendError(
            f"{url} answered {status} ({message}) {attempts} time(s); the server is busy or failing: "
            "try again later or raise retries= (CLI: --lvlm-option retries=N)"
        )
    if status == 413:
        return BackendError(f"{url} says the request is too large (413); lower max_image_side (CLI: --lvlm-option "
                            "max_image_side=768)")
    hint = ""
    if "image" in message.lower() or "multimodal" in message.lower() or "vision" in message.lower():
        hint = f"; does '{lvlm.model}' accept images? use a vision-language model"
    return BackendError(f"{url} rejected the request ({status}: {message}){hint}")
