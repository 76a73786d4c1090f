"""Multiple-choice helpers: find lettered options in a question, read the letter in an answer.

Example:
    >>> parse_choice("The answer is B) Dog", {"A": "Cat", "B": "Dog"})
    'B'
    >>> split_options("Who is this? A. Bo B. Mochi")
    ('Who is this?', {'A': 'Bo', 'B': 'Mochi'})
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from pekit.prompt.question import _SPACED_WORD

__all__ = ["parse_choice", "split_options"]

_WORDS = re.compile(r"[^\w]+", re.UNICODE)
# "answer is B", "answer: (b)", "option B", "choice: b", "correct option would be B"
_EXPLICIT = re.compile(
    r"\b(?:answer|option|choice)\b(?:\s+(?:is|would\s+be|should\s+be|:))?\s*[:\-]?\s*[\(\[\"']?([A-Za-z])"
    r"(?![\w'’])",
    re.IGNORECASE,
)
# A letter at the very start: "B", "(B)", "B)", "B.", "B:", "[b]"
_LEADING = re.compile(r"^\s*(?:\*\*)?[\(\[]?([A-Za-z])(?:[\)\]\.:,]|\*\*|\s*$|\s+[-–—]\s)")
# Standalone capital letters; "A" / "I" followed by a lowercase word are the article / pronoun.
# Next to a script written without spaces ("答案是B", "Bです") a letter stands alone too.
_NOT_ALONE = rf"{_SPACED_WORD}|['’]"
_LOOSE = re.compile(rf"(?<!{_NOT_ALONE})([A-Z])(?!{_NOT_ALONE})")
_ARTICLE = re.compile(r"\s+(?!(?:or|and|nor)\b)[a-z]")


def _norm(text: str) -> str:
    return " ".join(_WORDS.sub(" ", text.lower()).split())


def parse_choice(text: str, options: Mapping[str, str]) -> str | None:
    """Read which option letter an LVLM chose; ``None`` when it is unclear.

    An answer that is the options said back ("A. Brown B. Grey": two or more labelled,
    each with its own text and nothing else) chose none. Otherwise tried in order, the
    first unambiguous reading wins:

    1. the whole answer is a letter ("B", "(b)", "B.");
    2. an explicit phrase ("Answer: b.", "The answer is B) Dog", "option B");
    3. a letter opening the answer ("B) Dog", "(B) because...");
    4. the text of exactly one option ("Dog", "It is a dog."), longest option text first;
    5. exactly one standalone capital option letter anywhere ("I'd say B").

    Args:
        text: the model's answer.
        options: ``{"A": "Cat", "B": "Dog"}`` (keys are letters, any case).

    Returns:
        The upper-case letter of the chosen option, or ``None``.

    Example:
        >>> opts = {"A": "Yes", "B": "No"}
        >>> [parse_choice(t, opts) for t in ["(A)", "Answer: b.", "No, it is not.", "A or B"]]
        ['A', 'B', 'B', None]
    """
    if not isinstance(text, str) or not text.strip() or not options:
        return None
    letters = {str(k).strip().upper(): " ".join(str(v).split()) for k, v in options.items()}
    stripped = text.strip()
    if _said_back(stripped, letters):
        return None  # the options said back ("A. Brown B. Grey"), not one chosen

    bare = re.sub(r"[\s\(\)\[\]\.\*:\"'`]+", "", stripped)
    if len(bare) == 1 and bare.upper() in letters:
        return bare.upper()

    explicit = {m.group(1).upper() for m in _EXPLICIT.finditer(stripped)} & letters.keys()
    if len(explicit) == 1:
        return explicit.pop()

    lead = _LEADING.match(stripped)
    if lead and lead.group(1).upper() in letters:
        letter = lead.group(1)
        # a lowercase "a" / capital "A" opening a sentence is usually the article ("A dog.")
        if not (letter in "aA" and re.match(r"^\s*a\s+\w", stripped, re.IGNORECASE)):
            return letter.upper()

    answer = f" {_norm(stripped)} "
    hits = [k for k, v in letters.items() if _norm(v) and f" {_norm(v)} " in answer]
    if len(hits) > 1:  # drop options whose text is contained in another hit ("dog" in "hot dog")
        texts = {k: _norm(letters[k]) for k in hits}
        hits = [k for k in hits if not any(k != o and f" {texts[k]} " in f" {texts[o]} " for o in hits)]
    if len(hits) == 1:
        return hits[0]

    loose = {
        m.group(1) for m in _LOOSE.finditer(stripped)
        if not (m.group(1) in "AI" and _ARTICLE.match(stripped, m.end()))
    } & letters.keys()
    if len(loose) == 1:
        return loose.pop()
    return None


def _said_back(text: str, letters: Mapping[str, str]) -> bool:
    """Whether ``text`` is two or more options labelled and written out as given, nothing
    else ("A. Brown\\nB. Grey"); "B. Grey, not A. Brown" chose B."""
    marks = [m for m in _OPTION.finditer(text) if m.group(1) in letters]
    if len({m.group(1) for m in marks}) < 2 or _norm(text[:marks[0].start()]):
        return False
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        if _norm(text[m.end():end]) != _norm(letters[m.group(1)]):
            return False
    return True


_OPTION = re.compile(r"(?:^|(?<=\s))[\(\[]?([A-Z])[\)\]\.:](?=\s)")


def split_options(question: str) -> tuple[str, dict[str, str]] | None:
    """Split a question with inline lettered options into ``(stem, {letter: text})``.

    Recognizes options written as ``A. text``, ``A) text``, ``(A) text`` or ``A: text``,
    on one line or one per line, with consecutive letters starting at A, after the
    question: the first option starts a line, or follows a question that ends in ``?``,
    ``:``, ``.`` or ``!`` (or their full-width, Arabic or CJK forms, or ``…``). Returns
    ``None`` when the question has no such options (letters inside a sentence, "plan A:
    the park, or plan B: the beach?", are not options).

    >>> split_options("Is Bo on the sofa?\\n(A) yes\\n(B) no")
    ('Is Bo on the sofa?', {'A': 'yes', 'B': 'no'})
    >>> split_options("What is in the image?") is None
    True
    >>> split_options("Should Bo take plan A: the park, or plan B: the beach?") is None
    True
    """
    if not isinstance(question, str):
        return None
    marks = list(_OPTION.finditer(question))
    # keep the first consecutive run A, B, C... (a later "A." could be a sentence like "Plan A.")
    run: list[re.Match[str]] = []
    for m in marks:
        expected = chr(ord("A") + len(run))
        if m.group(1) == expected:
            run.append(m)
        elif m.group(1) == "A":
            run = [m]
    if len(run) < 2:
        return None
    before = question[: run[0].start()]
    stem = before.strip()
    on_its_line = not before.strip(" \t") or before.rstrip(" \t").endswith("\n")
    if not (on_its_line or stem.endswith(("?", ":", ".", "？", "؟", "：", "。", "…", "!", "！"))):
        return None  # letters inside the sentence, not a block of options after it
    options: dict[str, str] = {}
    for i, m in enumerate(run):
        end = run[i + 1].start() if i + 1 < len(run) else len(question)
        text = " ".join(question[m.end():end].split()).rstrip(",;")
        if not text:
            return None
        options[m.group(1)] = text
    if not stem:
        return None
    return stem, options
