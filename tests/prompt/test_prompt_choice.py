"""Multiple choice: reading the letter from free-form answers; finding options in questions."""

from __future__ import annotations

import pytest

from pekit.prompt import parse_choice, split_options

ANIMALS = {"A": "Cat", "B": "Dog"}
YESNO = {"A": "Yes", "B": "No"}
FOUR = {"A": "Bo", "B": "Mochi", "C": "Rex", "D": "Hot dog"}


@pytest.mark.parametrize(
    ("text", "options", "expected"),
    [
        ("B", ANIMALS, "B"),
        ("b", ANIMALS, "B"),
        ("(B)", ANIMALS, "B"),
        ("B.", ANIMALS, "B"),
        ("**B**", ANIMALS, "B"),
        ("Answer: b.", ANIMALS, "B"),
        ("The answer is B) Dog", ANIMALS, "B"),
        ("The correct option is (A).", ANIMALS, "A"),
        ("B) Dog", ANIMALS, "B"),
        ("(A) because it purrs", ANIMALS, "A"),
        ("Dog", ANIMALS, "B"),
        ("It is a dog.", ANIMALS, "B"),
        ("A dog is lying on the sofa.", ANIMALS, "B"),  # "A" here is the article
        ("I think B", ANIMALS, "B"),
        ("No, it is not.", YESNO, "B"),
        ("yes", YESNO, "A"),
        ("A hot dog.", FOUR, "D"),  # "dog" is not an option; "Hot dog" is
        ("C", FOUR, "C"),
        ("Mochi is on the left.", FOUR, "B"),
        ("答案是B", ANIMALS, "B"),  # a letter next to Chinese or Japanese stands alone
        ("选项A。", ANIMALS, "A"),
        ("Bです", ANIMALS, "B"),
        ("AとB", ANIMALS, None),
        # ambiguous or empty -> None
        ("A or B", ANIMALS, None),
        ("A. Cat\nB. Dog", ANIMALS, None),  # the options said back: none chosen
        ("(A) Cat (B) Dog", ANIMALS, None),
        ("B. Dog, not A. Cat", ANIMALS, "B"),  # one chosen, the other named to reject it
        ("The answer is B. A. Cat would be wrong.", ANIMALS, "B"),
        ("The answer is B.\nA. Cat\nB. Dog", ANIMALS, "B"),
        ("Cat and dog", ANIMALS, None),
        ("I am not sure.", ANIMALS, None),
        ("", ANIMALS, None),
        ("E", FOUR, None),
    ],
)
def test_parse_choice(text, options, expected):
    assert parse_choice(text, options) == expected


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("Who is this? A. Bo B. Mochi", ("Who is this?", {"A": "Bo", "B": "Mochi"})),
        ("Is Bo on the sofa?\n(A) yes\n(B) no", ("Is Bo on the sofa?", {"A": "yes", "B": "no"})),
        ("Pick one:\nA) red\nB) blue\nC) green", ("Pick one:", {"A": "red", "B": "blue", "C": "green"})),
        ("What is in the image?", None),
        ("Is plan A. better?", None),
        ("A. Bo B. Mochi", None),  # no question stem
        # letters inside the sentence are not a block of options after it
        ("Should Bo take plan A: the park, or plan B: the beach?", None),
        ("Is Bo in room A. or room B. of the house?", None),
        ("谁是这个？ A. Bo B. Mochi", ("谁是这个？", {"A": "Bo", "B": "Mochi"})),
        ("من هذا؟ A. Bo B. Mochi", ("من هذا؟", {"A": "Bo", "B": "Mochi"})),
        ("Who is this… A. Bo B. Mochi", ("Who is this…", {"A": "Bo", "B": "Mochi"})),
        ("Which bowl\n(A) the red one\n(B) the blue one", ("Which bowl", {"A": "the red one", "B": "the blue one"})),
    ],
)
def test_split_options(question, expected):
    assert split_options(question) == expected
