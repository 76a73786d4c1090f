"""`openai:` backend against a real chat-completions HTTP server on 127.0.0.1 that records requests."""

from __future__ import annotations

import base64
import io
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest
from PIL import Image

from pekit.answer import load_lvlm, respond
from pekit.answer.openai import OpenAILVLM
from pekit.errors import BackendError, BackendNotFoundError, InvalidInputError
from pekit.prompt import colour_rgb
from pekit.types import Detections

MODEL = "tiny-vlm"


class FakeServer(ThreadingHTTPServer):
    """Implements GET /v1/models and POST /v1/chat/completions (plain and streamed)."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[dict[str, Any]] = []
        self.script: list[tuple[int, dict[str, str], Any]] = []  # responses to give first
        self.models = [MODEL, "other-model"]
        self.api_key: str | None = None
        self.reply = "Bo is sleeping on the sofa."
        self.delay = 0.0
        self.delays: list[float] = []  # per request, before `delay`
        self.stream_error: str | None = None  # sent as an error event after the first piece
        self.stream_events: list[str] | None = None  # sent as they are (each a `data:` line), then [DONE]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def handle_error(self, request, client_address) -> None:  # client went away (timeouts)
        pass


class _Handler(BaseHTTPRequestHandler):
    server: FakeServer

    def log_message(self, *args) -> None:
        pass

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _record(self, body: Any) -> None:
        self.server.requests.append({"method": self.command, "path": self.path,  # header names: any case
                                     "headers": {k.title(): v for k, v in self.headers.items()}, "body": body})

    def do_GET(self) -> None:
        self._record(None)
        if self.path == "/v1/models":
            models = [{"id": m, "object": "model"} for m in self.server.models]
            self._send(200, {"object": "list", "data": models})
        else:
            self._send(404, {"error": {"message": "not found"}})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self._record(body)
        srv = self.server
        delay = srv.delays.pop(0) if srv.delays else srv.delay
        if delay:
            time.sleep(delay)
        if self.path.partition("?")[0] != "/v1/chat/completions":
            return self._send(404, {"error": {"message": f"no route {self.path}"}})
        if srv.api_key and self.headers.get("Authorization") != f"Bearer {srv.api_key}":
            error = {"message": "Incorrect API key provided", "code": "invalid_api_key"}
            return self._send(401, {"error": error})
        if srv.script:
            status, headers, payload = srv.script.pop(0)
            return self._send(status, payload, headers)
        if body.get("model") not in srv.models:
            return self._send(404, {"error": {"message": f"The model `{body.get('model')}` does not exist."}})
        if body.get("stream"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            self.wfile.write(b": keep-alive\n\n")
            for event in srv.stream_events or []:
                self.wfile.write(f"data: {event}\n\n".encode())
            for i, word in enumerate([] if srv.stream_events else srv.reply.split(" ")):
                piece = word if i == 0 else " " + word
                choices = [{"index": 0, "delta": {"content": piece}}]
                chunk = {"object": "chat.completion.chunk", "choices": choices}
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
                if srv.stream_error:
                    error = {"error": {"message": srv.stream_error}}
                    self.wfile.write(f"data: {json.dumps(error)}\n\n".encode())
                    return None
            self.wfile.write(b"data: [DONE]\n\n")
            return None
        return self._send(200, {
            "id": "cmpl-1", "object": "chat.completion", "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": srv.reply},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 42, "completion_tokens": 7, "total_tokens": 49},
        })


@pytest.fixture
def server():
    srv = FakeServer()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def image() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)


def _lvlm(server: FakeServer, **kwargs: Any) -> OpenAILVLM:
    kwargs = {"retries": 2, "backoff": 0.01, "timeout": 5.0, **kwargs}
    return load_lvlm(f"openai:{server.url}#{MODEL}", **kwargs)


def _decode(url: str) -> np.ndarray:
    header, _, data = url.partition(",")
    assert header in ("data:image/png;base64", "data:image/jpeg;base64")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"))


def test_image_and_prompt_arrive_as_the_protocol_requires(server, image, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-123")
    lvlm = _lvlm(server, image_format="png")
    assert lvlm.name == f"openai:{server.url}#{MODEL}"
    text = lvlm.generate(image, "What is Bo doing?", max_new_tokens=32, temperature=0.2, seed=7)
    assert text == "Bo is sleeping on the sofa."
    assert lvlm.last_usage["prompt_tokens"] == 42
    (req,) = server.requests
    assert req["method"] == "POST" and req["path"] == "/v1/chat/completions"
    assert req["headers"]["Content-Type"] == "application/json"
    assert req["headers"]["Authorization"] == "Bearer sk-test-123"
    body = req["body"]
    assert body["model"] == MODEL and body["max_tokens"] == 32 and body["temperature"] == 0.2
    assert body["seed"] == 7 and body["stream"] is False
    (message,) = body["messages"]
    assert message["role"] == "user"
    parts = {p["type"]: p for p in message["content"]}
    assert parts["text"]["text"] == "What is Bo doing?"
    assert np.array_equal(_decode(parts["image_url"]["image_url"]["url"]), image)  # PNG is lossless


def test_respond_sends_the_annotated_image_and_personal_prompt(server):
    img = np.full((120, 160, 3), 128, np.uint8)
    dets = Detections(xyxy=[[10, 10, 80, 100]], score=[0.9], name=["Bo"])
    answer = respond(_lvlm(server, image_format="png"), img, dets, question="What is Bo doing?",
                     contexts={"Bo": "my parents' dog"}, known_names=["Bo", "Mochi"])
    assert answer.text == "Bo is sleeping on the sofa."
    body = server.requests[-1]["body"]
    parts = {p["type"]: p for p in body["messages"][0]["content"]}
    assert parts["text"]["text"] == answer.prompt
    assert "The entity in the red box is called Bo." in answer.prompt and "my parents' dog" in answer.prompt
    sent = _decode(parts["image_url"]["image_url"]["url"])
    assert np.array_equal(sent, answer.image)
    assert tuple(sent[50, 10]) == colour_rgb("red")
    assert answer.meta["backend"].startswith("openai:") and answer.meta["usage"]["completion_tokens"] == 7


def test_jpeg_default_and_downscaling(server, image):
    _lvlm(server, max_image_side=32).generate(image, "Describe.")
    url = server.requests[-1]["body"]["messages"][0]["content"][0]["image_url"]["url"]
    assert url.startswith("data:image/jpeg;base64,")
    assert _decode(url).shape == (24, 32, 3)


@pytest.mark.parametrize("status", [503, 429, 502])
def test_retries_on_busy_or_failing_server(server, image, status):
    server.script = [(status, {"Retry-After": "0"}, {"error": {"message": "busy"}})] * 2
    assert _lvlm(server).generate(image, "Describe.") == "Bo is sleeping on the sofa."
    assert len(server.requests) == 3


def test_gives_up_after_retries_with_a_clear_error(server, image):
    server.script = [(503, {}, {"error": {"message": "overloaded"}})] * 5
    with pytest.raises(BackendError, match=r"answered 503 \(overloaded\) 3 time\(s\).*retries="):
        _lvlm(server).generate(image, "Describe.")
    assert len(server.requests) == 3


@pytest.mark.parametrize(("headers", "wait"), [({"Retry-After": "300"}, "(Retry-After: 300)"),
                                              ({"x-should-retry": "false"}, "")])
def test_a_429_the_server_says_not_to_retry_is_counted_as_sent(server, image, headers, wait):
    # a wait over two minutes, or x-should-retry: false (OpenAI's spent quota): the SDK sends once
    server.script = [(429, headers, {"error": {"message": "You exceeded your current quota"}})]
    with pytest.raises(BackendError, match=r"429 \(You exceeded your current quota\) 1 time\(s\) and asked not to "
                                           r"be retried now") as info:
        _lvlm(server).generate(image, "Describe.")
    assert len(server.requests) == 1 and wait in str(info.value) and "retries=" not in str(info.value)


_NGINX_502 = b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center>nginx</center>\r\n</html>\r\n"


@pytest.mark.parametrize(("status", "payload", "said"), [
    (502, _NGINX_502, "(<html> <head><title>502 Bad Gateway</title></head> <body>"),
    (400, {"error": {"message": "bad\nimage \x1b[2J\x1b[31mred"}}, "(400: bad image \\x1b[2J\\x1b[31mred)"),
    (None, "out of\r\nmemory \x1b]0;owned\x07", "out of memory \\x1b]0;owned\\x07"),  # mid-stream
])
def test_what_the_server_says_is_one_line_without_terminal_escapes(server, image, status, payload, said):
    # the CLI prints a BackendError as one "pekit ask: error: ..." line on the terminal
    if status is None:
        server.stream_error = payload
    else:
        server.script = [(status, {}, payload)]
    with pytest.raises(BackendError) as info:
        _lvlm(server, retries=0, stream=status is None).generate(image, "Describe.")
    message = str(info.value)
    assert said in message and not any(ch in message for ch in "\r\n\x1b\x07")


@pytest.mark.parametrize("env", [None, "EMPTY_VLM_KEY"])
def test_no_key_means_no_authorization_header(server, image, monkeypatch, env):
    """``api_key_env=None`` (or a variable that is not set) sends no key at all, as documented,
    not a made-up ``Bearer no-key`` that a proxy checking keys would refuse."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-not-for-this-server")
    monkeypatch.delenv("EMPTY_VLM_KEY", raising=False)
    assert _lvlm(server, api_key_env=env).generate(image, "Describe.")
    assert _lvlm(server, api_key_env=env).list_models() is not None
    assert [r["headers"].get("Authorization") for r in server.requests] == [None, None]


def test_401_with_missing_key_says_to_set_the_variable(server, image, monkeypatch):
    monkeypatch.delenv("MY_VLM_KEY", raising=False)
    server.api_key = "secret"
    with pytest.raises(BackendError, match=r"401.*set the API key in the environment variable MY_VLM_KEY "
                                           r"\(it is not set\)"):
        _lvlm(server, api_key_env="MY_VLM_KEY").generate(image, "Describe.")
    assert len(server.requests) == 1  # 4xx is not retried
    monkeypatch.setenv("MY_VLM_KEY", "wrong")
    with pytest.raises(BackendError, match=r"key in \$MY_VLM_KEY was rejected") as info:
        _lvlm(server, api_key_env="MY_VLM_KEY").generate(image, "Describe.")
    assert "wrong" not in str(info.value)  # the key itself is never shown
    monkeypatch.setenv("MY_VLM_KEY", "secret")
    assert _lvlm(server, api_key_env="MY_VLM_KEY").generate(image, "Describe.")


def test_wrong_model_name_lists_the_served_models(server, image):
    lvlm = load_lvlm(f"openai:{server.url}#no-such-model", retries=0)
    with pytest.raises(BackendError, match=r"model 'no-such-model' is not served.*name is wrong.*"
                                           r"tiny-vlm, other-model"):
        lvlm.generate(image, "Describe.")
    assert [r["method"] + " " + r["path"] for r in server.requests] == [
        "POST /v1/chat/completions", "GET /v1/models"]


def test_wrong_base_url_path_hints_at_v1(server, image):
    lvlm = OpenAILVLM(server.url.removesuffix("/v1") + "/api", MODEL, retries=0)
    with pytest.raises(BackendError, match=r"404.*ends with /v1"):
        lvlm.generate(image, "Describe.")


def test_text_only_model_rejecting_images(server, image):
    server.script = [(400, {}, {"error": {"message": "This model does not support image input"}})]
    with pytest.raises(BackendError, match=r"400.*does 'tiny-vlm' accept images"):
        _lvlm(server).generate(image, "Describe.")


def test_unreachable_endpoint_names_the_url(image):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    lvlm = OpenAILVLM(f"http://127.0.0.1:{port}/v1", MODEL, retries=1, backoff=0.01)
    with pytest.raises(BackendError, match=rf"cannot reach the LVLM server at http://127.0.0.1:{port}/v1/chat"):
        lvlm.generate(image, "Describe.")


def test_timeout_is_a_clear_error(server, image):
    server.delay = 1.0
    with pytest.raises(BackendError, match=r"no answer .* within 0.2 s.*timeout="):
        _lvlm(server, timeout=0.2).generate(image, "Describe.")


def test_streaming(server, image):
    lvlm = _lvlm(server, stream=True)
    assert lvlm.generate(image, "Describe.") == "Bo is sleeping on the sofa."
    assert server.requests[-1]["body"]["stream"] is True
    pieces = list(lvlm.stream_text(image, "Describe."))
    assert len(pieces) == 6 and "".join(pieces) == server.reply


def test_not_a_chat_completion(server, image):
    server.script = [(200, {}, b"<html>hello</html>")]
    with pytest.raises(BackendError, match="not a chat completion"):
        _lvlm(server).generate(image, "Describe.")


def test_proxy_settings_do_not_capture_local_servers(server, image, monkeypatch):
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    assert _lvlm(server).generate(image, "Describe.")


@pytest.mark.parametrize(
    ("name", "error", "match"),
    [
        ("openai:http://localhost:8000/v1", InvalidInputError, "add '#<model>'"),
        ("openai:localhost:8000/v1#m", InvalidInputError, "not an http"),
        ("openai:", InvalidInputError, "needs '<base url>#<model>'"),
        ("gpt:foo", BackendNotFoundError, r"none, hf:<\.\.\.>, openai:<\.\.\.>"),
        ("openai:http://localhost:abc/v1#m", InvalidInputError, "port that is not a number"),
    ],
)
def test_bad_specs(name, error, match):
    with pytest.raises(error, match=match):
        load_lvlm(name)


def test_a_query_in_the_url_goes_with_every_request(server, image):
    lvlm = load_lvlm(f"openai:{server.url}?api-version=2024-06-01#{MODEL}", retries=0)
    assert lvlm.generate(image, "Describe.") == server.reply
    assert server.requests[-1]["path"] == "/v1/chat/completions?api-version=2024-06-01"
    assert lvlm.base_url == server.url


def test_a_password_in_the_url_is_refused_and_never_repeated():
    with pytest.raises(InvalidInputError, match="user name or password") as caught:
        load_lvlm("openai:http://user:pa55word@10.0.0.5:8000/v1#m")
    assert "pa55word" not in str(caught.value) and "OPENAI_API_KEY" in str(caught.value)


@pytest.mark.parametrize(("kwargs", "match"), [({"timeout": "30"}, "timeout must be a number"),
                                               ({"retries": None}, "retries must be a number"),
                                               ({"max_image_side": -5}, "max_image_side"),
                                               ({"max_image_side": 0}, "max_image_side")])
def test_bad_options(server, kwargs, match):
    with pytest.raises(InvalidInputError, match=match):
        OpenAILVLM(f"{server.url}#{MODEL}", **kwargs)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000/v1#m", "http://me:pw@example.com/v1#m"])
def test_the_key_passed_as_api_key_env_is_refused_and_never_repeated(url):
    # the key where the name of its variable goes: said back in "set the API key in the
    # environment variable sk-..." on a 401, or in the URL-password message
    with pytest.raises(InvalidInputError, match="name of the environment variable") as info:
        OpenAILVLM(url, api_key_env="sk-proj-Abc123SECRET")
    assert "SECRET" not in str(info.value)
    assert OpenAILVLM("http://127.0.0.1:8000/v1#m", api_key_env="MY_VLM_KEY_2").api_key_env == "MY_VLM_KEY_2"


def test_a_key_for_a_plain_http_server_elsewhere_is_warned_about(monkeypatch, caplog):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    lvlm = OpenAILVLM("http://10.0.0.5:8000/v1#m")
    with caplog.at_level("WARNING", logger="pekit.answer.openai"):
        lvlm._client().close()
        lvlm._client().close()
    assert caplog.text.count("over plain http to 10.0.0.5") == 1 and "sk-secret" not in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="pekit.answer.openai"):
        OpenAILVLM("https://10.0.0.5/v1#m")._client().close()
        OpenAILVLM("http://127.0.0.1:8000/v1#m")._client().close()
    assert "plain http" not in caplog.text


def _completion(message: dict[str, Any], finish: str = "stop", **extra: Any) -> dict[str, Any]:
    return {"id": "c", "object": "chat.completion", "model": MODEL,
            "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}], **extra}


@pytest.mark.parametrize(("payload", "match"), [
    (_completion({"content": 123}), "content is int, not text"),
    (_completion({"content": {"text": "x"}}), "content is dict, not text"),
    (_completion({"content": None, "refusal": "I can't help with that."}), "refused to answer: I can't help"),
    (_completion({"content": ""}, finish="length"), "used all max_new_tokens=256"),
])
def test_answers_that_are_not_text_or_are_empty_say_why(server, image, payload, match):
    server.script = [(200, {}, payload)]
    with pytest.raises(BackendError, match=match):
        _lvlm(server).generate(image, "Describe.")


def test_odd_usage_is_ignored(server, image):
    server.script = [(200, {}, _completion({"content": "Bo."}, usage="lots"))]
    lvlm = _lvlm(server)
    assert lvlm.generate(image, "Describe.") == "Bo." and lvlm.last_usage["prompt_tokens"] is None


def test_a_server_that_does_not_stream_says_so(server, image):
    server.script = [(200, {}, _completion({"content": "Bo."}))]  # plain JSON to a stream=true request
    with pytest.raises(BackendError, match=r"no stream events.*stream=False"):
        _lvlm(server, stream=True).generate(image, "Describe.")


@pytest.mark.parametrize("question", ["", "   ", "x" * 100_000])
def test_bad_questions_never_reach_the_server(server, image, question):
    with pytest.raises(InvalidInputError, match=r"empty|limit is 10,000"):
        respond(_lvlm(server), image, Detections.empty(), question=question)
    assert server.requests == []


def test_bad_image_never_reaches_the_server(server):
    with pytest.raises(InvalidInputError, match=r"\(H, W, 3\)"):
        _lvlm(server).generate(np.zeros((4, 4), np.uint8), "Describe.")
    assert server.requests == []


def test_a_timed_out_request_is_retried(server, image):
    server.delays = [1.0]  # the first attempt times out, the second is answered
    assert _lvlm(server, timeout=0.3).generate(image, "Describe.") == "Bo is sleeping on the sofa."
    assert len(server.requests) == 2


@pytest.mark.parametrize("form", ["retry-after-ms", "http-date"])
def test_the_server_chooses_the_retry_delay(server, image, form):
    import email.utils

    if form == "retry-after-ms":
        headers, at_least = {"retry-after-ms": "1500"}, 1.4  # the SDK's own first delay is <= 0.5 s
    else:
        headers, at_least = {"Retry-After": email.utils.formatdate(time.time() + 3, usegmt=True)}, 1.0
    server.script = [(429, headers, {"error": {"message": "slow down"}})]
    start = time.perf_counter()
    assert _lvlm(server).generate(image, "Describe.") == "Bo is sleeping on the sofa."
    assert len(server.requests) == 2 and time.perf_counter() - start >= at_least


def test_without_the_sdk_the_error_has_the_pip_command(monkeypatch):
    import sys

    from pekit.errors import MissingDependencyError

    monkeypatch.setitem(sys.modules, "openai", None)  # as if not installed
    with pytest.raises(MissingDependencyError, match=r"pip install 'pekit-vlm\[openai\]'"):
        OpenAILVLM("http://127.0.0.1:8000/v1", MODEL)


def test_streaming_yields_pieces_and_reports_an_error_mid_stream(server, image):
    server.stream_error = "CUDA out of memory"
    pieces = _lvlm(server, stream=True).stream_text(image, "Describe.")
    assert next(pieces) == "Bo"  # the first piece arrives before the stream ends
    with pytest.raises(BackendError, match="CUDA out of memory"):
        next(pieces)


@pytest.mark.parametrize("event", ["[1, 2]", '"text"', "42", "null"])
def test_a_stream_event_that_is_json_but_no_chunk_is_an_error_not_an_empty_answer(server, image, event):
    server.stream_events = [event]
    with pytest.raises(BackendError, match="not a chat completion chunk"):
        _lvlm(server, stream=True).generate(image, "Describe.")


def test_a_server_that_hangs_up_is_not_called_unreachable(image):
    """Reached, then the connection closed without an answer (a crash on this request): the
    message says so, with no ".." and no "Is it running?"."""
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)

    def hang_up() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.recv(65536)
            conn.close()

    threading.Thread(target=hang_up, daemon=True).start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/v1#{MODEL}"
    try:
        with pytest.raises(BackendError) as info:
            load_lvlm(f"openai:{url}", retries=0, timeout=5.0).generate(image, "Describe.")
    finally:
        listener.close()
    message = str(info.value)
    assert "closed the connection without an answer" in message and "may have crashed" in message
    assert ".." not in message and "Is it running" not in message
