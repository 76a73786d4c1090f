"""What a prompt reads from the user: the question (`validate_question`), the names it
mentions (`mentioned_names`, in any script), multiple-choice options (`check_options`),
and a list of names as a sentence writes it (`join_names`). `pekit.prompt.text` builds the
prompt from them; `pekit.answer` asks with them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

from pekit.errors import InvalidInputError

__all__ = ["MAX_QUESTION_CHARS", "check_options", "join_names", "mentioned_names", "validate_question"]

#: Longest question accepted, in characters (a question is not a document).
MAX_QUESTION_CHARS = 10_000


def validate_question(question: object) -> str:
    """Return the stripped question, or raise `InvalidInputError` if empty or too long.

    >>> validate_question("  Where is Bo? ")
    'Where is Bo?'
    """
    if not isinstance(question, str):
        raise InvalidInputError(f"the question must be a string, but got {type(question).__name__}")
    from pekit.memory import clean_prose

    text = clean_prose(question, "the question", example="What is Bo doing?")  # no terminal escapes into the prompt
    if not text:
        raise InvalidInputError("the question is empty; ask something, e.g. 'What is Bo doing?'")
    if len(text) > MAX_QUESTION_CHARS:
        raise InvalidInputError(
            f"the question is {len(text):,} characters long; the limit is {MAX_QUESTION_CHARS:,}. "
            "Shorten it (put background about a concept in its context instead)."
        )
    return text


#: scripts written without spaces between words (Han, kana, Thai, Lao, Myanmar, Khmer) and
#: Hangul (whose particles join the noun: "보보는"): a name there has no word boundary
_UNSPACED = ("\u0e00-\u0eff\u1000-\u109f\u1100-\u11ff\u1780-\u17ff\u3040-\u30ff\u3130-\u318f"
             "\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\U00020000-\U0003134f")
#: a letter or digit of a script written with spaces: one next to a name makes it part of a longer word
_SPACED_WORD = rf"[^\W{_UNSPACED}]"


def _name_pattern(name: str) -> re.Pattern[str]:
    """``name`` as a whole word; an edge of it in a script without spaces ("小明在哪里") needs no boundary."""
    before = "" if re.match(f"[{_UNSPACED}]", name[0]) else f"(?<!{_SPACED_WORD})"
    after = "" if re.match(f"[{_UNSPACED}]", name[-1]) else f"(?!{_SPACED_WORD})"
    return re.compile(before + re.escape(name) + after, re.IGNORECASE)


def mentioned_names(text: str, names: Iterable[str]) -> list[str]:
    """Names from ``names`` that occur in ``text`` as whole words, in order given.

    A name written with a capital ("Sky", "Bear", "iPhone") is found where the text writes it
    as stored or with a capital ("Is Sky here?", "Is SKY here?"): "the sky" and "a bear" are words,
    not the user's dog. A text written all in lower case, and a name stored in lower case,
    match in any case. In scripts written without spaces a name is found inside the
    sentence ("小明在哪里？", "Bo在哪里？").

    >>> mentioned_names("Is Bo's ball near MOCHI?", ["Bo", "Mochi", "Rex", "Bob"])
    ['Bo', 'Mochi']
    >>> mentioned_names("What colour is the sky? Is there a bear?", ["Sky", "Bear"])
    []
    >>> mentioned_names("is sky with bo?", ["Sky", "Bo"]), mentioned_names("Is Rex here?", ["rex"])
    (['Sky', 'Bo'], ['rex'])
    >>> mentioned_names("Is my iPhone by the 3CPO mug?", ["iPhone", "3CPO"])  # written as stored
    ['iPhone', '3CPO']
    >>> mentioned_names("小明和Bo在哪里？", ["小明", "Bo"])
    ['小明', 'Bo']
    """
    casual = text == text.lower()  # nothing capitalised anywhere: case says nothing
    out = []
    for given in dict.fromkeys(names):
        name = given.strip()
        if not name:
            continue
        as_written = casual or name == name.lower()
        if any(as_written or word != word.lower() for word in _name_pattern(name).findall(text)):
            out.append(given)
    return out


def join_names(names: Sequence[str], conjunction: str = "and") -> str:
    """``["Bo"]`` -> ``"Bo"``; ``["Bo", "Mochi", "Rex"]`` -> ``"Bo, Mochi and Rex"``.

    >>> join_names(["Bo", "Mochi", "Rex"])
    'Bo, Mochi and Rex'
    """
    names = list(names)
    if len(names) <= 1:
        return "".join(names)
    return f"{', '.join(names[:-1])} {conjunction} {names[-1]}"


def check_options(options: Mapping[str, str] | None) -> dict[str, str]:
    """Multiple-choice ``options`` as the prompt writes them: at least two distinct letters
    A-Z, each with a text (`InvalidInputError` otherwise).

    >>> check_options({"a": " Dog ", "B": "Cat"})
    {'A': 'Dog', 'B': 'Cat'}
    """
    if not options or len(options) < 2:
        raise InvalidInputError("a multiple-choice prompt needs options with at least two letters, "
                                "e.g. {'A': 'Yes', 'B': 'No'}")
    out: dict[str, str] = {}
    for letter, text in options.items():
        key = str(letter).strip().upper()
        if not re.fullmatch(r"[A-Z]", key) or key in out:
            raise InvalidInputError(f"option keys must be distinct single letters A-Z, got {list(options)}")
        if not str(text or "").strip():
            raise InvalidInputError(f"option {key} has no text")
        out[key] = " ".join(str(text).split())
    return out
