"""Fonts for labels on photos: names in any script drawn as glyphs, never as empty boxes.

Pillow draws a whole string with one font, and its built-in font covers only basic Latin:
``"🐶 Bø 名前"`` would come out as boxes. `FontStack` picks, per character, the first font
that has a glyph for it, from the font files that installed packages ship:

1. ``manimgx-fonts`` (Noto Sans, Noto Emoji, Noto Sans Symbols and Noto Sans for Arabic,
   Hebrew, Devanagari, Thai and other scripts) and ``manimgx-fonts-cjk`` (Noto Sans CJK):
   ``pip install 'pekit-vlm[fonts]'``; both are SIL Open Font License 1.1;
2. matplotlib's DejaVu Sans (Latin, Greek, Cyrillic, many symbols), when matplotlib is installed;
3. common system fonts (DejaVu, Noto CJK, Droid Sans Fallback);
4. Pillow's built-in font.

A character no font has is drawn as ``?`` (joiners and variation selectors are dropped),
so a label never shows tofu. Nothing is loaded until a label is drawn.

Example:
    >>> stack = FontStack.default(16)
    >>> [text for text, _ in stack.runs("Bo")]
    ['Bo']
"""

from __future__ import annotations

import importlib.util
import logging
import unicodedata
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

from PIL import ImageDraw, ImageFont

log = logging.getLogger(__name__)

__all__ = ["FontStack", "font_files"]

_PACKAGES = ("manimgx_fonts", "manimgx_fonts_cjk")
_FIRST = ("NotoSans[wght].ttf", "NotoSansSymbols[wght].ttf", "NotoEmoji[wght].ttf")
_SYSTEM = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
    "/System/Library/Fonts/Supplemental/Arial Unicode.ttf",
    "C:/Windows/Fonts/seguisym.ttf",
    "C:/Windows/Fonts/msyh.ttc",
)
_NOT_A_CHARACTER = "\U0010ffff"  # never has a glyph: renders as the font's .notdef box
_PLACEHOLDER = "?"


_told: list[bool] = []  # whether the missing glyphs were said, once a process


def _say_missing(ch: str) -> None:
    """Say, once, that a label lost characters no font here has, and what draws them."""
    if _told:
        return
    _told.append(True)
    hint = ("pip install 'pekit-vlm[fonts]' (Noto fonts for every script and emoji)"
            if any(_package_dir(name) is None for name in _PACKAGES) else "no font installed here has them")
    log.warning("a name on a box has characters no font here can draw (%r, U+%04X): they are drawn as '?' "
                "(the prompt and the text output keep them); %s", ch, ord(ch), hint)


def _package_dir(name: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    locations = list(spec.submodule_search_locations or []) if spec else []
    return Path(locations[0]) if locations else None


@lru_cache(maxsize=1)
def font_files() -> tuple[Path, ...]:
    """Font files found on this install, in the order `FontStack` tries them."""
    found: list[Path] = []
    for package in _PACKAGES:
        folder = _package_dir(package)
        if folder is None:
            continue
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".ttf", ".otf", ".ttc")
                       and "Italic" not in p.name)
        found += sorted(files, key=lambda p: (_FIRST.index(p.name) if p.name in _FIRST else len(_FIRST), p.name))
    mpl = _package_dir("matplotlib")
    if mpl is not None:
        found.append(mpl / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf")
    found += [Path(p) for p in _SYSTEM]
    return tuple(p for p in found if p.is_file())


@lru_cache(maxsize=256)
def _load(path: Path, size: int) -> Any:
    try:
        return ImageFont.truetype(str(path), size)
    except OSError as exc:  # a damaged or unsupported font file: skip it
        log.debug("cannot load font %s: %s", path, exc)
        return None


def _builtin(size: int) -> Any:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # pragma: no cover - Pillow < 10.1 or no FreeType
        return ImageFont.load_default()


def _mask(font: Any, ch: str) -> tuple[tuple[int, int], bytes]:
    mask = font.getmask(ch)
    return mask.size, bytes(mask)


def _probe(font: Any) -> Any:
    """``font`` laid out without shaping, for asking whether it has a glyph: a shaping
    engine draws a lone combining mark on a dotted circle, which is not the missing-glyph
    box, so a font without the script would seem to have its vowel signs."""
    if isinstance(font, ImageFont.FreeTypeFont) and font.layout_engine != ImageFont.Layout.BASIC:
        try:
            return font.font_variant(layout_engine=ImageFont.Layout.BASIC)
        except (OSError, ValueError):  # pragma: no cover - a font FreeType reopens differently
            return font
    return font


def _mark(ch: str) -> bool:
    """A combining mark (a vowel sign, a virama, an accent): drawn with its base character."""
    return unicodedata.category(ch) in ("Mn", "Mc", "Me")


def _invisible(ch: str) -> bool:
    """Joiners, variation selectors and other marks that draw nothing on their own."""
    return unicodedata.category(ch) in ("Cf", "Mn", "Me") or 0xFE00 <= ord(ch) <= 0xFE0F


class FontStack:
    """Fonts of one pixel size, tried in order for every character (see the module docs).

    Args:
        fonts: FreeType fonts (or Pillow's built-in font last), or font file paths loaded
            at ``size`` when a character first needs them; the first one sets the metrics
            of spaces and of characters no font has.
        size: pixel size for fonts given as paths.
    """

    def __init__(self, fonts: list[Any], size: int = 16) -> None:
        self._sources = list(fonts)
        self._size = int(size)
        self._loaded: dict[int, tuple[Any, Any, tuple[tuple[int, int], bytes]] | None] = {}
        self._choice: dict[str, int | None] = {}
        usable = (i for i in range(len(self._sources)) if self._get(i) is not None)
        primary = next(usable, None)  # loads up to the first font that works
        if primary is None:
            raise ValueError("FontStack needs at least one usable font")
        self._primary: int = primary

    def _get(self, i: int) -> Any:
        """Font ``i`` (loaded on first use; None when its file cannot be loaded)."""
        if i not in self._loaded:
            source = self._sources[i]
            font = _load(source, self._size) if isinstance(source, Path) else source
            if font is None:
                self._loaded[i] = None
            else:
                probe = _probe(font)
                self._loaded[i] = (font, probe, _mask(probe, _NOT_A_CHARACTER))
        entry = self._loaded[i]
        return None if entry is None else entry[0]

    @property
    def fonts(self) -> list[Any]:
        """Every usable font of the stack, in order (loads them all)."""
        return [f for f in (self._get(i) for i in range(len(self._sources))) if f is not None]

    def _has(self, i: int, ch: str) -> bool:
        self._get(i)
        entry = self._loaded[i]
        return entry is not None and _mask(entry[1], ch) != entry[2]

    @classmethod
    def default(cls, size: int) -> FontStack:
        """The stack of every font file found (`font_files`), then Pillow's built-in font (cached)."""
        return _default_stack(int(size))

    def font_for(self, ch: str) -> int | None:
        """Index of the first font with a glyph for ``ch`` (None: no font has one)."""
        if ch not in self._choice:
            if ch.isspace():
                self._choice[ch] = self._primary
            else:
                self._choice[ch] = next((i for i in range(len(self._sources)) if self._has(i, ch)), None)
        return self._choice[ch]

    def runs(self, text: str) -> Iterator[tuple[str, Any]]:
        """``(piece, font)`` pairs covering ``text``: consecutive characters sharing a font,
        with characters that no font has replaced by ``?`` (or dropped when invisible).
        Spaces between two characters of one font, and a combining mark that font has, stay
        in its piece, so a font that shapes a script (joins Arabic, orders right-to-left
        words, places Indic vowel signs) gets whole words and phrases of it; spaces between
        pieces of different fonts are drawn with the first font."""
        chars: list[tuple[str, int | None]] = []  # (character, font index; None: a space, for now)
        for ch in unicodedata.normalize("NFC", text):
            if ch.isspace():
                chars.append((ch, None))
                continue
            before = chars[-1][1] if chars else None
            if before is not None and _mark(ch) and self._has(before, ch):
                chars.append((ch, before))  # with its base character
                continue
            index = self.font_for(ch)
            if index is None:
                if _invisible(ch):
                    continue
                _say_missing(ch)
                ch, index = _PLACEHOLDER, self._primary
            chars.append((ch, index))
        fonts = [i for _, i in chars]
        for j, (ch, index) in enumerate(chars):
            if index is None:  # a space: its neighbours' font when both sides share it
                left = next((i for i in reversed(fonts[:j]) if i is not None), None)
                right = next((i for _, i in chars[j + 1:] if i is not None), None)
                fonts[j] = left if left is not None and left == right and self._has(left, ch) else self._primary
        piece, current = "", None
        for (ch, _), index in zip(chars, fonts, strict=True):
            font = self._get(index if index is not None else self._primary)
            if font is not current and piece:
                yield piece, current
                piece = ""
            piece, current = piece + ch, font
        if piece:
            yield piece, current

    def _metrics(self, text: str) -> tuple[float, int, int, list[tuple[str, Any]]]:
        runs = list(self.runs(text))
        width = sum(font.getlength(piece) for piece, font in runs)
        ascent = min((font.getbbox(piece, anchor="ls")[1] for piece, font in runs), default=0)  # tops are < 0
        descent = max((font.getbbox(piece, anchor="ls")[3] for piece, font in runs), default=0)
        return width, -int(ascent), int(descent), runs

    def size(self, text: str) -> tuple[int, int]:
        """``(width, height)`` in pixels of ``text`` drawn by `draw`."""
        width, ascent, descent, _ = self._metrics(text)
        return round(width), ascent + descent

    def draw(self, draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, fill: Any) -> None:
        """Draw ``text`` with its top-left corner at ``xy`` (the box `size` measures)."""
        x, y = xy
        _, ascent, _, runs = self._metrics(text)
        for piece, font in runs:
            draw.text((x, y + ascent), piece, fill=fill, font=font, anchor="ls")
            x += font.getlength(piece)


@lru_cache(maxsize=32)
def _default_stack(size: int) -> FontStack:
    return FontStack([*font_files(), _builtin(size)], size)
