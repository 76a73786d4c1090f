"""Safe image loading: one loader for paths, bytes, PIL images and numpy arrays.

Everything becomes an ``(H, W, 3) uint8`` RGB array with EXIF orientation applied.
Non-images, truncated files, empty images and decompression bombs raise `ImageError`
naming the file and what to do.

The pixel limit in force is pekit's ``max_pixels`` (`MAX_PIXELS` by default), not Pillow's
own ``Image.MAX_IMAGE_PIXELS`` (89.5 MP, which refuses 108 MP phone photos): while pekit
opens and decodes a file it sets Pillow's limit to ``max_pixels`` and puts the previous
value back afterwards; importing pekit changes nothing.

What a file is and how Pillow opens it: `pekit._image_formats`; how decoded pixels become
``(H, W, 3) uint8``: `pekit._pixels`.
"""

from __future__ import annotations

import io
import logging
import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from pekit._image_formats import (
    HEIF_SUFFIXES,
    IMAGE_SUFFIXES,
    OUTPUT_SUFFIXES,
    VIDEO_SUFFIXES,
    heif_readable,
    pillow_limit,
    ready_for,
    sniff_image,
    writable_suffix,
)
from pekit._pixels import FLOAT_RING as FLOAT_RING  # re-exported: the float-pixel limits load_image applies
from pekit._pixels import FLOAT_UNIT_TOP as FLOAT_UNIT_TOP
from pekit._pixels import array_to_rgb, pil_to_rgb
from pekit.errors import ImageError, InvalidInputError

log = logging.getLogger(__name__)

__all__ = ["IMAGE_SUFFIXES", "MAX_PIXELS", "OUTPUT_SUFFIXES", "ImageInput", "NamedImage", "describe", "image_list",
           "is_stream", "list_images", "load_image", "same_pictures", "sniff_image", "source_name", "thumbprint",
           "writable_suffix"]


@dataclass(frozen=True)
class NamedImage:
    """An image that is not a file, with the name it goes by: an upload's bytes as
    ``cat.jpg``. Accepted wherever an image is (`load_image`): a concept records ``name``
    as its reference (`source_name`), and errors call it ``label`` (default: ``name`` in
    quotes), not ``<48213 bytes>``.

    >>> describe(NamedImage(b"...", "cat.jpg")), source_name(NamedImage(b"...", "cat.jpg", label="photo 2"))
    ("'cat.jpg'", 'cat.jpg')
    """

    data: bytes | bytearray | Image.Image | np.ndarray
    name: str
    label: str | None = None


ImageInput = str | os.PathLike | bytes | bytearray | Image.Image | np.ndarray | NamedImage

#: Refuse images with more pixels than this (a 16k x 16k photo); raise with ``max_pixels``.
MAX_PIXELS = 16384 * 16384


def describe(source: object) -> str:
    """Short human name of an image source for error messages (a path in quotes)."""
    if isinstance(source, NamedImage):
        return source.label or f"'{source.name}'"
    if isinstance(source, (str, os.PathLike)):
        return f"'{os.fspath(source)}'"
    return source_name(source)


def source_name(source: object) -> str:
    """The name of an image source as a concept records it (``meta["references"]``, a
    correction's ``image``): a path as given, else what `describe` says.

    >>> source_name("dog/00.jpg"), source_name(b"abc")
    ('dog/00.jpg', '<3 bytes>')
    """
    if isinstance(source, NamedImage):
        return source.name
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    if isinstance(source, (bytes, bytearray)):
        return f"<{len(source)} bytes>"
    if isinstance(source, np.ndarray):
        return f"<array {source.shape} {source.dtype}>"
    if isinstance(source, Image.Image):
        return f"<PIL image {source.mode} {source.size}>"
    if isinstance(source, memoryview):
        return f"<{source.nbytes} bytes>"
    if is_stream(source) and isinstance(getattr(source, "name", None), str):
        return str(source.name)  # type: ignore[attr-defined]  # an open file: its path
    if hasattr(source, "__array__") and hasattr(source, "shape"):  # a tensor
        return f"<{type(source).__name__} {tuple(source.shape)}>"  # type: ignore[attr-defined]
    return f"<{type(source).__name__}>"


def is_stream(source: object) -> bool:
    """An open binary file or a stream (``io.BytesIO``): something to ``read()`` the bytes of."""
    return callable(getattr(source, "read", None)) and not isinstance(source, (str, bytes, bytearray))


def _single(source: object) -> bool:
    """Whether ``source`` is one image, not a collection of them (a tensor and a byte
    stream can be iterated too)."""
    return isinstance(source, (str, os.PathLike, bytes, bytearray, memoryview, np.ndarray, NamedImage,
                               Image.Image)) or is_stream(source) or hasattr(source, "__array__")


def _plain(source: object, name: str) -> object:
    """A memoryview as bytes, a byte stream as the bytes it reads, an array-like (a torch
    tensor on the CPU) as a numpy array; anything else as it is."""
    if isinstance(source, memoryview):
        return source.tobytes()
    if is_stream(source):
        if isinstance(source, io.TextIOBase):
            raise ImageError(f"{name}: the file was opened as text; open it with 'rb'")
        try:  # a seekable stream is put back where it was: a photo is read more than once (ask, explain)
            seekable = callable(getattr(source, "seekable", None)) and source.seekable()  # type: ignore[attr-defined]
            start = source.tell() if seekable else None  # type: ignore[attr-defined]
            data = source.read()  # type: ignore[attr-defined]
            if start is not None:
                source.seek(start)  # type: ignore[attr-defined]
        except (OSError, ValueError) as exc:  # a closed file
            raise ImageError(f"{name}: cannot read the stream ({exc})") from exc
        if not isinstance(data, (bytes, bytearray)):
            raise ImageError(f"{name}: the stream gives text, not bytes; open the file with 'rb'")
        return data
    if hasattr(source, "__array__") and not isinstance(source, (np.ndarray, Image.Image)):
        try:
            return np.asarray(source)
        except Exception as exc:  # a tensor on a GPU, or one that needs grad
            raise ImageError(f"{name}: cannot be read as an array ({exc}); pass a numpy array, e.g. "
                             "t.detach().cpu().numpy()") from exc
    return source


def _open_checked(fp: Any, name: str, max_pixels: int) -> Image.Image:
    if not fp.seekable():  # a FIFO: read whole, as Pillow would
        fp = io.BytesIO(fp.read())
    kind = sniff_image(fp.read(64))  # 64 bytes: an ISO-BMFF file's brands
    fp.seek(0)
    ready_for(kind)
    try:
        with pillow_limit(max_pixels):
            img = Image.open(fp)  # type: ignore[arg-type]
            if img.width * img.height > max_pixels:
                raise ImageError(
                    f"{name}: the image is {img.width}x{img.height} pixels, more than the limit of "
                    f"{max_pixels} pixels; downscale it first (from Python: load_image(..., max_pixels=N))"
                )
            img.load()
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(
            f"{name}: refused as a possible decompression bomb: its header declares more than the limit of "
            f"{max_pixels} pixels; downscale it first (from Python: load_image(..., max_pixels=N))"
        ) from exc
    except UnidentifiedImageError as exc:
        if Path(name.strip("'")).suffix.lower() in VIDEO_SUFFIXES:
            raise ImageError(f"{name}: a video, not a photo; this takes photos (for a video: `pekit recognize`, "
                             "`ask` or `caption` on the command line, `Personalizer.recognize_video` from Python; "
                             "to introduce something from a clip, save a frame as a photo)") from exc
        if kind == "image/avif":
            raise ImageError(f"{name}: an AVIF photo; this Pillow ({Image.__version__}) has no AVIF codec: "
                             "pip install 'pillow>=11.2', or export the photo as JPEG") from exc
        if kind == "image/heic" and not heif_readable():  # (with the plugin: a damaged file, below)
            raise ImageError(f"{name}: a HEIC photo; Pillow reads it with the pillow-heif plugin: pip install "
                             "'pekit-vlm[heif]' (pillow-heif; pekit uses it when installed), or export the photo "
                             "as JPEG") from exc
        if kind is not None:
            raise ImageError(f"{name}: starts as a {kind.split('/')[1].upper()} file does, but Pillow cannot read "
                             "it: the file is damaged, or its pixel format is one Pillow does not decode (a float "
                             "TIFF...); save it again as an 8- or 16-bit RGB or grey image") from exc
        raise ImageError(
            f"{name}: not an image file pekit can read: its content is in none of these formats, whatever "
            f"its name says: {', '.join(sorted(IMAGE_SUFFIXES))}"
        ) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{name}: the image file is damaged or truncated ({exc}); re-export it") from exc
    except Exception as exc:  # a plugin's own error (pillow-heif: "Support for this compression format...")
        raise ImageError(f"{name}: Pillow could not decode it ({type(exc).__name__}: {exc}); re-export it as "
                         "JPEG or PNG") from exc
    return img


#: what a photo path that is empty (or blank) is told
EMPTY_PATH = "the image path is empty; pass a file name, e.g. 'photo.jpg'"


def load_image(source: ImageInput, *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Load anything image-like as an ``(H, W, 3) uint8`` RGB array.

    Args:
        source: a path, raw encoded bytes (or a memoryview), a binary stream (an open
            file, ``io.BytesIO``: read from where it stands, and put back there when it can
            seek), a PIL image, a numpy array (grayscale, RGB, RGBA; uint8, uint16 (scaled by
            its 0-65535 range), other integers holding 0-255, bool, or float in [0, 1] or
            [0, 255]; an ``(H, W, 3)`` uint8 array comes back as it is, not copied) or an
            array-like on the CPU (a torch tensor, ``(H, W, C)``), or a `NamedImage` of one
            of these. The result may be written to (a copy where the source is read-only).
            A photo is turned upright by its EXIF orientation and brought to sRGB from its
            embedded colour profile (an iPhone's Display P3, Adobe or ProPhoto RGB); see
            `in_srgb`. A PIL image is turned by the orientation tag it carries, as its file
            would be (``Image.open(p).convert("RGB")`` keeps the tag, rightly); Pillow keeps
            the tag on an image rotated with ``transpose`` or ``rotate`` too, where it no
            longer holds: turn a photo with ``ImageOps.exif_transpose`` (which drops the tag),
            or pass it as an array.
        max_pixels: refuse larger images (decompression-bomb guard).

    Raises:
        ImageError: missing file, non-image, truncated file, empty or oversized image, an
            array with negative values (a normalised tensor) or integers over 255 in a dtype
            other than uint16.

    Example:
        >>> load_image(np.zeros((4, 5), np.uint8)).shape
        (4, 5, 3)
    """
    name = describe(source)
    if isinstance(source, NamedImage):
        source = source.data
    source = _plain(source, name)  # type: ignore[assignment]  # a stream as bytes, a tensor as an array
    if isinstance(source, np.ndarray):
        if source.ndim >= 2 and source.shape[0] * source.shape[1] > max_pixels:
            raise ImageError(f"{name}: more than the limit of {max_pixels} pixels; downscale it first")
        return array_to_rgb(source, name)
    if isinstance(source, Image.Image):
        if source.width * source.height > max_pixels:
            raise ImageError(f"{name}: more than the limit of {max_pixels} pixels; downscale it first")
        try:
            with pillow_limit(max_pixels):
                return pil_to_rgb(source, name)
        except (ValueError, OSError) as exc:  # a closed image, or pixels Pillow cannot decode
            if isinstance(exc, ImageError):
                raise
            raise ImageError(f"{name}: Pillow cannot read its pixels ({exc}); pass an open image, "
                             "a file path or a numpy array") from exc
    if isinstance(source, (bytes, bytearray)):
        if not source:
            raise ImageError(f"{name}: the image data is empty")
        img = _open_checked(io.BytesIO(bytes(source)), name, max_pixels)
        with pillow_limit(max_pixels):
            return pil_to_rgb(img, name)
    if isinstance(source, (str, os.PathLike)):
        if not os.fspath(source).strip():
            raise ImageError(EMPTY_PATH)
        path = Path(source).expanduser()
        try:
            there, folder = path.exists(), path.is_dir()
        except OSError as exc:  # a name too long for the file system (Python < 3.12 raises it here)
            raise ImageError(f"{name[:120]}: not a path this system can open ({exc.strerror or exc}); check the "
                             "path") from exc
        if not there:
            if _is_link(path):
                raise ImageError(f"{name}: a link to nothing (its target is missing, or it links back to itself); "
                                 "check the link or pass the image file itself")
            raise ImageError(f"{name}: no such file; check the path")
        if folder:
            raise ImageError(f"{name}: is a folder, not an image; pass the image files inside it")
        try:
            info = path.stat()
            if not stat.S_ISREG(info.st_mode):  # /dev/zero, a pipe, a socket: no size, may never end
                raise ImageError(f"{name}: not a regular file (a device, pipe or socket); save the image to a file "
                                 "and pass that, or pass its bytes")
            if info.st_size == 0:
                raise ImageError(f"{name}: the file is empty (0 bytes)")
            fh = path.open("rb")
        except PermissionError as exc:
            raise ImageError(f"{name}: permission denied; check the file's permissions (chmod +r)") from exc
        except OSError as exc:  # a FIFO's open is fine; an I/O error, a name too long...
            raise ImageError(f"{name}: cannot be read ({exc.strerror or exc})") from exc
        with fh, pillow_limit(max_pixels):
            return pil_to_rgb(_open_checked(fh, name, max_pixels), name)
    raise ImageError(
        f"{name}: cannot read an image from this type; pass a path, bytes, a binary stream, a PIL image or "
        "a numpy array"
    )


#: `thumbprint` correlation at and above which two photos are the same picture: a copy,
#: re-saved or resized, scores 0.99-1.0 (trimmed by 1 % a side, 0.97-0.99: not always
#: caught); two different shots of the development set reach 0.96 at most (two photos of a
#: burst, a moment apart).
SAME_PICTURE = 0.98


def thumbprint(image: np.ndarray) -> np.ndarray:
    """``(1024,)`` what an ``(H, W, 3)`` photo looks like at 32 x 32 in grey, centred and of
    unit length: the dot product of two is near 1 only for the same picture (`same_pictures`)."""
    grey = Image.fromarray(np.ascontiguousarray(image)).convert("L").resize((32, 32), Image.Resampling.BILINEAR)
    v = np.asarray(grey, np.float32).ravel()
    v -= v.mean()
    return v / max(float(np.linalg.norm(v)), 1e-6)


def same_pictures(prints: list[np.ndarray]) -> list[tuple[int, int]]:
    """Index pairs ``(i, j)``, ``i < j``, of `thumbprint` s that show the same picture.

    >>> a, b = (np.random.default_rng(s).integers(0, 255, (6, 8, 3)).repeat(10, 0).repeat(10, 1)
    ...         .astype(np.uint8) for s in (0, 1))                  # two 60 x 80 pictures
    >>> same_pictures([thumbprint(a), thumbprint(b), thumbprint(a[::2, ::2])])  # b, a at half size
    [(0, 2)]
    """
    return [(i, j) for i in range(len(prints)) for j in range(i + 1, len(prints))
            if float(prints[i] @ prints[j]) >= SAME_PICTURE]


#: what pekit names the annotated copies it writes beside a photo (``photo_pekit.jpg``,
#: ``photo_pekit-1.jpg``): a folder read as photos skips them, so a second run over the
#: folder does not recognize its own drawings
PEKIT_OUTPUT = re.compile(r"_pekit(-\d+)?$")


def _is_folder(path: Path) -> bool:
    """``path.is_dir()``, False where it cannot be asked (a name too long for the file system,
    a folder without ``x`` permission): read as a file, whose reading says what is wrong."""
    try:
        return path.is_dir()
    except OSError:
        return False


def list_images(paths: list[str | os.PathLike]) -> list[Path]:
    """Expand folders into their image files (sorted; hidden files and pekit's own annotated
    copies, `PEKIT_OUTPUT`, skipped; subfolders are not searched); keep files as given."""
    out: list[Path] = []
    for p in paths:
        if not os.fspath(p).strip():  # an empty shell variable: not "this folder" (Path("") is ".")
            raise ImageError(EMPTY_PATH)
        path = Path(p).expanduser()
        if _is_folder(path):
            found = sorted(q for q in path.iterdir()  # hidden files: other programs' (and pekit's) temporaries
                           if q.suffix.lower() in IMAGE_SUFFIXES and not q.name.startswith(".")
                           and not PEKIT_OUTPUT.search(q.stem) and not _is_folder(q))  # a folder called x.jpg
            heic = [q for q in found if q.suffix.lower() in HEIF_SUFFIXES]
            if heic and not heif_readable():  # as before pekit knew them: skipped, but said
                found = [q for q in found if q not in heic]
                log.warning("'%s': %d HEIC photo(s) skipped (%s%s): pip install 'pekit-vlm[heif]' to read them", path,
                            len(heic), heic[0].name, ", ..." if len(heic) > 1 else "")
            if not found:
                inside = sorted(q.name for q in path.iterdir() if q.is_dir() and not q.name.startswith("."))
                hint = (f"; subfolders are not searched: pass them, e.g. '{path / inside[0]}'" if inside else "")
                if any(PEKIT_OUTPUT.search(q.stem) for q in path.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES):
                    hint += "; its *_pekit images are pekit's own annotated copies, skipped (name one to read it)"
                raise ImageError(f"'{path}': the folder holds no image files "
                                 f"({', '.join(sorted(IMAGE_SUFFIXES))}){hint}")
            out.extend(found)
        else:
            out.append(path)
    return out


def image_list(images: Any) -> list[Any]:
    """``images`` as a list: one image (a path, bytes, an array, a PIL image...) or any
    ordered iterable of them (a list, a tuple, a generator); a set is refused (references
    are matched to their boxes and masks by position).

    >>> len(image_list("a.jpg")), len(image_list(["a.jpg", "b.jpg"])), len(image_list(p for p in "ab"))
    (1, 2, 2)
    """
    if _single(images) or not isinstance(images, Iterable):
        return [images]
    if isinstance(images, (set, frozenset)):
        raise InvalidInputError("images must be in an order (a list or a tuple), not a set: boxes and masks are "
                                "given photo by photo")
    return list(images)


def _is_link(path: Path) -> bool:
    try:
        return path.is_symlink()
    except OSError:
        return False
