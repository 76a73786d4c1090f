"""`openai:<base url>#<model>`: any OpenAI-compatible chat-completions server, stdlib only.

Works with vLLM, Ollama, llama.cpp's server, LM Studio, TGI and hosted APIs. The image
travels as a ``data:`` URL inside the user message; the API key (if any) is read from an
environment variable at request time and never logged. 429 and 5xx answers and dropped
connections are retried with exponential backoff (honouring ``Retry-After``); other 4xx
answers become a `BackendError` saying what to fix.

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
import random
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import numpy as np

from pekit.answer.base import DEFAULT_MAX_NEW_TOKENS, check_generation, check_image, check_prompt
from pekit.errors import BackendError, InvalidInputError

log = logging.getLogger(__name__)

__all__ = ["OpenAILVLM", "image_data_url"]

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_EXAMPLE = "openai:http://localhost:8000/v1#Qwen/Qwen2-VL-7B-Instruct"


def image_data_url(image: np.ndarray, *, fmt: str = "jpeg", quality: int = 90,
                   max_side: int | None = None) -> str:
    """Encode an ``(H, W, 3) uint8`` image as a ``data:image/...;base64,`` URL.

    >>> image_data_url(np.zeros((2, 2, 3), np.uint8), fmt="png")[:22]
    'data:image/png;base64,'
    """
    from PIL import Image

    pil = Image.fromarray(check_image(image))
    if max_side and max(pil.size) > max_side:
        scale = max_side / max(pil.size)
        size = (max(1, round(pil.width * scale)), max(1, round(pil.height * scale)))
        pil = pil.resize(size, Image.Resampling.BICUBIC)
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


def _server_message(body: bytes) -> str:
    """The ``error.message`` of an OpenAI-style error body, else the text (shortened)."""
    text = body.decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return text[:300]
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict):
            return str(err.get("message") or err.get("detail") or err)[:300]
        return str(err)[:300]
    return text[:300]


class OpenAILVLM:
    """Client of an OpenAI-compatible ``/chat/completions`` endpoint behind the `LVLM` protocol.

    Args:
        base_url: server root including the version, e.g. ``"http://localhost:8000/v1"``;
            may carry the model as ``"<url>#<model>"`` (the registry's spec format).
        model: model name as the server knows it (``"gpt-4o-mini"``, ``"llava:13b"``...).
        api_key_env: environment variable holding the API key (``None``: never send one).
            Local servers usually need none; a missing key is reported on 401/403.
        timeout: seconds to wait for the server per request (connect and each read).
        retries: extra attempts on 429, 5xx and dropped connections.
        backoff: first retry delay in seconds, doubled each attempt (with jitter), capped
            by ``max_backoff``; a ``Retry-After`` header is honoured up to that cap.
        stream: ask for server-sent events and assemble them (see `stream_text`).
        image_format: ``"jpeg"`` (small) or ``"png"`` (lossless).
        max_image_side: downscale the image so its long side is at most this many pixels.
        max_tokens_field: ``"max_tokens"`` or ``"max_completion_tokens"`` (newer OpenAI models).
        extra_body: more JSON fields for every request (``{"top_p": 0.9}``).

    Example:
        >>> OpenAILVLM("http://127.0.0.1:11434/v1", "llava:7b").model
        'llava:7b'
    """

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
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidInputError(
                f"'{base_url}' is not an http(s) URL; pass the server root, e.g. 'http://localhost:8000/v1'"
            )
        if timeout <= 0 or retries < 0 or backoff < 0:
            raise InvalidInputError("timeout must be > 0, retries and backoff >= 0")
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
        self.last_usage: dict[str, Any] = {}
        handlers: list[Any] = [urllib.request.ProxyHandler({})] if _is_loopback(parts.hostname) else []
        self._opener = urllib.request.build_opener(*handlers)

    # ---- HTTP ------------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json",
                   "User-Agent": "pekit (OpenAI-compatible client)"}
        key = os.environ.get(self.api_key_env, "").strip() if self.api_key_env else ""
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        if retry_after:
            try:
                return min(self.max_backoff, max(0.0, float(retry_after)))
            except ValueError:
                pass
        base = min(self.max_backoff, self.backoff * (2 ** attempt))
        return base * (0.5 + random.random() / 2)

    def _open(self, method: str, path: str, body: dict[str, Any] | None = None, *,
              retries: int | None = None, timeout: float | None = None, explain: bool = True) -> Any:
        """Send one request with retries; returns the open response (caller closes it)."""
        url = self.base_url + path
        data = None if body is None else json.dumps(body).encode("utf-8")
        retries = self.retries if retries is None else retries
        timeout = self.timeout if timeout is None else timeout
        for attempt in range(retries + 1):
            request = urllib.request.Request(url, data=data, headers=self._headers(), method=method)
            try:
                return self._opener.open(request, timeout=timeout)
            except urllib.error.HTTPError as exc:
                payload = exc.read() or b""
                if exc.code in RETRY_STATUSES and attempt < retries:
                    delay = self._delay(attempt, exc.headers.get("Retry-After") if exc.headers else None)
                    log.warning("%s answered %d; retrying in %.2fs (%d/%d)", url, exc.code, delay,
                                attempt + 1, retries)
                    time.sleep(delay)
                    continue
                if not explain:
                    raise BackendError(f"{url} answered {exc.code}: {_server_message(payload)}") from None
                raise self._http_error(exc.code, payload, url, attempt) from None
            except TimeoutError as exc:
                raise BackendError(
                    f"no answer from {url} within {timeout:g} s; the server may be overloaded or the "
                    "model still loading: raise timeout= or try again"
                ) from exc
            except (urllib.error.URLError, ConnectionError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                if isinstance(reason, TimeoutError):
                    raise BackendError(f"no answer from {url} within {timeout:g} s; raise timeout= "
                                       "or check the server") from exc
                if attempt < retries:
                    delay = self._delay(attempt, None)
                    log.warning("cannot reach %s (%s); retrying in %.2fs", url, reason, delay)
                    time.sleep(delay)
                    continue
                raise BackendError(
                    f"cannot reach the LVLM server at {url}: {reason}. Is it running, and is the base "
                    "URL right (e.g. http://localhost:8000/v1 for vLLM, http://localhost:11434/v1 for "
                    "Ollama)?"
                ) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _http_error(self, status: int, payload: bytes, url: str, attempt: int) -> BackendError:
        message = _server_message(payload)
        if status in (401, 403):
            if not self.api_key_env:
                hint = "pass api_key_env='<VARIABLE>' naming the environment variable that holds the key"
            elif os.environ.get(self.api_key_env, "").strip():
                hint = f"the key in ${self.api_key_env} was rejected; set a valid one"
            else:
                hint = f"set the API key in the environment variable {self.api_key_env} (it is not set)"
            return BackendError(f"{url} refused the request ({status}: {message}); {hint}")
        if status == 404:
            models = self.list_models(quiet=True)
            if models is not None and self.model not in models:
                listed = ", ".join(models[:20]) + (" ..." if len(models) > 20 else "") or "(none)"
                return BackendError(
                    f"model '{self.model}' is not served at {self.base_url} (404: {message}); the model "
                    f"name is wrong: use one of: {listed}"
                )
            return BackendError(
                f"{url} answered 404 ({message}); check the model name '{self.model}' and that the base "
                "URL is the API root (it usually ends with /v1)"
            )
        if status in RETRY_STATUSES:
            return BackendError(
                f"{url} answered {status} ({message}) {attempt + 1} time(s); the server is busy or failing: "
                "try again later or raise retries="
            )
        if status == 413:
            return BackendError(f"{url} says the request is too large (413); lower max_image_side")
        hint = ""
        if "image" in message.lower() or "multimodal" in message.lower() or "vision" in message.lower():
            hint = f"; does '{self.model}' accept images? use a vision-language model"
        return BackendError(f"{url} rejected the request ({status}: {message}){hint}")

    def list_models(self, *, quiet: bool = False) -> list[str] | None:
        """Model ids from ``GET <base>/models``; ``None`` (``quiet``) or `BackendError` on failure.

        >>> OpenAILVLM("http://127.0.0.1:9/v1#m", retries=0).list_models(quiet=True) is None
        True
        """
        try:
            with self._open("GET", "/models", retries=0, timeout=min(self.timeout, 10.0),
                            explain=False) as response:
                data = json.loads(response.read().decode("utf-8"))
            return [str(m["id"]) for m in data.get("data", []) if isinstance(m, dict) and "id" in m]
        except (BackendError, ValueError, KeyError, AttributeError, TypeError):
            if quiet:
                return None
            raise

    # ---- chat completions ------------------------------------------------------------
    def _payload(self, image: np.ndarray, prompt: str, max_new_tokens: int, temperature: float,
                 seed: int | None, stream: bool) -> dict[str, Any]:
        check_generation(max_new_tokens, temperature, seed)
        url = image_data_url(check_image(image), fmt=self.image_format, max_side=self.max_image_side)
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": url}},
                {"type": "text", "text": check_prompt(prompt)},
            ]}],
            self.max_tokens_field: int(max_new_tokens),
            "temperature": float(temperature),
            "stream": stream,
        }
        if seed is not None:
            body["seed"] = int(seed)
        body.update(self.extra_body)
        return body

    def generate(
        self,
        image: np.ndarray,
        prompt: str,
        *,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        temperature: float = 0.0,
        seed: int | None = None,
    ) -> str:
        """Send the image and prompt; return the answer text (streamed and joined when ``stream``)."""
        if self.stream:
            return "".join(self.stream_text(image, prompt, max_new_tokens=max_new_tokens,
                                             temperature=temperature, seed=seed)).strip()
        body = self._payload(image, prompt, max_new_tokens, temperature, seed, stream=False)
        start = time.perf_counter()
        with self._open("POST", "/chat/completions", body) as response:
            raw = response.read()
        try:
            data = json.loads(raw.decode("utf-8"))
            content = data["choices"][0]["message"].get("content")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise BackendError(
                f"{self.base_url}/chat/completions sent an answer that is not a chat completion: "
                f"{raw[:200]!r}"
            ) from exc
        if isinstance(content, list):  # content parts
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        usage = data.get("usage") or {}
        self.last_usage = {"prompt_tokens": usage.get("prompt_tokens"),
                           "completion_tokens": usage.get("completion_tokens"),
                           "seconds": round(time.perf_counter() - start, 4)}
        return (content or "").strip()

    def stream_text(
        self,
        image: np.ndarray,
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
        with self._open("POST", "/chat/completions", body) as response:
            for data in self._events(response):
                try:
                    chunk = json.loads(data)
                except ValueError as exc:
                    raise BackendError(f"the server streamed a line that is not JSON: {data[:200]!r}") \
                        from exc
                if not isinstance(chunk, dict) or chunk.get("error"):
                    message = _server_message(data.encode())
                    raise BackendError(f"the server reported an error mid-stream: {message}")
                for choice in chunk.get("choices") or []:
                    piece = (choice.get("delta") or {}).get("content")
                    if piece:
                        yield piece
        self.last_usage = {"seconds": round(time.perf_counter() - start, 4)}

    def _events(self, response: Any) -> Iterator[str]:
        """The ``data:`` payloads of a server-sent-events response, up to ``[DONE]``."""
        try:
            for raw_line in response:
                line = raw_line.decode("utf-8", "replace").strip()
                if not line.startswith("data:"):
                    continue  # blank separators, ": keep-alive" comments, "event:" lines
                data = line[5:].strip()
                if data == "[DONE]":
                    return
                yield data
        except OSError as exc:
            raise BackendError(f"the stream from {self.base_url} broke off: {exc}; try again") from exc

    def __repr__(self) -> str:
        return f"OpenAILVLM({self.base_url!r}, {self.model!r})"
