"""Pixels as ``(H, W, 3) uint8`` RGB (`pekit.images.load_image` reads them): a numpy array
of any dtype and 2 to 4 channels (`array_to_rgb`, `to_uint8`), and a decoded PIL image of
any mode, turned upright by its EXIF orientation and brought to sRGB (`pil_to_rgb`).
Transparent pixels are put on white.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps

from pekit._image_formats import in_srgb
from pekit.errors import ImageError

__all__ = ["FLOAT_RING", "FLOAT_UNIT_TOP", "array_to_rgb", "pil_to_rgb", "to_uint8"]


#: floats up to this are 0-1 pixels: a 0-1 photo resized with a bicubic or Lanczos kernel
#: over- and undershoots its range by a few per cent (clipped); a 0-255 photo this dark is black
FLOAT_UNIT_TOP = 1.5
#: how far under 0 (as a share of the scale) and over it float pixels may ring before the
#: array is refused: a mean/std-normalised tensor reaches -2, other data any value
FLOAT_RING = 0.1


def to_uint8(arr: np.ndarray, name: str) -> np.ndarray:
    """Pixel values of another dtype as 8-bit: uint16 by its range (a 16-bit photo; dark or
    not, the same scale), other integers as 0-255 values, floats as 0-1 (or 0-255 when any
    value is over `FLOAT_UNIT_TOP`), the ringing of a resize clipped. Values far outside
    the scale are refused: a normalised tensor, signed or 16-bit data, not a photo's pixels;
    wrapping or clipping them would give other pixels silently."""
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)):
            raise ImageError(f"{name}: the image array contains NaN or infinite values")
        lo, top = float(arr.min()), float(arr.max())  # not empty: checked before
        hi = 1.0 if top <= FLOAT_UNIT_TOP else 255.0
        # a 0-255 photo rings as far as -25 after a resize; a normalised tensor (-2.1 to 2.6) is not one
        if lo < -FLOAT_RING * (hi if top > 10 else 1.0):
            raise ImageError(f"{name}: the image array has negative values (down to {lo:.3g}); "
                             "pixels must be 0-1 or 0-255 floats: pass the photo itself, not a normalised "
                             "tensor (undo the mean/std normalisation first)")
        if hi > 1 and top > (1 + FLOAT_RING) * hi:
            raise ImageError(f"{name}: float pixels must be 0-1 or 0-255, but they run up to {top:.6g} "
                             "(16-bit or other data?); scale them first, e.g. a / a.max()")
        return np.clip(arr / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if not np.issubdtype(arr.dtype, np.integer):
        raise ImageError(f"{name}: unsupported array dtype {arr.dtype}; use uint8 RGB")
    if arr.dtype == np.uint16:
        return (arr.astype(np.float64) / 257.0 + 0.5).astype(np.uint8)
    lo, top = int(arr.min()), int(arr.max())  # not empty: checked before
    if lo < 0 or top > 255:
        raise ImageError(f"{name}: a {arr.dtype} image array must hold pixel values 0-255, but they run "
                         f"from {lo} to {top}; convert it to uint8 (or uint16 for 16-bit pixels) first, "
                         "e.g. np.clip(a, 0, 255).astype(np.uint8)")
    return arr.astype(np.uint8)


def array_to_rgb(arr: np.ndarray, name: str) -> np.ndarray:
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        first = arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[2] > 4
        raise ImageError(
            f"{name}: an image array must have shape (H, W), (H, W, 3) or (H, W, 4), "
            f"but got shape {arr.shape}"
            + ("; it looks channel-first (C, H, W): pass a.transpose(1, 2, 0)" if first else "")
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageError(f"{name}: the image is empty (zero width or height)")
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    elif arr.dtype != np.uint8:
        arr = to_uint8(arr, name)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    elif arr.shape[2] == 4:
        # composite on white: transparent product photos should not turn black
        rgb = arr[:, :, :3].astype(np.float32)
        alpha = arr[:, :, 3:4].astype(np.float32) / 255.0
        arr = (rgb * alpha + 255.0 * (1.0 - alpha) + 0.5).astype(np.uint8)
    arr = np.ascontiguousarray(arr)
    return arr if arr.flags.writeable else arr.copy()  # Pillow's pixels are read-only: yours to change


def pil_to_rgb(img: Image.Image, name: str) -> np.ndarray:
    """``img`` as an ``(H, W, 3) uint8`` sRGB array, turned upright by its EXIF orientation."""
    try:  # (a damaged EXIF block: read as stored; load_image silences Pillow's warning)
        img = ImageOps.exif_transpose(img)
    except Exception:  # a broken EXIF block should not make the photo unusable
        pass
    if img.width == 0 or img.height == 0:
        raise ImageError(f"{name}: the image is empty (zero width or height)")
    img = in_srgb(img)
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):  # a 16-bit file: its range, whatever the values
        grey = np.asarray(img).astype(np.uint16)
        key = img.info.get("transparency")
        if isinstance(key, int):  # a key grey level (PNG tRNS): transparent, on white as in other modes
            level = to_uint8(grey, name)
            return array_to_rgb(np.dstack([level, level, level, np.where(grey == key, 0, 255).astype(np.uint8)]),
                                 name)
        return array_to_rgb(grey, name)
    if mode == "I":  # 32-bit integers: 16-bit data in older Pillows' PNGs, else 0-255
        arr = np.asarray(img, dtype=np.float64)
        lo, top = arr.min(), arr.max()  # not empty: checked before
        if lo < 0 or top > 65535:
            raise ImageError(f"{name}: 32-bit integer pixels from {lo:.0f} to {top:.0f}; pekit reads 8- and "
                             "16-bit images: convert it to one of them first")
        hi = 65535.0 if top > 255 else 255.0
        return array_to_rgb((np.clip(arr / hi, 0, 1) * 255 + 0.5).astype(np.uint8), name)
    if mode == "F":
        return array_to_rgb(np.asarray(img, dtype=np.float32), name)
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info:  # a key colour too (PNG tRNS)
        return array_to_rgb(np.asarray(img.convert("RGBA")), name)
    if mode != "RGB":
        img = img.convert("RGB")
    return array_to_rgb(np.asarray(img), name)
