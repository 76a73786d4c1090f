"""`openai:<base url>#<model>`: any OpenAI-compatible chat-completions server, through the
official ``openai`` client (``pip install 'pekit-vlm[openai]'``).

Works with vLLM, Ollama, llama.cpp's server, LM Studio, TGI and hosted APIs. The image
travels as a ``data:`` URL inside the user message; the API key (if any) is read from an
environment variable at request time and never logged. Several images (key frames of a
clip) travel as several ``image_url`` parts of one message, up to ``max_images``. Retries are the SDK's: timeouts,
dropped connections, 408, 409, 429 and 5xx answers are retried with exponential backoff
(0.5 s doubling to 8 s, with jitter), or after the delay the server asks for in
``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date, up to two minutes). Other
4xx answers become a `BackendError` saying what to fix (a 404 lists the served models;
`pekit.answer._openai_errors` writes these errors).

Example:
    >>> lvlm = OpenAILVLM("http://localhost:8000/v1#Qwen/Qwen2-VL-7B-Instruct")
    >>> lvlm.name
    'openai:http://localhost:8000/v1#Qwen/Qwen2-VL-7B-Instruct'
    >>> lvlm.generate(image, "What is Bo doing?")  # doctest: +SKIP
    'Bo is asleep on the sofa.'
"""

from __future__ import annotations

import base64
import io
import ipaddress
import json
import logging
import os
import re
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

import numpy as np

from pekit.answer._openai_errors import RETRY_STATUSES as RETRY_STATUSES  # importable here as before
from pekit.answer._openai_errors import one_line, server_errors
from pekit.answer.base import (
    DEFAULT_MAX_NEW_TOKENS,
    ThreadUsage,
    check_generation,
    check_image,
    check_images,
    check_max_image_side,
    check_prompt,
    shrink_to,
)
from pekit.errors import BackendError, InvalidInputError, require

log = logging.getLogger(__name__)

__all__ = ["OpenAILVLM", "image_data_url"]

_EXAMPLE = "openai:http://localhost:8000/v1#Qwen/Qwen2-VL-7B-Instruct"


def image_data_url(image: np.ndarray, *, fmt: str = "jpeg", quality: int = 90,
                   max_side: int | None = None) -> str:
    """Encode an ``(H, W, 3) uint8`` image as a ``data:image/...;base64,`` URL.

    >>> image_data_url(np.zeros((2, 2, 3), np.uint8), fmt="png")[:22]
    'data:image/png;base64,'
    """
    pil = shrink_to(check_image(image), max_side)
    fmt = fmt.lower()
    if fmt not in ("jpeg", "png"):
        raise InvalidInputError(f"image format must be 'jpeg' or 'png', got '{fmt}'")
    buf = io.BytesIO()
    pil.save(buf, format=fmt.upper(), **({"quality": int(quality)} if fmt == "jpeg" else {}))
    return f"data:image/{fmt};base64,{base64.b64encode(buf.getvalue()).decode('ascii')}"


def _is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False



def _without_authorization(request: Any) -> None:
    """An httpx request hook: the request goes out with no ``Authorization`` header."""
    request.headers.pop("Authorization", None)

class OpenAILVLM:
    """Client of an OpenAI-compatible ``/chat/completions`` endpoint behind the `LVLM` protocol.

    Args:
        base_url: server root including the version, e.g. ``"http://localhost:8000/v1"``;
            may carry the model as ``"<url>#<model>"`` (the registry's spec format), and a
            query sent with every request (``...?api-version=2024-06-01``, as Azure asks).
        model: model name as the server knows it (``"gpt-4o-mini"``, ``"llava:13b"``...).
        api_key_env: environment variable holding the API key (``None``: never send one).
            Local servers usually need none; a missing key is reported on 401/403.
        timeout: seconds to wait for the server per request (connect and each read).
        retries: extra attempts on timeouts, dropped connections, 408, 409, 429 and 5xx.
        backoff, max_backoff: kept for compatibility; the delays are the SDK's (see the
            module docs), or what the server's ``retry-after-ms`` / ``Retry-After`` says.
        stream: ask for server-sent events and assemble them (see `stream_text`).
        image_format: ``"jpeg"`` (small) or ``"png"`` (lossless).
        max_image_side: downscale the image so its long side is at most this many pixels.
        max_tokens_field: ``"max_tokens"`` or ``"max_completion_tokens"`` (newer OpenAI models).
        extra_body: more JSON fields for every request (``{"top_p": 0.9}``).
        max_images: images one request may carry (default 4: key frames of a clip); 1 for
            servers that take one image per prompt (vLLM without ``--limit-mm-per-prompt``,
            many Ollama models): clips then go as one contact sheet.

    Example:
        >>> OpenAILVLM("http://127.0.0.1:11434/v1", "llava:7b").model
        'llava:7b'
    """

    last_usage = ThreadUsage()  # per thread: concurrent answers each read their own

    def __init__(
        self,
        base_url: str = "",
        model: str | None = None,
        *,
        api_key_env: str | None = "OPENAI_API_KEY",
        timeout: float = 120.0,
        retries: int = 3,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
        stream: bool = False,
        image_format: str = "jpeg",
        max_image_side: int | None = 2048,
        max_tokens_field: str = "max_tokens",
        extra_body: dict[str, Any] | None = None,
        max_images: int = 4,
    ) -> None:
        if not isinstance(base_url, str) or not base_url.strip():
            raise InvalidInputError(f"openai: needs '<base url>#<model>', e.g. '{_EXAMPLE}'")
        base_url = base_url.strip()
        if model is None:
            base_url, _, model = base_url.partition("#")
        model = (model or "").strip()
        if not model:
            raise InvalidInputError(
                f"no model name for the OpenAI-compatible server '{base_url}'; add '#<model>', "
                f"e.g. '{_EXAMPLE}'"
            )
        if api_key_env not in (None, "") and (not isinstance(api_key_env, str)
                                              or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", api_key_env)):
            raise InvalidInputError(  # never echoed: it may be the key itself
                "api_key_env is the name of the environment variable that holds the API key (letters, digits "
                "and _, e.g. 'OPENAI_API_KEY'), not the key; put the key in that variable (the value given is "
                "not shown here)"
            )
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidInputError(
                f"'{base_url}' is not an http(s) URL; pass the server root, e.g. 'http://localhost:8000/v1'"
            )
        if parts.username is not None or parts.password is not None:  # never echoed: it holds a secret
            raise InvalidInputError(
                f"the LVLM server URL for {parts.hostname} carries a user name or password; take them out "
                f"and put the key in the environment variable {api_key_env or 'OPENAI_API_KEY'} (sent as a "
                "Bearer token)"
            )
        query = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))  # e.g. Azure's api-version
        if parts.query:
            base_url = urllib.parse.urlunsplit(parts._replace(query=""))
        try:
            parts.port  # noqa: B018 - a port that is not a number raises here, not at the first question
        except ValueError:
            raise InvalidInputError(f"'{base_url}' has a port that is not a number 0-65535") from None
        numbers = {"timeout": timeout, "retries": retries, "backoff": backoff, "max_backoff": max_backoff}
        for key, value in numbers.items():
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
                    or not np.isfinite(value):
                raise InvalidInputError(f"{key} must be a number, got {value!r}")
        if timeout <= 0 or retries < 0 or backoff < 0:
            raise InvalidInputError("timeout must be > 0, retries and backoff >= 0")
        check_max_image_side(max_image_side)
        if isinstance(max_images, bool) or not isinstance(max_images, int) or max_images < 1:
            raise InvalidInputError(f"max_images must be an integer >= 1, got {max_images!r}")
        if max_tokens_field not in ("max_tokens", "max_completion_tokens"):
            raise InvalidInputError("max_tokens_field must be 'max_tokens' or 'max_completion_tokens'")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.name = f"openai:{self.base_url}#{model}"
        self.api_key_env = api_key_env
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self.stream = bool(stream)
        self.image_format = image_format
        self.max_image_side = max_image_side
        self.max_tokens_field = max_tokens_field
        self.extra_body = dict(extra_body or {})
        self.max_images = max_images
        self.query = query  # sent with every request (the SDK's default_query)
        self._loopback = _is_loopback(parts.hostname)
        self._clear_text = parts.scheme == "http" and not self._loopback  # a key sent there can be read on the way
        self._warned = False
        require("openai", "openai")  # fail now, with the pip command, not at the first question

    # ---- the official client -----------------------------------------------------------
    def _client(self, *, retries: int | None = None, timeout: float | None = None) -> Any:
        """An ``openai.OpenAI`` client for this server, with the API key read now from the environment."""
        openai = require("openai", "openai")
        key = os.environ.get(self.api_key_env, "").strip() if self.api_key_env else ""
        if key and self._clear_text and not self._warned:
            self._warned = True
            log.warning("sending the API key in $%s over plain http to %s: anyone on the way can read it; "
                        "use https, or api_key_env=None (CLI: --lvlm-option api_key_env=none) for a server that "
                        "needs no key", self.api_key_env,
                        urllib.parse.urlsplit(self.base_url).hostname)
        http: dict[str, Any] = {}
        if self._loopback:  # a local server: never through the http(s)_proxy of the environment
            http["trust_env"] = False
        if not key:  # no key: no Authorization header at all (the SDK insists on one; a proxy may refuse any)
            http["event_hooks"] = {"request": [_without_authorization]}
        options: dict[str, Any] = {"http_client": openai.DefaultHttpxClient(**http)} if http else {}
        return openai.OpenAI(
            base_url=self.base_url, api_key=key or "no-key", timeout=self.timeout if timeout is None else timeout,
            max_retries=self.retries if retries is None else retries,
            default_headers={"User-Agent": "pekit (OpenAI-compatible client)"}, default_query=self.query or None,
            **options,
        )

    def _call(self, path: str, send: Any, *, retries: int | None = None, timeout: float | None = None,
              explain: bool = True) -> Any:
        """Run ``send(client)``; the SDK's errors become a `BackendError` that says what to fix."""
        with server_errors(self, path, retries=retries, timeout=timeout, explain=explain), \
                self._client(retries=retries, timeout=timeout) as client:
            return send(client)

    def list_models(self, *, quiet: bool = False) -> list[str] | None:
        """Model ids from ``GET <base>/models``; ``None`` (``quiet``) or `BackendError` on failure.

        >>> OpenAILVLM("http://127.0.0.1:9/v1#m", retries=0).list_models(quiet=True) is None
        True
        """
        try:
            page = self._call("/models", lambda client: client.models.list(), retries=0,
                              timeout=min(self.timeout, 10.0), explain=False)
            return [str(m.id) for m in page.data]
        except (BackendError, ValueError, KeyError, AttributeError, TypeError):
            if quiet:
                return None
            raise

    # ---- chat completions ------------------------------------------------------------
    def _payload(self, image: np.ndarray | list[np.ndarray], prompt: str, max_new_tokens: int,
                 temperature: float, seed: int | None, stream: bool) -> dict[str, Any]:
        check_generation(max_new_tokens, temperature, seed)
        parts: list[dict[str, Any]] = [
            {"type": "image_url", "image_url": {"url": image_data_url(i, fmt=self.image_format,
                                                                      max_side=self.max_image_side)}}
            for i in check_images(image, self.max_images)]
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "user", "content": [*parts, {"type": "text", "text": check_prompt(prompt)}]}],
            self.max_tokens_field: int(max_new_tokens),
            "temperature": float(temperature),
            "stream": stream,
        }
        if seed is not None:
            body["seed"] = int(seed)
        if self.extra_body:
            body["extra_body"] = dict(self.extra_body)
        return body

    def generate(
        self,
        image: np.ndarray | list[np.ndarray],
        prompt: str,
        *,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        temperature: float = 0.0,
        seed: int | None = None,
    ) -> str:
        """Send the image (or a list of up to ``max_images``) and prompt; return the answer text
        (streamed and joined when ``stream``)."""
        if self.stream:
            return "".join(self.stream_text(image, prompt, max_new_tokens=max_new_tokens,
                                             temperature=temperature, seed=seed)).strip()
        body = self._payload(image, prompt, max_new_tokens, temperature, seed, stream=False)
        start = time.perf_counter()
        raw = self._call("/chat/completions",
                         lambda client: client.chat.completions.with_raw_response.create(**body).http_response.content)
        try:
            data = json.loads(raw.decode("utf-8"))
            content = data["choices"][0]["message"].get("content")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise BackendError(
                f"{self.base_url}/chat/completions sent an answer that is not a chat completion: "
                f"{raw[:200]!r}"
            ) from exc
        if isinstance(content, list):  # content parts
            content = "".join(str(p.get("text") or "") for p in content if isinstance(p, dict))
        if content is not None and not isinstance(content, str):
            raise BackendError(f"{self.base_url}/chat/completions sent a message whose content is "
                               f"{type(content).__name__}, not text: {raw[:200]!r}")
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        self.last_usage = {"prompt_tokens": usage.get("prompt_tokens"),
                           "completion_tokens": usage.get("completion_tokens"),
                           "seconds": round(time.perf_counter() - start, 4)}
        text = (content or "").strip()
        if not text:
            choice = data["choices"][0]
            self._empty(choice["message"].get("refusal"), choice.get("finish_reason"), max_new_tokens)
        return text

    def _empty(self, refusal: Any, finish: Any, max_new_tokens: int) -> None:
        """An empty answer is an error that says why, when the server said why."""
        if refusal:
            raise BackendError(f"'{self.model}' refused to answer: {one_line(refusal)}")
        if finish == "length":
            raise BackendError(f"'{self.model}' used all max_new_tokens={max_new_tokens} before any answer "
                               "text (a reasoning model thinks first): raise max_new_tokens")
        log.warning("'%s' at %s sent an empty answer (finish_reason %r)", self.model, self.base_url, finish)

    def stream_text(
        self,
        image: np.ndarray | list[np.ndarray],
        prompt: str,
        *,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        temperature: float = 0.0,
        seed: int | None = None,
    ) -> Iterator[str]:
        """Yield the answer in pieces as the server streams them (server-sent events).

        >>> for piece in lvlm.stream_text(image, "Describe Bo."):  # doctest: +SKIP
        ...     print(piece, end="", flush=True)
        """
        body = self._payload(image, prompt, max_new_tokens, temperature, seed, stream=True)
        start = time.perf_counter()
        events, sent, refusal, finish = 0, False, "", None
        with server_errors(self, "/chat/completions"), self._client() as client:
            try:
                for chunk in client.chat.completions.create(**body):  # pieces as the server sends them
                    events += 1
                    choices = getattr(chunk, "choices", None)
                    if not isinstance(choices, list):  # JSON, but a list, a string, a number: no chunk
                        raise TypeError(f"the event is {type(chunk).__name__}: {str(chunk)[:80]}")
                    for choice in choices:
                        delta = getattr(choice, "delta", None)
                        piece = getattr(delta, "content", None)
                        refusal += str(getattr(delta, "refusal", None) or "")
                        finish = getattr(choice, "finish_reason", None) or finish
                        if isinstance(piece, str) and piece:
                            sent = True
                            yield piece
            except (ValueError, AttributeError, TypeError) as exc:  # an event that is not a chat chunk
                raise BackendError(f"{self.base_url}/chat/completions sent a stream event that is not a chat "
                                   f"completion chunk ({type(exc).__name__}: {str(exc)[:200]})") from None
        if not events:
            raise BackendError(f"{self.base_url}/chat/completions sent no stream events; the server may not "
                               "support streaming: use stream=False")
        if not sent:
            self._empty(refusal, finish, max_new_tokens)
        self.last_usage = {"seconds": round(time.perf_counter() - start, 4)}

    def __repr__(self) -> str:
        return f"OpenAILVLM({self.base_url!r}, {self.model!r})"
