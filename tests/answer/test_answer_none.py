"""`none` backend, backend loading by name, and `respond` (the whole of stage 3) without a model."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from pekit.answer import LVLM, available_lvlms, load_lvlm, respond
from pekit.answer.none import NoneLVLM
from pekit.errors import BackendNotFoundError, InvalidInputError
from pekit.prompt import colour_rgb
from pekit.registry import create
from pekit.types import Answer, Detections


class Scripted:
    """A stand-in LVLM that answers from a script and records what it got."""

    name = "scripted"

    def __init__(self, reply: str) -> None:
        self.reply, self.calls = reply, []

    def generate(self, image, prompt, *, max_new_tokens=256, temperature=0.0, seed=None) -> str:
        self.calls.append({"image": image, "prompt": prompt, "max_new_tokens": max_new_tokens,
                           "temperature": temperature, "seed": seed})
        return self.reply


@pytest.fixture
def scene():
    image = np.full((120, 160, 3), 60, np.uint8)
    dets = Detections(xyxy=[[10, 10, 70, 100], [90, 20, 150, 110], [0, 0, 20, 20]],
                      score=[0.8, 0.95, 0.4], name=np.array(["Bo", "Mochi", ""], dtype=object))
    return image, dets


def test_names_and_registry():
    assert sorted(available_lvlms()) == ["hf:", "none", "openai:"]
    assert isinstance(load_lvlm("none"), NoneLVLM)
    assert isinstance(create("lvlm", "none"), LVLM)
    with pytest.raises(BackendNotFoundError, match=r"unknown lvlm 'llava'; available: .*none.*hf:<\.\.\.>"):
        load_lvlm("llava")
    with pytest.raises(InvalidInputError, match="non-empty"):
        load_lvlm("")


def test_importing_answer_stays_light():
    code = ("import sys, pekit.answer, pekit.prompt; lvlm = pekit.answer.load_lvlm('none'); "
            "print(sorted(m for m in ('torch', 'transformers', 'pekit.answer.hf') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.stdout.strip() == "[]"


def test_none_backend_returns_the_prompt_and_annotated_image(scene):
    image, dets = scene
    answer = respond(load_lvlm("none"), image, dets, question="What is Bo doing?",
                     contexts={"Bo": "my parents' dog"}, known_names=["Bo", "Mochi", "Rex"])
    assert isinstance(answer, Answer) and answer.text == "" and str(answer) == ""
    assert answer.detections is dets and answer.choice is None
    assert answer.prompt.splitlines() == [
        "The entity in the red box is called Mochi.",  # the more confident concept comes first
        "The entity in the blue box is called Bo. About Bo: my parents' dog.",
        "What is Bo doing?",
        "Answer using the names above where relevant, without mentioning the boxes or their colours.",
    ]
    assert answer.meta["colours"] == {"Mochi": "red", "Bo": "blue"}
    assert answer.meta["kind"] == "vqa" and answer.meta["template"].startswith("default@")
    assert tuple(answer.image[50, 90]) == colour_rgb("red")
    assert tuple(answer.image[50, 10]) == colour_rgb("blue")
    assert np.array_equal(image, np.full((120, 160, 3), 60, np.uint8))  # input untouched


def test_caption_and_pil_input(scene):
    image, dets = scene
    answer = respond(NoneLVLM(), Image.fromarray(image), dets)
    assert answer.meta["kind"] == "caption" and "calling Mochi and Bo by name" in answer.prompt
    assert isinstance(answer.image, np.ndarray) and answer.image.shape == image.shape


def test_multiple_choice_parses_the_letter(scene):
    image, dets = scene
    lvlm = Scripted("The answer is (B) Mochi.")
    answer = respond(lvlm, image, dets, question="Who is on the right?", options={"A": "Bo", "B": "Mochi"},
                     max_new_tokens=4, temperature=0.5, seed=1)
    assert answer.choice == "B" and answer.meta["kind"] == "choice"
    assert answer.meta["options"] == {"A": "Bo", "B": "Mochi"}
    assert "A. Bo\nB. Mochi" in answer.prompt and "letter of the correct option only" in answer.prompt
    (call,) = lvlm.calls
    assert call["prompt"] == answer.prompt and call["image"] is answer.image
    assert (call["max_new_tokens"], call["temperature"], call["seed"]) == (4, 0.5, 1)


def test_inline_options_are_detected():
    lvlm = Scripted("a")
    answer = respond(lvlm, np.zeros((32, 32, 3), np.uint8), Detections.empty(),
                     question="Is Rex in the photo?\nA. yes\nB. no", known_names=["Rex"])
    assert answer.choice == "A"
    assert answer.prompt.startswith("Rex is not visible in this image.\nIs Rex in the photo?\nA. yes\nB. no")


def test_absent_concept_without_detections():
    answer = respond(NoneLVLM(), np.zeros((32, 32, 3), np.uint8), Detections.empty(),
                     question="Where is Mochi?", known_names=["Bo", "Mochi"])
    assert answer.prompt == "Mochi is not visible in this image.\nWhere is Mochi?"
    plain = respond(NoneLVLM(), np.zeros((32, 32, 3), np.uint8), Detections.empty(),
                    question="What is this?", known_names=["Bo", "Mochi"])
    assert plain.prompt == "What is this?"


def test_concepts_beyond_the_palette_are_said_to_be_there_never_absent(caplog):
    names = [f"c{i}" for i in range(14)]  # a family photo with 14 people introduced: 12 colours
    dets = Detections(xyxy=[[i, i, i + 10, i + 10] for i in range(14)], score=np.linspace(0.9, 0.6, 14),
                      name=np.array(names, dtype=object))
    with caplog.at_level("WARNING", logger="pekit.prompt.overlay"):
        answer = respond(NoneLVLM(), np.zeros((64, 64, 3), np.uint8), dets, question="Where is c13?",
                         known_names=names)
    assert caplog.text.count("not drawing: c12, c13") == 1  # said once, not by each step
    assert "Also in this image, not marked with a box: c12 and c13." in answer.prompt
    assert "not visible" not in answer.prompt and len(answer.meta["colours"]) == 12


def test_a_box_off_the_photo_is_not_named_in_the_prompt():
    dets = Detections(xyxy=[[10, 10, 40, 40], [500, 500, 600, 600]], score=[0.8, 0.9],
                      name=np.array(["Bo", "Mochi"], dtype=object))
    answer = respond(NoneLVLM(), np.zeros((64, 64, 3), np.uint8), dets, question="Who is here?")
    assert answer.meta["colours"] == {"Bo": "red"} and "Mochi" not in answer.prompt


def test_a_pil_photo_reaches_the_lvlm_upright():
    import io

    raw = Image.new("RGB", (200, 100), (90, 90, 90))
    exif = raw.getexif()
    exif[0x0112] = 6  # stored sideways: recognize sees it 100 wide and 200 high
    buf = io.BytesIO()
    raw.save(buf, "JPEG", exif=exif)
    lvlm = Scripted("ok")
    respond(lvlm, Image.open(io.BytesIO(buf.getvalue())), Detections.empty(), question="What is this?")
    assert lvlm.calls[0]["image"].shape == (200, 100, 3)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"question": ""}, "question is empty"),
        ({"question": " " * 20}, "question is empty"),
        ({"question": "x" * 100_000}, "limit is 10,000"),
        ({"question": 42}, "must be a string"),
        ({"options": {"A": "x", "B": "y"}}, "options need a question"),
        ({"question": "Hi", "template": "missing"}, "unknown prompt template"),
    ],
)
def test_bad_input_never_reaches_the_model(kwargs, match):
    lvlm = Scripted("x")
    with pytest.raises(InvalidInputError, match=match):
        respond(lvlm, np.zeros((8, 8, 3), np.uint8), Detections.empty(), **kwargs)
    assert lvlm.calls == []


@pytest.mark.parametrize(
    ("image", "match"),
    [(np.zeros((8, 8), np.uint8), r"\(H, W, 3\)"), ("photo.jpg", "PIL image"), (np.zeros((0, 8, 3), np.uint8),
                                                                                 "empty")],
)
def test_bad_images(image, match):
    with pytest.raises(InvalidInputError, match=match):
        respond(NoneLVLM(), image, Detections.empty(), question="Hi")
    with pytest.raises(InvalidInputError):
        NoneLVLM().generate(image, "Hi")


def test_concurrent_answers_each_report_their_own_usage() -> None:
    """One backend serves several requests at once (the server's thread pool): the usage in
    each answer's meta is its own call's, not that of a call that finished in between."""
    import threading

    from pekit.answer.base import ThreadUsage

    class Counting:
        name = "counting"
        last_usage = ThreadUsage()

        def __init__(self) -> None:
            self.first_done, self.second_done = threading.Event(), threading.Event()

        def generate(self, image, prompt, *, max_new_tokens=256, temperature=0.0, seed=None) -> str:
            self.last_usage = {"prompt_tokens": len(prompt)}
            if "first" in prompt:  # finishes its call, then waits while the other one finishes
                self.first_done.set()
                self.second_done.wait(5)
            else:
                self.first_done.wait(5)
                self.second_done.set()
            return "ok"

    lvlm, image, answers = Counting(), np.zeros((32, 32, 3), np.uint8), {}

    def ask(question: str) -> None:
        answers[question] = respond(lvlm, image, Detections.empty(), question=question)

    threads = [threading.Thread(target=ask, args=(q,)) for q in ("the first question?", "the second one, longer?")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for question, answer in answers.items():
        assert answer.meta["usage"] == {"prompt_tokens": len(answer.prompt)}, question
    assert len({a.meta["usage"]["prompt_tokens"] for a in answers.values()}) == 2


def test_a_name_the_question_mentions_is_no_box_colour():
    """A cat called Red, asked about beside Bo: Bo's box is not red ("the red box" and "Red is
    not visible" side by side would contradict each other), in the picture and the prompt."""
    bo = Detections(xyxy=[[8, 8, 40, 40]], score=[0.9], name=["Bo"])
    photo = np.zeros((64, 64, 3), np.uint8)
    lvlm = Scripted("no")
    answer = respond(lvlm, photo, bo, question="Is Red here too?", known_names=(n for n in ["Bo", "Red"]))
    assert answer.meta["colours"] == {"Bo": "blue"}
    assert "The entity in the blue box is called Bo." in answer.prompt and "Red is not visible" in answer.prompt
    assert tuple(lvlm.calls[0]["image"][8, 20]) == colour_rgb("blue")  # the box drawn is the colour named
    plain = respond(Scripted("no"), photo, bo, question="Is it red?", known_names=["Bo", "Red"])
    assert plain.meta["colours"] == {"Bo": "red"}  # the colour as a word names no concept
