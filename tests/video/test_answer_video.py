"""Answers about a clip: key frames as separate images to multi-image backends, one contact
sheet to single-image ones, a caption per scene, and the fallback when a server takes one.

The LVLM is the real `openai:` client talking to a small OpenAI-compatible HTTP server on
127.0.0.1 that records each request; the per-image recognition is a plain function.
"""

from __future__ import annotations

import base64
import io
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from pekit.answer.openai import OpenAILVLM
from pekit.prompt import colour_rgb
from pekit.types import Detections
from pekit.video import recognize_video
from pekit.video.answer import key_frames, respond_video

pytest.importorskip("openai")


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.bodies: list[dict[str, Any]] = []
        self.errors: list[tuple[int, str]] = []  # answered first, in order

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class Handler(BaseHTTPRequestHandler):
    server: Server

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.bodies.append(body)
        if self.server.errors:
            status, message = self.server.errors.pop(0)
            payload: dict[str, Any] = {"error": {"message": message}}
        else:
            n = sum(p["type"] == "image_url" for p in body["messages"][0]["content"])
            status, payload = 200, {"id": "1", "object": "chat.completion", "model": body["model"], "choices": [
                {"index": 0, "message": {"role": "assistant", "content": f"saw {n} image(s)"},
                 "finish_reason": "stop"}]}
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _squares(image: np.ndarray, timings: dict[str, float]) -> Detections:
    """'Bo' where the frame has white pixels, 'Rex' where it has pure blue ones."""
    found = []
    for name, mask in (("Bo", image.min(axis=2) > 240), ("Rex", (image[..., 2] > 200) & (image[..., 0] < 50))):
        ys, xs = np.nonzero(mask)
        if len(xs):
            found.append((name, [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]))
    if not found:
        return Detections.empty()
    return Detections(xyxy=[b for _, b in found], score=[0.8] * len(found), name=[n for n, _ in found],
                      concept_id=[{"Bo": 1, "Rex": 2}[n] for n, _ in found])


@pytest.fixture
def clip(tmp_path: Path, make_clip: Callable[..., Path]) -> Path:
    """4 s at 10 fps, 96 x 128: Bo (white) 0.2-1.5 s, a cut at 2.0 s, Rex (blue) 2.5-3.5 s (small
    squares: their coming and going is not a cut)."""
    frames = []
    for i in range(40):
        img = np.full((96, 128, 3), 60 if i < 20 else 170, np.uint8)
        if 2 <= i < 15:
            img[20:40, 10:30] = 255
        if 25 <= i < 35:
            img[40:60, 80:100] = (0, 0, 255)
        frames.append(img)
    return make_clip(tmp_path / "clip.mp4", frames)


def _images(body: dict[str, Any]) -> list[np.ndarray]:
    urls = [p["image_url"]["url"] for p in body["messages"][0]["content"] if p["type"] == "image_url"]
    return [np.asarray(Image.open(io.BytesIO(base64.b64decode(u.partition(",")[2]))).convert("RGB")) for u in urls]


def _text(body: dict[str, Any]) -> str:
    return next(p["text"] for p in body["messages"][0]["content"] if p["type"] == "text")


def test_a_multi_image_backend_gets_key_frames_as_separate_images(server: Server, clip: Path) -> None:
    result = recognize_video(_squares, clip, fps=2.0, keep_sheet=True)
    assert [(t.name, t.start, t.end) for t in result.tracks] == [("Bo", 0.5, 1.0), ("Rex", 2.5, 3.0)]
    answer = respond_video(OpenAILVLM(server.url, "vlm", max_images=4, image_format="png"), result,
                           question="Who comes first?")
    (body,) = server.bodies
    images = _images(body)
    assert len(images) == 2 and answer.text == "saw 2 image(s)"
    assert answer.meta["images"] == 2 and answer.meta["sent"] == "key frames" and answer.meta["times"] == [0.5, 2.5]
    prompt = _text(body)
    assert prompt == answer.prompt
    assert prompt.startswith("These 2 images are frames of a 4.0 s video, in time order (image 1 at 0.5 s, "
                             "image 2 at 2.5 s).")
    assert "- 0.5-1.0 s: Bo (the entity in the red box)" in prompt and "Who comes first?" in prompt
    # each image is its frame with that frame's track boxed in the track's colour (Bo red, Rex blue)
    red, blue = colour_rgb(result.colours["Bo"]), colour_rgb(result.colours["Rex"])
    assert tuple(images[0][30, 10]) == red and tuple(images[1][50, 80]) == blue
    assert not np.any(np.all(images[0] == blue, axis=2)) and not np.any(np.all(images[1] == red, axis=2))


def test_a_single_image_backend_gets_one_contact_sheet(server: Server, clip: Path) -> None:
    result = recognize_video(_squares, clip, fps=2.0, keep_sheet=True)
    answer = respond_video(OpenAILVLM(server.url, "vlm", max_images=1, image_format="png"), result, question="Who?")
    (body,) = server.bodies
    (sheet,) = _images(body)
    assert sheet.shape == answer.image.shape == result.sheet_image.shape and answer.meta["sent"] == "contact sheet"
    assert _text(body).startswith("This image shows key frames of a 4.0 s video, one per appearance")


def test_a_server_that_refuses_several_images_gets_the_sheet(server: Server, clip: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    server.errors = [(400, "At most 1 image(s) may be provided in one request.")]
    result = recognize_video(_squares, clip, fps=2.0, keep_sheet=True)
    answer = respond_video(OpenAILVLM(server.url, "vlm", retries=0), result, question="Who?")
    assert [len(_images(b)) for b in server.bodies] == [2, 1] and answer.text == "saw 1 image(s)"
    assert answer.meta["sent"] == "contact sheet" and "sending one contact sheet instead" in caplog.text
    server.errors = [(400, "The model is overloaded with your prompt")]  # other errors are not hidden
    from pekit.errors import BackendError

    with pytest.raises(BackendError, match="overloaded"):
        respond_video(OpenAILVLM(server.url, "vlm", retries=0), result, question="Who?")


def test_caption_a_clip_scene_by_scene(server: Server, clip: Path) -> None:
    result = recognize_video(_squares, clip, fps=2.0, keep_sheet=True)
    assert [(s.start, s.end) for s in result.scenes] == [(0.0, 2.0), (2.0, 4.0)]
    answer = respond_video(OpenAILVLM(server.url, "vlm"), result, question=None)
    assert len(server.bodies) == 2 and answer.meta["kind"] == "video-caption"
    first, second = (_text(b) for b in server.bodies)
    assert first.startswith("This image is a frame of scene 1 (0.0-2.0 s) of a 4.0 s video at 0.5 s.")
    assert "calling Bo by name" in first and "Rex" not in first
    assert "scene 2 (2.0-4.0 s)" in second and "calling Rex by name" in second and "Bo" not in second
    assert answer.text == "0.0-2.0 s: saw 1 image(s)\n2.0-4.0 s: saw 1 image(s)"
    assert [(s["scene"], s["caption"], s["tracks"]) for s in answer.meta["scenes"]] == [
        (1, "saw 1 image(s)", [1]), (2, "saw 1 image(s)", [2])]


def test_key_frames_cover_every_track_with_as_few_frames_as_allowed(tmp_path: Path,
                                                                   make_clip: Callable[..., Path]) -> None:
    frames = []
    for i in range(30):  # Bo 0-2.9 s; Rex joins him 1.0-1.9 s: one frame shows both
        img = np.full((96, 128, 3), 60, np.uint8)
        img[20:60, 10:50] = 255
        if 10 <= i < 20:
            img[30:70, 70:110] = (0, 0, 255)
        frames.append(img)
    result = recognize_video(_squares, make_clip(tmp_path / "two.mp4", frames), fps=2.0, keep_sheet=True)
    assert len(result.tracks) == 2
    (shot,) = key_frames(result, limit=4)
    assert sorted(shot.tracks) == [1, 2] and 1.0 <= shot.time < 2.0
    empty = recognize_video(lambda i, t: Detections.empty(), make_clip(tmp_path / "none.mp4", frames), fps=2.0,
                            keep_sheet=True)
    (first,) = key_frames(empty)
    assert first.tracks == [] and first.time == 0.0
