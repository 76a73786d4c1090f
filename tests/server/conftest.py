"""Fixtures of the HTTP service tests: an app on a real memory file, two users, photos as bytes.

The app runs the real offline pipeline (ONNX DINOv2-S) through the session's grid cache
(`tests/conftest.py`), so the same photo costs one real backbone pass per session.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the server extra is not installed: pip install 'pekit-vlm[server]'")

ARTIFACTS = Path(__file__).parents[1] / "artifacts"


def jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


@pytest.fixture(scope="session")
def photos(chelsea: np.ndarray, coffee: np.ndarray, astronaut: np.ndarray) -> dict[str, bytes]:
    """JPEG bytes: ``cat`` (Chelsea), ``cup`` (coffee), ``person`` (astronaut)."""
    return {"cat": jpeg(chelsea), "cup": jpeg(coffee), "person": jpeg(astronaut)}


#: Chelsea's face in the 451 x 300 photo, and the cup in the 600 x 400 coffee photo.
CAT_BOX, CUP_BOX = [100, 20, 320, 290], [80, 20, 520, 360]


@pytest.fixture
def make_app(make_personalizer: Callable[..., Any], tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """``make_app(**create_app options)`` on ``tmp_path/memory.db`` with the cached pipeline."""
    from fastapi.testclient import TestClient

    from pekit.server.app import create_app

    clients: list[Any] = []

    def make(*, memory: str | None = None, personalizer: Any = None, **options: Any) -> Any:
        p = personalizer or make_personalizer(memory=memory or str(tmp_path / "memory.db"))
        options.setdefault("keys", str(tmp_path / "keys.db"))
        app = create_app(p, **options)
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()  # runs the lifespan: models warmed once
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.__exit__(None, None, None)


@pytest.fixture
def client(make_app: Callable[..., Any]) -> Any:
    return make_app()


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def alice(client: Any) -> dict[str, str]:
    return auth(client.app.state.service.keys.create("alice"))


@pytest.fixture
def bob(client: Any) -> dict[str, str]:
    return auth(client.app.state.service.keys.create("bob"))


def introduce(client: Any, headers: dict[str, str], name: str, photo: bytes, box: list[int] | None = None,
              **fields: str) -> Any:
    data = {"name": name, **fields}
    if box is not None:
        data["boxes"] = f"[{box}]"
    return client.post("/v1/concepts", headers=headers, data=data, files=[("photos", ("p.jpg", photo, "image/jpeg"))])


# ---- a real server in a subprocess -------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """``pekit serve`` in a subprocess on a free 127.0.0.1 port (stopped by `stop`)."""

    def __init__(self, memory: Path, keys: Path, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.memory, self.keys, self.log = memory, keys, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 120.0) -> LiveServer:
        import httpx

        env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[2] / "src"))
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "pekit.cli", "serve", "--memory", str(self.memory), "--keys", str(self.keys),
                 "--port", str(self.port)], stdout=out, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the server did not answer in {timeout} s: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[Callable[[], LiveServer]]:
    made: list[LiveServer] = []

    def make() -> LiveServer:
        server = LiveServer(tmp_path / "memory.db", tmp_path / "keys.db", tmp_path / "server.log").start()
        made.append(server)
        return server

    yield make
    for s in made:
        s.stop()
