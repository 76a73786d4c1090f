"""On-disk caches that make evaluation runs resumable.

* `GridCache`: one `PatchGrid` per photo (features as float16 + saliency and patch
  colours), keyed by the
  backbone fingerprint and the SHA-1 of the file's bytes. A crash at photo 900 of 1,000
  costs nothing on the next run: the 899 grids are read back instead of re-embedded.
* `AnswerCache`: LVLM answers keyed by backbone name, prompt and annotated image.

Writes are atomic (a temporary file in the same folder, then ``os.replace``), so a crash
mid-write leaves no half file. Grids are always round-tripped through the stored
precision, so a cached run and a fresh run give identical scores.

Example:
    >>> import tempfile
    >>> cache = GridCache(tempfile.mkdtemp(), "fake-backbone")
    >>> cache.get("0" * 40) is None
    True
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pekit._files import atomic_write
from pekit.types import PatchGrid

log = logging.getLogger(__name__)

__all__ = ["AnswerCache", "GridCache", "atomic_write", "compact_grid", "default_cache_dir", "file_sha1"]


def default_cache_dir() -> Path:
    """``platformdirs.user_cache_dir("pekit")/eval`` (``$PEKIT_CACHE`` overrides the parent)."""
    env = os.environ.get("PEKIT_CACHE")
    if env:
        return Path(env).expanduser() / "eval"
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("pekit")) / "eval"


def file_sha1(path: str | os.PathLike) -> str:
    """SHA-1 hex digest of a file's bytes.

    >>> import tempfile; f = tempfile.NamedTemporaryFile(delete=False); _ = f.write(b"abc"); f.close()
    >>> file_sha1(f.name)
    'a9993e364706816aba3e25717850c26c9cd0d89d'
    >>> os.unlink(f.name)
    """
    h = hashlib.sha1()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def compact_grid(grid: PatchGrid) -> PatchGrid:
    """The grid at cache precision: float16 features, saliency and colours, read back as float32."""
    sal = None if grid.saliency is None else grid.saliency.astype(np.float16).astype(np.float32)
    col = None if grid.colours is None else grid.colours.astype(np.float16).astype(np.float32)
    return PatchGrid(grid.features.astype(np.float16).astype(np.float32), tuple(grid.image_size),  # type: ignore[arg-type]
                     saliency=sal, backbone=grid.backbone, colours=col)


class _WriteFailures:
    """Writes of one cache that cannot fail a run: a cache only saves recomputing, so an
    entry that cannot be written (the disk filled up, the folder was removed) is kept in
    memory only, with one warning; after that failure no more writes are tried."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.failed = False

    def write(self, path: Path, write: Callable[[Any], Any]) -> None:
        if self.failed:
            return
        try:
            atomic_write(path, write)
        except OSError as exc:
            self.failed = True
            log.warning("cannot write the %s at '%s' (%s); the run goes on and keeps its entries in memory "
                        "only (it will not resume from them): free some space or pass --cache another folder "
                        "next time", self.what, path.parent, exc.strerror or exc)


#: bumped when the same backbone gives other grids for a photo: grids cached before are not
#: read (v2: a photo of any shape is embedded at the same number of pixels, `input_size`)
GRID_FORMAT = "|grids-v2"


class GridCache:
    """Patch grids on disk (plus a small in-memory LRU), keyed by fingerprint and file hash.

    Args:
        directory: cache folder; ``None`` keeps grids in memory only (not resumable).
        fingerprint: the backbone fingerprint (`Pipeline.fingerprint`); grids of different
            backbones never mix.
        memory_items: grids kept in memory (each ~0.5-1 MB as float32).
    """

    def __init__(self, directory: str | os.PathLike | None, fingerprint: str, *, memory_items: int = 32) -> None:
        self.fingerprint = fingerprint
        slug = hashlib.sha1(f"{fingerprint}{GRID_FORMAT}".encode()).hexdigest()[:16]
        self.directory = None if directory is None else Path(directory).expanduser() / slug
        self.memory_items = memory_items
        self._lru: OrderedDict[str, PatchGrid] = OrderedDict()
        self.hits = 0
        self.misses = 0
        self._full = _WriteFailures("grid cache")
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            info = self.directory / "backbone.txt"
            if not info.exists():
                atomic_write(info, lambda fh: fh.write(fingerprint.encode() + b"\n"))  # type: ignore[attr-defined]

    def _path(self, sha1: str) -> Path:
        assert self.directory is not None
        return self.directory / sha1[:2] / f"{sha1}.npz"

    def _remember(self, sha1: str, grid: PatchGrid) -> None:
        self._lru[sha1] = grid
        self._lru.move_to_end(sha1)
        # once the disk cannot be written, memory is the only copy of what follows: keep it all
        while len(self._lru) > self.memory_items and not self._full.failed:
            self._lru.popitem(last=False)

    def get(self, sha1: str) -> PatchGrid | None:
        """The cached grid of the file with this hash, or ``None``."""
        if sha1 in self._lru:
            self._lru.move_to_end(sha1)
            return self._lru[sha1]
        if self.directory is None:
            return None
        path = self._path(sha1)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                sal = data["saliency"].astype(np.float32) if "saliency" in data.files else None
                col = data["colours"].astype(np.float32) if "colours" in data.files else None
                grid = PatchGrid(data["features"].astype(np.float32), tuple(int(v) for v in data["image_size"]),  # type: ignore[arg-type]
                                 saliency=sal, backbone=str(data["backbone"]), colours=col)
        except Exception as exc:  # a damaged entry is a miss, rewritten below
            log.warning("damaged cache entry %s (%s); recomputing it", path, exc)
            return None
        self._remember(sha1, grid)
        return grid

    def put(self, sha1: str, grid: PatchGrid) -> PatchGrid:
        """Store a grid; returns it at cache precision (use the returned one)."""
        grid = compact_grid(grid)
        if self.directory is not None:
            arrays: dict[str, np.ndarray] = {
                "features": grid.features.astype(np.float16),
                "image_size": np.asarray(grid.image_size, np.int64),
                "backbone": np.asarray(grid.backbone),
            }
            if grid.saliency is not None:
                arrays["saliency"] = grid.saliency.astype(np.float16)
            if grid.colours is not None:
                arrays["colours"] = grid.colours.astype(np.float16)
            self._full.write(self._path(sha1), lambda fh: np.savez(fh, **arrays))  # type: ignore[arg-type]
        self._remember(sha1, grid)
        return grid

    def coloured(self, sha1: str, grid: PatchGrid, pipeline: Any, image: Any) -> PatchGrid:
        """``grid`` with its patch colours when ``pipeline`` compares colour and the grid was
        cached before colours were kept: computed from ``image`` (the photo or its path; no
        backbone pass) and stored back. Otherwise ``grid`` itself."""
        if grid.colours is not None or getattr(getattr(pipeline, "config", None), "colour_weight", 0) <= 0:
            return grid
        return self.put(sha1, pipeline.with_colours(grid, image))

    def grid(self, sha1: str, compute: Callable[[], PatchGrid]) -> PatchGrid:
        """Cached grid, or ``compute()`` it (one backbone pass) and store it."""
        found = self.get(sha1)
        if found is not None:
            self.hits += 1
            return found
        self.misses += 1
        return self.put(sha1, compute())


class AnswerCache:
    """LVLM answers on disk (one small JSON file per answer), so long runs resume.

    Example:
        >>> import tempfile
        >>> cache = AnswerCache(tempfile.mkdtemp())
        >>> key = cache.key("fake", "Describe.", b"image bytes")
        >>> cache.get(key) is None
        True
        >>> cache.put(key, "A dog."); cache.get(key)
        'A dog.'
    """

    def __init__(self, directory: str | os.PathLike | None, *, fresh: bool = False) -> None:
        self.directory = None if directory is None else Path(directory).expanduser() / "answers"
        self.fresh = fresh  # read nothing an earlier run stored; what this run answers replaces it
        self._memory: dict[str, str] = {}
        self._full = _WriteFailures("answer cache")

    @staticmethod
    def key(lvlm: str, prompt: str, image: bytes, **options: object) -> str:
        h = hashlib.sha1()
        for part in (lvlm, prompt, json.dumps(options, sort_keys=True, default=str)):
            h.update(part.encode())
            h.update(b"\0")
        h.update(image)
        return h.hexdigest()

    def get(self, key: str) -> str | None:
        if key in self._memory:
            return self._memory[key]
        if self.directory is None or self.fresh:
            return None
        path = self.directory / key[:2] / f"{key}.json"
        try:
            return str(json.loads(path.read_text(encoding="utf-8"))["text"])
        except (OSError, ValueError, KeyError):
            return None

    def put(self, key: str, text: str) -> None:
        self._memory[key] = text
        if self.directory is not None:
            data = json.dumps({"text": text}).encode()
            self._full.write(self.directory / key[:2] / f"{key}.json", lambda fh: fh.write(data))  # type: ignore[attr-defined]
