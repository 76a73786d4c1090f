"""What one request may send: body bytes, photos per request, bytes and pixels per photo.

Uploads are checked before any backbone work: the type is sniffed from the first bytes
(the client's ``Content-Type`` and file name are not trusted), the pixel count is read
from the header without decoding (a decompression bomb is refused before it expands), and
names that look like paths (``../x``, ``a/b``) are refused. Every refusal is a
`RequestError` with an HTTP status and a message that says what to send instead.

Example:
    >>> sniff_image(b"\\x89PNG\\r\\n\\x1a\\n" + bytes(8))
    'image/png'
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from pekit.errors import InvalidInputError, PekitError
from pekit.images import sniff_image

__all__ = ["Limits", "RequestError", "check_filename", "check_photo", "check_url_name", "sniff_image"]


class RequestError(PekitError):
    """A request the server refuses before doing any work; ``status`` is the HTTP code."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Limits:
    """Upload and request limits of the service (keyword options of `create_app`).

    Attributes:
        max_photos: photos in one introduce request.
        max_photo_bytes: bytes of one uploaded photo (default 20 MB).
        max_pixels: width x height of one photo (default 50 MP; header read, not decoded).
        max_body_bytes: a whole multipart request (default 64 MB).
        max_json_bytes: a JSON (non-multipart) body (default 64 kB).
        max_text: characters of a name, category, context or question field.
        body_timeout_s: seconds a client may leave the server waiting for the next part of
            a request body (default 30); then it gets 408 and the connection is closed, so
            a stalled upload cannot hold a connection and a buffer without end. (A client
            that trickles a byte just inside each wait is not cut: a reverse proxy's total
            request timeout is the place for that.)
    """

    max_photos: int = 10
    max_photo_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 50_000_000
    max_body_bytes: int = 64 * 1024 * 1024
    max_json_bytes: int = 64 * 1024
    max_text: int = 2000
    body_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        wait = self.body_timeout_s
        if isinstance(wait, bool) or not isinstance(wait, (int, float)) or not 0 < wait < float("inf"):
            raise InvalidInputError(f"Limits(body_timeout_s=...) must be a number of seconds above 0, got {wait!r}; "
                                    "leave it out for the default (30)")
        for name in ("max_photos", "max_photo_bytes", "max_pixels", "max_body_bytes", "max_json_bytes", "max_text"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                default = type(self).__dataclass_fields__[name].default
                raise InvalidInputError(f"Limits({name}=...) must be a whole number of at least 1 (0 would refuse "
                                        f"every request), got {value!r}; leave it out for the default ({default})")


def check_filename(filename: str | None) -> None:
    """Refuse an upload whose file name is a path (``../x.jpg``, ``a/b.jpg``, ``C:\\x``).

    The server never writes uploads to disk under their names; a path-like name is refused
    anyway, so a client bug or a probe gets a clear answer instead of silent success.
    """
    if not filename:
        return
    # control, bidirectional (U+202E shows 'gpj.exe' as 'exe.jpg') and other invisible format characters
    if len(filename) > 255 or any(unicodedata.category(ch) in ("Cc", "Cf") for ch in filename):
        raise RequestError(f"the file name {filename[:80]!r} is over 255 characters or holds control or invisible "
                           "characters; send a plain name such as 'photo.jpg'", status=400)
    if "/" in filename or "\\" in filename or filename.startswith("..") or "\0" in filename or ":" in filename:
        raise RequestError(f"the file name {filename[:80]!r} looks like a path; send a plain name such as "
                           "'photo.jpg'", status=400)


def check_url_name(name: str, *, limits: Limits, what: str = "concept name") -> str:
    """A concept name the service accepts: not a path (``/``, ``\\``, ``.``, ``..``), not too long.

    Names become URL segments (``/v1/concepts/{name}``), where ``..`` and ``/`` would be
    rewritten by clients and proxies; the library's own rules (`pekit.memory.clean_name`)
    apply on top.
    """
    stripped = name.strip()
    if "/" in stripped or "\\" in stripped or stripped in (".", "..") or stripped.startswith("../"):
        raise RequestError(f"the {what} {stripped[:80]!r} looks like a path; use a plain name such as 'Bo' "
                           "(no '/', '\\' and not '.' or '..')", status=422)
    if len(stripped) > 200:
        raise RequestError(f"the {what} is {len(stripped)} characters long; use at most 200", status=422)
    return name


def check_photo(data: bytes, *, limits: Limits, label: str) -> None:
    """Refuse an uploaded photo that is too big, not an image, or too many pixels (header only)."""
    if len(data) == 0:
        raise RequestError(f"{label} is empty; send a JPEG, PNG or WebP photo", status=422)
    if len(data) > limits.max_photo_bytes:
        raise RequestError(f"{label} is over the limit of {limits.max_photo_bytes} bytes per photo; "
                           "downscale or recompress it", status=413)
    if sniff_image(data) is None:
        raise RequestError(f"{label} is not an image (its first bytes are not JPEG, PNG, WebP, GIF, BMP, TIFF, "
                           "AVIF or HEIC); "
                           "send a photo", status=415)
    from pekit._image_formats import header_size, heif_readable

    if sniff_image(data) == "image/heic" and not heif_readable():
        raise RequestError(f"{label} is a HEIC photo, which this server cannot read (pillow-heif is not "
                           "installed here); send it as JPEG", status=415)

    try:
        size = header_size(data, limits.max_pixels)  # the loads' own limit and warning filter
    except Exception as exc:  # Pillow raises many types on a damaged header
        raise RequestError(f"{label} could not be read as an image ({_pillow_problem(exc)}); send a JPEG, "
                           "PNG or WebP photo", status=422) from exc
    if size is None:
        raise RequestError(f"{label} was refused as a decompression bomb (over {limits.max_pixels} pixels); "
                           "send a smaller photo", status=413)
    width, height = size
    if width < 1 or height < 1:
        raise RequestError(f"{label} is {width}x{height} pixels: it has no pixels; send a photo", status=422)
    if width * height > limits.max_pixels:
        raise RequestError(f"{label} is {width}x{height} pixels; the limit is {limits.max_pixels} pixels "
                           "(a decompression bomb guard); downscale it first", status=413)


_REPR = re.compile(r"<[\w.]+ object at 0x[0-9a-fA-F]+>")


def _pillow_problem(exc: Exception) -> str:
    """What Pillow said about a damaged upload, without the Python reprs it puts in messages
    (``cannot identify image file <_io.BytesIO object at 0x...>``): the caller names the upload."""
    from PIL import UnidentifiedImageError

    if isinstance(exc, UnidentifiedImageError):
        return "its header is damaged, or it is an image with no pixels (0x0) or of a kind Pillow cannot read"
    text = _REPR.sub("the upload", str(exc)).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
