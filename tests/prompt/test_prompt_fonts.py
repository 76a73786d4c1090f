"""Labels in any script: every character drawn as its own glyph (never an empty box), with a
graceful fallback when no font package is installed."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from PIL import Image, ImageDraw

import pekit.prompt.fonts as fonts
from pekit.prompt.fonts import FontStack
from pekit.prompt.overlay import annotate
from pekit.types import Detections

HAS_CJK = importlib.util.find_spec("manimgx_fonts_cjk") is not None or any(
    "CJK" in p.name or "Fallback" in p.name for p in fonts.font_files())
HAS_EMOJI = any("Emoji" in p.name for p in fonts.font_files())


def render(stack: FontStack, text: str) -> np.ndarray:
    canvas = Image.new("L", (200, 60))
    stack.draw(ImageDraw.Draw(canvas), (4, 4), text, fill=255)
    return np.asarray(canvas)


PAIRS = [("ø", "å"), ("Ж", "Ч"), ("λ", "π"), ("B", "D")]
PAIRS += [("名", "前"), ("犬", "猫"), ("ア", "イ"), ("한", "국")] if HAS_CJK else []
PAIRS += [("🐶", "🐱")] if HAS_EMOJI else []


@pytest.mark.parametrize(("a", "b"), PAIRS, ids=[a + b for a, b in PAIRS])
def test_different_characters_draw_different_glyphs(a: str, b: str) -> None:
    stack = FontStack.default(24)
    first, second, placeholder = render(stack, a), render(stack, b), render(stack, "?")
    assert first.any() and second.any()
    assert not np.array_equal(first, second)  # tofu boxes would be identical
    assert not np.array_equal(first, placeholder) and not np.array_equal(second, placeholder)


def test_pillows_builtin_font_alone_would_draw_the_same_box() -> None:
    """The control: without a covering font two CJK characters look alike; the stack then
    draws a visible placeholder instead of a box, and never fails."""
    builtin = FontStack([fonts._builtin(24)])
    assert [piece for piece, _ in builtin.runs("名前 Bo")] == ["?? Bo"]
    assert np.array_equal(render(builtin, "名"), render(builtin, "前"))


def test_no_font_package_falls_back_to_pillow(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fonts, "font_files", lambda: ())
    fonts._default_stack.cache_clear()
    try:
        stack = FontStack.default(20)
        assert len(stack.fonts) == 1
        out = annotate(np.zeros((80, 160, 3), np.uint8), Detections(xyxy=[[5, 30, 150, 75]], name=["🐶 Bø 名前"]))
        assert out.shape == (80, 160, 3) and out.any()
    finally:
        fonts._default_stack.cache_clear()


def test_joiners_and_variation_selectors_never_become_placeholders() -> None:
    builtin = FontStack([fonts._builtin(24)])
    assert "".join(p for p, _ in builtin.runs("a\u200db\ufe0f")) == "ab"


@pytest.mark.skipif(not HAS_CJK, reason="no CJK font installed (pip install 'pekit-vlm[fonts]')")
def test_annotate_draws_cjk_names() -> None:
    image = np.full((120, 240, 3), 90, np.uint8)

    def label(name: str) -> np.ndarray:
        return annotate(image, Detections(xyxy=[[10, 60, 230, 115]], score=[0.9], name=[name]))[:60]

    assert not np.array_equal(label("名前"), label("前名"))


def _font_named(part: str) -> bool:
    return any(part in p.name for p in fonts.font_files())


def _name(font: object) -> str:
    return str(getattr(font, "path", "builtin")).rsplit("/", 1)[-1]


@pytest.mark.skipif(not _font_named("Devanagari"),
                    reason="no Devanagari font installed (pip install 'pekit-vlm[fonts]')")
@pytest.mark.parametrize("word", ["राजेश", "मिता"])
def test_indic_vowel_signs_stay_with_their_consonants(word: str) -> None:
    # a shaping engine draws a lone vowel sign on a dotted circle, which a glyph check must
    # not take for a glyph: the word is one piece in the font that shapes Devanagari
    pieces = list(FontStack.default(24).runs(word))
    assert [p for p, _ in pieces] == [word] and "Devanagari" in _name(pieces[0][1])


@pytest.mark.parametrize(("text", "script"), [("שלום עולם 0.80", "Hebrew"), ("مرحبا بك 0.90", "Arabic")])
def test_right_to_left_words_are_one_piece_so_they_keep_their_order(text: str, script: str) -> None:
    if not _font_named(script):
        pytest.skip(f"no {script} font installed (pip install 'pekit-vlm[fonts]')")
    pieces = list(FontStack.default(24).runs(text))
    assert [p for p, _ in pieces] == [text[:-5], text[-5:]] and script in _name(pieces[0][1])


@pytest.mark.parametrize("text", ["Bo 0.91", "名前 0.9", "שלום עולם 0.80", "مرحبا بك 0.90", "Bo 🐶 名前 0.70"])
def test_the_measured_box_holds_the_drawn_label(text: str) -> None:
    stack = FontStack.default(40)
    width, height = stack.size(text)
    canvas = Image.new("L", (width + 40, height + 40))
    stack.draw(ImageDraw.Draw(canvas), (20, 20), text, fill=255)
    rows, cols = np.nonzero(np.asarray(canvas))
    assert rows.min() >= 20 - 1 and rows.max() <= 20 + height + 1  # the tag behind it is this tall
    assert cols.min() >= 20 - 2 and cols.max() <= 20 + width + 2
    assert height >= 0.6 * 40  # not the height of the shortest piece


def test_a_character_no_font_has_is_said_once_with_what_draws_it(monkeypatch: pytest.MonkeyPatch,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    """Without the fonts extra a name in another script is drawn as '?': a user who sees
    "??? 0.77" on the box is told why and what to install, once, not on every label."""
    monkeypatch.setattr(fonts, "_told", [])
    monkeypatch.setattr(fonts, "_package_dir", lambda name: None)  # as without pekit-vlm[fonts]
    stack = FontStack.default(14)
    with caplog.at_level("WARNING", logger="pekit.prompt.fonts"):
        assert "?" in "".join(piece for piece, _ in stack.runs("Bo \U000f0000"))  # private use: no font has it
        list(stack.runs("Rex \U000f0001"))
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 1 and "drawn as '?'" in warned[0] and "pip install 'pekit-vlm[fonts]'" in warned[0]
