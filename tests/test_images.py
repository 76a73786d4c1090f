"""`load_image`: every input becomes ``(H, W, 3) uint8`` RGB, or an `ImageError` naming the source."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageOps

from pekit.errors import ImageError, PekitError
from pekit.images import describe, list_images, load_image, source_name


def encode(img: Image.Image, fmt: str = "PNG", **kw: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.fixture
def rgb() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)


# ---- sources ------------------------------------------------------------------------------
def test_png_path_str_pathlike_bytes_and_pil_agree(tmp_path: Path, rgb: np.ndarray) -> None:
    path = tmp_path / "photo.png"
    Image.fromarray(rgb).save(path)
    for source in (path, str(path), path.read_bytes(), bytearray(path.read_bytes()), Image.open(path), rgb):
        out = load_image(source)
        assert out.shape == (20, 30, 3) and out.dtype == np.uint8
        np.testing.assert_array_equal(out, rgb)


def test_jpeg_path(tmp_path: Path, rgb: np.ndarray) -> None:
    path = tmp_path / "photo.jpg"
    Image.fromarray(rgb).save(path, quality=95)
    out = load_image(path)
    assert out.shape == (20, 30, 3) and out.dtype == np.uint8


def test_returns_a_contiguous_copy_not_a_view(rgb: np.ndarray) -> None:
    view = rgb[:, ::-1]
    out = load_image(view)
    assert out.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(out, view)


# ---- numpy arrays --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("array", "expected_pixel"),
    [
        (np.full((4, 5), 7, np.uint8), [7, 7, 7]),  # gray
        (np.full((4, 5, 1), 7, np.uint8), [7, 7, 7]),  # gray with a channel axis
        (np.full((4, 5, 3), [1, 2, 3], np.uint8), [1, 2, 3]),
        (np.full((4, 5, 4), [200, 0, 0, 255], np.uint8), [200, 0, 0]),  # opaque RGBA
        (np.full((4, 5, 4), [200, 0, 0, 0], np.uint8), [255, 255, 255]),  # transparent -> white
        (np.full((4, 5, 4), [0, 0, 0, 128], np.uint8), [127, 127, 127]),  # half black on white
        (np.full((4, 5), 1.0, np.float32), [255, 255, 255]),  # float in [0, 1]
        (np.full((4, 5), 0.5, np.float64), [128, 128, 128]),
        (np.full((4, 5, 3), 255.0, np.float32), [255, 255, 255]),  # float in [0, 255]
        (np.full((4, 5), True), [255, 255, 255]),  # bool
        (np.full((4, 5), 65535, np.uint16), [255, 255, 255]),  # 16-bit
        (np.full((4, 5), 32768, np.uint16), [128, 128, 128]),
        (np.full((4, 5), 200, np.int64), [200, 200, 200]),  # ints within 0..255 stay as they are
        (np.full((4, 5), 255, np.uint16), [1, 1, 1]),  # 16-bit by its range, dark or not
        (np.full((4, 5), 256, np.uint16), [1, 1, 1]),
    ],
)
def test_arrays_become_rgb_uint8(array: np.ndarray, expected_pixel: list[int]) -> None:
    out = load_image(array)
    assert out.shape == (4, 5, 3) and out.dtype == np.uint8
    assert out[2, 3].tolist() == expected_pixel


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros(10, np.uint8), r"shape \(H, W\), \(H, W, 3\) or \(H, W, 4\), but got shape \(10,\)"),
        (np.zeros((4, 5, 2), np.uint8), r"but got shape \(4, 5, 2\)"),
        (np.zeros((4, 5, 5), np.uint8), r"but got shape \(4, 5, 5\)"),
        (np.zeros((1, 4, 5, 3), np.uint8), r"but got shape \(1, 4, 5, 3\)"),
        (np.zeros((0, 5, 3), np.uint8), "empty"),
        (np.zeros((4, 0), np.uint8), "empty"),
        (np.full((4, 5), np.nan, np.float32), "NaN or infinite"),
        (np.zeros((4, 5), np.complex64), "unsupported array dtype"),
        (np.full((4, 5), -128, np.int16), r"pixel values 0-255, but they run from -128 to -128"),
        (np.full((4, 5), 300, np.int64), r"from 300 to 300; convert it to uint8"),
        (np.full((4, 5), -0.5, np.float32), "negative values .* normalised tensor"),
    ],
)
def test_bad_arrays_raise_image_error_with_the_shape(array: np.ndarray, message: str) -> None:
    with pytest.raises(ImageError, match=message) as info:
        load_image(array)
    assert "<array" in str(info.value)  # names the source


# ---- PIL modes and files ----------------------------------------------------------------
def test_16_bit_png_is_scaled_to_8_bit(tmp_path: Path) -> None:
    ramp = np.linspace(0, 65535, 64 * 32).reshape(32, 64).astype(np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(ramp).save(path)
    assert Image.open(path).mode.startswith("I")  # really a 16-bit file
    out = load_image(path)
    assert out.shape == (32, 64, 3) and out.dtype == np.uint8
    assert out[0, 0].tolist() == [0, 0, 0] and out[-1, -1].tolist() == [255, 255, 255]
    assert out[16, 0, 0] == pytest.approx(ramp[16, 0] / 257, abs=1)


def test_a_dark_16_bit_png_stays_dark(tmp_path: Path) -> None:
    # its values happen to be under 256: still 16-bit pixels, not 8-bit ones
    path = tmp_path / "dark.png"
    Image.fromarray(np.full((8, 8), 255, np.uint16)).save(path)
    assert Image.open(path).mode.startswith("I")
    assert load_image(path)[0, 0].tolist() == [1, 1, 1]


def test_palette_with_transparency_composites_on_white() -> None:
    pal = Image.new("P", (4, 4), 0)
    pal.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)  # index 0 red, 1 blue
    pal.putpixel((1, 1), 1)
    data = encode(pal, transparency=0)  # index 0 is transparent
    assert Image.open(io.BytesIO(data)).mode == "P"
    out = load_image(data)
    assert out[0, 0].tolist() == [255, 255, 255]  # transparent red -> white
    assert out[1, 1].tolist() == [0, 0, 255]


def test_palette_without_transparency() -> None:
    pal = Image.new("P", (4, 4), 0)
    pal.putpalette([10, 20, 30] + [0] * 765)
    assert load_image(encode(pal))[0, 0].tolist() == [10, 20, 30]


@pytest.mark.parametrize(
    ("mode", "value", "expected"),
    [
        ("LA", (0, 0), [255, 255, 255]),  # transparent black -> white
        ("LA", (40, 255), [40, 40, 40]),
        ("L", 40, [40, 40, 40]),
        ("1", 1, [255, 255, 255]),
        ("RGBA", (10, 20, 30, 255), [10, 20, 30]),
        ("CMYK", (0, 0, 0, 0), [255, 255, 255]),
        ("F", 0.5, [128, 128, 128]),
    ],
)
def test_pil_modes(mode: str, value: Any, expected: list[int]) -> None:
    out = load_image(Image.new(mode, (6, 3), value))
    assert out.shape == (3, 6, 3) and out.dtype == np.uint8
    assert out[1, 2].tolist() == expected


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    stored = np.zeros((20, 40, 3), np.uint8)  # landscape as stored, red top-left corner
    stored[:, :] = (0, 0, 255)
    stored[:6, :6] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = tmp_path / "rotated.jpg"
    Image.fromarray(stored).save(path, exif=exif, quality=95)
    out = load_image(path)
    assert out.shape == (40, 20, 3)  # displayed portrait
    assert out[2, -3, 0] > 200 and out[2, -3, 2] < 50  # the red corner is now top-right
    assert out[2, 2, 2] > 200  # top-left is blue


def test_a_pil_image_is_turned_by_the_tag_it_carries(tmp_path: Path) -> None:
    """Image.open(p).convert("RGB") (the common idiom) keeps the file's tag, rightly, and reads
    upright; an image turned with ImageOps.exif_transpose has no tag left and is not turned again."""
    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:6, :6] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.jpg"
    Image.fromarray(stored).save(path, exif=exif, quality=95)
    for made in (Image.open(path), Image.open(path).convert("RGB"), Image.open(path).copy(),
                 ImageOps.exif_transpose(Image.open(path))):
        assert load_image(made).shape == (40, 20, 3)


def test_a_corrupt_exif_block_is_read_quietly(tmp_path: Path, recwarn: pytest.WarningsRecorder) -> None:
    path = tmp_path / "bad-exif.jpg"
    Image.new("RGB", (30, 20), (10, 200, 30)).save(path, exif=b"Exif\x00\x00II*\x00\xff\xff\xff\xff")
    assert load_image(path).shape == (20, 30, 3)
    assert not [w for w in recwarn if "EXIF" in str(w.message)]


# ---- refusals ---------------------------------------------------------------------------------
def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _fifo(path: Path) -> Path:  # a named pipe: reading it would wait for a writer forever
    if not hasattr(os, "mkfifo"):
        pytest.skip("no named pipes on this system")
    os.mkfifo(path)
    return path


def _link(path: Path, target: Path) -> Path:
    path.symlink_to(target)
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: _write(d / "notes.txt", b"hello, I am not a photo\n"), "not an image file"),
        (lambda d: _write(d / "fake.jpg", b"hello, I am not a photo\n"), "not an image file"),
        (lambda d: _write(d / "empty.png", b""), r"empty \(0 bytes\)"),
        (lambda d: d / "missing.jpg", "no such file"),
        (lambda d: d, "is a folder"),
        (lambda d: _fifo(d / "pipe.jpg"), "not a regular file"),
        (lambda d: _link(d / "loop.jpg", d / "loop.jpg"), "a link to nothing"),
        (lambda d: _link(d / "dangling.jpg", d / "gone.jpg"), "a link to nothing"),
    ],
    ids=["text", "text-named-jpg", "empty", "missing", "folder", "fifo", "link-loop", "dangling-link"],
)
def test_unreadable_files_raise_image_error_naming_the_file(tmp_path: Path, make: Any, message: str) -> None:
    path = make(tmp_path)
    with pytest.raises(ImageError, match=message) as info:
        load_image(path)
    assert str(path) in str(info.value)
    assert info.value.exit_code == 3


def test_truncated_jpeg(tmp_path: Path) -> None:
    from skimage import data

    full = tmp_path / "full.jpg"
    Image.fromarray(data.chelsea()).save(full, quality=90)
    half = _write(tmp_path / "half.jpg", full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(ImageError, match="damaged or truncated") as info:
        load_image(half)
    assert "half.jpg" in str(info.value)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (b"", "empty"),
        (b"GIF89a not really", "starts as a GIF file does, but Pillow cannot read it: the file is damaged"),
        (b"not really a photo", "not an image file"),
        (12, "cannot read an image from this type"),
        (None, "cannot read an image from this type"),
    ],
)
def test_other_bad_sources(source: Any, message: str) -> None:
    with pytest.raises(ImageError, match=message):
        load_image(source)


def test_decompression_bomb_guard(tmp_path: Path, rgb: np.ndarray) -> None:
    path = tmp_path / "big.png"
    Image.fromarray(rgb).save(path)  # 30 x 20 = 600 pixels
    for source in (path, path.read_bytes(), Image.open(path), rgb):
        with pytest.raises(ImageError, match="more than the limit of 599 pixels"):
            load_image(source, max_pixels=599)
    assert load_image(path, max_pixels=600).shape == (20, 30, 3)


def _png_header_only(width: int, height: int) -> bytes:
    """A 1-bit PNG whose header claims ``width`` x ``height`` pixels, cut off inside its first
    rows: Pillow reads the size from the header (what a bomb check sees), then stops at once."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit grayscale
    rows = (b"\x00" * (1 + (width + 7) // 8)) * 3
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows)[:-4])


def test_pekit_limit_is_the_one_in_force_not_pillows(tmp_path: Path) -> None:
    from pekit.images import MAX_PIXELS

    pillow_limit = Image.MAX_IMAGE_PIXELS
    assert pillow_limit < 12000 * 9000 < MAX_PIXELS  # the case: Pillow alone refuses a 108 MP photo
    phone = tmp_path / "phone.png"
    phone.write_bytes(_png_header_only(12000, 9000))
    with pytest.raises(ImageError) as info:
        load_image(phone)
    assert "truncated" in str(info.value) and "bomb" not in str(info.value)  # got past the size check
    huge = tmp_path / "huge.png"
    huge.write_bytes(_png_header_only(17000, 17000))  # 289 MP > MAX_PIXELS
    with pytest.raises(ImageError, match=f"more than the limit of {MAX_PIXELS} pixels"):
        load_image(huge)
    assert pillow_limit == Image.MAX_IMAGE_PIXELS  # no lasting change to Pillow


def test_a_lower_pillow_limit_does_not_refuse_what_pekit_allows(tmp_path: Path, rgb: np.ndarray,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "small.png"
    Image.fromarray(rgb).save(path)  # 600 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # e.g. set by another library
    assert load_image(path, max_pixels=600).shape == (20, 30, 3)
    assert load_image(path.read_bytes()).shape == (20, 30, 3)
    assert Image.MAX_IMAGE_PIXELS == 100


def _outcomes(path: Path, limits: list[int]) -> list[str]:
    """Load ``path`` under each of ``limits`` from 8 threads at once: "loaded" or "refused"."""
    from concurrent.futures import ThreadPoolExecutor

    def load(limit: int) -> str:
        try:
            load_image(path, max_pixels=limit)
        except ImageError:
            return "refused"
        return "loaded"

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(load, limits))


def test_concurrent_loads_each_get_their_own_limit(tmp_path: Path, rgb: np.ndarray) -> None:
    path = tmp_path / "img.png"
    Image.fromarray(rgb).save(path)  # 600 pixels
    before = Image.MAX_IMAGE_PIXELS

    limits = [600, 599, 10_000, 599, 600, 100] * 8
    got = _outcomes(path, limits)
    assert got == ["loaded" if limit >= 600 else "refused" for limit in limits]
    assert before == Image.MAX_IMAGE_PIXELS


def test_concurrent_refusals_leak_no_pillow_warning(tmp_path: Path, rgb: np.ndarray) -> None:
    # 600 pixels against a limit of 599: Pillow only warns (up to twice its limit), pekit must
    # turn that into its own refusal in every thread, with no warning escaping to the caller
    import sys
    import warnings

    data = tmp_path / "img.png"
    Image.fromarray(rgb).save(data)

    limits = [599, 598, 600, 597, 599] * 80  # mixed limits: loads wait for one another
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often, so that loads interleave
    try:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            got = _outcomes(data, limits)
    finally:
        sys.setswitchinterval(switch)
    assert got == ["loaded" if limit >= 600 else "refused" for limit in limits]
    assert not [w for w in seen if issubclass(w.category, Image.DecompressionBombWarning)]
    assert not any(f[2] is Image.DecompressionBombWarning for f in warnings.filters)  # nothing left behind


def test_image_error_is_a_pekit_value_error() -> None:
    with pytest.raises(PekitError):
        load_image(b"")
    with pytest.raises(ValueError):
        load_image(b"")


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("a/b.jpg", "'a/b.jpg'"),
        (Path("x.png"), "'x.png'"),
        (b"abc", "<3 bytes>"),
        (np.zeros((2, 3), np.uint8), "<array (2, 3) uint8>"),
        (Image.new("L", (3, 2)), "<PIL image L (3, 2)>"),
        (1.5, "<float>"),
    ],
)
def test_describe(source: Any, expected: str) -> None:
    assert describe(source) == expected


# ---- list_images ------------------------------------------------------------------------------
def test_list_images_expands_folders_sorted_and_keeps_files(tmp_path: Path) -> None:
    folder = tmp_path / "refs"
    folder.mkdir()
    for name in ("b.jpg", "a.PNG", "c.webp", "notes.txt", ".hidden"):
        (folder / name).write_bytes(b"x")
    (folder / "sub").mkdir()
    single = tmp_path / "single.jpg"
    out = list_images([folder, str(single)])
    assert out == [folder / "a.PNG", folder / "b.jpg", folder / "c.webp", single]
    assert list_images([]) == []


def test_list_images_refuses_an_empty_path_and_skips_a_folder_named_like_a_photo(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a.jpg").write_bytes(b"x")
    (tmp_path / "holiday.jpg").mkdir()  # a folder whose name ends in .jpg is not a photo of the folder
    assert list_images([tmp_path]) == [tmp_path / "a.jpg"]
    monkeypatch.chdir(tmp_path)
    for empty in ("", "  "):  # an empty shell variable ("$PHOTO"): not every photo of this folder
        with pytest.raises(ImageError, match="the image path is empty"):
            list_images([empty])


def test_list_images_empty_folder_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "readme.md").write_text("no photos")
    with pytest.raises(ImageError, match="holds no image files") as info:
        list_images([tmp_path])
    assert str(tmp_path) in str(info.value) and "subfolders" not in str(info.value)
    (tmp_path / "dog").mkdir()  # a dataset's root: its photos are one level down
    with pytest.raises(ImageError, match=r"subfolders are not searched: pass them, e\.g\. '.*dog'"):
        list_images([tmp_path])


def test_a_folder_read_twice_skips_the_copies_pekit_drew(tmp_path: Path) -> None:
    for name in ("02.jpg", "02_pekit.jpg", "02_pekit-1.jpg", "03_pekit.png", "my_pekit_photo.jpg"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in list_images([tmp_path])] == ["02.jpg", "my_pekit_photo.jpg"]
    assert list_images([tmp_path / "02_pekit.jpg"]) == [tmp_path / "02_pekit.jpg"]  # named: read
    drawn = tmp_path / "drawn"
    drawn.mkdir()
    (drawn / "02_pekit.jpg").write_bytes(b"x")
    with pytest.raises(ImageError, match=r"holds no image files.*\*_pekit images are pekit's own annotated copies"):
        list_images([drawn])



def test_source_name_is_the_path_as_given_and_describe_quotes_it(tmp_path: Path) -> None:
    assert source_name(tmp_path / "a.jpg") == str(tmp_path / "a.jpg")
    assert source_name("'x.jpg'") == "'x.jpg'" and describe("'x.jpg'") == "''x.jpg''"  # quotes in the name kept
    for other in (b"abcd", np.zeros((2, 3, 3), np.uint8), 7):
        assert source_name(other) == describe(other) and not source_name(other).startswith("'")


def test_an_empty_path_and_a_file_this_user_may_not_read_are_named(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ImageError, match="the image path is empty"):
        load_image("")
    photo = tmp_path / "private.jpg"
    Image.new("RGB", (8, 8)).save(photo)

    def denied(self: Path, *args: object, **kwargs: object) -> None:  # what chmod 000 does to anyone but root
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "open", denied)
    with pytest.raises(ImageError, match=r"private\.jpg'?: permission denied; check the file's permissions"):
        load_image(photo)



# ---- from a review of unusual inputs -------------------------------------------------------------
def test_a_resized_0_1_float_photo_rings_a_little_and_stays_on_its_scale(rgb: np.ndarray) -> None:
    """Bicubic resizing of a 0-1 photo over- and undershoots by a few per cent: still 0-1
    pixels (clipped), not a black 0-255 photo and not a refused normalised tensor."""
    ringing = rgb / 255.0
    ringing[0, 0] = [1.07, -0.07, 0.5]
    out = load_image(ringing)
    assert out[0, 0].tolist() == [255, 0, 128]
    np.testing.assert_array_equal(out[1:], rgb[1:])


@pytest.mark.parametrize(("array", "message"), [
    (np.full((4, 5), 300.0, np.float32), "run up to 300"),  # 16-bit data as floats: not clipped white
    (np.full((4, 5), 65535.0, np.float64), "run up to 65535"),
    (np.linspace(-2.1, 2.6, 20, dtype=np.float32).reshape(4, 5), "normalised tensor"),
])
def test_floats_far_off_both_scales_are_refused_not_saturated(array: np.ndarray, message: str) -> None:
    with pytest.raises(ImageError, match=message):
        load_image(array)


def test_a_float_or_32_bit_tiff_out_of_range_is_refused(tmp_path: Path) -> None:
    deep = tmp_path / "deep.tif"
    Image.fromarray(np.full((8, 8), 30000.0, np.float32)).save(deep)  # mode F holding 16-bit values
    with pytest.raises(ImageError, match="run up to 30000"):
        load_image(deep)
    signed = tmp_path / "signed.tif"
    Image.fromarray(np.full((8, 8), -5, np.int32)).save(signed)  # mode I, negative
    assert Image.open(signed).mode == "I"
    with pytest.raises(ImageError, match="32-bit integer pixels from -5 to -5"):
        load_image(signed)


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_a_png_key_colour_is_transparent_as_in_a_palette_png(tmp_path: Path, mode: str) -> None:
    pixels = np.full((8, 8, 3), 200, np.uint8)
    pixels[:4] = 0  # the key colour: transparent
    img = Image.fromarray(pixels).convert(mode)
    path = tmp_path / "keyed.png"
    img.save(path, transparency=0 if mode == "L" else (0, 0, 0))
    out = load_image(path)
    assert out[0, 0].tolist() == [255, 255, 255] and out[7, 7].tolist() == [200, 200, 200]


def test_streams_memoryviews_and_array_likes_are_one_image(tmp_path: Path, rgb: np.ndarray) -> None:
    from pekit.images import image_list

    data = encode(Image.fromarray(rgb))
    stream = io.BytesIO(data)

    class Tensor:  # what torch, jax... give: an array-like that also iterates over its rows
        shape = rgb.shape

        def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
            return rgb

        def __iter__(self) -> Any:
            return iter(rgb)

    path = tmp_path / "photo.png"
    path.write_bytes(data)
    with path.open("rb") as fh:
        for source in (stream, memoryview(data), Tensor(), fh):
            assert len(image_list(source)) == 1  # not its lines, bytes or rows
            np.testing.assert_array_equal(load_image(source), rgb)
            np.testing.assert_array_equal(load_image(source), rgb)  # put back where it was: read again
        assert describe(fh) == str(path)
    assert describe(Tensor()) == "<Tensor (20, 30, 3)>" and describe(memoryview(data)) == f"<{len(data)} bytes>"
    with pytest.raises(ImageError, match="opened as text; open it with 'rb'"), \
            path.open("r", encoding="latin-1") as text:
        load_image(text)


def test_a_channel_first_array_is_named_as_such() -> None:
    with pytest.raises(ImageError, match=r"channel-first \(C, H, W\): pass a.transpose\(1, 2, 0\)"):
        load_image(np.zeros((3, 20, 30), np.uint8))


def test_what_a_file_gives_can_be_written_to(tmp_path: Path, rgb: np.ndarray) -> None:
    path = tmp_path / "photo.jpg"
    Image.fromarray(rgb).save(path)
    for source in (path, path.read_bytes(), Image.open(path)):
        out = load_image(source)
        out[0, 0] = 0  # Pillow's pixels are read-only; the array given back is the caller's
    read_only = rgb.copy()
    read_only.flags.writeable = False
    load_image(read_only)[0, 0] = 0
    assert read_only[0, 0].tolist() == rgb[0, 0].tolist()


def test_avif_and_heic_photos_are_photos_not_videos(tmp_path: Path, rgb: np.ndarray,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import features

    from pekit import _image_formats as images
    from pekit.images import sniff_image
    from pekit.video.decode import is_video

    pillow_heif = pytest.importorskip("pillow_heif", reason="the [heif] extra (in [dev]) reads HEIC")
    heic = tmp_path / "phone.heic"  # an iPhone photo
    pillow_heif.from_pillow(Image.fromarray(np.kron(rgb, np.ones((4, 4, 1), np.uint8)))).save(heic, quality=95)
    assert sniff_image(heic.read_bytes()) == "image/heic" and not is_video(heic)
    out = load_image(heic)
    assert out.shape == (80, 120, 3) and np.abs(out[2::4, 2::4].astype(int) - rgb).mean() < 12
    assert list_images([tmp_path]) == [heic]
    monkeypatch.setattr(images, "_HEIF_OPENER", [False])  # as without the plugin:
    Image.init()  # every plugin in ID first: one loaded while ID is patched would be lost after it
    monkeypatch.setattr(Image, "ID", [k for k in Image.ID if k != "HEIF"])
    with pytest.raises(ImageError, match=r"a HEIC photo; .*pip install 'pekit-vlm\[heif\]'"):
        load_image(heic)
    monkeypatch.undo()  # the plugin back: a damaged HEIC file is said to be damaged, not to need it
    damaged = tmp_path / "damaged.heic"
    damaged.write_bytes(heic.read_bytes()[:40] + bytes(400))
    with pytest.raises(ImageError) as info:
        load_image(damaged)
    assert "damaged" in str(info.value) and "pip install" not in str(info.value)
    damaged.unlink()
    monkeypatch.setattr(images, "_HEIF_OPENER", [False])
    monkeypatch.setattr(Image, "ID", [k for k in Image.ID if k != "HEIF"])
    mp4 = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"
    assert sniff_image(mp4) is None and (tmp_path / "clip.bin").write_bytes(mp4) and is_video(tmp_path / "clip.bin")
    if not features.check("avif"):
        pytest.skip("this Pillow has no AVIF codec (Pillow >= 11.2 ships one)")
    avif = tmp_path / "photo.avif"
    Image.fromarray(rgb).save(avif, quality=100)
    assert sniff_image(avif.read_bytes()) == "image/avif" and not is_video(avif)
    assert load_image(avif).shape == rgb.shape
    assert list_images([tmp_path]) == [avif]  # the HEIC photo is skipped while the plugin is "missing"


def _display_p3_profile(name: str = "Display P3 (test)", gamma: float = 2.2,
                        primaries: tuple = ((0.5151, 0.2412, -0.0011), (0.2920, 0.6922, 0.0419),
                                            (0.1571, 0.0666, 0.7841))) -> bytes:
    """A minimal ICC v2 display profile, by default with Display P3's primaries (D50-adapted)
    and a 2.2 gamma: what an iPhone photo carries, near enough to move its colours as P3 does."""
    import struct

    def s15(x: float) -> bytes:
        return struct.pack(">i", round(x * 65536))

    def xyz(x: float, y: float, z: float) -> bytes:
        return b"XYZ " + bytes(4) + s15(x) + s15(y) + s15(z)

    def curve(gamma: float) -> bytes:
        return b"curv" + bytes(4) + struct.pack(">IH", 1, round(gamma * 256)) + bytes(2)

    text = name.encode() + b"\0"
    tags = [(b"desc", b"desc" + bytes(4) + struct.pack(">I", len(text)) + text + bytes(78)),
            (b"wtpt", xyz(0.9642, 1.0, 0.8249)), (b"rXYZ", xyz(*primaries[0])),
            (b"gXYZ", xyz(*primaries[1])), (b"bXYZ", xyz(*primaries[2])),
            (b"rTRC", curve(gamma)), (b"gTRC", curve(gamma)), (b"bTRC", curve(gamma)),
            (b"cprt", b"text" + bytes(4) + b"x\0")]
    start, table, data = 128 + 4 + 12 * len(tags), b"", b""
    for sig, body in tags:
        body += bytes(-len(body) % 4)
        table += sig + struct.pack(">II", start + len(data), len(body))
        data += body
    header = (struct.pack(">I", start + len(data)) + b"lcms" + struct.pack(">I", 0x02100000) + b"mntrRGB XYZ "
              + bytes(12) + b"acspAPPL" + bytes(24) + s15(0.9642) + s15(1.0) + s15(0.8249) + bytes(48))
    return header + struct.pack(">I", len(tags)) + table + data


def test_a_display_p3_photo_is_read_in_srgb_and_an_srgb_one_as_it_is(tmp_path: Path) -> None:
    """An iPhone photo (Display P3) and the same scene from an sRGB camera should give the
    same colours: the profile is applied, not ignored."""
    from PIL import ImageCms

    pixels = np.full((8, 8, 3), [200, 100, 50], np.uint8)
    p3 = tmp_path / "iphone.jpg"
    Image.fromarray(pixels).save(p3, quality=100, icc_profile=_display_p3_profile())
    red, green, blue = load_image(p3)[4, 4].astype(int)
    assert red > 210 and green < 97 and blue < 35  # P3's orange is more saturated in sRGB: ~(216, 93, 24)
    srgb = tmp_path / "camera.png"
    Image.fromarray(pixels).save(srgb, icc_profile=ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    np.testing.assert_array_equal(load_image(srgb), pixels)
    damaged = tmp_path / "damaged.png"
    Image.fromarray(pixels).save(damaged, icc_profile=b"not a profile at all")
    np.testing.assert_array_equal(load_image(damaged), pixels)  # the pixels as they are, not an error
    palette = tmp_path / "palette.png"  # the same P3 colour in a palette image
    Image.fromarray(pixels).convert("P").save(palette, icc_profile=_display_p3_profile())
    assert Image.open(palette).mode == "P"
    as_rgb = tmp_path / "palette_rgb.png"  # its (quantised) colours as RGB, the same profile
    Image.open(palette).convert("RGB").save(as_rgb, icc_profile=_display_p3_profile())
    np.testing.assert_array_equal(load_image(palette), load_image(as_rgb))
    assert load_image(palette)[4, 4].tolist() != np.asarray(Image.open(palette).convert("RGB"))[4, 4].tolist()
    # named sRGB, but linear: converted all the same (the mapping is read, not the name)
    linear = tmp_path / "linear.png"
    srgb_primaries = ((0.4361, 0.2225, 0.0139), (0.3851, 0.7169, 0.0971), (0.1431, 0.0606, 0.7141))
    Image.fromarray(pixels).save(linear, icc_profile=_display_p3_profile("Linear sRGB", 1.0, srgb_primaries))
    assert load_image(linear)[4, 4].tolist() != pixels[4, 4].tolist()


def _generic_avif(rgb: np.ndarray) -> bytes:
    """``rgb`` as an AVIF whose major brand is the generic ``mif1`` (its compatible brands
    say AVIF); skips where this Pillow has no AVIF codec."""
    from PIL import features

    if not features.check("avif"):
        pytest.skip("this Pillow has no AVIF codec")
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "AVIF", quality=100)
    data = bytearray(buf.getvalue())
    data[8:12] = b"mif1"
    return bytes(data)


def test_an_avif_whose_major_brand_is_generic_is_an_avif_not_a_heic(tmp_path: Path, rgb: np.ndarray) -> None:

    from pekit.images import sniff_image

    generic = b"\x00\x00\x00\x1cftypmif1\x00\x00\x00\x00mif1avifmiaf"  # major mif1, compatible avif
    assert sniff_image(generic) == "image/avif"
    assert sniff_image(b"\x00\x00\x00\x1cftypmif1\x00\x00\x00\x00mif1heicmiaf") == "image/heic"
    data = _generic_avif(rgb)
    assert sniff_image(data) == "image/avif" and load_image(data).shape == rgb.shape


def test_a_file_opened_as_text_is_named_as_such(tmp_path: Path, rgb: np.ndarray) -> None:
    path = tmp_path / "photo.png"
    Image.fromarray(rgb).save(path)
    with path.open() as text, pytest.raises(ImageError, match="opened as text; open it with 'rb'"):
        load_image(text)


def test_floats_a_little_over_1_are_0_1_pixels() -> None:
    assert load_image(np.full((4, 5), 1.3, np.float32))[0, 0].tolist() == [255, 255, 255]
    assert load_image(np.full((4, 5), 0.5, np.float32))[0, 0].tolist() == [128, 128, 128]


def test_a_16_bit_grey_png_key_level_is_transparent(tmp_path: Path) -> None:
    grey = np.full((8, 8), 40000, np.uint16)
    grey[:4] = 0
    path = tmp_path / "keyed16.png"
    Image.fromarray(grey).save(path, transparency=0)
    assert Image.open(path).mode.startswith("I")
    out = load_image(path)
    assert out[0, 0].tolist() == [255, 255, 255] and out[7, 7].tolist() == [156, 156, 156]


def test_a_folder_skips_heic_photos_when_they_cannot_be_read_and_says_so(
        tmp_path: Path, rgb: np.ndarray, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from pekit import _image_formats as images

    Image.fromarray(rgb).save(tmp_path / "a.jpg")
    (tmp_path / "b.heic").write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64))
    monkeypatch.setattr(images, "_HEIF_OPENER", [False])
    assert list_images([tmp_path]) == [tmp_path / "a.jpg"]
    assert "1 HEIC photo(s) skipped (b.heic): pip install 'pekit-vlm[heif]'" in caplog.text
    assert list_images([tmp_path / "b.heic"]) == [tmp_path / "b.heic"]  # named: read, and its error said
    monkeypatch.setattr(images, "_HEIF_OPENER", [True])
    assert list_images([tmp_path]) == [tmp_path / "a.jpg", tmp_path / "b.heic"]


def test_an_avif_is_pillows_even_when_the_app_registered_pillow_heif_first(tmp_path: Path, rgb: np.ndarray) -> None:
    """An app that registers pillow-heif itself, before Pillow loads its plugins: an AVIF of a
    generic brand went to pillow-heif's opener, which may have no AV1 decoder."""
    import subprocess
    import sys


    pytest.importorskip("pillow_heif")
    (tmp_path / "generic.avif").write_bytes(_generic_avif(rgb))
    code = ("import pillow_heif; pillow_heif.register_heif_opener()\n"
            "from pekit.images import load_image\n"
            f"print(load_image({str(tmp_path / 'generic.avif')!r}).shape)")
    import os

    import pekit

    here = str(Path(pekit.__file__).parents[1])  # the pekit under test, not whatever is installed
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([here, os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0 and out.stdout.strip() == "(20, 30, 3)", out.stderr
