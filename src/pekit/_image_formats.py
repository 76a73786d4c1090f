"""What a photo file is and how Pillow is set up to open it (`pekit.images` loads it).

* suffixes: what pekit reads from a folder (`IMAGE_SUFFIXES`), writes (`OUTPUT_SUFFIXES`,
  `writable_suffix`) and hands to the video reader (`VIDEO_SUFFIXES`);
* `sniff_image`: the type from the first bytes (the server checks uploads with it; a HEIC
  or AVIF is a photo, not a video);
* openers: pillow-heif's registered for a HEIC photo when installed (`heif_readable`),
  Pillow's own AVIF opener kept first;
* Pillow's decompression-bomb limit set to pekit's while a file is opened, thread-safely
  (`pillow_limit`, `header_size`);
* colour profiles: a photo in another colour space converted to sRGB (`in_srgb`).
"""

from __future__ import annotations

import io
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from PIL import Image

__all__ = ["HEIF_SUFFIXES", "IMAGE_SUFFIXES", "OUTPUT_SUFFIXES", "VIDEO_SUFFIXES", "header_size", "heif_readable",
           "in_srgb", "pillow_limit", "ready_for", "sniff_image", "writable_suffix"]

#: the usual suffixes of the pictures pekit writes (`--out`, `--explain`, `--sheet`): any
#: that Pillow writes is taken (`writable_suffix`)
OUTPUT_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
HEIF_SUFFIXES = frozenset({".heic", ".heif"})
#: the suffixes of photos pekit reads from a folder (HEIC with the pillow-heif plugin)
IMAGE_SUFFIXES = OUTPUT_SUFFIXES | {".avif"} | HEIF_SUFFIXES

#: the suffixes `pekit.video` reads (kept here so that loading a photo needs no video import)
VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".wmv", ".flv",
                            ".ts", ".mts", ".m2ts"})  # MPEG-TS: camcorders (AVCHD .mts), screen and TV recordings


def writable_suffix(suffix: str) -> bool:
    """Whether Pillow writes images of this file suffix (``.jpg``, ``.avif``, ``.jp2``...).

    >>> writable_suffix(".PNG"), writable_suffix(""), writable_suffix(".txt")
    (True, False, False)
    """
    fmt = Image.registered_extensions().get(suffix.lower())
    return fmt is not None and fmt in Image.SAVE


def in_srgb(img: Image.Image) -> Image.Image:
    """``img`` in sRGB: a photo whose embedded ICC profile is another colour space (an
    iPhone's Display P3, Adobe RGB, a profiled CMYK print file) is converted, so the same
    object has the same colours from every camera; an sRGB or untagged photo, or a profile
    LittleCMS cannot read, is left as it is."""
    icc = img.info.get("icc_profile")
    if not icc or img.mode not in ("RGB", "RGBA", "CMYK", "P", "PA"):
        return img
    try:
        from PIL import ImageCms

        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if source.profile.xcolor_space.strip() != ("CMYK" if img.mode == "CMYK" else "RGB") or \
                (img.mode != "CMYK" and _is_srgb(icc, source)):
            return img
        if img.mode in ("P", "PA"):  # a palette of the profile's colours
            img = img.convert("RGBA" if img.mode == "PA" or "transparency" in img.info else "RGB")
        out = "RGBA" if img.mode == "RGBA" else "RGB"
        converted = ImageCms.profileToProfile(img, source, ImageCms.createProfile("sRGB"), outputMode=out)
    except MemoryError:
        raise
    except Exception:  # no LittleCMS in this Pillow, a damaged profile: the pixels as they are
        return img
    assert converted is not None  # not inPlace
    return converted


_SRGB_PROFILES: dict[bytes, bool] = {}  # profile digest -> maps as sRGB (most photos carry the same few)


def _is_srgb(icc: bytes, profile: Any) -> bool:
    """Whether an RGB profile maps colours as sRGB does (the usual camera profile: nothing to
    convert): a few test colours through it come back within one level. Its name is not
    trusted ("Linear sRGB" has sRGB's primaries but another curve)."""
    import hashlib

    from PIL import ImageCms

    key = hashlib.sha1(icc).digest()
    known = _SRGB_PROFILES.get(key)  # one read: another thread may clear the cache meanwhile
    if known is not None:
        return known
    probe = Image.fromarray(np.array([[[200, 100, 50], [30, 160, 220], [128, 128, 128], [250, 20, 90]]], np.uint8))
    seen = ImageCms.profileToProfile(probe, profile, ImageCms.createProfile("sRGB"), outputMode="RGB")
    assert seen is not None
    same = int(np.abs(np.asarray(seen, np.int16) - np.asarray(probe, np.int16)).max()) <= 1
    if len(_SRGB_PROFILES) >= 64:
        _SRGB_PROFILES.clear()
    _SRGB_PROFILES[key] = same
    return same


def _filters() -> None:
    """The warnings filters while pekit loads images: a bomb is an error, and a damaged EXIF
    block is read around (the photo as stored) without Pillow's warning and its file path."""
    warnings.simplefilter("error", Image.DecompressionBombWarning)
    warnings.filterwarnings("ignore", message="Corrupt EXIF data", category=UserWarning)


class _PillowLimit:
    """Pillow's bomb limit set to pekit's while pekit loads images, restored after.

    Loads with the same limit (the usual case) run concurrently; a load with another limit
    waits until those finish, so no load ever runs under another one's limit.

    While any load runs, Pillow's `DecompressionBombWarning` (a size between the limit and
    twice it) is an error, so a load never goes on past it, and its "Corrupt EXIF data" is
    not shown (`_filters`). The filters are installed once for all concurrent loads and
    removed when the last one ends: `warnings.catch_warnings`
    per load is not thread-safe (one thread's exit restores the filters another thread's
    load still needs), except where warning filters are per thread (Python's
    ``context_aware_warnings``), where each load gets its own.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._users = 0
        self._limit: int | None = None
        self._previous: int | None = None
        self._shared: warnings.catch_warnings | None = None  # type: ignore[type-arg]

    @contextmanager
    def __call__(self, max_pixels: int) -> Iterator[None]:
        limit = int(max_pixels)
        per_thread = bool(getattr(sys.flags, "context_aware_warnings", False))
        joined = False
        try:
            with self._cond:
                while self._users and self._limit != limit:
                    self._cond.wait()
                first = self._users == 0
                if first:  # the first load in: remember what to put back, then set
                    self._previous, self._limit = Image.MAX_IMAGE_PIXELS, limit
                self._users += 1
                joined = True
                if first:
                    Image.MAX_IMAGE_PIXELS = limit
                    if not per_thread:
                        self._shared = warnings.catch_warnings()
                        self._shared.__enter__()
                        _filters()
            if per_thread:
                with warnings.catch_warnings():
                    _filters()
                    yield
            else:
                yield
        finally:
            if joined:  # also after an interruption half-way through the setup: undo it
                with self._cond:
                    self._users -= 1
                    if self._users == 0:
                        Image.MAX_IMAGE_PIXELS = self._previous
                        self._limit = None
                        if self._shared is not None:
                            self._shared.__exit__(None, None, None)
                            self._shared = None
                        self._cond.notify_all()


pillow_limit = _PillowLimit()


def header_size(data: bytes, max_pixels: int) -> tuple[int, int] | None:
    """``(width, height)`` of encoded image ``data`` from its header (nothing decoded), or
    None when Pillow's bomb check, at pekit's limit ``max_pixels``, refuses it (over the
    limit). Pillow's own errors on a damaged header propagate. Shares `load_image`'s
    thread-safe limit and warning filter, so it can run beside loads in other threads."""
    ready_for(sniff_image(data[:64]))
    try:
        with pillow_limit(max_pixels), Image.open(io.BytesIO(data)) as img:
            return img.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return None


_HEIF_OPENER: list[bool] = []  # [registered?] once pillow-heif was looked for


def ready_for(kind: str | None) -> None:
    """Pillow's openers set for a photo of this `sniff_image` type: pillow-heif's registered
    for a HEIC photo (when installed), Pillow's own first for an AVIF."""
    if kind == "image/heic":
        heif_readable()
    elif kind == "image/avif":
        _pillow_avif_first()


def heif_readable() -> bool:
    """Whether HEIC photos can be read: the ``pillow-heif`` plugin is installed (its opener
    is registered with Pillow the first time this is asked)."""
    if not _HEIF_OPENER:
        try:
            from pillow_heif import register_heif_opener  # type: ignore[import-not-found]
        except ImportError:
            _HEIF_OPENER.append(False)
        else:
            register_heif_opener()
            _pillow_avif_first()
            _HEIF_OPENER.append(True)
    return _HEIF_OPENER[0]


def _pillow_avif_first() -> None:
    """Pillow's AVIF opener before pillow-heif's, whoever registered that one first: it may
    lack AV1 and claims an AVIF of a generic brand (``mif1``)."""
    Image.init()
    if "HEIF" in Image.ID and "AVIF" in Image.ID and Image.ID.index("HEIF") < Image.ID.index("AVIF"):
        Image.ID.remove("HEIF")
        Image.ID.append("HEIF")


# magic bytes -> MIME type; what `load_image` (Pillow) decodes: the server sniffs uploads with
# them, and a "video" whose first bytes are a photo's is read as the photo it is
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
)


#: ISO-BMFF major brands of still images (a phone's HEIC, an AVIF), not of videos
_AVIF_BRANDS = (b"avif", b"avis")
_HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1")


def sniff_image(data: bytes) -> str | None:
    """The image type of ``data`` from its first bytes (JPEG, PNG, WebP, GIF, BMP, TIFF,
    AVIF, HEIC), or None."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[4:8] == b"ftyp":  # ISO-BMFF: the major brand, then the compatible ones (to the box's end)
        end = min(len(data), max(16, int.from_bytes(data[:4], "big")))
        brands = [data[8:12]] + [data[i:i + 4] for i in range(16, end - 3, 4)]
        if any(b in _AVIF_BRANDS for b in brands):
            return "image/avif"
        return "image/heic" if any(b in _HEIF_BRANDS for b in brands) else None
    for magic, mime in _MAGIC:
        if data.startswith(magic):
            return mime
    return None
