"""Prompt templates: concepts, colours, context, absent concepts, choice, validation, data files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pekit.errors import InvalidInputError
from pekit.prompt import annotate, build_prompt, colour_assignment, colour_rgb, load_template
from pekit.prompt.question import MAX_QUESTION_CHARS, mentioned_names
from pekit.prompt.text import available_templates
from pekit.types import Detections

NAMES = ["Bo", "Mochi", "Grandma's mug", "Rex"]
CONTEXTS = {
    "Bo": "Bo is my parents' dog. He loves the beach",
    "Mochi": "my cat, very shy",
    "Grandma's mug": "",
    "Rex": "the neighbours' tortoise",
}


def _scene(n: int) -> tuple[np.ndarray, Detections]:
    boxes = [[20 + 110 * i, 40, 100 + 110 * i, 200] for i in range(n)]
    dets = Detections(xyxy=boxes, score=[0.9 - 0.1 * i for i in range(n)],
                      name=np.array(NAMES[:n], dtype=object))
    return np.full((240, 480, 3), 90, np.uint8), dets


@pytest.mark.parametrize("n", [1, 2, 4])
def test_concepts_named_with_the_colours_that_were_drawn(n):
    image, dets = _scene(n)
    colours = colour_assignment(dets)
    concepts = [(name, colour, CONTEXTS[name]) for name, colour in colours.items()]
    prompt = build_prompt("vqa", question="What is happening?", concepts_in_image=concepts,
                          known_names=NAMES)
    drawn = annotate(image, dets, labels=False)
    said = []
    for i, name in enumerate(NAMES[:n]):
        line = f"The entity in the {colours[name]} box is called {name}."
        assert line in prompt
        said.append(colours[name])
        x0, y0 = int(dets.xyxy[i][0]), int(dets.xyxy[i][1])
        assert tuple(drawn[y0 + 50, x0]) == colour_rgb(colours[name])  # the word matches the pixels
    assert len(set(said)) == n  # unique colours
    assert prompt.count(" box is called ") == n
    assert "without mentioning the boxes" in prompt
    assert prompt.splitlines()[n] == "What is happening?"
    assert "not visible" not in prompt  # every named concept is in the image


def test_context_per_concept():
    prompt = build_prompt("caption", concepts_in_image=[
        ("Bo", "red", CONTEXTS["Bo"]), ("Mochi", "blue", CONTEXTS["Mochi"]), ("Grandma's mug", "yellow", "")])
    lines = prompt.splitlines()
    # a context that already names the concept is used as written; others are introduced
    assert lines[0] == "The entity in the red box is called Bo. Bo is my parents' dog. He loves the beach."
    assert lines[1] == "The entity in the blue box is called Mochi. About Mochi: my cat, very shy."
    assert lines[2] == "The entity in the yellow box is called Grandma's mug."
    assert "calling Bo, Mochi and Grandma's mug by name" in prompt
    assert "Do not mention the boxes" in prompt


def test_nothing_recognized_sends_the_question_plainly():
    q = "What colour is the car?"
    assert build_prompt("vqa", question=q, known_names=NAMES) == q
    assert build_prompt("vqa", question="  {weird} braces {0} ", known_names=[]) == "{weird} braces {0}"


def test_a_name_that_is_also_a_word_is_not_declared_absent_where_the_question_uses_the_word() -> None:
    """Pets are called Sky, Bear, Max: "the sky" in a question is the sky, not the dog, so the
    LVLM is not told "Sky is not visible" before "What colour is the sky?"."""
    for question in ("What colour is the sky?", "Is there a bear in this picture?"):
        assert build_prompt("vqa", question=question, known_names=["Sky", "Bear"]) == question
    assert build_prompt("vqa", question="Is Sky on the sofa?", known_names=["Sky"]).startswith(
        "Sky is not visible in this image.")


@pytest.mark.parametrize(
    ("question", "visible", "absent_line"),
    [
        ("Is Mochi sleeping?", [], "Mochi is not visible in this image."),
        ("Where are Bo and MOCHI?", [], "Bo and Mochi are not visible in this image."),
        ("where are bo and mochi?", [], "Bo and Mochi are not visible in this image."),  # typed all in lower case
        ("Is Bo's ball here?", [], "Bo is not visible in this image."),
        ("Is Mochi next to Bo?", [("Bo", "red", "")], "Mochi is not visible in this image."),
    ],
)
def test_known_concept_that_is_absent_is_declared_not_visible(question, visible, absent_line):
    prompt = build_prompt("vqa", question=question, concepts_in_image=visible, known_names=NAMES)
    assert absent_line in prompt
    assert question in prompt
    if not visible:
        assert prompt == f"{absent_line}\n{question}"
    else:
        assert "The entity in the red box is called Bo." in prompt
        assert "Bo is not visible" not in prompt


def test_names_match_whole_words_only():
    assert mentioned_names("Is Bob here? Where is the bowl?", ["Bo"]) == []
    assert build_prompt("vqa", question="Is Bob here?", known_names=["Bo"]) == "Is Bob here?"
    assert mentioned_names("grandma's mug?", ["Grandma's mug"]) == ["Grandma's mug"]


@pytest.mark.parametrize(
    ("question", "names", "absent_line"),
    [
        ("小明在哪里？", ["小明", "Bo"], "小明 is not visible in this image."),
        ("Bo在沙发上吗？", ["小明", "Bo"], "Bo is not visible in this image."),
        ("ボーはどこ？", ["ボー"], "ボー is not visible in this image."),
        ("보보는 어디에 있어?", ["보보"], "보보 is not visible in this image."),
    ],
)
def test_names_in_scripts_without_spaces_are_found(question, names, absent_line):
    # Chinese, Japanese and Korean join a name to the words around it: no word boundary
    assert build_prompt("vqa", question=question, known_names=names) == f"{absent_line}\n{question}"


@pytest.mark.parametrize("context", ["我们家的狗。", "うちの犬です！", "كلب والديّ؟", "my parents' dog."])
def test_a_context_ending_a_sentence_in_any_script_gets_no_second_full_stop(context):
    prompt = build_prompt("caption", concepts_in_image=[("Bo", "red", context)])
    assert prompt.splitlines()[0] == f"The entity in the red box is called Bo. About Bo: {context}"


def test_caption_without_concepts_is_generic():
    assert build_prompt("caption", known_names=NAMES) == "Describe this image in one or two sentences."


def test_multiple_choice_asks_for_the_letter():
    prompt = build_prompt("choice", question="Who is on the sofa?", options={"a": "Bo", "b": "Mochi"},
                          concepts_in_image=[("Bo", "red", "")], known_names=NAMES)
    assert "A. Bo\nB. Mochi" in prompt
    assert prompt.rstrip().endswith("Answer with the letter of the correct option only.")
    assert "Mochi is not visible in this image." in prompt  # named by an option, absent
    plain = build_prompt("choice", question="Is it raining?", options={"A": "Yes", "B": "No"})
    assert plain == "Is it raining?\nA. Yes\nB. No\nAnswer with the letter of the correct option only."


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"kind": "vqa", "question": ""}, "empty"),
        ({"kind": "vqa", "question": "   \n"}, "empty"),
        ({"kind": "vqa"}, "must be a string"),
        ({"kind": "vqa", "question": "x" * 100_000}, "100,000 characters.*limit is 10,000"),
        ({"kind": "chat", "question": "hi"}, "unknown prompt kind 'chat'"),
        ({"kind": "caption", "question": "hi"}, "caption takes no question"),
        ({"kind": "choice", "question": "Which?", "options": {"A": "x"}}, "at least two"),
        ({"kind": "choice", "question": "Which?", "options": {"A": "x", "AB": "y"}}, "single letters"),
        ({"kind": "choice", "question": "Which?", "options": {"A": "x", "B": " "}}, "option B has no text"),
        ({"kind": "vqa", "question": "q", "concepts_in_image": [("Bo", "red", ""), ("Mochi", "red", "")]},
         "its own colour"),
        ({"kind": "vqa", "question": "q", "concepts_in_image": [("Bo", "red", ""), ("bo", "blue", "")]},
         "once"),
        ({"kind": "vqa", "question": "q", "concepts_in_image": [("", "red", "")]}, "name and a colour"),
        ({"kind": "vqa", "question": "q", "template": "nope"}, "unknown prompt template 'nope'.*default"),
    ],
)
def test_bad_input(kwargs, match):
    kind = kwargs.pop("kind")
    with pytest.raises(InvalidInputError, match=match):
        build_prompt(kind, **kwargs)


def test_longest_question_accepted():
    q = "y" * MAX_QUESTION_CHARS
    assert build_prompt("vqa", question=q) == q


def test_templates_are_versioned_data(tmp_path):
    assert "default" in available_templates()
    tpl = load_template("default")
    assert tpl.version and tpl.id == f"default@{tpl.version}"
    data = json.loads(json.dumps(dict(tpl.parts, name="mine", version="7")))
    data["concept"] = "{name} wears the {colour} frame."
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(data))
    mine = load_template(str(path))
    assert mine.id == "mine@7"
    prompt = build_prompt("vqa", question="Hi?", concepts_in_image=[("Bo", "red", "")], template=mine)
    assert prompt.startswith("Bo wears the red frame.")

    for broken, match in [
        ({k: v for k, v in data.items() if k != "version"}, "version"),
        (dict(data, concept="{name} in {shade}"), r"unknown fields \['shade'\]"),
        ({k: v for k, v in data.items() if k != "caption"}, "lacks the string parts: caption"),
        # a part that would never send the question, or never tie a name to its colour
        (dict(data, vqa="{concepts}\nAnswer using the names."), r"part 'vqa' lacks the fields \['question'\]"),
        (dict(data, concept="This is {name}."), r"part 'concept' lacks the fields \['colour'\]"),
        (dict(data, unmarked="Also here."), r"part 'unmarked' lacks the fields \['names'\]"),
    ]:
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps(broken))
        load_template.cache_clear()
        with pytest.raises(InvalidInputError, match=match):
            load_template(str(bad))
    bad.write_text("{not json")
    load_template.cache_clear()
    with pytest.raises(InvalidInputError, match="not valid JSON"):
        load_template(str(bad))
